#!/usr/bin/env bash
# `mechir submit` without a scheduler: --dry-run scripts for Slurm and PBS checked line by line
# (directives, launchers, the warning signal, cpus for --threads > 1, shell quoting that survives
# any argument), the --shards job array with its dependent merge job, a real submission through
# stand-in sbatch and qsub commands first on PATH, so a real one is never run (shard files: every
# input line in exactly one shard, a pair and its repeats in the same one; the df table that
# keeps tdc's terms those of the whole), and usage errors (one line on stderr, nothing on stdout,
# exit 2).
# usage: test_submit_dryrun.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
  exit 2
fi
MECHIR=$(readlink -f "$1")
ROOT=$(cd "$2" && pwd) || exit 1 # absolute: the test works in $TMP
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mch_submit.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
export LSAN_OPTIONS="suppressions=$ROOT/tests/slurm/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"

fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

# has FILE LINE WHAT: FILE holds LINE as a whole line.
has() {
  if grep -qxF -- "$2" "$1"; then ok "$3"; else
    fail "$3: no line '$2' in $1"
    sed 's/^/    | /' "$1"
    [ -f "${1%.out}.err" ] && sed 's/^/    stderr | /' "${1%.out}.err"
  fi
}
hasnt() {
  if grep -qF -- "$2" "$1"; then fail "$3: '$2' found in $1"; else ok "$3"; fi
}

# submit NAME ARGS...: runs mechir submit; $rc, NAME.out, NAME.err.
submit() {
  name=$1
  shift
  "$MECHIR" submit "$@" >"$name.out" 2>"$name.err"
  rc=$?
}

# usage_error NAME WANT ARGS...: exit 2, nothing on stdout, one stderr line containing WANT.
usage_error() {
  name=$1
  want=$2
  shift 2
  submit "$name" "$@"
  if [ $rc -ne 2 ]; then fail "$name: exit status $rc, want 2"; return; fi
  if [ -s "$name.out" ]; then fail "$name: output on stdout"; return; fi
  if [ "$(wc -l <"$name.err")" -ne 1 ]; then fail "$name: want one line on stderr, got:"; cat "$name.err"; return; fi
  if ! grep -qF -- "$want" "$name.err"; then fail "$name: stderr lacks '$want': $(cat "$name.err")"; return; fi
  ok "$name: exit 2: $(cat "$name.err")"
}

MODEL="$ROOT/examples/demo-ce"
# Arguments a careless script would break: spaces, both quotes, $, backticks, a glob, a newline.
WEIRD_SITE="Site \"A\" it's \$HOME \`touch pwned\` *"
WEIRD_IN="$TMP/in dir/pairs \$(touch pwned).tsv"
NL_TERM=$'two\nlines'
RUN=(--model "$MODEL" --input "$WEIRD_IN" --site "$WEIRD_SITE" --term "$NL_TERM" --sweep heads
     --max-len 64 --out "$TMP/out dir")

echo "== Slurm dry run =="
submit slurm --scheduler slurm --nodes 2 --ranks-per-node 3 --time 01:30:00 --partition p1 \
  --account acct --mem 4G --dry-run -- "${RUN[@]}"
[ $rc -eq 0 ] || fail "slurm dry run: exit status $rc: $(cat slurm.err)"
S=slurm.out
has $S '#!/bin/bash' "shebang"
has $S '#SBATCH --job-name=mechir-out_dir' "job name from --out"
has $S "#SBATCH --output=\"$TMP/out dir/slurm-%j.out\"" "log in the output directory"
has $S '#SBATCH --nodes=2' "nodes"
has $S '#SBATCH --ntasks-per-node=3' "ranks per node"
has $S '#SBATCH --cpus-per-task=1' "one cpu per rank"
has $S '#SBATCH --time=01:30:00' "time limit"
has $S '#SBATCH --signal=B:USR1@90' "USR1 to the batch shell 90 s before the limit"
has $S '#SBATCH --partition=p1' "partition"
has $S '#SBATCH --account=acct' "account"
has $S '#SBATCH --mem=4G' "memory"
has $S 'launcher=srun' "srun is the default launcher"
has $S '  srun) step=(srun --mpi=pmix "$MECHIR" "${cmd[@]}") ;;' "srun --mpi=pmix"
hasnt $S 'pmi2' "no pmi2 anywhere"
has $S "cd $TMP || exit 1" "runs in the submit directory"
has $S "MECHIR=$(readlink -f "$MECHIR")" "the program that wrote the script"
has $S "OUT='$TMP/out dir'" "OUT quoted"
has $S "trap 'forward USR1' USR1" "USR1 trapped"
has $S 'requeue=0' "no requeue by default"
hasnt $S '#SBATCH --array' "no array without --shards"
grep -qE '@[A-Z0-9_]+@' $S && fail "placeholders left: $(grep -E '@[A-Z0-9_]+@' $S)" ||
  ok "every placeholder filled"
