#!/bin/sh
# CLI contract of mechir: bad input exits 1..127 with exactly one line on stderr naming the file
# and the tensor/key/line, and nothing on stdout; usage errors exit 2; valid input prints the
# golden scores of tests/data/models/*/golden.json within |got - want| <= 1e-5 + 1e-4 * |want|.
# Needs only a POSIX shell, coreutils, sed and awk (mawk is enough; no jq, no python).
# usage: test_cli.sh PATH/TO/mechir PATH/TO/tests/data
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY TESTS_DATA_DIR" >&2
    exit 2
fi
MECHIR=$1
DATA=$2
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mch_cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' HUP INT TERM
TAB=$(printf '\t')
failures=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# Runs mechir with stdout and stderr in files; $rc is its exit status.
run() {
    "$MECHIR" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

show_output() {
    echo "  exit status: $rc"
    sed 's/^/  stdout: /' "$TMP/out"
    sed 's/^/  stderr: /' "$TMP/err"
}

# expect_refused DESC NEEDLE... -- ARGS...: mechir ARGS exits 1..127, prints nothing on stdout and
# exactly one line on stderr, which contains every NEEDLE.
expect_refused() {
    desc=$1
    shift
    needles=$TMP/needles
    : >"$needles"
    while [ "$1" != "--" ]; do
        printf '%s\n' "$1" >>"$needles"
        shift
    done
    shift
    run "$@"
    ok=1
    if [ "$rc" -lt 1 ] || [ "$rc" -gt 127 ]; then
        fail "$desc: exit status $rc, want 1..127"
        ok=0
    fi
    if [ -s "$TMP/out" ]; then
        fail "$desc: printed on stdout"
        ok=0
    fi
    if [ "$(wc -l <"$TMP/err")" -ne 1 ] || [ -n "$(tail -c 1 "$TMP/err")" ]; then
        fail "$desc: stderr is not exactly one line"
        ok=0
    fi
    while IFS= read -r needle; do
        if ! grep -qF -- "$needle" "$TMP/err"; then
            fail "$desc: stderr does not contain '$needle'"
            ok=0
        fi
    done <"$needles"
    if [ $ok = 1 ]; then echo "ok: $desc: $(cat "$TMP/err")"; else show_output; fi
}

# expect_status DESC WANT ARGS...: mechir ARGS exits WANT; for 0, stdout must not be empty.
expect_status() {
    desc=$1
    want=$2
    shift 2
    run "$@"
    if [ "$rc" -ne "$want" ]; then
        fail "$desc: exit status $rc, want $want"
        show_output
    elif [ "$want" -eq 0 ] && [ ! -s "$TMP/out" ]; then
        fail "$desc: printed nothing on stdout"
        show_output
    elif [ "$want" -ne 0 ] && [ ! -s "$TMP/err" ]; then
        fail "$desc: exit status $want but nothing on stderr"
        show_output
    else
        echo "ok: $desc"
    fi
}

# golden FILE CASE KEY: the value of KEY in cases[CASE] of a golden.json, a number as written or
# a string with its JSON escapes (\uXXXX, surrogate pairs included) decoded to UTF-8 bytes.
# Relies on the fixture layout: each case is an object that starts with {"query": .
golden() {
    LC_ALL=C awk -v want_case="$2" -v key="$3" '
    function hexval(h,    i, c, v) {
        v = 0
        for (i = 1; i <= length(h); i++) {
            c = index("0123456789abcdef", tolower(substr(h, i, 1)))
            if (c == 0) return -1
            v = v * 16 + c - 1
        }
        return v
    }
    function utf8(cp) {
        if (cp < 128) return sprintf("%c", cp)
        if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
        if (cp < 65536)
            return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
        return sprintf("%c%c%c%c", 240 + int(cp / 262144), 128 + int(cp / 4096) % 64,
                       128 + int(cp / 64) % 64, 128 + cp % 64)
    }
    { text = text $0 "\n" }
    END {
        p = index(text, "\"cases\"")
        if (!p) exit 1
        rest = substr(text, p)
        for (c = 0; c <= want_case; c++) {
            p = index(rest, "{\"query\": ")
            if (!p) exit 1
            rest = substr(rest, p + 1)
        }
        p = index(rest, "{\"query\": ")
        if (p) rest = substr(rest, 1, p - 1)
        p = index(rest, "\"" key "\": ")
        if (!p) exit 1
        v = substr(rest, p + length(key) + 4)
        if (substr(v, 1, 1) != "\"") {
            if (!match(v, /^-?[0-9][0-9.eE+-]*/)) exit 1
            printf "%s", substr(v, 1, RLENGTH)
            exit 0
        }
        out = ""
        i = 2
        for (;;) {
            ch = substr(v, i, 1)
            if (ch == "") exit 1
            if (ch == "\"") break
            if (ch != "\\") {
                out = out ch
                i++
                continue
            }
            e = substr(v, i + 1, 1)
            if (e == "u") {
                cp = hexval(substr(v, i + 2, 4))
                if (cp < 0) exit 1
                i += 6
                if (cp >= 55296 && cp < 56320 && substr(v, i, 2) == "\\u") {
                    lo = hexval(substr(v, i + 2, 4))
                    cp = 65536 + (cp - 55296) * 1024 + (lo - 56320)
                    i += 6
                }
                out = out utf8(cp)
                continue
            }
            if (e == "n") out = out "\n"
            else if (e == "t") out = out "\t"
            else if (e == "r") out = out "\r"
            else if (e == "b") out = out "\b"
            else if (e == "f") out = out "\f"
            else out = out e
            i += 2
        }
        printf "%s", out
    }' "$1"
}

# close_enough GOT WANT [REL]: GOT is a number within 1e-5 + REL * |WANT| of WANT (REL 1e-4).
close_enough() {
    case $1 in
    '' | *[!0-9eE.+-]*) return 1 ;;
    esac
    awk -v g="$1" -v w="$2" -v r="${3:-1e-4}" 'BEGIN {
        d = g - w; if (d < 0) d = -d
        a = w; if (a < 0) a = -a
        exit !(d <= 1e-5 + r * a)
    }'
}

