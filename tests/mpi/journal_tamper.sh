#!/bin/sh
# A damaged or tampered journal on --resume (coordinator/journal.h). A clean run of PAIRS pairs
# (heads and blocks) gives the reference outputs; each case copies its journal.bin and job.json
# into a fresh OUT, changes the journal with journal_tool.py (which recomputes the checksums with
# its own FNV-1a, so only mechir's record checks can refuse the record) and resumes.
#   fatal cases: exit 1, one line on stderr naming OUT/journal.bin, the record's offset (as the
#     tool computed it) and the reason; no circuit.cmap, circuit.json or pairs output; a
#     tampered record is refused before any pair is computed (the journal is left unchanged);
#   fine cases (a torn tail, a record journaled twice, stale temp files): exit 0, "N already
#     done" equal to the distinct pair indices the tool counts, and circuit.cmap, circuit.json
#     and pairs.jsonl.zst byte for byte those of the clean run.
# Every case runs even after one failed (so a run against an older mechir lists them all).
# usage: journal_tamper.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
TOOL="/usr/bin/python3 $ROOT/tests/mpi/journal_tool.py"
head -n "$PAIRS" "$ROOT/examples/demo-200.tsv" >"$INPUT"
J="--model $ROOT/examples/demo-ce --input $INPUT --sweep heads,blocks --max-len 64 --unit-size 2"

echo "== the clean run: $PAIRS pairs =="
expect_ok 300 ref "$MECHIR" run $J --out ref
$TOOL list ref/journal.bin >ref.list || fail "journal_tool.py cannot read ref/journal.bin"
[ "$(wc -l <ref.list)" -eq "$PAIRS" ] || { show ref.list; fail "the clean journal does not hold $PAIRS records"; }
LAST=$((PAIRS - 1))
set -- $($TOOL pick ref/journal.bin) || fail "no used pair in the middle of the journal"
MID=$1
ok "reference: $PAIRS records; record $MID (offset $2) is a used pair in the middle"

# fresh CASE: OUT=CASE holding only the clean run's journal.bin and job.json.
fresh() {
    rm -rf "$1"
    mkdir "$1" && cp ref/journal.bin ref/job.json "$1/"
}

# fatal CASE WANT: resumes OUT=CASE, which must fail with one stderr line holding WANT.
fatal() {
    MECHIR_LOG=warn run_fg 300 "$1" "$MECHIR" run $J --out "$1" --resume
    [ $rc -eq 1 ] || { show "$1.err"; fail "$1: exit status $rc, want 1"; }
    [ "$(grep -c . "$1.err")" -eq 1 ] || { show "$1.err"; fail "$1: want one line on stderr"; }
    grep -qF -- "$2" "$1.err" || { show "$1.err"; fail "$1: the message does not say '$2'"; }
    for f in circuit.cmap circuit.json pairs.jsonl.zst pairs.jsonl run.json; do
        [ ! -e "$1/$f" ] || fail "$1: $f was written"
    done
    ok "$1: exit 1, $(cat "$1.err")"
}

# tampered CASE ACTION WANT: record MID rewritten by ACTION with valid checksums, the last
# record dropped (so the resume has a pair to compute): refused before any work, so the journal
# is left as it was.
tampered() {
    fresh "$1"
    off=$($TOOL edit "$1/journal.bin" "$MID" "$2") || fail "$1: journal_tool.py edit $2"
    $TOOL keep "$1/journal.bin" "$LAST" && cp "$1/journal.bin" "$1.before" || fail "$1: journal_tool.py keep"
    fatal "$1" "$1/journal.bin: record at offset $off: $3"
    same_file "$1.before" "$1/journal.bin" "$1: the journal after the refused resume"
}

# same_outputs CASE: the clean run's outputs.
same_outputs() {
    for f in circuit.cmap circuit.json pairs.jsonl.zst; do
        same_file "ref/$f" "$1/$f" "$1: $f"
    done
}

# resumes_fine CASE: resumes OUT=CASE to the end; "N already done" must be the distinct pair
# indices of CASE's journal as the tool reads it (before the resume), and the outputs the clean
# run's.
resumes_fine() {
    want=$($TOOL list "$1/journal.bin" | awk '{ print $3 }' | sort -u | wc -l)
    run_fg 300 "$1" "$MECHIR" run $J --out "$1" --resume
    [ $rc -eq 0 ] || { show "$1.err"; fail "$1: exit status $rc, want 0"; }
    n=$(already_done "$1.err")
    [ "$n" = "$want" ] || { show "$1.err"; fail "$1: says '${n:-nothing}' already done, want $want distinct pairs"; }
    same_outputs "$1"
}

