#!/usr/bin/env bash
# The README's quick start on a fresh minimal Debian 12: debootstraps a minbase bookworm root
# from the host's own apt mirror, copies `git archive HEAD` of this repository to /root/mechir
# in it, and runs there, as root with a clean environment (PATH, HOME, LANG=C.UTF-8, CI if set,
# and NODE_EXTRA_CA_CERTS with a copy of its file if set: a proxy's CA for npm),
# `bash examples/demo.sh` then `bash tests/run.sh`, printing the wall time of each. The
# root gets nothing but what those scripts install, so a package missing from
# deploy/install-deps.sh shows up as a failure here. Not in ctest: it takes tens of minutes.
# Root only (exits 77 otherwise). Uncommitted changes are not tested (git archive HEAD).
#
# usage: tests/fresh-machine.sh [--keep] [--root DIR] [--mirror URL]
#   --keep        keep the root afterwards (also KEEP_ROOT=1); its path is printed
#   --root DIR    use DIR as the root: debootstrap into it if it holds no Debian system yet,
#                 reuse it otherwise (faster reruns, but the packages earlier runs installed
#                 are still there, so a reused root is no longer fresh); DIR is never removed
#   --mirror URL  the Debian mirror (also MIRROR=URL); default: the host's bookworm source in
#                 /etc/apt/sources.list or /etc/apt/sources.list.d/*, else
#                 http://deb.debian.org/debian
# Exit status: 0 when both commands succeed, 1 when either fails, 2 on a usage or setup error,
# 77 when not root. Everything mounted is unmounted on any exit, Ctrl-C included, and the root
# is deleted only when nothing is mounted below it any more.
set -uo pipefail
# One compound command: bash reads it whole before running it, so editing this file (or checking
# out another commit) during a run cannot change what the run does.
{

SUITE=bookworm
FALLBACK_MIRROR=http://deb.debian.org/debian
USER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "fresh-machine: $*" >&2; }
die() {
  say "$*"
  exit 2
}

keep=${KEEP_ROOT:-0}
[ "$keep" = 1 ] || keep=0
root_arg=
mirror=${MIRROR:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root_arg=$2; shift ;;
    --root=*) root_arg=${1#--root=} ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a URL"; mirror=$2; shift ;;
    --mirror=*) mirror=${1#--mirror=} ;;
    -h | --help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-machine: needs root (debootstrap, mount, chroot); skipped" >&2
  exit 77
fi

REPO=$(git -C "$(dirname "$(readlink -f "$0")")" rev-parse --show-toplevel 2>/dev/null) ||
  die "$(dirname "$0") is not inside a git repository"
REV=$(git -C "$REPO" rev-parse --short HEAD) || die "no HEAD in $REPO"

# ---- the host's mirror ----------------------------------------------------------------------
# Prints "URI SUITE" for every enabled 'deb' source of the host, one-line and deb822 formats.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'function flush(   i, j, nu, ns, u, s) {
           if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
             nu = split(uris, u, " "); ns = split(suites, s, " ")
             for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
           }
           types = uris = suites = enabled = ""
         }
         /^[ \t]*#/ { next }
         /^[ \t]*$/ { flush(); next }
         /^[A-Za-z-]+:/ {
           key = tolower($1); sub(/:.*/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
           if (key == "types") types = val; else if (key == "uris") uris = val
           else if (key == "suites") suites = val; else if (key == "enabled") enabled = val
           next
         }
         END { flush() }' "$f"
  done
}
# mirror_for SUITE: the first http(s), ftp or file URI the host uses for SUITE.
mirror_for() {
  host_sources |
    awk -v s="$1" '$2 == s && $1 ~ /^(https?|ftp|file):/ { sub(/\/+$/, "", $1); print $1; exit }'
}
if [ -z "$mirror" ]; then
  mirror=$(mirror_for "$SUITE")
  if [ -z "$mirror" ]; then
    mirror=$FALLBACK_MIRROR
    say "no '$SUITE' source found in the host's apt sources; using $mirror"
  fi
fi
security=$(mirror_for "$SUITE-security")
updates=$(mirror_for "$SUITE-updates")

# ---- the root and its cleanup ---------------------------------------------------------------
ROOT=
own_root=0
self_bind=0 # 1 while the root is bound onto itself (the mounts below)
inner_pid=
bootlog= # debootstrap's log, beside the root; kept only when debootstrap failed

