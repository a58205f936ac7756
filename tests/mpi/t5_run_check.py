"""A `mechir run` over a MonoT5 recomputed by the float64 torch reference tests/cli/t5_ref.py
(which must first match golden.json): for every pair of pairs.jsonl both scores and every
patched score and effect (heads, decoder_heads, cross_heads, blocks; t5_ref.compare_map's
tolerances); circuit.json's per-head sums of (patched - baseline) and (perturbed - baseline) and
counts against the reference's over the same pairs; and cached activations of both runs
(`mechir cache get`) against the reference's hook values.
usage: t5_run_check.py REPO_ROOT MODEL_DIR RUN_DIR MECHIR"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

root, model, run_dir, mechir = sys.argv[1:5]
sys.path.insert(0, os.path.join(root, "tests", "cli"))
import t5_ref  # noqa: E402

g = json.load(open(os.path.join(model, "golden.json")))
t5 = t5_ref.T5(model)
tid, fid = g["true_id"], g["false_id"]
if not t5_ref.check_golden(t5, g) or t5_ref.FAILS:
    sys.exit("the reference does not match golden.json: %s" % t5_ref.FAILS[:5])

with open(os.path.join(run_dir, "pairs.jsonl"), encoding="utf-8") as f:
    pairs = [json.loads(x) for x in f if x.strip()]
counts = {"n": 0, "worst": 0.0, "worst_diff": 0.0}
L, LD, NH = t5.L, t5.LD, t5.NH
sum_patched = np.zeros((L + 2 * LD, NH))
sum_delta = np.zeros((L + 2 * LD, NH))
used = 0
for k, p in enumerate(pairs):
    what = "pair %d (%s/%s)" % (k, p["qid"], p["docno"])
    if "skipped" in p or "error" in p:
        t5_ref.FAILS.append("%s: not patched: %s" % (what, p.get("skipped", p.get("error"))))
        continue
    b, q = p["baseline_ids"], p["perturbed_ids"]
    base, pert, heads, blocks = t5_ref.reference_patch(t5, b, q, tid, fid)
    t5_ref.close(what + " score_baseline", p["score_baseline"], base)
    t5_ref.close(what + " score_perturbed", p["score_perturbed"], pert)
    counts["base_got"] = p["score_baseline"]
    for name, want in heads.items():
        t5_ref.compare_map("%s %s" % (what, name), p[name + "_scores"], p[name], want, base, pert,
                           counts)
    for name, want in blocks.items():
        t5_ref.compare_map("%s blocks.%s" % (what, name), p["blocks_scores"][name],
                           p["blocks"][name], want, base, pert, counts)
    rows = np.array(heads["heads"] + heads["decoder_heads"] + heads["cross_heads"], float)
    sum_patched += rows - base
    sum_delta += pert - base
    used += 1

# The map: the heads rows are the encoder's, the decoder's and the cross-attention's, in order.
cj = json.load(open(os.path.join(run_dir, "circuit.json")))
h = cj["heads"]
n_map = 0
for key, want in (("sum_patched_minus_baseline", sum_patched),
                  ("sum_perturbed_minus_baseline", sum_delta)):
    got = np.array(h[key], float)
    if got.shape != want.shape:
        t5_ref.FAILS.append("circuit.json heads.%s: shape %s, want %s" % (key, got.shape, want.shape))
        continue
    for idx in np.ndindex(want.shape):
        t5_ref.close("circuit.json heads.%s%s" % (key, list(idx)), got[idx], want[idx],
                     1e-5 * max(used, 1), 1e-3)
        n_map += 1
if np.array(h["n"]).tolist() != [[used] * NH] * (L + 2 * LD):
    t5_ref.FAILS.append("circuit.json heads.n is %s, want %d everywhere" % (h["n"], used))

# The cache: both runs of the first two pairs, at every cached hook, against the reference.
n_cache = 0
hooks = ["encoder.%d.hook_resid_pre" % l for l in range(L)] + ["encoder.1.attn.hook_z"] + \
    ["decoder.%d.cross_attn.hook_z" % l for l in range(LD)]
with tempfile.TemporaryDirectory() as tmp:
    for p in pairs[:2]:
        for run, ids in (("baseline", p["baseline_ids"]), ("perturbed", p["perturbed_ids"])):
            seen = {}

            def keep(name, x):
                seen[name] = x.detach().numpy().copy()
                return x
            logits, _ = t5.forward(ids, keep)
            seen["logits"] = logits.detach().numpy()[None, :]
            for hook in hooks + ["logits"]:
                out = os.path.join(tmp, "a.npy")
                r = subprocess.run([mechir, "cache", "get", run_dir, "--pair", p["pair_id"],
                                    "--hook", hook, "--run", run, "-o", out],
                                   capture_output=True, text=True)
                if r.returncode:
                    t5_ref.FAILS.append("cache get %s %s %s: %s" % (p["pair_id"], hook, run,
                                                                     r.stderr.strip()))
                    continue
                got, want = np.load(out).astype(np.float64), seen[hook]
                if got.shape != want.shape:
                    t5_ref.FAILS.append("cache %s %s: shape %s, reference %s" %
                                        (hook, run, got.shape, want.shape))
                    continue
                bad = np.abs(got - want) > 1e-5 + 1e-4 * np.abs(want)
                if bad.any():
                    t5_ref.FAILS.append("cache %s %s: %d of %d values differ (max %.3g)" %
                                        (hook, run, int(bad.sum()), want.size,
                                         float(np.abs(got - want).max())))
                n_cache += want.size

if t5_ref.FAILS:
    print("\n".join(t5_ref.FAILS[:30]), file=sys.stderr)
    sys.exit("t5_run_check.py: %d mismatches" % len(t5_ref.FAILS))
if not used or not counts["n"] or not n_map or not n_cache:
    sys.exit("t5_run_check.py: nothing compared (%d pairs, %d patched values, %d map values, "
             "%d cached values)" % (used, counts["n"], n_map, n_cache))
print("%d pairs: %d patched values (max |score error| %.3g), %d map sums, %d cached values "
      "equal the reference" % (used, counts["n"], counts["worst"], n_map, n_cache))
