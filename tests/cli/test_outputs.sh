#!/bin/sh
# Outputs that cannot be half written (issue 14, item 7). Usage: test_outputs.sh MECHIR ROOT MODE
#   stdout  every command that prints to stdout, run with stdout on /dev/full (help, version,
#           score, patch, pairs, cache ls/verify, merge -o -, report --format json, run, submit
#           --dry-run): exit 1 and exactly one line on stderr, "...: No space left on device".
#   fsize   `mechir report` over an old report under a file-size limit (ulimit -f, SIGXFSZ left at
#           its default: mechir must ignore it itself) that the new strata.svg exceeds but the new
#           heads.svg does not: exit 1 naming the file and EFBIG, the old report's files
#           byte-identical, no temp directory left; a stale temp directory of a dead process is
#           removed by the next report; a directory holding a file that is not the report's is
#           refused, and the file kept; a successful report replaces every file.
#   tmpfs   the same full disk for real (root only: a small tmpfs filled up but for a few pages);
#           without root it skips with 77, a failure under CI=true.
set -u
MECHIR=$1
ROOT=$2
MODE=$3
MODEL=$ROOT/examples/demo-ce
T=$(mktemp -d)
MNT=
cleanup() {
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
. "$ROOT/tests/cli/checks.sh"
# Under LeakSanitizer, the table of suppressions used would add lines to stderr.
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}print_suppressions=0"
# one_line_error FILE WANT: FILE is exactly one line and it ends with WANT.
one_line_error() {
    [ "$(wc -l < "$1")" -eq 1 ] && grep -q -- "$2\$" "$1"
}
# small_run DIR LINES: a run of demo-200.tsv's lines LINES (sed range) into DIR.
small_run() {
    sed -n "$2p" "$ROOT/examples/demo-200.tsv" > "$T/in-$2.tsv"
    "$MECHIR" run --model "$MODEL" --input "$T/in-$2.tsv" --max-len 32 --out "$1" > /dev/null 2>&1
}
size() { wc -c < "$1"; }

REPORT_FILES="heads.svg blocks.svg head_pos.svg strata.svg components.csv components.json top.txt verified.csv index.html"
# same_files A B: the report files of A and B are byte-identical.
same_files() {
    for f in $REPORT_FILES; do cmp -s "$1/$f" "$2/$f" || return 1; done
}
# no_temp_dir PARENT NAME: no .NAME.tmp.* or .NAME.old.* beside the target.
no_temp_dir() {
    [ -z "$(find "$1" -maxdepth 1 \( -name ".$2.tmp.*" -o -name ".$2.old.*" \) -print)" ]
}

case $MODE in
stdout)
    sed -n 1,6p "$ROOT/examples/demo-200.tsv" > "$T/in.tsv"
    "$MECHIR" run --model "$MODEL" --input "$T/in.tsv" --max-len 32 --out "$T/run" \
        --cache blocks.0.hook_resid_mid > /dev/null 2>&1
    check "a small run with a cache for the commands below" test -s "$T/run/circuit.cmap"
    n=0
    while IFS='|' read -r name args; do
        [ -n "$name" ] || continue
        n=$((n + 1))
        # shellcheck disable=SC2086 # args are words
        eval "set -- $args"
        MECHIR_LOG=warn "$MECHIR" "$@" > /dev/full 2> "$T/err" # no info lines
        rc=$?
        check "$name > /dev/full: exit 1 (got $rc)" test "$rc" -eq 1
        check "$name > /dev/full: one line ending 'No space left on device' ($(head -c 200 "$T/err"))" \
            one_line_error "$T/err" "writing standard output: No space left on device"
    done <<EOF
--help|--help
--version|--version
score --help|score --help
run --help|run --help
score one pair|score --model "$MODEL" --query "cat food" --doc "a dog eats cat food"
score --input|score --model "$MODEL" --input "$ROOT/examples/demo-score.tsv"
patch|patch --model "$MODEL" --query "cat food" --baseline "a dog eats food" --perturbed "a cat eats food" --sweep heads
pairs -o -|pairs --model "$MODEL" --input "$T/in.tsv" -o -
pairs (stdout by default)|pairs --model "$MODEL" --input "$T/in.tsv"
cache ls|cache ls "$T/run"
cache verify|cache verify "$T/run"
merge -o -|merge "$T/run/circuit.cmap" -o -
report --format json|report "$T/run/circuit.cmap" --format json
run (its summary)|run --model "$MODEL" --input "$T/in.tsv" --max-len 32 --out "$T/run-full"
submit --dry-run|submit --scheduler slurm --time 00:10:00 --dry-run -- --model "$MODEL" --input "$T/in.tsv" --out "$T/sub"
EOF
    check "15 commands tried (got $n)" test "$n" -eq 15
    ;;
