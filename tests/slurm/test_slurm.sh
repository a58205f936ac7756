#!/usr/bin/env bash
# `mechir submit` on a real Slurm: a two-node cluster on one machine, nodeA and nodeB as network
# namespaces joined by a veth pair (10.200.0.1 and .2, host names of their own through unshare
# --uts), slurmctld and nodeA's slurmd in nodeA (where this script re-runs itself, so every
# client command talks to it), nodeB's slurmd in nodeB; munged, every state, spool, log, pid
# file and the munge socket in a temporary directory (namespaces share the file system).
# Case 1: a 2-rank job with srun --mpi=pmix finishes and writes its circuit map (and the same
# with mpirun inside the allocation). Case 3: a 2-node job (4 ranks, srun --mpi=pmix, MPI over
# TCP between the nodes) writes the same map, with ranks on both nodes.
# Case 2: a job with a 1-minute limit gets USR1 before the limit, stops with exit status 3, and
# submitting the same command again resumes it until it is done, with the same circuit.cmap as
# an uninterrupted one-process run. Case 4: the PBS script of `mechir submit --scheduler pbs`, its
# 2-shard -J array and afterok merge, through the Torque commands of slurm-wlm-torque (qsub over
# sbatch): the merged map is the 1-node job's. Installs slurmctld, slurmd, slurm-client,
# slurm-wlm-torque and munge from
# Debian when missing (as root). Skips (77) when they cannot be had; under CI=true that fails.
# Ends only the daemons and processes it started.
# usage: test_slurm.sh PATH/TO/mechir REPO_ROOT
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 MECHIR_BINARY REPO_ROOT" >&2
  exit 2
fi
MECHIR=$(readlink -f "$1")
ROOT=$(readlink -f "$2")
export PATH="$PATH:/usr/sbin:/sbin"
START=$(date +%s)

say() { echo "[$(($(date +%s) - START)) s] $*"; }
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: the Slurm test cannot run here and CI=true does not allow a skip: $*"
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}

# ---- packages -------------------------------------------------------------------------------
missing=0
for c in slurmctld slurmd sinfo squeue sbatch scontrol scancel srun munged qsub; do
  command -v "$c" >/dev/null || missing=1
done
if [ $missing -eq 1 ]; then
  [ "$(id -u)" -eq 0 ] || skip "Slurm is not installed and only root can install it" \
    "(apt-get install slurmctld slurmd slurm-client slurm-wlm-torque munge)"
  say "installing slurmctld slurmd slurm-client slurm-wlm-torque munge"
  # Keep the packages' init scripts from starting daemons we would not own.
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d &&
      policy=/usr/sbin/policy-rc.d
  fi
  log=$(mktemp)
  DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      slurmctld slurmd slurm-client slurm-wlm-torque munge >>"$log" 2>&1
  rc=$?
  [ -n "$policy" ] && rm -f "$policy"
  if [ $rc -ne 0 ]; then
    why=$(tail -n 1 "$log")
    rm -f "$log"
    skip "apt-get install slurmctld slurmd slurm-client slurm-wlm-torque munge failed: $why"
  fi
  rm -f "$log"
fi
[ "$(id -u)" -eq 0 ] || skip "slurmctld, slurmd and munged are run as root here (SlurmUser=root)"
id munge >/dev/null 2>&1 || skip "no user 'munge' (the munge package creates it)"

