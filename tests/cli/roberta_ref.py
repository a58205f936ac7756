"""An independent float64 torch reference of a RoBERTa / XLM-R sequence-classification
cross-encoder (the semantics of Hugging Face's modeling_roberta), and activation patching on it
the way MechIR / TransformerLens do it: one full forward per patch.

Written from the model's definition, not from mechir's code:
  - embeddings: word + position + token type (type 0 only), LayerNorm; position ids are
    padding_idx + 1 + (index among the non-pad tokens so far) and padding_idx for a pad token
    (padding_idx = pad_token_id of config.json), wherever the pad sits in the sequence;
  - post-LN BERT layers: attention (softmax(q k^T / sqrt(HS)), every position attended),
    attn_out = z W_O^T + b_O, LayerNorm(resid_pre + attn_out), MLP with erf GELU, LayerNorm;
  - head: dense + tanh + out_proj on the <s> row; score = logit 0 (one label) or logit 1.
The weights are read from model.safetensors by parsing its header here (json + numpy).

Patching (docs/PATCHING.md): the perturbed run is cached, the baseline run is repeated with one
activation replaced by the cached one:
  heads[l][h]        blocks.l.attn.hook_z[:, h] (every position)
  blocks.S[l][t]     blocks.l.hook_S row t, S in resid_pre, attn_out, mlp_out
effect = (patched - baseline) / (perturbed - baseline).

Used as a module by roberta_check.py; `roberta_ref.py golden MODEL_DIR` checks the reference
against the model's golden.json and exits 1 on any mismatch.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_ref import read_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)

SITES = ("resid_pre", "attn_out", "mlp_out")


class Roberta:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        self.cfg = cfg
        self.L = cfg["num_hidden_layers"]
        self.NH = cfg["num_attention_heads"]
        self.C = cfg["hidden_size"]
        self.HS = self.C // self.NH
        self.eps = cfg["layer_norm_eps"]
        self.pad = cfg["pad_token_id"]
        self.labels = len(cfg.get("id2label", {"0": 0}))
        w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        pre = "roberta." if "roberta.embeddings.word_embeddings.weight" in w else ""
        self.w = w
        self.pre = pre

    def p(self, name):
        return self.w[self.pre + name]

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (self.C,), self.p(name + ".weight"),
                                              self.p(name + ".bias"), self.eps)

    def lin(self, x, name, prefix=True):
        w = self.p(name + ".weight") if prefix else self.w[name + ".weight"]
        b = self.p(name + ".bias") if prefix else self.w[name + ".bias"]
        return x @ w.T + b

    def positions(self, ids):
        keep = [0 if i == self.pad else 1 for i in ids]
        out, n = [], 0
        for k in keep:
            n += k
            out.append(self.pad + n if k else self.pad)
        return out

    def forward(self, ids, patch=None, cache=None, want_resid=None):
        """Score of one sequence. patch = (site, layer, index, value): site "z" replaces
        z[:, index] (index = head) with value (T, HS); a block site replaces row index of that
        hook with value (C,). cache: a dict filled with every hook this patching needs.
        want_resid: a list filled with each layer's normalized_resid_post."""
        T = len(ids)
        ids_t = torch.tensor(ids)
        pos = torch.tensor(self.positions(ids))
        x = (self.p("embeddings.word_embeddings.weight")[ids_t]
             + self.p("embeddings.position_embeddings.weight")[pos]
             + self.p("embeddings.token_type_embeddings.weight")[torch.zeros(T, dtype=torch.long)])
        x = self.ln(x, "embeddings.LayerNorm")

        def hook(site, layer, act):
            if cache is not None:
                cache[(site, layer)] = act.clone()
            if patch is not None and patch[0] == site and patch[1] == layer:
                act = act.clone()
                if site == "z":
                    act[:, patch[2], :] = patch[3]
                else:
                    act[patch[2]] = patch[3]
            return act

        for l in range(self.L):
            a = "encoder.layer.%d." % l
            x = hook("resid_pre", l, x)
            q = self.lin(x, a + "attention.self.query").view(T, self.NH, self.HS).transpose(0, 1)
            k = self.lin(x, a + "attention.self.key").view(T, self.NH, self.HS).transpose(0, 1)
            v = self.lin(x, a + "attention.self.value").view(T, self.NH, self.HS).transpose(0, 1)
            pattern = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.HS), dim=-1)
            z = (pattern @ v).transpose(0, 1)  # (T, NH, HS)
            z = hook("z", l, z)
            attn_out = self.lin(z.reshape(T, self.C), a + "attention.output.dense")
            attn_out = hook("attn_out", l, attn_out)
            mid = self.ln(x + attn_out, a + "attention.output.LayerNorm")
            h = self.lin(mid, a + "intermediate.dense")
            h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
            mlp_out = self.lin(h, a + "output.dense")
            mlp_out = hook("mlp_out", l, mlp_out)
            x = self.ln(mid + mlp_out, a + "output.LayerNorm")
            if want_resid is not None:
                want_resid.append(x)
        cls = x[0]
        y = torch.tanh(self.lin(cls, "classifier.dense", prefix=False))
        logits = self.lin(y, "classifier.out_proj", prefix=False)
        return float(logits[0] if self.labels == 1 else logits[1])

    def patch(self, ids_b, ids_p, blocks=True):
        """MechIR-style patching of a pair: (score_b, score_p, heads_scores (L, NH),
        blocks_scores {site: (L, T)}, or (L, 0) without blocks), raw patched scores, one forward
        per patch."""
        assert len(ids_b) == len(ids_p)
        T = len(ids_b)
        cache = {}
        sp = self.forward(ids_p, cache=cache)
        sb = self.forward(ids_b)
        heads = [[self.forward(ids_b, patch=("z", l, h, cache[("z", l)][:, h, :]))
                  for h in range(self.NH)] for l in range(self.L)]
        maps = {s: [[self.forward(ids_b, patch=(s, l, t, cache[(s, l)][t]))
                     for t in range(T if blocks else 0)] for l in range(self.L)] for s in SITES}
        return sb, sp, heads, maps