# expect_score DESC WANT ARGS...: mechir ARGS exits 0 and prints one line, a score close to WANT.
expect_score() {
    desc=$1
    want=$2
    shift 2
    run "$@"
    got=$(cat "$TMP/out")
    if [ "$rc" -ne 0 ] || [ "$(wc -l <"$TMP/out")" -ne 1 ] || ! close_enough "$got" "$want"; then
        fail "$desc: want one line with a score within tolerance of $want"
        show_output
    else
        echo "ok: $desc: $got (golden $want)"
    fi
}

# A copy of a fixture model's three files in $TMP/NAME.
copy_model() {
    mkdir "$TMP/$2" || exit 1
    for f in config.json vocab.txt model.safetensors; do
        cp "$DATA/models/$1/$f" "$TMP/$2/$f" || exit 1
    done
}

# edit_file FILE SED_SCRIPT: edits a copy in place (byte-wise); the edit must change the file.
edit_file() {
    LC_ALL=C sed "$2" "$1" >"$1.new" || exit 1
    if cmp -s "$1" "$1.new"; then
        echo "test setup: sed '$2' did not change $1"
        exit 1
    fi
    mv "$1.new" "$1"
}

BERT=$DATA/models/bert-ce-tiny
DOT=$DATA/models/distilbert-dot-tiny

# ---- informational commands and usage errors ----
expect_status "mechir --version" 0 --version
expect_status "mechir --help" 0 --help
expect_status "mechir score --help" 0 score --help
expect_status "mechir without a command" 2
expect_status "unknown command" 2 frobnicate
expect_status "unknown top-level option" 2 --frobnicate
expect_status "unknown score option" 2 score --model "$BERT" --query q --doc d --frobnicate
expect_status "score option without its value" 2 score --model "$BERT" --query q --doc
expect_status "score without --doc" 2 score --model "$BERT" --query q
expect_status "score with a bad --max-len" 2 score --model "$BERT" --query q --doc d --max-len x
expect_status "score with a bad --pooling" 2 score --model "$BERT" --query q --doc d --pooling max

