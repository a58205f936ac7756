"""Writes tests/data/hooks/MODEL.json: the finer TransformerLens hooks of a batch of two short
sequences (attn.hook_attn_scores, attn.hook_result, mlp.hook_pre, mlp.hook_post, hook_resid_mid,
hook_resid_post at every layer) and the scores of sequence 0 with one hook overwritten, from the
float64 torch reference tests/cli/encoder_ref.py (independent of mechir's code).

usage: /usr/bin/python3 tests/ref/hooks_golden.py MODEL_DIR OUT.json [--scores-only]
(--scores-only: the overwrites without the hooks' values, for a model too large to store them)

Overwrites ("op" on the hook's tensor of sequence 0, shapes as docs/HOOKS.md):
  scale        every value times factor
  scale_head   head `head` times factor: result[:, head, :] (so attn_out changes by that head's
               part) or attn_scores[head] (so the pattern changes)
  ramp         x[..., c] += factor * c / (size of the last axis): not undone by a LayerNorm, as
               a scale or a shift of a residual row would be
Tolerance of the C test: |got - want| <= 1e-5 + 1e-4 |want|, element-wise.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
import torch  # noqa: E402
from encoder_ref import Encoder  # noqa: E402

SEQS = [([101, 2054, 2003, 1996, 3007, 102, 3000, 2003, 1996, 3007, 102], 6),
        ([101, 7570, 102, 2009, 2003, 3435, 102], 3)]
HOOKS = ["attn.hook_attn_scores", "attn.hook_result", "mlp.hook_pre", "mlp.hook_post",
         "hook_resid_mid", "hook_resid_post"]


def flat(t):
    return [float("%.9g" % v) for v in t.detach().reshape(-1).tolist()]


def main(model_dir, out, values=True):
    e = Encoder(model_dir)
    cases = []
    for ids, n0 in SEQS:
        types = [0] * n0 + [1] * (len(ids) - n0)
        score, acts = e.forward(ids, types)
        case = {"input_ids": ids, "token_type_ids": types, "score": float(score)}
        if values:
            case["hooks"] = {"blocks.%d.%s" % (l, h): flat(acts["blocks.%d.%s" % (l, h)])
                             for l in range(e.L) for h in HOOKS}
        cases.append(case)
    ids, types = cases[0]["input_ids"], cases[0]["token_type_ids"]
    overwrites = []
    plan = [("blocks.0.attn.hook_result", "scale_head", 1, 0.0),
            ("blocks.1.attn.hook_result", "scale_head", 2, 3.0),
            ("blocks.0.attn.hook_attn_scores", "scale_head", 3, 0.25),
            ("blocks.1.attn.hook_attn_scores", "scale", None, 2.0),
            ("blocks.0.mlp.hook_pre", "scale", None, 0.5),
            ("blocks.1.mlp.hook_post", "scale", None, -1.0),
            ("blocks.0.hook_resid_mid", "ramp", None, 1.5),
            ("blocks.1.hook_resid_post", "ramp", None, -2.0)]
    for name, op, head, factor in plan:
        def fn(x, op=op, head=head, factor=factor):
            x = x.clone()
            if op == "scale":
                return x * factor
            if op == "ramp":
                n = x.shape[-1]
                return x + factor * torch.arange(n, dtype=x.dtype) / n
            if name.endswith("hook_result"):
                x[:, head, :] *= factor
            else:
                x[head] *= factor
            return x
        score, _ = e.forward(ids, types, hooks={name: fn})
        o = {"hook": name, "op": op, "factor": factor, "score": float(score)}
        if head is not None:
            o["head"] = head
        overwrites.append(o)
    doc = {"model": os.path.basename(os.path.normpath(model_dir)),
           "made_by": "tests/ref/hooks_golden.py (float64 torch, tests/cli/encoder_ref.py)",
           "layout": "hooks[name]: one sequence's tensor flattened in C order, shapes of "
                     "docs/HOOKS.md: attn_scores (NH, T, T), result (T, NH, C), mlp (T, FF), "
                     "resid (T, C)",
           "tolerance": "|got - want| <= 1e-5 + 1e-4 |want|",
           "cases": cases, "overwrites": overwrites}
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[3:] not in ([], ["--scores-only"]):
        sys.stderr.write(__doc__)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2], values=len(sys.argv) == 3)
