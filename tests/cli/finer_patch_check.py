"""`mechir patch --sweep qkv,pattern,resid-mid` (optimised and --naive) against the float64 torch
reference encoder_ref.py patching the same activation, one full forward per patch.

usage: finer_patch_check.py MECHIR REPO_ROOT

Sweeps (docs/PATCHING.md), each patched score = the baseline run with one activation replaced by
the perturbed run's:
  qkv[j][l][h]     blocks.l.attn.hook_{q,k,v}[:, h] (every position)
  pattern[l][h]    blocks.l.attn.hook_pattern[h] (the whole (T, T))
  resid_mid[l][t]  blocks.l.hook_resid_mid[t]
Every raw patched score (*_scores) is compared element-wise, |got - want| <= 1e-5 + 1e-4 |want|,
on the demo cross-encoder (two pairs of tests/data/patching/demo-tfc1.json), the bi-encoder
fixture (distilbert-dot-tfc1.json, document side, query_ids given) and each tiny cross-encoder
fixture (a golden.json case with one document token replaced). The effects are checked to follow
from the scores.

Attribution patching (--method atp, atp-qk) of the same sweeps against torch autograd on the
baseline run (g = d score / d activation, the total derivative): est = score_b + sum (a_p - a_b) g
over a head's (T, HS) of hook_q / hook_k / hook_v, a head's (T, T) of hook_pattern, a row of
hook_resid_mid; atp-qk's q and k through the head's pattern recomputed with the perturbed q (k)
and the baseline k (q): score_b + sum (A' - A_b) gA. Same tolerance.
A MonoT5 and head-pos with atp are refused with one line.
"""
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_ref import Encoder  # noqa: E402

MECHIR, ROOT = sys.argv[1], sys.argv[2]
DATA = os.path.join(ROOT, "tests", "data")
failures = []
counts = {"scores": 0}


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def ids(xs):
    return ",".join(str(x) for x in xs)


def patch(model, case, naive, method=None):
    args = [MECHIR, "patch", "--model", model, "--ids-baseline", ids(case["ids_baseline"]),
            "--ids-perturbed", ids(case["ids_perturbed"]), "--token-types",
            ids(case["token_types"]), "--sweep", "qkv,pattern,resid-mid", "--min-delta", "1e-9"]
    if "query_ids" in case:
        args += ["--query-ids", ids(case["query_ids"])]
    if naive:
        args.append("--naive")
    if method:
        args += ["--method", method]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        fail("%s: mechir patch exited %d: %s" % (model, p.returncode, p.stderr.strip()))
        return None
    return json.loads(p.stdout)


def reference(ref, case):
    """(score_b, score_p, {"qkv": (3, L, NH), "pattern": (L, NH), "resid_mid": (L, T)})."""
    qe = ref.embedding(case["query_ids"]) if ref.bi else None
    b, pt, types = case["ids_baseline"], case["ids_perturbed"], case["token_types"]
    sp, acts = ref.forward(pt, types, query_emb=qe)
    sb, _ = ref.forward(b, types, query_emb=qe)

    def patched(name, put):
        def fn(x):
            x = x.clone()
            put(x, acts[name].detach())
            return x
        return float(ref.forward(b, types, hooks={name: fn}, query_emb=qe)[0])

    L, NH, T = ref.L, ref.NH, len(b)
    qkv = [[[patched("blocks.%d.attn.hook_%s" % (l, j),
                     lambda x, a, h=h: x.__setitem__((slice(None), h), a[:, h]))
             for h in range(NH)] for l in range(L)] for j in "qkv"]
    pattern = [[patched("blocks.%d.attn.hook_pattern" % l,
                        lambda x, a, h=h: x.__setitem__(h, a[h])) for h in range(NH)]
               for l in range(L)]
    mid = [[patched("blocks.%d.hook_resid_mid" % l, lambda x, a, t=t: x.__setitem__(t, a[t]))
            for t in range(T)] for l in range(L)]
    return float(sb), float(sp), {"qkv": qkv, "pattern": pattern, "resid_mid": mid}


def atp_reference(ref, case, qk):
    """AtP estimates (score_b, score_p, maps as reference()) from autograd on the baseline."""
    qe = ref.embedding(case["query_ids"]) if ref.bi else None
    b, pt, types = case["ids_baseline"], case["ids_perturbed"], case["token_types"]
    sp, pa = ref.forward(pt, types, query_emb=qe)
    sb, ba = ref.forward(b, types, grad=True, query_emb=qe)
    sb.backward()
    sb = float(sb)
    L, NH, T, HS = ref.L, ref.NH, len(b), ref.HS

    def dot(name, sel):
        a, g = ba[name], ba[name].grad
        return sb + float(((pa[name].detach() - a.detach())[sel] * g[sel]).sum())

    def qkv_est(j, l, h):
        if not qk or j == "v":
            return dot("blocks.%d.attn.hook_%s" % (l, j), (slice(None), h))
        q = (pa if j == "q" else ba)["blocks.%d.attn.hook_q" % l].detach()[:, h]
        k = (pa if j == "k" else ba)["blocks.%d.attn.hook_k" % l].detach()[:, h]
        A = torch.softmax(q @ k.T / math.sqrt(HS), dim=-1)
        name = "blocks.%d.attn.hook_pattern" % l
        return sb + float(((A - ba[name].detach()[h]) * ba[name].grad[h]).sum())

    qkv = [[[qkv_est(j, l, h) for h in range(NH)] for l in range(L)] for j in "qkv"]
    pattern = [[dot("blocks.%d.attn.hook_pattern" % l, h) for h in range(NH)] for l in range(L)]
    mid = [[dot("blocks.%d.hook_resid_mid" % l, t) for t in range(T)] for l in range(L)]
    return sb, float(sp), {"qkv": qkv, "pattern": pattern, "resid_mid": mid}