def effect(patched, sb, sp):
    return (patched - sb) / (sp - sb)


def golden(model_dir):
    """The reference against golden.json: every case's score and logits, and case 0's
    normalized_resid_post, element-wise, |got - want| <= 1e-5 + 1e-4 |want|."""
    with open(os.path.join(model_dir, "golden.json"), encoding="utf-8") as f:
        g = json.load(f)
    assert "1e-5 + 1e-4" in g["tolerance"], g["tolerance"]
    m = Roberta(model_dir)
    bad, n, worst = 0, 0, 0.0
    for i, c in enumerate(g["cases"]):
        assert set(c["token_type_ids"]) == {0}
        resid = []
        got = m.forward(c["input_ids"], want_resid=resid)
        pairs = [("score", got, c["score"])]
        if i == 0 and "normalized_resid_post" in c:
            for l, want_l in enumerate(c["normalized_resid_post"]):
                flat = [v for row in want_l for v in row]
                got_l = resid[l].reshape(-1).tolist()
                assert len(flat) == len(got_l)
                pairs += [("resid_post[%d]" % l, a, b) for a, b in zip(got_l, flat)]
        for what, a, b in pairs:
            n += 1
            worst = max(worst, abs(a - b))
            if not abs(a - b) <= 1e-5 + 1e-4 * abs(b):
                bad += 1
                if bad <= 5:
                    print("FAIL: reference %s case %d %s: got %.9g want %.9g" % (
                        os.path.basename(model_dir), i, what, a, b))
    ok = bad == 0 and n > 0
    print("%s: reference vs golden.json %s: %d values (%d cases), max |diff| %.3g" % (
        "ok" if ok else "FAIL", os.path.basename(os.path.normpath(model_dir)), n,
        len(g["cases"]), worst))
    return ok


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "golden":
        sys.exit(0 if all([golden(d) for d in sys.argv[2:]]) else 1)
    sys.stderr.write(__doc__)
    sys.exit(2)
