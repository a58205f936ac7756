#!/bin/sh
# `mechir pairs` end to end: TSV with bad lines (reported with file:line, produced + skipped =
# input), JSONL, TREC run/topics/docs/qrels joins, --strict, atomic -o, deterministic seeds.
set -u
MECHIR=$1
DATA=$2
MODEL=$DATA/models/bert-ce-tiny
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { # description, then a command that must succeed
    d=$1; shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}

tab=$(printf '\t')
{
    printf 'qid\tquery\tdocno\ttext\n'
    printf 'q1\tfast lossless compression\td1\tZstd is a fast compression algorithm.\n'
    printf 'q2\tweb browser engine\td2\tA browser for the web.\n'
    printf 'q3\tonly three\tcolumns\n'
    printf 'q4\tthe it is\td4\tno query term survives stopwords\n'
    printf 'q5\tpdf rendering library\td5\tPoppler renders PDF files.\tpoppler\n'
    printf 'q1\tfast lossless compression\td1\tduplicate pair\n'
    printf 'q6\t\td6\tempty query\n'
    printf 'q7\tbad \377 utf8\td7\ttext\n'
} > "$T/in.tsv"

"$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --max-len 32 --seed 3 -o "$T/out.jsonl" \
    --skips "$T/skips.txt" 2> "$T/err.txt"
check "pairs exits 0 with bad lines reported" test $? -eq 0
check "3 pairs written" test "$(wc -l < "$T/out.jsonl")" -eq 3
check "summary counts 8 units, 3 pairs, 5 skipped" \
    grep -q "8 input units: 3 pairs written, 5 skipped" "$T/err.txt"
check "wrong column count reported with file:line" \
    grep -q "in.tsv:4: expected 4 or 5 tab-separated columns, found 3" "$T/skips.txt"
check "duplicate pair reported with file:line" grep -q "in.tsv:7: duplicate" "$T/skips.txt"
check "empty query reported" grep -q "in.tsv:8: empty query" "$T/skips.txt"
check "invalid UTF-8 reported" grep -q "in.tsv:9: invalid UTF-8" "$T/skips.txt"
check "no query term reported" grep -q "in.tsv:5: no query term" "$T/skips.txt"
check "each line has ids, types, roles and a 16-hex-digit pair id" \
    sh -c "grep -c '\"pair_id\":\"[0-9a-f]\{16\}\".*\"baseline_ids\".*\"perturbed_ids\".*\"token_types\".*\"roles\"' '$T/out.jsonl' | grep -qx 3"

# The same seed gives the same pairs; a shard (one line) picks the same term as the whole.
"$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --max-len 32 --seed 3 2>/dev/null > "$T/again.jsonl"
check "same seed, same output" cmp -s "$T/out.jsonl" "$T/again.jsonl"
sed -n '1p;3p' "$T/in.tsv" > "$T/shard.tsv"
"$MECHIR" pairs --model "$MODEL" --input "$T/shard.tsv" --max-len 32 --seed 3 2>/dev/null > "$T/shard.jsonl"
check "a shard's pair equals the whole run's line" grep -qxF "$(cat "$T/shard.jsonl")" "$T/out.jsonl"

# --strict: the first bad line is fatal, and -o leaves no partial file.
"$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --strict -o "$T/strict.jsonl" 2> "$T/strict.err"
check "--strict exits 1" test $? -eq 1
check "--strict names file:line" grep -q "in.tsv:4:" "$T/strict.err"
check "--strict leaves no output file" test ! -e "$T/strict.jsonl"
check "no temp file left behind" sh -c "! ls '$T' | grep -q tmp"

# JSONL input with relevance and rank.
printf '{"qid":"a","query":"fast compression","docno":"x","text":"zstd compression","relevance":2,"rank":3}\n{"qid":1,"query":"web browser","docno":2,"text":"browser"}\n' > "$T/in.jsonl"
"$MECHIR" pairs --model "$MODEL" --input "$T/in.jsonl" --max-len 32 2>/dev/null > "$T/j.jsonl"
check "JSONL: 2 pairs" test "$(wc -l < "$T/j.jsonl")" -eq 2
check "JSONL: relevance and rank carried" grep -q '"relevance":2,"rank":3' "$T/j.jsonl"
check "JSONL: integer ids printed as strings" grep -q '"qid":"1","docno":"2"' "$T/j.jsonl"

