#!/bin/sh
# --select top-delta K [--per-grade] on the first PAIRS pairs of examples/demo-200.tsv:
#  (a) the pairs selected and patched are the K with the largest score change computed outside
#      mechir (select_check.py) from an unselected run's scores, per relevance grade too (a
#      JSONL copy of the input with grades 0, 1, 2 and none, given through a JOB.json with
#      "select": "top-delta 5"), and the map's heads means are those of the selected pairs;
#  (b) the same circuit.cmap and selection.json bytes for 1 process, mpirun -np 2 and -np 4;
#  (c) rank 0 killed with SIGKILL during the scoring pass (mpirun -np 2) and during the
#      patching pass (one process): --resume gives the clean run's bytes, the first resume
#      continues the scoring where it stopped, and the second does not score again (scores.bin
#      unchanged, "0 by this attempt").
# usage: select.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || fail "python3 is missing (deploy/install-deps.sh installs it)"
CHECK="$ROOT/tests/mpi/select_check.py"
head -n "$PAIRS" "$ROOT/examples/demo-200.tsv" >demo.tsv
[ "$(wc -l <demo.tsv)" -eq "$PAIRS" ] || fail "cannot take $PAIRS pairs from examples/demo-200.tsv"
J="--model $ROOT/examples/demo-ce --input demo.tsv --perturb tfc1 --max-len 64 --seed 1 --sweep heads"
K=20

echo "== (a) top-delta $K against the unselected run's scores =="
expect_ok 600 plain "$MECHIR" run $J --out plain
expect_ok 600 sel1 "$MECHIR" run $J --select top-delta $K --out sel1
grep -q 'scoring pairs\|pairs scored' sel1.err || { show sel1.err; fail "no line says the first pass scores"; }
"$PY" "$CHECK" check $K 0 plain sel1 || fail "top-delta $K: the selection differs from the one made here"
"$PY" "$CHECK" check $((K + 1)) 0 plain sel1 >/dev/null &&
    fail "the checker accepted top-delta $K as top-delta $((K + 1))"
ok "the checker refuses a selection of another K"

echo "== (a) --per-grade: top-delta 5 per relevance grade, from a JOB.json =="
"$PY" "$CHECK" grades demo.tsv grades.jsonl || fail "cannot make the graded input"
G="--model $ROOT/examples/demo-ce --input grades.jsonl --perturb tfc1 --max-len 64 --seed 1 --sweep heads"
expect_ok 600 plaing "$MECHIR" run $G --out plaing
cat >job.json <<EOF
{"model": "$ROOT/examples/demo-ce", "input": "grades.jsonl", "perturb": "tfc1", "max-len": 64,
 "seed": 1, "sweep": "heads", "select": "top-delta 5", "per-grade": true, "out": "selg"}
EOF
expect_ok 600 selg "$MECHIR" run job.json
grep -q '"select":[[:space:]]*"top-delta 5"' selg/job.json || { show selg/job.json; fail "job.json lost the selection"; }
"$PY" "$CHECK" check 5 1 plaing selg || fail "--per-grade: the selection differs from the one made here"

echo "== (b) the same bytes for mpirun -np 2 and -np 4 =="
for np in 2 4; do
    expect_ok 600 np$np "$MPIRUN" -np $np "$MECHIR" run $J --select top-delta $K --out np$np
    same_file sel1/circuit.cmap np$np/circuit.cmap "circuit.cmap, 1 process vs -np $np"
    same_file sel1/selection.json np$np/selection.json "selection.json, 1 process vs -np $np"
    ok "-np $np: circuit.cmap and selection.json as with 1 process"
done

# A larger selection with one pair a unit, so both passes last long enough to be interrupted.
KB=$((PAIRS / 2))
JK="$J --select top-delta $KB --unit-size 1"
expect_ok 600 ref "$MECHIR" run $JK --out ref
"$PY" "$CHECK" check $KB 0 plain ref || fail "top-delta $KB: the selection differs from the one made here"

