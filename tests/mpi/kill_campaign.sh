#!/bin/sh
# The kill -9 campaign: KILL_TRIALS trials (default 3; the campaign recorded in
# docs/RELIABILITY.md ran 10 or more), each SIGKILLing one process of an `mpirun -np 3 mechir run`
# and resuming it (`mpirun -np 3 ... --resume`, up to 3 times) until it completes; the resumed
# circuit.cmap, circuit.json and pairs.jsonl.zst must equal an uninterrupted reference run byte
# for byte, with no temp file (NAME.tmp.PID) left in --out. Prints "x/N bit-identical"; exits 1
# if x < N.
#
# The job: the golden patching fixture's three --position start cases
# (tests/data/patching/demo-tfc1.json), each REPEAT times under qids c0, c00, c000, ...
# (interleaved, so neighbouring pairs differ; run_golden.py reads every "c" + digits qid as its
# case number), --sweep heads,blocks, one pair a unit. The reference run is itself checked
# against the fixture (an independent float64 reference) by tests/cli/run_golden.py, together
# with a one-process run of the three --position end cases that check needs: its circuit.json,
# written from the decoded circuit.cmap bytes, and its pairs must hold the fixture's values.
#
# Each trial draws, from an LCG seeded with a CRC of "SEED-TRIAL" (the seed is printed;
# KILL_SEED=S replays the campaign's choices):
# the victim (rank 0, a worker rank, or mpirun itself) and the moment. Two trials in three are
# killed at a time uniform in [0, D) after the start, D being the reference run's wall time
# (a rank victim is picked as soon as the ranks exist, so it is killed no earlier than that; a
# run that ended first is reported as a missed kill and still resumed and compared). Every third trial aims at the final writes
# (after the journal holds every pair: pairs.jsonl.zst, circuit.cmap, circuit.json and run.json,
# each written to NAME.tmp.PID and renamed; see coordinator/run.c finish and reduce.c), hit
# exactly with strace (rank 0 of an MPMD mpirun runs under strace -f):
#   - rank 0: `-e inject=rename:signal=KILL:when=K` kills it on entry to its K-th rename (K from
#     2 to 5; the 1st is job.json's), before the rename: NAME.tmp.PID must be left behind;
#   - a worker or mpirun: `-e inject=rename:delay_enter=...:when=K` holds rank 0 on entry to its
#     K-th rename; once NAME.tmp.PID exists the victim is killed.
# The resume of a final-writes trial must find every pair already done (nothing recomputed).
# Before the trials, one fixed case: rank 0 killed on its first write to journal.bin (strace -P),
# which leaves the journal empty; the resume must start the job afresh and give the same bytes.
# Between the kill and the resume every process of the killed run is gone (Open MPI ends the
# ranks of a killed mpirun; any left after 30 s is reported and killed, as in
# fault_mpirun_sigkill.sh), so nothing writes to --out behind the resume. An mpirun that is
# still running 60 s after its last rank ended (Open MPI 4.1 hangs so when a rank is killed
# while it connects to mpirun) is killed, and such hangs are counted and printed.
#
# Needs python3 (standard library), the zstd CLI and strace (Debian: strace).
# usage: kill_campaign.sh PATH/TO/mechir REPO_ROOT REPEAT
#   KILL_TRIALS=N (default 3), KILL_SEED=S (default: drawn from /dev/urandom, printed)
set -u
. "$(dirname "$0")/lib.sh"
mpi_setup "$@"
cd "$TMP" || exit 1
REPEAT=$PAIRS
TRIALS=${KILL_TRIALS:-3}
case $TRIALS in '' | *[!0-9]*) fail "KILL_TRIALS=$TRIALS is not a number" ;; esac
[ "$TRIALS" -ge 1 ] || fail "KILL_TRIALS must be at least 1"
SEED=${KILL_SEED:-$(od -An -N3 -tu4 /dev/urandom | tr -d ' ')}
case $SEED in '' | *[!0-9]* | ??????????*) fail "KILL_SEED=$SEED is not a number of 1 to 9 digits" ;; esac
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || fail "python3 is missing (deploy/install-deps.sh installs it)"
STRACE=$(command -v strace) || fail "strace is missing (apt-get install strace; deploy/install-deps.sh)"
[ -r /proc/$$/task/$$/children ] || fail "/proc/PID/task/TID/children is missing (a kernel without CONFIG_PROC_CHILDREN)"
FIXTURE=$ROOT/tests/data/patching/demo-tfc1.json
OUTPUTS="circuit.cmap circuit.json pairs.jsonl.zst"
# The final writes in the order rank 0 renames them (its 1st rename is job.json's, at the start).
FINAL_NAMES="pairs.jsonl.zst circuit.cmap circuit.json run.json"

