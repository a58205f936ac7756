#!/bin/sh
# `mechir run` gives the same bytes whatever the number of ranks: one process (no mpirun),
# mpirun -np 2 and -np 4 write identical circuit.cmap, circuit.json, pairs.jsonl.zst (the
# compressed bytes too) and stdout, and
# run.json records the rank count; a JOB.json holding the same options gives the same map, and
# OUT/job.json continues the finished run with nothing left to do; an input without pairs is
# refused (exit 1, no map) with 1 and 2 ranks.
# usage: determinism.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1

echo "== $PAIRS pairs, --sweep heads,blocks --max-len 64: one process, mpirun -np 2, -np 4 =="
expect_ok 600 o1 "$MECHIR" run $JOB --out o1
expect_ok 600 o2 "$MPIRUN" -np 2 "$MECHIR" run $JOB --out o2
expect_ok 600 o4 "$MPIRUN" -np 4 --oversubscribe "$MECHIR" run $JOB --out o4
for n in 2 4; do
    same_file o1/circuit.cmap o$n/circuit.cmap "circuit.cmap, 1 rank vs $n"
    same_file o1/circuit.json o$n/circuit.json "circuit.json, 1 rank vs $n"
    same_file o1/pairs.jsonl.zst o$n/pairs.jsonl.zst "pairs.jsonl.zst, 1 rank vs $n"
    same_file o1.out o$n.out "stdout (top heads), 1 rank vs $n"
    ok "1 rank and $n ranks: circuit.cmap, circuit.json, pairs.jsonl.zst and stdout identical"
done
lines=$(zstd -dcq o1/pairs.jsonl.zst | wc -l)
[ "$lines" -eq "$PAIRS" ] || fail "pairs.jsonl.zst has $lines lines, want $PAIRS"
ok "pairs.jsonl.zst has one line per pair ($PAIRS)"
for n in 1 2 4; do
    got=$(grep -o '"ranks":[0-9]*' o$n/run.json | head -n 1)
    [ "$got" = "\"ranks\":$n" ] || { show o$n/run.json; fail "o$n/run.json: $got, want \"ranks\":$n"; }
done
ok "run.json ranks are 1, 2 and 4"

echo "== a job file with the same options (mpirun -np 3) =="
cat >job.json <<EOF
{
  "model": "$ROOT/examples/demo-ce",
  "input": "$INPUT",
  "out": "$TMP/oj",
  "sweep": "heads,blocks",
  "max-len": 64
}
EOF
expect_ok 600 oj "$MPIRUN" -np 3 "$MECHIR" run job.json
same_file o1/circuit.cmap oj/circuit.cmap "circuit.cmap, options vs job.json"
[ -s oj/job.json ] || fail "oj/job.json was not written"
for key in model input out sweep max-len; do
    grep -q "\"$key\"" oj/job.json || { show oj/job.json; fail "oj/job.json lacks \"$key\""; }
done
ok "mechir run JOB.json gives the same circuit.cmap and writes OUT/job.json with its options"

echo "== OUT/job.json --resume of the finished run =="
cp oj/circuit.cmap oj.cmap
expect_ok 300 ojr "$MECHIR" run oj/job.json --resume
n=$(already_done ojr.err)
[ "$n" = "$PAIRS" ] || { show ojr.err; fail "the resume of a finished run found '$n' pairs done, want $PAIRS"; }
same_file oj.cmap oj/circuit.cmap "circuit.cmap after resuming a finished run"
ok "mechir run OUT/job.json --resume: all $PAIRS pairs already done, same circuit.cmap"

echo "== no pairs at all: one process and mpirun -np 2 =="
: >empty.tsv
EMPTY="--model $ROOT/examples/demo-ce --input $TMP/empty.tsv --sweep heads,blocks --max-len 64"
# Nothing to patch is an error (exit 1, one message naming the input, no map), and mpirun ends
# with every rank, not waiting on a worker.
want="mechir run: no usable pair in $TMP/empty.tsv (0 bad lines, 0 records could not be perturbed)"
run_fg 120 e1 "$MECHIR" run $EMPTY --out e1
[ $rc -eq 1 ] || { show e1.err; fail "one process: exit status $rc, want 1"; }
run_fg 120 e2 "$MPIRUN" -np 2 "$MECHIR" run $EMPTY --out e2
[ $rc -ne 0 ] || { show e2.err; fail "mpirun -np 2: exit status 0, want non-zero"; }
for n in 1 2; do
    grep -qxF "$want" e$n.err || { show e$n.err; fail "e$n.err lacks '$want'"; }
    [ ! -e e$n/circuit.cmap ] && [ ! -e e$n/circuit.json ] || fail "e$n: a circuit map was written"
done
ok "an input without pairs: exit 1, 'no usable pair', no circuit map, with 1 and 2 ranks"
echo "PASS: determinism"
