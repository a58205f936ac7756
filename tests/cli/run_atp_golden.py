"""Checks `mechir run --method atp` against the golden AtP fixture
tests/data/patching/atp/demo-atp.json (float64 estimates by automatic differentiation, made
outside mechir), never against mechir's own other outputs.

  run_atp_golden.py inputs FIXTURE DIR  writes DIR/start.tsv and DIR/end.tsv: the fixture's
                                        cases as `inject` input (as run_golden.py does)
  run_atp_golden.py check FIXTURE VOCAB METHOD [--qk QK_FIXTURE] RUN_DIR...
                                        per pair (pairs.jsonl[.zst]): token ids, both exact
                                        scores, the AtP effects of heads and blocks (1e-4
                                        absolute; every case moves by >= 0.05), the estimated
                                        scores heads_scores and blocks_scores (the fixture's
                                        1e-5 + 1e-4 |want|), every token role; circuit.json:
                                        heads mean/std/n and blocks_by_role means computed here
                                        from the fixture's per-case AtP effects, and its
                                        "method" key equal to METHOD; exits 1 on failure.
                                        With --qk (method atp-qk): the heads' estimated scores
                                        are QK_FIXTURE's (demo-atp-qk.json, same pairs), their
                                        effects computed here from them; blocks as FIXTURE's

  run_atp_golden.py verified FIXTURE EXACT_FIXTURE VOCAB RUN_DIR...
                                        a `--method atp --verify-top 5` run: per pair
                                        "verified" is the fixture's 5 components in order with
                                        its estimates and exact scores, "verified_diff_rows"
                                        resid_pre at every layer x differing position with the
                                        exact scores of EXACT_FIXTURE (demo-tfc1.json, the
                                        same pairs); circuit.json "verified": exact and
                                        estimated means and n of every head and block-by-role
                                        cell, and the mean per-pair Spearman correlation,
                                        computed here from the fixtures' numbers

The per-pair and circuit.json checks are run_golden.py's, given this fixture: its cases carry
the exact scores and the AtP effects under the keys the exact fixture uses.
"""
import json
import os
import sys

import run_golden as rg

SCORE_ATOL = SCORE_RTOL = None  # read from the fixture's tolerance (load)
MIN_MOVE = 0.05  # the effect tolerance holds for pairs whose score moves at least this much
stats = {"values": 0, "max_effect_err": 0.0, "max_score_err": 0.0}


def load(path):
    global SCORE_ATOL, SCORE_RTOL
    with open(path, encoding="utf-8") as f:
        fx = json.load(f)
    tol = fx["tolerance"]
    assert "1e-5 + 1e-4 * |want|" in tol, tol
    SCORE_ATOL, SCORE_RTOL = 1e-5, 1e-4
    for i, c in enumerate(fx["cases"]):
        move = abs(c["score_perturbed"] - c["score_baseline"])
        assert move >= MIN_MOVE, "case %d moves by %g < %g: no effect tolerance" % (i, move, MIN_MOVE)
    return fx


def with_qk_heads(fx, qk_path):
    """fx with each case's heads estimates and effects from the QK-fix fixture (same pairs)."""
    with open(qk_path, encoding="utf-8") as f:
        qk = json.load(f)
    assert qk["tolerance"] == fx["tolerance"], qk["tolerance"]
    assert len(qk["cases"]) == len(fx["cases"])
    for c, q in zip(fx["cases"], qk["cases"]):
        assert q["ids_baseline"] == c["ids_baseline"] and q["ids_perturbed"] == c["ids_perturbed"]
        sb, sp = c["score_baseline"], c["score_perturbed"]
        assert abs(q["score_baseline"] - sb) < 1e-9 and abs(q["score_perturbed"] - sp) < 1e-9
        c["heads_scores"] = q["heads_scores"]
        c["heads"] = [[(x - sb) / (sp - sb) for x in row] for row in q["heads_scores"]]
    return fx


def flat(x):
    return [v for row in x for v in (flat(row) if isinstance(row, list) else [row])] \
        if isinstance(x, list) else [x]


def max_err(got, want):
    g, w = flat(got), flat(want)
    if len(g) != len(w) or not all(isinstance(v, (int, float)) for v in g):
        return float("inf"), 0
    return max(abs(a - b) for a, b in zip(g, w)), len(w)