now_ms() {
    date +%s%3N
}

# rand N: $R uniform in 0..N-1 (N < 2^30), from the LCG state $rng.
rand() {
    rng=$(((rng * 1103515245 + 12345) % 2147483648))
    hi=$((rng / 65536))
    rng=$(((rng * 1103515245 + 12345) % 2147483648))
    R=$(((hi * 32768 + rng / 65536) % $1))
}

# descendants PID: sets $DESC to the live processes below PID (children and grandchildren),
# from the kernel's /proc/PID/task/TID/children lists with shell builtins only: lib.sh's
# children forks a cat for every process on the machine, seconds on a loaded one, too slow to aim
# a kill.
descendants() {
    DESC=
    for f in /proc/"$1"/task/*/children; do
        kids=
        { read -r kids <"$f"; } 2>/dev/null
        for c in $kids; do
            DESC="$DESC $c"
            for g in /proc/"$c"/task/*/children; do
                gk=
                { read -r gk <"$g"; } 2>/dev/null
                DESC="$DESC $gk"
            done
        done
    done
}

# rank_pid RANK_SET: a process of the background mpirun whose rank is in RANK_SET (0, or
# "worker": a random rank from 1), waiting up to 60 s for the ranks to start; sets $victim.
rank_pid() {
    deadline=$(($(date +%s) + 60))
    victim=
    while [ -z "$victim" ]; do
        alive "$BG_PID" || return 1
        cands=
        descendants "$BG_PID"
        for p in $DESC; do
            rk=$(rank_of "$p" 2>/dev/null)
            [ -n "$rk" ] || continue
            # Under strace both strace and mechir carry rank 0's environment: take the mechir.
            [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$STRACE" ] && continue
            case $1:$rk in 0:0 | worker:[1-9]*) cands="$cands $p" ;; esac
        done
        if [ -n "$cands" ]; then
            set -- $cands
            rand $#
            shift $R
            victim=$1
            return 0
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "no rank $1 among mpirun's processes after 60 s"
        sleep 0.05
    done
}

# start_time PID: sets $START to the process's start time (field 22 of /proc/PID/stat), or to
# nothing when it is gone (builtins only).
start_time() {
    START=
    st=
    { read -r st <"/proc/$1/stat"; } 2>/dev/null
    [ -n "$st" ] || return 0
    set -- ${st##*) }
    shift 19
    START=$1
}

# track: adds the live processes below the background mpirun to $TRACKED (PID:START_TIME, so a
# PID reused later by another process is never taken for ours) and $KILL_LIST.
track() {
    descendants "$BG_PID"
    for p in $DESC; do
        case " $KILL_LIST " in *" $p "*) continue ;; esac
        start_time "$p"
        [ -n "$START" ] || continue
        TRACKED="$TRACKED $p:$START"
        KILL_LIST="$KILL_LIST $p"
    done
}

