#!/bin/sh
# The lock on --out (OUT/.mechir.lock): while a run holds it (stopped with SIGSTOP mid-run, so
# the window does not depend on speed), a second `--resume` (one process) and a second run
# (mpirun -np 2) on the same --out exit 1 at once with one line naming the holder's pid and
# host; the first run, continued, ends with the outputs of a clean run. Then a run killed with
# SIGKILL mid-run leaves no lock behind: --resume continues it to the same circuit.cmap. Both
# locked runs start with --resume on an empty directory (two such resumes used to compute every
# pair twice into one journal). heads only, one pair a unit.
# usage: outdir_lock.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
J="--model $ROOT/examples/demo-ce --input $INPUT --sweep heads --max-len 64 --unit-size 1"
HOST=$(hostname)

echo "== a clean run of $PAIRS pairs =="
expect_ok 300 ref "$MECHIR" run $J --out ref
grep -q "\"pairs\":{\"total\":$PAIRS," ref/run.json || fail "ref/run.json does not count $PAIRS pairs"
ok "reference outputs, $PAIRS pairs"

echo "== a second run while the first holds the lock =="
start_bg first "$MECHIR" run $J --out out --resume
HOLDER=$BG_PID
wait_journal out/journal.bin "$(journal_threshold ref/journal.bin 20)" 300
kill -STOP "$HOLDER"
KILL_LIST=$HOLDER # killed at exit if the test fails while it is stopped

# expect_locked DESC CMD...: CMD exits non-zero (1 for mechir itself) within 60 s with one line
# of mechir's naming the holder, its host and the lock file.
expect_locked() {
    desc=$1
    shift
    run_fg 60 second "$@"
    if [ "$1" = "$MPIRUN" ]; then
        [ $rc -ne 0 ] || { show second.err; fail "$desc: mpirun exited 0"; }
    else
        [ $rc -eq 1 ] || { show second.err; fail "$desc: exit status $rc, want 1"; }
    fi
    grep '^mechir' second.err >second.msg
    [ "$(wc -l <second.msg)" -eq 1 ] || { show second.err; fail "$desc: want one line from mechir on stderr"; }
    for needle in "out is in use by pid $HOLDER on host $HOST" "out/.mechir.lock"; do
        grep -qF -- "$needle" second.msg || { show second.err; fail "$desc: the message lacks '$needle'"; }
    done
    ok "$desc (status $rc): $(cat second.msg)"
}
expect_locked "--resume in the same --out" "$MECHIR" run $J --out out --resume
expect_locked "a run under mpirun -np 2 in the same --out" "$MPIRUN" -np 2 "$MECHIR" run $J --out out
kill -CONT "$HOLDER"
KILL_LIST=
wait_bg 300
[ $rc -eq 0 ] || { show first.err; fail "the first run, continued, exited $rc"; }
for f in circuit.cmap circuit.json pairs.jsonl.zst; do
    same_file ref/$f out/$f "the run that held the lock"
done
ok "the first run ended with the clean run's circuit.cmap, circuit.json and pairs.jsonl.zst"

echo "== SIGKILL of the holder releases the lock =="
start_bg killed "$MECHIR" run $J --out out2
wait_journal out2/journal.bin "$(journal_threshold ref/journal.bin 30)" 300
KILLED=$BG_PID
kill -KILL "$KILLED"
wait_bg 60
[ "$(cat out2/.mechir.lock)" = "$KILLED $HOST" ] || fail "out2/.mechir.lock holds '$(cat out2/.mechir.lock)', want '$KILLED $HOST'"
resume_and_compare out2 ref/circuit.cmap "--resume after kill -9 of the lock's holder" \
    "$MECHIR" run $J --out out2 --resume
echo "PASS: outdir_lock"
