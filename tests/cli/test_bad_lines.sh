#!/bin/sh
# Bad input lines on stderr, for `mechir run` and `mechir pairs`: one `FILE:LINE: reason` per bad
# line (line numbers count every line of the file: the header and empty lines too), at most 20 of
# each kind, then `... and N more ...`; records that cannot be perturbed named the same way. A run
# without a usable pair (all lines bad, all records unperturbable, an empty file) exits 1 with one
# `no usable pair` line and writes no circuit map. Expected lines are written out by hand.
# usage: test_bad_lines.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
MODEL=$2/examples/demo-ce
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_badlines.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1
fails=0
check() { # description, then a command that must succeed
    d=$1
    shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
# same DESC WANT GOT: the files are equal, or the difference is shown.
same() {
    if cmp -s "$2" "$3"; then
        echo "ok - $1"
    else
        echo "FAIL - $1"
        diff "$2" "$3" | sed 's/^/    | /'
        fails=$((fails + 1))
    fi
}
# The lines of stderr file $2 that name input file $1, and the `... and N more` lines.
named() { grep -e "^$1:" -e '^\.\.\. and ' "$2"; }
run() { # OUT INPUT: mechir run into $T/OUT; $rc, stderr in $T/OUT.err
    "$MECHIR" run --model "$MODEL" --input "$2" --max-len 32 --out "$T/$1" >"$T/$1.out" \
        2>"$T/$1.err"
    rc=$?
}
pairs() { # NAME INPUT: mechir pairs; $rc, stderr in $T/NAME.err
    "$MECHIR" pairs --model "$MODEL" --input "$2" --max-len 32 >"$T/$1.jsonl" 2>"$T/$1.err"
    rc=$?
}

# Three bad lines among good ones; line 1 is a header and line 5 is empty (neither is a unit).
F=$T/three.tsv
{
    printf 'qid\tquery\tdocno\ttext\n'
    printf 'q1\tfast lossless compression\td1\tZstd is a fast compression algorithm.\n'
    printf 'q3\tonly three\tcolumns\n'
    printf 'q2\tweb browser engine\td2\tA browser for the web.\n'
    printf '\n'
    printf 'q6\t\td6\tempty query\n'
    printf 'q1\tfast lossless compression\td1\tduplicate pair\n'
    printf 'q4\tpdf rendering library\td4\tPoppler renders PDF files.\n'
} >"$F"
{
    printf '%s:3: expected 4 or 5 tab-separated columns, found 3\n' "$F"
    printf '%s:6: empty query\n' "$F"
    printf '%s:7: duplicate (qid, docno) pair, first at line 2\n' "$F"
} >"$T/three.want"
run three "$F"
check "run, 3 bad lines: exit 0" test "$rc" -eq 0
named "$F" "$T/three.err" >"$T/three.got"
same "run, 3 bad lines: exactly the three FILE:LINE: reason lines" "$T/three.want" "$T/three.got"
check "run, 3 bad lines: circuit.cmap written" test -s "$T/three/circuit.cmap"
pairs three-pairs "$F"
check "pairs, 3 bad lines: exit 0 and 3 pairs" \
    test "$rc" -eq 0 -a "$(wc -l <"$T/three-pairs.jsonl")" -eq 3
named "$F" "$T/three-pairs.err" >"$T/three-pairs.got"
same "pairs, 3 bad lines: the same three lines" "$T/three.want" "$T/three-pairs.got"

# 25 bad lines after a good one: lines 2..21 named, then the count of the other 5.
F=$T/many.tsv
{
    printf 'q1\tfast lossless compression\td1\tZstd is a fast compression algorithm.\n'
    i=2
    while [ $i -le 26 ]; do
        printf 'q%d\ttwo columns\n' $i
        i=$((i + 1))
    done
} >"$F"
{
    i=2
    while [ $i -le 21 ]; do
        printf '%s:%d: expected 4 or 5 tab-separated columns, found 2\n' "$F" $i
        i=$((i + 1))
    done
    echo '... and 5 more bad input lines'
} >"$T/many.want"
run many "$F"
check "run, 25 bad lines: exit 0" test "$rc" -eq 0
named "$F" "$T/many.err" >"$T/many.got"
same "run, 25 bad lines: 20 named, then '... and 5 more bad input lines'" "$T/many.want" \
    "$T/many.got"
check "run, 25 bad lines: the count says 25" grep -q "1 records, 25 bad input lines" "$T/many.err"
pairs many-pairs "$F"
named "$F" "$T/many-pairs.err" >"$T/many-pairs.got"
same "pairs, 25 bad lines: the same 21 lines" "$T/many.want" "$T/many-pairs.got"

# no_usable NAME INPUT MESSAGE: run exits 1, says MESSAGE in its last line, writes no map.
no_usable() {
    run "$1" "$2"
    check "$1: exit 1" test "$rc" -eq 1
    check "$1: the last line of stderr is the message" \
        test "$(tail -n 1 "$T/$1.err")" = "mechir run: $3"
    check "$1: one error line" test "$(grep -c 'no usable pair' "$T/$1.err")" -eq 1
    check "$1: no circuit.cmap" test ! -e "$T/$1/circuit.cmap"
    check "$1: no circuit.json" test ! -e "$T/$1/circuit.json"
    check "$1: nothing on stdout" test ! -s "$T/$1.out"
}

F=$T/allbad.tsv
printf 'q1\tthree\tcolumns\nq2\tfast compression\td2\t\n' >"$F"
no_usable allbad "$F" "no usable pair in $F (2 bad lines, 0 records could not be perturbed)"
{
    printf '%s:1: expected 4 or 5 tab-separated columns, found 3\n' "$F"
    printf '%s:2: empty text\n' "$F"
} >"$T/allbad.want"
named "$F" "$T/allbad.err" >"$T/allbad.got"
same "allbad: both lines named" "$T/allbad.want" "$T/allbad.got"

F=$T/empty.tsv
: >"$F"
no_usable empty "$F" "no usable pair in $F (0 bad lines, 0 records could not be perturbed)"

# A bad line, an empty line, then 25 records without a query term left after the stopwords:
# lines 3..22 named with the perturber's reason, then the count of the other 5.
F=$T/unperturbable.tsv
{
    printf 'q0\tthree\tcolumns\n\n'
    i=3
    while [ $i -le 27 ]; do
        printf 'q%d\tthe it is\td%d\tno query term survives the stopwords\n' $i $i
        i=$((i + 1))
    done
} >"$F"
no_usable unperturbable "$F" \
    "no usable pair in $F (1 bad line, 25 records could not be perturbed)"
{
    printf '%s:1: expected 4 or 5 tab-separated columns, found 3\n' "$F"
    i=3
    while [ $i -le 22 ]; do
        printf '%s:%d: no query term (after stopwords and words shorter than 3 characters)\n' \
            "$F" $i
        i=$((i + 1))
    done
    echo '... and 5 more records that could not be perturbed'
} >"$T/unperturbable.want"
named "$F" "$T/unperturbable.err" >"$T/unperturbable.got"
same "unperturbable: the bad line, 20 records by file:line, then the count of the rest" \
    "$T/unperturbable.want" "$T/unperturbable.got"

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all bad-line checks passed"
