#!/bin/sh
# Resuming twice: a one-process run stopped by SIGUSR1 once about a quarter of its pairs are
# journaled, resumed to the end, then resumed again. Each resume's "N already done" must equal
# the pair records in the journal counted here (journal.bin parsed with od and awk, each record's
# pair index decoded from its protobuf), the first resume must add exactly the missing pairs (no
# pair journaled twice: the journal ends with one record per input line, indices 0..PAIRS-1),
# and pairs.jsonl must hold every pair once. heads only and one pair a unit, so many units.
# --pairs-format jsonl throughout: the plain per-pair output through interruptions and resumes.
# usage: resume_twice.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
J="--model $ROOT/examples/demo-ce --input $INPUT --sweep heads --max-len 64 --unit-size 1 --pairs-format jsonl"

# journal_indices FILE: the pair index of every complete record of a journal, one a line, in
# file order (see coordinator/journal.h: "MCHJOUR2", u32 spec length, spec, u64 checksum; then
# records of u32 magic 0x5243484d, u32 length, u64 pair index, u64 header checksum, payload, u64
# checksum). The payload is a PairResult whose field 1 is the PairInput, whose field 1 is the
# index (absent when 0, as proto3 does); it must be the header's ("bad" otherwise). A torn
# record at the end (the file is being written) ends the list.
journal_indices() {
    [ -f "$1" ] || return 0
    od -An -v -tu1 "$1" | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        function u32(o) { return b[o] + 256 * b[o + 1] + 65536 * b[o + 2] + 16777216 * b[o + 3] }
        function varint(  v, m) { # reads the varint at b[q], moving q past it
            v = 0; m = 1
            while (b[q] >= 128) { v += (b[q] - 128) * m; m *= 128; q++ }
            v += b[q] * m; q++
            return v
        }
        END {
            if (n < 12) exit
            off = 8 + 4 + u32(8) + 8
            while (off + 24 <= n && u32(off) == 1380141133) {
                len = u32(off + 4)
                if (off + 32 + len > n) break
                q = off + 24
                if (b[q] != 10) { print "bad"; exit }
                q++
                varint() # the PairInput length
                idx = 0
                if (b[q] == 8) { q++; idx = varint() }
                if (idx != u32(off + 8) + 4294967296 * u32(off + 12)) { print "bad"; exit }
                print idx
                off += 32 + len
            }
        }'
}

echo "== $PAIRS pairs, one process, SIGUSR1 once a quarter is journaled =="
start_bg run1 "$MECHIR" run $J --out out
quarter=$((PAIRS / 4))
deadline=$(($(date +%s) + 300))
while [ "$(journal_indices out/journal.bin | wc -l)" -lt "$quarter" ]; do
    alive "$BG_PID" || fail "the run ended before $quarter pairs were journaled; give it more pairs"
    [ "$(date +%s)" -lt "$deadline" ] || fail "$quarter pairs were not journaled in 300 s"
    sleep 0.05
done
kill -USR1 "$BG_PID"
wait_bg 120
[ $rc -eq 3 ] || { show run1.err; fail "exit status $rc after SIGUSR1, want 3"; }
journal_indices out/journal.bin >idx0
grep -qx bad idx0 && fail "a journal record is not a PairResult with its PairInput first, of its header's index"
n0=$(wc -l <idx0)
d0=$(sort -u idx0 | wc -l)
[ "$n0" -gt 0 ] && [ "$n0" -lt "$PAIRS" ] || fail "the interrupted journal has $n0 of $PAIRS pairs"
[ "$d0" -eq "$n0" ] || fail "the interrupted journal has $n0 records but $d0 distinct pairs"
[ "$(sort -n idx0 | tail -n 1)" -ge "$n0" ] ||
    fail "the journaled pairs are indices 0..$((n0 - 1)): the test needs them out of order"
ok "interrupted with $n0 of $PAIRS pairs journaled, indices up to $(sort -n idx0 | tail -n 1)"

# check_done STEP WANT: STEP.err says WANT already done.
check_done() {
    n=$(already_done "$1.err")
    [ "$n" = "$2" ] || { show "$1.err"; fail "$1: says '${n:-nothing}' already done, want $2 (the journal's pairs)"; }
    ok "$1: $n already done, as the journal holds"
}

# check_complete STEP: the journal holds each of the PAIRS input lines' pairs exactly once, and
# pairs.jsonl has PAIRS lines with PAIRS distinct pair ids and indices 0..PAIRS-1.
check_complete() {
    journal_indices out/journal.bin >"$1.idx"
    n=$(wc -l <"$1.idx")
    [ "$n" -eq "$PAIRS" ] || fail "$1: the journal has $n records for $PAIRS pairs ($((n - $(sort -u "$1.idx" | wc -l))) pairs twice)"
    seq 0 $((PAIRS - 1)) >want.idx
    sort -n "$1.idx" | cmp -s - want.idx || fail "$1: the journal's pair indices are not 0..$((PAIRS - 1)) once each"
    [ "$(wc -l <out/pairs.jsonl)" -eq "$PAIRS" ] || fail "$1: pairs.jsonl has $(wc -l <out/pairs.jsonl) lines, want $PAIRS"
    ids=$(sed 's/^{"pair_id":"\([0-9a-f]*\)".*/\1/' out/pairs.jsonl | sort -u | wc -l)
    [ "$ids" -eq "$PAIRS" ] || fail "$1: pairs.jsonl has $ids distinct pair ids, want $PAIRS"
    sed 's/^[^,]*,"index":\([0-9]*\),.*/\1/' out/pairs.jsonl | cmp -s - want.idx ||
        fail "$1: pairs.jsonl's indices are not 0..$((PAIRS - 1)) in order"
    ok "$1: the journal and pairs.jsonl hold each of the $PAIRS pairs once"
}

echo "== resume to the end =="
expect_ok 300 resume1 "$MECHIR" run $J --out out --resume
check_done resume1 "$n0"
check_complete resume1
cp out/pairs.jsonl pairs1.jsonl
cp out/circuit.cmap circuit1.cmap

echo "== resume the finished run again =="
expect_ok 300 resume2 "$MECHIR" run $J --out out --resume
check_done resume2 "$PAIRS"
check_complete resume2
same_file pairs1.jsonl out/pairs.jsonl "pairs.jsonl after the second resume"
same_file circuit1.cmap out/circuit.cmap "circuit.cmap after the second resume"
echo "PASS: resume_twice"