# reap: waits up to 30 s for the tracked processes of a killed run to end, then kills those
# left (reported: Open MPI left them running).
reap() {
    t0=$(date +%s)
    while :; do
        left=
        for e in $TRACKED; do
            p=${e%%:*}
            start_time "$p"
            if alive "$p" && [ "$START" = "${e#*:}" ]; then left="$left $p"; fi
        done
        [ -n "$left" ] && [ $(($(date +%s) - t0)) -lt 30 ] || break
        sleep 0.2
    done
    if [ -n "$left" ]; then
        echo "   NOTE: processes still running 30 s after the kill:$left; killing them"
        kill -KILL $left 2>/dev/null
        sleep 1
    fi
    TRACKED=
    KILL_LIST=
}

# temp_files DIR: the NAME.tmp.PID files in DIR, by name.
temp_files() {
    for f in "$1"/*.tmp.*; do [ -e "$f" ] && printf '%s ' "${f##*/}"; done
}

# resume_check OUT ALL: resumes OUT with mpirun -np 3 until it exits 0 (at most 3 times); sets
# $bad to what is wrong (nothing when the outputs equal the reference's byte for byte, no temp
# file is left and, with ALL 1, the resume found every pair already done).
resume_check() {
    o=$1
    r=0
    ok=
    while [ $r -lt 3 ]; do
        r=$((r + 1))
        run_fg 900 $o.resume$r "$MPIRUN" -np 3 "$MECHIR" run $JOB --out $o --resume
        [ $rc -eq 0 ] && { ok=1; break; }
        echo "   resume $r: exit status $rc:"
        show $o.resume$r.err
    done
    bad=
    if [ -z "$ok" ]; then
        bad="no resume completed"
        return
    fi
    n=$(already_done $o.resume$r.err)
    echo "   resume $r completed: ${n:-?} of $PAIRS pairs already done"
    if [ "$2" -eq 1 ] && [ "$n" != "$PAIRS" ]; then
        bad="the resume after a final-writes kill found ${n:-?} pairs done, want all $PAIRS"
    fi
    for f in $OUTPUTS; do
        if [ ! -f $o/$f ]; then
            bad="$bad${bad:+; }$f missing"
        elif ! cmp -s ref/$f $o/$f; then
            bad="$bad${bad:+; }$f differs ($(cmp ref/$f $o/$f 2>&1 | head -n 1))"
        fi
    done
    [ ! -e $o/pairs.jsonl ] || bad="$bad${bad:+; }a pairs.jsonl beside pairs.jsonl.zst"
    tmp=$(temp_files $o)
    [ -z "$tmp" ] || bad="$bad${bad:+; }temp files left: $tmp"
}

# wait_killed: waits for the background mpirun after a kill, tracking its processes; $rc is its
# status. Open MPI 4.1's mpirun can hang when a rank dies while it connects to mpirun's PMIx
# server (seen here: it prints "PMIX ERROR: UNREACHABLE" and its abort messages, then waits
# forever); so once no process below it is alive, mpirun is given 60 s, then killed and the
# hang counted in $hangs (mechir has no process left that could end it). Fails after 900 s.
wait_killed() {
    t_fail=$(($(date +%s) + 900))
    t_hang=$(($(date +%s) + 60))
    while alive "$BG_PID"; do
        track
        descendants "$BG_PID"
        for p in $DESC; do
            if alive "$p"; then
                t_hang=$(($(date +%s) + 60))
                break
            fi
        done
        now=$(date +%s)
        [ "$now" -lt "$t_fail" ] || fail "mpirun still running 900 s after the kill"
        if [ "$now" -ge "$t_hang" ]; then
            echo "   NOTE: mpirun still running 60 s after its last rank ended (the Open MPI hang); killing it"
            kill -KILL "$BG_PID"
            hangs=$((hangs + 1))
            break
        fi
        sleep 0.2
    done
    wait "$BG_PID"
    rc=$?
    BG_PID=
}

# run_traced OUT STRACE_OPTION...: the job in OUT under mpirun, rank 0 under strace with those
# options (an MPMD command line); returns when mpirun has ended (wait_killed).
run_traced() {
    o=$1
    shift
    start_bg $o "$MPIRUN" -np 1 "$STRACE" -f -qq -o /dev/null "$@" \
        "$MECHIR" run $JOB --out $o : -np 2 "$MECHIR" run $JOB --out $o
    TRACKED=
    wait_killed
}

