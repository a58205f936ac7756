"""Given (pre-perturbed) pairs built from the golden patching fixture tests/data/patching/
demo-tfc1.json: each case written as a query, a baseline document and a perturbed document (the
term added at the start or the end, as a user's own perturbation would be), so that `mechir`
must align them to the fixture's ids.

  given_check.py inputs FIXTURE VOCAB DIR
        writes DIR/given.jsonl (qid "c<case>", docno the package; a case whose document the
        fixture cut to fit max_len 64 gets the cut document, spelled from the fixture's ids)
        and DIR/given.tsv (the same pairs as TSV, pair_id column "k<case>")
  given_check.py patch FIXTURE CASE GIVEN.json IDS.json
        compares `mechir patch` of the given texts (GIVEN.json) with the fixture's case
        (ids, both scores, heads and blocks effects: the fixture's tolerance) and with
        `mechir patch` of the built-in perturber's ids (IDS.json: every number equal)
  given_check.py pairs FIXTURE GIVEN_PAIRS.jsonl BUILT_PAIRS.jsonl
        `mechir pairs --perturb given` against the fixture's ids and the alignment each case
        must have (prepend for start, append for end, as many fillers as term tokens), and
        against `mechir pairs --perturb inject` (ids, token types and roles equal)

Standard library only; one line per check, exit 1 on failure.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_golden  # noqa: E402

SEP = 102


def n_term(c):
    return sum(1 for a, b in zip(c["ids_baseline"], c["ids_perturbed"]) if a != b)


def spelled(vocab, ids):
    """Text of wordpieces: "##" pieces glued to the piece before, the others after a space."""
    out = ""
    for i in ids:
        t = vocab[i]
        out += t[2:] if t.startswith("##") else (" " if out else "") + t
    return out


def case_texts(vocab, c):
    """The baseline and perturbed documents of a case, as a user would write them."""
    doc = c["doc"]
    ids = c["ids_baseline"]
    first_sep = ids.index(SEP)
    nt = n_term(c)
    if c["position"] == "end" and len(ids) == c["max_len"]:
        # the fixture cut the document to fit the term in: the user's document is the cut one
        doc = spelled(vocab, ids[first_sep + 1:len(ids) - 1 - nt])
    if c["position"] == "start":
        return doc, c["term"] + " " + doc
    return doc, doc + " " + c["term"]


def cmd_inputs(fixture, vocab_path, out_dir):
    fx = run_golden.load_fixture(fixture)
    with open(vocab_path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    with open(os.path.join(out_dir, "given.jsonl"), "w", encoding="utf-8") as fj, \
            open(os.path.join(out_dir, "given.tsv"), "w", encoding="utf-8") as ft:
        ft.write("qid\tquery\tdocno\ttext\tperturbed\tpair_id\n")
        for i, c in enumerate(fx["cases"]):
            base, pert = case_texts(vocab, c)
            fj.write(json.dumps({"qid": "c%d" % i, "query": c["query"], "docno": c["pkg"],
                                 "text": base, "perturbed": pert}) + "\n")
            ft.write("\t".join(["c%d" % i, c["query"], c["pkg"], base, pert, "k%d" % i]) + "\n")
    run_golden.write_inputs(fx, out_dir)  # the built-in perturber's input: start.tsv, end.tsv
    return 0


def cmd_patch(fixture, case, given_path, ids_path):
    fx = run_golden.load_fixture(fixture)
    c = fx["cases"][int(case)]
    with open(given_path, encoding="utf-8") as f:
        g = json.load(f)
    with open(ids_path, encoding="utf-8") as f:
        b = json.load(f)
    name = "case %s (%s, %s)" % (case, c["pkg"], c["position"])
    if g["ids_baseline"] != c["ids_baseline"] or g["ids_perturbed"] != c["ids_perturbed"]:
        run_golden.fail("%s: the aligned ids differ from the fixture's" % name)
    al = g.get("alignment", {})
    want_kind = "prepend" if c["position"] == "start" else "append"
    if al.get("kind") != want_kind or al.get("baseline_fillers") != n_term(c):
        run_golden.fail("%s: alignment %s, want %s with %d fillers" % (name, al, want_kind,
                                                                     n_term(c)))
    for k in ("score_baseline", "score_perturbed"):
        if not run_golden.close(g[k], c[k], run_golden.RAW_ATOL, run_golden.RAW_RTOL):
            run_golden.fail("%s: %s %r, want %.9g" % (name, k, g[k], c[k]))
    run_golden.compare(name + " heads", g.get("heads"), c["heads"], run_golden.EFFECT_ATOL)
    n = 0
    for comp in run_golden.COMPONENTS:
        run_golden.compare("%s blocks.%s" % (name, comp), g["blocks"][comp], c["blocks"][comp],
                           run_golden.EFFECT_ATOL)
        n += sum(len(r) for r in c["blocks"][comp])
    # the same pair given as the built-in perturber's ids: every number the same
    for k in ("score_baseline", "score_perturbed", "heads", "heads_scores", "blocks",
              "blocks_scores", "ids_baseline", "ids_perturbed", "token_types"):
        if g.get(k) != b.get(k):
            run_golden.fail("%s: %s differs between the given texts and the built ids" % (name, k))
    if not run_golden.failures:
        run_golden.ok("%s: patch of the given texts equals the fixture (%d heads, %d blocks "
                      "effects) and the patch of the built pair" % (
                          name, sum(len(r) for r in c["heads"]), n))
    return 1 if run_golden.failures else 0


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def cmd_pairs(fixture, given_path, built_path):
    fx = run_golden.load_fixture(fixture)
    given = read_jsonl(given_path)
    built = {p["qid"]: p for p in read_jsonl(built_path)}
    checked = 0
    for p in given:
        i = int(p["qid"][1:])
        c = fx["cases"][i]
        name = "case %d (%s, %s)" % (i, c["pkg"], c["position"])
        if p["baseline_ids"] != c["ids_baseline"] or p["perturbed_ids"] != c["ids_perturbed"]:
            run_golden.fail("%s: the aligned ids differ from the fixture's" % name)
            continue
        if p["token_types"] != c["token_types"]:
            run_golden.fail("%s: token types differ from the fixture's" % name)
        al = p.get("alignment", {})
        want_kind = "prepend" if c["position"] == "start" else "append"
        doc_start = c["ids_baseline"].index(SEP) + 1
        want_pos = 0 if want_kind == "prepend" else \
            len(c["ids_baseline"]) - 1 - n_term(c) - doc_start
        want = {"kind": want_kind, "position": want_pos, "baseline_tokens": 0,
                "perturbed_tokens": n_term(c), "baseline_fillers": n_term(c),
                "perturbed_fillers": 0}
        if al != want:
            run_golden.fail("%s: alignment %s, want %s" % (name, al, want))
        b = built.get(p["qid"])
        if not b:
            run_golden.fail("%s: no built pair" % name)
            continue
        for k in ("pair_id", "baseline_ids", "perturbed_ids", "token_types", "roles"):
            if p.get(k) != b.get(k):
                run_golden.fail("%s: %s differs from the built-in perturber's" % (name, k))
        if p["perturbation"] != "given":
            run_golden.fail("%s: perturbation %r" % (name, p["perturbation"]))
        checked += 1
    if checked != len(fx["cases"]):
        run_golden.fail("%d of %d cases checked" % (checked, len(fx["cases"])))
    else:
        run_golden.ok("mechir pairs --perturb given: %d cases with the fixture's ids, the expected "
                      "alignment, and the built-in perturber's ids, types and roles" % checked)
    return 1 if run_golden.failures else 0


def main(argv):
    if len(argv) == 5 and argv[1] == "inputs":
        return cmd_inputs(argv[2], argv[3], argv[4])
    if len(argv) == 6 and argv[1] == "patch":
        return cmd_patch(*argv[2:6])
    if len(argv) == 5 and argv[1] == "pairs":
        return cmd_pairs(*argv[2:5])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
