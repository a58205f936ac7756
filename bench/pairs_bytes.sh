#!/bin/sh
# Bytes per pair of OUT/pairs.jsonl.zst (default) and OUT/pairs.jsonl (--pairs-format jsonl) for
# the demo job (examples/demo-200.tsv, the demo cross-encoder, tfc1, 64 tokens, seed 1) with
# --sweep none, heads and heads,blocks. Each sweep runs once in jsonl; the zst file is then
# written by `--resume --pairs-format zst` of the same finished run (the outputs are rebuilt
# from the journal, so both files hold the same pairs), checked equal to the plain file with
# `zstd -dc`. "one frame" is `zstd -3` of the whole plain file: what cutting a frame every 64
# pairs costs against a single frame. Prints a Markdown table.
#
# usage: bench/pairs_bytes.sh [BUILD_DIR]     (default build)
# environment: NP (default 1: one process, no mpirun; N > 1: mpirun -np N), MPIRUN (mpirun),
#              KEEP=1 (keep the work directory and print it).
# Exit 0 after printing the table; 2 on a setup error or a failed run.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
mechir=$build/mechir
np=${NP:-1}
mpirun=${MPIRUN:-mpirun}
[ -x "$mechir" ] || { echo "bench/pairs_bytes.sh: $mechir is not built" >&2; exit 2; }
command -v zstd >/dev/null || { echo "bench/pairs_bytes.sh: the zstd CLI is missing" >&2; exit 2; }
export OPENBLAS_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
w=$(mktemp -d "${TMPDIR:-/tmp}/mch_pbytes.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $w" >&2; else trap 'rm -rf "$w"' EXIT; fi

run() { # run OUT ARGS...
    out=$1
    shift
    if [ "$np" -gt 1 ]; then set -- "$mpirun" -np "$np" "$mechir" run "$@" --out "$out"
    else set -- "$mechir" run "$@" --out "$out"; fi
    "$@" >"$out.log" 2>&1 || { cat "$out.log" >&2; echo "bench/pairs_bytes.sh: $* failed" >&2; exit 2; }
}

echo "| --sweep | pairs | pairs.jsonl bytes | B/pair | pairs.jsonl.zst bytes | B/pair | ratio | one frame (zstd -3) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for sweep in none heads heads,blocks; do
    d=$w/$(echo "$sweep" | tr , _)
    job="--model $here/examples/demo-ce --input $here/examples/demo-200.tsv --perturb tfc1
         --sweep $sweep --max-len 64 --seed 1"
    run "$d" $job --pairs-format jsonl
    cp "$d/pairs.jsonl" "$d.jsonl"
    run "$d" $job --resume --pairs-format zst
    zstd -dcq "$d/pairs.jsonl.zst" | cmp -s - "$d.jsonl" ||
        { echo "bench/pairs_bytes.sh: $sweep: zstd -dc pairs.jsonl.zst differs from pairs.jsonl" >&2; exit 2; }
    n=$(wc -l <"$d.jsonl")
    pb=$(wc -c <"$d.jsonl")
    zb=$(wc -c <"$d/pairs.jsonl.zst")
    one=$(zstd -3 -cq "$d.jsonl" | wc -c)
    awk -v s="$sweep" -v n="$n" -v pb="$pb" -v zb="$zb" -v one="$one" 'BEGIN {
        printf "| %s | %d | %d | %.0f | %d | %.0f | %.1fx | %d (%.1fx) |\n",
               s, n, pb, pb / n, zb, zb / n, pb / zb, one, pb / one }'
done