grep -q 'would write .*/out dir/mechir-slurm.sh and run: sbatch --parsable' slurm.err &&
  ok "dry run names the sbatch command" || fail "dry run stderr: $(cat slurm.err)"
[ ! -e "$TMP/out dir" ] && ok "dry run wrote nothing" || fail "dry run created the output directory"
bash -n $S && ok "bash -n accepts the script" || fail "bash -n rejects the script"

# The cmd=( ... ) line, run by bash, gives back the run options byte for byte (plus --resume).
check_args() {
  line=$(sed -n '/^cmd=(/,/)$/p' "$1")
  (
    cd "$TMP" && eval "$line" && printf '%s\0' "${cmd[@]}"
  ) >"$1.args"
  printf '%s\0' run "${@:2}" --resume >"$1.want"
  if cmp -s "$1.args" "$1.want"; then ok "$1: the shell gives back every run option byte for byte"; else
    fail "$1: quoted arguments differ: $line"
  fi
  [ ! -e "$TMP/pwned" ] || fail "$1: a quoted argument ran a command"
}
check_args $S "${RUN[@]}"

echo "== Slurm: short limits, --signal-seconds, --requeue, --launcher mpirun =="
submit short --scheduler slurm --time 00:01:00 --dry-run -- --model m --input i.tsv --out o
has short.out '#SBATCH --signal=B:USR1@20' "1-minute limit: USR1 20 s before (a third)"
has short.out '#SBATCH --ntasks-per-node=2' "default 2 ranks per node"
has short.out '#SBATCH --nodes=1' "default 1 node"
submit short2 --scheduler slurm --time 00:02:00 --dry-run -- --model m --input i.tsv --out o
has short2.out '#SBATCH --signal=B:USR1@40' "2-minute limit: USR1 40 s before"
submit sig --scheduler slurm --time 00:10:00 --signal-seconds 30 --dry-run -- --model m --input i.tsv --out o
has sig.out '#SBATCH --signal=B:USR1@30' "--signal-seconds 30"
submit rq --scheduler slurm --time 10:00:00 --requeue --launcher mpirun --dry-run -- \
  --model m --input i.tsv --out o --threads 4 --resume
has rq.out '#SBATCH --requeue' "--requeue: requeueable job"
has rq.out '#SBATCH --open-mode=append' "--requeue: logs appended across restarts"
has rq.out 'requeue=1' "--requeue: scontrol requeue on exit 3"
has rq.out 'launcher=mpirun' "--launcher mpirun"
has rq.out '#SBATCH --cpus-per-task=4' "--threads 4 gives 4 cpus per rank"
has rq.out 'cmd=(run --model m --input i.tsv --out o --threads 4 --resume)' "--resume not doubled"
has rq.out "#SBATCH --output=\"$TMP/o/slurm-%j.out\"" "a relative --out made absolute"

echo "== --threads: cpus per rank, Slurm and PBS =="
# Each rank runs --threads BLAS threads: Slurm asks --cpus-per-task=THREADS per task, PBS
# ncpus=RANKS_PER_NODE*THREADS per chunk (one chunk per node, mpiprocs=RANKS_PER_NODE); the merge
# job of --shards runs one thread.
for combo in "2 3 4" "1 5 2" "3 1 8"; do
  read -r nodes rpn thr <<<"$combo"
  tn=thr_${nodes}_${rpn}_${thr} # not $name: submit sets it
  what="$nodes nodes x $rpn ranks x $thr threads"
  submit ${tn}_s --scheduler slurm --nodes $nodes --ranks-per-node $rpn --time 01:00:00 --dry-run -- \
    --model m --input i.tsv --out o --threads $thr
  [ $rc -eq 0 ] || fail "slurm $what: exit status $rc: $(cat ${tn}_s.err)"
  has ${tn}_s.out "#SBATCH --nodes=$nodes" "slurm $what: nodes"
  has ${tn}_s.out "#SBATCH --ntasks-per-node=$rpn" "slurm $what: tasks per node"
  has ${tn}_s.out "#SBATCH --cpus-per-task=$thr" "slurm $what: cpus per task"
  submit ${tn}_p --scheduler pbs --nodes $nodes --ranks-per-node $rpn --time 01:00:00 --dry-run -- \
    --model m --input i.tsv --out o --threads $thr
  [ $rc -eq 0 ] || fail "pbs $what: exit status $rc: $(cat ${tn}_p.err)"
  has ${tn}_p.out "#PBS -l select=$nodes:ncpus=$((rpn * thr)):mpiprocs=$rpn" \
    "pbs $what: ncpus = $rpn * $thr per chunk"