# TREC: run + topics + docs (+ qrels), top-k, a missing docno, and tdc with document frequencies.
printf 'q1\tfast lossless compression\nq2\tweb browser engine\n' > "$T/topics.tsv"
printf 'd1\tZstd is a fast lossless compression tool\nd2\tbrowser engine\nd3\tlossless audio codec\n' > "$T/docs.tsv"
printf 'q1 Q0 d1 1 9.1 bm25\nq1 Q0 d3 2 8.0 bm25\nq1 Q0 d9 3 7.0 bm25\nq2 Q0 d2 1 5.0 bm25\nq2 Q0 d1 2 1.0 bm25\n' > "$T/run.txt"
printf 'q1 0 d1 1\nq2 0 d2 1\n' > "$T/qrels.txt"
"$MECHIR" pairs --model "$MODEL" --run "$T/run.txt" --topics "$T/topics.tsv" --docs "$T/docs.tsv" \
    --qrels "$T/qrels.txt" --top-k 3 --perturb tdc --max-len 32 --write-df "$T/df.tsv" \
    -o "$T/trec.jsonl" 2> "$T/trec.err"
check "TREC: exits 0" test $? -eq 0
check "TREC: 4 pairs (d9 missing from docs)" test "$(wc -l < "$T/trec.jsonl")" -eq 4
check "TREC: missing docno reported with run file:line" grep -q "run.txt:3: docno 'd9' not in docs" "$T/trec.err"
check "TREC: relevance from qrels" grep -q '"docno":"d1","perturbation":"tdc","term":"fast".*"relevance":1' "$T/trec.jsonl"
check "tdc: document frequencies written with #N" grep -qx "#N${tab}3" "$T/df.tsv"
"$MECHIR" pairs --model "$MODEL" --run "$T/run.txt" --topics "$T/topics.tsv" --docs "$T/docs.tsv" \
    --top-k 1 --perturb tdc --df "$T/df.tsv" --max-len 32 2>/dev/null > "$T/top1.jsonl"
check "--top-k 1 keeps rank 1 only" test "$(wc -l < "$T/top1.jsonl")" -eq 2

# The whole Debian collection (58,230 queries with their relevant document, and the BM25 top-20
# run of 39,995 lines) with each perturbation: produced + skipped = the input units.
DEB=$DATA/debian
for k in tfc1 tdc lnc1; do
    for src in qrels run; do
        if [ $src = qrels ]; then set -- --qrels "$DEB/qrels.txt.zst"; units=58230;
        else set -- --run "$DEB/bm25-top20.run.zst" --qrels "$DEB/qrels.txt.zst" --top-k 20; units=39995; fi
        "$MECHIR" pairs --model "$MODEL" --topics "$DEB/topics.tsv.zst" --docs "$DEB/docs.tsv.zst" "$@" \
            --perturb $k --max-len 64 --seed 1 -o "$T/deb.jsonl" 2> "$T/deb.err"
        check "Debian $src $k: exit 0" test $? -eq 0
        produced=$(sed -n 's/.*input units: \([0-9]*\) pairs written, \([0-9]*\) skipped.*/\1/p' "$T/deb.err")
        skipped=$(sed -n 's/.*input units: \([0-9]*\) pairs written, \([0-9]*\) skipped.*/\2/p' "$T/deb.err")
        check "Debian $src $k: $units units = $produced produced + $skipped skipped" \
            test "$((produced + skipped))" -eq $units
        check "Debian $src $k: $produced lines written" test "$(wc -l < "$T/deb.jsonl")" -eq "$produced"
        check "Debian $src $k: the summary counts $units units" grep -q "pairs: $units input units" "$T/deb.err"
    done
done

# Usage errors.
"$MECHIR" pairs --model "$MODEL" 2>/dev/null
check "no input: exit 1" test $? -eq 1
"$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --perturb nope 2>/dev/null
check "unknown perturbation: exit 1" test $? -eq 1
"$MECHIR" pairs --bogus 2>/dev/null
check "unknown option: exit 2" test $? -eq 2

# Option parsing (the shared option tables): --name=value is --name value, -o is --out, and a
# usage error exits 2 with one line on stderr naming the option and nothing on stdout.
"$MECHIR" pairs --model="$MODEL" --input="$T/in.tsv" --max-len=32 --seed=3 --out="$T/eq.jsonl" \
    2>/dev/null
