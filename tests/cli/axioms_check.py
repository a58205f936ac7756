"""The perturbations replace (TFC1-R), tfc2 and lnc2 end to end through mechir's command line,
checked against values mechir's perturber does not make (docs/PERTURBATIONS.md):

  axioms_check.py MECHIR REPO_ROOT [TMP_DIR]   (default: a fresh temporary directory)

For each perturbation, on a hand-written TSV:
  1. `mechir pairs --perturb K` (roberta-ce-tiny and bert-ce-tiny): every pair's document part,
     decoded with the model's vocabulary, is the text written here by hand for the record (the
     query term or copies put where the perturbation's rule says), and the inputs differ exactly
     at the positions with the role injected;
  2. `mechir patch --ids-baseline/--ids-perturbed --sweep heads` of each pair: on roberta-ce-tiny
     both scores and every head's patched score and effect against the float64 torch reference
     of roberta_ref.py (roberta_check.check_maps, the golden fixtures' tolerances); on
     bert-ce-tiny both scores against `mechir score` of the hand-written texts (the tokenizer's
     own path, not the perturber's ids);
  3. `mechir run --perturb K` (roberta-ce-tiny, one process): each pair's two scores in
     OUT/pairs.jsonl.zst against the reference, and circuit.json's perturbation kind;
  4. bad input: an unknown --perturb name suggests the nearest valid one; lnc2 refuses
     --position start.
Prints one line per check; exits 1 on any failure or when nothing was compared.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roberta_check as rc  # noqa: E402
import roberta_ref  # noqa: E402
import run_golden  # noqa: E402
from run_golden import fail, ok  # noqa: E402

KINDS = ("replace", "tfc2", "lnc2")
MAX_LEN = 40
# qid, query (one query term: the pick is not left to the seed), docno, document
RECORDS = [
    ("q1", "what is a library", "d1", "Zstandard is a real-time compression algorithm"),
    ("q2", "where is the compression", "d2", "Poppler renders PDF files quickly"),
]
# What each record's document reads as under each perturbation, written by hand from the rule:
# replace swaps the last content word that is no query term; tfc2 appends the term once to
# both and once more to the perturbed; lnc2 repeats the document (copies counted by the check
# from max_len, fillers " a" in the baseline).
EXPECT = {
    "replace": [("Zstandard is a real-time compression algorithm",
                 "Zstandard is a real-time compression library"),
                ("Poppler renders PDF files quickly", "Poppler renders PDF files compression")],
    "tfc2": [("Zstandard is a real-time compression algorithm library a",
              "Zstandard is a real-time compression algorithm library library"),
             ("Poppler renders PDF files quickly compression a",
              "Poppler renders PDF files quickly compression compression")],
}
counts = {"pairs": 0, "texts": 0, "scores": 0, "heads": 0}


def mechir(*args):
    return rc.mechir(*args)


def run_raw(*args):
    """mechir's whole outcome (exit status, stdout, stderr), for refusals."""
    return subprocess.run([MECHIR] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def vocab_of(model):
    """id -> token string, from tokenizer.json (RoBERTa) or vocab.txt (BERT)."""
    path = os.path.join(model, "tokenizer.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            v = json.load(f)["model"]["vocab"]
        return {i: t for t, i in v.items()}
    with open(os.path.join(model, "vocab.txt"), encoding="utf-8") as f:
        return {i: line.rstrip("\n") for i, line in enumerate(f)}


def decode(vocab, ids, bert):
    """ASCII text of tokens: WordPiece words joined by spaces ("##" glues), byte-level BPE with
    "Ġ" for a space. Punctuation is compared without its spaces (see norm)."""
    toks = [vocab[i] for i in ids]
    if bert:
        out = ""
        for t in toks:
            out += t[2:] if t.startswith("##") else (" " if out else "") + t
        return out
    return "".join(toks).replace("\u0120", " ")


def norm(text, bert):
    text = text.replace(" - ", "-").replace(" -", "-").replace("- ", "-")
    return text.lower() if bert else text


def doc_span(p, bert):
    """(first, end) of the document's tokens: after the first [SEP] (</s></s>), before the last."""
    ids = p["perturbed_ids"]
    sep = 102 if bert else 2
    first = ids.index(sep) + (1 if bert else 2)
    return first, len(ids) - 1


def check_pairs(model, kind, tmp, bert):
    name = os.path.basename(model)
    tsv = os.path.join(tmp, "in.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        for r in RECORDS:
            f.write("\t".join(r) + "\n")
    out = os.path.join(tmp, "%s-%s.jsonl" % (name, kind))
    if mechir("pairs", "--model", model, "--input", tsv, "--perturb", kind, "--max-len",
              str(MAX_LEN), "--seed", "3", "-o", out) is None:
        return []
    with open(out, encoding="utf-8") as f:
        pairs = [json.loads(x) for x in f if x.strip()]
    if len(pairs) != len(RECORDS):
        fail("%s %s: %d pairs, want %d" % (name, kind, len(pairs), len(RECORDS)))
        return []
    vocab = vocab_of(model)
    texts = []
    for i, p in enumerate(pairs):
        counts["pairs"] += 1
        if p["perturbation"] != kind:
            fail("%s %s pair %d: perturbation %r" % (name, kind, i, p["perturbation"]))
        ib, ip, roles = p["baseline_ids"], p["perturbed_ids"], p["roles"]
        differ = [t for t in range(len(ib)) if ib[t] != ip[t]]
        if not differ or any(roles[t] != "injected" for t in differ):
            fail("%s %s pair %d: inputs differ at %s, roles there %s" % (
                name, kind, i, differ, [roles[t] for t in differ]))
        a, b = doc_span(p, bert)
        got = (decode(vocab, ib[a:b], bert), decode(vocab, ip[a:b], bert))
        if kind == "lnc2":  # k copies of the document (k read off the text), fillers " a"
            d = RECORDS[i][3]
            k = norm(got[1], bert).count(norm(d, bert))
            n_fill = sum(1 for r in roles[a:b] if r == "injected")
            want = (d + " a" * n_fill, " ".join([d] * k))
            if k < 2:
                fail("%s lnc2 pair %d: %d copies in %r" % (name, i, k, got[1]))
        else:
            want = EXPECT[kind][i]
        for side, g, w in (("baseline", got[0], want[0]), ("perturbed", got[1], want[1])):
            counts["texts"] += 1
            if norm(g, bert) != norm(w, bert):
                fail("%s %s pair %d %s: reads %r, want %r" % (name, kind, i, side, g, w))
        texts.append((p, want))
    ok("%s %s: %d pairs read as the hand-written texts" % (name, kind, len(pairs)))
    return texts


def check_patch_bert(model, kind, texts):
    for i, (p, (tb, tp)) in enumerate(texts):
        q = RECORDS[i][1]
        r = mechir("patch", "--model", model, "--ids-baseline", ",".join(map(str, p["baseline_ids"])),
                   "--ids-perturbed", ",".join(map(str, p["perturbed_ids"])), "--token-types",
                   ",".join(map(str, p["token_types"])), "--sweep", "heads", "--min-delta", "1e-9")
        if r is None:
            continue
        out = json.loads(r)
        for side, text in (("baseline", tb), ("perturbed", tp)):
            s = mechir("score", "--model", model, "--query", q, "--doc", text, "--max-len",
                       str(MAX_LEN))
            if s is None:
                continue
            want, got = float(s), out["score_" + side]
            counts["scores"] += 1
            if not run_golden.close(got, want, 1e-6, 1e-5):
                fail("bert %s pair %d: patch's %s score %r, mechir score of %r: %r" % (
                    kind, i, side, got, text, want))
    ok("bert-ce-tiny %s: patch's scores equal mechir score of the hand-written texts" % kind)


def check_patch_roberta(kind, texts):
    for i, (p, _) in enumerate(texts):
        n0 = rc.stats["patched"]
        rc.patch_pair("roberta %s pair %d" % (kind, i), p["baseline_ids"], p["perturbed_ids"],
                      blocks=False)
        counts["heads"] += rc.stats["patched"] - n0
        counts["scores"] += 2


def check_run(model, kind, tmp):
    tsv = os.path.join(tmp, "in.tsv")
    out = os.path.join(tmp, "run-" + kind)
    if mechir("run", "--model", model, "--input", tsv, "--perturb", kind, "--max-len",
              str(MAX_LEN), "--seed", "3", "--min-delta", "1e-9", "--out", out) is None:
        return
    with open(os.path.join(out, "circuit.json"), encoding="utf-8") as f:
        cj = json.load(f)
    if cj["perturbation"]["kind"] != kind:
        fail("run %s: circuit.json perturbation kind %r" % (kind, cj["perturbation"]["kind"]))
    z = subprocess.run(["zstd", "-dc", os.path.join(out, "pairs.jsonl.zst")],
                       stdout=subprocess.PIPE, check=False)
    pairs = [json.loads(x) for x in z.stdout.decode().splitlines() if x.strip()]
    if len(pairs) != len(RECORDS):
        fail("run %s: %d pairs in pairs.jsonl.zst, want %d" % (kind, len(pairs), len(RECORDS)))
    for p in pairs:
        for side in ("baseline", "perturbed"):
            counts["scores"] += 1
            want = rc.REF.forward(p[side + "_ids"])
            if not run_golden.close(p["score_" + side], want, rc.ATOL, rc.RTOL):
                fail("run %s pair %s: score_%s %r, reference %.9g" % (
                    kind, p["pair_id"], side, p["score_" + side], want))
    ok("run %s: %d pairs' scores equal the reference; circuit.json says %s" % (
        kind, len(pairs), kind))


def check_bad_input(model, tmp):
    tsv = os.path.join(tmp, "in.tsv")
    for bad, near in (("tcf2", "tfc2"), ("TFC2", "tfc2"), ("replacement", "replace"),
                      ("lnc", "lnc1")):
        r = run_raw("pairs", "--model", model, "--input", tsv, "--perturb", bad)
        err = r.stderr.decode()
        if r.returncode != 1 or r.stdout or "did you mean '%s'" % near not in err or \
                len(err.strip().splitlines()) != 1:
            fail("--perturb %s: exit %d, stderr %r (want one line suggesting %s)" % (
                bad, r.returncode, err, near))
        else:
            ok("--perturb %s: %s" % (bad, err.strip()))
    r = run_raw("pairs", "--model", model, "--input", tsv, "--perturb", "lnc2", "--position",
                "start")
    if r.returncode != 1 or "position end only" not in r.stderr.decode():
        fail("lnc2 --position start: exit %d, %r" % (r.returncode, r.stderr.decode()))
    else:
        ok("lnc2 --position start refused: %s" % r.stderr.decode().strip())


def main():
    global MECHIR
    MECHIR, root = sys.argv[1], sys.argv[2]
    tmp = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="mch_axioms.")
    try:
        return check_all(root, tmp)
    finally:
        if len(sys.argv) <= 3:
            shutil.rmtree(tmp, ignore_errors=True)


def check_all(root, tmp):
    rc.MECHIR = MECHIR
    models = os.path.join(root, "tests", "data", "models")
    roberta = os.path.join(models, "roberta-ce-tiny")
    bert = os.path.join(models, "bert-ce-tiny")
    if not roberta_ref.golden(roberta):
        fail("the reference does not reproduce roberta-ce-tiny's golden.json")
        return 1
    rc.MODEL = roberta
    rc.REF = roberta_ref.Roberta(roberta)
    for kind in KINDS:
        check_patch_roberta(kind, check_pairs(roberta, kind, tmp, False))
        check_patch_bert(bert, kind, check_pairs(bert, kind, tmp, True))
        check_run(roberta, kind, tmp)
    check_bad_input(bert, tmp)
    print("compared %d pairs, %d texts, %d scores, %d patched head scores; against the reference "
          "max |score diff| %.3g, max |(patched - baseline) diff| %.3g" % (
              counts["pairs"], counts["texts"], counts["scores"], counts["heads"],
              rc.stats["worst"], rc.stats["worst_delta"]))
    if not all(counts.values()):
        fail("nothing was compared")
    return 1 if run_golden.failures or rc.run_golden.failures else 0


if __name__ == "__main__":
    sys.exit(main())