done
for sched in pbs slurm; do
  submit thr_${sched}_shards --scheduler $sched --ranks-per-node 3 --time 02:00:00 --shards 2 \
    --dry-run -- --model m --input "$TMP/in put.tsv" --out "$TMP/thr" --threads 2
  [ $rc -eq 0 ] || fail "$sched --shards --threads 2: exit status $rc: $(cat thr_${sched}_shards.err)"
  # The array script, then the merge script.
  sed -n "/mechir-$sched.sh <==/,/mechir-$sched-merge.sh <==/p" thr_${sched}_shards.out >thr_${sched}_array.out
  sed -n "/mechir-$sched-merge.sh <==/,\$p" thr_${sched}_shards.out >thr_${sched}_merge.out
done
has thr_pbs_array.out "#PBS -l select=1:ncpus=$((3 * 2)):mpiprocs=3" "pbs array tasks: ncpus = 3 * 2"
has thr_pbs_merge.out '#PBS -l select=1:ncpus=1:mpiprocs=1' "pbs merge job: one cpu"
has thr_slurm_array.out '#SBATCH --cpus-per-task=2' "slurm array tasks: 2 cpus per task"
has thr_slurm_merge.out '#SBATCH --cpus-per-task=1' "slurm merge job: one cpu"

echo "== PBS dry run =="
submit pbs --scheduler pbs --nodes 2 --ranks-per-node 3 --time 01:30:00 --partition q1 \
  --account acct --mem 4G --dry-run -- "${RUN[@]}"
[ $rc -eq 2 ] && [ ! -s pbs.out ] && grep -q "cannot go into a #PBS line" pbs.err && ok "PBS refuses an --out with a space: $(cat pbs.err)" ||
  fail "PBS with a space in --out: exit $rc: $(cat pbs.err)"