# ---- golden scores ----
q0=$(golden "$BERT/golden.json" 0 query) || fail "golden: no query in case 0"
d0=$(golden "$BERT/golden.json" 0 doc) || fail "golden: no doc in case 0"
s0=$(golden "$BERT/golden.json" 0 score) || fail "golden: no score in case 0"
[ "$q0" = "what is the capital of france?" ] || fail "golden: case 0 query is '$q0'"
case $d0 in
*"Naïve café-goers   sip ünïcode!") ;;
*) fail "golden: case 0 doc decoded as '$d0'" ;;
esac
expect_score "cross-encoder case 0" "$s0" score --model "$BERT" --max-len 128 \
    --query "what is the capital of france?" --doc "$d0"

# Three golden cases (0, 1, 3: no tabs in their texts) as a TSV, scored in input order.
: >"$TMP/pairs.tsv"
: >"$TMP/want.txt"
for c in 0 1 3; do
    printf 'q%s\t%s\td%s\t%s\n' "$c" "$(golden "$BERT/golden.json" $c query)" "$c" \
        "$(golden "$BERT/golden.json" $c doc)" >>"$TMP/pairs.tsv"
    printf 'q%s d%s %s\n' "$c" "$c" "$(golden "$BERT/golden.json" $c score)" >>"$TMP/want.txt"
done
run score --model "$BERT" --max-len 128 --input "$TMP/pairs.tsv"
if [ "$rc" -ne 0 ] || [ "$(wc -l <"$TMP/out")" -ne 3 ]; then
    fail "score --input: want exit 0 and 3 lines"
    show_output
else
    i=0
    while read -r wq wd ws; do
        i=$((i + 1))
        line=$(sed -n "${i}p" "$TMP/out")
        gq=$(printf '%s\n' "$line" | cut -f1)
        gd=$(printf '%s\n' "$line" | cut -f2)
        gs=$(printf '%s\n' "$line" | cut -f3)
        extra=$(printf '%s\n' "$line" | cut -f4-)
        if [ "$line" != "$gq$TAB$gd$TAB$gs" ] || [ -n "$extra" ]; then
            fail "score --input line $i: '$line' is not qid<TAB>docno<TAB>score"
        elif [ "$gq" != "$wq" ] || [ "$gd" != "$wd" ] || ! close_enough "$gs" "$ws"; then
            fail "score --input line $i: '$line', want $wq $wd $ws"
        else
            echo "ok: score --input line $i: $line (golden $ws)"
        fi
    done <"$TMP/want.txt"
fi

bq=$(golden "$DOT/golden.json" 0 query) || fail "golden: no query in bi-encoder case 0"
bd=$(golden "$DOT/golden.json" 0 doc) || fail "golden: no doc in bi-encoder case 0"
bs=$(golden "$DOT/golden.json" 0 score) || fail "golden: no score in bi-encoder case 0"
bm=$(golden "$DOT/golden.json" 0 score_mean) || fail "golden: no score_mean in bi-encoder case 0"
expect_score "bi-encoder case 0, CLS pooling" "$bs" score --model "$DOT" --max-len 128 \
    --query "$bq" --doc "$bd"
expect_score "bi-encoder case 0, mean pooling" "$bm" score --model "$DOT" --max-len 128 \
    --pooling mean --query "$bq" --doc "$bd"

# ---- bad model directories ----
expect_refused "model directory that does not exist" "$TMP/nowhere/config.json" -- \
    score --model "$TMP/nowhere" --query q --doc d

copy_model bert-ce-tiny heads0
edit_file "$TMP/heads0/config.json" 's/"num_attention_heads": 4/"num_attention_heads": 0/'
expect_refused "config.json with zero heads" "$TMP/heads0/config.json" "num_attention_heads" -- \
    score --model "$TMP/heads0" --query q --doc d

