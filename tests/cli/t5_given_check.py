"""Given (pre-perturbed) pairs on a MonoT5, checked against independent references.

Each case is a query with a baseline and a perturbed document of different token lengths. The
expected prompt ids come from python3-sentencepiece (the model's spiece.model): the longer side's
prompt "Query: {q} Document: {d} Relevant:" </s> exactly, the shorter side's with the filler's id
inserted after its differing span, the span found as docs/INPUTS.md defines it (the longest
common prefix of the two documents' pieces, then the longest common suffix of the rest). Then:
- `mechir patch --query --baseline --perturbed`: ids, alignment, and every heads,
  decoder_heads, cross_heads and blocks value against t5_ref.py's float64 torch patching (the
  reference is first checked against golden.json);
- `mechir pairs --perturb given` (JSONL): the same ids, alignment and roles (the prompt's own
  tokens sep, the span injected);
- `mechir run --perturb given`: each pair's scores and heads maps against the same reference;
- an appended query term equals the built-in perturber's pair (`--perturb inject --term`), ids
  and roles;
- a pair that cannot be aligned is skipped with FILE:LINE and its reason.

usage: t5_given_check.py MECHIR MODEL_DIR TMPDIR"""
import json
import os
import subprocess
import sys

import sentencepiece

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import t5_ref  # noqa: E402

FAILS = t5_ref.FAILS
QUERY = "network manager"
CASES = [  # (baseline, perturbed, kind)
    ("a tool to manage wireless connections", "a tool to manage wireless connections network",
     "append"),
    ("a tool to manage wireless connections", "network a tool to manage wireless connections",
     "prepend"),
    ("a tool to manage wireless connections", "a tool to manage wireless network connections",
     "insert"),
    ("a tool to manage wireless network connections", "a tool to manage wireless connections",
     "delete"),
    ("a tool to manage wireless connections", "a tool to manage the network manager connections",
     "replace"),
]


def run(cmd, want=0):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != want:
        raise SystemExit("t5_given_check.py: %s: exit %d (want %d): %s" %
                         (" ".join(cmd[:3]), r.returncode, want, r.stderr.strip()))
    return r


def expected(sp, q, bt, pt, filler):
    """The aligned prompt ids of both sides and the alignment, from sentencepiece alone."""
    b, p = sp.encode(bt), sp.encode(pt)
    pre = 0
    while pre < min(len(b), len(p)) and b[pre] == p[pre]:
        pre += 1
    suf = 0
    while suf < min(len(b), len(p)) - pre and b[-1 - suf] == p[-1 - suf]:
        suf += 1
    nb, np_ = len(b) - pre - suf, len(p) - pre - suf
    head = len(sp.encode("Query: %s Document:" % q))
    out = []
    for text, n in ((bt, nb), (pt, np_)):
        ids = sp.encode("Query: %s Document: %s Relevant:" % (q, text)) + [sp.eos_id()]
        at = head + pre + n
        out.append(ids[:at] + [filler] * (max(nb, np_) - n) + ids[at:])
    al = {"position": pre, "baseline_tokens": nb, "perturbed_tokens": np_,
          "baseline_fillers": max(nb, np_) - nb, "perturbed_fillers": max(nb, np_) - np_}
    return out[0], out[1], al, head


def check_ids(what, got, want):
    if list(got) != list(want):
        FAILS.append("%s: ids %s, want %s" % (what, got, want))
        return False
    return True


def check_alignment(what, got, want, kind):
    w = dict(want, kind=kind)
    if got != w:
        FAILS.append("%s: alignment %s, want %s" % (what, got, w))


