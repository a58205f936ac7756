#!/bin/sh
# RoBERTa and XLM-R cross-encoders (tests/data/models/roberta-ce-tiny, xlmr-ce-tiny) through
# mechir score, patch (ids and texts, pads inside the text), pairs + run (tfc1, one process),
# report and cache, against roberta_ref.py: a float64 torch reference written from Hugging
# Face's modeling_roberta semantics and checked against each model's golden.json first;
# token roles against hand-written ones (roberta_check.py does every check).
# Needs Debian's python3 with python3-torch and python3-numpy.
# usage: test_roberta.sh PATH/TO/mechir REPO_ROOT
set -u
[ $# -eq 2 ] || { echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2; exit 2; }
. "$(dirname "$0")/checks.sh"
PY=/usr/bin/python3
"$PY" -c 'import torch, numpy' 2>/dev/null || {
    echo "FAIL - $PY lacks python3-torch or numpy"
    exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_roberta.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
for m in roberta-ce-tiny xlmr-ce-tiny; do
    mkdir "$T/$m" || exit 1
    check "$m against the torch reference and the hand-written roles" \
        "$PY" "$2/tests/cli/roberta_check.py" "$1" "$2/tests/data/models/$m" "$T/$m"
done
finish
