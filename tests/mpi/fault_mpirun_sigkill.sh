#!/bin/sh
# mpirun itself killed with SIGKILL mid-run: the ranks must not outlive it for long (Open MPI
# 4.1 ends them when their daemon connection drops; any left after 30 s are reported and
# killed, so they cannot write to the journal behind the resume), and `mpirun -np 3 --resume`
# finishes the job with the uninterrupted run's circuit.cmap byte for byte.
# usage: fault_mpirun_sigkill.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1

echo "== reference: $PAIRS pairs, uninterrupted, mpirun -np 3 =="
expect_ok 600 ref "$MPIRUN" -np 3 "$MECHIR" run $JOB --out ref
ok "reference circuit.cmap written"
threshold=$(journal_threshold ref/journal.bin 30)

echo "== mpirun -np 3 --unit-size 1, SIGKILL to mpirun once about 30% is journaled =="
start_bg out "$MPIRUN" -np 3 "$MECHIR" run $JOB --out out --unit-size 1
mpirun_pid=$BG_PID
wait_journal out/journal.bin "$threshold" 300
ranks=$(children "$mpirun_pid")
KILL_LIST=$ranks
n_ranks=$(echo $ranks | wc -w)
[ "$n_ranks" -eq 3 ] || fail "mpirun has $n_ranks live children ($ranks), want 3 ranks"
echo "   mpirun $mpirun_pid, ranks $ranks; killing mpirun at $(wc -c <out/journal.bin) journal bytes"
kill -KILL "$mpirun_pid"
wait_bg 10
[ $rc -eq 137 ] || fail "mpirun's status is $rc after SIGKILL, want 137"
t0=$(date +%s)
left=$ranks
while [ -n "$left" ] && [ $(($(date +%s) - t0)) -lt 30 ]; do
    still=
    for p in $left; do if alive "$p"; then still="$still $p"; fi; done
    left=$still
    [ -z "$left" ] || sleep 0.2
done
if [ -z "$left" ]; then
    ok "Open MPI ended all $n_ranks ranks within $(($(date +%s) - t0)) s of mpirun's death (no orphans)"
else
    echo "NOTE: Open MPI left ranks running 30 s after mpirun died:$left; killing them"
    kill -KILL $left 2>/dev/null
    sleep 1
fi
KILL_LIST=
[ ! -e out/circuit.cmap ] || fail "the killed run wrote out/circuit.cmap"
ok "the killed run wrote no circuit.cmap"

echo "== --resume with mpirun -np 3 =="
resume_and_compare out ref/circuit.cmap "after an mpirun SIGKILL" \
    "$MPIRUN" -np 3 "$MECHIR" run $JOB --out out --unit-size 1 --resume
echo "PASS: fault_mpirun_sigkill"
