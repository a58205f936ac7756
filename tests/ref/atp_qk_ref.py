#!/usr/bin/python3
"""AtP* QK-fix head estimates of the demo cross-encoder, in float64 with torch autograd.

Reads examples/demo-ce (config.json, model.safetensors parsed here with numpy) and the pairs of
tests/data/patching/atp/demo-atp.json, runs BertForSequenceClassification's forward written out
below in float64, and writes tests/data/patching/atp/demo-atp-qk.json:

  head (l, h): estimate = score_b + sum_{i,j} (A_p - A_b)[h,i,j] gA[h,i,j]
                                  + sum_{t,d} (v_p - v_b)[t,h,d] gv[t,h,d]

A = blocks.l.attn.hook_pattern (post-softmax), v = blocks.l.attn.hook_v, gA and gv the total
derivatives of the baseline score there (a zero tensor added at each hook, autograd w.r.t. it).
Checks on the way (the script stops on a failure): the scores reproduce demo-atp.json's to 1e-9,
the plain hook_z estimates reproduce its heads_scores to 1e-9, and per head the QK estimate
equals the hook_z one less gz . (dA dv) to 1e-12 (docs/ATP.md).

Run: /usr/bin/python3 tests/ref/atp_qk_ref.py  (numpy and torch, e.g. Debian's python3-torch)
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "examples", "demo-ce")
ATP = os.path.join(ROOT, "tests", "data", "patching", "atp")

DTYPES = {"F16": np.float16, "BF16": None, "F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    """name -> float64 torch tensor; the format: u64 LE header length, JSON header, data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = memoryview(blob)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = info["dtype"]
        if dt == "BF16":
            raw = np.frombuffer(data[b:e], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[b:e], dtype=DTYPES[dt])
        out[name] = torch.from_numpy(arr.astype(np.float64).reshape(info["shape"]))
    return out


class Bert:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu"
        self.L = cfg["num_hidden_layers"]
        self.NH = cfg["num_attention_heads"]
        self.C = cfg["hidden_size"]
        self.HS = self.C // self.NH
        self.eps = cfg["layer_norm_eps"]
        w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.w = {k[5:] if k.startswith("bert.") else k: v for k, v in w.items()}

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(
            x, (self.C,), self.w[name + ".weight"], self.w[name + ".bias"], self.eps
        )

    def lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def forward(self, ids, types, hooks=None):
        """The logit; hooks: dict (site, l) -> zero tensor added to that activation (for
        autograd); the activations (pattern (NH,T,T), v (T,NH,HS), z (T,NH,HS)) are returned."""
        hooks = hooks or {}
        T = len(ids)
        ids_t = torch.tensor(ids)
        x = (
            self.w["embeddings.word_embeddings.weight"][ids_t]
            + self.w["embeddings.position_embeddings.weight"][:T]
            + self.w["embeddings.token_type_embeddings.weight"][torch.tensor(types)]
        )
        x = self.ln(x, "embeddings.LayerNorm")
        acts = {}
        for l in range(self.L):
            p = "encoder.layer.%d." % l
            q = self.lin(x, p + "attention.self.query").view(T, self.NH, self.HS)
            k = self.lin(x, p + "attention.self.key").view(T, self.NH, self.HS)
            v = self.lin(x, p + "attention.self.value").view(T, self.NH, self.HS)
            if ("v", l) in hooks:
                v = v + hooks[("v", l)]
            s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(self.HS)
            A = torch.softmax(s, dim=-1)
            if ("pattern", l) in hooks:
                A = A + hooks[("pattern", l)]
            z = torch.einsum("hij,jhd->ihd", A, v)
            if ("z", l) in hooks:
                z = z + hooks[("z", l)]
            acts[("pattern", l)], acts[("v", l)], acts[("z", l)] = A, v, z
            attn_out = self.lin(z.reshape(T, self.C), p + "attention.output.dense")
            h1 = self.ln(x + attn_out, p + "attention.output.LayerNorm")
            u = self.lin(h1, p + "intermediate.dense")
            act = 0.5 * u * (1 + torch.erf(u / math.sqrt(2.0)))
            mlp_out = self.lin(act, p + "output.dense")
            x = self.ln(h1 + mlp_out, p + "output.LayerNorm")
        pooled = torch.tanh(self.lin(x[0], "pooler.dense"))
        logit = pooled @ self.w["classifier.weight"][0] + self.w["classifier.bias"][0]
        return logit, acts


