#!/bin/sh
# What used to change silently or grow without bound, refused with one line (or kept exact):
# job.json numbers from their text, repeated keys and \u0000 refused (job.json and JSONL), JSONL
# integer ids kept as written, --heads numbers range-checked, --max-line-bytes on /dev/zero and a
# zstd bomb, inputs read twice refused when not regular files, a FIFO named *.idx in a cache, a
# --cache hook that cannot be cached; and the file names docs/CACHE.md and the fixture README give.
# usage: test_limits.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
MODEL=$ROOT/examples/demo-ce
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_limits.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1
fails=0
check() { # description, then a command that must succeed
    d=$1
    shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
# refused DESC WANT_RC WANT_LINE ERRFILE: the exit status, and stderr is exactly that one line.
refused() {
    check "$1: exit $2 (got $rc)" test "$rc" -eq "$2"
    printf '%s\n' "$3" >"$T/want.line"
    if cmp -s "$T/want.line" "$4"; then
        echo "ok - $1: the one-line message"
    else
        echo "FAIL - $1: the one-line message"
        diff "$T/want.line" "$4" | sed 's/^/    | /'
        fails=$((fails + 1))
    fi
}
# nothing_in OUT: no circuit map and no cache file in OUT.
nothing_in() {
    test ! -e "$1/circuit.cmap" && test ! -e "$1/circuit.json" &&
        { test ! -d "$1/cache" || test -z "$(ls "$1/cache")"; }
}

printf 'q1\tfast lossless compression\td1\tZstd is a fast compression algorithm.\n' >"$T/a.tsv"

# ---- job.json: numbers from their text ----
printf '{"model": "%s", "input": "%s", "out": "%s",\n "max-len": 32, "seed": 12345678901234567}\n' \
    "$MODEL" "$T/a.tsv" "$T/seed" >"$T/seed.json"
"$MECHIR" run "$T/seed.json" >/dev/null 2>"$T/seed.err"
rc=$?
check "job.json seed of 17 digits: exit 0" test "$rc" -eq 0
check "job.json seed of 17 digits: circuit.json has it exactly" \
    grep -q '"seed":12345678901234567[,}]' "$T/seed/circuit.json"
printf '{"model": "%s", "input": "%s", "out": "%s",\n "threads": 2.5}\n' "$MODEL" "$T/a.tsv" \
    "$T/frac" >"$T/frac.json"
"$MECHIR" run "$T/frac.json" >/dev/null 2>"$T/frac.err"
rc=$?
refused "job.json threads 2.5" 2 "mechir run: --threads needs an integer in 1..1024, got '2.5'" \
    "$T/frac.err"

# ---- job.json: a repeated key, a NUL in a string ----
printf '{"model": "%s",\n "input": "%s",\n "seed": 1, "out": "%s",\n "seed": 2}\n' "$MODEL" \
    "$T/a.tsv" "$T/dup" >"$T/dup.json"
"$MECHIR" run "$T/dup.json" >"$T/dup.out" 2>"$T/dup.err"
rc=$?
refused "job.json repeated key" 2 "mechir run: $T/dup.json:4: duplicate key \"seed\"" "$T/dup.err"
check "job.json repeated key: no OUT" test ! -e "$T/dup"
printf '{"model": "%s",\n "input": "%s", "out": "%s",\n "site": "a\\u0000b"}\n' "$MODEL" \
    "$T/a.tsv" "$T/nul" >"$T/nul.json"
"$MECHIR" run "$T/nul.json" >/dev/null 2>"$T/nul.err"
rc=$?
refused "job.json \\u0000" 2 "mechir run: $T/nul.json:3: \"site\" holds a NUL character (\\u0000)" \
    "$T/nul.err"
check "job.json \\u0000: no OUT" test ! -e "$T/nul"

# ---- JSONL: exact integer ids, \u0000, repeated keys ----
F=$T/ids.jsonl
{
    printf '{"qid": 9007199254740993, "query": "fast lossless compression", "docno": -12, '
    printf '"text": "Zstd is a fast compression algorithm."}\n'
    printf '{"qid": "q2", "query": "fast compression", "docno": "d2", "text": "fast\\u0000hidden"}\n'
    printf '{"qid": "q3", "query": "fast compression", "docno": "d3", "docno": "d4", "text": "fast"}\n'
    printf '{"qid": 1.0, "query": "fast compression", "docno": "d5", "text": "fast"}\n'
    printf '{"qid": "q6", "query": "fast compression", "docno": "d6", "text": "fast", "rank": 4294967297}\n'
} >"$F"
"$MECHIR" pairs --model "$MODEL" --input "$F" --max-len 32 >"$T/ids.jsonl.out" 2>"$T/ids.err"
rc=$?
check "JSONL ids: exit 0" test "$rc" -eq 0
check "JSONL ids: qid 9007199254740993 kept exactly" \
    grep -q '"qid":"9007199254740993","docno":"-12"' "$T/ids.jsonl.out"
{
    printf '%s:2: "text" holds a NUL character (\\u0000)\n' "$F"
    printf '%s:3: duplicate key "docno"\n' "$F"
    printf '%s:4: "qid" is not a string or an integer\n' "$F"
    printf '%s:5: "rank" is not an integer\n' "$F"
} >"$T/ids.want"
grep "^$F:" "$T/ids.err" >"$T/ids.got"
check "JSONL: the four bad lines named" cmp -s "$T/ids.want" "$T/ids.got"

# ---- --heads: numbers digits only, at most 65535 ----
for h in 4294967297.4294967298 0.4294967295 0.65536 +0.1 0.-0; do
    "$MECHIR" run --model "$MODEL" --input "$T/a.tsv" --max-len 32 --sweep head-pos --heads "$h" \
        --out "$T/heads" >/dev/null 2>"$T/heads.err"
    rc=$?
    refused "--heads $h" 1 \
        "mechir run: --heads takes LAYER.HEAD pairs like 0.1,2.3, got '$h' (each number 0..65535)" \
        "$T/heads.err"
    check "--heads $h: no circuit map" nothing_in "$T/heads"
done

# ---- --max-line-bytes: /dev/zero, a zstd bomb, the limit itself ----
timeout 60 "$MECHIR" pairs --model "$MODEL" --input /dev/zero --max-line-bytes 1000000 \
    >"$T/zero.out" 2>"$T/zero.err"
rc=$?
check "/dev/zero: exit 1 (got $rc)" test "$rc" -eq 1
check "/dev/zero: the message" grep -qx \
    'mechir pairs: /dev/zero:1: line longer than 1000000 bytes (--max-line-bytes)' "$T/zero.err"
check "/dev/zero: nothing on stdout" test ! -s "$T/zero.out"
head -c 20000000 /dev/zero | tr '\0' a | zstd -q -c >"$T/bomb.tsv.zst"
timeout 60 "$MECHIR" pairs --model "$MODEL" --input "$T/bomb.tsv.zst" --max-line-bytes 100000 \
    >"$T/bomb.out" 2>"$T/bomb.err"
rc=$?
check "zstd bomb: exit 1 (got $rc)" test "$rc" -eq 1
check "zstd bomb: the message" grep -qx \
    "mechir pairs: $T/bomb.tsv.zst:1: line longer than 100000 bytes (--max-line-bytes)" \
    "$T/bomb.err"
check "zstd bomb: nothing on stdout" test ! -s "$T/bomb.out"
# Line 2 is 51 bytes (without its \r\n): 51 is enough, 50 is not.
printf 'qid\tquery\tdocno\ttext\r\nq1\tfast lossless compression\td1\tZstd is a fast one.\r\n' \
    >"$T/edge.tsv"
n=$(sed -n 2p "$T/edge.tsv" | tr -d '\r\n' | wc -c)
check "edge line is 51 bytes" test "$n" -eq 51
"$MECHIR" pairs --model "$MODEL" --input "$T/edge.tsv" --max-len 32 --max-line-bytes 51 \
    >"$T/edge.out" 2>/dev/null
check "a line of exactly --max-line-bytes is read" test "$(wc -l <"$T/edge.out")" -eq 1
"$MECHIR" score --model "$MODEL" --input "$T/edge.tsv" --max-line-bytes 50 >"$T/edge61.out" \
    2>"$T/edge61.err"
rc=$?
refused "score, a line one byte longer" 1 \
    "mechir score: $T/edge.tsv:2: line longer than 50 bytes (--max-line-bytes)" "$T/edge61.err"
check "score, a line one byte longer: nothing on stdout" test ! -s "$T/edge61.out"
tr -d '\r' <"$T/edge.tsv" >"$T/edge-lf.tsv" # the same with \n line ends
"$MECHIR" pairs --model "$MODEL" --input "$T/edge-lf.tsv" --max-len 32 --max-line-bytes 50 \
    >"$T/edge-lf.out" 2>"$T/edge-lf.err"
rc=$?
check "pairs, LF line ends, a line one byte longer: exit 1" test "$rc" -eq 1
check "pairs, LF line ends, a line one byte longer: the message" grep -qx \
    "mechir pairs: $T/edge-lf.tsv:2: line longer than 50 bytes (--max-line-bytes)" "$T/edge-lf.err"
check "pairs, LF line ends, a line one byte longer: nothing on stdout" test ! -s "$T/edge-lf.out"

# ---- inputs read twice are regular files ----
# A pipe (a redirected regular file would be opened afresh and is fine).
cat "$T/a.tsv" | "$MECHIR" run --model "$MODEL" --input /dev/stdin --max-len 32 --out "$T/stdin" \
    >/dev/null 2>"$T/stdin.err"
rc=$?
refused "run --input /dev/stdin" 1 "mechir run: /dev/stdin: not a regular file; mechir run (a count, then the pairs) reads it twice (save it to a file first)" "$T/stdin.err"
check "run --input /dev/stdin: no circuit map" nothing_in "$T/stdin"

# ---- --cache: an unknown hook, refused at the start naming the nearest; hook_resid_post cached ----
"$MECHIR" run --model "$MODEL" --input "$T/a.tsv" --max-len 32 --out "$T/post" \
    --cache blocks.0.hook_resid_psot >/dev/null 2>"$T/post.err"
rc=$?
refused "--cache hook_resid_psot" 1 "mechir run: unknown hook 'blocks.0.hook_resid_psot' (did you mean 'blocks.0.hook_resid_post'?)" "$T/post.err"
check "--cache hook_resid_psot: no output directory" test ! -e "$T/post"
"$MECHIR" run --model "$MODEL" --input "$T/a.tsv" --max-len 32 --out "$T/post" \
    --cache blocks.0.hook_resid_post >/dev/null 2>&1
check "--cache hook_resid_post: cached" sh -c "'$MECHIR' cache ls '$T/post' | grep -q 'blocks.0.hook_resid_post  *baseline'"

# ---- a FIFO named *.idx in a cache ----
"$MECHIR" run --model "$MODEL" --input "$T/a.tsv" --max-len 32 --out "$T/c" \
    --cache blocks.0.hook_resid_mid >/dev/null 2>&1
check "cache run: rank-0-a0.idx written" test -s "$T/c/cache/rank-0-a0.idx"
check "docs/CACHE.md names rank-0-a0.idx" grep -q 'rank-0-a0\.idx' "$ROOT/docs/CACHE.md"
check "docs/CACHE.md names no rank-N-eN file" sh -c "! grep -q 'rank-[0-9]-e[0-9]' '$ROOT/docs/CACHE.md'"
mkfifo "$T/c/cache/rank-0-a1.idx"
for sub in ls verify; do
    timeout 10 "$MECHIR" cache $sub "$T/c" >"$T/fifo.out" 2>"$T/fifo.err"
    rc=$?
    refused "cache $sub with a FIFO *.idx" 1 "mechir cache: $T/c/cache/rank-0-a1.idx: not a regular file" "$T/fifo.err"
    check "cache $sub with a FIFO *.idx: nothing on stdout" test ! -s "$T/fifo.out"
done

# ---- the fixture README's model paths exist ----
for p in $(grep -o '`\.\./[^`]*`' "$ROOT/tests/data/patching/README.md" | tr -d '`'); do
    check "tests/data/patching/README.md: $p exists" test -d "$ROOT/tests/data/patching/$p"
done

if [ "$fails" -ne 0 ]; then
    echo "$fails checks failed"
    exit 1
fi
echo "all checks passed"
