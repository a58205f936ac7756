#!/bin/sh
# MonoT5 runs under MPI: `mechir run --sweep heads,blocks --cache ...` over the first PAIRS demo
# pairs, with one process and with mpirun -np 3, on both MonoT5 fixtures (ReLU and gated-GELU).
# circuit.cmap, circuit.json and pairs.jsonl are identical for 1 and 3 ranks (consistency); the
# 3-rank run is checked against the float64 torch reference tests/cli/t5_ref.py (itself checked
# against golden.json) by t5_run_check.py: both scores and every patched score and effect of each
# pair (encoder heads, decoder self- and cross-attention heads, encoder blocks), the map's sums
# and counts per head, and cached activations of both runs. Then the report's MonoT5 labels and
# the refusals of what a MonoT5 run does not do.
# usage: t5.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
PY=/usr/bin/python3
"$PY" -c 'import torch, numpy' 2>/dev/null || fail "$PY lacks python3-torch or numpy"
CACHE="encoder.*.hook_resid_pre,encoder.1.attn.hook_z,decoder.*.cross_attn.hook_z,logits"
for m in monot5-tiny monot5-tiny-gated; do
    M=$ROOT/tests/data/models/$m
    echo "== $m: one process and mpirun -np 3 =="
    JOBM="--model $M --input $INPUT --max-len 48 --sweep heads,blocks --min-delta 1e-9 \
--pairs-format jsonl --seed 5 --cache $CACHE"
    expect_ok 600 "$m-1" "$MECHIR" run $JOBM --out "$m-1"
    expect_ok 600 "$m-3" "$MPIRUN" -np 3 "$MECHIR" run $JOBM --out "$m-3"
    for f in circuit.cmap circuit.json pairs.jsonl; do
        same_file "$m-1/$f" "$m-3/$f" "$m $f, 1 rank vs 3"
    done
    ok "$m: circuit.cmap, circuit.json and pairs.jsonl identical for 1 and 3 ranks"
    "$PY" "$ROOT/tests/mpi/t5_run_check.py" "$ROOT" "$M" "$m-3" "$MECHIR" >"$m-check.out" 2>&1 ||
        { cat "$m-check.out"; fail "$m: the 3-rank run differs from the reference"; }
    cat "$m-check.out"
    ok "$m: the 3-rank run equals the torch reference"
done

echo "== the report of a MonoT5 map =="
expect_ok 120 report "$MECHIR" report monot5-tiny-3/circuit.cmap -o rep
for s in "encoder.L.attn.hook_z" "decoder.L.attn.hook_z" "decoder.L.cross_attn.hook_z"; do
    grep -q "$s" rep/heads.svg || fail "heads.svg has no panel $s"
done
grep -q '"component":"decoder.cross_attn.hook_z"' rep/components.json ||
    fail "components.json names no cross-attention head"
grep -q '^head,decoder.cross_attn.hook_z,1,3,' rep/components.csv || fail "components.csv has no row for cross-attention head 1.3"
grep -q 'cross-attention head' rep/top.txt || fail "top.txt names no cross-attention head"
ok "heads.svg has the encoder, decoder and cross-attention panels; the tables name them"

echo "== refusals =="
M=$ROOT/tests/data/models/monot5-tiny
for bad in "--sweep head-pos --heads 0.1|head-pos" "--method atp|--method atp" \
    "--cache encoder.7.hook_resid_pre|encoder.7.hook_resid_pre" \
    "--cache blocks.*.hook_resid_pre|blocks.*.hook_resid_pre"; do
    opts=${bad%|*}
    want=${bad#*|}
    # shellcheck disable=SC2086
    "$MECHIR" run --model "$M" --input "$INPUT" $opts --out refused >out.txt 2>err.txt
    rc=$?
    [ $rc -ge 1 ] && [ $rc -le 127 ] || fail "$opts: exit $rc, want 1..127"
    [ "$(wc -l <err.txt)" -eq 1 ] && grep -q -- "$want" err.txt ||
        { cat err.txt; fail "$opts: not a one-line error naming '$want'"; }
    [ ! -e refused/circuit.cmap ] || fail "$opts: a map was written"
done
ok "head-pos, atp and bad cache hooks refused with one line each"
echo "PASS: t5"