def sig12(x):
    return float("%.12g" % x)


def main():
    model = Bert(MODEL)
    with open(os.path.join(ATP, "demo-atp.json")) as f:
        golden = json.load(f)
    cases = []
    worst_score = worst_z = worst_identity = 0.0
    for c in golden["cases"]:
        ids_b, ids_p, types = c["ids_baseline"], c["ids_perturbed"], c["token_types"]
        T = len(ids_b)
        with torch.no_grad():
            sp, acts_p = model.forward(ids_p, types)
        zeros = {}
        for l in range(model.L):
            zeros[("pattern", l)] = torch.zeros(model.NH, T, T, dtype=torch.float64)
            zeros[("v", l)] = torch.zeros(T, model.NH, model.HS, dtype=torch.float64)
            zeros[("z", l)] = torch.zeros(T, model.NH, model.HS, dtype=torch.float64)
        for t in zeros.values():
            t.requires_grad_(True)
        sb, acts_b = model.forward(ids_b, types, zeros)
        sb.backward()
        sb, sp = sb.item(), sp.item()
        worst_score = max(worst_score, abs(sb - c["score_baseline"]), abs(sp - c["score_perturbed"]))
        heads_scores = []
        for l in range(model.L):
            gA, gv, gz = (zeros[(s, l)].grad for s in ("pattern", "v", "z"))
            Ab, vb, zb = (acts_b[(s, l)].detach() for s in ("pattern", "v", "z"))
            Ap, vp, zp = (acts_p[(s, l)] for s in ("pattern", "v", "z"))
            dA, dv = Ap - Ab, vp - vb
            row = []
            for h in range(model.NH):
                qk = (dA[h] * gA[h]).sum().item() + (dv[:, h] * gv[:, h]).sum().item()
                lin = ((zp[:, h] - zb[:, h]) * gz[:, h]).sum().item()
                second = (gz[:, h] * (dA[h] @ dv[:, h])).sum().item()
                worst_z = max(worst_z, abs(sb + lin - c["heads_scores"][l][h]))
                worst_identity = max(worst_identity, abs(qk - (lin - second)))
                row.append(sig12(sb + qk))
            heads_scores.append(row)
        cases.append(
            {
                "ids_baseline": ids_b,
                "ids_perturbed": ids_p,
                "token_types": types,
                "score_baseline": sig12(sb),
                "score_perturbed": sig12(sp),
                "heads_scores": heads_scores,
            }
        )
    print(
        "scores vs demo-atp.json: %.3g; hook_z estimates vs demo-atp.json: %.3g; "
        "identity qk = z - gz.(dA dv): %.3g" % (worst_score, worst_z, worst_identity)
    )
    if worst_score > 1e-9 or worst_z > 1e-9 or worst_identity > 1e-12:
        sys.exit("atp_qk_ref: a check failed")
    out = {
        "model": "demo-ce",
        "method": "AtP* QK fix (attribution patching with the attention pattern recomputed)",
        "definition": "head (l, h): estimate = score_baseline + sum_{i,j} (A_p - A_b)[h,i,j] "
        "gA[h,i,j] + sum_{t,d} (v_p - v_b)[t,h,d] gv[t,h,d]; A = blocks.l.attn.hook_pattern "
        "(post-softmax), v = blocks.l.attn.hook_v, gA and gv the total derivatives of the "
        "baseline score at those hooks on the baseline run",
        "layout": "heads_scores[l][h]; ids and scores as demo-atp.json",
        "tolerance": "estimated scores: |got - want| <= 1e-5 + 1e-4 * |want|",
        "reference_precision": "float64",
        "made_by": "tests/ref/atp_qk_ref.py",
        "cases": cases,
    }
    with open(os.path.join(ATP, "demo-atp-qk.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %d cases" % len(cases))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
