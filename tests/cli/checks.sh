# Sourced by CLI test scripts: check DESCRIPTION COMMAND... counts and prints ok/FAIL; finish
# exits 1 when a check failed or none ran; skip REASON exits 77 (a failure under CI=true).
fails=0
checked=0
check() {
    d=$1; shift
    checked=$((checked + 1))
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
finish() {
    if [ "$checked" -eq 0 ]; then echo "FAIL - nothing was checked"; exit 1; fi
    [ "$fails" -eq 0 ] || { echo "$fails of $checked checks failed"; exit 1; }
    echo "all $checked checks passed"
    exit 0
}
skip() {
    if [ "${CI:-}" = true ]; then echo "FAIL - cannot run here and CI=true allows no skip: $*"; exit 1; fi
    echo "SKIP: $*"
    exit 77
}
