#!/bin/sh
# Throughput of `mechir run`: (1) the demo job (200 pairs of examples/debian-demo-pairs.tsv, the
# demo cross-encoder, tfc1, heads and blocks sweeps, 64 tokens) in one process and under
# `mpirun -np 2` and `-np 3`, and the speedup of two workers over one; (2) the coordinator's
# dispatch rate with `--sweep none` (workers answer without running the model) under -np 2 and
# -np 3. Runs are interleaved (1, 2, 3, 1, 2, 3, ...) and medians reported. Figures come from
# each run's run.json (seconds: from start to the outputs written; pairs_per_second = pairs /
# seconds); wall is the script's own clock around the command, mpirun start-up included.
#
# usage: bench/bench_run.sh [BUILD_DIR [DATA_DIR]]
#   BUILD_DIR  holds mechir (default: build)
#   DATA_DIR   a directory with topics.tsv.zst, docs.tsv.zst and qrels.txt.zst (the Debian
#              collection layout) for the no-op runs; default: a synthetic TSV of NOOP_PAIRS
#              pairs made by cycling the demo pairs with fresh ids
# environment: REPS (default 3) repetitions of the demo job, NOOP_REPS (3), DEMO_PAIRS (200),
#              NOOP_PAIRS (58230), MPIRUN (mpirun), SKIP_DEMO=1, SKIP_NOOP=1, KEEP=1 (keep the
#              work directory and print it), PHASES=0 (no phase split of the no-op runs).
#
# Phases of the no-op runs: when strace is installed (and PHASES is not 0), rank 0 runs under
# `strace --seccomp-bpf -e trace=openat` (only openat stops the process, so the cost is a few
# hundred syscalls), and its timestamps split run.json's seconds into setup (start to the first
# input open), count (the coordinator's first pass over the input, which counts the pairs),
# dispatch (the second pass: build pairs, send units, journal results, up to the journal being
# reopened for the reduction) and reduce (circuit maps, pairs.jsonl.zst, run.json). The dispatch
# rate is pairs / dispatch seconds.
# Exit 0 after printing the table; 2 on a setup error or a failed run.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
data=${2:-}
mechir=$build/mechir
model=$here/examples/demo-ce
pairs_file=$here/examples/debian-demo-pairs.tsv
reps=${REPS:-3}
noop_reps=${NOOP_REPS:-3}
demo_pairs=${DEMO_PAIRS:-200}
noop_pairs=${NOOP_PAIRS:-58230}
mpirun=${MPIRUN:-mpirun}

if [ ! -x "$mechir" ]; then
    echo "bench_run: $mechir not found; build first (cmake --build $build)" >&2
    exit 2
fi
if ! command -v "$mpirun" >/dev/null 2>&1; then
    echo "bench_run: $mpirun not found" >&2
    exit 2
fi
if [ -n "$data" ]; then
    for f in topics.tsv.zst docs.tsv.zst qrels.txt.zst; do
        if [ ! -r "$data/$f" ]; then
            echo "bench_run: $data/$f not readable" >&2
            exit 2
        fi
    done
fi

# Open MPI as root in a container, shared memory only, one BLAS thread a rank (the settings of the
# figures in docs/PERFORMANCE.md); anything already set in the environment wins.
export OMPI_ALLOW_RUN_AS_ROOT="${OMPI_ALLOW_RUN_AS_ROOT:-1}"
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}"
export OMPI_MCA_rmaps_base_oversubscribe="${OMPI_MCA_rmaps_base_oversubscribe:-1}"
export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

work=$(mktemp -d "${TMPDIR:-/tmp}/mch-run-bench-XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    echo "bench_run: work directory $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# json_num FILE KEY: the first number after "KEY": in a one-line JSON file.
json_num() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }

# A wrapper that runs rank 0 under strace (openat only) writing $TRACE_FILE, other ranks as is.
trace=0
if [ "${PHASES:-1}" != 0 ] && command -v strace >/dev/null 2>&1; then
    trace=1
    cat >"$work/trace0.sh" <<'EOF'
#!/bin/sh
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}
if [ "$rank" = 0 ]; then
    exec strace --seccomp-bpf -f -ttt -qq -e trace=openat -o "$TRACE_FILE" "$@"
fi
exec "$@"
EOF
    chmod +x "$work/trace0.sh"
