"""RoBERTa / XLM-R cross-encoders through mechir's command line, checked against the float64
torch reference of roberta_ref.py (itself checked against golden.json first) and against
hand-written token roles; never against mechir's own other outputs.

  roberta_check.py MECHIR MODEL_DIR TMP_DIR

  1. reference vs golden.json (every case's score, case 0's normalized_resid_post);
  2. `mechir score --query --doc --max-len` of every golden case vs golden.json's score;
  3. `mechir patch --ids-baseline/--ids-perturbed --sweep heads,blocks` for three pairs made from
     golden case 1 (a document token replaced by the first query token; a pad id 1 inside the
     document of the perturbed input; pads inside both): every heads/blocks patched score and
     effect vs the reference (one forward per patch); and the text path
     (--query/--baseline/--perturbed) with golden case 1's document and one word changed;
  4. `mechir run --perturb tfc1` on a small Debian-like input (one process, --cache of hook_z):
     every pair of OUT/pairs.jsonl recomputed by the reference from its ids (both scores,
     heads and blocks patched scores and effects); `mechir report` on its circuit.cmap;
     `mechir cache get` of one pair's hook_z vs the reference's z;
  5. `mechir pairs --perturb inject --term compression` on a hand-written record: the tokens
     (decoded with the model's own vocabulary) grouped into hand-written words, each with the
     role written here by hand.

Tolerances: scores and patched scores |got - want| <= 1e-5 + 1e-4 |want| (the golden
fixtures'); since patched scores of this tiny model differ from the baseline by ~1e-5..1e-3,
also the score change patched - baseline within 2e-6 + 1e-3 |want| (float32 against float64),
and each effect within the error that tolerance propagates through
(patched - baseline) / (perturbed - baseline).
Prints one line per check; exits 1 on any failure or if no value was compared.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roberta_ref  # noqa: E402
import run_golden  # noqa: E402
from run_golden import fail, ok  # noqa: E402  (one failure counter: run_golden.failures)

SITES = roberta_ref.SITES
ATOL, RTOL = 1e-5, 1e-4  # scores, patched scores
DATOL, DRTOL = 2e-6, 1e-3  # patched - baseline

stats = {"scores": 0, "patched": 0, "effects": 0, "roles": 0, "cache": 0, "worst": 0.0,
         "worst_delta": 0.0}


def mechir(*args, check=True):
    r = subprocess.run([MECHIR] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if check and r.returncode != 0:
        fail("mechir %s: exit %d: %s" % (" ".join(args[:2]), r.returncode,
                                         r.stderr.decode(errors="replace").strip()[-400:]))
        return None
    return r.stdout.decode("utf-8")


def close(got, want, atol, rtol):
    return isinstance(got, (int, float)) and run_golden.close(got, want, atol, rtol)


def check_score(what, got, want):
    stats["scores"] += 1
    if not close(got, want, ATOL, RTOL):
        fail("%s: got %r, want %.9g" % (what, got, want))
        return False
    stats["worst"] = max(stats["worst"], abs(got - want))
    return True


def check_maps(what, out, ref, sb_want, sp_want):
    """out: mechir's object with heads, heads_scores, blocks, blocks_scores (and both scores);
    ref: (heads_scores, blocks_scores) of the reference. Element-wise, every value."""
    good = check_score(what + " score_baseline", out.get("score_baseline"), sb_want)
    good &= check_score(what + " score_perturbed", out.get("score_perturbed"), sp_want)
    sb = out["score_baseline"]
    d_want = sp_want - sb_want
    heads_ref, blocks_ref = ref
    items = []  # (name, got patched, got effect, want patched)
    L, NH = len(heads_ref), len(heads_ref[0])
    hs, he = out.get("heads_scores"), out.get("heads")
    if not (isinstance(hs, list) and len(hs) == L and all(len(r) == NH for r in hs)):
        fail("%s: heads_scores shape differs from (%d, %d)" % (what, L, NH))
        return False
    for l in range(L):
        for h in range(NH):
            items.append(("head %d.%d" % (l, h), hs[l][h], he[l][h], heads_ref[l][h]))
    for s in SITES:
        T = len(blocks_ref[s][0])
        if T == 0:  # heads only
            continue
        bs, be = out["blocks_scores"][s], out["blocks"][s]
        if len(bs) != L or any(len(r) != T for r in bs):
            fail("%s: blocks_scores.%s shape differs from (%d, %d)" % (what, s, L, T))
            return False
        for l in range(L):
            for t in range(T):
                items.append(("%s %d %d" % (s, l, t), bs[l][t], be[l][t], blocks_ref[s][l][t]))
    bad = 0
    for name, gp, ge, wp in items:
        stats["patched"] += 1
        stats["effects"] += 1
        dw = wp - sb_want
        errs = []
        if not close(gp, wp, ATOL, RTOL):
            errs.append("patched score %r, want %.9g" % (gp, wp))
        if not close(gp - sb, dw, DATOL, DRTOL):
            errs.append("patched - baseline %.6g, want %.6g" % (gp - sb, dw))
        stats["worst"] = max(stats["worst"], abs(gp - wp))
        stats["worst_delta"] = max(stats["worst_delta"], abs((gp - sb) - dw))
        # effect = dw / d_want; numerator and denominator each known within the delta tolerance
        e_want = dw / d_want
        tol_n = DATOL + DRTOL * abs(dw)
        tol_d = 2 * (DATOL + DRTOL * abs(d_want))
        e_tol = (tol_n + abs(e_want) * tol_d) / max(abs(d_want) - tol_d, 1e-30) + 1e-6
        if not (isinstance(ge, (int, float)) and abs(ge - e_want) <= e_tol):
            errs.append("effect %r, want %.9g (tolerance %.3g)" % (ge, e_want, e_tol))
        if errs:
            bad += 1
            if bad <= 5:
                fail("%s %s: %s" % (what, name, "; ".join(errs)))
    if bad:
        fail("%s: %d of %d components differ from the reference" % (what, bad, len(items)))
        return False
    if not good:
        return False
    ok("%s: both scores and %d patched scores and effects (heads %dx%d, blocks 3x%dx%d) equal "
       "the reference" % (what, len(items), L, NH, L, len(blocks_ref["resid_pre"][0])))
    return True


def patch_pair(what, ids_b, ids_p, blocks=True):
    out = mechir("patch", "--model", MODEL, "--ids-baseline", ",".join(map(str, ids_b)),
                 "--ids-perturbed", ",".join(map(str, ids_p)),
                 "--sweep", "heads,blocks" if blocks else "heads", "--min-delta", "1e-9")
    if out is None:
        return
    out = json.loads(out)
    if out.get("ids_baseline") != ids_b or out.get("ids_perturbed") != ids_p:
        fail("%s: mechir patch echoed other ids" % what)
        return
    sb, sp, heads, blocks_ref = REF.patch(ids_b, ids_p, blocks=blocks)
    check_maps(what, out, (heads, blocks_ref), sb, sp)


def vocab_of(model_dir):
    """id -> token string from the model's own tokenizer.json (BPE dict or Unigram list)."""
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        m = json.load(f)["model"]
    if isinstance(m["vocab"], dict):
        out = [None] * (max(m["vocab"].values()) + 1)
        for tok, i in m["vocab"].items():
            out[i] = tok
        return out
    return [p for p, _ in m["vocab"]]