PRUN=("${RUN[@]}")
PRUN[${#PRUN[@]} - 1]="$TMP/pbsout"
submit pbs --scheduler pbs --nodes 2 --ranks-per-node 3 --time 01:30:00 --partition q1 \
  --account acct --mem 4G --dry-run -- "${PRUN[@]}"
[ $rc -eq 0 ] || fail "pbs dry run: exit status $rc: $(cat pbs.err)"
P=pbs.out
check_args $P "${PRUN[@]}"
has $P '#!/bin/bash' "shebang"
has $P '#PBS -N mechir-pbsout' "job name"
has $P '#PBS -l select=2:ncpus=3:mpiprocs=3:mem=4gb' "one chunk per node with its ranks and memory"
has $P '#PBS -l walltime=01:30:00' "walltime"
has $P '#PBS -j oe' "one log"
has $P "#PBS -o $TMP/pbsout/" "log in the output directory"
has $P '#PBS -q q1' "queue"
has $P '#PBS -A acct' "account"
has $P 'launcher=mpirun' "mpirun"
has $P '  mpirun) step=(mpirun -np "$(wc -l <"$PBS_NODEFILE")" --hostfile "$PBS_NODEFILE" "$MECHIR" "${cmd[@]}") ;;' \
  "mpirun over \$PBS_NODEFILE"
has $P '    for ((r = 0; r < 3; r++)); do echo "$host"; done' \
  "without \$PBS_NODEFILE under Slurm (slurm-wlm-torque): a node file of mpiprocs lines a node"
has $P 'echo "mechir: job ${PBS_JOBID:-${SLURM_JOB_ID:-?}} on $(hostname): $shown" >&2' "PBS or Slurm job id"
has $P ' sleep 5310 & s=$!' "own timer: USR1 90 s before the 5400 s walltime"
hasnt $P '#SBATCH' "no Slurm directives"
hasnt $P 'srun' "no srun"
bash -n $P && ok "bash -n accepts the PBS script" || fail "bash -n rejects the PBS script"
grep -q 'and run: qsub .*/pbsout/mechir-pbs.sh$' pbs.err && ok "dry run names the qsub command" ||
  fail "pbs dry run stderr: $(cat pbs.err)"

echo "== more than one thread per rank (CPU counts worked out here from the numbers given) =="
NODES=3 RPN=5 THREADS=4
TRUN=(--model m --input i.tsv --threads "$THREADS" --out "$TMP/thr")
for sched in slurm pbs; do
  submit "thr_$sched" --scheduler $sched --nodes $NODES --ranks-per-node $RPN --time 01:00:00 \
    --dry-run -- "${TRUN[@]}"
  submit "thr_${sched}_shards" --scheduler $sched --nodes $NODES --ranks-per-node $RPN \
    --time 01:00:00 --shards 2 --dry-run -- "${TRUN[@]}"
done
has thr_slurm.out "#SBATCH --cpus-per-task=$THREADS" "Slurm: a CPU per thread of each rank"
has thr_slurm.out "#SBATCH --ntasks-per-node=$RPN" "Slurm: the ranks per node with threads"
has thr_slurm_shards.out "#SBATCH --cpus-per-task=$THREADS" "Slurm array: a CPU per thread"
has thr_slurm_shards.out "#SBATCH --cpus-per-task=1" "Slurm merge job: one CPU"
has thr_pbs.out "#PBS -l select=$NODES:ncpus=$((RPN * THREADS)):mpiprocs=$RPN" \
  "PBS: ncpus = ranks per node x threads ($RPN x $THREADS)"
has thr_pbs_shards.out "#PBS -l select=$NODES:ncpus=$((RPN * THREADS)):mpiprocs=$RPN" \
  "PBS array: ncpus = ranks per node x threads"
has thr_pbs_shards.out "#PBS -l select=1:ncpus=1:mpiprocs=1" "PBS merge job: one CPU"

echo "== --shards: Slurm job array and dependent merge, dry run =="
submit shards --scheduler slurm --time 02:00:00 --shards 4 --dry-run -- \
  --model m --input "$TMP/in put.tsv" --sweep heads --out "$TMP/sh"
[ $rc -eq 0 ] || fail "shards dry run: exit $rc: $(cat shards.err)"
has shards.out "# ==> $TMP/sh/mechir-slurm.sh <==" "array script header"
has shards.out "# ==> $TMP/sh/mechir-slurm-merge.sh <==" "merge script header"
has shards.out '#SBATCH --array=0-3' "array of 4"
has shards.out "#SBATCH --output=\"$TMP/sh/slurm-%A_%a.out\"" "a log per array task"
has shards.out 'i=${SLURM_ARRAY_TASK_ID:?not a job array task: submit with sbatch --array}' "task index"
has shards.out 'shard="$OUT/shard-$i"' "shard directory"
has shards.out 'cmd=(run --model m --input "$shard/input.tsv" --sweep heads --out "$shard" --resume)' \
  "each task reads and writes its shard"
has shards.out 'for ((i = 0; i < 4; i++)); do maps+=("$OUT/shard-$i/circuit.cmap"); done' "the 4 maps"
has shards.out 'cmd=(merge "${maps[@]}" -o "$OUT/circuit.cmap")' "merge into OUT/circuit.cmap"
has shards.out '#SBATCH --job-name=mechir-sh-merge' "merge job name"
has shards.out '#SBATCH --time=00:30:00' "merge job limit capped at 30 min"
has shards.out 'launcher=none' "merge runs without srun"
grep -qF "sbatch --parsable --dependency=afterok:<array job id> $TMP/sh/mechir-slurm-merge.sh" shards.err &&
  ok "merge depends on the array (afterok)" || fail "no dependent merge: $(cat shards.err)"
[ ! -e "$TMP/sh" ] && ok "dry run split nothing" || fail "dry run wrote $TMP/sh"

submit pshards --scheduler pbs --time 02:00:00 --shards 3 --dry-run -- --model m --run r.txt \
  --topics t.tsv --docs d.tsv --out "$TMP/psh"
has pshards.out '#PBS -J 0-2' "PBS array"
has pshards.out 'i=${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-${SLURM_ARRAY_TASK_ID:?not a job array task: submit with qsub -J}}}' \
  "PBS index (Pro, Torque, or Slurm under slurm-wlm-torque's qsub)"
has pshards.out 'cmd=(run --model m --run "$shard/run.txt" --topics t.tsv --docs d.tsv --out "$shard" --resume)' \
  "TREC: the run file is split"
grep -qF "qsub -W depend=afterok:<array job id> $TMP/psh/mechir-pbs-merge.sh" pshards.err &&
  ok "PBS merge depends on the array" || fail "no PBS dependent merge: $(cat pshards.err)"

echo "== --shards for real, with stand-in sbatch and qsub =="
# The stand-ins run with a PATH of their own: bin/ and the two tools they use, so a real sbatch
# or qsub can never answer for them (execvp passes over a stand-in that is not executable).
mkdir -p bin tools
for t in cat basename; do ln -s "$(command -v $t)" tools/$t; done
STANDIN_PATH="$TMP/bin:$TMP/tools"
cat >bin/fake <<'EOF'
#!/bin/sh
# Stands in for sbatch and qsub: records its arguments, checks the script is executable, and
# prints job ids 101, 102, ... as sbatch --parsable ("id;cluster") or qsub ("id.server") do.
n=$(($(cat "$FAKE_DIR/n" 2>/dev/null || echo 100) + 1))
echo $n >"$FAKE_DIR/n"
printf '%s\n' "$*" >>"$FAKE_DIR/calls"
for last; do :; done
[ -x "$last" ] || { echo "$last: not an executable script" >&2; exit 1; }
case $(basename "$0") in
sbatch) echo "$n;cluster" ;;
*) echo "$n[].pbs" ;;
esac
EOF
chmod +x bin/fake
ln -s fake bin/sbatch
ln -s fake bin/qsub
export FAKE_DIR=$TMP
head -n 30 "$ROOT/examples/debian-demo-pairs.tsv" >pairs.tsv
# Repeats of a (qid, docno) pair must stay together: the reader keeps the first.
sed -n '3p;7p' pairs.tsv >>pairs.tsv
PATH="$STANDIN_PATH" "$MECHIR" submit --scheduler slurm --time 00:20:00 --shards 3 -- \
  --model "$MODEL" --input pairs.tsv --perturb tdc --max-len 64 --out real >real.out 2>real.err
