#!/bin/sh
# Every documented hook (docs/HOOKS.md) cached by mechir run --cache and read back by mechir cache
# get, for every BERT-family fixture architecture, against a float64 torch reference
# (encoder_ref.py, written from the models' definitions and TransformerLens's hook semantics);
# unknown hook names refused with the nearest valid one (hooks_check.py); the qkv, pattern and
# resid-mid sweeps of mechir patch against the same reference (finer_patch_check.py), and of
# mechir run: pairs, circuit.json, merge, report (finer_run_check.py).
# Needs Debian's python3 with python3-torch and python3-numpy.
# PART (default all) runs one of the three: cache (hooks_check.py), patch (finer_patch_check.py)
# or run (finer_run_check.py); ctest runs them as three tests, which the ASan build needs (each
# `mechir cache get` is a process: some 600 of them).
# usage: test_hooks.sh PATH/TO/mechir REPO_ROOT [cache|patch|run|all]
set -u
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 MECHIR_BINARY REPO_ROOT [PART]" >&2; exit 2; }
PART=${3:-all}
case $PART in cache|patch|run|all) ;; *) echo "$0: unknown part '$PART'" >&2; exit 2 ;; esac
. "$(dirname "$0")/checks.sh"
PY=/usr/bin/python3
"$PY" -c 'import torch, numpy' 2>/dev/null || {
    echo "FAIL - $PY lacks python3-torch or numpy"
    exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_hooks.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
if [ "$PART" = cache ] || [ "$PART" = all ]; then
    check "every hook cached and read back against the torch reference; typos refused" \
        "$PY" "$2/tests/cli/hooks_check.py" "$1" "$2" "$T"
fi
if [ "$PART" = patch ] || [ "$PART" = all ]; then
    check "qkv, pattern and resid-mid patched scores against the torch reference" \
        "$PY" "$2/tests/cli/finer_patch_check.py" "$1" "$2"
fi
if [ "$PART" = run ] || [ "$PART" = all ]; then
    mkdir "$T/run" || exit 1
    check "mechir run with qkv, pattern and resid-mid: pairs, maps, merge and report" \
        "$PY" "$2/tests/cli/finer_run_check.py" "$1" "$2" "$T/run"
fi
finish