def main():
    global MECHIR, MODEL, REF
    MECHIR, MODEL, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
    name = os.path.basename(os.path.normpath(MODEL))
    if not roberta_ref.golden(MODEL):
        fail("the reference does not reproduce golden.json: nothing else is checked")
        return 1
    REF = roberta_ref.Roberta(MODEL)
    with open(os.path.join(MODEL, "golden.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    vocab = vocab_of(MODEL)

    # 2. mechir score on every golden case.
    n0 = stats["scores"]
    for i, c in enumerate(cases):
        out = mechir("score", "--model", MODEL, "--query", c["query"], "--doc", c["doc"],
                     "--max-len", str(c["max_len"]), "--max-query-len", str(c["max_len"]))
        if out is not None:
            try:
                got = float(out.strip())
            except ValueError:
                fail("%s case %d: mechir score printed %r" % (name, i, out[:80]))
                continue
            check_score("%s golden case %d score" % (name, i), got, c["score"])
    ok("%s: mechir score of %d golden cases checked (%d compared)" % (
        name, len(cases), stats["scores"] - n0))

    # 3. mechir patch on ids: pairs made from golden case 1.
    ids = cases[1]["input_ids"]
    first_doc = ids.index(2) + 2  # <s> q </s></s> d </s>
    doc = range(first_doc, len(ids) - 1)
    # the document token whose replacement by the query's first token moves the score most
    sb = REF.forward(ids)
    j = max(doc, key=lambda t: abs(REF.forward(ids[:t] + [ids[1]] + ids[t + 1:]) - sb))
    rep = ids[:j] + [ids[1]] + ids[j + 1:]
    patch_pair("%s patch (doc token %d replaced)" % (name, j), ids, rep)
    k = first_doc + 3
    pad_p = ids[:k] + [REF.pad] + ids[k + 1:]
    patch_pair("%s patch (pad id %d at %d in the perturbed doc)" % (name, REF.pad, k), ids, pad_p)
    both_b = ids[:first_doc + 1] + [REF.pad] + ids[first_doc + 2:]
    both_p = list(rep)
    both_p[first_doc + 1] = REF.pad
    if j == first_doc + 1:
        both_p[first_doc + 2] = REF.pad
    patch_pair("%s patch (pad id inside both inputs)" % name, both_b, both_p)
    # the reference's positions of a pad inside the text: pad gets padding_idx, the rest count on
    want_pos = [REF.pad + 1 + t for t in range(first_doc + 1)] + [REF.pad] + \
        [REF.pad + 1 + t for t in range(first_doc + 1, len(ids) - 1)]
    if REF.positions(both_b) != want_pos:
        fail("the reference's position ids of a pad inside the text are not padding rule's")

    # the longest sequence: max_position_embeddings - pad_token_id - 1 tokens, the last one at
    # the last position embedding (heads only: blocks would take 6 T float64 forwards)
    n_max = REF.cfg["max_position_embeddings"] - REF.pad - 1
    body = cases[9]["input_ids"][1:-1]
    long_b = [0] + (body * (n_max // len(body) + 1))[:n_max - 2] + [2]
    long_p = list(long_b)
    long_p[n_max // 2] = ids[1]
    patch_pair("%s patch (%d tokens, heads)" % (name, n_max), long_b, long_p, blocks=False)

    # 3b. the text path: golden case 1's document with one word changed (same token count).
    d0 = cases[1]["doc"]
    d1 = d0.replace(" algorithm", " fast", 1)
    out = mechir("patch", "--model", MODEL, "--query", cases[1]["query"], "--baseline", d0,
                 "--perturbed", d1, "--sweep", "heads,blocks", "--min-delta", "1e-9",
                 "--max-len", "128")
    if out is not None:
        out = json.loads(out)
        ib, ip = out.get("ids_baseline"), out.get("ids_perturbed")
        same_len = isinstance(ip, list) and len(ip) == len(ids)
        diff = [t for t in range(len(ids)) if same_len and ip[t] != ids[t]]
        if ib != ids:
            fail("%s patch --baseline: ids differ from golden case 1's input_ids" % name)
        elif len(diff) != 1 or vocab[ip[diff[0]]] not in ("\u0120fast", "\u2581fast"):
            fail("%s patch --perturbed: want golden ids with one token Gfast, differ at %s" % (
                name, diff))
        else:
            sbr, spr, heads, blocks = REF.patch(ib, ip)
            check_maps("%s patch --query/--baseline/--perturbed" % name, out, (heads, blocks),
                       sbr, spr)

    # 4. mechir run (tfc1, one process) + report + cache.
    tsv = os.path.join(tmp, "in.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        f.write(RUN_INPUT)
    run_dir = os.path.join(tmp, "run")
    out = mechir("run", "--model", MODEL, "--input", tsv, "--perturb", "tfc1", "--max-len", "64",
                 "--sweep", "heads,blocks", "--min-delta", "1e-9", "--pairs-format", "jsonl",
                 "--cache", "blocks.*.attn.hook_z", "--seed", "3", "--out", run_dir)
    if out is not None:
        with open(os.path.join(run_dir, "pairs.jsonl"), encoding="utf-8") as f:
            pairs = [json.loads(x) for x in f if x.strip()]
        n_lines = RUN_INPUT.count("\n")
        if len(pairs) != n_lines:
            fail("%s run: %d pairs for %d records" % (name, len(pairs), n_lines))
        for p in pairs:
            ib, ip = p["baseline_ids"], p["perturbed_ids"]
            what = "%s run pair %s/%s (term %s)" % (name, p["qid"], p["docno"], p["term"])
            diff = [t for t in range(len(ib)) if ib[t] != ip[t]]
            term_toks = "".join(vocab[ip[t]] for t in diff).lstrip("\u0120\u2581")
            if len(ib) != len(ip) or not diff or term_toks.lower() != p["term"]:
                fail("%s: the inputs differ at %s (%r), not by the term" % (what, diff, term_toks))
                continue
            sbr, spr, heads, blocks = REF.patch(ib, ip)
            check_maps(what, p, (heads, blocks), sbr, spr)
        if pairs:
            p = pairs[0]
            npy = os.path.join(tmp, "z.npy")
            for run, ids_r in (("baseline", p["baseline_ids"]), ("perturbed", p["perturbed_ids"])):
                cache = {}
                REF.forward(ids_r, cache=cache)
                for l in range(REF.L):
                    if mechir("cache", "get", run_dir, "--pair", p["pair_id"], "--hook",
                              "blocks.%d.attn.hook_z" % l, "--run", run, "-o", npy) is None:
                        continue
                    got = np.load(npy).astype(np.float64).reshape(-1)
                    want = cache[("z", l)].numpy().reshape(-1)
                    stats["cache"] += want.size
                    if got.shape != want.shape or not np.all(
                            np.abs(got - want) <= 1e-5 + 1e-4 * np.abs(want)):
                        fail("%s cache get %s blocks.%d.attn.hook_z: differs from the "
                             "reference's z (shape %s vs %s)" % (name, run, l, got.shape,
                                                                 want.shape))
            ok("%s: mechir cache get: %d hook_z values of pair %s equal the reference's" % (
                name, stats["cache"], p["pair_id"]))
        rep = os.path.join(tmp, "report")
        if mechir("report", os.path.join(run_dir, "circuit.cmap"), "-o", rep) is not None:
            if not os.path.getsize(os.path.join(rep, "index.html")):
                fail("%s report: empty index.html" % name)
            else:
                ok("%s: mechir report wrote %s" % (name, ", ".join(sorted(os.listdir(rep)))))

    # 5. token roles of a hand-written record under the model's tokenizer.
    check_roles(name, vocab, tmp)

    print("%s: compared %d scores, %d patched scores and %d effects, %d roles, %d cached values; "
          "max |score diff| %.3g, max |(patched - baseline) diff| %.3g" % (
              name, stats["scores"], stats["patched"], stats["effects"], stats["roles"],
              stats["cache"], stats["worst"], stats["worst_delta"]))
    if stats["patched"] == 0 or stats["scores"] == 0 or stats["roles"] == 0:
        fail("nothing was compared")
    return 1 if run_golden.failures else 0


RUN_INPUT = (
    "q1\tfast lossless compression\tzstd\tZstandard is a fast lossless compression algorithm "
    "providing high compression ratios and a command line tool.\n"
    "q1\tfast lossless compression\txz-utils\tXZ Utils is free general-purpose data compression "
    "software with a high compression ratio.\n"
    "q2\tpdf rendering library\tpoppler\tPoppler is a PDF rendering library based on the xpdf "
    "viewer, used by document viewers.\n"
    "q2\tpdf rendering library\tmupdf\tMuPDF is a lightweight PDF, XPS and EPUB viewer and "
    "rendering library written in C.\n"
    "q3\tsecure shell client\topenssh-client\tOpenSSH is a free version of the SSH connectivity "
    "tools: the secure shell client ssh and scp.\n")

# query "fast lossless compression", term "compression" injected at the end. Query terms: fast,
# lossless, compression. Roles written by hand from the rule of docs/PERTURBATIONS.md, word by
# word; each word's tokens (decoded with the model's vocabulary, marks stripped) must spell it.
ROLE_QUERY = "fast lossless compression"
ROLE_DOC = "Zstandard is a Fast lossless compression tool, not decompression. Fastest compressions."
ROLE_WORDS = [
    ("<s>", "cls"), ("fast", "query_other"), ("lossless", "query_other"),
    ("compression", "query_term"), ("</s>", "sep"), ("</s>", "sep"),
    ("Zstandard", "doc_other"), ("is", "doc_other"), ("a", "doc_other"),
    ("Fast", "doc_match"),  # a cased tokenizer: the spelling is case-folded
    ("lossless", "doc_match"), ("compression", "doc_term"), ("tool", "doc_other"),
    (",", "doc_other"), ("not", "doc_other"),
    ("decompression", "doc_other"),  # `compression` continues a word: not an occurrence
    (".", "doc_other"),
    ("Fastest", "doc_other"),  # Fast + est: one word, not the query term fast
    ("compressions", "doc_other"),  # `compression` + `s` under XLM-R: not an occurrence
    (".", "doc_other"), ("compression", "injected"), ("</s>", "sep")]


def check_roles(name, vocab, tmp):
    tsv = os.path.join(tmp, "roles.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        f.write("r1\t%s\td1\t%s\tcompression\n" % (ROLE_QUERY, ROLE_DOC))
    out = mechir("pairs", "--model", MODEL, "--input", tsv, "--perturb", "inject",
                 "--position", "end", "--max-len", "64")
    if out is None:
        return
    p = json.loads(out.splitlines()[0])
    toks = [vocab[i] for i in p["perturbed_ids"]]
    want, k = [], 0
    for word, role in ROLE_WORDS:
        spelled = ""
        while k < len(toks) and spelled != word:
            piece = toks[k]
            spelled += piece if piece in ("<s>", "</s>") else piece.lstrip("\u0120\u2581")
            want.append(role)
            k += 1
            if not word.startswith(spelled):
                break
        if spelled != word:
            fail("%s roles: the tokens %s do not spell the hand-written word %r" % (
                name, toks, word))
            return
    if k != len(toks):
        fail("%s roles: tokens left after the hand-written words: %s" % (name, toks[k:]))
        return
    stats["roles"] += len(want)
    got = p.get("roles")
    if got != want:
        bad = [(t, toks[t], g, w) for t, (g, w) in enumerate(zip(got or [], want)) if g != w]
        fail("%s roles: %d positions differ from the hand-written roles (position, token, got, "
             "want): %s" % (name, len(bad) or abs(len(got or []) - len(want)), bad[:6]))
    else:
        ok("%s: roles of %d tokens (%s) equal the hand-written ones" % (
            name, len(want), " ".join(toks)))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(main())
