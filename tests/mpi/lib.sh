# Shared setup and helpers of the mpi tests (sourced, POSIX sh). Each test calls
# mpi_setup "$@" first: it checks the arguments and mpirun, sets the Open MPI and sanitizer
# environment, makes $TMP (removed at exit) and $INPUT (the first $PAIRS pairs of the demo data).
# Needs only a POSIX shell, coreutils, grep, sed, awk, cmp and the zstd CLI (pairs.jsonl.zst);
# processes are found through /proc.

mpi_setup() {
    if [ $# -ne 3 ]; then
        echo "usage: $0 MECHIR_BINARY REPO_ROOT PAIRS" >&2
        exit 2
    fi
    MECHIR=$1
    ROOT=$2
    PAIRS=$3
    case $MECHIR in /*) ;; *) MECHIR=$(pwd)/$MECHIR ;; esac # the tests cd into $TMP
    case $ROOT in /*) ;; *) ROOT=$(pwd)/$ROOT ;; esac
    [ -x "$MECHIR" ] || { echo "FAIL: $MECHIR is not an executable"; exit 1; }
    MPIRUN=$(command -v mpirun) || {
        echo "FAIL: mpirun not found: Open MPI is required (apt-get install openmpi-bin)"
        exit 1
    }
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
    export OPENBLAS_NUM_THREADS=1
    # Open MPI's own allocations at exit are not ours. The slow unwinder gives full stacks
    # through Open MPI's libraries, which are built without frame pointers; with the fast one
    # a leak's stack stops in an unnamed frame and no suppression matches.
    export LSAN_OPTIONS="suppressions=$ROOT/tests/mpi/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/mch_mpi.XXXXXX") || exit 1
    case "$ROOT$TMP" in
    *[[:space:]]*)
        rm -rf "$TMP"
        echo "FAIL: the repository path or TMPDIR contains white space, which these tests do not handle"
        exit 1
        ;;
    esac
    trap 'mpi_cleanup' EXIT
    trap 'exit 1' HUP INT TERM
    # The first PAIRS pairs: 40 to 64 tokens under --max-len 64, so units of several lengths.
    INPUT=$TMP/pairs.tsv
    head -n "$PAIRS" "$ROOT/examples/debian-demo-pairs.tsv" >"$INPUT"
    [ "$(wc -l <"$INPUT")" -eq "$PAIRS" ] || fail "cannot take $PAIRS pairs from the demo data"
    JOB="--model $ROOT/examples/demo-ce --input $INPUT --sweep heads,blocks --max-len 64"
    BG_PID=
    KILL_LIST=
}

# Kills what a failed test left running (only processes this test started), then removes $TMP.
mpi_cleanup() {
    for p in $BG_PID $KILL_LIST; do
        if alive "$p"; then kill -KILL "$p" 2>/dev/null; fi
    done
    rm -rf "$TMP"
}

fail() {
    echo "FAIL: $*"
    exit 1
}

ok() {
    echo "ok: $*"
}

# show FILE: a file's lines indented, for failure reports.
show() {
    sed 's/^/    | /' "$1"
}

# run_fg SECONDS OUTPREFIX CMD...: runs CMD with stdout in OUTPREFIX.out and stderr in
# OUTPREFIX.err; a run longer than SECONDS is killed (status 124 or 137). $rc is the status.
run_fg() {
    secs=$1
    pfx=$2
    shift 2
    timeout -k 10 "$secs" "$@" >"$pfx.out" 2>"$pfx.err"
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        show "$pfx.err"
        fail "timed out after $secs s: $*"
    fi
}

# expect_ok SECONDS OUTPREFIX CMD...: run_fg that must exit 0.
expect_ok() {
    run_fg "$@"
    if [ $rc -ne 0 ]; then
        show "$2.err"
        shift 2
        fail "exit status $rc, want 0: $*"
    fi
}

# start_bg OUTPREFIX CMD...: runs CMD in the background; $BG_PID is its process.
start_bg() {
    pfx=$1
    shift
    "$@" >"$pfx.out" 2>"$pfx.err" &
    BG_PID=$!
}

# wait_bg SECONDS: waits for the background command; $rc is its status. Fails (after killing it
# and what it started) when it runs longer than SECONDS.
wait_bg() {
    deadline=$(($(date +%s) + $1))
    while alive "$BG_PID"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            kids=$(children "$BG_PID")
            kill -KILL "$BG_PID" $kids 2>/dev/null
            wait "$BG_PID" 2>/dev/null
            BG_PID=
            fail "still running $1 s after it should have ended"
        fi
        sleep 0.1
    done
    wait "$BG_PID"
    rc=$?
    BG_PID=
}

# alive PID: the process exists and is not a zombie.
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ] && [ -n "$st" ]
}

# children PID: the live processes whose parent is PID.
children() {
    _parent=$1
    for f in /proc/[0-9]*/stat; do
        st=$(cat "$f" 2>/dev/null) || continue
        pid=${st%% *}
        st=${st##*) }
        # st is now "STATE PPID ...".
        state=${st%% *}
        st=${st#* }
        ppid=${st%% *}
        if [ "$ppid" = "$_parent" ] && [ "$state" != Z ]; then printf '%s ' "$pid"; fi
    done
}

# rank_of PID: the MPI rank of an Open MPI process (from its environment), or nothing.
rank_of() {
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'
}

# journal_threshold REFERENCE_JOURNAL FRACTION_PERCENT: the byte size past which a journal of
# the same job holds about that fraction of its records (header: magic, u32 spec length, spec,
# u64 checksum). Past it, even with a torn last record, several records are complete.
journal_threshold() {
    slen=$(od -An -tu4 -j8 -N4 --endian=little "$1" | tr -d ' ')
    hdr=$((8 + 4 + slen + 8))
    total=$(wc -c <"$1")
    echo $((hdr + (total - hdr) * $2 / 100))
}

# wait_journal FILE BYTES SECONDS: waits until FILE has at least BYTES while the background
# command still runs; fails if it ends first or the time runs out.
wait_journal() {
    deadline=$(($(date +%s) + $3))
    while :; do
        size=0
        if [ -f "$1" ]; then size=$(wc -c <"$1"); fi
        [ "$size" -ge "$2" ] && return 0
        alive "$BG_PID" || fail "the run ended before $1 reached $2 bytes (at $size); give it more pairs"
        [ "$(date +%s)" -lt "$deadline" ] || fail "$1 did not reach $2 bytes in $3 s (at $size)"
        sleep 0.05
    done
}

# already_done ERRFILE: N of mechir's "...; N already done; ..." line.
already_done() {
    sed -n 's/.*; \([0-9][0-9]*\) already done;.*/\1/p' "$1" | head -n 1
}

# same_file A B WHAT: A and B are byte-identical.
same_file() {
    [ -f "$1" ] || fail "$1 is missing"
    [ -f "$2" ] || fail "$2 is missing"
    cmp -s "$1" "$2" || fail "$3: $1 and $2 differ ($(cmp "$1" "$2" 2>&1 | head -n 1))"
}

# resume_and_compare OUT REFERENCE_CMAP WHAT CMD...: runs CMD (a --resume of the job in OUT) to
# completion; it must report some pairs already done and end with the reference's circuit.cmap.
resume_and_compare() {
    out=$1
    ref=$2
    what=$3
    shift 3
    expect_ok 300 "$out.resume" "$@"
    n=$(already_done "$out.resume.err")
    [ -n "$n" ] || { show "$out.resume.err"; fail "$what: the resume did not say how many pairs were already done"; }
    [ "$n" -gt 0 ] || { show "$out.resume.err"; fail "$what: the resume found 0 pairs already done"; }
    [ "$n" -lt "$PAIRS" ] || fail "$what: the resume found all $n pairs done; the interruption came too late"
    same_file "$ref" "$out/circuit.cmap" "$what: resumed circuit.cmap vs uninterrupted"
    ok "$what: resume found $n of $PAIRS pairs already done and gave the uninterrupted circuit.cmap"
}
