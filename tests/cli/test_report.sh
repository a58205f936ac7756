#!/bin/sh
# `mechir report` against the run's own circuit.json (python3, stdlib only): every heatmap cell
# of heads.svg, blocks.svg, head_pos.svg and strata.svg has a <title> whose ratio of means,
# bootstrap interval (ci_low, ci_high) and n, and whose mean of ratios, std and n, print as the
# map's values do with 6 significant digits, and shows its value (text, colour's sign);
# components.csv and .json hold every component with pairs (heads, blocks by role, head-pos
# cells) with the map's values to 17 digits and the normal interval mean +- z std / sqrt(n) at
# the map's level (0.9), z from Python's NormalDist; top.txt ranks by the ratio of means;
# index.html shows the with/against counts, the provenance and the strata, a site escaped; a map
# without bootstrap has no intervals; every SVG renders with rsvg-convert to a PNG that is not
# one flat colour; --format json prints circuit.json; a bad map is refused.
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
for tool in rsvg-convert pngtopnm python3; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "FAIL - $tool is missing (Debian librsvg2-bin, netpbm, python3; deploy/install-deps.sh installs them)"
        exit 1
    fi
done

head -8 "$ROOT/examples/demo-200.tsv" > "$T/in.tsv"
"$MECHIR" run --model "$ROOT/examples/demo-ce" --input "$T/in.tsv" --sweep heads,blocks,head-pos \
    --heads 1.1,2.3 --ci 0.9 --max-len 64 --site 'lab<b>&"x' --out "$T/run" > /dev/null 2>&1
check "a small run for the report (heads, blocks, head-pos 1.1,2.3)" test -s "$T/run/circuit.cmap"
"$MECHIR" report "$T/run/circuit.cmap" -o "$T/rep" --top 7 2> /dev/null
check "report exits 0" test $? -eq 0
for f in heads.svg blocks.svg head_pos.svg strata.svg components.csv components.json top.txt verified.csv \
    index.html; do
    check "report writes $f" test -s "$T/rep/$f"
done
"$MECHIR" report "$T/run/circuit.cmap" --format json > "$T/map.json"
check "--format json prints circuit.json" grep -q '"format":"mechir-circuit/2"' "$T/map.json"

# The checker: one "ok - ..." or "FAIL - ..." line per property; exit 1 on any failure.
cat > "$T/check.py" << 'EOF'
import csv, json, math, re, statistics, sys

m = json.load(open(sys.argv[1]))
rep = sys.argv[2]
top_k = int(sys.argv[3])
fails = 0

def check(desc, ok, detail=""):
    global fails
    print(("ok - " if ok else "FAIL - ") + desc + ("" if ok else "  " + detail))
    fails += 0 if ok else 1

def g6(v):
    return "none" if v is None else "%.6g" % v

def titles(svg):
    return re.findall(r"<title>([^<]*)</title>", open(rep + "/" + svg).read())

ROM = re.compile(r"^(.*?)(layer \d+|head \d+\.\d+) (head \d+|role \w+): ratio of means (\S+)"
                 r"(?: \[(\S+), (\S+)\])? n (\d+)$")
MOR = re.compile(r"^(.*?)(layer \d+|head \d+\.\d+) (head \d+|role \w+): mean of ratios (\S+) "
                 r"std (\S+) n (\d+)$")

CELL = re.compile(r'<rect class="cell"[^>]* fill="#(..)(..)(..)"[^>]*><title>([^<]*)</title></rect>\n'
                  r'(?:<text[^>]*>([^<]*)</text>)?')
look = {}  # (svg row, key) -> (red, blue, text in the cell)

def cells(svg):
    """Titles of an SVG: {(prefix, row, col): (rom, lo, hi, n)} and {...: (mean, std, n)}."""
    rom, mor = {}, {}
    found = CELL.findall(open(rep + "/" + svg).read())
    if len(found) != len(titles(svg)):
        check(svg + ": every title is a cell's", False, "%d vs %d" % (len(found), len(titles(svg))))
    for r, g, b, t, text in found:
        a, c = ROM.match(t), MOR.match(t)
        if a:
            rom[a.group(1, 2, 3)] = a.group(4, 5, 6, 7)
            look[("rom", a.group(1, 2, 3))] = (int(r, 16), int(b, 16), text)
        elif c:
            mor[c.group(1, 2, 3)] = c.group(4, 5, 6)
            look[("mor", c.group(1, 2, 3))] = (int(r, 16), int(b, 16), text)
        else:
            check(svg + ": title is of a known form", False, repr(t))
    return rom, mor

