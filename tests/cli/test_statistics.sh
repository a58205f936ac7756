#!/bin/sh
# The statistics of a circuit map against an independent recomputation (stats_check.py, numpy):
# every aggregate of a run (counts, mean of ratios with std and n, ratio of means and its sums,
# the Poisson bootstrap intervals, for heads and blocks by role, over all pairs and per stratum)
# from its per-pair output; the bytes of circuit.cmap for 1 process, mpirun -np 2 and -np 4; the
# exact estimates (ratio of means, sums, intervals) of a merge of two shards equal to the whole
# run's; the interval widths of the demo job within 25% of numpy's resampling bootstrap.
# usage: test_statistics.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
CHECK=$ROOT/tests/cli/stats_check.py
PY=/usr/bin/python3
"$PY" -c "import numpy" 2>/dev/null || {
    echo "FAIL: Debian's python3-numpy is missing (deploy/install-deps.sh installs it)"
    exit 1
}
command -v mpirun >/dev/null || {
    echo "FAIL: mpirun is missing (openmpi-bin; deploy/install-deps.sh installs it)"
    exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_stats.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
fails=0
check() {
    d=$1
    shift
    if "$@"; then echo "ok - $d"; else
        echo "FAIL - $d"
        fails=$((fails + 1))
    fi
}
die() {
    [ -f "$T/err" ] && sed 's/^/    | /' "$T/err"
    echo "FAIL: $*"
    exit 1
}

# 30 demo pairs with relevance grades and ranks, so every kind of stratum is there.
"$PY" - "$ROOT/examples/demo-200.tsv" "$T/all.jsonl" <<'EOF' || die "cannot write the input"
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8")][:30]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i, (qid, query, docno, text) in enumerate(r[:4] for r in rows):
        f.write(json.dumps({"qid": qid, "query": query, "docno": docno, "text": text,
                            "relevance": i % 3, "rank": 1 + (7 * i) % 25}) + "\n")
EOF
awk 'NR % 2 == 1' "$T/all.jsonl" >"$T/a.jsonl"
awk 'NR % 2 == 0' "$T/all.jsonl" >"$T/b.jsonl"
job="--model $ROOT/examples/demo-ce --sweep heads,blocks --max-len 64 --seed 7 --bootstrap 100"
"$MECHIR" run $job --input "$T/all.jsonl" --out "$T/np1" >/dev/null 2>"$T/err" ||
    die "mechir run (1 process): exit status $?"
check "every aggregate matches the recomputation from the per-pair output" \
    "$PY" "$CHECK" "$T/np1"
for n in 2 4; do
    mpirun -np $n "$MECHIR" run $job --input "$T/all.jsonl" --out "$T/np$n" >/dev/null 2>"$T/err" ||
        die "mpirun -np $n mechir run: exit status $?"
    check "circuit.cmap of -np $n has the bytes of 1 process" cmp -s "$T/np1/circuit.cmap" "$T/np$n/circuit.cmap"
done
for part in a b; do
    "$MECHIR" run $job --input "$T/$part.jsonl" --out "$T/$part" >/dev/null 2>"$T/err" ||
        die "mechir run on $part.jsonl: exit status $?"
done
"$MECHIR" merge "$T/a/circuit.cmap" "$T/b/circuit.cmap" -o "$T/ab.cmap" 2>"$T/err" || die "merge: $?"
"$MECHIR" report "$T/ab.cmap" --format json >"$T/ab.json" 2>"$T/err" || die "report: $?"
# Only the exact estimates are bit for bit; the mean of ratios (Welford, Chan) agrees to rounding.
"$PY" "$CHECK" --same "$T/ab.json" "$T/np1/circuit.json" >"$T/merge.txt" 2>&1
check "merge of two shards: exact estimates identical to the whole run ($(tail -1 "$T/merge.txt"))" \
    test $? -eq 0
# --direction against: only pairs whose score fell are patched, the others skipped and counted.
"$MECHIR" run --model "$ROOT/examples/demo-ce" --sweep heads --max-len 64 --seed 7 \
    --direction against --input "$T/all.jsonl" --out "$T/against" >/dev/null 2>"$T/err" ||
    die "mechir run --direction against: exit status $?"
"$PY" - "$T/against" >"$T/dir.txt" 2>&1 <<'EOF'
import json, os, subprocess, sys
out = sys.argv[1]
cj = json.load(open(os.path.join(out, "circuit.json")))
text = subprocess.run(["zstd", "-dc", os.path.join(out, "pairs.jsonl.zst")], check=True,
                      capture_output=True).stdout.decode()
pairs = [json.loads(l) for l in text.splitlines()]
used = [p for p in pairs if "skipped" not in p]
fell = [p for p in pairs if p["score_perturbed"] - p["score_baseline"] <= -1e-3]
assert cj["direction"] == "against", cj["direction"]
assert used and sorted(p["pair_id"] for p in used) == sorted(p["pair_id"] for p in fell), \
    (len(used), len(fell))
assert cj["pairs"]["used"] == len(fell) and cj["pairs"]["skipped"] == len(pairs) - len(fell)
assert all("direction" in p["skipped"] or "min_delta" in p["skipped"]
           for p in pairs if "skipped" in p)
print(f"{len(fell)} of {len(pairs)} pairs fell and were patched, the rest skipped")
EOF
check "--direction against patches exactly the pairs whose score fell ($(tail -1 "$T/dir.txt"))" \
    grep -q "were patched" "$T/dir.txt"
check "--direction against: every aggregate matches the recomputation" "$PY" "$CHECK" "$T/against"
# The demo job (heads, 200 pairs): interval widths against numpy's resampling bootstrap.
mpirun -np 3 "$MECHIR" run --model "$ROOT/examples/demo-ce" --input "$ROOT/examples/demo-200.tsv" \
    --sweep heads --max-len 64 --seed 1 --out "$T/demo" >/dev/null 2>"$T/err" ||
    die "demo job: exit status $?"
check "demo job: aggregates and interval widths within 25% of numpy's" \
    "$PY" "$CHECK" "$T/demo" --width
if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all statistics checks passed"