def check_estimates(fx, run_dir):
    """heads_scores and blocks_scores of every pair against the fixture's, element-wise, and the
    largest differences of effects and scores (reported)."""
    for p in (json.loads(x) for x in rg.read_pairs(run_dir).splitlines() if x.strip()):
        i = int(p["qid"][1:])
        c = fx["cases"][i]
        name = "%s case %d (%s, term %s)" % (run_dir, i, c["pkg"], c["term"])
        good = rg.compare(name + " heads_scores", p.get("heads_scores"), c["heads_scores"],
                          SCORE_ATOL, SCORE_RTOL)
        e, n = max_err(p.get("heads_scores"), c["heads_scores"])
        stats["max_score_err"] = max(stats["max_score_err"], e)
        stats["values"] += n
        e, n = max_err(p.get("heads"), c["heads"])
        stats["max_effect_err"] = max(stats["max_effect_err"], e)
        stats["values"] += n
        for comp in rg.COMPONENTS:
            got_s = (p.get("blocks_scores") or {}).get(comp)
            good &= rg.compare("%s blocks_scores.%s" % (name, comp), got_s,
                               c["blocks_scores"][comp], SCORE_ATOL, SCORE_RTOL)
            e, n = max_err(got_s, c["blocks_scores"][comp])
            stats["max_score_err"] = max(stats["max_score_err"], e)
            stats["values"] += n
            e, n = max_err((p.get("blocks") or {}).get(comp), c["blocks"][comp])
            stats["max_effect_err"] = max(stats["max_effect_err"], e)
            stats["values"] += n
        if good:
            rg.ok("%s: every estimated score (heads, blocks) equals the fixture's" % name)


def check_method(run_dir, method):
    with open(os.path.join(run_dir, "circuit.json"), encoding="utf-8") as f:
        cj = json.load(f)
    if cj.get("method") != method:
        rg.fail("%s: circuit.json method is %r, want %r" % (run_dir, cj.get("method"), method))
    else:
        rg.ok("%s: circuit.json says method %s" % (run_dir, method))


def cmd_check(fixture, vocab_path, method, run_dirs):
    fx = load(fixture)
    if run_dirs[0] == "--qk":
        fx = with_qk_heads(fx, run_dirs[1])
        run_dirs = run_dirs[2:]
    with open(vocab_path, encoding="utf-8") as f:
        rg.vocab.extend(line.rstrip("\n") for line in f)
    for d in run_dirs:
        rg.check_run(fx, d)
        check_estimates(fx, d)
        check_method(d, method)
    if len(rg.checked) != len(fx["cases"]):
        rg.fail("%d of the fixture's %d cases were checked" % (len(rg.checked), len(fx["cases"])))
    else:
        rg.ok("all %d fixture cases checked: %d values, largest differences %.3g (effects), "
              "%.3g (estimated scores)" % (len(rg.checked), stats["values"],
                                           stats["max_effect_err"], stats["max_score_err"]))
    return 1 if rg.failures else 0


def spearman(x, y):
    """Pearson's correlation of the ranks (ties: mean rank); None when a side is all tied."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r
    rx, ry = ranks(x), ranks(y)
    m = (len(x) + 1) / 2
    sxy = sum((a - m) * (b - m) for a, b in zip(rx, ry))
    sxx, syy = sum((a - m) ** 2 for a in rx), sum((b - m) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / (sxx * syy) ** 0.5


def verified_case(name, p, c, ex):
    """The pair's verified lists against the fixtures; its distinct components as (name,
    estimate effect, exact effect), from the fixtures' numbers."""
    got_v, want_v = p.get("verified") or [], c["verified"]
    good = [v["component"] for v in got_v] == [v["component"] for v in want_v]
    if not good:
        rg.fail("%s verified: %s, want %s" % (name, [v["component"] for v in got_v],
                                              [v["component"] for v in want_v]))
    differ = [t for t, (a, b) in enumerate(zip(c["ids_baseline"], c["ids_perturbed"])) if a != b]
    L = len(c["heads_scores"])
    want_rows = [{"component": "resid_pre %d %d" % (layer, t),
                  "estimate": rg.score_at(c, "resid_pre %d %d" % (layer, t)),
                  "exact": rg.score_at(ex, "resid_pre %d %d" % (layer, t))}
                 for layer in range(L) for t in differ]
    got_rows = p.get("verified_diff_rows") or []
    if not differ or [v["component"] for v in got_rows] != [v["component"] for v in want_rows]:
        rg.fail("%s verified_diff_rows: %s, want %s" % (
            name, [v["component"] for v in got_rows], [v["component"] for v in want_rows]))
        good = False
    for g, w in zip(got_v + got_rows, want_v + want_rows):
        for k in ("estimate", "exact"):
            stats["values"] += 1
            if not rg.close(g[k], w[k], SCORE_ATOL, SCORE_RTOL):
                rg.fail("%s %s %s: got %r, want %.9g" % (name, w["component"], k, g[k], w[k]))
                good = False
    if good:
        rg.ok("%s: %d verified components and %d diff rows equal the fixtures'" % (
            name, len(want_v), len(want_rows)))
    # Means from the fixtures' numbers; the rank correlation from the pair's own numbers (each
    # checked against the fixtures above): components tied within the tolerance (attn_out 0 t
    # and resid_pre 1 t) may rank either way in float32.
    sb, sp = c["score_baseline"], c["score_perturbed"]
    gb, gd = p["score_baseline"], p["score_perturbed"] - p["score_baseline"]
    seen, out = set(), []
    for g, w in zip(got_v + got_rows, want_v + want_rows):
        if w["component"] not in seen:
            seen.add(w["component"])
            out.append((w["component"], (w["estimate"] - sb) / (sp - sb),
                        (w["exact"] - sb) / (sp - sb), (g["estimate"] - gb) / gd,
                        (g["exact"] - gb) / gd))
    return out


