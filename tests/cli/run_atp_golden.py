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


def main(argv):
    if len(argv) == 4 and argv[1] == "inputs":
        rg.write_inputs(load(argv[2]), argv[3])
        return 0
    if len(argv) >= 6 and argv[1] == "check":
        return cmd_check(argv[2], argv[3], argv[4], argv[5:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
