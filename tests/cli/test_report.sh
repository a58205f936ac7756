#!/bin/sh
# `mechir report`: the heads heatmap has one cell per (layer, head) whose <title> holds the
# value from the map; both SVGs render with rsvg-convert to PNGs that are not one flat colour;
# CSV/JSON/index.html are written; --format json prints circuit.json; a bad map is refused.
set -u
MECHIR=$1
ROOT=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() {
    d=$1; shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
for tool in rsvg-convert pngtopnm; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "FAIL - $tool is missing (Debian librsvg2-bin and netpbm; deploy/install-deps.sh installs them)"
        exit 1
    fi
done

head -6 "$ROOT/examples/demo-200.tsv" > "$T/in.tsv"
"$MECHIR" run --model "$ROOT/examples/demo-ce" --input "$T/in.tsv" --sweep heads,blocks --max-len 64 \
    --out "$T/run" > /dev/null 2>&1
check "a small run for the report" test -s "$T/run/circuit.cmap"
"$MECHIR" report "$T/run/circuit.cmap" -o "$T/rep" 2> /dev/null
check "report exits 0" test $? -eq 0
for f in heads.svg blocks.svg components.csv components.json top.txt index.html; do
    check "report writes $f" test -s "$T/rep/$f"
done
# The demo model has 4 layers x 4 heads: 16 cells, each titled with its mean and n.
check "heads.svg has one cell per (layer, head)" \
    test "$(grep -c '<rect class="cell"' "$T/rep/heads.svg")" -eq 16
"$MECHIR" report "$T/run/circuit.cmap" --format json > "$T/map.json"
check "--format json prints circuit.json" grep -q '"format":"mechir-circuit/1"' "$T/map.json"
# heads.mean from the JSON, row-major, vs the values in the cells' titles.
sed 's/.*"heads":{"mean":\[\[//; s/\]\],"std".*//; s/\],\[/,/g' "$T/map.json" | tr ',' '\n' > "$T/want.txt"
sed -n 's/.*<title>layer \([0-9]*\) head \([0-9]*\): mean \([^ ]*\) n \([0-9]*\)<\/title>.*/\1 \2 \3 \4/p' \
    "$T/rep/heads.svg" > "$T/got.txt"
check "16 titles with layer, head, mean and n" test "$(wc -l < "$T/got.txt")" -eq 16
check "every title's mean equals the map's heads.mean[l][h] (to its 6 digits)" awk '
    NR == FNR { want[NR - 1] = $1; next }
    { i = $1 * 4 + $2; d = $3 - want[i]; if (d < 0) d = -d;
      t = 5e-6 * (want[i] < 0 ? -want[i] : want[i]) + 1e-12; if (d > t) bad++; n++ }
    END { exit !(n == 16 && bad == 0) }' "$T/want.txt" "$T/got.txt"
check "n in the titles is the number of used pairs" sh -c "awk '{print \$4}' '$T/got.txt' | sort -u | grep -qx '$(sed 's/.*"used":\([0-9]*\).*/\1/' "$T/map.json")'"
for svg in heads blocks; do
    rsvg-convert "$T/rep/$svg.svg" -o "$T/$svg.png" 2> "$T/rsvg.err"
    check "$svg.svg renders with rsvg-convert" test -s "$T/$svg.png"
    colours=$(pngtopnm "$T/$svg.png" 2>/dev/null | pnmnoraw 2>/dev/null | tail -n +4 | tr -s ' \n' '\n\n' |
        paste - - - | sort -u | head -5 | wc -l)
    check "$svg.png is not one flat colour ($colours colours seen, at least 2)" test "$colours" -ge 2
done
check "components.csv has a header and rows" test "$(wc -l < "$T/rep/components.csv")" -gt 16
printf 'garbage' > "$T/bad.cmap"
"$MECHIR" report "$T/bad.cmap" -o "$T/rep2" 2> "$T/bad.err"
check "a bad map is refused with exit 1" test $? -eq 1
check "the message names the file" grep -q "bad.cmap" "$T/bad.err"
if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all report checks passed"