def check_verified_map(run_dir, cj, per_pair, L, NH):
    """circuit.json "verified" from the pairs' distinct components (per_pair: (components,
    roles)): every cell's n and means, and the mean per-pair Spearman correlation."""
    v = cj.get("verified")
    if not v:
        rg.fail("%s: circuit.json has no \"verified\"" % run_dir)
        return
    good = True
    heads = {}  # (l, h) -> [(est, exact)]
    blocks = {}  # (site, l, role) -> [(est, exact)] one per pair
    rhos = []
    for comps, roles in per_pair:
        cells = {}
        for name, e, x, _, _ in comps:
            parts = name.split()
            if parts[0] == "head":
                layer, head = (int(t) for t in parts[1].split("."))
                heads.setdefault((layer, head), []).append((e, x))
            else:
                key = (parts[0], int(parts[1]), roles[int(parts[2])])
                cells.setdefault(key, []).append((e, x))
        for key, xs in cells.items():
            blocks.setdefault(key, []).append((rg.mean([a for a, _ in xs]),
                                               rg.mean([b for _, b in xs])))
        if len(comps) >= 3:
            r = spearman([c[3] for c in comps], [c[4] for c in comps])
            if r is not None:
                rhos.append(r)
    for key, est_key, shape in (("heads", "heads_estimate", None),
                                ("blocks_by_role", "blocks_by_role_estimate", 1)):
        for which, idx in ((key, 1), (est_key, 0)):
            got = v.get(which)
            if got is None:
                rg.fail("%s: circuit.json verified.%s is missing" % (run_dir, which))
                good = False
                continue
            if shape is None:
                cells = [((l, h), (l, h)) for l in range(L) for h in range(NH)]
                src = heads
            else:
                roles = cj["blocks_by_role"]["roles"]
                cells = [((s, l, r), (si, l, ri)) for si, s in enumerate(rg.COMPONENTS)
                         for l in range(L) for ri, r in enumerate(roles)]
                src = blocks
            for want_key, at in cells:
                vals = [t[idx] for t in src.get(want_key, [])]
                n_got, m_got = got["n"], got["mean"]
                for i in at:
                    n_got, m_got = n_got[i], m_got[i]
                stats["values"] += 1
                if n_got != len(vals):
                    rg.fail("%s verified.%s %s: n %s, want %d" % (run_dir, which, want_key, n_got,
                                                                 len(vals)))
                    good = False
                elif vals and not rg.close(m_got, rg.mean(vals), 1e-4):
                    rg.fail("%s verified.%s %s: mean %r, want %.9g" % (
                        run_dir, which, want_key, m_got, rg.mean(vals)))
                    good = False
    rc = v["rank_correlation"]
    if rc["pairs"] != len(rhos) or not rhos or not rg.close(rc["mean"], rg.mean(rhos), 1e-9):
        rg.fail("%s verified.rank_correlation: %s, want %d pairs, mean %s" % (
            run_dir, rc, len(rhos), rg.mean(rhos) if rhos else None))
        good = False
    report = os.path.join(run_dir, "report")
    if os.path.isdir(report):
        good &= check_verified_report(report, heads, blocks, rhos)
    if good:
        rg.ok("%s: circuit.json verified: %d head cells and %d block cells with pairs, "
              "Spearman %.4f over %d pairs, equal the fixtures'" % (
                  run_dir, len(heads), len(blocks), rg.mean(rhos), len(rhos)))


