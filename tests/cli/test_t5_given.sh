#!/bin/sh
# Given (pre-perturbed) pairs on a MonoT5 (monot5-tiny): prompt ids from python3-sentencepiece,
# patched values from t5_ref.py's float64 torch reference, through mechir patch, pairs and run
# (t5_given_check.py says what is checked).
# usage: test_t5_given.sh PATH/TO/mechir REPO_ROOT
set -u
[ $# -eq 2 ] || { echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2; exit 2; }
. "$(dirname "$0")/checks.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_t5given.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1
check "monot5-tiny: given pairs against sentencepiece and the torch reference" \
    /usr/bin/python3 "$2/tests/cli/t5_given_check.py" "$1" "$2/tests/data/models/monot5-tiny" "$T"
finish
