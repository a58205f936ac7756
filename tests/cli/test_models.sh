#!/bin/sh
# Hostile models (issue 14, item 10), made at test time from tests/data/models by
# hostile_model.py (Debian's /usr/bin/python3; no binary fixture is committed):
# - config.json contradicting the weights is refused, naming the tensor and the config field:
#   type_vocab_size 0 beside bert.embeddings.token_type_embeddings.weight (2 rows), fewer
#   num_hidden_layers than the weights hold, an ELECTRA embedding_size equal to hidden_size beside
#   an embeddings_project tensor; by score and by patch, nothing on stdout;
# - a NaN weight: score (one pair, --input naming FILE, qid and docno) and patch fail with exit 1
#   and nothing on stdout; run counts every pair failed, each named by its pair id;
# - score --check-weights names the first non-finite tensor and element (NaN in F32, inf in F16,
#   -inf in BF16) and accepts a clean model, counting exactly its float values (from the header).
set -u
MECHIR=$1
ROOT=$2
PY=/usr/bin/python3
HM="$PY $ROOT/tests/cli/hostile_model.py"
MODELS=$ROOT/tests/data/models
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$ROOT/tests/cli/checks.sh"
[ -x "$PY" ] || { echo "FAIL - $PY is missing (Debian python3; deploy/install-deps.sh)"; exit 1; }
# refused NAME WANT...: the last command's exit was 1 ($rc), $T/err is one line holding every
# WANT, and $T/out is empty.
refused() {
    name=$1; shift
    check "$name: exit 1 (got $rc)" test "$rc" -eq 1
    check "$name: one line on stderr ($(head -c 400 "$T/err"))" test "$(wc -l < "$T/err")" -eq 1
    for w in "$@"; do check "$name: the message names '$w'" grep -qF -- "$w" "$T/err"; done
    check "$name: nothing on stdout" test ! -s "$T/out"
}
Q="cat food"
BASE="a dog eats food"
PERT="a cat eats food"
score() { "$MECHIR" score --model "$1" --query "$Q" --doc "$BASE" > "$T/out" 2> "$T/err"; rc=$?; }
patch() {
    "$MECHIR" patch --model "$1" --query "$Q" --baseline "$BASE" --perturbed "$PERT" \
        --sweep heads > "$T/out" 2> "$T/err"
    rc=$?
}

# ---- control: an unedited copy scores ----
$HM copy "$MODELS/bert-ce-tiny" "$T/copy"
score "$T/copy"
check "the unedited copy scores (exit $rc, $(cat "$T/out"))" test "$rc" -eq 0 -a -s "$T/out"

# ---- config.json contradicting the weights ----
$HM copy "$MODELS/bert-ce-tiny" "$T/tt0"
$HM config "$T/tt0" type_vocab_size 0
score "$T/tt0"
refused "score, type_vocab_size 0" "tensor 'bert.embeddings.token_type_embeddings.weight' has shape [2, 32]" \
    "type_vocab_size is 0"
patch "$T/tt0"
refused "patch, type_vocab_size 0" "'bert.embeddings.token_type_embeddings.weight'" "type_vocab_size is 0"

$HM copy "$MODELS/bert-ce-tiny" "$T/layers"
$HM config "$T/layers" num_hidden_layers 1
score "$T/layers"
refused "score, num_hidden_layers 1 of 2" "'bert.encoder.layer.1.attention.self.query.weight'" \
    "num_hidden_layers is 1"

$HM copy "$MODELS/distilbert-ce-tiny" "$T/dlayers"
$HM config "$T/dlayers" n_layers 1
score "$T/dlayers"
refused "score, DistilBERT n_layers 1 of 2" "transformer.layer.1.attention.q_lin.weight'" "n_layers is 1"

$HM copy "$MODELS/electra-ce-tiny" "$T/proj"
$HM config "$T/proj" embedding_size 32
score "$T/proj"
refused "score, ELECTRA embedding_size = hidden_size beside embeddings_project" \
    "'electra.embeddings_project.weight' has shape [32, 16]" "embedding_size equals hidden_size"