rc=$?
[ $rc -eq 0 ] || fail "submit with stand-in sbatch: exit $rc: $(cat real.err)"
[ "$(cat real.out)" = "$(printf '101\n102')" ] && ok "prints the array and merge job ids" ||
  fail "stdout: $(cat real.out)"
sed -n 1p calls | grep -qx -- "--parsable $TMP/real/mechir-slurm.sh" && ok "array submitted" ||
  fail "first sbatch call: $(sed -n 1p calls)"
sed -n 2p calls | grep -qx -- "--parsable --dependency=afterok:101 $TMP/real/mechir-slurm-merge.sh" &&
  ok "merge submitted with --dependency=afterok:101" || fail "second sbatch call: $(sed -n 2p calls)"
cat real/shard-*/input.tsv | sort >union.tsv
sort pairs.tsv >all.tsv
cmp -s union.tsv all.tsv && ok "the shards hold every input line once" || fail "shards != input"
for i in 0 1 2; do [ -s real/shard-$i/input.tsv ] || fail "shard $i is empty"; done
for l in 3 7; do
  key=$(sed -n "${l}p" pairs.tsv | cut -f1,3)
  n=$(grep -l -F -- "$(sed -n "${l}p" pairs.tsv)" real/shard-*/input.tsv | wc -l)
  [ "$n" -eq 1 ] && ok "pair '$key' and its repeat in one shard" || fail "pair '$key' in $n shards"
done
has real/mechir-slurm.sh "cmd=(run --model $MODEL --input \"\$shard/input.tsv\" --perturb tdc --max-len 64 --out \"\$shard\" --df \"\$OUT/df.tsv\" --resume)" \
  "tdc shards read the whole input's df table"
[ -s real/df.tsv ] && ok "df.tsv written" || fail "no real/df.tsv"
# The terms tdc picks in the shards (with the df of the whole) are those of the whole input.
"$MECHIR" pairs --model "$MODEL" --input pairs.tsv --perturb tdc --max-len 64 -o whole.jsonl 2>/dev/null
for i in 0 1 2; do
  "$MECHIR" pairs --model "$MODEL" --input real/shard-$i/input.tsv --perturb tdc --max-len 64 \
    --df real/df.tsv -o shard-$i.jsonl 2>/dev/null