echo "== (c) SIGKILL to rank 0 during the scoring pass (mpirun -np 2), then --resume =="
start_bg k1 "$MPIRUN" -np 2 "$MECHIR" run $JK --out k1
mpirun_pid=$BG_PID
# Rank 0 is found once the ranks run (scores.bin exists), before the wait: walking /proc takes
# a while on a busy machine, and the kill must come while the scoring pass still runs.
wait_journal k1/scores.bin 1 300
ranks=$(children "$mpirun_pid")
KILL_LIST=$ranks
coordinator=
for p in $ranks; do [ "$(rank_of "$p")" = 0 ] && coordinator=$p; done
[ -n "$coordinator" ] || fail "no rank 0 among mpirun's children ($ranks)"
wait_journal k1/scores.bin "$(journal_threshold ref/scores.bin 30)" 300
jb=$(wc -c <k1/journal.bin); jh=$(journal_threshold ref/journal.bin 0)
[ "$jb" -le "$jh" ] ||
    fail "the patching pass had begun before the kill ($jb bytes of journal.bin, header $jh): the scoring pass is too short"
echo "   killing rank 0 ($coordinator) at $(wc -c <k1/scores.bin) bytes of scores.bin"
kill -KILL "$coordinator"
wait_bg 60
[ $rc -ne 0 ] || { show k1.err; fail "mpirun exited 0 after rank 0 was killed"; }
sleep 1
for p in $ranks; do if alive "$p"; then kill -KILL "$p"; fi; done
KILL_LIST=
[ ! -e k1/circuit.cmap ] && [ ! -e k1/selection.json ] || fail "the killed run wrote its outputs"
expect_ok 600 k1.resume "$MPIRUN" -np 2 "$MECHIR" run $JK --out k1 --resume
n=$(sed -n 's/.*(\([0-9]*\) pairs already scored.*/\1/p' k1.resume.err | head -n 1)
[ -n "$n" ] && [ "$n" -gt 0 ] && [ "$n" -lt "$PAIRS" ] ||
    { show k1.resume.err; fail "the resume found '${n:-nothing}' of $PAIRS pairs already scored"; }
grep -q "$PAIRS pairs scored ($((PAIRS - n)) by this attempt)" k1.resume.err ||
    { show k1.resume.err; fail "the resume did not score exactly the $((PAIRS - n)) missing pairs"; }
same_file ref/circuit.cmap k1/circuit.cmap "circuit.cmap after a kill in the scoring pass"
same_file ref/selection.json k1/selection.json "selection.json after a kill in the scoring pass"
ok "killed in the scoring pass: the resume scored the $((PAIRS - n)) missing of $PAIRS pairs and gave the clean bytes"

echo "== (c) SIGKILL to rank 0 during the patching pass (one process), then --resume =="
start_bg k2 "$MECHIR" run $JK --out k2
wait_journal k2/journal.bin "$(journal_threshold ref/journal.bin 30)" 300
kill -KILL "$BG_PID"
wait_bg 60
[ $rc -eq 137 ] || { show k2.err; fail "status $rc after SIGKILL, want 137"; }
[ ! -e k2/circuit.cmap ] || fail "the killed run wrote circuit.cmap"
before=$(sha256sum <k2/scores.bin)
expect_ok 600 k2.resume "$MECHIR" run $JK --out k2 --resume
after=$(sha256sum <k2/scores.bin)
[ "$before" = "$after" ] || fail "the resume after the scoring pass changed scores.bin"
grep -q "$PAIRS pairs scored (0 by this attempt)" k2.resume.err ||
    { show k2.resume.err; fail "the resume after the scoring pass scored pairs again"; }
n=$(sed -n 's/.*; \([0-9]*\) already patched.*/\1/p' k2.resume.err | head -n 1)
[ -n "$n" ] && [ "$n" -gt 0 ] && [ "$n" -lt "$KB" ] ||
    { show k2.resume.err; fail "the resume found '${n:-nothing}' of $KB selected pairs already patched"; }
same_file ref/circuit.cmap k2/circuit.cmap "circuit.cmap after a kill in the patching pass"
same_file ref/selection.json k2/selection.json "selection.json after a kill in the patching pass"
ok "killed in the patching pass: no pair scored again (scores.bin unchanged), $n of $KB already patched, the clean bytes"
echo "PASS: select"
