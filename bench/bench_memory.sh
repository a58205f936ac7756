#!/bin/sh
# Peak RSS of `mechir score --input` on a MiniLM-L6-shaped cross-encoder (written by
# bench_forward --write-only) scoring 64 pairs of ~128 tokens, against the limit
# 1.3 x model.safetensors + 64 MiB. Exit 0 within the limit, 1 over it, 2 on a setup error.
#
# usage: bench/bench_memory.sh [BUILD_DIR [PAIRS [extra mechir score options...]]]
#        BUILD_DIR holds mechir and bench_forward (default: build); PAIRS default 64.
set -eu

build=${1:-build}
pairs=${2:-64}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
mechir=$build/mechir
writer=$build/bench_forward
for exe in "$mechir" "$writer"; do
    if [ ! -x "$exe" ]; then
        echo "bench_memory: $exe not found; build first (cmake --build $build)" >&2
        exit 2
    fi
done
if [ ! -x /usr/bin/time ]; then
    echo "bench_memory: /usr/bin/time missing (Debian package 'time')" >&2
    exit 2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/mch-mem-XXXXXX")
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
"$writer" --dir "$dir/model" --write-only >/dev/null 2>&1

# Query 16 words, document 109 words: [CLS] q [SEP] d [SEP] is 128 tokens. Each filler word
# "wN" (5 <= N < 30522) is one token of the generated vocab.
awk -v n="$pairs" 'BEGIN {
    srand(42);
    print "qid\tquery\tdocno\ttext";
    for (i = 0; i < n; i++) {
        q = ""; d = "";
        for (j = 0; j < 16; j++) q = q (j ? " " : "") "w" int(5 + rand() * 30517);
        for (j = 0; j < 109; j++) d = d (j ? " " : "") "w" int(5 + rand() * 30517);
        printf "q%d\t%s\td%d\t%s\n", i, q, i, d;
    }
}' >"$dir/pairs.tsv"

status=0
/usr/bin/time -v "$mechir" score --model "$dir/model" --input "$dir/pairs.tsv" "$@" \
    >"$dir/scores.tsv" 2>"$dir/time.txt" || status=$?
if [ "$status" -ne 0 ]; then
    echo "bench_memory: mechir score failed (exit $status):" >&2
    cat "$dir/time.txt" >&2
    exit 2
fi
scored=$(wc -l <"$dir/scores.tsv")
rss_kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$dir/time.txt")
wall=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.txt")
weight_bytes=$(stat -c %s "$dir/model/model.safetensors")

awk -v rss="$rss_kib" -v w="$weight_bytes" -v pairs="$pairs" -v scored="$scored" \
    -v wall="$wall" -v opts="$*" 'BEGIN {
    mib = 1048576;
    limit = 1.3 * w + 64 * mib;
    used = rss * 1024;
    ok = used <= limit;
    printf "mechir score --input: %d pairs of 128 tokens (%d scored), options \"%s\", wall %s\n",
           pairs, scored, opts, wall;
    printf "  weights     %8.1f MiB (model.safetensors, F32, mapped read-only)\n", w / mib;
    printf "  peak RSS    %8.1f MiB\n", used / mib;
    printf "  limit       %8.1f MiB (1.3 x weights + 64 MiB): %s, headroom %.1f MiB\n",
           limit / mib, ok ? "within" : "OVER", (limit - used) / mib;
    printf "BENCH_MEMORY pairs=%d peak_rss_kib=%d weight_bytes=%d limit_kib=%d ok=%d\n",
           pairs, rss, w, limit / 1024, ok;
    exit ok ? 0 : 1;
}'
