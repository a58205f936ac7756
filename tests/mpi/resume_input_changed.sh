#!/bin/sh
# Input fingerprints: a one-process run stopped by SIGTERM part way, then --resume after its
# input changed under the same path: the same size with one byte changed, another size, and the
# --stopwords file changed, each exit 1 with one line naming the file and saying what changed,
# leaving the journal as it was; with the original bytes back, --resume ends with the circuit.cmap
# of an uninterrupted run. run.json lists each input file with its size (checked against wc -c)
# and a 16-digit xxh3. A --stopwords FIFO is refused by the run (every pass reads it again) and
# then by --resume (a pipe cannot be fingerprinted), both without waiting for a writer.
# usage: resume_input_changed.sh PATH/TO/mechir REPO_ROOT PAIRS
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
printf 'the\nof\nand\n' >stop.txt
J="--model $ROOT/examples/demo-ce --input $INPUT --sweep heads --max-len 64 --unit-size 1"
J="$J --stopwords stop.txt"
cp "$INPUT" orig.tsv
cp stop.txt orig_stop.txt

echo "== an uninterrupted run of $PAIRS pairs =="
expect_ok 300 ref "$MECHIR" run $J --out ref
isize=$(wc -c <"$INPUT")
ssize=$(wc -c <stop.txt)
grep -q "\"input_files\":\\[{\"name\":\"$INPUT\",\"size\":$isize,\"xxh3\":\"[0-9a-f]\\{16\\}\"},{\"name\":\"stop.txt\",\"size\":$ssize,\"xxh3\":\"[0-9a-f]\\{16\\}\"}\\]" ref/run.json ||
    { show ref/run.json; fail "ref/run.json does not list both input files with their sizes ($isize, $ssize) and hashes"; }
ok "run.json lists $INPUT ($isize bytes) and stop.txt ($ssize bytes) with their xxh3"

echo "== the same job stopped by SIGTERM part way =="
start_bg out "$MECHIR" run $J --out out
wait_journal out/journal.bin "$(journal_threshold ref/journal.bin 30)" 300
kill -TERM "$BG_PID"
wait_bg 120
[ $rc -eq 3 ] || { show out.err; fail "exit status $rc after SIGTERM, want 3"; }
cp out/journal.bin journal.before

# expect_changed DESC NEEDLE: --resume exits 1 with one line (stderr only) containing NEEDLE and
# the journal, and leaves the journal as it was.
expect_changed() {
    run_fg 120 refused "$MECHIR" run $J --out out --resume
    [ $rc -eq 1 ] || { show refused.err; fail "$1: exit status $rc, want 1"; }
    [ ! -s refused.out ] || { show refused.out; fail "$1: printed on stdout"; }
    [ "$(wc -l <refused.err)" -eq 1 ] || { show refused.err; fail "$1: want one line on stderr"; }
    for needle in "mechir run: cannot resume out/journal.bin: " "$2"; do
        grep -qF -- "$needle" refused.err || { show refused.err; fail "$1: the message lacks '$needle'"; }
    done
    same_file journal.before out/journal.bin "$1: the journal must be left as it was"
    [ ! -e out/circuit.cmap ] || fail "$1: circuit.cmap was written"
    ok "$1: $(cat refused.err)"
}

sed '1s/a/e/' orig.tsv >"$INPUT"
cmp -s orig.tsv "$INPUT" && fail "the edit changed nothing"
[ "$(wc -c <"$INPUT")" -eq "$isize" ] || fail "the edit changed the size"
expect_changed "one byte of the input changed" \
    "input file '$INPUT' changed: the same size ($isize bytes) but other contents (xxh3 "
head -n $((PAIRS - 1)) orig.tsv >"$INPUT"
expect_changed "the input's last line removed" \
    "input file '$INPUT' changed: $isize bytes when the job started, $(wc -c <"$INPUT") now"
cp orig.tsv "$INPUT"
printf 'the\nof\nend\n' >stop.txt
expect_changed "the --stopwords file changed" \
    "input file 'stop.txt' changed: the same size ($ssize bytes) but other contents"

echo "== the original inputs back: --resume continues =="
cp orig_stop.txt stop.txt
resume_and_compare out ref/circuit.cmap "--resume with the original inputs" \
    "$MECHIR" run $J --out out --resume

echo "== a FIFO as --stopwords =="
mkfifo fifo
F="--model $ROOT/examples/demo-ce --input $INPUT --sweep heads --max-len 64 --stopwords fifo"
run_fg 60 fifo1 "$MECHIR" run $F --out fifo_out
[ $rc -eq 1 ] || { show fifo1.err; fail "a run with a FIFO as --stopwords: exit status $rc, want 1"; }
grep -qF "fifo: not a regular file" fifo1.err || { show fifo1.err; fail "the run does not say the FIFO is not a regular file"; }
ok "a run: $(grep '^mechir' fifo1.err)"
run_fg 60 fifo2 "$MECHIR" run $F --out fifo_out --resume
[ $rc -eq 1 ] || { show fifo2.err; fail "--resume with a FIFO as --stopwords: exit status $rc, want 1"; }
grep -qF "input file 'fifo' is not a regular file (a pipe or a device): its contents cannot be fingerprinted, so a job reading it cannot be resumed" fifo2.err ||
    { show fifo2.err; fail "--resume does not refuse the FIFO"; }
ok "--resume: $(grep '^mechir' fifo2.err)"
echo "PASS: resume_input_changed"
