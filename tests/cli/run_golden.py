"""Checks `mechir run` against the golden patching fixture tests/data/patching/demo-tfc1.json
(float64 reference, one forward per patch), never against mechir's own other outputs.

  run_golden.py inputs FIXTURE DIR      writes DIR/start.tsv and DIR/end.tsv: the fixture's
                                        cases as `inject` input (qid = "c<case>"), one file
                                        per --position
  run_golden.py check FIXTURE RUN_DIR... checks each run's pairs.jsonl[.zst] (token ids, scores,
                                        per-pair heads and blocks effects) and circuit.json
                                        (heads mean/std/n, blocks_by_role means) against the
                                        fixture; prints one line per check, exits 1 on failure

Standard library and the zstd CLI (for pairs.jsonl.zst) only.
"""
import json
import math
import os
import subprocess
import sys

COMPONENTS = ("resid_pre", "attn_out", "mlp_out")
RAW_ATOL = RAW_RTOL = 1e-5  # the fixture's tolerance for raw scores
EFFECT_ATOL = 1e-4  # the fixture's tolerance for effects (|perturbed - baseline| >= 0.05)
CLS, SEP = 101, 102  # bert-base-uncased ids (the demo model's vocab.txt)

failures = 0
checked = set()  # fixture cases whose pair was found with the fixture's ids


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def ok(msg):
    print("ok: " + msg)


def close(got, want, atol, rtol=0.0):
    return got is not None and math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)


def compare(what, got, want, atol):
    """Element-wise comparison of two nested lists of numbers; reports the first mismatch."""
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            fail("%s: shape differs (got %s, want %d entries)" % (
                what, len(got) if isinstance(got, list) else type(got).__name__, len(want)))
            return False
        return all(compare("%s[%d]" % (what, i), g, w, atol) for i, (g, w) in enumerate(zip(got, want)))
    if not close(got, want, atol):
        fail("%s: got %r, want %.9g (diff %.3g > %g)" % (
            what, got, want, abs(got - want) if isinstance(got, (int, float)) else float("nan"), atol))
        return False
    return True


def load_fixture(path):
    with open(path, encoding="utf-8") as f:
        fx = json.load(f)
    # The tolerances this checker uses must be the fixture's.
    tol = fx["tolerance"]
    assert "1e-5 + 1e-5 * |want|" in tol and "<= 1e-4" in tol, tol
    return fx


def cmd_inputs(fixture, out_dir):
    fx = load_fixture(fixture)
    files = {}
    for i, c in enumerate(fx["cases"]):
        assert c["filler"] == "a" and c["max_len"] == 64, "the test runs --max-len 64, filler a"
        fields = ["c%d" % i, c["query"], c["pkg"], c["doc"], c["term"]]
        assert all("\t" not in x and "\n" not in x for x in fields)
        files.setdefault(c["position"], []).append("\t".join(fields) + "\n")
    assert sorted(files) == ["end", "start"], sorted(files)
    for pos, lines in files.items():
        with open(os.path.join(out_dir, pos + ".tsv"), "w", encoding="utf-8") as f:
            f.writelines(lines)


def roles_simple(ids_b, ids_p):
    """The roles that follow from the ids alone: cls, sep, query, injected (else None)."""
    first_sep = ids_b.index(SEP)
    out = []
    for t, (b, p) in enumerate(zip(ids_b, ids_p)):
        if t == 0 and b == CLS:
            out.append("cls")
        elif b == SEP and p == SEP:
            out.append("sep")
        elif t < first_sep:
            out.append("query")
        elif b != p:
            out.append("injected")
        else:
            out.append(None)
    return out


def mean(xs):
    return sum(xs) / len(xs)


