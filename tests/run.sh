#!/usr/bin/env bash
# Builds mechir twice (release, and AddressSanitizer + UndefinedBehaviorSanitizer) and runs the
# whole test suite in each. Installs missing Debian packages first (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
jobs=$(nproc)

echo "== release build =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMCH_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
status=0
# A failure in one build does not hide the other build's results: both run, then the exit status.
(cd build && ctest --output-on-failure -j"$jobs") || status=1

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMCH_SANITIZE=ON -DMCH_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs") || status=1
exit $status
