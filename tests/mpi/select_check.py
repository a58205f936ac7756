"""--select top-delta checked against a selection made here from an unselected run's scores.

  select_check.py grades PAIRS.tsv OUT.jsonl
      JSONL records of the TSV pairs with relevance grades 0, 1, 2 and no grade (null), so every
      per-grade group, the one without a grade included, has pairs.
  select_check.py check K PER_GRADE PLAIN_OUT SELECT_OUT
      PLAIN_OUT is a run of the same input without --select (its per-pair output holds both
      scores and the heads effects of every pair). Here: delta = score_perturbed -
      score_baseline, the K largest (per relevance grade when PER_GRADE is 1; no grade is a group
      of its own), ties by pair id then index. SELECT_OUT must have selected exactly these pairs
      (selection.json), patched exactly these (its per-pair output and run.json), with the
      group thresholds made here, and its circuit.json heads means must be the means of the
      selected pairs' heads effects of PLAIN_OUT. Exits 1 on a failure.

The per-pair output is pairs.jsonl, or pairs.jsonl.zst (read through zstd -dc). Standard
library only.
"""
import json
import os
import struct
import subprocess
import sys

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def pairs_of(out):
    path = os.path.join(out, "pairs.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    else:
        text = subprocess.run(["zstd", "-dc", path + ".zst"], check=True,
                              capture_output=True).stdout.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def f32(x):
    """The float32 a score printed with 9 significant digits was (scores are float32)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def grades(tsv, out):
    labels = [0, 1, 2, None, 2, 1, 0, None, 1]
    with open(tsv, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
        for i, line in enumerate(f):
            qid, query, docno, text = line.rstrip("\n").split("\t")[:4]
            rec = {"qid": qid, "query": query, "docno": docno, "text": text,
                   "relevance": labels[i % len(labels)]}
            o.write(json.dumps(rec) + "\n")


def expected(plain, k, per_grade):
    """{pair id: delta} of the pairs to select, and {group: (scored, selected, threshold)}."""
    groups = {}
    for p in plain:
        if "error" in p:
            continue
        g = p.get("relevance") if per_grade else None
        d = f32(p["score_perturbed"]) - f32(p["score_baseline"])
        groups.setdefault(g, []).append((-d, int(p["pair_id"], 16), p["index"], p["pair_id"], d))
    chosen, summary = {}, {}
    for g, items in groups.items():
        items.sort()
        top = items[:k]
        for it in top:
            chosen[it[3]] = it[4]
        summary[g] = (len(items), len(top), top[-1][4])
    return chosen, summary


def check(k, per_grade, plain_out, sel_out):
    plain = pairs_of(plain_out)
    want, summary = expected(plain, k, per_grade)
    if len(want) < 2:
        fail("the reference selects %d pairs: too few to tell" % len(want))
    with open(os.path.join(sel_out, "selection.json"), encoding="utf-8") as f:
        sel = json.load(f)
    got = {p["pair_id"]: p["delta"] for p in sel["pairs"]}
    if set(got) != set(want):
        fail("selection.json chose %d pairs, the reference %d; only in selection.json: %s; "
             "only in the reference: %s" % (len(got), len(want), sorted(set(got) - set(want))[:5],
                                             sorted(set(want) - set(got))[:5]))
    for pid, d in got.items():
        if pid in want and d != want[pid]:
            fail("pair %s: delta %r in selection.json, %r from the unselected run" %
                 (pid, d, want[pid]))
    if sel["k"] != k or sel["per_grade"] != bool(per_grade):
        fail("selection.json says k %s per_grade %s" % (sel["k"], sel["per_grade"]))
    if sel["pairs_scored"] != len(plain) or sel["pairs_selected"] != len(want):
        fail("selection.json counts %d scored, %d selected; want %d, %d" %
             (sel["pairs_scored"], sel["pairs_selected"], len(plain), len(want)))
    got_groups = {g["relevance"]: (g["scored"], g["selected"], g["threshold"])
                  for g in sel["groups"]}
    if got_groups != summary:
        fail("groups %s in selection.json, %s here" % (got_groups, summary))
    patched = pairs_of(sel_out)
    ids = [p["pair_id"] for p in patched]
    if sorted(ids) != sorted(want):
        fail("the selection run patched %d pairs, not the %d selected" % (len(ids), len(want)))
    if [p["index"] for p in patched] != sorted(p["index"] for p in patched):
        fail("the selection run's pairs are not in input order")
    with open(os.path.join(sel_out, "run.json"), encoding="utf-8") as f:
        run = json.load(f)
    if run["pairs"]["total"] != len(want) or run.get("selection", {}).get(
            "pairs_selected") != len(want):
        fail("run.json: pairs total %s, selection %s" % (run["pairs"]["total"],
                                                         run.get("selection")))
    # The map's heads means from the unselected run's effects of the selected pairs.
    with open(os.path.join(sel_out, "circuit.json"), encoding="utf-8") as f:
        cmap = json.load(f)
    means = cmap["heads"]["mean"]
    by_id = {p["pair_id"]: p for p in plain}
    used = [by_id[pid]["heads"] for pid in want if "heads" in by_id[pid]]
    worst = 0.0
    for l, row in enumerate(means):
        for h, m in enumerate(row):
            ref = sum(u[l][h] for u in used) / len(used)
            worst = max(worst, abs(ref - m))
            if abs(ref - m) > 1e-6 + 1e-5 * abs(ref):
                fail("head %d.%d: mean %r in circuit.json, %r from the unselected run's pairs" %
                     (l, h, m, ref))
    if not failures:
        print("ok: %d pairs selected of %d (%d groups), as computed here; heads means within %.2g"
              % (len(want), len(plain), len(summary), worst))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "grades":
        grades(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "check":
        check(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        print(__doc__)
        sys.exit(2)
    sys.exit(1 if failures else 0)


main()