# ---- the two nodes: this script again, inside nodeA ------------------------------------------
# Outside: make the namespaces (names unique to this run) and the link, run the rest in nodeA,
# and remove them after (killing whatever is left in them: only this test's processes).
if [ -z "${MCH_SLURM_NODEB:-}" ]; then
  command -v ip >/dev/null && command -v unshare >/dev/null ||
    skip "no ip or unshare command (apt-get install iproute2 util-linux)"
  tag=$$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  NSA=mch-slurmA-$tag
  NSB=mch-slurmB-$tag
  ns_cleanup() {
    for ns in $NSA $NSB; do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    sleep 0.2
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
  }
  trap ns_cleanup EXIT
  trap 'exit 1' HUP INT TERM
  ip netns add "$NSA" 2>"/tmp/mch_ns.$$" || { why=$(cat "/tmp/mch_ns.$$"); rm -f "/tmp/mch_ns.$$"; skip "ip netns add failed: $why"; }
  rm -f "/tmp/mch_ns.$$"
  ip netns add "$NSB" && ip link add "sva$tag" type veth peer name "svb$tag" &&
    ip link set "sva$tag" netns "$NSA" && ip link set "svb$tag" netns "$NSB" &&
    ip -n "$NSA" addr add 10.200.0.1/24 dev "sva$tag" && ip -n "$NSB" addr add 10.200.0.2/24 dev "svb$tag" &&
    ip -n "$NSA" link set "sva$tag" up && ip -n "$NSB" link set "svb$tag" up &&
    ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up || { echo "FAIL: cannot set up the namespaces"; exit 1; }
  # ip netns exec mounts a sysfs of the namespace, without the cgroup file systems slurmd needs:
  # the host's are mounted again inside (each namespace has a mount namespace of its own).
  MCH_SLURM_CGROUPS=$(awk '$2 ~ "^/sys/fs/cgroup" { print $3 " " $2 " " $4 }' /proc/self/mounts) \
    MCH_SLURM_NODEB=$NSB ip netns exec "$NSA" unshare --uts bash -c 'hostname nodeA && exec bash "$@"' \
    bash "$0" "$@"
  exit $?
fi
NSB=$MCH_SLURM_NODEB
# remount_cgroups: the host's cgroup mounts, in this mount namespace (exported for nodeB's).
remount_cgroups() {
  while read -r type dir opts; do
    [ -n "$type" ] || continue
    mkdir -p "$dir" 2>/dev/null
    mount -t "$type" -o "$opts" "$type" "$dir" || return 1
  done <<<"$MCH_SLURM_CGROUPS"
}
export -f remount_cgroups
export MCH_SLURM_CGROUPS
remount_cgroups || { echo "FAIL: cannot mount the cgroup file systems in nodeA"; exit 1; }

# ---- the cluster ----------------------------------------------------------------------------
# In /tmp itself: munged refuses a socket directory under a parent that others may write to
# (the sticky /tmp is fine) and it runs as munge, so the directory must be traversable.
T=$(mktemp -d /tmp/mch_slurm.XXXXXX) || exit 1
chmod 755 "$T"
M=$T/munge
mkdir -p "$M" "$T/state" "$T/spool" "$T/log"
chown munge:munge "$M"
chmod 755 "$M"
REF_PID=
STARTED_SLURM=0

pid_of() { cat "$1" 2>/dev/null; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
# stop_pid PID: TERM, up to 10 s to go, then KILL.
stop_pid() {
  alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 100); do alive "$1" || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}

dump_logs() {
  for f in "$T"/log/slurmctld.log "$T"/log/slurmd-node[AB].log "$M"/munged.log; do
    [ -f "$f" ] && { echo "--- last lines of $f"; tail -n 15 "$f"; }
  done
}

cleanup() {
  rc=$?
  if alive "$REF_PID"; then kill -KILL "$REF_PID" 2>/dev/null; fi
  if [ $STARTED_SLURM -eq 1 ]; then
    ids=$(squeue -h -o %i 2>/dev/null)
    if [ -n "$ids" ]; then
      scancel $ids 2>/dev/null
      for _ in $(seq 30); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
    fi
    scontrol shutdown >/dev/null 2>&1
  fi
  for f in "$T/slurmctld.pid" "$T/slurmd-nodeA.pid" "$T/slurmd-nodeB.pid" "$M/munged.pid"; do
    p=$(pid_of "$f")
    if alive "$p"; then
      for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done
      stop_pid "$p"
    fi
  done
  [ $rc -ne 0 ] && [ $rc -ne 77 ] && dump_logs
  umount "$T/tmpfs" 2>/dev/null
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
  echo "FAIL: $*"
  exit 1
}
ok() { echo "ok: $*"; }

KEY=/etc/munge/munge.key
if [ ! -s "$KEY" ]; then
  KEY=$M/munge.key
  mungekey -c -k "$KEY" 2>/dev/null || dd if=/dev/urandom of="$KEY" bs=1024 count=1 2>/dev/null
  chown munge:munge "$KEY"
  chmod 400 "$KEY"
fi
runuser -u munge -- munged --key-file="$KEY" -S "$M/munge.socket" --pid-file="$M/munged.pid" \
  --log-file="$M/munged.log" --seed-file="$M/munged.seed" ||
  fail "munged did not start: $(tail -n 2 "$M/munged.log" 2>/dev/null)"
