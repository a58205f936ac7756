#!/bin/sh
# Given (pre-perturbed) pairs under MPI: the golden patching fixture's six cases written as query,
# baseline and perturbed documents (tests/cli/given_check.py) and run with `mechir run --perturb
# given` by mpirun -np 2 (one worker) and -np 3 (two workers): identical circuit.cmap,
# circuit.json and pairs.jsonl (consistency); the 2-worker run equals the float64 fixture
# (run_golden.py: ids, roles, scores, heads and blocks effects, circuit.json); and every pair of
# it equals `mechir patch` of the same texts (heads and blocks effects and scores, to the digits
# both print).
# usage: given.sh PATH/TO/mechir REPO_ROOT PAIRS (PAIRS unused: the input is the fixture's)
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
PY=/usr/bin/python3
FIXTURE=$ROOT/tests/data/patching/demo-tfc1.json
MODEL=$ROOT/examples/demo-ce
"$PY" "$ROOT/tests/cli/given_check.py" inputs "$FIXTURE" "$MODEL/vocab.txt" . ||
    fail "cannot build the inputs"
JOBG="--model $MODEL --input given.jsonl --perturb given --max-len 64 --sweep heads,blocks \
--pairs-format jsonl --unit-size 1"
expect_ok 600 w1 "$MPIRUN" -np 2 "$MECHIR" run $JOBG --out w1
expect_ok 600 w2 "$MPIRUN" -np 3 "$MECHIR" run $JOBG --out w2
for f in circuit.cmap circuit.json pairs.jsonl; do
    same_file "w1/$f" "w2/$f" "$f, 1 worker vs 2"
done
ok "circuit.cmap, circuit.json and pairs.jsonl identical for 1 and 2 workers"
"$PY" "$ROOT/tests/cli/run_golden.py" check "$FIXTURE" "$MODEL/vocab.txt" w2 >golden.out 2>&1 ||
    { cat golden.out; fail "the 2-worker run differs from the golden fixture"; }
tail -n 2 golden.out
ok "the 2-worker run equals the golden patching fixture"
i=0
while [ $i -lt 6 ]; do
    "$PY" - given.jsonl $i <<'PYEOF' || fail "case $i texts"
import json, sys
g = [json.loads(x) for x in open(sys.argv[1])][int(sys.argv[2])]
for k in ("query", "text", "perturbed"):
    open("case." + k, "w").write(g[k])
PYEOF
    expect_ok 300 "patch$i" "$MECHIR" patch --model "$MODEL" --max-len 64 --sweep heads,blocks \
        --query "$(cat case.query)" --baseline "$(cat case.text)" --perturbed "$(cat case.perturbed)"
    "$PY" - w2/pairs.jsonl "patch$i.out" "c$i" <<'PYEOF' || fail "case $i: run and patch differ"
import json, sys
run = {p["qid"]: p for p in (json.loads(x) for x in open(sys.argv[1]) if x.strip())}[sys.argv[3]]
pat = json.load(open(sys.argv[2]))
assert run["baseline_ids"] == pat["ids_baseline"] and run["perturbed_ids"] == pat["ids_perturbed"]
assert run["alignment"] == pat["alignment"], (run["alignment"], pat["alignment"])
n, worst = 0, 0.0
def walk(a, b):
    global n, worst
    if isinstance(b, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            walk(x, y)
    else:
        # run prints 17 significant digits, patch 9: equal to patch's 9
        assert float("%.9g" % a) == b, (a, b)
        worst = max(worst, abs(a - b))
        n += 1
walk(run["score_baseline"], pat["score_baseline"])
walk(run["score_perturbed"], pat["score_perturbed"])
walk(run["heads"], pat["heads"])
for c in ("resid_pre", "attn_out", "mlp_out"):
    walk(run["blocks"][c], pat["blocks"][c])
assert n > 0
print("c%s: %d numbers equal, max |run - patch| %.3g" % (sys.argv[3][1:], n, worst))
PYEOF
    i=$((i + 1))
done
ok "every pair of the 2-worker run equals mechir patch of its texts"
echo "PASS: given"
