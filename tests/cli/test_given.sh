#!/bin/sh
# Given (pre-perturbed) pairs and ir_datasets inputs on the command line:
# - the golden patching fixture's cases (tests/data/patching/demo-tfc1.json, a float64
#   reference) written as query, baseline and perturbed documents (given_check.py): `mechir pairs
#   --perturb given` (JSONL and TSV) aligns them to the fixture's ids with the expected alignment
#   and the built-in perturber's ids, types and roles; `mechir run --perturb given` equals the
#   fixture (run_golden.py: scores, heads and blocks effects, roles, circuit.json); `mechir patch`
#   of each case's texts equals the fixture and `mechir patch` of the built-in perturber's ids;
# - bad given pairs named FILE:LINE: reason (missing side, more than one span, the same tokens,
#   beyond the window, --max-span); refusals in one line (TREC with given, --max-span without it,
#   two-span texts in `mechir patch`);
# - ir_datasets names (query_id, doc_id, title) in JSONL pairs, TREC JSONL docs and topics, and
#   a three-column docs TSV, against the ids of the texts they must give.
# usage: test_given.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
FIXTURE=$ROOT/tests/data/patching/demo-tfc1.json
MODEL=$ROOT/examples/demo-ce
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "FAIL: python3 is missing"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_given.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1
fail() {
    echo "FAIL: $*"
    exit 1
}
ok() {
    echo "ok: $*"
}
# expect STATUS NAME CMD...: runs CMD (stdout NAME.out, stderr NAME.err), wants STATUS
expect() {
    want=$1
    name=$2
    shift 2
    "$@" >"$T/$name.out" 2>"$T/$name.err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        sed 's/^/    | /' "$T/$name.err"
        fail "$name: exit status $rc, want $want: $*"
    fi
}
# has NAME TEXT: NAME.err holds the line TEXT
has() {
    grep -qxF "$2" "$T/$1.err" || {
        sed 's/^/    | /' "$T/$1.err"
        fail "$1: stderr lacks the line: $2"
    }
}

"$PY" "$ROOT/tests/cli/given_check.py" inputs "$FIXTURE" "$MODEL/vocab.txt" "$T" ||
    fail "cannot build the inputs"

# ---- pairs: aligned to the fixture's ids, equal to the built-in perturber's pairs ----
expect 0 built_start "$MECHIR" pairs --model "$MODEL" --input "$T/start.tsv" --perturb inject \
    --position start --max-len 64 -o "$T/built_start.jsonl"
expect 0 built_end "$MECHIR" pairs --model "$MODEL" --input "$T/end.tsv" --perturb inject \
    --position end --max-len 64 -o "$T/built_end.jsonl"
cat "$T/built_start.jsonl" "$T/built_end.jsonl" >"$T/built.jsonl"
expect 0 given_pairs "$MECHIR" pairs --model "$MODEL" --input "$T/given.jsonl" --perturb given \
    --max-len 64 -o "$T/given_pairs.jsonl"
"$PY" "$ROOT/tests/cli/given_check.py" pairs "$FIXTURE" "$T/given_pairs.jsonl" "$T/built.jsonl" ||
    fail "mechir pairs --perturb given (JSONL)"
expect 0 given_tsv "$MECHIR" pairs --model "$MODEL" --input "$T/given.tsv" --perturb given \
    --max-len 64 -o "$T/given_tsv.jsonl"
"$PY" - "$T/given_pairs.jsonl" "$T/given_tsv.jsonl" <<'EOF' || fail "TSV given pairs differ from JSONL ones"
import json, sys
a = [json.loads(x) for x in open(sys.argv[1])]
b = [json.loads(x) for x in open(sys.argv[2])]
assert len(a) == len(b) == 6, (len(a), len(b))
for x, y in zip(a, b):
    for k in ("baseline_ids", "perturbed_ids", "token_types", "roles", "alignment"):
        assert x[k] == y[k], (x["qid"], k)
    assert y["pair_key"] == "k" + x["qid"][1:] and x["pair_id"] != y["pair_id"], y["pair_key"]
EOF
ok "mechir pairs --perturb given: TSV (with pair_id) gives the JSONL's pairs, keyed apart"

# ---- run: the fixture's numbers ----
expect 0 run "$MECHIR" run --model "$MODEL" --input "$T/given.jsonl" --perturb given \
    --max-len 64 --sweep heads,blocks --pairs-format jsonl --out "$T/run"
"$PY" "$ROOT/tests/cli/run_golden.py" check "$FIXTURE" "$MODEL/vocab.txt" "$T/run" ||
    fail "mechir run --perturb given differs from the golden patching fixture"
grep -q '"alignment":{"kind":"prepend","position":0,"baseline_tokens":0,"perturbed_tokens":1,"baseline_fillers":1,"perturbed_fillers":0}' \
    "$T/run/pairs.jsonl" || fail "run pairs.jsonl lacks the alignment"