case_index_max() { tampered index_max index-max "pair #18446744073709551615 is beyond the $PAIRS expected pairs"; }
case_role_ff() { tampered role_ff role-ff "malformed pair result: role 255 out of range"; }
case_roles_longer() { tampered roles_longer roles-longer "malformed pair result: pair arrays of different lengths"; }
case_ids_longer() { tampered ids_longer ids-longer-failed "a failed pair with heads values"; }
case_heads1() { tampered heads1 heads1-skipped "a skipped pair with heads values"; }
case_nan_effect() { tampered nan_effect nan-effect "non-finite heads value 0 (effect nan"; }
case_inf_score() { tampered inf_score inf-score "non-finite score"; }
case_nan_score() { tampered nan_score nan-score-skipped "non-finite score"; }

case_index_mismatch() {
    fresh index_mismatch
    # The header says the pair of the first record: the pair at MID would count as done twice.
    first=$(awk 'NR == 1 { print $3 }' ref.list)
    want=$(awk -v k="$MID" '$1 == k { print $3 }' ref.list)
    off=$($TOOL header-index index_mismatch/journal.bin "$MID" "$first") || fail "index_mismatch: journal_tool.py"
    fatal index_mismatch "index_mismatch/journal.bin: record at offset $off: pair #$want in a record of pair #$first"
}

case_length_flip() {
    fresh length_flip
    # +1 MiB: the record would reach past the end of the file, where a torn tail ends.
    off=$($TOOL flip-length length_flip/journal.bin "$MID" 20) || fail "length_flip: journal_tool.py"
    fatal length_flip "length_flip/journal.bin: record at offset $off: its header fails its checksum"
}

case_last_payload_flip() {
    fresh last_payload
    off=$($TOOL flip-payload last_payload/journal.bin "$LAST") || fail "last_payload: journal_tool.py"
    fatal last_payload "last_payload/journal.bin: record at offset $off: its payload fails its checksum"
}

case_old_format() {
    fresh old_format
    $TOOL to-v1 old_format/journal.bin || fail "old_format: journal_tool.py"
    fatal old_format "old_format/journal.bin: journal format 1; this mechir writes 2"
}

case_torn_tail() {
    fresh torn
    $TOOL keep torn/journal.bin 7 && $TOOL cut torn/journal.bin 10 || fail "torn: journal_tool.py"
    resumes_fine torn
    grep -q "cut off an incomplete last record" torn.err || { show torn.err; fail "torn: the cut is not reported"; }
    ok "torn: the incomplete last record cut off, $n already done, the clean outputs"
}

case_duplicate() {
    fresh dup
    $TOOL keep dup/journal.bin 6 && $TOOL dup dup/journal.bin 2 || fail "dup: journal_tool.py"
    [ "$($TOOL list dup/journal.bin | wc -l)" -eq 7 ] || fail "dup: the journal does not hold 7 records"
    resumes_fine dup
    ok "dup: 7 records of 6 pairs, $n already done, the clean outputs"
}

case_stale_tmp() {
    fresh stale
    sh -c 'echo $$ >dead.pid'
    dead=$(cat dead.pid)
    ! alive "$dead" || fail "stale: process $dead is still alive"
    for f in circuit.cmap pairs.jsonl.zst run.json; do echo partial >"stale/$f.tmp.$dead"; done
    # The resume holds OUT's lock, which every writer of these files takes: a temp file whose PID
    # is alive (this shell; in real life a killed rank 0 left as a zombie, or a PID of another
    # node) is stale too.
    echo partial >"stale/circuit.cmap.tmp.$$"
    echo keep >"stale/notes.tmp.$dead"         # not a name mechir writes
    echo keep >"stale/circuit.cmap.tmp.${dead}x"
    resumes_fine stale
    for f in circuit.cmap.tmp.$dead pairs.jsonl.zst.tmp.$dead run.json.tmp.$dead circuit.cmap.tmp.$$; do
        [ ! -e "stale/$f" ] || fail "stale: $f was not removed"
    done
    for f in "notes.tmp.$dead" "circuit.cmap.tmp.${dead}x"; do
        [ -e "stale/$f" ] || fail "stale: $f was removed"
    done
    ok "stale: the 4 temp files of processes $dead (dead) and $$ (alive) removed, 2 other files kept, the clean outputs"
}

failed=0
for c in index_max index_mismatch role_ff roles_longer ids_longer heads1 nan_effect inf_score \
    nan_score length_flip last_payload_flip old_format torn_tail duplicate stale_tmp; do
    echo "== $c =="
    (case_$c) || failed=$((failed + 1))
done
[ "$failed" -eq 0 ] || fail "$failed of 15 cases failed"
echo "PASS: journal_tamper"
