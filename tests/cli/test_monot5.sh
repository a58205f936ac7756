#!/bin/sh
# MonoT5 (tests/data/models/monot5-tiny, monot5-tiny-gated): mechir score and mechir tokenize
# --pair against golden.json, mechir pairs' prompts against tokenize --pair of the edited texts,
# and the one-line refusals of patch (head-pos) and run, which are not built for MonoT5 yet
# (monot5_check.py does every check; tests/cli/test_t5_patch.sh checks patch itself).
# usage: test_monot5.sh PATH/TO/mechir REPO_ROOT
set -u
[ $# -eq 2 ] || { echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2; exit 2; }
. "$(dirname "$0")/checks.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_monot5.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
for m in monot5-tiny monot5-tiny-gated; do
    mkdir "$T/$m" || exit 1
    check "$m: score, tokenize --pair, refusals" \
        python3 "$2/tests/cli/monot5_check.py" "$1" "$2/tests/data/models/$m" "$T/$m"
done
finish