check "--name=value: the same pairs as --name value" cmp -s "$T/out.jsonl" "$T/eq.jsonl"
for s in 0x10 16; do
    "$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --max-len 32 --seed $s 2>/dev/null \
        > "$T/seed$s.jsonl"
done
check "--seed 0x10 is --seed 16" cmp -s "$T/seed0x10.jsonl" "$T/seed16.jsonl"
"$MECHIR" pairs --help > "$T/help.txt" 2>&1
check "--help: exit 0" test $? -eq 0
check "--help names the source options" grep -q -- "--perturb KIND" "$T/help.txt"
usage() { # description, a text stderr must hold, then the arguments of mechir pairs
    what=$1; want=$2; shift 2
    "$MECHIR" pairs "$@" > "$T/u.out" 2> "$T/u.err"
    rc=$?
    check "$what: exit 2" test $rc -eq 2
    check "$what: nothing on stdout" test ! -s "$T/u.out"
    check "$what: one line on stderr naming the problem" \
        sh -c "test \$(wc -l < '$T/u.err') -eq 1 && grep -qF -- \"\$1\" '$T/u.err'" - "$want"
}
usage "no --model" "--model is required" --input "$T/in.tsv"
usage "a source option without its value" "--input needs a value" --model "$MODEL" --input
usage "-o without its value" "-o needs a value" --model "$MODEL" --input "$T/in.tsv" -o
usage "a bad integer" "--max-len needs an integer in 4..1048576, got 'x'" \
    --model "$MODEL" --input "$T/in.tsv" --max-len x
usage "--name=value out of range" "--max-len needs an integer in 4..1048576, got '3'" \
    --model "$MODEL" --input "$T/in.tsv" --max-len=3
usage "a negative seed" "--seed needs a non-negative integer, got '-1'" \
    --model "$MODEL" --input "$T/in.tsv" --seed -1
usage "--top-k 0" "--top-k needs an integer in 1..1073741824, got '0'" \
    --model "$MODEL" --input "$T/in.tsv" --top-k 0
usage "a flag given a value" "--strict takes no value" \
    --model "$MODEL" --input "$T/in.tsv" --strict=1
usage "a stray argument" "unexpected argument 'stray'" --model "$MODEL" --input "$T/in.tsv" stray
usage "options end at --" "unexpected argument '--input'" --model "$MODEL" -- --input "$T/in.tsv"
usage "an unknown option" "unknown option '--bogus'" --model "$MODEL" --input "$T/in.tsv" --bogus

# pairs reads a model's text side only: config.json and vocab.txt, no weights at all.
mkdir "$T/textonly"
cp "$MODEL/config.json" "$MODEL/vocab.txt" "$T/textonly/"
"$MECHIR" pairs --model "$T/textonly" --input "$T/in.tsv" --max-len 32 --seed 3 \
    -o "$T/textonly.jsonl" 2>/dev/null
check "a model directory without model.safetensors: exit 0" test $? -eq 0
check "without weights: the same 3 pairs" cmp -s "$T/out.jsonl" "$T/textonly.jsonl"

# -o over something that is not a regular file is written in place, never replaced: a link to
# /dev/null stays a link (a rename would replace it), a FIFO stays a FIFO and its reader gets
# the 3 pairs of in.tsv.
ln -s /dev/null "$T/null"
"$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --max-len 32 --seed 3 -o "$T/null" 2>/dev/null
check "-o a link to /dev/null: exit 0" test $? -eq 0
check "-o a link to /dev/null: still a link to a character device" \
    sh -c "test -L '$T/null' && test -c '$T/null'"
mkfifo "$T/fifo"
timeout 30 cat "$T/fifo" > "$T/fifo.out" & # no writer must not hang the test
reader=$!
"$MECHIR" pairs --model "$MODEL" --input "$T/in.tsv" --max-len 32 --seed 3 -o "$T/fifo" 2>/dev/null
check "-o a FIFO: exit 0" test $? -eq 0
wait $reader
check "-o a FIFO: still a FIFO" test -p "$T/fifo"
check "-o a FIFO: its reader got the 3 pairs" test "$(wc -l < "$T/fifo.out")" -eq 3
check "-o a FIFO: no temp file left" sh -c "! ls '$T'/fifo.tmp.* 2>/dev/null"

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all pairs checks passed"