echo "== the job: the fixture's 3 --position start cases, $REPEAT times each ($((3 * REPEAT)) pairs) =="
mkdir golden && "$PY" "$ROOT/tests/cli/run_golden.py" inputs "$FIXTURE" golden ||
    fail "cannot build the fixture's inputs"
awk -F '\t' -v n="$REPEAT" 'BEGIN { OFS = "\t" }
    { line[NR] = $0 }
    END { for (r = 0; r < n; r++) for (i = 1; i <= NR; i++) {
        $0 = line[i]; pad = ""; for (k = 0; k < r; k++) pad = pad "0"
        $1 = "c" pad substr($1, 2); print } }' golden/start.tsv >job.tsv
PAIRS=$(wc -l <job.tsv)
[ "$PAIRS" -eq $((3 * REPEAT)) ] && [ "$PAIRS" -ge 3 ] ||
    fail "job.tsv has $PAIRS pairs, want 3 x $REPEAT (the fixture's start cases)"
JOB="--model $ROOT/examples/demo-ce --input $TMP/job.tsv --perturb inject --position start --max-len 64 --sweep heads,blocks --unit-size 1"

echo "== reference: uninterrupted, mpirun -np 3 =="
t0=$(now_ms)
expect_ok 900 ref "$MPIRUN" -np 3 "$MECHIR" run $JOB --out ref
D=$(($(now_ms) - t0))
for f in $OUTPUTS; do [ -s ref/$f ] || fail "the reference run wrote no $f"; done
ok "reference written in $D ms"
expect_ok 600 gend "$MECHIR" run --model "$ROOT/examples/demo-ce" --input golden/end.tsv \
    --perturb inject --position end --max-len 64 --sweep heads,blocks --out gend
if ! "$PY" "$ROOT/tests/cli/run_golden.py" check "$FIXTURE" "$ROOT/examples/demo-ce/vocab.txt" \
    ref gend >golden.log 2>&1; then
    show golden.log
    fail "the reference run differs from the golden patching fixture"
fi
ok "the reference's pairs and circuit.json equal the golden fixture's ($(grep -c '^ok:' golden.log) checks of run_golden.py)"

hangs=0
# The journal is created, then its header written (one write): a kill between the two left an
# empty journal.bin that every later --resume refused ("not a mechir journal").
echo "== the journal's creation: rank 0 killed on its first write to journal.bin =="
run_traced jc -P "$TMP/jc/journal.bin" -e trace=write -e inject=write:signal=KILL:when=1
[ -f jc/journal.bin ] && [ ! -s jc/journal.bin ] || {
    show jc.err
    fail "jc/journal.bin is not an empty file after the kill (the window was missed)"
}
echo "   mpirun ended with status $rc; jc holds: $(ls jc | tr '\n' ' ')"
reap
resume_check jc 0
[ -z "$bad" ] || fail "after a kill while the journal was created: $bad"
grep -q "jc/journal.bin was empty (a run killed while creating it)" jc.resume$r.err ||
    { show jc.resume$r.err; fail "the resume did not say it found journal.bin empty"; }
ok "killed while creating journal.bin (left empty): the resume gave the reference's bytes"