copy_model bert-ce-tiny swish
edit_file "$TMP/swish/config.json" 's/"hidden_act": "gelu"/"hidden_act": "swish"/'
expect_refused "config.json with hidden_act swish" "$TMP/swish/config.json" "'hidden_act'" \
    "'swish'" -- score --model "$TMP/swish" --query q --doc d

copy_model bert-ce-tiny relkey
edit_file "$TMP/relkey/config.json" \
    's/"hidden_act": "gelu",/"hidden_act": "gelu", "position_embedding_type": "relative_key",/'
expect_refused "config.json with relative_key positions" "$TMP/relkey/config.json" \
    "position_embedding_type" "relative_key" -- score --model "$TMP/relkey" --query q --doc d

copy_model bert-ce-tiny ff65
edit_file "$TMP/ff65/config.json" 's/"intermediate_size": 64/"intermediate_size": 65/'
expect_refused "config.json disagreeing with a tensor" "$TMP/ff65/model.safetensors" \
    "'bert.encoder.layer.0.intermediate.dense.weight'" -- \
    score --model "$TMP/ff65" --query q --doc d

copy_model bert-ce-tiny nosep
edit_file "$TMP/nosep/vocab.txt" 's/^\[SEP\]$/[SEX]/'
expect_refused "vocab.txt without [SEP]" "$TMP/nosep/vocab.txt" "[SEP]" -- \
    score --model "$TMP/nosep" --query q --doc d

copy_model bert-ce-tiny emptyvocab
: >"$TMP/emptyvocab/vocab.txt"
expect_refused "empty vocab.txt" "$TMP/emptyvocab/vocab.txt" -- \
    score --model "$TMP/emptyvocab" --query q --doc d

copy_model bert-ce-tiny emptyst
: >"$TMP/emptyst/model.safetensors"
expect_refused "empty model.safetensors" "$TMP/emptyst/model.safetensors" -- \
    score --model "$TMP/emptyst" --query q --doc d

copy_model bert-ce-tiny cutst
head -c 2000000 "$BERT/model.safetensors" >"$TMP/cutst/model.safetensors"
expect_refused "model.safetensors cut in the data" "$TMP/cutst/model.safetensors" \
    "'bert.embeddings.word_embeddings.weight'" -- score --model "$TMP/cutst" --query q --doc d

copy_model bert-ce-tiny cuthdr
head -c 2000 "$BERT/model.safetensors" >"$TMP/cuthdr/model.safetensors"
expect_refused "model.safetensors cut in the header" "$TMP/cuthdr/model.safetensors" \
    "header length" -- score --model "$TMP/cuthdr" --query q --doc d

# A same-length rename inside the header keeps the header length valid.
copy_model bert-ce-tiny rename
edit_file "$TMP/rename/model.safetensors" 's/"bert\.pooler\.dense\.bias"/"bert.pooler.dense.bXas"/'
expect_refused "model.safetensors without a needed tensor" "$TMP/rename/model.safetensors" \
    "'bert.pooler.dense.bias'" -- score --model "$TMP/rename" --query q --doc d

copy_model bert-ce-tiny i32
edit_file "$TMP/i32/model.safetensors" \
    's/"classifier\.bias":{"dtype":"F32"/"classifier.bias":{"dtype":"I32"/'
expect_refused "model.safetensors with an I32 tensor" "$TMP/i32/model.safetensors" \
    "'classifier.bias'" "I32" -- score --model "$TMP/i32" --query q --doc d

# ---- bad input texts ----
printf 'q1\tquery one\td1\tdoc one\nq2\tquery two\td2\n' >"$TMP/cols.tsv"
expect_refused "TSV line with 3 columns" "$TMP/cols.tsv:2:" "found 3" -- \
    score --model "$BERT" --input "$TMP/cols.tsv"