def check_roles(what, roles, ids, head, q_n, al):
    """The prompt's tokens are sep, the span's positions injected, the rest text roles."""
    span = max(al["baseline_tokens"], al["perturbed_tokens"])
    s0 = head + al["position"]
    n_inj = sum(r == "injected" for r in roles)
    bad = [t for t, r in enumerate(roles)
           if (s0 <= t < s0 + span) != (r == "injected")]
    frame = list(range(0, head - q_n - 2)) + [head - 2, head - 1] + list(
        range(len(ids) - 6, len(ids)))
    bad += [t for t in frame if roles[t] != "sep"]
    if len(roles) != len(ids) or bad or n_inj != span:
        FAILS.append("%s: roles %s (wrong at %s)" % (what, roles, bad[:5]))


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: t5_given_check.py MECHIR MODEL_DIR TMPDIR")
    mechir, d, tmp = sys.argv[1:]
    g = json.load(open(os.path.join(d, "golden.json")))
    t5 = t5_ref.T5(d)
    tid, fid = g["true_id"], g["false_id"]
    n_golden = t5_ref.check_golden(t5, g)
    if FAILS or not n_golden:
        raise SystemExit("t5_given_check.py: the reference does not match golden.json: %s" %
                         FAILS[:3])
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(d, "spiece.model"))
    filler = sp.piece_to_id("\u2581a")
    q_n = len(sp.encode(QUERY))
    counts = {"n": 0, "worst": 0.0, "worst_diff": 0.0}
    want = {}
    n_ids = 0
    # mechir patch of the texts: ids and alignment from sentencepiece, every value from torch
    for k, (bt, pt, kind) in enumerate(CASES):
        wb, wp, al, head = expected(sp, QUERY, bt, pt, filler)
        want[k] = (wb, wp, al, head, kind)
        o = json.loads(run([mechir, "patch", "--model", d, "--sweep", "heads,blocks",
                            "--min-delta", "1e-9", "--query", QUERY, "--baseline", bt,
                            "--perturbed", pt]).stdout)
        what = "patch case %d (%s)" % (k, kind)
        ok = check_ids(what + " baseline", o["ids_baseline"], wb)
        ok = check_ids(what + " perturbed", o["ids_perturbed"], wp) and ok
        n_ids += len(wb) + len(wp)
        check_alignment(what, o.get("alignment"), al, kind)
        if not ok:
            continue
        base, pert, heads, blocks = t5_ref.reference_patch(t5, wb, wp, tid, fid)
        t5_ref.close(what + " score_baseline", o["score_baseline"], base)
        t5_ref.close(what + " score_perturbed", o["score_perturbed"], pert)
        if abs(pert - base) < 1e-4:
            FAILS.append("%s: perturbed - baseline %.3g, too small to test" % (what, pert - base))
        want[k] += (base, pert, heads)
        counts["base_got"] = o["score_baseline"]
        for name, w in heads.items():
            t5_ref.compare_map("%s %s" % (what, name), o[name + "_scores"], o[name], w, base,
                               pert, counts)
        for name, w in blocks.items():
            t5_ref.compare_map("%s blocks.%s" % (what, name), o["blocks_scores"][name],
                               o["blocks"][name], w, base, pert, counts)
        print("  %s: %d tokens, perturbed - baseline %.4g" % (what, len(wb), pert - base))
    n_patch = counts["n"]
    # mechir pairs and mechir run of the same cases as JSONL, plus one that cannot be aligned
    path = os.path.join(tmp, "t5_given.jsonl")
    with open(path, "w") as f:
        for k, (bt, pt, _) in enumerate(CASES):
            f.write(json.dumps({"query_id": "q", "query": QUERY, "doc_id": "d%d" % k, "text": bt,
                                "perturbed": pt}) + "\n")
        f.write(json.dumps({"qid": "q", "query": QUERY, "docno": "two", "text": "one two three "
                            "four five six", "perturbed": "one seven three four eight nine "
                            "ten six"}) + "\n")
    r = run([mechir, "pairs", "--model", d, "--input", path, "--perturb", "given", "-o",
             os.path.join(tmp, "t5_pairs.jsonl")])
    if "%s:%d: the documents differ in more than one span" % (path, len(CASES) + 1) \
            not in r.stderr:
        FAILS.append("pairs: the two-span line is not skipped with FILE:LINE: %s" % r.stderr)
    recs = [json.loads(x) for x in open(os.path.join(tmp, "t5_pairs.jsonl"))]
    if len(recs) != len(CASES):
        FAILS.append("pairs: %d records, want %d" % (len(recs), len(CASES)))
    for rec in recs:
        k = int(rec["docno"][1:])
        wb, wp, al, head, kind = want[k][:5]
        what = "pairs case %d (%s)" % (k, kind)
        check_ids(what + " baseline", rec["baseline_ids"], wb)
        check_ids(what + " perturbed", rec["perturbed_ids"], wp)
        n_ids += len(wb) + len(wp)
        check_alignment(what, rec.get("alignment"), al, kind)
        check_roles(what, rec["roles"], wb, head, q_n, al)
        if rec["perturbation"] != "given" or any(rec["token_types"]):
            FAILS.append("%s: perturbation %s, token types %s" %
                         (what, rec["perturbation"], rec["token_types"]))
    # the built-in perturber's pair of the appended term (inject) is the given append pair
    tsv = os.path.join(tmp, "t5_built.tsv")
    with open(tsv, "w") as f:
        f.write("q\t%s\td0\t%s\n" % (QUERY, CASES[0][0]))
    run([mechir, "pairs", "--model", d, "--input", tsv, "--perturb", "inject", "--term", "network",
         "-o", os.path.join(tmp, "t5_built.jsonl")])
    built = json.loads(open(os.path.join(tmp, "t5_built.jsonl")).readline())
    given = [x for x in recs if x["docno"] == "d0"]
    if not given or any(built[f] != given[0][f] for f in ("baseline_ids", "perturbed_ids",
                                                           "roles", "token_types")):
        FAILS.append("the built inject pair differs from the given append pair: %s / %s" %
                     (built, given[:1]))
    # mechir run: scores and heads maps against the reference
    out = os.path.join(tmp, "t5_run")
    run([mechir, "run", "--model", d, "--input", path, "--perturb", "given", "--sweep", "heads",
         "--min-delta", "1e-9", "--out", out, "--pairs-format", "jsonl"])
    runs = [json.loads(x) for x in open(os.path.join(out, "pairs.jsonl"))]
    n_run = 0
    for rec in runs:
        k = int(rec["docno"][1:])
        if len(want[k]) < 8:
            continue
        wb, wp, al, head, kind, base, pert, heads = want[k]
        what = "run case %d (%s)" % (k, kind)
        check_ids(what + " baseline", rec["baseline_ids"], wb)
        t5_ref.close(what + " score_baseline", rec["score_baseline"], base)
        t5_ref.close(what + " score_perturbed", rec["score_perturbed"], pert)
        counts["base_got"] = rec["score_baseline"]
        before = counts["n"]
        for name, w in heads.items():
            t5_ref.compare_map("%s %s" % (what, name), rec[name + "_scores"], rec[name], w, base,
                               pert, counts)
        n_run += counts["n"] - before
    if len(runs) != len(CASES):
        FAILS.append("run: %d pairs, want %d" % (len(runs), len(CASES)))
    if FAILS:
        print("\n".join(FAILS[:30]), file=sys.stderr)
        raise SystemExit("t5_given_check.py: %d mismatches" % len(FAILS))
    if not n_patch or not n_run or not n_ids:
        raise SystemExit("t5_given_check.py: nothing compared")
    print("%s: %d cases; %d prompt ids from sentencepiece; %d patched values (patch) and %d "
          "(run) against the reference, max |score error| %.3g" %
          (os.path.basename(d), len(CASES), n_ids, n_patch, n_run, counts["worst"]))


if __name__ == "__main__":
    main()
