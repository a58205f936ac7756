#!/bin/sh
# The tokenizers against the real libraries on more text than the fixtures hold: the first N
# (default 5,000) Debian documents of tests/data/debian, alone and as (short description,
# document) pairs, through `mechir tokenize` and through Hugging Face tokenizers 0.23.2 (the
# official Node binding, npm `tokenizers`, installed here with npm into a cache directory) and
# Debian's python3-sentencepiece: ids and token types identical (tokenizers_ref.py).
# usage: tokenizers_ref.sh MECHIR DATA [N]
# Exit 77 (ctest: skipped) when node, npm, zstd or python3-sentencepiece is missing or npm cannot
# install the package -- except under CI=true, where a missing reference fails the run.
set -u
MECHIR=$1
DATA=$2
N=${3:-5000}
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=0.23.2
CACHE=${MCH_REF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mechir}/npm-tokenizers-$VERSION

missing() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 (CI=true: the reference libraries must run)"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}

for tool in node npm zstd; do
    command -v "$tool" > /dev/null 2>&1 || missing "$tool is not installed (Debian: nodejs npm zstd)"
done
/usr/bin/python3 -c 'import sentencepiece' > /dev/null 2>&1 ||
    missing "/usr/bin/python3 has no sentencepiece (Debian: python3-sentencepiece)"
if [ ! -f "$CACHE/node_modules/tokenizers/package.json" ]; then
    mkdir -p "$CACHE" &&
        npm install --prefix "$CACHE" --no-save --no-audit --no-fund "tokenizers@$VERSION" \
            > "$CACHE/npm.log" 2>&1 ||
        missing "npm install tokenizers@$VERSION failed: $(tail -n 3 "$CACHE/npm.log" 2>/dev/null)"
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/bin/python3 "$HERE/tokenizers_ref.py" "$MECHIR" "$DATA" "$CACHE/node_modules" "$N" "$T"