def flat(x):
    return [v for row in x for v in (flat(row) if isinstance(row[0], list) else row)] \
        if isinstance(x[0], list) else list(x)


def close(got, want):
    return got is not None and abs(got - want) <= 1e-5 + 1e-4 * abs(want)


def compare(what, out, sb, sp, want):
    if not close(out["score_baseline"], sb) or not close(out["score_perturbed"], sp):
        fail("%s: scores %s %s, want %s %s" % (what, out["score_baseline"],
                                                out["score_perturbed"], sb, sp))
    got = {"qkv": [out["qkv_scores"][j] for j in "qkv"], "pattern": out["pattern_scores"],
           "resid_mid": out["resid_mid_scores"]}
    eff = {"qkv": [out["qkv"][j] for j in "qkv"], "pattern": out["pattern"],
           "resid_mid": out["resid_mid"]}
    worst = 0.0
    for key in ("qkv", "pattern", "resid_mid"):
        g, w, e = flat(got[key]), flat(want[key]), flat(eff[key])
        if len(g) != len(w) or not w:
            fail("%s %s: %d scores, want %d" % (what, key, len(g), len(w)))
            continue
        for i, (a, b) in enumerate(zip(g, w)):
            counts["scores"] += 1
            worst = max(worst, abs(a - b))
            if not close(a, b):
                fail("%s %s[%d]: got %.9g want %.9g" % (what, key, i, a, b))
            d = out["score_perturbed"] - out["score_baseline"]
            if abs(e[i] - (a - out["score_baseline"]) / d) > 1e-4 * (1 + abs(e[i])):
                fail("%s %s effect[%d] %.9g does not follow from its score" % (what, key, i, e[i]))
    print("ok: %s: %d qkv, %d pattern, %d resid_mid scores, max |diff| %.3g" % (
        what, len(flat(want["qkv"])), len(flat(want["pattern"])), len(flat(want["resid_mid"])),
        worst))


def tiny_case(model_dir):
    """A golden.json case with one document token (the one before the last [SEP]) replaced."""
    with open(os.path.join(model_dir, "golden.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    c = min((c for c in cases if len(c["input_ids"]) >= 12), key=lambda c: len(c["input_ids"]))
    b = list(c["input_ids"])
    p = list(b)
    p[-2] = p[-2] + 7 if p[-2] + 7 < 1000 or p[-2] > 2000 else 2023
    return {"ids_baseline": b, "ids_perturbed": p,
            "token_types": c.get("token_type_ids") or [0] * len(b)}


def refusals():
    t5 = os.path.join(DATA, "models", "monot5-tiny")
    demo = os.path.join(ROOT, "examples", "demo-ce")
    for model, extra, want in (
            (t5, ["--sweep", "qkv"], "the qkv sweep is not supported"),
            (t5, ["--sweep", "pattern"], "the pattern sweep is not supported"),
            (t5, ["--sweep", "resid-mid"], "the resid-mid sweep is not supported"),
            (demo, ["--sweep", "head-pos,qkv", "--heads", "0.0", "--method", "atp"],
             "does not estimate the head-pos sweep"),
            (demo, ["--sweep", "qkvv"], "unknown sweep 'qkvv'")):
        p = subprocess.run([MECHIR, "patch", "--model", model, "--query", "a b", "--baseline",
                            "c d", "--perturbed", "c e", *extra], capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        if p.returncode == 0 or p.stdout or len(lines) != 1 or want not in lines[0]:
            fail("patch %s %s: exit %d, stderr %r (want one line with %r)" % (
                os.path.basename(model), " ".join(extra), p.returncode, p.stderr, want))


def main():
    torch.set_num_threads(1)
    runs = []
    with open(os.path.join(DATA, "patching", "demo-tfc1.json"), encoding="utf-8") as f:
        demo = json.load(f)["cases"]
    runs += [("demo-ce", os.path.join(ROOT, "examples", "demo-ce"), c) for c in
             sorted(demo, key=lambda c: len(c["ids_baseline"]))[:2]]
    with open(os.path.join(DATA, "patching", "distilbert-dot-tfc1.json"), encoding="utf-8") as f:
        dot = json.load(f)["cases"]
    runs.append(("distilbert-dot-tiny", os.path.join(DATA, "models", "distilbert-dot-tiny"),
                 dot[1]))
    for m in ("bert-ce-tiny", "bert-ce-tiny-gelu-tanh", "electra-ce-tiny", "distilbert-ce-tiny",
              "roberta-ce-tiny"):
        d = os.path.join(DATA, "models", m)
        runs.append((m, d, tiny_case(d)))
    for k, (name, model, case) in enumerate(runs):
        ref = Encoder(model)
        sb, sp, want = reference(ref, case)
        for naive in ((0, 1) if k == 0 else (0,)):
            out = patch(model, case, naive)
            if out:
                compare("%s%s" % (name, " --naive" if naive else ""), out, sb, sp, want)
        for method in ("atp", "atp-qk"):
            sb, sp, want = atp_reference(ref, case, method == "atp-qk")
            out = patch(model, case, 0, method)
            if out:
                compare("%s --method %s" % (name, method), out, sb, sp, want)
    refusals()
    ok = not failures and counts["scores"] > 0
    print("%s: %d patched scores against the torch reference, %d failures" % (
        "ok" if ok else "FAIL", counts["scores"], len(failures)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
