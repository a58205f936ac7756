#!/usr/bin/env bash
# The quick-start demo: installs what is missing (as root), builds mechir, and scores a few
# Debian package queries against their own description and another package's with the demo
# cross-encoder (examples/demo-ce). The relevant document should score higher in every row.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mechir >/dev/null
echo "mechir built: build/mechir ($(build/mechir --version))"
echo
echo "Scoring examples/demo-score.tsv with examples/demo-ce (max_len 64):"
build/mechir score --model examples/demo-ce --input examples/demo-score.tsv --max-len 64 \
  > build/demo-scores.tsv
printf '%-22s %-22s %10s\n' "query (package)" "document (package)" "score"
awk -F'\t' '{ mark = ($1 == $2) ? "  <- its own description" : "";
              printf "%-22s %-22s %10.4f%s\n", $1, $2, $3, mark }' build/demo-scores.tsv
echo
echo "Scores also in build/demo-scores.tsv (qid<TAB>docno<TAB>score)."
