#!/bin/sh
# MonoT5 activation patching: t5_ref.py (an independent float64 torch T5 from Hugging Face's
# modeling_t5 semantics) is first checked against golden.json, then every heads, decoder_heads,
# cross_heads and blocks value of `mechir patch` on three perturbed golden inputs is compared
# with its TransformerLens-style patching; both fixtures. Also the --query/--baseline/--perturbed
# path and the one-line refusals (head-pos, atp, documents that cannot be aligned; documents of
# different lengths are aligned: test_t5_given.sh).
# usage: test_t5_patch.sh PATH/TO/mechir REPO_ROOT
set -u
[ $# -eq 2 ] || { echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2; exit 2; }
. "$(dirname "$0")/checks.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_t5patch.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
PY=/usr/bin/python3
for m in monot5-tiny monot5-tiny-gated; do
    check "$m: mechir patch against the torch reference" \
        $PY "$2/tests/cli/t5_ref.py" "$1" "$2/tests/data/models/$m" "$T"
done
M="$2/tests/data/models/monot5-tiny"
Q="what is the capital of france?"
check "texts: the prompt patched, maps present" sh -c '
    "$1" patch --model "$2" --query "$3" --baseline "Paris is the capital" \
        --perturbed "Lyon is the capital" --sweep heads,blocks --min-delta 1e-9 >"$4/t.json" &&
    '"$PY"' -c "
import json, sys
o = json.load(open(sys.argv[1]))
assert o[\"tokens\"][-1] == \"</s>\" and len(o[\"blocks\"][\"resid_pre\"][0]) == len(o[\"tokens\"])
assert len(o[\"cross_heads\"]) == 2 and len(o[\"decoder_heads\"][0]) == 4 and len(o[\"heads\"]) == 2
" "$4/t.json"' x "$1" "$M" "$Q" "$T"
for bad in "--sweep head-pos --heads 0.1|head-pos" "--sweep heads --method atp|--method atp"; do
    opts=${bad%|*}
    want=${bad#*|}
    # shellcheck disable=SC2086
    check "refused: $opts" sh -c '"$1" patch --model "$2" --query q --baseline "a b" \
        --perturbed "a c" '"$opts"' 2>"$3/e" >"$3/o"; rc=$?
        [ $rc -eq 1 ] && [ ! -s "$3/o" ] && [ "$(wc -l <"$3/e")" -eq 1 ] &&
        grep -q -- "$4" "$3/e" && grep -q "$2" "$3/e"' x "$1" "$M" "$T" "$want"
done
check "refused: documents that cannot be aligned (two spans)" sh -c '"$1" patch --model "$2" \
    --query q --baseline "one two three four five six" \
    --perturbed "one seven three four eight nine ten six" --sweep heads 2>"$3/e" >"$3/o"; rc=$?
    [ $rc -eq 1 ] && [ ! -s "$3/o" ] && [ "$(wc -l <"$3/e")" -eq 1 ] &&
    grep -q "cannot be aligned: the documents differ in more than one span" "$3/e"' \
    x "$1" "$M" "$T"
finish