printf 'q1\tquery one\td1\tdoc one\nq2\tquery two\td2\tdoc\ttwo\n' >"$TMP/cols5.tsv"
expect_refused "TSV line with 5 columns" "$TMP/cols5.tsv:2:" "found 5" -- \
    score --model "$BERT" --input "$TMP/cols5.tsv"

printf 'q1\tquery one\td1\tdoc one\nq2\tquery two\td2\tdoc two\nq3\tquery\td3\tbad \377 byte\n' \
    >"$TMP/utf8.tsv"
expect_refused "TSV line with invalid UTF-8" "$TMP/utf8.tsv:3:" "UTF-8" -- \
    score --model "$BERT" --input "$TMP/utf8.tsv"

expect_refused "TSV that does not exist" "$TMP/missing.tsv" -- \
    score --model "$BERT" --input "$TMP/missing.tsv"

expect_refused "--query with invalid UTF-8" "--query" "UTF-8" -- \
    score --model "$BERT" --query "$(printf 'caf\303')" --doc d

# An empty (or blank) query: a bad line for score --input (exit 1, FILE:LINE, nothing printed,
# although line 1 is good) with the reason mechir pairs gives the same line.
for q in '' ' '; do
    printf 'q1\tred apple\td1\tAn apple a day.\nq1\t%s\td2\tBananas are yellow.\n' "$q" \
        >"$TMP/emptyq.tsv"
    expect_refused "score --input, line 2 with query '$q'" "$TMP/emptyq.tsv:2: empty query" -- \
        score --model "$BERT" --input "$TMP/emptyq.tsv"
    [ "$rc" -eq 1 ] || fail "score --input, line 2 with query '$q': exit status $rc, want 1"
    run pairs --model "$BERT" --input "$TMP/emptyq.tsv"
    if [ "$rc" -ne 0 ] || [ "$(wc -l <"$TMP/out")" -ne 1 ] ||
        ! grep -q '"qid":"q1","docno":"d1"' "$TMP/out" ||
        ! grep -qxF "$TMP/emptyq.tsv:2: empty query" "$TMP/err"; then
        fail "pairs --input, line 2 with query '$q': want the pair of line 1 and line 2 skipped"
        show_output
    else
        echo "ok: pairs --input skips line 2 with query '$q': empty query"
    fi
done

# One header rule for both commands: line 1 whose first field is "qid" is a header, whatever the
# other fields say; "qid" as the first field of a later line is a pair's qid.
printf 'qid\tquestion\tdocid\tbody\nq1\tred apple\td1\tAn apple a day.\n' >"$TMP/hdr.tsv"
printf 'qid\tred apple\td2\tApples are red.\n' >>"$TMP/hdr.tsv"
run score --model "$BERT" --input "$TMP/hdr.tsv"
if [ "$rc" -ne 0 ] || [ "$(cut -f1,2 "$TMP/out" | tr '\t\n' ':,')" != "q1:d1,qid:d2," ]; then
    fail "score --input with a header line: want the pairs q1/d1 and qid/d2"
    show_output
else
    echo "ok: score --input passes over the header line: $(cut -f1,2 "$TMP/out" | tr '\t\n' ':,')"
fi
run pairs --model "$BERT" --input "$TMP/hdr.tsv"
if [ "$rc" -ne 0 ] || [ "$(wc -l <"$TMP/out")" -ne 2 ] ||
    ! grep -q '"qid":"q1","docno":"d1"' "$TMP/out" ||
    ! grep -q '"qid":"qid","docno":"d2"' "$TMP/out" ||
    ! grep -q '2 input units: 2 pairs written' "$TMP/err"; then
    fail "pairs --input with a header line: want 2 units, the pairs q1/d1 and qid/d2"
    show_output
else
    echo "ok: pairs --input passes over the header line: 2 units, q1/d1 and qid/d2"
fi