fi

# phases STRACE_FILE OUT PAIRS INPUT_PATH...: prints "setup count dispatch reduce dispatch_rate"
# from the openat timestamps of rank 0 (see the header). Each pass opens the same input files in
# the same order, so the second pass starts at input open number n/2 + 1.
phases() {
    f=$1 o=$2 p=$3
    shift 3
    awk -v out="$o" -v pairs="$p" -v inputs="$*" '
    BEGIN { n = split(inputs, in_list, " "); for (i = 1; i <= n; i++) is_input["\"" in_list[i] "\""] = 1 }
    {
        t = $2 + 0
        if (!start) start = t
        if ($3 !~ /^openat/ || $0 ~ /= -1 /) next
        path = $4; sub(/,$/, "", path)
        if (path in is_input) opens[++k] = t
        else if (!reduce && path == "\"" out "/journal.bin\"" && $0 ~ /O_RDONLY/) reduce = t
        else if (index(path, "\"" out "/run.json.tmp")) end = t
    }
    END {
        if (k < 2 || k % 2 || !reduce || !end) { print "- - - - -"; exit }
        d = opens[k / 2 + 1]
        printf "%.3f %.3f %.3f %.3f %.0f\n", opens[1] - start, d - opens[1], reduce - d, end - reduce, pairs / (reduce - d)
    }' "$f"
}

# run_one LABEL NP OUT mechir-run-arguments...: appends "LABEL NP wall seconds pps pairs units
# workers busy [setup count dispatch reduce dispatch_rate]" to $work/results. With TRACE_INPUTS
# set (the input paths) and strace available, rank 0 is traced for the phase split.
run_one() {
    label=$1 np=$2 out=$3
    shift 3
    rm -rf "$out" "$out.strace"
    wrap=
    if [ "$trace" = 1 ] && [ -n "${TRACE_INPUTS:-}" ]; then
        wrap=$work/trace0.sh
        export TRACE_FILE="$out.strace"
    fi
    t0=$(now)
    status=0
    if [ "$np" -eq 1 ]; then
        ${wrap:+"$wrap"} "$mechir" run --out "$out" "$@" >"$out.stdout" 2>"$out.stderr" || status=$?
    else
        "$mpirun" -np "$np" ${wrap:+"$wrap"} "$mechir" run --out "$out" "$@" >"$out.stdout" \
            2>"$out.stderr" || status=$?
    fi
    t1=$(now)
    if [ "$status" -ne 0 ] || [ ! -r "$out/run.json" ]; then
        echo "bench_run: $label -np $np failed (exit $status):" >&2
        tail -n 20 "$out.stderr" >&2
        exit 2
    fi
    j=$out/run.json
    wall=$(echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }')
    ph=
    if [ -n "$wrap" ]; then
        # shellcheck disable=SC2086 # TRACE_INPUTS is a list of paths without spaces
        ph=$(phases "$out.strace" "$out" "$(json_num "$j" this_attempt)" $TRACE_INPUTS)
    fi
    echo "$label $np $wall $(json_num "$j" seconds) $(json_num "$j" pairs_per_second)" \
        "$(json_num "$j" this_attempt) $(json_num "$j" units) $(json_num "$j" workers)" \
        "$(json_num "$j" worker_busy_seconds) $ph" >>"$work/results"
    printf '  %-5s -np %d: %s s wall, run.json %s s, %s pairs/s%s\n' "$label" "$np" "$wall" \
        "$(json_num "$j" seconds)" "$(json_num "$j" pairs_per_second)" \
        "${ph:+ (setup count dispatch reduce s, dispatch pairs/s: $ph)}" >&2
    [ "${KEEP:-0}" = 1 ] || rm -rf "$out" "$out.stdout" "$out.strace"
}

: >"$work/results"
echo "bench_run: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), $(nproc) CPUs," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

if [ "${SKIP_DEMO:-0}" != 1 ]; then
    # The first DEMO_PAIRS data lines (the file has no header line).
    head -n "$demo_pairs" "$pairs_file" >"$work/demo.tsv"
    echo "bench_run: demo job, $demo_pairs pairs, $reps repetitions" >&2
    i=0
    while [ "$i" -lt "$reps" ]; do
        for np in 1 2 3; do
            run_one demo "$np" "$work/demo-$np" --model "$model" --input "$work/demo.tsv" \
                --perturb tfc1 --sweep heads,blocks --max-len 64
        done
        i=$((i + 1))
    done
