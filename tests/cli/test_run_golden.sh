#!/bin/sh
# `mechir run` against the golden patching fixture (tests/data/patching/demo-tfc1.json, an
# independent float64 reference): the fixture's cases, built as `--perturb inject` input with the
# fixture's term, position and max_len, must come out with the fixture's token ids, both scores,
# per-pair heads and blocks effects (pairs.jsonl.zst; pairs.jsonl for the end position, which runs with
# --pairs-format jsonl), every position's token role as run_golden.py
# computes it from the ids, the vocabulary and the query (the rule of docs/PERTURBATIONS.md),
# and circuit.json's heads mean/std/n and blocks_by_role means computed from the fixture's
# per-case maps and those roles. One process per position.
# Needs python3 (standard library only) for the JSON and the zstd CLI; run_golden.py does the checks.
# usage: test_run_golden.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
FIXTURE=$ROOT/tests/data/patching/demo-tfc1.json
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || {
    echo "FAIL: python3 is missing (Debian python3; deploy/install-deps.sh installs it)"
    exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_golden.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM

"$PY" "$ROOT/tests/cli/run_golden.py" inputs "$FIXTURE" "$T" || { echo "FAIL: cannot build the inputs"; exit 1; }
for pos in start end; do
    OPENBLAS_NUM_THREADS=1 "$MECHIR" run --model "$ROOT/examples/demo-ce" --input "$T/$pos.tsv" \
        --perturb inject --position $pos --max-len 64 --sweep heads,blocks --out "$T/$pos" \
        $([ $pos = end ] && echo --pairs-format jsonl) >"$T/$pos.out" 2>"$T/$pos.err"
    rc=$?
    if [ $rc -ne 0 ]; then
        sed 's/^/    | /' "$T/$pos.err"
        echo "FAIL: mechir run --position $pos: exit status $rc"
        exit 1
    fi
done
"$PY" "$ROOT/tests/cli/run_golden.py" check "$FIXTURE" "$ROOT/examples/demo-ce/vocab.txt" \
    "$T/start" "$T/end" || {
    echo "FAIL: mechir run differs from the golden patching fixture"
    exit 1
}
echo "PASS: run_golden"
