#!/bin/sh
# `mechir merge` end to end: the maps of two shards merge to the whole run's numbers (the
# full-precision check is tests/unit/test_cmap.c), in either argument order to the same bytes;
# sites are kept; overlapping and incompatible maps are refused with a one-line reason.
set -u
MECHIR=$1
ROOT=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() {
    d=$1; shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
head -12 "$ROOT/examples/demo-200.tsv" > "$T/all.tsv"
awk 'NR % 2 == 1' "$T/all.tsv" > "$T/a.tsv"
awk 'NR % 2 == 0' "$T/all.tsv" > "$T/b.tsv"
run() { "$MECHIR" run --model "$ROOT/examples/demo-ce" --sweep heads --max-len 64 "$@" > /dev/null 2>&1; }
run --input "$T/all.tsv" --out "$T/all"
run --input "$T/a.tsv" --out "$T/a" --site lab-a
run --input "$T/b.tsv" --out "$T/b" --site lab-b
run --input "$T/b.tsv" --out "$T/b5" --min-delta 0.5
check "three runs" test -s "$T/all/circuit.cmap" -a -s "$T/a/circuit.cmap" -a -s "$T/b/circuit.cmap"
"$MECHIR" merge "$T/a/circuit.cmap" "$T/b/circuit.cmap" -o "$T/ab.cmap" 2> /dev/null
check "merge exits 0" test $? -eq 0
"$MECHIR" merge "$T/b/circuit.cmap" "$T/a/circuit.cmap" -o "$T/ba.cmap" 2> /dev/null
check "argument order gives identical bytes" cmp -s "$T/ab.cmap" "$T/ba.cmap"
"$MECHIR" report "$T/ab.cmap" --format json > "$T/ab.json"
"$MECHIR" report "$T/all/circuit.cmap" --format json > "$T/all.json"
check "merged shards: the whole run's exact estimates, means and std to 1e-12" \
    /usr/bin/python3 "$ROOT/tests/cli/stats_check.py" --same "$T/ab.json" "$T/all.json"
check "both sites are kept" sh -c "'$MECHIR' report '$T/ab.cmap' --format json | grep -q '\"sites\":\[\"lab-a\",\"lab-b\"\]'"
"$MECHIR" merge "$T/a/circuit.cmap" "$T/all/circuit.cmap" -o "$T/x.cmap" 2> "$T/err1"
check "overlapping maps refused (exit 1)" test $? -eq 1
check "the message says how many pairs and gives one" grep -q "share 6 pairs (e.g. pair [0-9a-f]\{16\})" "$T/err1"
check "no output left after a refusal" test ! -e "$T/x.cmap"
"$MECHIR" merge "$T/a/circuit.cmap" "$T/b5/circuit.cmap" -o "$T/x.cmap" 2> "$T/err2"
check "incompatible maps refused (exit 1)" test $? -eq 1
check "the message names the field and both values" grep -q "min_delta differs: 0.001.* vs 0.5" "$T/err2"
check "one line on stderr" test "$(wc -l < "$T/err2")" -eq 1
"$MECHIR" merge -o "$T/x.cmap" 2> /dev/null
check "no inputs: exit 2" test $? -eq 2
if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all merge checks passed"