def check_verified_report(report, heads, blocks, rhos):
    """`mechir report`'s verified.csv (every cell's n and means, against the fixtures) and
    top.txt's agreement line computed here: the per-pair Spearman mean, and across the cells'
    exact and estimated means Spearman's correlation and the overlap of the 10 largest |mean|."""
    import csv
    with open(os.path.join(report, "verified.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    want = {}
    for (l, h), xs in heads.items():
        want[("head", "attn.hook_z", str(l), str(h), "")] = xs
    for (site, l, role), xs in blocks.items():
        want[("block", site, str(l), "", role)] = xs
    good = len(rows) == len(want)
    for r in rows:
        key = (r["kind"], r["component"], r["layer"], r["head"], r["role"])
        xs = want.get(key)
        stats["values"] += 1
        if (xs is None or int(r["n"]) != len(xs)
                or not rg.close(float(r["estimate_mean_of_ratios"]), rg.mean([a for a, _ in xs]), 1e-4)
                or not rg.close(float(r["exact_mean_of_ratios"]), rg.mean([b for _, b in xs]), 1e-4)):
            rg.fail("%s verified.csv %s: n %s, means %s %s; want %s" % (
                report, key, r["n"], r["estimate_mean_of_ratios"], r["exact_mean_of_ratios"],
                None if xs is None else (len(xs), rg.mean([a for a, _ in xs]),
                                         rg.mean([b for _, b in xs]))))
            good = False
    if len(rows) != len(want):
        rg.fail("%s verified.csv: %d cells, want %d" % (report, len(rows), len(want)))
    # The agreement over the cells' means as the CSV gives them (each checked above): cells tied
    # within the tolerance (attn_out 0 and resid_pre 1 of one position) rank either way.
    est = [float(r["estimate_mean_of_ratios"]) for r in rows]
    ex = [float(r["exact_mean_of_ratios"]) for r in rows]
    k = min(10, len(rows))
    top = lambda v: set(sorted(range(len(v)), key=lambda i: -abs(v[i]))[:k])
    line = "per-pair Spearman correlation of estimated and exact effects %.4f" % rg.mean(rhos)
    line2 = "mean effects Spearman %.4f, top-%d overlap by |mean| %d/%d" % (
        spearman(est, ex), k, len(top(est) & top(ex)), k)
    with open(os.path.join(report, "top.txt"), encoding="utf-8") as f:
        text = f.read()
    if line not in text or line2 not in text:
        rg.fail("%s top.txt: want '%s' and '%s' in:\n%s" % (report, line, line2, text))
        good = False
    return good


def cmd_verified(fixture, exact_fixture, vocab_path, run_dirs):
    fx = load(fixture)
    with open(exact_fixture, encoding="utf-8") as f:
        exact = json.load(f)
    with open(vocab_path, encoding="utf-8") as f:
        rg.vocab.extend(line.rstrip("\n") for line in f)
    for d in run_dirs:
        per_pair = []
        for p in (json.loads(x) for x in rg.read_pairs(d).splitlines() if x.strip()):
            i = int(p["qid"][1:])
            c = fx["cases"][i]
            ex = [e for e in exact["cases"] if e["ids_baseline"] == c["ids_baseline"]
                  and e["ids_perturbed"] == c["ids_perturbed"]]
            if len(ex) != 1 or p.get("baseline_ids") != c["ids_baseline"]:
                rg.fail("%s case %d: not one exact-patching case with its ids" % (d, i))
                continue
            rg.checked.add(i)
            roles = rg.roles_expected(rg.vocab, c["query"], c["ids_baseline"], c["ids_perturbed"])
            per_pair.append((verified_case("%s case %d" % (d, i), p, c, ex[0]), roles))
        with open(os.path.join(d, "circuit.json"), encoding="utf-8") as f:
            cj = json.load(f)
        L, NH = len(fx["cases"][0]["heads"]), len(fx["cases"][0]["heads"][0])
        check_verified_map(d, cj, per_pair, L, NH)
    if len(rg.checked) != len(fx["cases"]):
        rg.fail("%d of the fixture's %d cases were checked" % (len(rg.checked), len(fx["cases"])))
    else:
        rg.ok("verified: all %d fixture cases checked, %d values" % (len(rg.checked),
                                                                    stats["values"]))
    return 1 if rg.failures else 0


def main(argv):
    if len(argv) >= 6 and argv[1] == "verified":
        return cmd_verified(argv[2], argv[3], argv[4], argv[5:])
    if len(argv) == 4 and argv[1] == "inputs":
        rg.write_inputs(load(argv[2]), argv[3])
        return 0
    if len(argv) >= 6 and argv[1] == "check":
        return cmd_check(argv[2], argv[3], argv[4], argv[5:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