def shown(row, key, v):
    """Whether a cell shows v: its text is %.2f of v, its colour red (v > 0) or blue (v < 0)."""
    red, blue, text = look[(row, key)]
    return text == "%.2f" % v and (red >= blue if v > 0 else blue >= red)

def at(blk, k, idx):
    """blk[k][idx[0]][idx[1]]..."""
    x = blk[k]
    for i in idx:
        x = x[i]
    return x

def compare(what, blk, idx, rom, mor, key):
    """Cell idx of a circuit.json block against the titles under key; bad details appended."""
    bad = []
    at_ = lambda k: at(blk, k, idx)
    if key not in rom or key not in mor:
        return ["%s %s: no title" % (what, key)]
    lo, hi = at_("ci_low"), at_("ci_high")
    want_rom = (g6(at_("ratio_of_means")), None if lo is None else g6(lo),
                None if hi is None else g6(hi), str(at_("n")))
    want_mor = (g6(at_("mean")), g6(at_("std")), str(at_("n")))
    if tuple(rom[key]) != want_rom:
        bad.append("%s %s: title %s, map %s" % (what, key, rom[key], want_rom))
    if tuple(mor[key]) != want_mor:
        bad.append("%s %s: title %s, map %s" % (what, key, mor[key], want_mor))
    for row, k in (("rom", "ratio_of_means"), ("mor", "mean")):
        if at_(k) is not None and not shown(row, key, at_(k)):
            bad.append("%s %s: the %s cell shows %s, map %.17g" % (what, key, row, look[(row, key)],
                                                                  at_(k)))
    return bad

L, NH = m["model"]["layers"], m["model"]["heads"]
roles = m["blocks_by_role"]["roles"]
R = len(roles)
B = m["bootstrap"]["replicates"]
check("the map has a bootstrap (%d replicates) and intervals" % B,
      B > 0 and m["heads"]["ci_low"][0][0] is not None)

# heads.svg
rom, mor = cells("heads.svg")
check("heads.svg: %d x %d cells in each row (%d, %d)" % (L, NH, len(rom), len(mor)),
      len(rom) == L * NH and len(mor) == L * NH)
bad = []
for l in range(L):
    for h in range(NH):
        bad += compare("heads", m["heads"], (l, h), rom, mor, ("", "layer %d" % l, "head %d" % h))
check("heads.svg: every title's ratio of means, ci_low, ci_high, n and mean of ratios, std, n "
      "print as circuit.json's heads; each cell's text and colour show its value", not bad, "; ".join(bad[:3]))

# blocks.svg
bb = m["blocks_by_role"]
rom, mor = cells("blocks.svg")
check("blocks.svg: 3 x %d x %d cells in each row (%d, %d)" % (L, R, len(rom), len(mor)),
      len(rom) == 3 * L * R and len(mor) == 3 * L * R)
bad = []
for c, comp in enumerate(bb["components"]):
    for l in range(L):
        for r, role in enumerate(roles):
            bad += compare("blocks", bb, (c, l, r), rom, mor,
                           (comp + " ", "layer %d" % l, "role " + role))
check("blocks.svg: every cell's titles print as circuit.json's blocks_by_role", not bad,
      "; ".join(bad[:3]))

# head_pos.svg
hp = m.get("head_pos")
check("circuit.json lists the head-pos heads 1.1 and 2.3",
      hp is not None and hp["heads"] == [[1, 1], [2, 3]])
rom, mor = cells("head_pos.svg")
K = len(hp["heads"]) if hp else 0
check("head_pos.svg: 2 x %d x %d cells in each row (%d, %d)" % (K, R, len(rom), len(mor)),
      K and len(rom) == 2 * K * R and len(mor) == 2 * K * R)