# A repeated (qid, docno) pair is scored again by score (pairs skips it as a duplicate).
printf 'q1\tred apple\td1\tAn apple a day.\nq1\tred apple\td1\tAn apple a day.\n' >"$TMP/dup.tsv"
run score --model "$BERT" --input "$TMP/dup.tsv"
if [ "$rc" -ne 0 ] || [ "$(cut -f1,2 "$TMP/out" | tr '\t\n' ':,')" != "q1:d1,q1:d1," ]; then
    fail "score --input with a repeated pair: want q1/d1 scored twice"
    show_output
else
    echo "ok: score --input scores a repeated pair twice"
fi

# ---- mechir patch ----
# expect_usage DESC NEEDLE... -- ARGS...: as expect_refused, and the exit status is 2.
expect_usage() {
    expect_refused "$@"
    [ "$rc" -eq 2 ] || fail "$1: exit status $rc, want 2 (usage)"
}

# fixture_ids FILE KEY: the first case's KEY array of a patching fixture, as "1,2,3".
fixture_ids() {
    grep -o "\"$2\": \[[0-9, ]*\]" "$1" | head -n 1 | sed 's/.*\[//; s/\].*//; s/, /,/g'
}

# first_row KEY N FILE: the Nth number of the first row of the first KEY matrix in FILE.
first_row() {
    grep -o "\"$1\": *\[\[[^]]*\]" "$3" | head -n 1 | sed 's/.*\[//; s/\]//' | tr -d ' ' |
        cut -d, -f"$2"
}

# json_number KEY: the first "KEY": number in $TMP/out.
json_number() {
    grep -o "\"$1\":-\{0,1\}[0-9][0-9.eE+-]*" "$TMP/out" | head -n 1 | cut -d: -f2
}

# The bi-encoder fixture's first case, given as ids: the scores and heads_scores[0][2] (head 0.2
# moves the score by 0.011, far beyond the tolerance) against an independent float64 reference,
# within the fixture's raw-score tolerance 1e-5 + 1e-5 * |want|.
FIX=$DATA/patching/distilbert-dot-tfc1.json
pb=$(fixture_ids "$FIX" ids_baseline)
pp=$(fixture_ids "$FIX" ids_perturbed)
pq=$(fixture_ids "$FIX" query_ids)
want_b=$(golden "$FIX" 0 score_baseline) || fail "golden: no score_baseline in $FIX"
want_p=$(golden "$FIX" 0 score_perturbed) || fail "golden: no score_perturbed in $FIX"
want_h=$(first_row heads_scores 3 "$FIX")
run patch --model="$DOT" --ids-baseline="$pb" --ids-perturbed="$pp" --query-ids="$pq" \
    --sweep=heads --min-delta=1e-9
got_b=$(json_number score_baseline)
got_p=$(json_number score_perturbed)
got_h=$(first_row heads_scores 3 "$TMP/out")
if [ "$rc" -ne 0 ] || [ "$(wc -l <"$TMP/out")" -ne 1 ] || [ -s "$TMP/err" ] ||
    ! close_enough "$got_b" "$want_b" 1e-5 || ! close_enough "$got_p" "$want_p" 1e-5 ||
    ! close_enough "$got_h" "$want_h" 1e-5; then
    fail "patch --opt=value: want one JSON line with scores $want_b, $want_p and" \
        "heads_scores[0][2] $want_h"
    show_output
else
    echo "ok: patch --opt=value: scores $got_b $got_p, heads_scores[0][2] $got_h (golden $want_h)"
fi
cp "$TMP/out" "$TMP/patch_eq.json"
run patch --model "$DOT" --ids-baseline "$pb" --ids-perturbed "$pp" --query-ids "$pq" \
    --sweep heads --min-delta 1e-9
if [ "$rc" -eq 0 ] && cmp -s "$TMP/out" "$TMP/patch_eq.json"; then
    echo "ok: patch: --opt value and --opt=value print the same bytes"
else
    fail "patch: --opt value and --opt=value differ"
    show_output
fi