done
terms() { sed 's/^{"pair_id":"\([0-9a-f]*\)".*"term":"\([^"]*\)".*/\1 \2/' "$@" | sort; }
terms whole.jsonl >whole.terms
terms shard-0.jsonl shard-1.jsonl shard-2.jsonl >shards.terms
[ -s whole.terms ] && cmp -s whole.terms shards.terms && ok "tdc: shards pick the whole input's terms ($(wc -l <whole.terms) pairs)" ||
  fail "tdc terms of the shards differ from the whole's"

# JSONL (integer and string ids) split by pair id, compressed input gives compressed shards.
printf '{"qid": 7, "query": "q a", "docno": "d1", "text": "t"}\n{"qid": "7", "query": "q a", "docno": "d1", "text": "u"}\n{"qid": 8, "query": "q b", "docno": 2, "text": "t"}\nnot json\n' >p.jsonl
for n in $(seq 1 40); do printf '{"qid": "q%d", "query": "x", "docno": "d%d", "text": "t"}\n' $n $n; done >>p.jsonl
zstd -q -f p.jsonl -o p.jsonl.zst
rm -f n calls
PATH="$STANDIN_PATH" "$MECHIR" submit --scheduler pbs --time 00:20:00 --shards 5 -- \
  --model "$MODEL" --input p.jsonl.zst --out "$TMP/pj" >pj.out 2>pj.err
rc=$?
[ $rc -eq 0 ] || fail "pbs shards with stand-in qsub: exit $rc: $(cat pj.err)"
[ "$(cat pj.out)" = "$(printf '101[].pbs\n102[].pbs')" ] && ok "qsub ids printed" || fail "stdout: $(cat pj.out)"
sed -n 2p calls | grep -qxF -- "-W depend=afterok:101[].pbs $TMP/pj/mechir-pbs-merge.sh" &&
  ok "PBS merge submitted with depend=afterok" || fail "second qsub call: $(sed -n 2p calls)"
zstd -q -dc pj/shard-*/input.jsonl.zst | sort >pj.union
sort p.jsonl >pj.all
cmp -s pj.union pj.all && ok "zstd shards hold every JSONL line once" || fail "JSONL shards != input"
n=$(zstd -q -dc pj/shard-*/input.jsonl.zst 2>/dev/null | grep -c '"qid": *"\?7"\?,')
k=$(for f in pj/shard-*/input.jsonl.zst; do zstd -q -dc "$f" | grep -q '"qid": *"\?7"\?,' && echo "$f"; done | wc -l)
[ "$n" -eq 2 ] && [ "$k" -eq 1 ] && ok "qid 7 and \"7\" (the same pair) in one shard" || fail "qid 7 in $k shards"

echo "== the PBS array script run under Slurm's Torque commands (Slurm's variables, no PBS_*) =="
# slurm-wlm-torque's qsub runs the script with sbatch: the index and the node file come from
# Slurm (tests/slurm/test_slurm.sh runs it on a real Slurm). Stand-ins for mpirun and scontrol.
mkdir -p runbin
cat >runbin/mpirun <<'EOF'
#!/bin/sh
printf '%s\n' "$*" >"$FAKE_DIR/mpirun.args"
[ "$3" = --hostfile ] && cat "$4" >"$FAKE_DIR/mpirun.hosts"
EOF
cat >runbin/scontrol <<'EOF'
#!/bin/sh
[ "$*" = "show hostnames n[1-2]" ] && printf 'n1\nn2\n'
EOF
chmod +x runbin/mpirun runbin/scontrol
env -u PBS_ARRAY_INDEX -u PBS_ARRAYID -u PBS_NODEFILE -u PBS_JOBID PATH="$TMP/runbin:$PATH" \
  SLURM_ARRAY_TASK_ID=3 SLURM_JOB_ID=555 SLURM_JOB_NODELIST='n[1-2]' bash pj/mechir-pbs.sh >pjrun.out 2>&1
rc=$?
args=$(cat mpirun.args 2>/dev/null)
[ $rc -eq 0 ] && [[ $args == "-np 4 --hostfile "*" run --model $MODEL --input $TMP/pj/shard-3/input.jsonl.zst --out $TMP/pj/shard-3 --resume" ]] &&
  ok "array task 3 from \$SLURM_ARRAY_TASK_ID, mpirun -np 4 over a node file of the allocation (2 nodes x 2)" ||
  fail "the PBS script under Slurm: exit $rc, mpirun '$args': $(cat pjrun.out)"