grep -q '"kind":"given"' "$T/run/circuit.json" || fail "circuit.json does not name the perturbation given"
ok "mechir run --perturb given: alignment in pairs.jsonl, perturbation given in circuit.json"

# ---- patch: each case's texts against the fixture and against the built pair's ids ----
n=0
for i in 0 1 2 3 4 5; do
    "$PY" - "$T/given.jsonl" "$T/built.jsonl" "$i" "$T/case" <<'EOF' || fail "case $i texts"
import json, sys
g = [json.loads(x) for x in open(sys.argv[1])][int(sys.argv[3])]
b = {p["qid"]: p for p in (json.loads(x) for x in open(sys.argv[2]))}[g["qid"]]
for k, v in (("query", g["query"]), ("baseline", g["text"]), ("perturbed", g["perturbed"]),
             ("ids_b", ",".join(map(str, b["baseline_ids"]))),
             ("ids_p", ",".join(map(str, b["perturbed_ids"]))),
             ("types", ",".join(map(str, b["token_types"])))):
    open(sys.argv[4] + "." + k, "w").write(v)
EOF
    C=$T/case
    expect 0 "patch_given_$i" "$MECHIR" patch --model "$MODEL" --max-len 64 --sweep heads,blocks \
        --query "$(cat "$C.query")" --baseline "$(cat "$C.baseline")" \
        --perturbed "$(cat "$C.perturbed")"
    expect 0 "patch_ids_$i" "$MECHIR" patch --model "$MODEL" --sweep heads,blocks \
        --ids-baseline "$(cat "$C.ids_b")" --ids-perturbed "$(cat "$C.ids_p")" \
        --token-types "$(cat "$C.types")"
    "$PY" "$ROOT/tests/cli/given_check.py" patch "$FIXTURE" "$i" "$T/patch_given_$i.out" \
        "$T/patch_ids_$i.out" || fail "mechir patch of case $i's texts"
    n=$((n + 1))
done
[ $n -eq 6 ] || fail "$n cases patched"
ok "mechir patch: the six cases' texts aligned, equal to the fixture and to the built pairs"

# ---- bad given pairs ----
B=$T/bad.jsonl
{
    echo '{"qid":"q","query":"red apple","docno":"d1","text":"an apple a day"}'
    echo '{"qid":"q","query":"red apple","docno":"d2","text":"the cat sat on the mat","perturbed":"the dog sat on a the mat now"}'
    echo '{"qid":"q","query":"red apple","docno":"d3","text":"an apple","perturbed":"An  apple"}'
    echo '{"qid":"q","query":"red apple","docno":"d4","text":"an apple a day","perturbed":"an apple a day red apple red apple"}'
    echo '{"qid":"q","query":"red apple","docno":"d5","perturbed":"an apple"}'
    echo '{"qid":"q","query":"red apple","docno":"d6","text":"an apple a day","perturbed":"an apple a day red"}'
} >"$B"
expect 0 bad_pairs "$MECHIR" pairs --model "$MODEL" --input "$B" --perturb given --max-span 3 \
    -o "$T/bad_pairs.jsonl"
has bad_pairs "$B:1: missing \"perturbed\""
has bad_pairs "$B:5: missing \"text\""
has bad_pairs "$B:2: the documents differ in more than one span (document tokens 1..5 of the baseline and 1..7 of the perturbed one keep a token between changes)"
has bad_pairs "$B:3: the baseline and perturbed documents have the same tokens"
has bad_pairs "$B:4: the documents differ in 4 tokens from document token 4, more than --max-span 3"
[ "$(wc -l <"$T/bad_pairs.jsonl")" -eq 1 ] || fail "bad_pairs: want 1 pair written"
grep -q '"docno":"d6"' "$T/bad_pairs.jsonl" || fail "bad_pairs: d6 not written"
ok "bad given pairs named FILE:LINE: reason, the good one written"
# --max-span is part of the job: recorded in circuit.json, and a resume with another refused
expect 0 span_run "$MECHIR" run --model "$MODEL" --input "$B" --perturb given --max-span 3 \
    --max-len 64 --sweep heads --bootstrap 0 --out "$T/span_run"
grep -q '"filler":"a","seed":[0-9]*,"max_len":64,"max_query_len":64,"min_delta":0.001,"max_span":3,' \
    "$T/span_run/circuit.json" || fail "span_run: circuit.json does not record max_span 3"
expect 1 span_resume "$MECHIR" run --model "$MODEL" --input "$B" --perturb given --max-span 4 \
    --max-len 64 --sweep heads --bootstrap 0 --out "$T/span_run" --resume
