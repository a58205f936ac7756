#!/bin/sh
# MonoT5 runs under MPI: `mechir run --sweep heads,blocks --cache ...` over the first PAIRS demo
# pairs, with one process and with mpirun -np 3, on both MonoT5 fixtures (ReLU and gated-GELU).
# circuit.cmap, circuit.json and pairs.jsonl are identical for 1 and 3 ranks (consistency); the
# 3-rank run is checked against the float64 torch reference tests/cli/t5_ref.py (itself checked
# against golden.json) by t5_run_check.py: both scores and every patched score and effect of each
# pair (encoder heads, decoder self- and cross-attention heads, encoder blocks), the map's sums
# and counts per head, and cached activations of both runs. Then the report's MonoT5 labels and
# the refusals of what a MonoT5 run does not do (head-pos, qkv, pattern, resid-mid, atp).
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
"$PY" - rep/components.csv monot5-tiny-3/circuit.json <<'PYEOF' || fail "components.csv labels heads rows wrongly"
import csv, json, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["kind"] == "head"]
h = json.load(open(sys.argv[2]))["heads"]["sum_patched_minus_baseline"]
L = LD = 2  # monot5-tiny: encoder rows 0..1, decoder 2..3, cross-attention 4..5
parts = {"attn.hook_z": 0, "decoder.attn.hook_z": L, "decoder.cross_attn.hook_z": L + LD}
assert len(rows) == len(h) * len(h[0]), (len(rows), len(h))
for r in rows:
    want = h[parts[r["component"]] + int(r["layer"])][int(r["head"])]
    assert int(r["layer"]) < (L if r["component"] == "attn.hook_z" else LD), r
    assert float(r["sum_patched_minus_baseline"]) == want, (r, want)
PYEOF
grep -q 'cross-attention head' rep/top.txt || fail "top.txt names no cross-attention head"
ok "heads.svg has the encoder, decoder and cross-attention panels; the tables name them"

PYTHONPATH=$ROOT/python "$PY" - rep/components.csv monot5-tiny-3 <<'PYEOF' || fail "the Python reader labels a MonoT5 map's heads otherwise than the report"
import csv, sys
import mechir
want = {(r["component"], r["layer"], r["head"]): float(r["sum_patched_minus_baseline"])
        for r in csv.DictReader(open(sys.argv[1])) if r["kind"] == "head"}
for m in (mechir.read_cmap(sys.argv[2] + "/circuit.cmap"),
          mechir.read_circuit_json(sys.argv[2] + "/circuit.json")):
    got = {(c["component"], str(c["layer"]), str(c["head"])): c["sum_patched_minus_baseline"]
           for c in m.components(frame=False) if c["kind"] == "head"}
    assert got == want and len(got) == 24, (len(got), len(want))
PYEOF
ok "the Python reader (python/) names and sums the 24 heads as components.csv does"

echo "== --direction with and --select top-delta 2, against the checked run's scores =="
M=$ROOT/tests/data/models/monot5-tiny
SUB="--model $M --input $INPUT --max-len 48 --sweep heads --min-delta 1e-9 --pairs-format jsonl --seed 5"
expect_ok 300 direction "$MECHIR" run $SUB --direction with --out dir
expect_ok 300 select "$MPIRUN" -np 2 "$MECHIR" run $SUB --select top-delta 2 --out sel
"$PY" - monot5-tiny-3/pairs.jsonl dir/pairs.jsonl sel/pairs.jsonl <<'PYEOF' || fail "--direction or --select picked other pairs"
import json, sys
full, d, s = ([json.loads(x) for x in open(p)] for p in sys.argv[1:4])
delta = {p["pair_id"]: p["score_perturbed"] - p["score_baseline"] for p in full}
rose = sorted(k for k, v in delta.items() if v > 0)  # tfc1 expects the score to rise
fell = sorted(k for k, v in delta.items() if v < 0)
assert rose and fell, "the input needs pairs of both signs: %s" % delta
used = sorted(p["pair_id"] for p in d if "heads" in p)
skipped = sorted(p["pair_id"] for p in d if "not in the direction selected" in p.get("skipped", ""))
assert used == rose and skipped == fell, (used, skipped, delta)
top = sorted(sorted(delta, key=lambda k: -abs(delta[k]))[:2])
assert sorted(p["pair_id"] for p in s if "heads" in p) == top, (s, top)
for p in d + s:
    for k in ("score_baseline", "score_perturbed"):
        f = next(q for q in full if q["pair_id"] == p["pair_id"])
        assert abs(p[k] - f[k]) <= 1e-6, (p["pair_id"], k, p[k], f[k])
print("%d rose, %d fell; top-delta 2: %s" % (len(rose), len(fell), top))
PYEOF
ok "--direction with patched exactly the pairs whose score rose; --select top-delta 2 the two largest changes"

echo "== refusals =="
M=$ROOT/tests/data/models/monot5-tiny
for bad in "--sweep head-pos --heads 0.1|head-pos" "--method atp|--method atp" \
    "--sweep heads,qkv|--sweep qkv, pattern or resid-mid" \
    "--sweep pattern|--sweep qkv, pattern or resid-mid" \
    "--sweep blocks,resid-mid|--sweep qkv, pattern or resid-mid" \
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
ok "head-pos, qkv, pattern, resid-mid, atp and bad cache hooks refused with one line each"
echo "PASS: t5"
