#!/bin/sh
# Attribution patching against exact patching as whole processes: `mechir patch --method atp
# --sweep heads,blocks` (every head and every block row estimated) beside the exact optimised
# `mechir patch --sweep blocks`, on the MiniLM-L6-shaped cross-encoder that bench_forward writes
# (random weights, vocab of one-token words wN), one thread, at 96 and 128 tokens. The pair:
# a 16-word query and a document of T - 19 words; the perturbed document has one more
# occurrence of a query word, replacing its last word (TFC1 by replacement: the same length).
# Runs are interleaved (atp, exact, atp, ...); medians of wall time, CPU time beside.
#
# usage: bench/bench_atp.sh [BUILD_DIR [ATP_RUNS [EXACT_RUNS]]]
#        BUILD_DIR holds mechir and bench_forward (default build); ATP_RUNS default 7,
#        EXACT_RUNS default 3. The last line is machine-readable (BENCH_ATP ...).
set -eu

build=${1:-build}
atp_runs=${2:-7}
exact_runs=${3:-3}
mechir=$build/mechir
writer=$build/bench_forward
for exe in "$mechir" "$writer"; do
    if [ ! -x "$exe" ]; then
        echo "bench_atp: $exe not found; build first (cmake --build $build)" >&2
        exit 2
    fi
done
if [ ! -x /usr/bin/time ]; then
    echo "bench_atp: /usr/bin/time missing (Debian package 'time')" >&2
    exit 2
fi
export OPENBLAS_NUM_THREADS=1

dir=$(mktemp -d "${TMPDIR:-/tmp}/mch-atp-XXXXXX")
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
"$writer" --dir "$dir/model" --write-only >/dev/null 2>&1

# time_one OUT ARGS...: runs mechir ARGS, appends "wall cpu" (seconds) to OUT.
time_one() {
    out=$1
    shift
    if ! /usr/bin/time -f '%e %U %S' -o "$dir/t" "$mechir" "$@" >"$dir/json" 2>"$dir/err"; then
        echo "bench_atp: mechir $* failed:" >&2
        cat "$dir/err" >&2
        exit 2
    fi
    tail -n 1 "$dir/t" | awk '{ print $1, $2 + $3 }' >>"$out"
}

median() { # FILE COLUMN
    sort -g -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

summary=""
for T in 96 128; do
    # [CLS] 16 query words [SEP] (T - 19) document words [SEP] = T tokens; word wN is token N.
    ids=$(awk -v T="$T" 'BEGIN {
        srand(7 + T);
        q[0] = 0; line = "101"; types = "0";
        for (j = 0; j < 16; j++) { q[j] = int(1000 + rand() * 29000); line = line "," q[j]; types = types ",0" }
        line = line ",102"; types = types ",0";
        for (j = 0; j < T - 19; j++) { d = int(1000 + rand() * 29000); line = line "," d; types = types ",1" }
        base = line ",102"; types = types ",1";
        sub(/,[0-9]+$/, "", line);
        pert = line "," q[3] ",102";
        print base; print pert; print types;
    }')
    b=$(echo "$ids" | sed -n 1p)
    p=$(echo "$ids" | sed -n 2p)
    tt=$(echo "$ids" | sed -n 3p)
    common="patch --model $dir/model --ids-baseline $b --ids-perturbed $p --token-types $tt --threads 1 --min-delta 1e-9"
    : >"$dir/atp.$T"
    : >"$dir/exact.$T"
    i=0
    while [ "$i" -lt "$atp_runs" ] || [ "$i" -lt "$exact_runs" ]; do
        # shellcheck disable=SC2086
        [ "$i" -lt "$atp_runs" ] && time_one "$dir/atp.$T" $common --sweep heads,blocks --method atp
        # shellcheck disable=SC2086
        [ "$i" -lt "$exact_runs" ] && time_one "$dir/exact.$T" $common --sweep blocks
        i=$((i + 1))
    done
    aw=$(median "$dir/atp.$T" 1)
    ac=$(median "$dir/atp.$T" 2)
    ew=$(median "$dir/exact.$T" 1)
    ec=$(median "$dir/exact.$T" 2)
    awk -v T="$T" -v aw="$aw" -v ac="$ac" -v ew="$ew" -v ec="$ec" -v na="$atp_runs" \
        -v ne="$exact_runs" 'BEGIN {
        printf "%d tokens: atp heads+blocks %.3f s wall (%.3f s CPU, median of %d); exact blocks %.2f s wall (%.2f s CPU, median of %d); ratio %.1fx wall, %.1fx CPU\n",
               T, aw, ac, na, ew, ec, ne, ew / aw, ec / ac;
    }'
    summary="$summary seq$T""_atp_s=$aw seq$T""_exact_blocks_s=$ew seq$T""_ratio=$(awk -v a="$aw" -v e="$ew" 'BEGIN { printf "%.1f", e / a }')"
done
echo "BENCH_ATP date=$(date -u +%Y-%m-%dT%H:%M:%SZ) atp_runs=$atp_runs exact_runs=$exact_runs$summary"