expect_status "patch --help" 0 patch --help
expect_status "patch --help before a bad option" 0 patch --help --frobnicate
expect_status "patch: a pair whose score does not change is skipped (exit 0)" 0 \
    patch --model "$BERT" --query q --baseline "same text" --perturbed "same text" --sweep heads
grep -q '"skipped":' "$TMP/out" || fail "patch: the unchanged pair has no \"skipped\" key"

# usage_ab DESC NEEDLE ARGS...: expect_usage of `patch --model BERT --query q --baseline a
# --perturbed b ARGS...`.
usage_ab() {
    d=$1
    n=$2
    shift 2
    expect_usage "$d" "$n" -- patch --model "$BERT" --query q --baseline a --perturbed b "$@"
}
usage_ab "patch: unknown option" "unknown option '--frobnicate'" --sweep heads --frobnicate
usage_ab "patch: --help after an unknown option" "unknown option '--frobnicate'" --frobnicate --help
usage_ab "patch: an option without its value" "--sweep needs a value" --sweep
usage_ab "patch: --opt= with a bad value" "--max-len needs an integer in 2..1048576, got 'x'" \
    --sweep heads --max-len=x
usage_ab "patch: a flag given a value" "--naive takes no value" --sweep heads --naive=1
usage_ab "patch: a positional argument" "unexpected argument 'extra'" --sweep heads extra
usage_ab "patch: options end at --" "unexpected argument '--sweep'" -- --sweep heads
usage_ab "patch: unknown sweep" "unknown sweep 'bogus'" --sweep heads,bogus
usage_ab "patch: empty sweep list" "--sweep is empty" --sweep ,
usage_ab "patch: bad head list" "--heads takes LAYER.HEAD pairs like 0.1,2.3, got '0.1,1.'" \
    --sweep head-pos --heads 0.1,1.
usage_ab "patch: head-pos without heads" "--sweep head-pos needs --heads" --sweep head-pos
usage_ab "patch: --save-patterns without heads" "--save-patterns needs --heads" \
    --sweep heads --save-patterns
usage_ab "patch: --min-delta 0" "--min-delta needs a positive number, got '0'" \
    --sweep heads --min-delta 0
usage_ab "patch: bad --pooling" "--pooling takes cls or mean, got 'max'" --sweep heads --pooling max
usage_ab "patch: texts and ids at once" "give --model, --sweep" \
    --ids-baseline 1 --ids-perturbed 1 --sweep heads
usage_ab "patch: --max-len beyond the model" \
    "--max-len 999999 exceeds the model's longest input, 512 tokens" --sweep heads --max-len 999999
expect_refused "patch: head outside the model (exit 1)" "head 9.9 is outside the model" -- \
    patch --model "$BERT" --query q --baseline a --perturbed b --sweep head-pos --heads 9.9
[ "$rc" -eq 1 ] || fail "patch: head outside the model: exit status $rc, want 1"
expect_usage "patch: id lists of different lengths" \
    "--ids-baseline has 2 ids, --ids-perturbed 3" -- \
    patch --model "$BERT" --ids-baseline 101,102 --ids-perturbed 101,102,102 --sweep heads
expect_usage "patch: a bad id" "--ids-baseline: expected comma-separated token ids" "'x'" -- \
    patch --model "$BERT" --ids-baseline 101,x --ids-perturbed 101,102 --sweep heads
expect_usage "patch: bi-encoder ids without a query" \
    "a bi-encoder needs --query-ids or --query" -- \
    patch --model "$DOT" --ids-baseline 101,102 --ids-perturbed 101,103 --sweep heads
# texts of different token lengths are aligned (docs/INPUTS.md, given pairs); texts that differ
# in two places around a kept token cannot be
expect_refused "patch: texts that cannot be aligned (exit 1)" \
    "texts cannot be aligned: the documents differ in more than one span" -- \
    patch --model "$BERT" --query q --baseline "a b c d" --perturbed "e b f g h" --sweep heads
[ "$rc" -eq 1 ] || fail "patch: texts that cannot be aligned: exit status $rc, want 1"

if [ $failures -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all CLI checks passed"
