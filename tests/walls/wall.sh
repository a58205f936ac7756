#!/bin/sh
# wall.sh CC WANT HEADER -I... : compiles a one-line file that includes HEADER with exactly the
# include directories a library's own sources get. WANT=refused: passes when the compiler cannot
# find HEADER (the wall holds); WANT=allowed: passes when it compiles (the control that proves
# the include list is the library's and not empty).
cc=$1 want=$2 header=$3
shift 3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
printf '#include "%s"\nint mch_wall_probe;\n' "$header" >"$tmp/probe.c"
if "$cc" -std=c11 -D_POSIX_C_SOURCE=200809L -fsyntax-only "$@" "$tmp/probe.c" 2>"$tmp/err"; then
    got=allowed
elif grep -q "$header: No such file" "$tmp/err"; then
    got=refused
else
    echo "FAIL: including $header failed for another reason:" >&2
    cat "$tmp/err" >&2
    exit 1
fi
if [ "$got" = "$want" ]; then
    echo "ok: $header is $got"
    exit 0
fi
echo "FAIL: $header is $got, want $want" >&2
exit 1
