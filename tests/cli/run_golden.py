"""Checks `mechir run` against the golden patching fixture tests/data/patching/demo-tfc1.json
(float64 reference, one forward per patch), never against mechir's own other outputs.

  run_golden.py inputs FIXTURE DIR      writes DIR/start.tsv and DIR/end.tsv: the fixture's
                                        cases as `inject` input (qid = "c<case>"), one file
                                        per --position
  run_golden.py check FIXTURE VOCAB RUN_DIR...
                                        checks each run's pairs.jsonl[.zst] (token ids, scores,
                                        per-pair heads and blocks effects, every token role)
                                        and circuit.json (heads mean/std/n, blocks_by_role
                                        means) against the fixture; the roles are computed
                                        here from the ids, VOCAB (the model's vocab.txt) and
                                        the query text by the rule of docs/PERTURBATIONS.md;
                                        prints one line per check, exits 1 on failure

Standard library and the zstd CLI (for pairs.jsonl.zst) only.
"""
import json
import math
import os
import re
import subprocess
import sys
import unicodedata

COMPONENTS = ("resid_pre", "attn_out", "mlp_out")
RAW_ATOL = RAW_RTOL = 1e-5  # the fixture's tolerance for raw scores
EFFECT_ATOL = 1e-4  # the fixture's tolerance for effects (|perturbed - baseline| >= 0.05)
CLS, SEP = 101, 102  # bert-base-uncased ids (the demo model's vocab.txt)

ROLES = ("cls", "sep", "query_term", "query_other", "injected", "doc_term", "doc_match",
         "doc_other")  # Chen, Merullo and Eickhoff (SIGIR 2024), in the program's order

failures = 0
checked = set()  # fixture cases whose pair was found with the fixture's ids
roles_seen = set()  # the roles of the checked pairs
vocab = []  # wordpiece of each id


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def ok(msg):
    print("ok: " + msg)


def close(got, want, atol, rtol=0.0):
    return got is not None and math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)


def compare(what, got, want, atol, rtol=0.0):
    """Element-wise comparison of two nested lists of numbers; reports the first mismatch."""
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            fail("%s: shape differs (got %s, want %d entries)" % (
                what, len(got) if isinstance(got, list) else type(got).__name__, len(want)))
            return False
        return all(compare("%s[%d]" % (what, i), g, w, atol, rtol)
                   for i, (g, w) in enumerate(zip(got, want)))
    if not close(got, want, atol, rtol):
        fail("%s: got %r, want %.9g (diff %.3g > %g + %g |want|)" % (
            what, got, want, abs(got - want) if isinstance(got, (int, float)) else float("nan"),
            atol, rtol))
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
    write_inputs(load_fixture(fixture), out_dir)


def write_inputs(fx, out_dir):
    """The fixture's cases as `inject` input, one file per position (also run_atp_golden.py's)."""
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


# Stopwords of three or more letters that can occur in the fixture's queries (the C side uses
# NLTK's English list plus "also", "via", "etc"); a query word wrongly left out of this set
# would show as a doc_match the program does not give, never as a silent pass.
STOPWORDS = {"the", "and", "for", "with", "from", "into", "that", "this", "its", "are", "was",
             "were", "been", "has", "have", "had", "but", "not", "can", "will", "via", "also",
             "etc", "about", "over", "under", "than", "then", "each", "all", "any", "some",
             "such", "only", "own", "same", "very", "just", "more", "most", "other"}


def query_terms(query):
    """Query terms from the query text, as docs/PERTURBATIONS.md states the rule: lowercased,
    accents stripped, split at whitespace and punctuation, minus stopwords and words shorter
    than 3 characters."""
    text = "".join(ch for ch in unicodedata.normalize("NFD", query.lower())
                   if unicodedata.category(ch) != "Mn")
    return {w for w in re.findall(r"[^\W_]+", text) if len(w) >= 3 and w not in STOPWORDS}


def words(toks):
    """[(start, end, spelling)] of a list of wordpieces: a piece and its ## continuations."""
    out = []
    for i, t in enumerate(toks):
        if t.startswith("##") and out:
            s, _, w = out[-1]
            out[-1] = (s, i + 1, w + t[2:])
        else:
            out.append((i, i + 1, t))
    return out


def term_runs(ws, term_ws):
    """Indices of the pieces inside runs of words that spell the term's words in order."""
    hit = set()
    m = len(term_ws)
    for k in range(len(ws) - m + 1):
        if m and all(ws[k + j][2] == term_ws[j] for j in range(m)):
            hit.update(range(ws[k][0], ws[k + m - 1][1]))
    return hit


