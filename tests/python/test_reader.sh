#!/bin/sh
# The Python reader (python/) against mechir's own output of the same runs: the descriptor it
# builds its classes from regenerated from proto/mechir.proto (gen_descriptor.py --check); the
# package installed with pip into a temporary venv over Debian's packages (--no-deps
# --no-build-isolation: nothing is downloaded); then check_reader.py compares every number it
# reads with `mechir report --format json`, components.json, top.txt (through the docs/PYTHON.md
# example), pairs.jsonl(.zst) decoded by the zstd CLI, `mechir cache ls` and the .npy files of
# `mechir cache get`, and checks its refusals of truncated, garbage and damaged files.
# Needs /usr/bin/python3 with numpy, google.protobuf, zstandard, pandas and venv (install-deps.sh),
# protoc-c and the zstd CLI; without them: skipped (77), or failed under CI=true.
# usage: test_reader.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
case $MECHIR in /*) ;; *) MECHIR=$PWD/$MECHIR ;; esac
case $ROOT in /*) ;; *) ROOT=$PWD/$ROOT ;; esac
PY=/usr/bin/python3
missing() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 (deploy/install-deps.sh installs it)"
        exit 1
    fi
    echo "SKIP: $1 (deploy/install-deps.sh installs it)"
    exit 77
}
[ -x "$PY" ] || missing "/usr/bin/python3 is missing"
for mod in numpy google.protobuf zstandard pandas venv ensurepip setuptools; do
    case $mod in google.protobuf) deb=python3-protobuf ;; ensurepip) deb=python3-venv ;;
    *) deb=python3-$mod ;; esac
    "$PY" -c "import $mod" 2>/dev/null || missing "python module $mod is missing (Debian's $deb)"
done
command -v protoc-c >/dev/null || missing "protoc-c is missing (protobuf-c-compiler)"
command -v zstd >/dev/null || missing "the zstd CLI is missing (zstd)"
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_py.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1
fail() {
    [ -f "$T/err" ] && sed 's/^/    | /' "$T/err"
    echo "FAIL: $1"
    exit 1
}
ok() { echo "ok - $1"; }

# The checked-in descriptor is the .proto's.
"$PY" "$ROOT/python/tools/gen_descriptor.py" --check >"$T/err" 2>&1 ||
    fail "python/mechir/_descriptor.py does not match proto/mechir.proto"
ok "python/mechir/_descriptor.py matches proto/mechir.proto (regenerated with protoc-c)"

# pip install ./python into a venv that sees Debian's numpy, protobuf and zstandard. The
# sources are copied first: setuptools builds in the source tree.
cp -r "$ROOT/python" "$T/src" && rm -rf "$T/src/build" "$T/src"/*.egg-info
"$PY" -m venv --system-site-packages "$T/venv" >"$T/err" 2>&1 || fail "python3 -m venv failed"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$T/venv/bin/pip" install --no-deps \
    --no-build-isolation "$T/src" >"$T/err" 2>&1 || fail "pip install ./python failed"
VPY=$T/venv/bin/python
where=$(cd "$T" && "$VPY" -c "import mechir; print(mechir.__file__)") || fail "import mechir failed"
case $where in "$T/venv/"*) ;; *) fail "mechir imported from $where, not the venv" ;; esac
ok "pip install ./python (no deps, no build isolation) into a venv; import mechir from it"

# Inputs: demo pairs with relevance grades and ranks (so relevance and rank strata exist).
"$PY" - "$ROOT/examples/demo-200.tsv" "$T/in.jsonl" <<'PYEOF' || fail "cannot write the input"
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8")][:10]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i, (qid, query, docno, text) in enumerate(r[:4] for r in rows):
        f.write(json.dumps({"qid": qid, "query": query, "docno": docno, "text": text,
                            "relevance": i % 3, "rank": 1 + (7 * i) % 25}) + "\n")
PYEOF
head -n 130 "$ROOT/examples/demo-200.tsv" >"$T/many.tsv"
run() { # run NAME ARGS...: mechir run into $T/NAME
    name=$1
    shift
    "$MECHIR" run --model "$ROOT/examples/demo-ce" --max-len 64 --seed 5 "$@" --out "$T/$name" \
        >/dev/null 2>"$T/err" || fail "mechir run $name: exit status $?"
}
HOOKS='blocks.*.attn.hook_pattern,blocks.1.hook_normalized_resid_post'
head -n 6 "$T/in.jsonl" >"$T/in6.jsonl"
head -n 4 "$T/in.jsonl" >"$T/in4.jsonl"
# f32 cache, plain pairs.jsonl, every sweep; bf16 and fp16 caches with pairs.jsonl.zst; AtP with
# verified components; 130 pairs of scores only (pairs.jsonl.zst of three frames).
run f32 --input "$T/in.jsonl" --sweep heads,blocks,head-pos --heads 1.1,0.2 --bootstrap 40 \
    --cache "$HOOKS" --cache-dtype f32 --pairs-format jsonl
run bf16 --input "$T/in6.jsonl" --sweep heads,blocks --bootstrap 30 --cache "$HOOKS" \
    --cache-dtype bf16
run fp16 --input "$T/in4.jsonl" --sweep heads,blocks --bootstrap 0 --cache "$HOOKS" \
    --cache-dtype fp16
run atp --input "$T/in6.jsonl" --sweep heads,blocks --method atp --verify-top 3 --bootstrap 20
run many --input "$T/many.tsv" --sweep none --bootstrap 0
run finer --input "$T/in6.jsonl" --sweep heads,qkv,pattern,resid-mid --bootstrap 20
ok "mechir run: f32, bf16 and fp16 caches, AtP with --verify-top, 130 pairs without a sweep, the qkv, pattern and resid-mid sweeps"

# mechir's own views of each run: the map as JSON, the report, the cache.
for r in f32 bf16 fp16 atp many finer; do
    "$MECHIR" report "$T/$r/circuit.cmap" --format json >"$T/$r.json" 2>"$T/err" ||
        fail "mechir report $r --format json"
    "$MECHIR" report "$T/$r/circuit.cmap" -o "$T/$r.report" --top 12 >/dev/null 2>"$T/err" ||
        fail "mechir report $r -o"
done
for r in f32 bf16 fp16; do
    "$MECHIR" cache ls "$T/$r" >"$T/$r.ls" 2>"$T/err" || fail "mechir cache ls $r"
    mkdir "$T/$r.npy"
    grep -v '^total:' "$T/$r.ls" | while read -r pair hook run rest; do
        "$MECHIR" cache get "$T/$r" --pair "$pair" --hook "$hook" --run "$run" \
            -o "$T/$r.npy/$pair.$hook.$run.npy" 2>"$T/err" || { echo "x" >"$T/getfail"; break; }
    done
    [ -e "$T/getfail" ] && fail "mechir cache get ($r)"
done
ok "mechir report --format json, report -o, cache ls and cache get of every entry"

cd "$T" && "$VPY" "$ROOT/tests/python/check_reader.py" "$MECHIR" "$ROOT" "$T"
