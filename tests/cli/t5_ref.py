"""An independent MonoT5 reference (T5ForConditionalGeneration, one decoder step) in float64
torch, written from Hugging Face's modeling_t5 semantics, and the check of `mechir patch` on a
MonoT5 against it.

Semantics (modeling_t5): T5LayerNorm is an RMS norm without mean subtraction or bias; attention
has no 1/sqrt(d_kv) scaling and adds the relative position bias of block 0 of each stack (the
encoder's bidirectional buckets) to every block's scores; cross-attention has no position bias;
each sub-layer is x + f(norm(x)); the feed-forward is wo(act(wi x)) or, gated, wo(act(wi_0 x) *
wi_1 x) with gelu_new the tanh approximation; the tied lm_head rescales by d_model^-0.5. The
MonoT5 score is log_softmax([logit_false, logit_true])[1] at decoder step 0.

Patching is TransformerLens's: cache the perturbed run's hook_z / hook_resid_pre / hook_attn_out
/ hook_mlp_out, rerun the baseline once per component with a hook that overwrites it.

usage: t5_ref.py MECHIR MODEL_DIR TMPDIR
First checks the reference against golden.json (every case's score, case 0's
encoder_resid_post); only then compares `mechir patch` on perturbed golden inputs."""
import json
import math
import struct
import subprocess
import sys

import numpy as np
import torch

DT = torch.float64


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    kinds = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=kinds[meta["dtype"]])
        out[name] = torch.from_numpy(arr.reshape(meta["shape"]).astype(np.float64))
    return out


def bucket(rel, bidirectional, n_buckets, max_distance):
    """modeling_t5's _relative_position_bucket on a tensor of key - query offsets."""
    ret = torch.zeros_like(rel)
    if bidirectional:
        n_buckets //= 2
        ret += (rel > 0).long() * n_buckets
        n = rel.abs()
    else:
        n = -torch.minimum(rel, torch.zeros_like(rel))
    exact = n_buckets // 2
    small = n < exact
    large = exact + (torch.log(n.float() / exact) / math.log(max_distance / exact) *
                     (n_buckets - exact)).long()
    large = torch.minimum(large, torch.full_like(large, n_buckets - 1))
    return ret + torch.where(small, n, large)


