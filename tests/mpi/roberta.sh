#!/bin/sh
# RoBERTa and XLM-R runs under MPI: `mechir run --sweep heads,blocks` (tfc1) over five
# Debian-like records with one process and with mpirun -np 3 writes identical circuit.cmap,
# circuit.json and pairs.jsonl (consistency), and every pair of the 3-rank run equals the float64
# torch reference (roberta_run_check.py: both scores, every patched score and effect).
# usage: roberta.sh PATH/TO/mechir REPO_ROOT PAIRS (PAIRS unused: the input is fixed)
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
PY=/usr/bin/python3
"$PY" -c 'import torch, numpy' 2>/dev/null || fail "$PY lacks python3-torch or numpy"
"$PY" -c "import sys; sys.path.insert(0, '$ROOT/tests/cli'); import roberta_check
open('in.tsv', 'w', encoding='utf-8').write(roberta_check.RUN_INPUT)" || fail "cannot write in.tsv"
for m in roberta-ce-tiny xlmr-ce-tiny; do
    echo "== $m: one process and mpirun -np 3 =="
    JOBM="--model $ROOT/tests/data/models/$m --input in.tsv --perturb tfc1 --max-len 64 \
--sweep heads,blocks --min-delta 1e-9 --pairs-format jsonl --seed 3"
    expect_ok 600 "$m-1" "$MECHIR" run $JOBM --out "$m-1"
    expect_ok 600 "$m-3" "$MPIRUN" -np 3 "$MECHIR" run $JOBM --out "$m-3"
    for f in circuit.cmap circuit.json pairs.jsonl; do
        same_file "$m-1/$f" "$m-3/$f" "$m $f, 1 rank vs 3"
    done
    ok "$m: circuit.cmap, circuit.json and pairs.jsonl identical for 1 and 3 ranks"
    "$PY" "$ROOT/tests/mpi/roberta_run_check.py" "$ROOT" "$ROOT/tests/data/models/$m" "$m-3" \
        >"$m-check.out" 2>&1 || { cat "$m-check.out"; fail "$m: the 3-rank run differs from the reference"; }
    tail -n 1 "$m-check.out"
    ok "$m: every pair of the 3-rank run equals the torch reference"
done
echo "PASS: roberta"
