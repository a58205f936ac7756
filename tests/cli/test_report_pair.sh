#!/bin/sh
# `mechir report --pairs OUT/pairs.jsonl[.zst] --pair ID`: a small real run of the demo
# cross-encoder (heads and blocks sweeps), once with --pairs-format jsonl and once with the default
# pairs.jsonl.zst; each view's SVGs render with rsvg-convert to PNG; pair_view_check.py (python3
# with torch) holds every blocks cell to the run's JSON exactly, the token labels to the ids looked
# up in vocab.txt, and the attention patterns to a float64 torch forward of the same ids; bad
# input (an id not in the file, a malformed id, --heads without --model, a malformed or outside
# head, no model for the tokens) is one line on stderr, a non-zero exit, and leaves an existing
# view untouched and no new one. rsvg-convert missing: skipped (exit 77), failed under CI=true.
set -u
MECHIR=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$2
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() {
    d=$1; shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
if ! command -v rsvg-convert >/dev/null 2>&1; then
    echo "rsvg-convert is missing (Debian librsvg2-bin; deploy/install-deps.sh installs it)"
    [ "${CI:-}" = true ] && { echo "FAIL - rsvg-convert is needed under CI=true"; exit 1; }
    exit 77
fi
if ! $PY -c 'import torch' 2>/dev/null; then
    echo "FAIL - $PY has no torch (Debian python3-torch; deploy/install-deps.sh installs it)"
    exit 1
fi
MODEL="$ROOT/examples/demo-ce"
CHECK="$ROOT/tests/cli/pair_view_check.py"

head -3 "$ROOT/examples/demo-200.tsv" > "$T/in.tsv"
"$MECHIR" run --model "$MODEL" --input "$T/in.tsv" --sweep heads,blocks --max-len 64 --seed 1 \
    --pairs-format jsonl --out "$T/runj" > /dev/null 2>&1
check "a run with --pairs-format jsonl" test -s "$T/runj/pairs.jsonl"
"$MECHIR" run --model "$MODEL" --input "$T/in.tsv" --sweep heads,blocks --max-len 64 --seed 1 \
    --out "$T/runz" > /dev/null 2>&1
check "a run with the default pairs.jsonl.zst" test -s "$T/runz/pairs.jsonl.zst"
ids=$($PY -c 'import json,sys; print(" ".join(json.loads(l)["pair_id"] for l in open(sys.argv[1])))' \
    "$T/runj/pairs.jsonl")
set -- $ids
check "the run has 3 pairs" test $# -eq 3
P1=$1 P3=$3

# Renders every SVG of a view; each must give a PNG.
render() {
    n=0
    for s in "$1"/*.svg; do
        if rsvg-convert "$s" -o "$s.png" 2> "$T/rsvg.err" && [ -s "$s.png" ] &&
            [ "$(head -c 4 "$s.png" | tail -c 3)" = PNG ]; then
            n=$((n + 1))
        else
            echo "rsvg-convert failed on $s: $(cat "$T/rsvg.err")"; return 1
        fi
        rm -f "$s.png"
    done
    [ "$n" -ge "$2" ]
}

# jsonl, --model: blocks and the attention of the pair's three top heads.
"$MECHIR" report --pairs "$T/runj/pairs.jsonl" --pair "$P1" --model "$MODEL" -o "$T/v1" 2> "$T/err"
check "report --pair with --model exits 0" test $? -eq 0
check "it writes index.html, blocks.svg and 3 attention figures" \
    test "$(ls "$T/v1" | tr '\n' ' ')" != "" -a "$(ls "$T/v1" | grep -c '^attention_')" -eq 3
check "every SVG of the view renders (rsvg-convert)" render "$T/v1" 4
$PY "$CHECK" "$T/runj/pairs.jsonl" "$P1" "$T/v1" "$MODEL" attention
check "pair $P1: blocks against pairs.jsonl, attention against torch" test $? -eq 0

# --heads (0x and upper case in the id) replaces the view: only the heads asked for remain.
UP=$(echo "$P1" | tr a-f A-F)
"$MECHIR" report --pairs "$T/runj/pairs.jsonl" --pair "0x$UP" --model "$MODEL" --heads 1.2,2.0 \
    -o "$T/v1" 2> "$T/err"
check "--heads 1.2,2.0 on the same DIR exits 0" test $? -eq 0
check "the view was replaced: attention_1.2.svg and attention_2.0.svg only" \
    test "$(ls "$T/v1" | grep '^attention_' | tr '\n' ' ')" = "attention_1.2.svg attention_2.0.svg "
HEADS=1.2,2.0 $PY "$CHECK" "$T/runj/pairs.jsonl" "$P1" "$T/v1" "$MODEL" attention > "$T/out" 2>&1
check "--heads 1.2,2.0: attention against torch" test $? -eq 0 || cat "$T/out"

# zst, no --model: the tokens come from the model run.json names; no attention.
"$MECHIR" report --pairs "$T/runz/pairs.jsonl.zst" --pair "$P3" -o "$T/v3" 2> "$T/err"
check "report --pair on pairs.jsonl.zst without --model exits 0" test $? -eq 0
check "every SVG of that view renders" render "$T/v3" 1
zstd -dc "$T/runz/pairs.jsonl.zst" > "$T/z.jsonl"
$PY "$CHECK" "$T/z.jsonl" "$P3" "$T/v3" "$MODEL" > "$T/out" 2>&1
check "pair $P3 from the .zst: blocks against the decompressed JSON, tokens from run.json's model" \
    test $? -eq 0 || cat "$T/out"
cmp -s "$T/runj/pairs.jsonl" "$T/z.jsonl"
check "(both runs wrote the same pairs)" test $? -eq 0

# Bad input: one line, non-zero exit, nothing written, an existing view untouched.
(cd "$T/v3" && find . -type f | sort | xargs sha256sum) > "$T/before"
bad() { # desc, expected status, expected text on stderr, args...
    d=$1 want=$2 text=$3; shift 3
    (cd "$T" && "$MECHIR" report "$@" > "$T/bad.out" 2> "$T/bad.err")
    st=$?
    lines=$(wc -l < "$T/bad.err")
    check "$d: exit $want, one line naming '$text'" \
        test "$st" -eq "$want" -a "$lines" -eq 1 -a ! -s "$T/bad.out"
    echo "   $(cat "$T/bad.err")"
    grep -qF -- "$text" "$T/bad.err" || { echo "   stderr: $(cat "$T/bad.err")"; fails=$((fails + 1)); }
}
bad "an id not in the file" 1 "no pair 00000000000000ab among its 3 pairs" \
    --pairs "$T/runj/pairs.jsonl" --pair ab -o "$T/v3"
bad "an id not in the .zst" 1 "pairs.jsonl.zst: no pair 0123456789abcdef" \
    --pairs "$T/runz/pairs.jsonl.zst" --pair 0123456789abcdef --model "$MODEL" -o "$T/v3"
bad "a malformed id" 2 "--pair needs a pair id of 16 hex digits, got 'xyz'" \
    --pairs "$T/runj/pairs.jsonl" --pair xyz -o "$T/v3"
bad "--heads without --model" 2 "--heads needs --model DIR" \
    --pairs "$T/runj/pairs.jsonl" --pair "$P1" --heads 1.1 -o "$T/v3"
bad "a malformed head" 2 "--heads" \
    --pairs "$T/runj/pairs.jsonl" --pair "$P1" --model "$MODEL" --heads 1.x -o "$T/v3"
bad "a head outside the model" 2 "--heads 9.0 is outside" \
    --pairs "$T/runj/pairs.jsonl" --pair "$P1" --model "$MODEL" --heads 1.1,9.0 -o "$T/v3"
mkdir "$T/norun" && cp "$T/runj/pairs.jsonl" "$T/norun/"
bad "no --model and no run.json beside the pairs" 2 "give --model DIR" \
    --pairs "$T/norun/pairs.jsonl" --pair "$P1" -o "$T/v3"
bad "a pairs file that does not exist" 1 "$T/nothing.jsonl" \
    --pairs "$T/nothing.jsonl" --pair "$P1" -o "$T/v3"
bad "a model that is not the run's" 1 "not the run's model" \
    --pairs "$T/runj/pairs.jsonl" --pair "$P1" --model "$ROOT/tests/data/models/bert-ce-tiny" -o "$T/v3"
$PY -c '
import json, sys
d = json.loads(open(sys.argv[1]).readline())
for k in ("heads", "blocks", "heads_scores", "blocks_scores"):
    del d[k]
d.update(error="worker 1: out of memory", baseline_ids=[], perturbed_ids=[], roles=[])
open(sys.argv[2], "w").write(json.dumps(d) + "\n")
' "$T/runj/pairs.jsonl" "$T/norun/failed.jsonl"
bad "a pair that failed in the run" 1 "has no tokens to show: it failed in the run (worker 1" \
    --pairs "$T/norun/failed.jsonl" --pair "$P1" --model "$MODEL" -o "$T/v3"
sed 's/"roles":\["cls"/"roles":["boss"/' "$T/runj/pairs.jsonl" > "$T/norun/badrole.jsonl"
bad "an unknown role" 1 "badrole.jsonl:1: pair $P1: \"roles\"[0] is not a token role" \
    --pairs "$T/norun/badrole.jsonl" --pair "$P1" --model "$MODEL" -o "$T/v3"
(cd "$T/v3" && find . -type f | sort | xargs sha256sum) > "$T/after"
check "the existing view is untouched by every refusal" cmp -s "$T/before" "$T/after"
check "no other directory was written" \
    test "$(ls -A "$T" | grep -c -v -E '^(runj|runz|v1|v3|norun|in.tsv|err|out|z.jsonl|before|after|bad.out|bad.err|rsvg.err)$')" -eq 0
(cd "$T" && "$MECHIR" report --pairs runj/pairs.jsonl --pair "$P1" > /dev/null 2>&1)
check "without -o the view goes to pair-ID" test -s "$T/pair-$P1/blocks.svg"

# A MonoT5 pair: the blocks view over its prompt (pieces from python3-sentencepiece); attention
# patterns are refused in one line.
T5="$ROOT/tests/data/models/monot5-tiny"
"$MECHIR" run --model "$T5" --input "$T/in.tsv" --sweep heads,blocks --max-len 64 --seed 1 \
    --pairs-format jsonl --out "$T/t5" > /dev/null 2>&1
check "a MonoT5 run" test -s "$T/t5/pairs.jsonl"
PT=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["pair_id"])' \
    "$T/t5/pairs.jsonl")
"$MECHIR" report --pairs "$T/t5/pairs.jsonl" --pair "$PT" --model "$T5" -o "$T/vt5" 2> "$T/err"
check "report --pair of a MonoT5 pair with --model exits 0" test $? -eq 0
check "every SVG of the MonoT5 view renders" render "$T/vt5" 1
$PY "$CHECK" "$T/t5/pairs.jsonl" "$PT" "$T/vt5" "$T5" > "$T/out" 2>&1
check "MonoT5 pair $PT: blocks against pairs.jsonl, prompt pieces from sentencepiece" \
    test $? -eq 0 || cat "$T/out"
bad "a MonoT5 with --heads" 2 "is a MonoT5: attention patterns are drawn for encoder models only" \
    --pairs "$T/t5/pairs.jsonl" --pair "$PT" --model "$T5" --heads 0.1 -o "$T/vt5"

echo "$fails failures"
[ "$fails" -eq 0 ]