fi

if [ "${SKIP_NOOP:-0}" != 1 ]; then
    if [ -n "$data" ]; then
        set -- --topics "$data/topics.tsv.zst" --docs "$data/docs.tsv.zst" \
            --qrels "$data/qrels.txt.zst"
        src="$data (topics, docs, qrels)"
        TRACE_INPUTS="$data/topics.tsv.zst $data/docs.tsv.zst $data/qrels.txt.zst"
    else
        awk -F'\t' -v n="$noop_pairs" 'BEGIN { OFS = "\t" }
            { q[NR] = $2; d[NR] = $4; qid[NR] = $1; docno[NR] = $3 }
            END { for (i = 0; i < n; i++) { k = i % NR + 1;
                      print qid[k] "-" i, q[k], docno[k] "-" i, d[k] } }' \
            "$pairs_file" >"$work/noop.tsv"
        set -- --input "$work/noop.tsv"
        src="synthetic TSV of $noop_pairs pairs (the demo pairs cycled)"
        TRACE_INPUTS=$work/noop.tsv
    fi
    echo "bench_run: no-op sweep, $src, $noop_reps repetitions" >&2
    i=0
    while [ "$i" -lt "$noop_reps" ]; do
        for np in 2 3; do
            run_one noop "$np" "$work/noop-$np" --model "$model" "$@" --perturb tfc1 \
                --sweep none --max-len 64
        done
        i=$((i + 1))
    done
fi

# The table: medians per (job, ranks).
echo
echo "mechir run benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n), $(nproc) CPUs," \
    "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS (medians of the repetitions)"
sort -k1,1 -k2,2n -k4,4n "$work/results" | awk '
function med(arr, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function flush(   mw, ms, mp, mb) {
    if (!key) return
    mw = med(W, n); ms = med(S, n); mp = med(P, n); mb = med(B, n)
    printf "%-6s %5d %7d %6d %5d %8.2f %8.2f %10.1f %7.1f", job, np, workers, pairs, n, mw, ms, mp, mb
    if (nph == n)
        printf " %6.2f %6.2f %8.2f %6.2f %10.0f", med(C1, n), med(C2, n), med(C3, n), med(C4, n), med(C5, n)
    printf "\n"
    rate[job, np] = mp
    if (nph == n) drate[job, np] = med(C5, n)
    key = ""
}
BEGIN {
    printf "%-6s %5s %7s %6s %5s %8s %8s %10s %7s %6s %6s %8s %6s %10s\n", "job", "ranks", "workers", "pairs", "runs", "wall s", "seconds", "pairs/s", "busy s", "setup", "count", "dispatch", "reduce", "dispatch/s"
}
{
    k = $1 " " $2
    if (k != key) { flush(); key = k; n = 0; nph = 0; job = $1; np = $2 }
    n++; W[n] = $3; S[n] = $4; P[n] = $5; pairs = $6; workers = $8; B[n] = $9
    if (NF >= 14 && $14 != "-") { nph++; C1[n] = $10; C2[n] = $11; C3[n] = $12; C4[n] = $13; C5[n] = $14 }
}
END {
    flush()
    if (rate["demo", 2] > 0 && rate["demo", 3] > 0)
        printf "demo speedup -np 3 over -np 2 (two workers over one): %.2fx (target >= 1.8x: %s)\n", rate["demo", 3] / rate["demo", 2], (rate["demo", 3] / rate["demo", 2] >= 1.8) ? "met" : "MISSED"
    if (rate["demo", 1] > 0 && rate["demo", 2] > 0)
        printf "demo -np 2 over one process: %.2fx\n", rate["demo", 2] / rate["demo", 1]
    for (np = 2; np <= 3; np++)
        if (rate["noop", np] > 0) {
            printf "no-op -np %d: %.0f pairs/s end to end (run.json)", np, rate["noop", np]
            if (drate["noop", np] > 0)
                printf ", %.0f pairs/s in the dispatch phase", drate["noop", np]
            printf " (target >= 20000 dispatched: %s)\n", ((drate["noop", np] > 0 ? drate["noop", np] : rate["noop", np]) >= 20000) ? "met" : "MISSED"
        }
}'