[ "$(cat mpirun.hosts 2>/dev/null)" = "$(printf 'n1\nn1\nn2\nn2')" ] && ok "node file: each host of the allocation, mpiprocs (2, the default) lines" ||
  fail "node file: $(cat mpirun.hosts 2>/dev/null)"
nodefile=$(set -- $args; echo "$4")
[ -n "$nodefile" ] && [ ! -e "$nodefile" ] && ok "the node file is removed at the end" || fail "node file '$nodefile' left behind"
grep -q '^mechir: job 555 on ' pjrun.out && ok "the job id is \$SLURM_JOB_ID" || fail "log: $(cat pjrun.out)"

rm -f n calls bin/sbatch
# A failing stand-in, executable like the first (execvp passes over a file it cannot execute and
# would run a real sbatch further along PATH); it leaves a mark so the check knows it ran.
cat >bin/sbatch <<'EOF'
#!/bin/sh
echo "failing stand-in: $*" >>"$FAKE_DIR/calls"
echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
exit 1
EOF
chmod +x bin/sbatch
PATH="$STANDIN_PATH" "$MECHIR" submit --scheduler slurm --time 00:20:00 -- --model m --input i.tsv \
  --out fails >fails.out 2>fails.err
rc=$?
[ $rc -eq 1 ] && grep -q "sbatch failed (exit status 1)" fails.err && ok "sbatch failure: exit 1: $(tail -n 1 fails.err)" ||
  fail "sbatch failure: exit $rc: $(cat fails.err)"
grep -qx "failing stand-in: --parsable $TMP/fails/mechir-slurm.sh" calls 2>/dev/null &&
  ok "sbatch failure: the failing stand-in ran, not an sbatch further along PATH" ||
  fail "sbatch failure: the failing stand-in did not run (calls: $(cat calls 2>/dev/null))"
PATH=/nonexistent "$MECHIR" submit --scheduler slurm --time 00:20:00 -- --model m --input i.tsv \
  --out nosb >nosb.out 2>nosb.err
rc=$?
[ $rc -eq 1 ] && grep -q "cannot run sbatch" nosb.err && ok "no sbatch: exit 1: $(cat nosb.err)" ||
  fail "no sbatch: exit $rc: $(cat nosb.err)"

echo "== --out locked by a run: submit writes nothing there =="
# A stand-in holder of OUT/.mechir.lock (flock from util-linux), as a running `mechir run` holds
# it: its pid and host in the file, the lock held until it is killed.
mkdir locked
(
  exec 9>>locked/.mechir.lock
  flock -n 9 || exit 1
  printf '%s %s\n' "$BASHPID" "$(hostname)" >locked/.mechir.lock
  exec sleep 120
) &
holder=$!
for _ in $(seq 100); do [ -s locked/.mechir.lock ] && break; sleep 0.1; done
PATH=/nonexistent "$MECHIR" submit --scheduler slurm --time 00:20:00 --shards 2 -- \
  --model "$MODEL" --input pairs.tsv --out locked >locked.out 2>locked.err
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <locked.err)" -eq 1 ] &&
  grep -qF "$TMP/locked is in use by pid $holder on host $(hostname)" locked.err &&
  ok "a locked --out: exit 1: $(cat locked.err)" || fail "a locked --out: exit $rc: $(cat locked.err)"
[ "$(ls -A locked)" = ".mechir.lock" ] && ok "a locked --out: nothing written there" ||
  fail "a locked --out: written: $(ls -A locked | tr '\n' ' ')"
kill "$holder"
wait "$holder" 2>/dev/null
PATH=/nonexistent "$MECHIR" submit --scheduler slurm --time 00:20:00 -- --model m --input i.tsv \
  --out locked >locked.out 2>locked.err
[ -x locked/mechir-slurm.sh ] && ok "the lock released: the script is written" ||
  fail "the lock released: no script: $(cat locked.err)"

echo "== templates =="
printf '#!/bin/bash\n#SBATCH --time=@TIME@\n@EXTRA_DIRECTIVES@\necho @ARGS@ user@SITE.ORG\n' >t.in
submit tpl --scheduler slurm --time 00:05:00 --template t.in --dry-run -- --model m --input i.tsv --out o
[ $rc -eq 0 ] && [ "$(cat tpl.out)" = "$(printf '#!/bin/bash\n#SBATCH --time=00:05:00\necho run --model m --input i.tsv --out o --resume user@SITE.ORG')" ] &&
  ok "a site template: placeholders filled, an empty placeholder line dropped" || fail "template: $(cat tpl.out tpl.err)"
