"""`mechir run --sweep qkv,pattern,resid-mid` end to end: pairs.jsonl against the float64 torch
reference, circuit.json against the pairs, a merge of two shards against the whole run, the report's
components, and the refusals of --method atp.

usage: finer_run_check.py MECHIR REPO_ROOT TMPDIR

- pairs.jsonl: every qkv_scores, pattern_scores and resid_mid_scores entry of every pair against
  encoder_ref.py patching the same activation (one forward per patch), 1e-5 + 1e-4 |want|;
  effects follow from the scores.
- circuit.json: qkv (3, L, NH) and pattern (L, NH) ratio of means = sum(patched - baseline) /
  sum(perturbed - baseline) and mean of ratios over the used pairs; resid_mid_by_role (L, R) the
  same over each pair's per-role mean (ratio of means to 1e-7 + 1e-6 |want|: pairs.jsonl prints
  float32 scores to 9 digits; mean of ratios to 1e-9 + 1e-7 |want|).
- merge: the maps of the input's two halves merge to the whole run's qkv, pattern and
  resid_mid_by_role numbers.
- report: components.csv lists every qkv, pattern and resid_mid cell with pairs, with the ratio
  of means of circuit.json; heads.svg and blocks.svg have their panels.
- --method atp-qk with these sweeps: pairs.jsonl's estimates against torch autograd
  (finer_patch_check.atp_reference); --method atp with head-pos: exit 1, one line, no output
  directory.
"""
import csv
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_ref import Encoder  # noqa: E402
from finer_patch_check import atp_reference, reference  # noqa: E402

MECHIR, ROOT, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
DEMO = os.path.join(ROOT, "examples", "demo-ce")
SWEEP = "qkv,pattern,resid-mid"
failures = []
counts = {"pairs": 0, "cells": 0}


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def mechir(*args):
    return subprocess.run([MECHIR, *args], capture_output=True, text=True)


def close(got, want, atol=1e-5, rtol=1e-4):
    return got is not None and abs(got - want) <= atol + rtol * abs(want)


def run(tsv, out, *extra):
    p = mechir("run", "--model", DEMO, "--input", tsv, "--max-len", "40", "--out", out,
               "--sweep", SWEEP, "--pairs-format", "jsonl", "--bootstrap", "0", *extra)
    if p.returncode != 0:
        fail("run %s: exit %d: %s" % (tsv, p.returncode, p.stderr.strip()))
    return p.returncode == 0


