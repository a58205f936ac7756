#!/bin/sh
# OUT/pairs.jsonl.zst of `mechir run`: read with the zstd CLI and frame by frame (pairs_frames.py
# splits the frames with a header parser of its own), it must equal the --pairs-format jsonl
# output of the same job byte for byte, one frame per 64 pairs of whole lines, with run.json's
# pair count and `mechir pairs`'s pair ids; a file cut inside its last frame is refused by zstd;
# a resume that changes the format leaves only the new format's file (a run without pairs is an
# error and writes no pairs file; the writer's empty frame is test_pairs_writer's). Needs python3 (standard library) and the zstd CLI (deploy/install-deps.sh).
# usage: test_pairs_zst.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
    exit 2
fi
MECHIR=$1
ROOT=$2
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "FAIL: python3 is missing"; exit 1; }
command -v zstd >/dev/null || { echo "FAIL: the zstd CLI is missing (apt-get install zstd)"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/mch_pzst.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
export OPENBLAS_NUM_THREADS=1

fail() {
    echo "FAIL: $1"
    exit 1
}
ok() { echo "ok: $1"; }
run() { # run NAME ARGS...: mechir run, which must succeed
    name=$1
    shift
    "$MECHIR" run "$@" >"$T/$name.out" 2>"$T/$name.err" ||
        { sed 's/^/    | /' "$T/$name.err"; fail "mechir run $name: exit status $?"; }
}

# 150 pairs: frames of 64, 64 and 22 lines.
head -n 150 "$ROOT/examples/demo-200.tsv" >"$T/in.tsv"
JOB="--model $ROOT/examples/demo-ce --input $T/in.tsv --perturb tfc1 --sweep heads --max-len 64 --seed 1"
run zst $JOB --out "$T/a"
run jsonl $JOB --out "$T/b" --pairs-format jsonl
[ -s "$T/a/pairs.jsonl.zst" ] && [ ! -e "$T/a/pairs.jsonl" ] ||
    fail "the default run did not write pairs.jsonl.zst alone: $(ls "$T/a")"
[ -s "$T/b/pairs.jsonl" ] && [ ! -e "$T/b/pairs.jsonl.zst" ] ||
    fail "--pairs-format jsonl did not write pairs.jsonl alone: $(ls "$T/b")"
ls "$T/a" "$T/b" | grep -q '\.tmp\.' && fail "a temp file was left in OUT"
"$MECHIR" pairs $(echo "$JOB" | sed 's/--sweep heads //') -o "$T/pairs.jsonl" 2>"$T/pairs.err" ||
    { sed 's/^/    | /' "$T/pairs.err"; fail "mechir pairs failed"; }
"$PY" "$ROOT/tests/cli/pairs_frames.py" check "$T/a/pairs.jsonl.zst" "$T/b/pairs.jsonl" \
    "$T/a/run.json" "$T/pairs.jsonl" || exit 1
cmp -s "$T/a/circuit.cmap" "$T/b/circuit.cmap" || fail "circuit.cmap depends on --pairs-format"
ok "circuit.cmap is the same with either format"

# A cut in the middle of the last frame: zstd refuses it (the earlier frames still decompress).
"$PY" "$ROOT/tests/cli/pairs_frames.py" truncate "$T/a/pairs.jsonl.zst" "$T/cut.zst" || exit 1
if zstd -dcq "$T/cut.zst" >"$T/cut.out" 2>"$T/cut.err"; then
    fail "zstd -dc accepted pairs.jsonl.zst cut inside its last frame"
fi
[ "$(wc -l <"$T/cut.out")" -eq 128 ] ||
    fail "zstd -dc of the cut file gave $(wc -l <"$T/cut.out") lines before the error, want 128"
ok "a cut inside the last frame is refused by zstd -dc, after the 128 lines of the whole frames"

# A resume may change the format: the outputs are rebuilt from the journal, the old file goes.
cp "$T/a/pairs.jsonl.zst" "$T/first.zst"
run resume_jsonl $JOB --out "$T/a" --resume --pairs-format jsonl
[ ! -e "$T/a/pairs.jsonl.zst" ] || fail "a resume with --pairs-format jsonl left pairs.jsonl.zst"
cmp -s "$T/a/pairs.jsonl" "$T/b/pairs.jsonl" || fail "the resumed pairs.jsonl differs from a clean run's"
run resume_zst $JOB --out "$T/a" --resume
[ ! -e "$T/a/pairs.jsonl" ] || fail "a resume with the default format left pairs.jsonl"
cmp -s "$T/a/pairs.jsonl.zst" "$T/first.zst" || fail "the resumed pairs.jsonl.zst differs from the first"
ok "resumes switching jsonl -> zst leave one file each time, the same bytes as clean runs"

# A bad format is a usage error naming the option.
"$MECHIR" run $JOB --out "$T/x" --pairs-format gz >"$T/bad.out" 2>"$T/bad.err"
rc=$?
[ $rc -eq 2 ] && grep -q -- "--pairs-format takes zst or jsonl, got 'gz'" "$T/bad.err" &&
    [ ! -s "$T/bad.out" ] || { cat "$T/bad.err"; fail "--pairs-format gz: exit $rc, want 2 and a message"; }
ok "--pairs-format gz: exit 2, one line naming the option"
echo "PASS: pairs_zst"