printf '#!/bin/bash\n#SBATCH --time=@TIME@\n#SBATCH --foo=@NODS@\n' >bad.in
submit badtpl --scheduler slurm --time 00:05:00 --template bad.in --dry-run -- --model m --out o
[ $rc -eq 1 ] && grep -qx "mechir submit: bad.in:3: unknown placeholder @NODS@" badtpl.err &&
  ok "unknown placeholder: $(cat badtpl.err)" || fail "unknown placeholder: exit $rc: $(cat badtpl.err)"
usage_error notpl "--template nope.in: no such file" --scheduler slurm --time 00:05:00 --template nope.in \
  --dry-run -- --model m --out o
[ -s "$ROOT/deploy/slurm.sbatch.in" ] && [ -s "$ROOT/deploy/pbs.qsub.in" ] && ok "templates in deploy/" ||
  fail "templates missing from deploy/"

echo "== usage errors =="
usage_error sched "unknown scheduler 'lsf' (slurm or pbs)" --scheduler lsf --time 01:00:00 -- --model m --out o
usage_error nosched "--scheduler slurm|pbs is required" --time 01:00:00 -- --model m --out o
usage_error noout "the run options have no --out DIR" --scheduler slurm --time 01:00:00 -- --model m --input i.tsv
usage_error nodash "give the run options after '--'" --scheduler slurm --time 01:00:00
usage_error nodash2 "unknown option '--model' (see --help)" --scheduler slurm --time 01:00:00 --model m
usage_error notime "--time HH:MM:SS is required" --scheduler slurm -- --model m --out o
for t in 1:30 01:60:00 1h 01:00:00x 01:5:00 ''; do
  usage_error "time_$t" "--time takes HH:MM:SS (like 01:30:00), got '$t'" --scheduler pbs --time "$t" -- --model m --out o
done
usage_error shorttime "--time 00:00:30 is below one minute" --scheduler slurm --time 00:00:30 -- --model m --out o
usage_error mem "--mem takes a number of MB" --scheduler slurm --time 01:00:00 --mem 4GB -- --model m --out o
usage_error part "--partition 'a b' cannot go into a directive line" --scheduler slurm --time 01:00:00 \
  --partition 'a b' -- --model m --out o
usage_error pbsrq "--requeue is for Slurm" --scheduler pbs --time 01:00:00 --requeue -- --model m --out o
usage_error launcher "--launcher takes srun or mpirun, got 'aprun'" --scheduler slurm --time 01:00:00 \
  --launcher aprun -- --model m --out o
usage_error sigs "--signal-seconds 60 must be below the time limit (60 s)" --scheduler slurm \
  --time 00:01:00 --signal-seconds 60 -- --model m --out o
usage_error nodes "--nodes needs an integer in 1..1048576, got '0'" --scheduler slurm --time 01:00:00 \
  --nodes 0 -- --model m --out o
usage_error unknown "mechir submit: unknown option '--queue' (see --help)" --scheduler slurm --time 01:00:00 --queue x -- --model m --out o
usage_error shardsin "--shards needs --input FILE, or a TREC --run or --qrels" --scheduler slurm \
  --time 01:00:00 --shards 2 -- --model m --out o
usage_error runval "run option --sweep needs a value" --scheduler slurm --time 01:00:00 -- --model m --out o --sweep
usage_error runarg "run option 'extra' is not an option" --scheduler slurm --time 01:00:00 -- --model m extra --out o
printf '{"model": "m", "input": "i.tsv", "out": "from-json"}' >job.json
submit jobfile --scheduler slurm --time 01:00:00 --dry-run -- job.json
has jobfile.out "#SBATCH --output=\"$TMP/from-json/slurm-%j.out\"" "--out read from a job.json"
has jobfile.out 'cmd=(run job.json --resume)' "job.json passed through"
usage_error jobshards "--shards needs the run options on the command line" --scheduler slurm --time 01:00:00 \
  --shards 2 -- job.json
"$MECHIR" submit --help >help.out 2>&1 && grep -q '^usage: mechir submit' help.out && ok "--help" ||
  fail "--help"

echo
if [ $fails -ne 0 ]; then
  echo "$fails checks failed"
  exit 1
fi
echo "all submit checks passed"
