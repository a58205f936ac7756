#!/bin/sh
# `mechir report`: the heads heatmap has one cell per (layer, head), and the blocks heatmap one
# per (component, layer, role), whose <title> holds the map's value (and count, checked against
# the run's circuit.json for every blocks cell); both SVGs render with rsvg-convert to PNGs that
# are not one flat colour;
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
# blocks.svg: three panels (resid_pre, attn_out, mlp_out), each layers x roles, in that order;
# every cell's title must hold blocks_by_role.mean[c][l][r] and n[c][l][r] of the run's circuit.json.
L=$(sed -n 's/.*"layers":\([0-9]*\).*/\1/p' "$T/run/circuit.json")
grep -o '"blocks_by_role":{[^}]*}' "$T/run/circuit.json" | head -n 1 > "$T/bbr.json"
sed 's/.*"roles":\[\([^]]*\)\].*/\1/; s/"//g' "$T/bbr.json" | tr ',' '\n' > "$T/roles.txt"
R=$(wc -l < "$T/roles.txt")
# One line per cell in (component, layer, role) order: "l role mean n".
flat() { sed "s/.*\"$1\":\\(\\[\\[\\[[^\"]*\\]\\]\\]\\).*/\\1/; s/[][]//g" "$T/bbr.json" | tr ',' '\n'; }
flat mean > "$T/bmean.txt"
flat n > "$T/bn.txt"
awk -v L="$L" -v R="$R" 'FILENAME == ARGV[1] { role[FNR - 1] = $1; next }
    FILENAME == ARGV[2] { m[FNR - 1] = $1; next }
    { i = FNR - 1; l = int(i / R) % L; print l, role[i % R], m[i], $1 }' \
    "$T/roles.txt" "$T/bmean.txt" "$T/bn.txt" > "$T/bwant.txt"
sed -n 's/.*<title>layer \([0-9]*\) role \([a-z_]*\): mean \([^ ]*\) n \([0-9]*\)<\/title>.*/\1 \2 \3 \4/p' \
    "$T/rep/blocks.svg" > "$T/bgot.txt"
check "blocks.svg: 3 x $L x $R cells with layer, role, mean and n in their titles ($(wc -l < "$T/bgot.txt"))" \
    test "$L" -gt 0 -a "$R" -gt 0 -a "$(wc -l < "$T/bgot.txt")" -eq $((3 * L * R)) -a \
    "$(wc -l < "$T/bwant.txt")" -eq $((3 * L * R))
check "every blocks.svg title equals blocks_by_role mean and n of its component, layer and role" \
    awk -v L="$L" -v R="$R" '
    function abs(x) { return x < 0 ? -x : x }
    NR == FNR { w[FNR] = $0; next }
    { split(w[FNR], e, " "); c = substr("resid_pre attn_out  mlp_out   ", 10 * int((FNR - 1) / (L * R)) + 1, 9)
      if ($1 != e[1] || $2 != e[2] || $4 != e[4] ||
          (e[3] == "null" && $3 != "none") ||
          (e[3] != "null" && abs($3 - e[3]) > 5e-6 * abs(e[3]) + 1e-12)) {
          if (++bad < 4) print "    " c " cell " FNR ": title \"" $0 "\", map \"" w[FNR] "\""
      } else n++ }
    END { exit !(n == 3 * L * R && bad == 0) }' "$T/bwant.txt" "$T/bgot.txt"
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