class T5:
    def __init__(self, d):
        self.cfg = json.load(open(d + "/config.json"))
        c = self.cfg
        self.w = load_safetensors(d + "/model.safetensors")
        self.C, self.NH, self.HS = c["d_model"], c["num_heads"], c["d_kv"]
        self.L = c["num_layers"]
        self.LD = c.get("num_decoder_layers") or self.L
        self.eps = c.get("layer_norm_epsilon", 1e-6)
        proj = c.get("feed_forward_proj", "relu")
        self.gated = proj.startswith("gated-")
        act = proj.split("-")[-1]
        if act == "relu":
            self.act = torch.relu
        elif act in ("gelu", "gelu_new"):
            self.act = lambda x: 0.5 * x * (1 + torch.tanh(
                math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))
        else:
            raise SystemExit("t5_ref.py: unsupported activation " + act)
        self.tied = c.get("tie_word_embeddings", True)
        self.dec_start = c.get("decoder_start_token_id", c.get("pad_token_id", 0))

    def norm(self, x, name):
        v = x.pow(2).mean(-1, keepdim=True)
        return self.w[name] * (x * torch.rsqrt(v + self.eps))

    def ff(self, x, p):
        w = self.w
        if self.gated:
            h = self.act(x @ w[p + "wi_0.weight"].T) * (x @ w[p + "wi_1.weight"].T)
        else:
            h = self.act(x @ w[p + "wi.weight"].T)
        return h @ w[p + "wo.weight"].T

    def attn(self, xq, xkv, p, bias, hook, name):
        """Heads' z (rows, NH, HS) through hook(name, z), then the output projection."""
        w, NH, HS = self.w, self.NH, self.HS
        q = (xq @ w[p + "q.weight"].T).view(-1, NH, HS).transpose(0, 1)
        k = (xkv @ w[p + "k.weight"].T).view(-1, NH, HS).transpose(0, 1)
        v = (xkv @ w[p + "v.weight"].T).view(-1, NH, HS).transpose(0, 1)
        s = q @ k.transpose(1, 2)
        if bias is not None:
            s = s + bias
        z = (torch.softmax(s, -1) @ v).transpose(0, 1)
        z = hook(name, z)
        return z.reshape(z.shape[0], NH * HS) @ w[p + "o.weight"].T

    def forward(self, ids, hook=lambda name, x: x):
        """Step-0 logits and every encoder.{l}.hook_resid_post; hook(name, x) may replace x."""
        w, c = self.w, self.cfg
        T = len(ids)
        x = w["shared.weight"][torch.tensor(ids)]
        pos = torch.arange(T)
        rel = pos[None, :] - pos[:, None]
        b = bucket(rel, True, c["relative_attention_num_buckets"],
                   c["relative_attention_max_distance"])
        bias = w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][b]
        bias = bias.permute(2, 0, 1)
        posts = []
        for l in range(self.L):
            p = "encoder.block.%d.layer." % l
            x = hook("encoder.%d.hook_resid_pre" % l, x)
            xn = self.norm(x, p + "0.layer_norm.weight")
            a = self.attn(xn, xn, p + "0.SelfAttention.", bias, hook, "encoder.%d.attn.hook_z" % l)
            x = x + hook("encoder.%d.hook_attn_out" % l, a)
            m = self.ff(self.norm(x, p + "1.layer_norm.weight"), p + "1.DenseReluDense.")
            x = x + hook("encoder.%d.hook_mlp_out" % l, m)
            posts.append(x)
        enc = self.norm(x, "encoder.final_layer_norm.weight")
        y = w["shared.weight"][torch.tensor([self.dec_start])]
        for l in range(self.LD):
            p = "decoder.block.%d.layer." % l
            yn = self.norm(y, p + "0.layer_norm.weight")
            # one step: the causal self-attention sees only itself, its bias does not matter
            y = y + self.attn(yn, yn, p + "0.SelfAttention.", None, hook,
                              "decoder.%d.attn.hook_z" % l)
            yn = self.norm(y, p + "1.layer_norm.weight")
            y = y + self.attn(yn, enc, p + "1.EncDecAttention.", None, hook,
                              "decoder.%d.cross_attn.hook_z" % l)
            y = y + self.ff(self.norm(y, p + "2.layer_norm.weight"), p + "2.DenseReluDense.")
        y = self.norm(y, "decoder.final_layer_norm.weight")
        if self.tied:
            y = y * self.C ** -0.5
        head = w["shared.weight"] if self.tied else w["lm_head.weight"]
        return (y @ head.T)[0], posts


def score(logits, tid, fid):
    return torch.log_softmax(torch.stack([logits[fid], logits[tid]]), 0)[1].item()


FAILS = []


def close(what, got, want, atol=1e-5, rtol=1e-4):
    if not abs(got - want) <= atol + rtol * abs(want):
        FAILS.append("%s: got %.9g want %.9g" % (what, got, want))
        return False
    return True


def check_golden(t5, g):
    n = 0
    for i, case in enumerate(g["cases"]):
        logits, posts = t5.forward(case["input_ids"])
        n += close("golden case %d score" % i, score(logits, g["true_id"], g["false_id"]),
                   case["score"])
        if i == 0:
            want = np.array(case["encoder_resid_post"], dtype=np.float64)
            got = torch.stack(posts).numpy()
            bad = np.abs(got - want) > 1e-5 + 1e-4 * np.abs(want)
            if got.shape != want.shape or bad.any():
                FAILS.append("golden case 0 encoder_resid_post: %d of %d differ" %
                             (int(bad.sum()), want.size))
            n += want.size
    return n


def reference_patch(t5, b, p, tid, fid):
    """TransformerLens-style exact patching: raw patched scores of every component."""
    cache = {}

    def keep(name, x):
        cache[name] = x.clone()
        return x

    base = score(t5.forward(b)[0], tid, fid)
    pert = score(t5.forward(p, keep)[0], tid, fid)

    def run(name, sel):
        def patch(n, x):
            if n != name:
                return x
            x = x.clone()
            x[sel] = cache[name][sel]
            return x
        return score(t5.forward(b, patch)[0], tid, fid)

    NH, T = t5.NH, len(b)
    heads = {
        "heads": [[run("encoder.%d.attn.hook_z" % l, (slice(None), h)) for h in range(NH)]
                  for l in range(t5.L)],
        "decoder_heads": [[run("decoder.%d.attn.hook_z" % l, (slice(None), h))
                           for h in range(NH)] for l in range(t5.LD)],
        "cross_heads": [[run("decoder.%d.cross_attn.hook_z" % l, (slice(None), h))
                         for h in range(NH)] for l in range(t5.LD)],
    }
    blocks = {k: [[run("encoder.%d.hook_%s" % (l, k), t) for t in range(T)]
                  for l in range(t5.L)] for k in ("resid_pre", "attn_out", "mlp_out")}
    return base, pert, heads, blocks


