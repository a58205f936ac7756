"""Strata of circuit maps against counts made here from the input (never from mechir's output).

  strata_check.py make DEMO_PAIRS.tsv OUT.jsonl   JSONL records from the first demo pairs with
                                                 ranks above 100 (5, 15, 105, 115, 1005, ...)
                                                 and relevance grades 0, 1, 2, 10 (and nulls)
  strata_check.py check INPUT.jsonl CIRCUIT.json... each map has every input pair used, and its
                                                 strata are the input's relevance grades, then
                                                 its rank buckets 1-10, 11-20, ..., each in
                                                 numeric order (rank=101-110 after rank=11-20,
                                                 relevance=10 after relevance=2), with the pair
                                                 count of the input and that n in every heads
                                                 cell; exits 1 on a failure

Standard library only.
"""
import json
import sys

# (rank, relevance) of the records, in input order; None is JSON null (no stratum).
LABELS = [(5, 2), (15, 10), (105, 0), (115, 1), (1005, 2), (2, None), (101, 10), (1010, 0),
          (11, 1), (None, 2), (110, 1), (20, 0)]

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def cmd_make(tsv, out):
    with open(tsv, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][: len(LABELS)]
    assert len(rows) == len(LABELS), "not enough demo pairs"
    with open(out, "w", encoding="utf-8") as f:
        for (qid, query, docno, text), (rank, rel) in zip((r[:4] for r in rows), LABELS):
            rec = {"qid": qid, "query": query, "docno": docno, "text": text, "rank": rank,
                   "relevance": rel}
            f.write(json.dumps(rec) + "\n")


def expected(input_jsonl):
    """[(name, pairs)] in the order the strata must come: relevance grades, then rank buckets,
    both ascending by number."""
    rel, rank = {}, {}
    n = 0
    with open(input_jsonl, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            n += 1
            if r.get("relevance") is not None and r["relevance"] >= 0:
                rel[r["relevance"]] = rel.get(r["relevance"], 0) + 1
            if r.get("rank") is not None and r["rank"] >= 1:
                b = (r["rank"] - 1) // 10
                rank[b] = rank.get(b, 0) + 1
    want = [("relevance=%d" % g, rel[g]) for g in sorted(rel)]
    want += [("rank=%d-%d" % (10 * b + 1, 10 * b + 10), rank[b]) for b in sorted(rank)]
    return n, want


def cmd_check(input_jsonl, maps):
    n, want = expected(input_jsonl)
    if not any(name.startswith("rank=") and int(name[5:].split("-")[0]) > 100 for name, _ in want):
        fail("the input has no rank above 100: the check cannot tell numeric from string order")
    for path in maps:
        with open(path, encoding="utf-8") as f:
            # object_pairs_hook keeps the strata in file order (and any repeated name).
            cj = json.load(f, object_pairs_hook=lambda kv: kv)
        top = dict(cj)
        pairs = dict(top["pairs"])
        if pairs["used"] != n or pairs["total"] != n:
            fail("%s: %s of %s pairs used, want all %d input records" % (
                path, pairs["used"], pairs["total"], n))
            continue
        # Direction strata (which pairs moved with the axiom needs the scores: stats_check.py
        # checks their members) come last, against before with, and hold every used pair once.
        direction = [(name, dict(body)["pairs"]) for name, body in top["strata"]
                     if name.startswith("direction=")]
        strata = [(name, body) for name, body in top["strata"] if not name.startswith("direction=")]
        if [d for d, _ in direction] != sorted(d for d, _ in direction) or \
                top["strata"][-len(direction):] != [x for x in top["strata"] if x[0] in dict(direction)] \
                or sum(c for _, c in direction) != n:
            fail("%s: direction strata %s do not come last or do not hold the %d pairs" % (
                path, direction, n))
            continue
        got_names = [name for name, _ in strata]
        if got_names != [name for name, _ in want]:
            fail("%s: strata in the order %s, want %s" % (path, got_names, [w for w, _ in want]))
            continue
        bad = 0
        for (name, body), (_, count) in zip(strata, want):
            body = dict(body)
            cells = [c for row in dict(body["heads"])["n"] for c in row]
            if body["pairs"] != count or any(c != count for c in cells):
                fail("%s: stratum %s has %s pairs (heads n %s), want %d from the input" % (
                    path, name, body["pairs"], sorted(set(cells)), count))
                bad += 1
        if not bad:
            print("ok: %s: %d strata in numeric order with the input's pair counts: %s" % (
                path, len(want), ", ".join("%s %d" % w for w in want)))
    return 1 if failures else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "make":
        cmd_make(argv[2], argv[3])
        return 0
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(argv[2], argv[3:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
