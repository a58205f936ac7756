#!/bin/sh
# `mechir run --method atp|atp-qk` against the golden AtP fixtures (tests/data/patching/atp/
# demo-atp.json and demo-atp-qk.json, float64 autograd references made outside mechir): the
# fixture's 4 pairs, built as `--perturb inject` input as test_run_golden.sh does, must come out
# with the fixture's ids, both exact scores, per-pair AtP estimates and effects of heads and
# blocks, and circuit.json means computed from the fixture's per-case effects
# (run_atp_golden.py); --select top-delta 1 with atp patches the pair that moves most, with the
# same numbers; --verify-top 5 against both fixtures (run_atp_golden.py verified). Then: job.json and the report name the method; the refusals (exit 1, one line on
# stderr naming the option or field): an unknown --method, atp with head-pos, atp with --cache,
# a --resume with another --method (the same method resumes), a merge of maps of two methods.
# usage: test_run_atp.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
FX=$ROOT/tests/data/patching/atp/demo-atp.json
QK=$ROOT/tests/data/patching/atp/demo-atp-qk.json
MODEL=$ROOT/examples/demo-ce
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || {
    echo "FAIL: python3 is missing (Debian python3; deploy/install-deps.sh installs it)"
    exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_atp_run.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

"$PY" "$ROOT/tests/cli/run_atp_golden.py" inputs "$FX" "$T" || { echo "FAIL: cannot build the inputs"; exit 1; }

# job POSITION OUT [options]: the fixture's pairs of one position, heads and blocks sweeps.
job() {
    pos=$1 out=$2
    shift 2
    "$MECHIR" run --model "$MODEL" --input "$T/$pos.tsv" --perturb inject --position "$pos" \
        --max-len 64 --sweep heads,blocks --out "$T/$out" "$@"
}
# run_ok POSITION OUT [options]: the job must finish (exit 0).
run_ok() {
    job "$@" >"$T/$2.out" 2>"$T/$2.err"
    rc=$?
    [ $rc -eq 0 ] || { sed 's/^/    | /' "$T/$2.err"; echo "FAIL: mechir run $*: exit status $rc"; exit 1; }
}
for pos in start end; do
    run_ok $pos atp-$pos --method atp
    run_ok $pos qk-$pos --method atp-qk
    run_ok $pos exact-$pos
done
run_ok start select --method atp --select top-delta 1
run_ok start verify-start --method atp --verify-top 5
run_ok end verify-end --method atp --verify-top 5

"$PY" "$ROOT/tests/cli/run_atp_golden.py" check "$FX" "$MODEL/vocab.txt" atp \
    "$T/atp-start" "$T/atp-end" "$T/select" || fail "mechir run --method atp differs from demo-atp.json"
"$PY" "$ROOT/tests/cli/run_atp_golden.py" check "$FX" "$MODEL/vocab.txt" atp-qk --qk "$QK" \
    "$T/qk-start" "$T/qk-end" || fail "mechir run --method atp-qk differs from demo-atp-qk.json"
grep -q '"used":1,' "$T/select/circuit.json" || fail "--select top-delta 1 with atp: not one pair used"
"$MECHIR" report "$T/verify-end/circuit.cmap" -o "$T/verify-end/report" >/dev/null 2>&1 ||
    fail "mechir report of a verified map failed"
# --verify-top 5: the fixture's verified lists, demo-tfc1.json's exact diff rows, the verified
# maps and the rank correlation computed from both fixtures.
"$PY" "$ROOT/tests/cli/run_atp_golden.py" verified "$FX" "$ROOT/tests/data/patching/demo-tfc1.json" \
    "$MODEL/vocab.txt" "$T/verify-start" "$T/verify-end" || fail "mechir run --verify-top 5 differs from the fixtures"

# The method in job.json (the options as given) and in the report; an exact map has no key.
grep -q '"method":' "$T/exact-end/circuit.json" && fail "an exact map's circuit.json has a method key"
grep -q '"method":[[:space:]]*"atp"' "$T/atp-end/job.json" || fail "job.json does not record --method atp"
grep -q '"job":{[^}]*"method":"atp"' "$T/atp-end/run.json" || fail "run.json does not record --method atp"
"$MECHIR" report "$T/atp-end/circuit.cmap" -o "$T/rep" >/dev/null 2>&1 || fail "mechir report of an atp map failed"
grep -q 'atp: attribution patching' "$T/rep/index.html" || fail "index.html does not show the method"
grep -q '"format":"mechir-components/1","method":"atp"' "$T/rep/components.json" ||
    fail "components.json does not name the method"
"$MECHIR" report "$T/exact-end/circuit.cmap" -o "$T/rep-exact" >/dev/null 2>&1 || fail "mechir report of an exact map failed"
grep -q '"method":"exact"' "$T/rep-exact/components.json" || fail "an exact report does not say exact"
[ $fails -eq 0 ] && echo "ok: job.json, run.json, index.html and components.json name the method"

# refused DESC NEEDLE CMD...: exit 1, nothing on stdout, one line on stderr containing NEEDLE.
refused() {
    desc=$1 needle=$2
    shift 2
    "$@" >"$T/r.out" 2>"$T/r.err"
    rc=$?
    if [ $rc -ne 1 ] || [ -s "$T/r.out" ] || [ "$(wc -l <"$T/r.err")" -ne 1 ] ||
        ! grep -qF -- "$needle" "$T/r.err"; then
        sed 's/^/    | /' "$T/r.err"
        fail "$desc: want exit 1 and one line naming '$needle' (exit $rc)"
    else
        echo "ok: $desc: $(cat "$T/r.err")"
    fi
}
refused "an unknown --method" "--method: unknown 'atp2' (exact, atp, atp-qk)" \
    job end bad1 --method atp2
refused "--verify-top with exact patching" "--verify-top checks estimates: it needs --method atp" \
    job end bad4 --verify-top 3
refused "a merge of maps verified for different K" "verify top differs: 5 vs 0" \
    "$MECHIR" merge "$T/verify-start/circuit.cmap" "$T/atp-start/circuit.cmap" -o "$T/m.cmap"
refused "--method atp with the head-pos sweep" "--sweep head-pos needs --method exact" \
    job end bad2 --method atp --sweep heads,head-pos --heads 1.1
refused "--method atp-qk with --cache" "--cache needs --method exact" \
    job end bad3 --method atp-qk --cache 'blocks.*.hook_resid_pre'
refused "--resume of an atp job as exact" "method: 'atp' in the journal, 'exact' now" \
    job end atp-end --resume
refused "--resume of an atp job as atp-qk" "method: 'atp' in the journal, 'atp-qk' now" \
    job end atp-end --resume --method atp-qk
job end atp-end --resume --method atp >/dev/null 2>&1 || fail "--resume with the same --method atp failed"
refused "a merge of an atp and an exact map" "method differs: 'atp' vs 'exact'" \
    "$MECHIR" merge "$T/atp-end/circuit.cmap" "$T/exact-end/circuit.cmap" -o "$T/m.cmap"
refused "a merge of an atp-qk and an atp map" "method differs: 'atp-qk' vs 'atp'" \
    "$MECHIR" merge "$T/qk-start/circuit.cmap" "$T/atp-start/circuit.cmap" -o "$T/m.cmap"
[ -e "$T/m.cmap" ] && fail "a refused merge wrote its output"

if [ $fails -ne 0 ]; then
    echo "FAIL: run_atp ($fails failures)"
    exit 1
fi
echo "PASS: run_atp"