fsize | tmpfs)
    if [ "$MODE" = tmpfs ]; then
        [ "$(id -u)" -eq 0 ] || skip "mounting a tmpfs needs root"
        MNT=$T/mnt
        mkdir "$MNT"
        mount -t tmpfs -o size=256k tmpfs "$MNT" 2>"$T/mount.err" ||
            skip "mount -t tmpfs failed: $(cat "$T/mount.err")"
        OUT=$MNT
    else
        OUT=$T
    fi
    small_run "$T/old" 7,12
    small_run "$T/new" 1,6
    check "two small runs with different maps" \
        sh -c "! cmp -s '$T/old/circuit.cmap' '$T/new/circuit.cmap'"
    "$MECHIR" report "$T/new/circuit.cmap" -o "$T/want-new" --top 5 2> /dev/null
    "$MECHIR" report "$T/old/circuit.cmap" -o "$OUT/rep" --top 3 2> /dev/null
    check "the old report written" test -s "$OUT/rep/index.html"
    cp -p -r "$OUT/rep" "$T/old-copy"
    heads=$(size "$T/want-new/heads.svg")
    strata=$(size "$T/want-new/strata.svg")
    # The old per-file writes would replace heads.svg (written first) and fail at strata.svg.
    check "setup: the new heads.svg ($heads B) is smaller than strata.svg ($strata B) by 8 KiB" \
        test $((strata - heads)) -gt 8192
    check "setup: the new heads.svg differs from the old one" \
        sh -c "! cmp -s '$T/want-new/heads.svg' '$OUT/rep/heads.svg'"
    if [ "$MODE" = fsize ]; then
        blocks=$(((heads + strata) / 2 / 512)) # ulimit -f counts 512-byte blocks
        (ulimit -f "$blocks" && exec "$MECHIR" report "$T/new/circuit.cmap" -o "$OUT/rep" --top 5) \
            > /dev/null 2> "$T/err"
        rc=$?
        want="mechir report: $(readlink -f "$OUT/rep")/strata.svg: File too large"
    else
        # Leave free what heads.svg needs and one page more: the new report cannot fit.
        avail=$(df -B4096 --output=avail "$MNT" | tail -1)
        keep=$(((heads + 4095) / 4096 + 1))
        dd if=/dev/zero of="$MNT/filler" bs=4096 count=$((avail - keep)) 2> /dev/null
        "$MECHIR" report "$T/new/circuit.cmap" -o "$OUT/rep" --top 5 > /dev/null 2> "$T/err"
        rc=$?
        want="No space left on device"
    fi
    check "a report that does not fit fails: exit 1 (got $rc)" test "$rc" -eq 1
    check "... with one line naming the file and the error ($(head -c 300 "$T/err"))" \
        one_line_error "$T/err" "$want"
    check "... the old report's files are byte-identical" same_files "$T/old-copy" "$OUT/rep"
    check "... and nothing else is in it" \
        test "$(ls -A "$OUT/rep" | wc -l)" -eq "$(ls -A "$T/old-copy" | wc -l)"
    check "... no temp directory is left beside it" no_temp_dir "$OUT" rep
    rm -f "$MNT/filler" 2> /dev/null
    [ "$MODE" = tmpfs ] && finish

    # A temp directory of a dead process (a kill mid-report) is removed by the next report.
    sh -c 'exit 0' &
    dead=$!
    wait "$dead"
    mkdir "$OUT/.rep.tmp.$dead"
    cp "$T/want-new/heads.svg" "$OUT/.rep.tmp.$dead/"
    "$MECHIR" report "$T/new/circuit.cmap" -o "$OUT/rep" --top 5 2> "$T/err"
    rc=$?
    check "a report beside a stale temp directory succeeds (exit $rc)" test "$rc" -eq 0
    check "... the stale temp directory of process $dead is removed" test ! -e "$OUT/.rep.tmp.$dead"
    check "... every file is the new report's" same_files "$T/want-new" "$OUT/rep"
    check "... no temp directory is left" no_temp_dir "$OUT" rep

    # A directory holding what the report did not write is refused, not replaced.
    echo "my notes" > "$OUT/rep/notes.md"
    "$MECHIR" report "$T/old/circuit.cmap" -o "$OUT/rep" 2> "$T/err"
    rc=$?
    check "a report directory holding notes.md is refused (exit $rc)" test "$rc" -eq 1
    check "... naming it ($(cat "$T/err"))" grep -q "holds 'notes.md'" "$T/err"
    check "... notes.md is kept" grep -q "my notes" "$OUT/rep/notes.md"
    check "... the report is untouched" same_files "$T/want-new" "$OUT/rep"

    # -o naming a file, and a symbolic link to a report directory (replaced where it points).
    echo x > "$T/file"
    "$MECHIR" report "$T/old/circuit.cmap" -o "$T/file" 2> "$T/err"
    check "-o a regular file is refused ($(cat "$T/err"))" grep -q "exists and is not a directory" "$T/err"
    rm "$OUT/rep/notes.md"
    ln -s "$OUT/rep" "$T/link"
    "$MECHIR" report "$T/old/circuit.cmap" -o "$T/link" --top 3 2> /dev/null
    check "-o a symlink to the report: the link is kept" test -L "$T/link"
    check "... and the directory it points to holds the new report" same_files "$T/old-copy" "$OUT/rep"
    ;;
*)
    echo "usage: test_outputs.sh MECHIR ROOT stdout|fsize|tmpfs" >&2
    exit 2
    ;;
esac
finish