# mounts_below DIR: the mount points at or below DIR, in mount order.
mounts_below() {
  findmnt -rn -o TARGET | awk -v r="$1" '$0 == r || index($0, r "/") == 1'
}
# Ends every process whose root is the chroot (daemons the tests started included): TERM, up to
# 10 s, then KILL. They are all ours: nothing else runs in this root.
kill_inside() {
  local p pids=()
  [ -n "$ROOT" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && pids+=("${p#/proc/}")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  say "ending ${#pids[@]} process(es) still running in $ROOT"
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in $(seq 100); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null
  sleep 0.5
}
# Unmounts everything below the root, deepest (latest) first, whoever mounted it (debootstrap
# mounts /proc and /sys itself and may leave them behind when interrupted).
unmount_all() {
  local m
  [ -n "$ROOT" ] || return 0
  for m in $(mounts_below "$ROOT" | tac); do
    [ "$m" = "$ROOT" ] && continue
    umount "$m" 2>/dev/null || umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
      say "cannot unmount $m"
  done
  # Our bind of the root onto itself, last (a root that was a mount point already stays one).
  if [ $self_bind -eq 1 ]; then
    umount "$ROOT" 2>/dev/null || umount -l "$ROOT" 2>/dev/null || say "cannot unmount $ROOT"
    self_bind=0
  fi
}
cleanup() {
  local rc=$?
  trap '' INT TERM HUP
  # debootstrap or a command in the root, in a session of its own: end the whole process group.
  if [ -n "$inner_pid" ] && kill -0 "$inner_pid" 2>/dev/null; then
    kill -TERM -- "-$inner_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$inner_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$inner_pid" 2>/dev/null
  fi
  kill_inside
  unmount_all
  [ -n "$bootlog" ] && rm -f "$bootlog"
  if [ -n "$ROOT" ]; then
    local left
    left=$(mounts_below "$ROOT" | grep -vx "$ROOT")
    if [ -n "$left" ]; then
      say "still mounted below $ROOT, so it is left in place:"
      echo "$left" >&2
      [ $rc -eq 0 ] && rc=1
    elif [ $own_root -eq 1 ] && [ $keep -eq 0 ]; then
      rm -rf --one-file-system "$ROOT" || say "could not remove all of $ROOT"
    else
      say "the root is kept in $ROOT"
    fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'say "hung up"; exit 129' HUP

if [ -n "$root_arg" ]; then
  mkdir -p "$root_arg" || die "cannot create $root_arg"
  ROOT=$(readlink -f "$root_arg")
else
  ROOT=$(mktemp -d /var/tmp/mechir-fresh.XXXXXX) || die "mktemp failed"
  own_root=1
  # mktemp makes it 0700: the root's / would be closed to _apt, munge and any other user.
  chmod 755 "$ROOT"
fi
case "$ROOT" in
  / | /bin | /boot | /dev | /etc | /home | /lib* | /proc | /root | /run | /sbin | /sys | /tmp | \
    /usr | /var | /var/tmp)
    ROOT=
    die "refusing $root_arg as the root" ;;
  *[[:space:]\\]*)
    ROOT=
    die "the root's path must not contain spaces or backslashes: $root_arg" ;;
esac
if mounts_below "$ROOT" | grep -qvx "$ROOT"; then
  r=$ROOT
  ROOT=
  die "something is already mounted below $r (another run? unmount it: umount -R $r/...)"
fi

# ---- debootstrap ----------------------------------------------------------------------------
base_list=var/lib/mechir-fresh/base-packages
if [ -x "$ROOT/usr/bin/apt-get" ] && [ -s "$ROOT/var/lib/dpkg/status" ] &&
  [ ! -e "$ROOT/debootstrap" ]; then
  say "reusing the Debian root in $ROOT"
  if [ -s "$ROOT/$base_list" ]; then
    extra=$(chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort |
      comm -13 "$ROOT/$base_list" - | wc -l)
    [ "$extra" -gt 0 ] &&
      say "note: $extra packages beyond the base system, from earlier runs: this root is not fresh"
  fi
else
  if [ -n "$(ls -A "$ROOT")" ] && [ ! -e "$ROOT/debootstrap" ]; then
    r=$ROOT
    ROOT=
    die "$r is neither empty nor a Debian root"
  fi
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; } \
      >/dev/null || die "apt-get install debootstrap failed"
  fi
  # An https mirror needs ca-certificates for apt, as the Debian installer knows; this is the
  # machine's apt configuration, not a package mechir needs.
  include=()
  case "$mirror $security $updates" in *https:*) include=(--include=ca-certificates) ;; esac
  say "debootstrap --variant=minbase${include:+ ${include[*]}} $SUITE $ROOT $mirror"
  t0=$(date +%s)
  # In the background (a session of its own) so that a signal reaches the traps at once.
  bootlog=$ROOT.debootstrap.log
  setsid debootstrap --variant=minbase "${include[@]}" "$SUITE" "$ROOT" "$mirror" >"$bootlog" 2>&1 &
  inner_pid=$!
  wait "$inner_pid" || {
    tail -n 20 "$bootlog" >&2
    say "debootstrap failed (log: $bootlog)"
    bootlog=
    exit 2
  }
  inner_pid=
  say "debootstrap: $(($(date +%s) - t0)) s"
  mkdir -p "$(dirname "$ROOT/$base_list")"
  chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort >"$ROOT/$base_list"
