#!/bin/sh
# A worker killed with SIGKILL mid-run: mpirun aborts the job (non-zero status, no circuit.cmap,
# no rank left running), and `--resume` in one process finishes it from the journal with the
# uninterrupted run's circuit.cmap byte for byte.
# usage: fault_worker_sigkill.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1

echo "== reference: $PAIRS pairs, uninterrupted, mpirun -np 3 =="
expect_ok 600 ref "$MPIRUN" -np 3 "$MECHIR" run $JOB --out ref
ok "reference circuit.cmap written"
threshold=$(journal_threshold ref/journal.bin 30)

echo "== mpirun -np 3 --unit-size 1, SIGKILL to one worker once about 30% is journaled =="
start_bg out "$MPIRUN" -np 3 "$MECHIR" run $JOB --out out --unit-size 1
mpirun_pid=$BG_PID
wait_journal out/journal.bin "$threshold" 300
ranks=$(children "$mpirun_pid")
KILL_LIST=$ranks
victim=
coordinator=
for p in $ranks; do
    case $(rank_of "$p") in
    0) coordinator=$p ;;
    [1-9]*) [ -n "$victim" ] || victim=$p ;;
    esac
done
[ -n "$coordinator" ] || fail "no rank 0 among mpirun's children ($ranks)"
[ -n "$victim" ] || fail "no worker among mpirun's children ($ranks)"
echo "   mpirun $mpirun_pid, ranks $ranks; killing worker $victim (rank $(rank_of "$victim")) at $(wc -c <out/journal.bin) journal bytes"
kill -KILL "$victim"
wait_bg 60
[ $rc -ne 0 ] || { show out.err; fail "mpirun exited 0 after a worker was killed"; }
ok "mpirun ended with status $rc after the worker was killed"
[ ! -e out/circuit.cmap ] || fail "the aborted run wrote out/circuit.cmap"
ok "the aborted run wrote no circuit.cmap"
sleep 1
left=
for p in $ranks; do if alive "$p"; then left="$left $p"; fi; done
[ -z "$left" ] || fail "ranks still running after mpirun ended:$left"
ok "no rank outlived mpirun"
KILL_LIST=

echo "== --resume in one process =="
resume_and_compare out ref/circuit.cmap "after a worker SIGKILL" \
    "$MECHIR" run $JOB --out out --unit-size 1 --resume
grep -q '"resumed":true' out/run.json || { show out/run.json; fail "run.json does not say resumed"; }
ok "run.json says resumed"
echo "PASS: fault_worker_sigkill"
