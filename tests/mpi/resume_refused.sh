#!/bin/sh
# Refusals that protect a finished or interrupted run: --resume of a different job into the same
# --out, and a new run into an --out that already has a journal, exit 1 with one line on stderr
# naming the journal (and the difference, or --resume), in one process and under mpirun, and
# leave every file of the earlier run as it was.
# usage: resume_refused.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1

echo "== a finished run: $PAIRS pairs, --seed 1, one process =="
expect_ok 300 first "$MECHIR" run $JOB --out out --seed 1
mkdir before && cp out/* before/ || fail "cannot copy out/"
ok "the first run finished"

# expect_refusal DESC NEEDLE... -- CMD...: CMD exits 1 (mpirun: non-zero) with exactly one line
# of mechir's on stderr (Open MPI's own banner aside) containing every NEEDLE, and out/ is
# unchanged.
expect_refusal() {
    desc=$1
    shift
    : >needles
    while [ "$1" != "--" ]; do
        printf '%s\n' "$1" >>needles
        shift
    done
    shift
    run_fg 120 refusal "$@"
    if [ "$1" = "$MPIRUN" ]; then
        [ $rc -ne 0 ] || { show refusal.err; fail "$desc: mpirun exited 0"; }
    else
        [ $rc -eq 1 ] || { show refusal.err; fail "$desc: exit status $rc, want 1"; }
    fi
    [ ! -s refusal.out ] || { show refusal.out; fail "$desc: printed on stdout"; }
    grep '^mechir' refusal.err >refusal.msg
    [ "$(wc -l <refusal.msg)" -eq 1 ] || { show refusal.err; fail "$desc: want exactly one line from mechir on stderr"; }
    if [ "$1" != "$MPIRUN" ] && ! cmp -s refusal.msg refusal.err; then
        show refusal.err
        fail "$desc: stderr has more than mechir's one line"
    fi
    while IFS= read -r needle; do
        grep -qF -- "$needle" refusal.msg || { show refusal.err; fail "$desc: the message lacks '$needle'"; }
    done <needles
    for f in before/*; do
        same_file "$f" "out/${f#before/}" "$desc: out/ must be left as it was"
    done
    [ "$(ls out | wc -l)" -eq "$(ls before | wc -l)" ] || fail "$desc: new files in out/: $(ls out)"
    ok "$desc (status $rc): $(cat refusal.msg)"
}

expect_refusal "--resume with another --seed" \
    "cannot resume" "out/journal.bin" "seed: 1 in the journal, 2 now" -- \
    "$MECHIR" run $JOB --out out --seed 2 --resume
expect_refusal "--resume with another --max-len, under mpirun -np 2" \
    "cannot resume" "out/journal.bin" "max_len: 64 in the journal, 32 now" -- \
    "$MPIRUN" -np 2 "$MECHIR" run $JOB --out out --seed 1 --resume --max-len 32
expect_refusal "the same job again without --resume" \
    "out/journal.bin" "--resume" -- \
    "$MECHIR" run $JOB --out out --seed 1
expect_refusal "the same job again without --resume, under mpirun -np 2" \
    "out/journal.bin" "--resume" -- \
    "$MPIRUN" -np 2 "$MECHIR" run $JOB --out out --seed 1
echo "PASS: resume_refused"
