#!/bin/sh
# `mechir run --method atp` gives the same bytes whatever the number of ranks: one process and
# mpirun -np 3 write identical circuit.cmap, circuit.json and pairs.jsonl.zst for PAIRS demo
# pairs (heads and blocks sweeps); and under mpirun -np 3, one pair a unit, the 4 pairs of the
# golden AtP fixture (tests/data/patching/atp/demo-atp.json, an independent float64 reference)
# come out with the fixture's estimates (tests/cli/run_atp_golden.py), so the consistency is
# pinned to numbers made outside mechir. The same with --verify-top (the verified lists travel
# in the workers' results): 1 rank and 3 ranks identical, and the fixture's verified lists, diff
# rows and verified maps under mpirun -np 3 (run_atp_golden.py verified).
# usage: atp.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1

echo "== $PAIRS pairs, --method atp --sweep heads,blocks --max-len 64: one process, mpirun -np 3 =="
expect_ok 600 o1 "$MECHIR" run $JOB --method atp --out o1
expect_ok 600 o3 "$MPIRUN" -np 3 "$MECHIR" run $JOB --method atp --out o3
for f in circuit.cmap circuit.json pairs.jsonl.zst; do
    same_file o1/$f o3/$f "$f, 1 rank vs 3"
done
lines=$(zstd -dcq o1/pairs.jsonl.zst | grep -c '"heads_scores"')
[ "$lines" -eq "$PAIRS" ] || fail "pairs.jsonl.zst has $lines pairs with estimates, want $PAIRS"
grep -q '"method":"atp"' o1/circuit.json || fail "o1/circuit.json lacks \"method\":\"atp\""
ok "1 rank and 3 ranks: circuit.cmap, circuit.json and pairs.jsonl.zst identical ($PAIRS pairs)"

echo "== the same with --verify-top 8: one process, mpirun -np 3 =="
expect_ok 600 v1 "$MECHIR" run $JOB --method atp --verify-top 8 --out v1
expect_ok 600 v3 "$MPIRUN" -np 3 "$MECHIR" run $JOB --method atp --verify-top 8 --out v3
for f in circuit.cmap circuit.json pairs.jsonl.zst; do
    same_file v1/$f v3/$f "$f with --verify-top 8, 1 rank vs 3"
done
lines=$(zstd -dcq v3/pairs.jsonl.zst | grep -c '"verified":\[{')
[ "$lines" -gt 0 ] || fail "v3/pairs.jsonl.zst has no pair with verified components"
ok "--verify-top 8, 1 rank and 3 ranks identical ($lines pairs verified)"

echo "== the golden AtP fixture's pairs under mpirun -np 3, one pair a unit =="
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || fail "python3 is missing"
FX=$ROOT/tests/data/patching/atp/demo-atp.json
"$PY" "$ROOT/tests/cli/run_atp_golden.py" inputs "$FX" "$TMP" || fail "cannot build the fixture's inputs"
for pos in start end; do
    expect_ok 300 g$pos "$MPIRUN" -np 3 "$MECHIR" run --model "$ROOT/examples/demo-ce" \
        --input "$TMP/$pos.tsv" --perturb inject --position $pos --max-len 64 \
        --sweep heads,blocks --method atp --unit-size 1 --out g$pos
    expect_ok 300 vg$pos "$MPIRUN" -np 3 "$MECHIR" run --model "$ROOT/examples/demo-ce" \
        --input "$TMP/$pos.tsv" --perturb inject --position $pos --max-len 64 \
        --sweep heads,blocks --method atp --verify-top 5 --unit-size 1 --out vg$pos
done
"$PY" "$ROOT/tests/cli/run_atp_golden.py" check "$FX" "$ROOT/examples/demo-ce/vocab.txt" atp \
    gstart gend >golden.log || { cat golden.log; fail "mpirun -np 3 differs from demo-atp.json"; }
ok "mpirun -np 3: $(tail -n 1 golden.log | sed 's/^ok: //')"
"$PY" "$ROOT/tests/cli/run_atp_golden.py" verified "$FX" "$ROOT/tests/data/patching/demo-tfc1.json" \
    "$ROOT/examples/demo-ce/vocab.txt" vgstart vgend >verified.log ||
    { cat verified.log; fail "mpirun -np 3 --verify-top 5 differs from the fixtures"; }
ok "mpirun -np 3 --verify-top 5: $(tail -n 1 verified.log | sed 's/^ok: //')"
echo "PASS: atp"