def pairs_of(out):
    with open(os.path.join(out, "pairs.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_pairs(pairs, atp_qk=False):
    ref = Encoder(DEMO)
    for pr in pairs:
        if "qkv_scores" not in pr:
            continue
        roles = pr["roles"]
        first = roles.index("sep")
        case = {"ids_baseline": pr["baseline_ids"], "ids_perturbed": pr["perturbed_ids"],
                "token_types": [0 if t <= first else 1 for t in range(len(roles))]}
        sb, sp, want = atp_reference(ref, case, True) if atp_qk else reference(ref, case)
        got = {"qkv": [pr["qkv_scores"][j] for j in "qkv"], "pattern": pr["pattern_scores"],
               "resid_mid": pr["resid_mid_scores"]}
        eff = {"qkv": [pr["qkv"][j] for j in "qkv"], "pattern": pr["pattern"],
               "resid_mid": pr["resid_mid"]}
        if not close(pr["score_baseline"], sb) or not close(pr["score_perturbed"], sp):
            fail("pair %s: scores %s %s, want %s %s" % (pr["pair_id"], pr["score_baseline"],
                                                        pr["score_perturbed"], sb, sp))
        d = pr["score_perturbed"] - pr["score_baseline"]
        for key in got:
            g, w, e = flatten(got[key]), flatten(want[key]), flatten(eff[key])
            if len(g) != len(w):
                fail("pair %s %s: %d scores, want %d" % (pr["pair_id"], key, len(g), len(w)))
                continue
            for i in range(len(g)):
                counts["cells"] += 1
                if not close(g[i], w[i]):
                    fail("pair %s %s[%d]: got %.9g want %.9g" % (pr["pair_id"], key, i, g[i],
                                                                w[i]))
                if abs(e[i] - (g[i] - pr["score_baseline"]) / d) > 1e-4 * (1 + abs(e[i])):
                    fail("pair %s %s effect[%d] does not follow" % (pr["pair_id"], key, i))
        counts["pairs"] += 1


def flatten(x):
    out = []
    for v in x:
        out.extend(flatten(v) if isinstance(v, list) else [v])
    return out


def expected_map(pairs, roles_names):
    """{"qkv": (rom, mor) flat lists, "pattern": ..., "resid_mid_by_role": ...} over used pairs."""
    used = [p for p in pairs if "qkv_scores" in p]
    den = sum(p["score_perturbed"] - p["score_baseline"] for p in used)
    out = {}
    for key in ("qkv", "pattern"):
        sc = [flatten([p[key + "_scores"][j] for j in "qkv"] if key == "qkv"
                      else p[key + "_scores"]) for p in used]
        ef = [flatten([p[key][j] for j in "qkv"] if key == "qkv" else p[key]) for p in used]
        n = len(sc[0])
        out[key] = ([sum(s[i] - p["score_baseline"] for s, p in zip(sc, used)) / den
                     for i in range(n)],
                    [sum(e[i] for e in ef) / len(ef) for i in range(n)])
    R = len(roles_names)
    L = len(used[0]["resid_mid"])
    rom, mor = [], []
    for l in range(L):
        for r, name in enumerate(roles_names):
            num, effs, dens = 0.0, [], 0.0
            for p in used:
                ts = [t for t, role in enumerate(p["roles"]) if role == name]
                if not ts:
                    continue
                ms = sum(p["resid_mid_scores"][l][t] for t in ts) / len(ts)
                me = sum(p["resid_mid"][l][t] for t in ts) / len(ts)
                num += ms - p["score_baseline"]
                dens += p["score_perturbed"] - p["score_baseline"]
                effs.append(me)
            rom.append(num / dens if effs else None)
            mor.append(sum(effs) / len(effs) if effs else None)
    out["resid_mid_by_role"] = (rom, mor)
    return out


def map_values(cj, key):
    return flatten(cj[key]["ratio_of_means"]), flatten(cj[key]["mean"])


def check_map(name, cj, want):
    for key, (rom, mor) in want.items():
        if key not in cj:
            fail("%s: circuit.json has no %s" % (name, key))
            continue
        grom, gmor = map_values(cj, key)
        if len(grom) != len(rom):
            fail("%s %s: %d cells, want %d" % (name, key, len(grom), len(rom)))
            continue
        for i, (g, w) in enumerate(zip(grom, rom)):
            if w is None:
                if g is not None:
                    fail("%s %s[%d]: %s for a cell without pairs" % (name, key, i, g))
                continue
            # pairs.jsonl prints a float32 score to 9 digits (5e-9 of a score near 2 away
            # from the float the map sums): 1e-7 on the ratio of means of a few pairs
            if g is None or not close(g, w, 1e-7, 1e-6) or not close(gmor[i], mor[i], 1e-9, 1e-7):
                fail("%s %s[%d]: rom %s mor %s, want %s %s" % (name, key, i, g, gmor[i], w,
                                                              mor[i]))


def check_report(out, cj):
    rep = os.path.join(TMP, "report")
    p = mechir("report", os.path.join(out, "circuit.cmap"), "-o", rep)
    if p.returncode != 0:
        fail("report: %s" % p.stderr.strip())
        return
    with open(os.path.join(rep, "components.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rom_q = flatten(cj["qkv"]["ratio_of_means"])
    L, NH = len(cj["pattern"]["ratio_of_means"]), len(cj["pattern"]["ratio_of_means"][0])
    seen = {"qkv": 0, "pattern": 0, "resid_mid": 0}
    for r in rows:
        if r["kind"] == "qkv":
            j = ["attn.hook_q", "attn.hook_k", "attn.hook_v"].index(r["component"])
            want = rom_q[(j * L + int(r["layer"])) * NH + int(r["head"])]
            seen["qkv"] += 1
        elif r["kind"] == "pattern":
            want = cj["pattern"]["ratio_of_means"][int(r["layer"])][int(r["head"])]
            seen["pattern"] += 1
        elif r["component"] == "resid_mid":
            roles = cj["resid_mid_by_role"]["roles"]
            want = cj["resid_mid_by_role"]["ratio_of_means"][int(r["layer"])][
                roles.index(r["role"])]
            seen["resid_mid"] += 1
        else:
            continue
        if not close(float(r["ratio_of_means"]), want, 1e-12, 1e-9):
            fail("components.csv %s: %s, circuit.json %s" % (r, r["ratio_of_means"], want))
    want_n = {"qkv": 3 * L * NH, "pattern": L * NH,
              "resid_mid": sum(v is not None for v in flatten(
                  cj["resid_mid_by_role"]["ratio_of_means"]))}
    if seen != want_n:
        fail("components.csv: %s rows, want %s" % (seen, want_n))
    heads = open(os.path.join(rep, "heads.svg"), encoding="utf-8").read()
    blocks = open(os.path.join(rep, "blocks.svg"), encoding="utf-8").read()
    for svg, text in ((heads, "blocks.L.attn.hook_q"), (heads, "blocks.L.attn.hook_pattern"),
                      (blocks, "blocks.L.hook_resid_mid")):
        if text not in svg:
            fail("report: no panel %s" % text)


def check_refusal(tsv):
    out = os.path.join(TMP, "atp")
    p = mechir("run", "--model", DEMO, "--input", tsv, "--max-len", "40", "--out", out,
               "--sweep", "qkv,head-pos", "--heads", "0.0", "--method", "atp")
    lines = p.stderr.strip().splitlines()
    if p.returncode != 1 or len(lines) != 1 or \
            "--sweep head-pos needs --method exact" not in lines[0] or os.path.exists(out):
        fail("run --method atp --sweep head-pos: exit %d, %r" % (p.returncode, p.stderr))


def main():
    with open(os.path.join(ROOT, "examples", "demo-200.tsv"), encoding="utf-8") as f:
        rows = [next(f) for _ in range(5)][1:]
    tsvs = []
    for name, part in (("all", rows), ("a", rows[:2]), ("b", rows[2:])):
        path = os.path.join(TMP, name + ".tsv")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(part)
        tsvs.append(path)
    outs = [os.path.join(TMP, "run-" + n) for n in ("all", "a", "b")]
    if not all(run(t, o) for t, o in zip(tsvs, outs)):
        sys.exit(1)
    pairs = pairs_of(outs[0])
    check_pairs(pairs)
    with open(os.path.join(outs[0], "circuit.json"), encoding="utf-8") as f:
        cj = json.load(f)
    roles = cj["resid_mid_by_role"]["roles"]
    want = expected_map(pairs, roles)
    check_map("whole run", cj, want)
    merged = os.path.join(TMP, "merged.cmap")
    p = mechir("merge", os.path.join(outs[1], "circuit.cmap"),
               os.path.join(outs[2], "circuit.cmap"), "-o", merged)
    if p.returncode != 0:
        fail("merge: %s" % p.stderr.strip())
    else:
        mj = json.loads(mechir("report", merged, "--format", "json").stdout)
        check_map("merged halves", mj, want)
    check_report(outs[0], cj)
    atp = os.path.join(TMP, "run-atp")
    if run(tsvs[0], atp, "--method", "atp-qk"):
        check_pairs(pairs_of(atp), atp_qk=True)
    check_refusal(tsvs[0])
    ok = not failures and counts["pairs"] > 0 and counts["cells"] > 0
    print("%s: %d pairs, %d patched scores against the torch reference; maps, merge, report; "
          "%d failures" % ("ok" if ok else "FAIL", counts["pairs"], counts["cells"],
                           len(failures)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