echo "== $TRIALS trials, seed $SEED (replay: KILL_SEED=$SEED KILL_TRIALS=$TRIALS) =="
good=0
landed=0
n_rank0=0
n_worker=0
n_mpirun=0
i=0
while [ "$i" -lt "$TRIALS" ]; do
    i=$((i + 1))
    o=t$i
    # The trial's LCG state: a CRC of "SEED-i", so neighbouring trials draw unrelated choices.
    rng=$(($(printf '%s-%s' "$SEED" "$i" | cksum | cut -d ' ' -f 1) % 2147483648))
    rand 3
    victims="rank0 worker mpirun"
    set -- $victims
    shift $R
    who=$1
    final=$((i % 3 == 0))
    eval "n_$who=\$((n_$who + 1))"
    kill_at=
    if [ $final -eq 1 ]; then
        rand 4
        K=$((R + 2))
        set -- $FINAL_NAMES
        shift $R
        name=$1
        if [ $who = rank0 ]; then
            inject="inject=rename:signal=KILL:when=$K"
        else
            inject="inject=rename:delay_enter=5000000:when=$K"
        fi
        echo "-- trial $i/$TRIALS: SIGKILL to $who in the final writes (rank 0 at its rename $K, of $name)"
        [ $who = rank0 ] || start_bg $o "$MPIRUN" -np 1 "$STRACE" -f -qq -o /dev/null \
            -e trace=rename -e "$inject" "$MECHIR" run $JOB --out $o : -np 2 "$MECHIR" run $JOB --out $o
    else
        rand "$D"
        kill_at=$R
        echo "-- trial $i/$TRIALS: SIGKILL to $who at $kill_at ms of $D"
        start_bg $o "$MPIRUN" -np 3 "$MECHIR" run $JOB --out $o
    fi
    mpirun_pid=$BG_PID
    t0=$(now_ms)
    TRACKED=
    missed=
    if [ $final -eq 1 ] && [ $who = rank0 ]; then
        run_traced $o -e trace=rename -e "$inject"
        tmp=$(temp_files $o)
        case " $tmp" in
        *" $name.tmp."*) echo "   rank 0 killed on entry to rename $K; left in $o: $tmp" ;;
        *)
            show $o.err
            fail "trial $i: no $name.tmp.PID left in $o after the kill at rename $K (found: $tmp); the window was missed"
            ;;
        esac
    else
        # The victim first (the ranks start within a second), then the wait: little lies
        # between the chosen time and the kill.
        victim=$mpirun_pid
        if [ $who != mpirun ]; then
            case $who in rank0) set -- 0 ;; *) set -- worker ;; esac
            rank_pid "$1" || victim=
            track
        fi
        if [ -n "$kill_at" ]; then
            wait_ms=$((kill_at - ($(now_ms) - t0)))
            [ $wait_ms -le 0 ] || sleep "$((wait_ms / 1000)).$(printf %03d $((wait_ms % 1000)))"
        else
            while [ -z "$(temp_files $o | grep -F "$name.tmp.")" ] && alive "$mpirun_pid"; do
                sleep 0.02
            done
        fi
        track
        if [ -n "$victim" ] && alive "$victim"; then
            at=$(($(now_ms) - t0))
            kill -KILL "$victim"
            echo "   killed $who (pid $victim) at $at ms; in $o: $(ls $o 2>/dev/null | tr '\n' ' ')"
        else
            missed=1
            echo "   MISSED: the run ended before the kill"
        fi
        wait_killed
    fi
    [ -n "$missed" ] || landed=$((landed + 1))
    echo "   mpirun ended with status $rc"
    reap

    resume_check $o $final
    if [ -z "$bad" ]; then
        good=$((good + 1))
        echo "   bit-identical: $OUTPUTS; no temp file left"
        rm -rf $o
    else
        echo "   FAILED trial $i (seed $SEED): $bad"
    fi
done
echo "victims: rank 0 $n_rank0, a worker $n_worker, mpirun $n_mpirun; $((TRIALS / 3)) in the final writes"
[ "$hangs" -eq 0 ] || echo "mpirun hung after $hangs of the $TRIALS kills (Open MPI; killed after 60 s)"
echo "$good/$TRIALS bit-identical ($landed of $TRIALS kills landed while the job ran; seed $SEED)"
[ "$good" -eq "$TRIALS" ] || fail "kill campaign: $((TRIALS - good)) of $TRIALS trials did not resume to the reference's bytes"
echo "PASS: kill_campaign"
