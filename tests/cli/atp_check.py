"""`mechir patch --method atp|atp-qk --verify-top K` against independent float64 references.

usage: atp_check.py MECHIR REPO_ROOT

- Estimates: every heads_scores and blocks_scores entry of the golden AtP fixtures
  (tests/data/patching/atp/, automatic differentiation) within 1e-5 + 1e-4 |want|; for the
  bi-encoder the estimated changes too, as the fixture's README asks. atp-qk's heads against
  demo-atp-qk.json, its blocks equal to atp's.
- "verified": the fixture's 5 components in order, their estimates and their exact patched
  scores (the fixture's "exact", from the reference's own patched runs).
- "verified_diff_rows": resid_pre at every layer and every position whose ids differ, in (layer,
  position) order; "exact" equal to the exact-patching fixture (demo-tfc1.json, the same pairs).
- Bad input: an unknown method, --verify-top without atp, head-pos or --save-patterns with atp,
  and a --verify-top larger than the pair's components, each one line and a non-zero exit.
Standard library only.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_golden import score_at  # noqa: E402

MECHIR, ROOT = sys.argv[1], sys.argv[2]
DATA = os.path.join(ROOT, "tests", "data")
DEMO = os.path.join(ROOT, "examples", "demo-ce")
DOT = os.path.join(DATA, "models", "distilbert-dot-tiny")
SITES = ["resid_pre", "attn_out", "mlp_out"]
failures = []
checked = 0


def load(path):
    with open(path) as f:
        return json.load(f)


def close(got, want, atol=1e-5, rtol=1e-4):
    return got is not None and abs(got - want) <= atol + rtol * abs(want)


def check(what, got, want, atol=1e-5, rtol=1e-4):
    global checked
    checked += 1
    if not close(got, want, atol, rtol):
        failures.append(f"{what}: got {got}, want {want}")


def ids(xs):
    return ",".join(str(x) for x in xs)


def patch(model, case, *extra):
    args = [MECHIR, "patch", "--model", model, "--ids-baseline", ids(case["ids_baseline"]),
            "--ids-perturbed", ids(case["ids_perturbed"]),
            "--token-types", ids(case["token_types"]), "--sweep", "heads,blocks", *extra]
    if "query_ids" in case:
        args += ["--query-ids", ids(case["query_ids"])]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args[1:4])} ... exited {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def flat(x):
    return [v for row in x for v in row]


def compare_maps(name, got, want, changes_of=None):
    """heads_scores and blocks_scores element-wise; changes_of (sb_got, sb_want) also compares
    estimate - score_baseline on each side."""
    pairs = [("heads_scores", flat(got["heads_scores"]), flat(want["heads_scores"]))]
    for s in SITES:
        pairs.append((f"blocks_scores.{s}", flat(got["blocks_scores"][s]),
                      flat(want["blocks_scores"][s])))
    for key, g, w in pairs:
        if len(g) != len(w):
            failures.append(f"{name} {key}: {len(g)} numbers, want {len(w)}")
            continue
        for i, (a, b) in enumerate(zip(g, w)):
            check(f"{name} {key}[{i}]", a, b)
            if changes_of:
                check(f"{name} {key}[{i}] change", a - changes_of[0], b - changes_of[1])


def effects_follow(name, out):
    sb, sp = out["score_baseline"], out["score_perturbed"]
    for a, e in zip(flat(out["heads_scores"]), flat(out["heads"])):
        check(f"{name} heads effect", e, (a - sb) / (sp - sb), 1e-6, 1e-4)


# ---- the demo cross-encoder ----
atp = load(os.path.join(DATA, "patching", "atp", "demo-atp.json"))
exact = load(os.path.join(DATA, "patching", "demo-tfc1.json"))
qk_path = os.path.join(DATA, "patching", "atp", "demo-atp-qk.json")
qk = load(qk_path)
for ci, case in enumerate(atp["cases"]):
    name = f"demo case {ci}"
    ex = [c for c in exact["cases"] if c["ids_baseline"] == case["ids_baseline"]
          and c["ids_perturbed"] == case["ids_perturbed"]]
    if len(ex) != 1:
        sys.exit(f"FAIL: {name}: not one exact-patching case with its ids")
    ex = ex[0]
    out = patch(DEMO, case, "--method", "atp", "--verify-top", "5")
    if out.get("method") != "atp":
        failures.append(f"{name}: method {out.get('method')!r}, want 'atp'")
    check(f"{name} score_baseline", out["score_baseline"], case["score_baseline"])
    check(f"{name} score_perturbed", out["score_perturbed"], case["score_perturbed"])
    compare_maps(name, out, case)
    effects_follow(name, out)
    got_v, want_v = out["verified"], case["verified"]
    if [v["component"] for v in got_v] != [v["component"] for v in want_v]:
        failures.append(f"{name} verified: {[v['component'] for v in got_v]}, "
                        f"want {[v['component'] for v in want_v]}")
    else:
        for g, w in zip(got_v, want_v):
            check(f"{name} verified {w['component']} estimate", g["estimate"], w["estimate"])
            check(f"{name} verified {w['component']} exact", g["exact"], w["exact"])
    differ = [t for t, (a, b) in enumerate(zip(case["ids_baseline"], case["ids_perturbed"]))
              if a != b]
    L = len(case["heads_scores"])
    want_rows = [f"resid_pre {layer} {t}" for layer in range(L) for t in differ]
    got_rows = out["verified_diff_rows"]
    if not differ or [v["component"] for v in got_rows] != want_rows:
        failures.append(f"{name} verified_diff_rows: {[v['component'] for v in got_rows]}, "
                        f"want {want_rows}")
    else:
        for v in got_rows:
            check(f"{name} {v['component']} exact", v["exact"], score_at(ex, v["component"]))
            check(f"{name} {v['component']} estimate", v["estimate"],
                  score_at(case, v["component"]))
    # atp-qk: heads against its reference, blocks as atp's
    want_qk = qk["cases"][ci]
    if want_qk["ids_baseline"] != case["ids_baseline"]:
        sys.exit(f"FAIL: {name}: demo-atp-qk.json's case {ci} is another pair")
    out_qk = patch(DEMO, case, "--method", "atp-qk")
    if out_qk.get("method") != "atp-qk":
        failures.append(f"{name}: method {out_qk.get('method')!r}, want 'atp-qk'")
    got_h, want_h = flat(out_qk["heads_scores"]), flat(want_qk["heads_scores"])
    if len(got_h) != len(want_h) or not want_h:
        failures.append(f"{name} atp-qk: {len(got_h)} heads, want {len(want_h)}")
    for i, (a, b) in enumerate(zip(got_h, want_h)):
        check(f"{name} atp-qk heads_scores[{i}]", a, b)
    if out_qk["blocks_scores"] != out["blocks_scores"]:
        failures.append(f"{name}: atp-qk changed the blocks estimates")

# ---- the bi-encoder (document side patched; estimated changes compared too) ----
dot = load(os.path.join(DATA, "patching", "atp", "distilbert-dot-atp.json"))
for ci, case in enumerate(dot["cases"]):
    out = patch(DOT, case, "--method", "atp")
    compare_maps(f"bi-encoder case {ci}", out, case,
                 (out["score_baseline"], case["score_baseline"]))

# ---- bad input: one line on stderr, nothing on stdout, the exit status ----
case = atp["cases"][0]
base = [MECHIR, "patch", "--model", DEMO, "--ids-baseline", ids(case["ids_baseline"]),
        "--ids-perturbed", ids(case["ids_perturbed"]), "--token-types", ids(case["token_types"])]
bad = [
    (["--sweep", "heads", "--method", "linear"], 2, "--method takes exact, atp or atp-qk"),
    (["--sweep", "heads", "--verify-top", "3"], 2, "--verify-top checks estimates"),
    (["--sweep", "heads", "--method", "exact", "--verify-top", "3"], 2,
     "--verify-top checks estimates"),
    (["--sweep", "head-pos", "--heads", "0.0", "--method", "atp"], 2,
     "--method atp does not estimate the head-pos sweep"),
    (["--sweep", "heads", "--heads", "0.0", "--save-patterns", "--method", "atp-qk"], 2,
     "--save-patterns needs --method exact"),
    (["--sweep", "heads", "--method", "atp", "--verify-top", "17"], 1,
     "--verify-top 17: the sweeps of this pair"),
]
for extra, want_rc, needle in bad:
    p = subprocess.run(base + extra, capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    checked += 1
    if p.returncode != want_rc or p.stdout or len(lines) != 1 or needle not in lines[0]:
        failures.append(f"{' '.join(extra)}: exit {p.returncode} (want {want_rc}), stdout "
                        f"{len(p.stdout)} bytes, stderr {lines!r} (want one line with {needle!r})")

for f in failures[:30]:
    print("FAIL:", f)
if checked == 0:
    sys.exit("FAIL: nothing was compared")
if failures:
    sys.exit(f"FAIL: {len(failures)} of {checked} checks")
print(f"ok: {checked} checks of mechir patch --method atp/atp-qk against the references")