bad = []
for hook, key in (("hook_z", "z"), ("hook_pattern", "pattern")):
    for k, (hl, hh) in enumerate(hp["heads"] if hp else []):
        for r, role in enumerate(roles):
            bad += compare("head_pos", hp[key], (k, r), rom, mor,
                           (hook + " ", "head %d.%d" % (hl, hh), "role " + role))
check("head_pos.svg: every cell's titles print as circuit.json's head_pos z and pattern", not bad,
      "; ".join(bad[:3]))

# strata.svg
rom, mor = cells("strata.svg")
st = m["strata"]
bad = []
for name, s in st.items():
    for l in range(L):
        for h in range(NH):
            bad += compare(name, s["heads"], (l, h), rom, mor,
                           (name + " ", "layer %d" % l, "head %d" % h))
check("strata.svg: %d strata (%s), every heads cell prints as circuit.json's strata heads"
      % (len(st), ", ".join(st)), len(st) >= 1 and len(rom) == len(st) * L * NH and not bad,
      "; ".join(bad[:3]))

# components.csv and .json
rows = list(csv.DictReader(open(rep + "/components.csv")))
cj = json.load(open(rep + "/components.json"))
level = m["bootstrap"]["level"]
z = statistics.NormalDist().inv_cdf((1 + level) / 2)
want = {"head": [], "block": [], "head_pos": []}
for l in range(L):
    for h in range(NH):
        want["head"].append((("attn.hook_z", l, h, ""), m["heads"], (l, h)))
for c, comp in enumerate(bb["components"]):
    for l in range(L):
        for r, role in enumerate(roles):
            want["block"].append(((comp, l, "", role), bb, (c, l, r)))
for key, comp in (("z", "attn.hook_z"), ("pattern", "attn.hook_pattern")):
    for k, (hl, hh) in enumerate(hp["heads"]):
        for r, role in enumerate(roles):
            want["head_pos"].append(((comp, hl, hh, role), hp[key], (k, r)))
for kind, cells_ in want.items():
    expect = [w for w in cells_ if at(w[1], "n", w[2]) > 0]
    got = [r for r in rows if r["kind"] == kind]
    check("components.csv: %d %s rows = the cells with n > 0 in circuit.json (%d)"
          % (len(got), kind, len(expect)), len(got) == len(expect) and len(expect) > 0)
    check("components.json: as many %s components" % kind,
          len([c for c in cj["components"] if c["kind"] == kind]) == len(expect))

def close(a, b, rel=1e-15):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * abs(b) + 1e-300

def num(s):
    return None if s == "" else float(s)

index = {}
for kind, cells_ in want.items():
    for (comp, l, h, role), blk, idx in cells_:
        index[(kind, comp, str(l), str(h), role)] = (blk, idx)
bad = []
for r in rows:
    blk, idx = index[(r["kind"], r["component"], r["layer"], r["head"], r["role"])]
    mean, sd, n = at(blk, "mean", idx), at(blk, "std", idx), at(blk, "n", idx)
    half = z * sd / math.sqrt(n) if n >= 2 else None
    pairs = (("ratio_of_means", "ratio_of_means"), ("rom_ci_low", "ci_low"),
             ("rom_ci_high", "ci_high"), ("mean_of_ratios", "mean"), ("std", "std"),
             ("sum_patched_minus_baseline", "sum_patched_minus_baseline"),
             ("sum_perturbed_minus_baseline", "sum_perturbed_minus_baseline"))
    for col, key in pairs:
        if not close(num(r[col]), at(blk, key, idx)):
            bad.append("%s %s: %s %s vs %s" % (r["kind"], idx, col, r[col], at(blk, key, idx)))
    if int(r["n"]) != n:
        bad.append("%s %s: n %s vs %s" % (r["kind"], idx, r["n"], n))
    if half is not None and not (close(num(r["mor_ci_low"]), mean - half, 1e-12) and
                                 close(num(r["mor_ci_high"]), mean + half, 1e-12)):
        bad.append("%s %s: mor interval [%s, %s] vs %.17g +- %.17g"
                   % (r["kind"], idx, r["mor_ci_low"], r["mor_ci_high"], mean, half))