grep -q "max span: 3 in the journal, 4 now" "$T/span_resume.err" || {
    sed 's/^/    | /' "$T/span_resume.err"
    fail "span_resume: the refusal does not name the max span"
}
ok "--max-span recorded in circuit.json; a resume with another --max-span refused"
# the appended span beyond --max-len
L=$T/long.jsonl
echo '{"qid":"q","query":"red apple","docno":"d","text":"one two three four five six seven eight","perturbed":"one two three four five six seven eight red"}' >"$L"
expect 1 beyond "$MECHIR" run --model "$MODEL" --input "$L" --perturb given --max-len 12 \
    --sweep heads --out "$T/beyond"
has beyond "$L:1: the documents differ at document tokens 8..8, beyond the 7 the max_len 12 window holds"
[ ! -e "$T/beyond/circuit.cmap" ] || fail "beyond: a circuit map was written"
ok "a pair differing beyond the window: skipped with its reason, no circuit map"
# without --perturb given, a perturbed field is a bad line
expect 1 not_given "$MECHIR" run --model "$MODEL" --input "$T/given.jsonl" --sweep heads \
    --out "$T/not_given"
has not_given "$T/given.jsonl:1: has \"perturbed\": given pairs need --perturb given"
ok "a perturbed field without --perturb given: a bad line saying so"
# refusals in one line
expect 1 trec_given "$MECHIR" pairs --model "$MODEL" --perturb given --topics "$T/x" \
    --docs "$T/x" --qrels "$T/x"
has trec_given "mechir pairs: --perturb given reads the pairs of --input FILE (TSV or JSONL), not a TREC set"
expect 1 span_alone "$MECHIR" pairs --model "$MODEL" --input "$T/given.jsonl" --max-span 3
has span_alone "mechir pairs: --max-span applies to --perturb given only"
expect 1 patch_two "$MECHIR" patch --model "$MODEL" --sweep heads --query "red apple" \
    --baseline "the cat sat on the mat" --perturbed "the dog sat on a the mat now"
has patch_two "mechir patch: the baseline and perturbed texts cannot be aligned: the documents differ in more than one span (document tokens 1..5 of the baseline and 1..7 of the perturbed one keep a token between changes)"
[ ! -s "$T/patch_two.out" ] || fail "patch_two: something on stdout"
ok "refusals: TREC with given, --max-span without it, two-span texts in mechir patch"

# ---- ir_datasets names and titles ----
I=$T/ird.jsonl
echo '{"query_id":"q1","query":"red apple","doc_id":"d1","title":"Apple pie","text":"an apple a day"}' >"$I"
expect 0 ird "$MECHIR" pairs --model "$MODEL" --input "$I" --perturb inject --term red \
    -o "$T/ird_pairs.jsonl"
# [CLS] red apple [SEP] apple pie an apple a day red [SEP]: bert-base-uncased ids by hand
grep -q '"qid":"q1","docno":"d1",.*"perturbed_ids":\[101,2417,6207,102,6207,11345,2019,6207,1037,2154,2417,102\]' \
    "$T/ird_pairs.jsonl" || { cat "$T/ird_pairs.jsonl"; fail "ird: ids of the title-joined document"; }
printf 'docno\ttitle\ttext\nd1\tApple pie\tan apple a day\n' >"$T/docs.tsv"
echo '{"query_id":"q1","text":"red apple"}' >"$T/topics.jsonl"
echo 'q1 0 d1 1' >"$T/qrels.txt"
echo '{"doc_id":"d1","title":"Apple pie","text":"an apple a day"}' >"$T/docs.jsonl"
for docs in docs.tsv docs.jsonl; do
    expect 0 "trec_$docs" "$MECHIR" pairs --model "$MODEL" --topics "$T/topics.jsonl" \
        --docs "$T/$docs" --qrels "$T/qrels.txt" --perturb inject --term red \
        -o "$T/trec_$docs.jsonl"
    grep -q '"perturbed_ids":\[101,2417,6207,102,6207,11345,2019,6207,1037,2154,2417,102\]' \
        "$T/trec_$docs.jsonl" || { cat "$T/trec_$docs.jsonl"; fail "TREC $docs: ids"; }
    # the df pass reads the same collection with its titles
    expect 0 "df_$docs" "$MECHIR" pairs --model "$MODEL" --topics "$T/topics.jsonl" \
        --docs "$T/$docs" --qrels "$T/qrels.txt" --perturb tdc --write-df "$T/df_$docs.tsv" \
        -o /dev/null
    grep -qx 'pie	1' "$T/df_$docs.tsv" || { cat "$T/df_$docs.tsv"; fail "df pass of $docs: the title's words"; }
done
ok "ir_datasets names: query_id, doc_id, title (JSONL pairs, JSONL topics and docs, 3-column docs TSV)"
echo "PASS: given"
