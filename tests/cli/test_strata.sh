#!/bin/sh
# Strata of `mechir run` and `mechir merge` with ranks above 100 and relevance grades above 9:
# they come in numeric order (relevance=2 before relevance=10, rank=11-20 before rank=101-110
# before rank=1001-1010), each with the pair count computed from the input by strata_check.py,
# in the whole run's circuit.json, in each shard's, and in the merge of the two shards.
# Needs python3 (standard library only).
# usage: test_strata.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
CHECK=$ROOT/tests/cli/strata_check.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || {
    echo "FAIL: python3 is missing (Debian python3; deploy/install-deps.sh installs it)"
    exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_strata.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1

die() {
    [ -f "$T/err" ] && sed 's/^/    | /' "$T/err"
    echo "FAIL: $*"
    exit 1
}
"$PY" "$CHECK" make "$ROOT/examples/debian-demo-pairs.tsv" "$T/all.jsonl" || die "cannot write the input"
awk 'NR % 2 == 1' "$T/all.jsonl" >"$T/a.jsonl"
awk 'NR % 2 == 0' "$T/all.jsonl" >"$T/b.jsonl"
# A tiny min_delta so that every pair is used (the counts are of input records).
for part in all a b; do
    "$MECHIR" run --model "$ROOT/examples/demo-ce" --input "$T/$part.jsonl" --sweep heads \
        --max-len 64 --min-delta 1e-9 --out "$T/$part" >/dev/null 2>"$T/err" ||
        die "mechir run on $part.jsonl: exit status $?"
done
"$MECHIR" merge "$T/a/circuit.cmap" "$T/b/circuit.cmap" -o "$T/ab.cmap" 2>"$T/err" ||
    die "mechir merge: exit status $?"
"$MECHIR" report "$T/ab.cmap" --format json >"$T/ab.json" 2>"$T/err" ||
    die "mechir report --format json: exit status $?"
fails=0
"$PY" "$CHECK" check "$T/all.jsonl" "$T/all/circuit.json" "$T/ab.json" || fails=1
"$PY" "$CHECK" check "$T/a.jsonl" "$T/a/circuit.json" || fails=1
"$PY" "$CHECK" check "$T/b.jsonl" "$T/b/circuit.json" || fails=1
[ $fails -eq 0 ] || { echo "FAIL: strata"; exit 1; }
echo "PASS: strata"