check("components.csv: every row's estimates, intervals and sums equal circuit.json's (17 "
      "digits), mor interval = mean +- %.6f std / sqrt(n)" % z, not bad and len(rows) > 0,
      "; ".join(bad[:3]))
same = all(close(c["ratio_of_means"], num(r["ratio_of_means"])) and
           close(c["mor_ci_low"], num(r["mor_ci_low"])) and c["n"] == int(r["n"]) and
           c["kind"] == r["kind"] for c, r in zip(cj["components"], rows))
check("components.json: the same components and values as components.csv",
      same and len(cj["components"]) == len(rows) and close(cj["z"], z, 1e-12))

# top.txt: the top_k rows by ratio of means, largest first
top = [l for l in open(rep + "/top.txt").read().splitlines() if re.match(r"^\s*\d+\. ", l)]
vals = [float(re.search(r"\s([+-]\d+\.\d{4})\s", l).group(1)) for l in top]
best = sorted((num(r["ratio_of_means"]) for r in rows), reverse=True)[:top_k]
check("top.txt: %d lines, ratios of means %s = the largest of components.csv"
      % (len(top), vals[:3]), len(top) == top_k and
      all(abs(a - b) <= 5e-5 for a, b in zip(vals, best)))

# index.html
html = open(rep + "/index.html").read()
p = m["pairs"]
check("index.html: with/against the axiom counts (%d, %d)" % (p["with_axiom"], p["against_axiom"]),
      "%d pairs moved with the axiom, %d against" % (p["with_axiom"], p["against_axiom"]) in html)
check("index.html: the site escaped, never raw", "lab&lt;b&gt;&amp;&quot;x" in html
      and "<b>&" not in html and len(m["provenance"]) == 1)
blas = m["provenance"][0].split("\t", 1)[1]
check("index.html: the BLAS of the provenance", blas.split(";")[0] in html)
check("index.html: a table per kind of stratum with every stratum",
      all(n in html for n in st) and
      all("<h3>%s</h3>" % k in html for k in {n.split("=")[0] for n in st}))
sys.exit(1 if fails else 0)
EOF
python3 "$T/check.py" "$T/map.json" "$T/rep" 7
check "the report equals the map (checks above)" test $? -eq 0

# Without bootstrap: no interval in titles or components.csv.
"$MECHIR" run --model "$ROOT/examples/demo-ce" --input "$T/in.tsv" --sweep heads --bootstrap 0 \
    --max-len 64 --out "$T/run0" > /dev/null 2>&1
"$MECHIR" report "$T/run0/circuit.cmap" -o "$T/rep0" 2> /dev/null
check "no bootstrap: heads.svg titles have no interval" sh -c \
    "grep -c 'ratio of means [^ ]* n [0-9]*</title>' '$T/rep0/heads.svg' | grep -qx 16"
check "no bootstrap: components.csv has empty rom_ci_low and rom_ci_high, a mor interval" \
    awk -F, 'NR > 1 { n++; if ($7 != "" || $8 != "" || $12 == "") bad++ } END { exit !(n == 16 && !bad) }' \
    "$T/rep0/components.csv"
check "no bootstrap: head_pos.svg and blocks.svg say there is no sweep" sh -c \
    "grep -q 'no head-pos sweep' '$T/rep0/head_pos.svg' && grep -q 'no blocks sweep' '$T/rep0/blocks.svg'"

for svg in heads blocks head_pos strata; do
    rsvg-convert "$T/rep/$svg.svg" -o "$T/$svg.png" 2> "$T/rsvg.err"
    check "$svg.svg renders with rsvg-convert" test -s "$T/$svg.png"
    colours=$(pngtopnm "$T/$svg.png" 2>/dev/null | pnmnoraw 2>/dev/null | tail -n +4 | tr -s ' \n' '\n\n' |
        paste - - - | sort -u | head -5 | wc -l)
    check "$svg.png is not one flat colour ($colours colours seen, at least 2)" test "$colours" -ge 2
done
printf 'garbage' > "$T/bad.cmap"
"$MECHIR" report "$T/bad.cmap" -o "$T/rep2" 2> "$T/bad.err"
check "a bad map is refused with exit 1" test $? -eq 1
check "the message names the file" grep -q "bad.cmap" "$T/bad.err"
if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all report checks passed"