for _ in $(seq 50); do [ -S "$M/munge.socket" ] && break; sleep 0.1; done
echo x | munge -S "$M/munge.socket" | unmunge -S "$M/munge.socket" >/dev/null ||
  fail "munge credentials do not round-trip through $M/munge.socket"
ok "munged runs as munge on $M/munge.socket"

mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) - 1024 }' /proc/meminfo)
port=$((20000 + ($$ % 4000) * 2))
# A job id range of its own, so the PMIx directories of a test running beside another never collide.
first_job_id=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d " ") % 50000 + 1000 ))
export SLURM_CONF=$T/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=mechirtest
SlurmctldHost=nodeA(10.200.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$M/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
EnforcePartLimits=ALL
MpiDefault=pmix
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool/%n
TmpFS=$T/tmpfs
FirstJobId=$first_job_id
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd-%n.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd-%n.log
NodeName=nodeA NodeAddr=10.200.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
NodeName=nodeB NodeAddr=10.200.0.2 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=nodeA,nodeB Default=YES MaxTime=INFINITE State=UP
EOF
# Nothing of an enclosing Slurm job may leak into ours.
# TmpFS (where the pmix plugin makes a directory per step) is local to each node, as on a
# cluster: a directory of each node's own, bind-mounted in its mount namespace.
mkdir -p "$T/tmpfs" "$T/tmpfs-nodeA" "$T/tmpfs-nodeB"
mount --bind "$T/tmpfs-nodeA" "$T/tmpfs" || fail "cannot bind-mount nodeA's TmpFS"
for v in $(compgen -e | grep '^SLURM_'); do [ "$v" = SLURM_CONF ] || unset "$v"; done

STARTED_SLURM=1
slurmctld -c || fail "slurmctld did not start"
mkdir -p "$T/spool/nodeA" "$T/spool/nodeB"
slurmd -N nodeA || fail "slurmd -N nodeA did not start"
ip netns exec "$NSB" unshare --uts bash -c \
  "remount_cgroups && mount --bind '$T/tmpfs-nodeB' '$T/tmpfs' && hostname nodeB && exec slurmd -N nodeB" ||
  fail "slurmd -N nodeB did not start in $NSB"
for _ in $(seq 60); do
  [ "$(sinfo -h -o %T 2>/dev/null | sort -u)" = idle ] && [ "$(sinfo -h -o %D)" = 2 ] && break
  sleep 0.5
done
[ "$(sinfo -h -o %T 2>/dev/null | sort -u)" = idle ] ||
  fail "the nodes are not idle after 30 s: $(sinfo -N 2>&1 | tail -n 2)"
ok "slurmctld and two slurmd up, nodeA and nodeB idle ($(nproc) CPUs, ${mem_mb} MB each)"

LAUNCH=(--launcher srun)
if ! srun --mpi=list 2>&1 | grep -qw pmix; then
  echo "note: srun --mpi=list has no pmix ($(srun --mpi=list 2>&1 | tr '\n' ' ')); using mpirun"
  LAUNCH=(--launcher mpirun)
fi

# Shared memory within a node, TCP over the veth link between them.
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_tcp_if_include=10.200.0.0/24 OMPI_MCA_oob_tcp_if_include=10.200.0.0/24
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MODEL=$ROOT/examples/demo-ce
BIG=(--model "$MODEL" --input "$ROOT/examples/demo-200.tsv" --sweep heads,blocks --max-len 96)

# The uninterrupted one-process reference of case 2, in the background meanwhile.
"$MECHIR" run "${BIG[@]}" --out "$T/ref" >"$T/ref.log" 2>&1 &
REF_PID=$!

# wait_job ID SECONDS: until the job leaves the queue; then $STATE and $EXIT from scontrol (the
# job's record stays MinJobAge, 300 s; sacct needs accounting, which is off).
wait_job() {
  local deadline=$(($(date +%s) + $2))
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "job $1 still queued or running after $2 s: $(squeue -j "$1")"
    sleep 1
  done
  local info
  info=$(scontrol show job "$1" 2>/dev/null)
  STATE=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$info" | head -n 1)
  EXIT=$(sed -n 's/.*[^a-zA-Z]ExitCode=\([0-9:]*\).*/\1/p' <<<"$info" | head -n 1)
}

# show FILE: indented, for failure reports.
show() { sed 's/^/    | /' "$1"; }

echo "== case 1: 16 pairs, heads, 2 ranks (${LAUNCH[1]}) =="
head -n 16 "$ROOT/examples/demo-200.tsv" >"$T/pairs16.tsv"
t=$(date +%s)
id=$("$MECHIR" submit --scheduler slurm --nodes 1 --ranks-per-node 2 --time 00:10:00 "${LAUNCH[@]}" \
  -- --model "$MODEL" --input "$T/pairs16.tsv" --sweep heads --max-len 64 --out "$T/out" 2>"$T/submit1.err") ||
  { show "$T/submit1.err"; fail "mechir submit failed"; }
[[ $id =~ ^[0-9]+$ ]] || fail "mechir submit printed '$id', not a job id"
wait_job "$id" 180
logf=$T/out/slurm-$id.out
[ "$STATE" = COMPLETED ] && [ "$EXIT" = 0:0 ] ||
  { show "$logf"; fail "job $id: JobState=$STATE ExitCode=$EXIT, want COMPLETED 0:0"; }
[ -s "$T/out/circuit.json" ] && [ -s "$T/out/circuit.cmap" ] || { show "$logf"; fail "no circuit.json/cmap in $T/out"; }
grep -q '16 pairs: 16 used' "$logf" || { show "$logf"; fail "the job log does not report 16 used pairs"; }
grep -q '; 2 ranks$' "$logf" || { show "$logf"; fail "the run did not have 2 ranks"; }
[ "${LAUNCH[1]}" != srun ] || grep -q 'srun --mpi=pmix' "$logf" || { show "$logf"; fail "not launched with srun --mpi=pmix"; }
ok "job $id COMPLETED (exit 0:0) in $(($(date +%s) - t)) s: 2 ranks, circuit.json written"

echo "== case 1b: the same with mpirun inside the allocation (--launcher mpirun) =="
t=$(date +%s)
id=$("$MECHIR" submit --scheduler slurm --nodes 1 --ranks-per-node 2 --time 00:10:00 --launcher mpirun \
  -- --model "$MODEL" --input "$T/pairs16.tsv" --sweep heads --max-len 64 --out "$T/out-mpirun" 2>"$T/submit1b.err") ||
  { show "$T/submit1b.err"; fail "mechir submit --launcher mpirun failed"; }
wait_job "$id" 180
logf=$T/out-mpirun/slurm-$id.out
[ "$STATE" = COMPLETED ] && [ "$EXIT" = 0:0 ] && grep -q '; 2 ranks$' "$logf" && grep -q ' mpirun ' "$logf" ||
  { show "$logf"; fail "job $id (mpirun): JobState=$STATE ExitCode=$EXIT, want COMPLETED 0:0 with 2 ranks"; }
cmp -s "$T/out/circuit.cmap" "$T/out-mpirun/circuit.cmap" || fail "srun and mpirun jobs gave different maps"
ok "job $id COMPLETED in $(($(date +%s) - t)) s with mpirun: 2 ranks, the same circuit.cmap as with srun"

echo "== case 3: 2 nodes x 2 ranks (${LAUNCH[1]}), MPI over TCP between nodeA and nodeB =="
t=$(date +%s)
id=$("$MECHIR" submit --scheduler slurm --nodes 2 --ranks-per-node 2 --time 00:10:00 "${LAUNCH[@]}" \
  -- --model "$MODEL" --input "$T/pairs16.tsv" --sweep heads --max-len 64 --out "$T/out2n" 2>"$T/submit3.err") ||
  { show "$T/submit3.err"; fail "mechir submit --nodes 2 failed"; }
grep -qx '#SBATCH --nodes=2' "$T/out2n/mechir-slurm.sh" || fail "the script does not ask for 2 nodes"
wait_job "$id" 240
logf=$T/out2n/slurm-$id.out
[ "$STATE" = COMPLETED ] && [ "$EXIT" = 0:0 ] && grep -q '; 4 ranks$' "$logf" ||
  { show "$logf"; fail "job $id (2 nodes): JobState=$STATE ExitCode=$EXIT, want COMPLETED 0:0 with 4 ranks"; }
[ "${LAUNCH[1]}" != srun ] || grep -q 'srun --mpi=pmix' "$logf" || { show "$logf"; fail "not launched with srun --mpi=pmix"; }
hosts=$(grep -o '"hosts":\[[^]]*\]' "$T/out2n/run.json")
for n in nodeA nodeB; do
  [ "$(grep -o "\"$n\"" <<<"$hosts" | wc -l)" -eq 2 ] || { show "$T/out2n/run.json"; fail "run.json $hosts: want 2 ranks on $n"; }
done
cmp -s "$T/out/circuit.cmap" "$T/out2n/circuit.cmap" || fail "the 2-node job and the 1-node job gave different maps"
ok "job $id COMPLETED in $(($(date +%s) - t)) s on 2 nodes ($hosts): the 1-node job's circuit.cmap"

echo "== case 4: PBS through slurm-wlm-torque's qsub: 2 shards as a -J array, afterok merge =="
# qsub (a Perl wrapper) turns its own command line into sbatch's (-W depend=afterok:ID becomes
# --dependency, and it adds -o/-e NAME.o%A.%a in the current directory); sbatch itself reads
# the script's #PBS lines (-N, -l select/walltime, -J). Slurm sets no PBS_* variable: the script
# falls back to SLURM_ARRAY_TASK_ID and a node file of the allocation.
t=$(date +%s)
mkdir -p "$T/pbs-cwd"
ids=$(cd "$T/pbs-cwd" && "$MECHIR" submit --scheduler pbs --nodes 1 --ranks-per-node 2 --time 00:10:00 --shards 2 \
  -- --model "$MODEL" --input "$T/pairs16.tsv" --sweep heads --max-len 64 --out "$T/pbs" 2>"$T/submit4.err") ||
  { show "$T/submit4.err"; fail "mechir submit --scheduler pbs --shards 2 failed"; }
read -r array merge rest <<<"$(echo $ids)"
[[ $array =~ ^[0-9]+$ && $merge =~ ^[0-9]+$ && -z $rest ]] ||
  { show "$T/submit4.err"; fail "mechir submit printed '$ids', want an array job id and a merge job id"; }
grep -qx '#PBS -J 0-1' "$T/pbs/mechir-pbs.sh" || fail "the PBS script is not a -J array of 2"
dep=$(scontrol show job "$merge" 2>/dev/null | grep -o 'Dependency=[^ ]*')
case $dep in *afterok:${array}*) ;; *) fail "the merge job $merge has '$dep', want afterok:$array" ;; esac
info=$(scontrol show job "$array" 2>/dev/null)
grep -q "ArrayJobId=$array " <<<"$info" || fail "job $array is not a job array (sbatch did not read #PBS -J): $info"
grep -q 'TimeLimit=00:10:00' <<<"$info" || fail "job $array did not get the #PBS -l walltime: $info"
# What sbatch made of the other #PBS lines, for the record (docs/deploy.md).
got=$(grep -o -E '(JobName|NumNodes|NumCPUs|NumTasks|CPUs/Task|StdOut|StdErr)=[^ ]*' <<<"$info" | sort -u | tr '\n' ' ')
echo "note: array job $array: $got"
pbs_logs() { for f in "$T"/pbs-cwd/*; do [ -f "$f" ] && { echo "  $f:"; show "$f"; }; done; }
wait_job "$array" 600
states=$(scontrol show job "$array" 2>/dev/null | grep -o ' JobState=[A-Z_]*' | sort | uniq -c | tr -s ' \n' ' ')
[ "$states" = " 2 JobState=COMPLETED " ] ||
  { pbs_logs; fail "PBS array $array:$states, want its 2 tasks COMPLETED"; }
wait_job "$merge" 300
[ "$STATE" = COMPLETED ] && [ "$EXIT" = 0:0 ] ||
  { pbs_logs; fail "PBS merge job $merge: JobState=$STATE ExitCode=$EXIT, want COMPLETED 0:0"; }
# qsub names the logs .o%A/.e%A without a task suffix (it adds .%a only for a -J on its own
# command line): the two tasks share them.
cat "$T"/pbs-cwd/mechir-pbs.sh.[oe]"$array" >"$T/pbs-tasks.log" 2>/dev/null
for i in 0 1; do
  grep -q " mpirun -np 2 --hostfile .* --input $T/pbs/shard-$i/input.tsv " "$T/pbs-tasks.log" ||
    { pbs_logs; fail "array task $i: no mpirun -np 2 over a node file on shard-$i in $T/pbs-cwd/mechir-pbs.sh.[oe]$array"; }
done
[ "$(grep -c '; 2 ranks$' "$T/pbs-tasks.log")" -eq 2 ] || { pbs_logs; fail "the array tasks did not both run 2 ranks"; }
[ -s "$T/pbs/circuit.cmap" ] || { pbs_logs; fail "the PBS merge job wrote no $T/pbs/circuit.cmap"; }
"$MECHIR" report "$T/pbs/circuit.cmap" --format json >"$T/pbs.json" 2>"$T/pbs-report.err" ||
  { show "$T/pbs-report.err"; fail "mechir report of the merged PBS map failed"; }
/usr/bin/python3 "$ROOT/tests/cli/stats_check.py" --same "$T/pbs.json" "$T/out/circuit.json" >"$T/pbs-same.txt" 2>&1 ||
  { show "$T/pbs-same.txt"; fail "the merged PBS shards differ from the 1-node Slurm job's map"; }
ok "PBS array $array (2 shards, 2 ranks each) and afterok merge $merge COMPLETED in $(($(date +%s) - t)) s: the 1-node job's map ($(tail -n 1 "$T/pbs-same.txt"))"

echo "== case 2: 200 pairs, heads+blocks, 1 worker, a 1-minute limit; resubmit until done =="
t=$(date +%s)
interrupted=0
for attempt in $(seq 20); do # 2 to 5 on an idle machine, about 15 under a load near 7
  ta=$(date +%s)
  id=$("$MECHIR" submit --scheduler slurm --ranks-per-node 2 --time 00:01:00 "${LAUNCH[@]}" \
    -- "${BIG[@]}" --out "$T/big" 2>"$T/submit2.err") || { show "$T/submit2.err"; fail "mechir submit failed"; }
  [ $attempt -gt 1 ] || grep -qx '#SBATCH --signal=B:USR1@20' "$T/big/mechir-slurm.sh" ||
    fail "the script does not ask for USR1 20 s before a 1-minute limit"
  wait_job "$id" 240
  logf=$T/big/slurm-$id.out
  done_before=$(sed -n 's/.*; \([0-9][0-9]*\) already done;.*/\1/p' "$logf" | head -n 1)
  if [ $attempt -gt 1 ] && ! [ "${done_before:-0}" -gt 0 ]; then
    show "$logf"
    fail "attempt $attempt did not resume (already done: '${done_before}')"
  fi
  if [ "$STATE" = COMPLETED ] && [ "$EXIT" = 0:0 ]; then
    ok "attempt $attempt: job $id COMPLETED after $(($(date +%s) - ta)) s (resumed with $done_before pairs done)"
    break
  fi
  if [ "$EXIT" = 3:0 ] && grep -q 'stopped by signal 10 after the units in flight' "$logf" &&
    grep -q 'mechir: SIGUSR1 received' "$logf"; then
    interrupted=$((interrupted + 1))
    [ ! -e "$T/big/circuit.cmap" ] || fail "the interrupted job wrote circuit.cmap"
    ok "attempt $attempt: job $id got USR1 before its limit, stopped with exit 3 after $(($(date +%s) - ta)) s ($(grep -o '[0-9]* of [0-9]* pairs are journaled' "$logf"))"
    continue
  fi
  show "$logf"
  fail "job $id: JobState=$STATE ExitCode=$EXIT, want COMPLETED 0:0 or an exit 3 after USR1"
done
[ "$STATE" = COMPLETED ] || fail "not done after $attempt submissions"
[ $interrupted -ge 1 ] || fail "the first job finished inside its 1-minute limit: give it more pairs"
say "case 2: $attempt submissions, $interrupted interrupted, $(($(date +%s) - t)) s"

wait "$REF_PID"
rc=$?
REF_PID=
[ $rc -eq 0 ] || { show "$T/ref.log"; fail "the reference run failed (exit $rc)"; }
cmp -s "$T/ref/circuit.cmap" "$T/big/circuit.cmap" ||
  fail "circuit.cmap after $interrupted interruptions differs from the uninterrupted run: $(cmp "$T/ref/circuit.cmap" "$T/big/circuit.cmap" 2>&1)"
ok "resumed circuit.cmap is byte-identical to the uninterrupted one-process run's"
say "all Slurm checks passed"