fi

# What a Debian 12 installation configures, the apt sources (release, updates, security) and
# name resolution, from the host's own settings; no package is added.
{
  echo "deb $mirror $SUITE main"
  [ -n "$updates" ] && echo "deb $updates $SUITE-updates main"
  [ -n "$security" ] && echo "deb $security $SUITE-security main"
} >"$ROOT/etc/apt/sources.list"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
if [ ! -s "$ROOT/etc/hosts" ]; then
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    "$(hostname)" >"$ROOT/etc/hosts"
fi

# ---- the mounts -----------------------------------------------------------------------------
# What a booted machine has: /proc, /sys with the cgroup file systems below it (slurmd will not
# start without them), /dev with /dev/pts, and tmpfs /dev/shm (Open MPI's shared memory) and
# /run. Every bind is made a slave, so that unmounting in the root never reaches the host's.
mount_one() { # mount_one TARGET ARGS...: mounts ARGS on TARGET inside the root
  local target=$ROOT$1
  shift
  mkdir -p "$target"
  mount "$@" "$target" || die "mount $* $target failed"
  case " $* " in
    *" --bind "* | *" --rbind "*)
      mount --make-rslave "$target" || die "mount --make-rslave $target failed" ;;
  esac
}
# The root bound onto itself first, so that / in the chroot is a mount point as on a booted
# machine: `ip netns add` (tests/mpi/netns_nodes.sh, the Slurm test's two nodes) makes / a slave
# mount, which fails with EINVAL on a plain directory. The other mounts go on top of this one.
mount --bind "$ROOT" "$ROOT" || die "mount --bind $ROOT $ROOT failed"
self_bind=1
mount --make-rslave "$ROOT" || die "mount --make-rslave $ROOT failed"
mount_one /proc -t proc proc
mount_one /sys --rbind /sys
mount_one /dev --bind /dev
mount_one /dev/pts --bind /dev/pts
mount_one /dev/shm -t tmpfs -o mode=1777,nosuid,nodev tmpfs
mount_one /run -t tmpfs -o mode=755,nosuid tmpfs

# ---- the repository -------------------------------------------------------------------------
rm -rf --one-file-system "$ROOT/root/mechir"
mkdir -p "$ROOT/root/mechir"
git -C "$REPO" archive --format=tar HEAD | tar -x -C "$ROOT/root/mechir" ||
  die "git archive HEAD of $REPO failed"
say "copied $REPO at $REV to $ROOT/root/mechir"

# ---- the two commands -----------------------------------------------------------------------
envs=(PATH="$USER_PATH" HOME=/root LANG=C.UTF-8)
[ -n "${CI+x}" ] && envs+=(CI="$CI")
# The network, not the machine: where the host reaches the internet through a TLS-inspecting
# proxy, Node (npm, for the tokenizer reference test) trusts the proxy's CA through
# NODE_EXTRA_CA_CERTS. The root gets that one file and variable, nothing else of the host's.
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$ROOT/root/host-extra-ca.crt" ||
    die "cannot copy NODE_EXTRA_CA_CERTS into the root"
  envs+=(NODE_EXTRA_CA_CERTS=/root/host-extra-ca.crt)
  say "NODE_EXTRA_CA_CERTS: the host's extra CA certificates are given to the root (network proxy)"
fi
results=()
status=0
# step NAME COMMAND: runs COMMAND in /root/mechir of the root like a user at a root shell.
step() {
  local name=$1 cmd=$2 t0 rc
  say "== $name =="
  t0=$(date +%s)
  # In the background, in a session of its own, so that a signal reaches the traps at once and
  # the cleanup can end the whole group; env restores SIGINT and SIGQUIT, which bash ignores in
  # background jobs, so the tests see the signal dispositions a user's shell gives them.
  setsid env --default-signal=INT,QUIT -i "${envs[@]}" /usr/sbin/chroot "$ROOT" /bin/bash -c \
    "cd /root/mechir && $cmd" </dev/null &
  inner_pid=$!
  wait "$inner_pid"
  rc=$?
  inner_pid=
  local secs=$(($(date +%s) - t0))
  if [ $rc -eq 0 ]; then
    results+=("$name: $secs s")
  else
    results+=("$name: $secs s (FAILED, exit status $rc)")
    status=1
  fi
  say "${results[-1]}"
}
step demo.sh "bash examples/demo.sh"
step tests/run.sh "bash tests/run.sh"

kill_inside
say "summary for $REV on a fresh Debian $SUITE ($mirror):"
for r in "${results[@]}"; do echo "$r"; done
exit $status
}