def roles_expected(vocab, query, ids_b, ids_p):
    """Every position's role computed from the ids, the vocabulary and the query text by the rule
    of docs/PERTURBATIONS.md (cross-encoder, no stemming): cls, sep, query_term / query_other,
    injected (where the inputs differ), doc_term / doc_match / doc_other, words judged on the
    pieces inside the window and the document's words taken without the injected pieces."""
    T = len(ids_b)
    first_sep = ids_b.index(SEP)
    assert ids_b[0] == CLS and ids_b[-1] == SEP and ids_p[-1] == SEP
    injected = [t for t in range(T) if ids_b[t] != ids_p[t]]
    assert injected == list(range(injected[0], injected[-1] + 1)), "injected pieces in one run"
    tok = [vocab[i] for i in ids_p]
    assert "[UNK]" not in tok, "the rule gives [UNK] no word; the fixture has none"
    term_ws = [w for _, _, w in words([tok[t] for t in injected])]
    out = [None] * T
    out[0], out[first_sep], out[T - 1] = "cls", "sep", "sep"
    for t in injected:
        out[t] = "injected"
    q = list(range(1, first_sep))
    qw = words([tok[t] for t in q])
    hit = term_runs(qw, term_ws)
    for k, t in enumerate(q):
        out[t] = "query_term" if k in hit else "query_other"
    d = [t for t in range(first_sep + 1, T - 1) if out[t] is None]
    dw = words([tok[t] for t in d])
    hit = term_runs(dw, term_ws)
    terms = query_terms(query)
    for s, e, w in dw:
        for k in range(s, e):
            out[d[k]] = "doc_term" if k in hit else "doc_match" if w in terms else "doc_other"
    assert None not in out
    return out


def mean(xs):
    return sum(xs) / len(xs)


def score_at(maps, comp):
    """The patched score of comp ("head L.H" or "SITE L T") in a fixture case or output."""
    parts = comp.split()
    if parts[0] == "head":
        layer, head = (int(v) for v in parts[1].split("."))
        return maps["heads_scores"][layer][head]
    return maps["blocks_scores"][parts[0]][int(parts[1])][int(parts[2])]


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
        # Roles: every position's role computed here from the ids, the vocabulary and the
        # query text (roles_expected), not taken from the program.
        want = roles_expected(vocab, c["query"], c["ids_baseline"], c["ids_perturbed"])
        roles = p.get("roles", [])
        if roles != want:
            bad = [(t, r, w) for t, (r, w) in enumerate(zip(roles, want)) if r != w][:5]
            fail("%s: roles differ from the rule (%d positions vs %d; first (position, got, "
                 "want): %s)" % (name, len(roles), len(want), bad))
            good = False
        roles_seen.update(want)
        if good:
            ok("%s: ids, roles, both scores, heads and blocks effects equal the fixture's" % name)
        used.append((c, want))

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
    # pairs that have it; effects from the fixture, roles from roles_expected.
    bb = cj["blocks_by_role"]
    role_names = bb["roles"]
    good = True
    for ci, comp in enumerate(COMPONENTS):
        for l in range(L):
            for ri, role in enumerate(role_names):
                per_pair = []
                for c, roles in used:
                    xs = [c["blocks"][comp][l][t] for t, r in enumerate(roles) if r == role]
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


def cmd_check(fixture, vocab_path, run_dirs):
    fx = load_fixture(fixture)
    with open(vocab_path, encoding="utf-8") as f:
        vocab.extend(line.rstrip("\n") for line in f)
    for d in run_dirs:
        check_run(fx, d)
    if len(checked) != len(fx["cases"]) or not checked:
        fail("%d of the fixture's %d cases were checked" % (len(checked), len(fx["cases"])))
    else:
        ok("all %d fixture cases checked" % len(checked))
    # The by-role checks mean something only if the cases give every role.
    if roles_seen != set(ROLES):
        fail("the fixture's pairs give the roles %s, not all of %s" % (sorted(roles_seen), ROLES))
    else:
        ok("the fixture's pairs give all %d roles" % len(ROLES))
    return 1 if failures else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "inputs":
        cmd_inputs(argv[2], argv[3])
        return 0
    if len(argv) >= 5 and argv[1] == "check":
        return cmd_check(argv[2], argv[3], argv[4:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