# ---- a NaN weight ----
$HM copy "$MODELS/bert-ce-tiny" "$T/nan"
$HM poison "$T/nan" bert.encoder.layer.1.output.dense.weight 7 nan
score "$T/nan"
refused "score one pair, NaN weight" "--query and --doc: non-finite score nan"
printf 'q1\t%s\td1\t%s\nq2\t%s\td2\t%s\n' "$Q" "$BASE" "$Q" "$PERT" > "$T/pairs.tsv"
"$MECHIR" score --model "$T/nan" --input "$T/pairs.tsv" > "$T/out" 2> "$T/err"
rc=$?
refused "score --input, NaN weight" "$T/pairs.tsv: pair qid q1, docno d1: non-finite score nan"
patch "$T/nan"
refused "patch, NaN weight" "non-finite score (baseline nan, perturbed nan)"

# An infinite classifier bias: every score is +inf (not NaN).
$HM copy "$MODELS/bert-ce-tiny" "$T/inf"
$HM poison "$T/inf" classifier.bias 0 inf
score "$T/inf"
refused "score one pair, inf classifier bias" "--query and --doc: non-finite score inf"
patch "$T/inf"
refused "patch, inf classifier bias" "non-finite score (baseline inf, perturbed inf)"

head -4 "$ROOT/examples/demo-200.tsv" > "$T/in.tsv"
"$MECHIR" run --model "$T/nan" --input "$T/in.tsv" --max-len 32 --out "$T/run" > /dev/null \
    2> "$T/run.err"
rc=$?
n=$(grep -c "non-finite score (baseline nan, perturbed nan)" "$T/run.err")
check "run, NaN weight: a message for each of the 4 pairs (got $n)" test "$n" -eq 4
n=$(grep -c "pair [0-9a-f]\{16\} (" "$T/run.err")
check "run, NaN weight: each names its pair id, qid and docno (got $n)" test "$n" -eq 4
check "run, NaN weight: 4 pairs failed, none used ($(tail -1 "$T/run.err"))" \
    grep -q "4 pairs: 0 used, 0 skipped, 4 failed" "$T/run.err"
check "run, NaN weight: circuit.json counts 4 failed" \
    $PY -c "import json,sys; p=json.load(open(sys.argv[1]))['pairs']; sys.exit(not (p['failed']==4 and p['used']==0))" "$T/run/circuit.json"

# ---- --check-weights ----
"$MECHIR" score --model "$T/nan" --check-weights > "$T/out" 2> "$T/err"
rc=$?
refused "--check-weights, NaN in F32" \
    "tensor 'bert.encoder.layer.1.output.dense.weight' (F32) holds NaN at element 7 (of 2048)"
$HM copy "$MODELS/bert-ce-tiny-f16" "$T/inf16"
$HM poison "$T/inf16" bert.embeddings.position_embeddings.weight 5000 inf # past the first 1024
"$MECHIR" score --model "$T/inf16" --check-weights --query "$Q" --doc "$BASE" > "$T/out" 2> "$T/err"
rc=$?
refused "--check-weights with a pair, inf in F16 (nothing scored)" \
    "tensor 'bert.embeddings.position_embeddings.weight' (F16) holds inf at element 5000 (of 16384)"
$HM copy "$MODELS/bert-ce-tiny-bf16" "$T/ninf"
$HM poison "$T/ninf" bert.encoder.layer.0.intermediate.dense.bias 63 -inf
"$MECHIR" score --model "$T/ninf" --check-weights > "$T/out" 2> "$T/err"
rc=$?
refused "--check-weights, -inf in BF16 (the last element)" \
    "tensor 'bert.encoder.layer.0.intermediate.dense.bias' (BF16) holds -inf at element 63 (of 64)"
want=$($PY -c "
import json, struct, sys
f = open(sys.argv[1], 'rb'); (n,) = struct.unpack('<Q', f.read(8)); h = json.loads(f.read(n))
total = 0
for k, v in h.items():
    if k != '__metadata__' and v['dtype'] in ('F32', 'F16', 'BF16', 'F64'):
        c = 1
        for d in v['shape']: c *= d
        total += c
print(total)" "$MODELS/bert-ce-tiny/model.safetensors")
"$MECHIR" score --model "$MODELS/bert-ce-tiny" --check-weights > "$T/out" 2> "$T/err"
rc=$?
check "--check-weights, a clean model: exit 0 (got $rc)" test "$rc" -eq 0
check "... all $want float values are finite ($(cat "$T/err"))" grep -q "all $want float values are finite" "$T/err"
check "... nothing on stdout" test ! -s "$T/out"

finish
