#!/bin/sh
# Graceful stops: SIGTERM or SIGUSR1 to a one-process run, and SIGUSR1 to mpirun (which forwards
# it to the ranks), make the coordinator finish the units in flight, flush the journal and exit
# with status 3 and a message naming --resume; SIGTERM to mpirun (which terminates the ranks
# itself) ends the run non-zero. Every case then resumes to the uninterrupted circuit.cmap.
# usage: sigterm_resume.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1

echo "== reference: $PAIRS pairs, uninterrupted, mpirun -np 3 =="
expect_ok 600 ref "$MPIRUN" -np 3 "$MECHIR" run $JOB --out ref
ok "reference circuit.cmap written"
threshold=$(journal_threshold ref/journal.bin 25)

# expect_graceful OUT SIG: the background run ended with status 3, a message naming the signal
# and --resume, and no circuit.cmap.
expect_graceful() {
    wait_bg 120
    [ $rc -eq 3 ] || { show "$1.err"; fail "$1: exit status $rc after SIG$2, want 3"; }
    case $2 in TERM) num=15 ;; USR1) num=10 ;; *) num=$2 ;; esac # Linux numbers
    grep -q "stopped by signal $num after the units in flight" "$1.err" ||
        { show "$1.err"; fail "$1: no 'stopped by signal $num' message after SIG$2"; }
    grep -q -- '--resume' "$1.err" || { show "$1.err"; fail "$1: the message does not mention --resume"; }
    [ ! -e "$1/circuit.cmap" ] || fail "$1: the interrupted run wrote circuit.cmap"
    ok "SIG$2: exit status 3, no circuit.cmap, and: $(grep 'stopped by signal' "$1.err")"
}

for sig in TERM USR1; do
    out=one_$sig
    echo "== one process, SIG$sig to it once about 25% is journaled; resume with mpirun -np 3 =="
    start_bg $out "$MECHIR" run $JOB --out $out
    wait_journal $out/journal.bin "$threshold" 300
    kill -$sig "$BG_PID"
    expect_graceful $out $sig
    resume_and_compare $out ref/circuit.cmap "one process, SIG$sig" \
        "$MPIRUN" -np 3 "$MECHIR" run $JOB --out $out --resume
done

echo "== mpirun -np 2, SIGUSR1 to mpirun (forwarded to the ranks); resume in one process =="
out=mpi_USR1
start_bg $out "$MPIRUN" -np 2 "$MECHIR" run $JOB --out $out --unit-size 2
wait_journal $out/journal.bin "$threshold" 300
KILL_LIST=$(children "$BG_PID")
kill -USR1 "$BG_PID"
expect_graceful $out USR1
KILL_LIST=
resume_and_compare $out ref/circuit.cmap "mpirun, SIGUSR1" \
    "$MECHIR" run $JOB --out $out --resume

echo "== mpirun -np 2, SIGTERM to mpirun (it terminates the ranks); resume with mpirun -np 2 =="
out=mpi_TERM
start_bg $out "$MPIRUN" -np 2 "$MECHIR" run $JOB --out $out --unit-size 2
wait_journal $out/journal.bin "$threshold" 300
ranks=$(children "$BG_PID")
KILL_LIST=$ranks
kill -TERM "$BG_PID"
wait_bg 120
[ $rc -ne 0 ] || { show $out.err; fail "mpirun exited 0 after SIGTERM"; }
[ ! -e $out/circuit.cmap ] || fail "$out: the terminated run wrote circuit.cmap"
if grep -q 'stopped by signal' $out.err; then
    ok "mpirun ended with status $rc; the coordinator finished first: $(grep 'stopped by signal' $out.err)"
else
    ok "mpirun ended with status $rc; Open MPI killed the coordinator before it finished its units"
fi
sleep 1
for p in $ranks; do if alive "$p"; then fail "rank $p outlived mpirun"; fi; done
KILL_LIST=
resume_and_compare $out ref/circuit.cmap "mpirun, SIGTERM" \
    "$MPIRUN" -np 2 "$MECHIR" run $JOB --out $out --resume
echo "PASS: sigterm_resume"