def compare_map(what, got_raw, got_eff, want_raw, base, pert, counts):
    """Raw patched scores, patched - baseline (tightly) and the effect, element-wise."""
    delta = pert - base
    gr, ge, wr = np.array(got_raw, float), np.array(got_eff, float), np.array(want_raw, float)
    if gr.shape != wr.shape or ge.shape != wr.shape:
        FAILS.append("%s: shape %s / %s, reference %s" % (what, gr.shape, ge.shape, wr.shape))
        return
    for idx in np.ndindex(wr.shape):
        w = wr[idx]
        name = "%s%s" % (what, list(idx))
        close(name + " score", gr[idx], w)
        # the C side is float32: scores near 1 carry ~1e-7 rounding, differences ~1e-6
        dd = (gr[idx] - counts["base_got"]) - (w - base)
        close(name + " patched-baseline", gr[idx] - counts["base_got"], w - base, 3e-6, 1e-3)
        counts["worst_diff"] = max(counts["worst_diff"], abs(dd))
        close(name + " effect", ge[idx], (w - base) / delta, 6e-6 / abs(delta), 1e-3)
        counts["n"] += 1
        counts["worst"] = max(counts["worst"], abs(gr[idx] - w))


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: t5_ref.py MECHIR MODEL_DIR TMPDIR")
    mechir, d, _tmp = sys.argv[1:]
    g = json.load(open(d + "/golden.json"))
    t5 = T5(d)
    tid, fid = g["true_id"], g["false_id"]
    n_golden = check_golden(t5, g)
    if FAILS or not n_golden:
        print("\n".join(FAILS[:20]) or "no golden value compared", file=sys.stderr)
        raise SystemExit("t5_ref.py: the reference does not match %s/golden.json" % d)
    print("reference matches golden.json: %d values" % n_golden)
    counts = {"n": 0, "worst": 0.0, "worst_diff": 0.0}
    # pairs: a golden case's ids with one document token replaced by another case's token
    pairs = []
    for ci, pos, src in ((0, 14, (1, 16)), (1, 12, (2, 13)), (2, 15, (0, 5))):
        b = list(g["cases"][ci]["input_ids"][:24])
        b[-1] = 1  # </s> kept last
        p = list(b)
        p[pos] = g["cases"][src[0]]["input_ids"][src[1]]
        if p[pos] == b[pos]:
            p[pos] = (b[pos] + 7) % 8000 + 2
        pairs.append((b, p))
    for k, (b, p) in enumerate(pairs):
        base, pert, heads, blocks = reference_patch(t5, b, p, tid, fid)
        cmd = [mechir, "patch", "--model", d, "--sweep", "heads,blocks", "--min-delta", "1e-9",
               "--ids-baseline", ",".join(map(str, b)), "--ids-perturbed", ",".join(map(str, p))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            FAILS.append("pair %d: mechir patch exit %d: %s" % (k, r.returncode, r.stderr))
            continue
        o = json.loads(r.stdout)
        print("  pair %d: %d tokens, perturbed - baseline %.4g" % (k, len(b), pert - base))
        if abs(pert - base) < 1e-3:
            FAILS.append("pair %d: perturbed - baseline %.3g, too small to test" % (k, pert - base))
        close("pair %d score_baseline" % k, o["score_baseline"], base)
        close("pair %d score_perturbed" % k, o["score_perturbed"], pert)
        counts["base_got"] = o["score_baseline"]
        for name, want in heads.items():
            compare_map("pair %d %s" % (k, name), o[name + "_scores"], o[name], want, base, pert,
                        counts)
        for name, want in blocks.items():
            compare_map("pair %d blocks.%s" % (k, name), o["blocks_scores"][name],
                        o["blocks"][name], want, base, pert, counts)
    if FAILS:
        print("\n".join(FAILS[:30]), file=sys.stderr)
        raise SystemExit("t5_ref.py: %d mismatches" % len(FAILS))
    if not counts["n"]:
        raise SystemExit("t5_ref.py: no patched value compared")
    print("mechir patch matches the reference: %d patched values (score, patched - baseline, "
          "effect each), max |score error| %.3g, max |(patched - baseline) error| %.3g" %
          (counts["n"], counts["worst"], counts["worst_diff"]))


if __name__ == "__main__":
    main()
