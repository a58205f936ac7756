#!/usr/bin/env bash
# Installs the Debian 12 packages mechir builds and tests with, if any is missing.
# As root it runs apt-get; otherwise it prints the exact apt-get line and exits 1.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenblas-dev libcjson-dev libutf8proc-dev libpcre2-dev libstemmer-dev
  libprotobuf-c-dev protobuf-c-compiler libzstd-dev zstd libxxhash-dev
  libopenmpi-dev openmpi-bin libssl-dev
  libcmocka-dev librsvg2-bin netpbm python3 python3-numpy
  python3-torch # tests/cli/roberta_ref.py, tests/mpi/roberta.sh: the float64 RoBERTa reference
  ca-certificates # npm reaches its registry over HTTPS (tests/ref/tokenizers_ref.sh)
  nodejs npm python3-sentencepiece # tests/ref/tokenizers_ref.sh: the reference libraries
  iproute2 # tests/mpi/netns_nodes.sh: network namespaces as nodes
  strace # tests/mpi/kill_campaign.sh: kills at the final writes
  python3-protobuf python3-zstandard python3-pandas python3-venv python3-setuptools python3-wheel # tests/python
)

missing=()
for p in "${packages[@]}"; do
  # a Node.js from outside Debian (NodeSource, nvm) already gives node and npm; Debian's npm
  # cannot be installed beside it
  case $p in nodejs | npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "mechir: missing Debian packages; as root run:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi
echo "mechir: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q --error-on=any >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