def read_pairs(run_dir):
    """OUT/pairs.jsonl.zst (through the zstd CLI) or OUT/pairs.jsonl, as text; never both."""
    zst, plain = os.path.join(run_dir, "pairs.jsonl.zst"), os.path.join(run_dir, "pairs.jsonl")
    if os.path.exists(zst) and os.path.exists(plain):
        fail("%s holds both pairs.jsonl.zst and pairs.jsonl" % run_dir)
    if os.path.exists(plain):
        with open(plain, encoding="utf-8") as f:
            return f.read()
    r = subprocess.run(["zstd", "-dcq", zst], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        fail("zstd -dc %s: %s" % (zst, r.stderr.decode(errors="replace").strip()))
        return ""
    return r.stdout.decode("utf-8")


def check_run(fx, run_dir):
    cases = fx["cases"]
    pairs = [json.loads(line) for line in read_pairs(run_dir).splitlines() if line.strip()]
    if not pairs:
        fail("%s has no pairs" % run_dir)
        return
    used = []  # (fixture case, pair line)
    for p in pairs:
        i = int(p["qid"][1:])
        c = cases[i]
        name = "%s case %d (%s, term %s, %s)" % (run_dir, i, c["pkg"], c["term"], c["position"])
        if p.get("baseline_ids") != c["ids_baseline"] or p.get("perturbed_ids") != c["ids_perturbed"]:
            fail("%s: token ids differ from the fixture's ids_baseline/ids_perturbed" % name)
            continue
        checked.add(i)
        good = True
        for k in ("score_baseline", "score_perturbed"):
            if not close(p[k], c[k], RAW_ATOL, RAW_RTOL):
                fail("%s: %s got %r, want %.9g" % (name, k, p[k], c[k]))
                good = False
        good &= compare(name + " heads", p.get("heads"), c["heads"], EFFECT_ATOL)
        for comp in COMPONENTS:
            good &= compare("%s blocks.%s" % (name, comp), (p.get("blocks") or {}).get(comp),
                            c["blocks"][comp], EFFECT_ATOL)
        # Roles: those that follow from the ids are checked, the rest (doc_match or
        # doc_other) must be document roles.
        roles = p.get("roles", [])
        want = roles_simple(c["ids_baseline"], c["ids_perturbed"])
        if len(roles) != len(want) or any(
                (w is not None and r != w) or (w is None and r not in ("doc_match", "doc_other"))
                for r, w in zip(roles, want)):
            fail("%s: roles %s do not follow from the ids" % (name, roles))
            good = False
        if good:
            ok("%s: ids, both scores, heads and blocks effects equal the fixture's" % name)
        used.append((c, p))

    with open(os.path.join(run_dir, "circuit.json"), encoding="utf-8") as f:
        cj = json.load(f)
    n = len(used)
    if n != len(pairs) or cj["pairs"]["used"] != n:
        fail("%s: circuit.json says %s pairs used, want %d" % (run_dir, cj["pairs"]["used"], n))
        return
    L, NH = len(cases[0]["heads"]), len(cases[0]["heads"][0])
    hm = [[mean([c["heads"][l][h] for c, _ in used]) for h in range(NH)] for l in range(L)]
    hs = [[math.sqrt(sum((c["heads"][l][h] - hm[l][h]) ** 2 for c, _ in used) / (n - 1))
           if n > 1 else None for h in range(NH)] for l in range(L)]
    good = compare(run_dir + " circuit.json heads.mean", cj["heads"]["mean"], hm, EFFECT_ATOL)
    if n > 1:
        good &= compare(run_dir + " circuit.json heads.std", cj["heads"]["std"], hs, EFFECT_ATOL)
    if cj["heads"]["n"] != [[n] * NH for _ in range(L)]:
        fail("%s: circuit.json heads.n is %s, want %d everywhere" % (run_dir, cj["heads"]["n"], n))
        good = False
    if good:
        ok("%s: circuit.json heads mean, std and n over %d pairs equal the fixture's" % (run_dir, n))

    # blocks_by_role: per pair the mean over the positions of a role, then the mean over the
    # pairs that have it; effects from the fixture, roles from pairs.jsonl (checked above).
    bb = cj["blocks_by_role"]
    role_names = bb["roles"]
    good = True
    for ci, comp in enumerate(COMPONENTS):
        for l in range(L):
            for ri, role in enumerate(role_names):
                per_pair = []
                for c, p in used:
                    xs = [c["blocks"][comp][l][t] for t, r in enumerate(p["roles"]) if r == role]
                    if xs:
                        per_pair.append(mean(xs))
                got_n = bb["n"][ci][l][ri]
                got = bb["mean"][ci][l][ri]
                what = "%s circuit.json blocks_by_role %s layer %d %s" % (run_dir, comp, l, role)
                if got_n != len(per_pair):
                    fail("%s: n %s, want %d" % (what, got_n, len(per_pair)))
                    good = False
                elif per_pair:
                    good &= compare(what + " mean", got, mean(per_pair), EFFECT_ATOL)
                elif got is not None:
                    fail("%s: mean %r for a role no pair has, want null" % (what, got))
                    good = False
    if good:
        ok("%s: circuit.json blocks_by_role means equal the fixture's, role by role" % run_dir)


def cmd_check(fixture, run_dirs):
    fx = load_fixture(fixture)
    for d in run_dirs:
        check_run(fx, d)
    if len(checked) != len(fx["cases"]) or not checked:
        fail("%d of the fixture's %d cases were checked" % (len(checked), len(fx["cases"])))
    else:
        ok("all %d fixture cases checked" % len(checked))
    return 1 if failures else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "inputs":
        cmd_inputs(argv[2], argv[3])
        return 0
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(argv[2], argv[3:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
