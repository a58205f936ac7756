#!/usr/bin/env python3
"""The comparisons of test_reader.sh: every number the mechir Python package reads from the runs
in WORK is compared, element by element, with mechir's own output of the same run; then its
refusals of bad files. Run with the venv's python (the installed package), from WORK.
usage: check_reader.py MECHIR REPO_ROOT WORK"""
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np

import mechir
from mechir import _xxh64

MECHIR, ROOT, WORK = sys.argv[1:4]
STATS = ("ratio_of_means", "ci_low", "ci_high", "sum_patched_minus_baseline",
         "sum_perturbed_minus_baseline", "mean", "std", "n")
fails = 0


def check(what, cond, detail=""):
    global fails
    if cond:
        print("ok - %s" % what)
    else:
        fails += 1
        print("FAIL - %s%s" % (what, ": " + detail if detail else ""))


class Cmp:
    """Element-wise comparison of doubles: equal bits of value (NaN with null), counting."""

    def __init__(self):
        self.n = 0
        self.bad = []
        self.maxerr = 0.0

    def arrays(self, where, got, want):
        want = np.array(want, dtype=object)
        got = np.asarray(got)
        if got.shape != want.shape:
            self.bad.append("%s: shape %s, mechir %s" % (where, got.shape, want.shape))
            return
        for idx in np.ndindex(*want.shape):
            self.value("%s%s" % (where, list(idx)), got[idx], want[idx])

    def value(self, where, got, want):
        self.n += 1
        if want is None:
            ok = got is None or (isinstance(got, (float, np.floating)) and math.isnan(got))
        elif isinstance(want, (bool, str, list, tuple, dict)):
            ok = got == want
        elif isinstance(want, int) and not isinstance(got, (float, np.floating)):
            ok = int(got) == want
        else:
            ok = got is not None and not math.isnan(got) and float(got) == float(want)
            if got is not None and not math.isnan(got):
                self.maxerr = max(self.maxerr, abs(float(got) - float(want)))
        if not ok and len(self.bad) < 10:
            self.bad.append("%s: reader %r, mechir %r" % (where, got, want))
        elif not ok:
            self.bad.append("...")

    def report(self, what):
        check("%s: %d values equal" % (what, self.n), self.n > 0 and not self.bad,
              "; ".join(self.bad[:10]) if self.bad else "nothing compared")


def cmp_est(c, where, est, block):
    for k in STATS:
        c.arrays("%s.%s" % (where, k), getattr(est, k), block[k])


def cmp_map(m, j, c, where):
    """A CircuitMap against the JSON mechir printed for the same map; every key of the JSON."""
    known = {"format", "model", "perturbation", "direction", "bootstrap", "sweeps", "method",
             "verify_top", "software_version", "pairs", "heads", "blocks_by_role", "head_pos",
             "verified", "strata", "sites", "provenance", "qkv", "pattern", "resid_mid_by_role"}
    extra = set(j) - known
    if extra:
        c.bad.append("%s: JSON keys the test does not compare: %s" % (where, sorted(extra)))
    c.value(where + ".format", m.format, j["format"])
    for k in ("replicates", "level", "seed"):
        c.value("%s.bootstrap.%s" % (where, k), m.bootstrap[k], j["bootstrap"][k])
    for k, v in j["pairs"].items():
        c.value("%s.pairs.%s" % (where, k), m.pairs[k], v)
    c.value(where + ".sweeps", m.sweeps, j["sweeps"])
    c.value(where + ".method", m.method, j.get("method", "exact"))
    c.value(where + ".layers", m.layers, j["model"]["layers"])
    c.value(where + ".heads_per_layer", m.heads_per_layer, j["model"]["heads"])
    c.value(where + ".sites", m.sites, j["sites"])
    c.value(where + ".provenance", m.provenance, j["provenance"])
    c.value(where + ".roles", m.roles, j["blocks_by_role"]["roles"])
    c.value(where + ".components", list(m.blocks_by_role.coords["component"]),
            j["blocks_by_role"]["components"])
    cmp_est(c, where + ".heads", m.heads, j["heads"])
    cmp_est(c, where + ".blocks_by_role", m.blocks_by_role, j["blocks_by_role"])
    if "head_pos" in j:
        hp = j["head_pos"]
        c.value(where + ".head_pos.heads", [list(h) for h in m.head_pos["z"].coords["head_pos"]],
                hp["heads"])
        cmp_est(c, where + ".head_pos.z", m.head_pos["z"], hp["z"])
        cmp_est(c, where + ".head_pos.pattern", m.head_pos["pattern"], hp["pattern"])
    else:
        c.value(where + ".head_pos", m.head_pos, None)
    for k in ("qkv", "pattern", "resid_mid_by_role"):
        if k in j:
            cmp_est(c, "%s.%s" % (where, k), getattr(m, k), j[k])
        else:
            c.value("%s.%s" % (where, k), getattr(m, k), None)
    if "qkv" in j:
        c.value(where + ".qkv.components", list(m.qkv.coords["component"]),
                j["qkv"]["components"])
    if "resid_mid_by_role" in j:
        c.value(where + ".resid_mid_by_role.roles", list(m.resid_mid_by_role.coords["role"]),
                j["resid_mid_by_role"]["roles"])
    c.value(where + ".strata", list(m.strata), list(j["strata"]))
    for name, st in j["strata"].items():
        c.value("%s.strata.%s.pairs" % (where, name), m.strata[name].pairs, st["pairs"])
        cmp_est(c, "%s.strata.%s.heads" % (where, name), m.strata[name].heads, st["heads"])
        cmp_est(c, "%s.strata.%s.blocks" % (where, name), m.strata[name].blocks_by_role,
                st["blocks_by_role"])
    if "verified" in j:
        v, mv = j["verified"], m.verified
        for k in ("pairs", "mean", "std"):
            c.value("%s.verified.rank_correlation.%s" % (where, k),
                    mv["rank_correlation"][k], v["rank_correlation"][k])
        for k in ("heads", "heads_estimate", "blocks_by_role", "blocks_by_role_estimate"):
            if k in v:
                cmp_est(c, "%s.verified.%s" % (where, k), mv[k], v[k])
    else:
        c.value(where + ".verified", m.verified, None)


def run_dir(r):
    return os.path.join(WORK, r)


RUNS = ("f32", "bf16", "fp16", "atp", "many", "finer")

# ---- circuit.cmap and circuit.json -----------------------------------------------------------
for r in RUNS:
    with open(os.path.join(WORK, r + ".json"), encoding="utf-8") as f:
        j = json.load(f)
    m = mechir.read_cmap(os.path.join(run_dir(r), "circuit.cmap"))
    c = Cmp()
    cmp_map(m, j, c, r)
    c.report("%s: read_cmap against mechir report --format json" % r)
    c = Cmp()
    cmp_map(mechir.read_circuit_json(os.path.join(run_dir(r), "circuit.json")), j, c, r)
    c.report("%s: read_circuit_json(circuit.json) against mechir report --format json" % r)

    # components() against the report's components.json (17 significant digits).
    with open(os.path.join(WORK, r + ".report", "components.json"), encoding="utf-8") as f:
        comps = json.load(f)
    rows = m.components(frame=False)
    c = Cmp()
    c.value(r + ".components.count", len(rows), len(comps["components"]))
    for i, (got, want) in enumerate(zip(rows, comps["components"])):
        for k, v in want.items():
            c.value("%s.components[%d].%s" % (r, i, k), got[k], v)
    c.report("%s: components() against the report's components.json" % r)

    # pair ids of the map against those of pairs.jsonl
    pf = [p for p in ("pairs.jsonl", "pairs.jsonl.zst") if os.path.exists(os.path.join(run_dir(r), p))]
    pairs = mechir.read_pairs(os.path.join(run_dir(r), pf[0]), frame=False)
    ids = sorted(int(p["pair_id"], 16) for p in pairs)
    check("%s: read_cmap's %d pair ids are those of %s" % (r, len(ids), pf[0]),
          len(ids) > 0 and m.pair_ids.dtype == np.uint64 and [int(x) for x in m.pair_ids] == ids)
    # the bootstrap replicates give the intervals again with numpy's own percentile
    B = m.bootstrap["replicates"]
    if B:
        reps = m.heads.replicates.reshape(-1, B)
        lo = []
        for row in reps:
            row = row[np.isfinite(row)]
            a = (1 - m.bootstrap["level"]) / 2
            lo.append(np.percentile(row, 100 * a) if len(row) >= 2 else np.nan)
        d = np.nanmax(np.abs(np.array(lo) - m.heads.ci_low.reshape(-1)))
        check("%s: heads ci_low recomputed by numpy.percentile from the replicates (max diff "
              "%.3g)" % (r, d), d <= 1e-12)

# ---- exact sums at the limb edges (values a double holds exactly) ----------------------------
edges = [(0, 0), (0, 1), (-1, (1 << 64) - 1), (-1, 0), (-2, 0), (0, 1 << 63), (-1, 1 << 63),
         (5, 1 << 20), (-6, (1 << 64) - (1 << 20))]
got = mechir.stats.xsum_value(np.array([h for h, _ in edges], dtype=np.int64),
                              np.array([l for _, l in edges], dtype=np.uint64))
want = [float(h * 2**64 + l) / 2**40 for h, l in edges]  # exact: all hold in 53 bits
check("xsum_value at the limb edges (carry, borrow, 2^63, -2^64): %d values exact" % len(edges),
      list(got) == want, "%r vs %r" % (list(got), want))

# ---- top.txt through the docs/PYTHON.md example ----------------------------------------------
with open(os.path.join(ROOT, "docs", "PYTHON.md"), encoding="utf-8") as f:
    doc = f.read()
blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
example = [b for b in blocks if "m.top(" in b]
check("docs/PYTHON.md has the top-components example", len(example) == 1)
for r in ("f32", "bf16", "atp", "finer"):
    code = example[0].replace("runs/demo/circuit.cmap", os.path.join(run_dir(r), "circuit.cmap"))
    code = code.replace("m.top(10)", "m.top(12)")
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(code, "docs/PYTHON.md", "exec"), {})
    got = out.getvalue().splitlines()
    with open(os.path.join(WORK, r + ".report", "top.txt"), encoding="utf-8") as f:
        want = [l for l in f.read().splitlines() if re.match(r"^\s*\d+\. ", l)]
    c = Cmp()
    c.value(r + ".top.count", len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        # top.txt: "%2zu. %-40s %+.4f %-20s  mean of ratios %+.4f %-20s  n %llu"
        wf = re.match(r"^\s*(\d+)\. (.{40}) (\S+) (.{20})  mean of ratios (\S+) .*  n (\d+)$", w)
        gf = re.match(r"^\s*(\d+)\. (.+?) +(\S+) (\[.*?\])  mean of ratios (\S+)  n (\d+)$", g)
        if not wf or not gf:
            c.bad.append("line %d does not parse: %r / %r" % (i, g, w))
            continue
        for k, (a, b) in enumerate(zip(gf.groups(), wf.groups())):
            c.value("%s.top[%d].%d" % (r, i, k), a.strip(), b.strip())
    c.report("%s: the docs/PYTHON.md example prints top.txt's components (name, ratio of "
             "means, interval, mean of ratios, n)" % r)

second = [b for b in blocks if "open_cache(" in b]
check("docs/PYTHON.md has the numpy and cache example", len(second) == 1)
scope = {}
for code in (example[0], second[0]):
    code = code.replace("runs/demo", run_dir("bf16"))
    with redirect_stdout(io.StringIO()):
        exec(compile(code, "docs/PYTHON.md", "exec"), scope)
with open(os.path.join(WORK, "bf16.json"), encoding="utf-8") as f:
    rom = np.array(json.load(f)["heads"]["ratio_of_means"], dtype=float)
first = json.loads(subprocess.run(["zstd", "-dcq", os.path.join(run_dir("bf16"), "pairs.jsonl.zst")],
                                  check=True, capture_output=True).stdout.splitlines()[0])
npy = np.load(os.path.join(WORK, "bf16.npy", "%s.blocks.0.attn.hook_pattern.perturbed.npy"
                           % first["pair_id"]))
check("the docs/PYTHON.md numpy example: the largest head is mechir's, the pattern is mechir "
      "cache get's", (int(scope["layer"]), int(scope["head"])) ==
      np.unravel_index(np.nanargmax(rom), rom.shape) and
      np.array_equal(scope["pattern"].view(np.uint32), npy.view(np.uint32)))


# ---- pairs.jsonl and pairs.jsonl.zst ---------------------------------------------------------
def walk_count(x):
    if isinstance(x, list):
        return sum(walk_count(v) for v in x)
    if isinstance(x, dict):
        return sum(walk_count(v) for v in x.values())
    return 1


for r in RUNS:
    for name in ("pairs.jsonl", "pairs.jsonl.zst"):
        path = os.path.join(run_dir(r), name)
        if not os.path.exists(path):
            continue
        if name.endswith(".zst"):  # independently: the zstd CLI
            raw = subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
        else:
            with open(path, "rb") as f:
                raw = f.read()
        want = [json.loads(l) for l in raw.decode("utf-8").splitlines()]
        got = mechir.read_pairs(path, frame=False)
        n = sum(walk_count(p) for p in want)
        check("%s: read_pairs(%s) equals the zstd CLI's / the file's %d lines (%d values)"
              % (r, name, len(want), n), len(want) > 0 and got == want)
        c = Cmp()
        for p in got:
            for scores in (False, True):
                sfx = "_scores" if scores else ""
                arrs = mechir.pair_arrays(p, scores=scores)
                if "heads" + sfx in p:
                    c.arrays(p["pair_id"] + ".heads" + sfx, arrs["heads"].arr, p["heads" + sfx])
                if "blocks" + sfx in p:
                    c.arrays(p["pair_id"] + ".blocks" + sfx, arrs["blocks"].arr,
                             [p["blocks" + sfx][k] for k in mechir.COMPONENTS])
                    c.value(p["pair_id"] + ".positions", arrs["blocks"].coords["position"],
                            p["roles"])
                if "head_pos" + sfx in p:
                    for k in ("z", "pattern"):
                        c.arrays(p["pair_id"] + ".head_pos." + k, arrs["head_pos_" + k].arr,
                                 p["head_pos" + sfx][k])
                if "qkv" + sfx in p:
                    c.arrays(p["pair_id"] + ".qkv" + sfx, arrs["qkv"].arr,
                             [p["qkv" + sfx][k] for k in "qkv"])
                for k in ("pattern", "resid_mid"):
                    if k + sfx in p:
                        c.arrays("%s.%s%s" % (p["pair_id"], k, sfx), arrs[k].arr, p[k + sfx])
        if r != "many":
            c.report("%s: pair_arrays of every pair of %s against its JSON lists" % (r, name))
many = mechir.read_pairs(os.path.join(run_dir("many"), "pairs.jsonl.zst"), frame=False)
frames = subprocess.run(["zstd", "-lv", os.path.join(run_dir("many"), "pairs.jsonl.zst")],
                        capture_output=True, text=True).stdout
nfr = re.search(r"# Zstandard Frames:\s*(\d+)", frames)
check("many: pairs.jsonl.zst of %s frames read whole (%d pairs)"
      % (nfr.group(1) if nfr else "?", len(many)),
      len(many) == 130 and nfr and int(nfr.group(1)) == 3)
# DataFrames (pandas is there: test_reader.sh requires it) and the lists without pandas.
import pandas as pd  # noqa: E402

f32pairs = os.path.join(run_dir("f32"), "pairs.jsonl")
rows = mechir.read_pairs(f32pairs, frame=False)
df = mechir.read_pairs(f32pairs)
c = Cmp()
c.value("read_pairs type", type(df).__name__, "DataFrame")
c.value("read_pairs rows", len(df), len(rows))
for i, row in enumerate(rows):
    for k, v in row.items():
        c.value("df[%d].%s" % (i, k), df.iloc[i][k], v)
    c.arrays("df[%d].pair_arrays.heads" % i, mechir.pair_arrays(df.iloc[i])["heads"].arr,
             row["heads"])
cm = mechir.read_cmap(os.path.join(run_dir("f32"), "circuit.cmap"))
cdf = cm.components()
for i, row in enumerate(cm.components(frame=False)):
    for k, v in row.items():
        c.value("components[%d].%s" % (i, k), cdf.iloc[i][k], v)
c.report("with pandas: read_pairs and components() as DataFrames hold the lists' values")
saved = sys.modules.get("pandas")
sys.modules["pandas"] = None  # import pandas now raises ImportError
try:
    got = mechir.read_pairs(f32pairs)
    check("without pandas read_pairs gives the list of dicts", got == rows)
    ok, msg = None, "no exception"
    try:
        mechir.read_pairs(f32pairs, frame=True)
    except ImportError as e:
        ok, msg = "pandas" in str(e), str(e)
    check("without pandas frame=True raises ImportError naming pandas (%s)" % msg, ok)
finally:
    sys.modules["pandas"] = saved

# ---- the activation cache --------------------------------------------------------------------
check("XXH64 (pure Python) of '', 'a', 'abc': the specification's values",
      (_xxh64.xxh64_pure(b""), _xxh64.xxh64_pure(b"a"), _xxh64.xxh64_pure(b"abc")) ==
      (0xEF46DB3751D8E999, 0xD24EC4F1A98C6E5B, 0x44BC2CF5AD770999))
for r in ("f32", "bf16", "fp16"):
    cache = mechir.open_cache(run_dir(r))
    with open(os.path.join(WORK, r + ".ls"), encoding="utf-8") as f:
        ls = [l.split() for l in f if not l.startswith("total:")]
    c = Cmp()
    entries = cache.entries()
    c.value(r + ".entries", len(entries), len(ls))
    for e, l in zip(entries, ls):
        pair, hook, run, shape, dtype, stored, loc = l
        c.value(pair + hook + ".row", [e.pair, e.hook, e.run, "[%s]" % ",".join(map(str, e.shape)),
                                      e.dtype, str(e.stored_bytes),
                                      "%s:%d" % (os.path.basename(e.file), e.offset)],
                l)
    c.report("%s: Cache.entries() against mechir cache ls (%d entries)" % (r, len(entries)))
    c = Cmp()
    nvals = 0
    maxrel = 0.0
    for e in entries:
        npy = np.load(os.path.join(WORK, r + ".npy", "%s.%s.%s.npy" % (e.pair, e.hook, e.run)))
        got = cache.get(e.pair, e.hook, e.run)
        c.n += 1
        if got.dtype != np.float32 or got.shape != npy.shape or \
                not np.array_equal(got.view(np.uint32), npy.view(np.uint32)):
            c.bad.append("%s %s %s: values differ from mechir cache get's .npy" % (e.pair, e.hook,
                                                                                 e.run))
        nvals += got.size
        with open(e.file, "rb") as f:
            f.seek(e.offset + 184)
            frame = f.read(e.stored_bytes)
        if _xxh64.xxh64_pure(frame) != e.checksum:
            c.bad.append("%s %s %s: pure-Python XXH64 differs from the record's" % (e.pair, e.hook,
                                                                                 e.run))
        if r != "f32":  # every value is one of the dtype's (the reader decoded, not guessed)
            rt = got.astype(np.float16).astype(np.float32) if r == "fp16" else \
                (got.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
            if not np.array_equal(rt, got):
                c.bad.append("%s %s %s: values that are not %s" % (e.pair, e.hook, e.run, r))
    check("%s: Cache.get of %d entries (%d float32 values) equals mechir cache get's .npy bit "
          "for bit; every chunk's pure-Python XXH64 is its record's" % (r, c.n, nvals),
          c.n > 0 and nvals > 0 and not c.bad, "; ".join(c.bad[:5]))


# ---- bad input -------------------------------------------------------------------------------
def raises(fn, exc, *needles):
    try:
        fn()
    except exc as e:
        return all(n in str(e) for n in needles), str(e)
    except Exception as e:  # noqa: BLE001 - any other exception is the failure
        return False, "%s: %s" % (type(e).__name__, e)
    return False, "no exception"


def c_accepts(path):
    return subprocess.run([MECHIR, "report", path, "--format", "json"],
                          capture_output=True).returncode == 0


bad = os.path.join(WORK, "bad")
os.makedirs(bad)
with open(os.path.join(run_dir("f32"), "circuit.cmap"), "rb") as f:
    cmap = f.read()
cuts = sorted(set(list(range(0, len(cmap), max(1, len(cmap) // 150))) + [1, 2, len(cmap) - 1]))
mismatch, refused = [], 0
for k in cuts:
    p = os.path.join(bad, "cut-%d.cmap" % k)
    with open(p, "wb") as f:
        f.write(cmap[:k])
    ok, msg = raises(lambda: mechir.read_cmap(p), mechir.MechirFormatError, p + ": ")
    accepted = msg == "no exception"
    c_ok = c_accepts(p)
    refused += ok
    # Python refuses, with MechirFormatError naming the file, exactly the cuts mechir refuses
    if not (ok or accepted) or accepted != c_ok:
        mismatch.append("cut at %d: reader %s, mechir %s" % (k, msg, "accepts" if c_ok else "refuses"))
check("a circuit.cmap cut at %d places: the reader raises MechirFormatError naming the file "
      "exactly where mechir report refuses it (%d refusals)" % (len(cuts), refused),
      not mismatch and refused > 0, "; ".join(mismatch[:5]))

# The fuzz corpus of the C decoder (good maps, one hostile seed per rule, fuzzer finds): the
# reader refuses exactly the files mechir report refuses.
corpus = sorted(os.path.join(ROOT, "tests", "fuzz", "corpus", "cmap", f)
                for f in os.listdir(os.path.join(ROOT, "tests", "fuzz", "corpus", "cmap")))
mismatch, refused = [], 0
for p in corpus:
    ok, msg = raises(lambda: mechir.read_cmap(p), mechir.MechirFormatError, p + ": ")
    accepted = msg == "no exception"
    refused += ok
    if not (ok or accepted) or accepted != c_accepts(p):
        mismatch.append("%s: reader %s" % (os.path.basename(p), msg))
check("the %d maps of tests/fuzz/corpus/cmap: the reader refuses (MechirFormatError naming the "
      "file) exactly the %d mechir refuses" % (len(corpus), refused),
      len(corpus) > 0 and refused > 0 and not mismatch, "; ".join(mismatch[:5]))

# Maps made hostile one field at a time (with the package's message classes): refused by the
# reader exactly when mechir refuses them.
from mechir import proto  # noqa: E402


def hostile(src, edit):
    with open(src, "rb") as f:
        m = proto.CircuitMap.FromString(f.read())
    edit(m)
    return m.SerializeToString()


def set_n(e, i, v):
    e.mean_of_ratios.n[i] = v


f32map, atpmap = (os.path.join(run_dir(r), "circuit.cmap") for r in ("f32", "atp"))
edits = [
    ("pair id dropped", f32map, lambda m: m.pair_ids.__delitem__(0)),
    ("pair ids unsorted", f32map, lambda m: m.pair_ids.reverse()),
    ("used + 1", f32map, lambda m: setattr(m, "pairs_used", m.pairs_used + 1)),
    ("with > used", f32map, lambda m: setattr(m, "pairs_with", m.pairs_total + 1)),
    ("a cell with more pairs than used", f32map, lambda m: set_n(m.heads, 3, m.pairs_used + 1)),
    ("negative m2", f32map, lambda m: m.heads.mean_of_ratios.m2.__setitem__(2, -1.0)),
    ("NaN mean", f32map, lambda m: m.blocks_by_role.mean_of_ratios.mean.__setitem__(5, math.nan)),
    ("one mean too few", f32map, lambda m: m.heads.mean_of_ratios.mean.__delitem__(0)),
    ("replicates", f32map, lambda m: setattr(m.heads, "replicates", m.heads.replicates + 1)),
    ("an impossible exact sum", f32map, lambda m: m.heads.num_hi.__setitem__(0, 1 << 40)),
    ("one limb too many", f32map, lambda m: m.heads.den_lo.append(0)),
    ("roles swapped", f32map, lambda m: m.roles.reverse()),
    ("unknown sweep", f32map, lambda m: m.spec.sweeps.append("qkv")),
    ("head-pos head outside", f32map, lambda m: m.spec.head_list.__setitem__(0, 99)),
    ("layers 0", f32map, lambda m: setattr(m.spec, "layers", 0)),
    ("ci_level 1.5", f32map, lambda m: setattr(m.spec, "ci_level", 1.5)),
    ("min_delta -1", f32map, lambda m: setattr(m.spec, "min_delta", -1.0)),
    ("stratum name", f32map, lambda m: setattr(m.strata[0], "name", "colour=red")),
    ("stratum twice", f32map, lambda m: m.strata.append(m.strata[0])),
    ("stratum pairs", f32map, lambda m: setattr(m.strata[0], "pairs", m.pairs_used + 1)),
    ("no spec", f32map, lambda m: m.ClearField("spec")),
    ("heads missing", f32map, lambda m: m.ClearField("heads")),
    ("verified n differ", atpmap, lambda m: set_n(m.heads_verified_estimate, 0,
                                                  m.heads_verified.mean_of_ratios.n[0] + 1)),
    ("verified rank > 1", atpmap, lambda m: m.verified_rank.mean.__setitem__(0, 1.5)),
    ("unchanged", f32map, lambda m: None),
]
mismatch, refused = [], 0
for i, (name, src, edit) in enumerate(edits):
    p = os.path.join(bad, "hostile-%d.cmap" % i)
    with open(p, "wb") as f:
        f.write(hostile(src, edit))
    ok, msg = raises(lambda: mechir.read_cmap(p), mechir.MechirFormatError, p + ": ")
    accepted = msg == "no exception"
    refused += ok
    if not (ok or accepted) or accepted != c_accepts(p) or accepted != (name == "unchanged"):
        mismatch.append("%s: reader %s" % (name, msg))
check("%d maps made hostile one field at a time: the reader refuses the %d that mechir refuses, "
      "naming the file" % (len(edits), refused), refused == len(edits) - 1 and not mismatch,
      "; ".join(mismatch[:5]))

rng = np.random.default_rng(13)
for name, data, why in (
        ("garbage", rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(), "protobuf decoding"),
        ("empty", b"", "format is ''"), ("text", b"hello, not a map\n", "not a circuit map"),
        ("format", cmap.replace(b"mechir-circuit/2", b"mechir-circuit/9"), "mechir-circuit/9")):
    p = os.path.join(bad, name + ".cmap")
    with open(p, "wb") as f:
        f.write(data)
    ok, msg = raises(lambda: mechir.read_cmap(p), mechir.MechirFormatError, p + ": ", why)
    check("%s .cmap: MechirFormatError naming the file (%s); mechir refuses it too"
          % (name, msg), ok and not c_accepts(p))
p = os.path.join(bad, "circuit.json")
with open(p, "w") as f:
    f.write('{"format": "mechir-circuit/2", "model": {')
ok, msg = raises(lambda: mechir.read_circuit_json(p), mechir.MechirFormatError, p + ": ")
check("a cut circuit.json: MechirFormatError naming the file (%s)" % msg, ok)
ok, msg = raises(lambda: mechir.read_cmap(os.path.join(bad, "absent.cmap")), FileNotFoundError)
check("a missing .cmap: FileNotFoundError", ok, msg)

# pairs.jsonl.zst cut inside its last frame
with open(os.path.join(run_dir("many"), "pairs.jsonl.zst"), "rb") as f:
    z = f.read()
p = os.path.join(bad, "pairs.jsonl.zst")
with open(p, "wb") as f:
    f.write(z[:-100])
ok, msg = raises(lambda: mechir.read_pairs(p), mechir.MechirFormatError, p + ": ")
check("pairs.jsonl.zst cut inside its last frame: MechirFormatError naming the file (%s)" % msg, ok)

# cache: a damaged chunk, a damaged index record, a cut last record, an absent entry
d = os.path.join(bad, "run")
shutil.copytree(os.path.join(run_dir("bf16"), "cache"), os.path.join(d, "cache"))
cache = mechir.open_cache(d)
e = cache.entries()[3]
with open(e.file, "r+b") as f:
    f.seek(e.offset + 184 + e.stored_bytes // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x20]))
ok, msg = raises(lambda: cache.get(e.pair, e.hook, e.run), mechir.MechirFormatError,
                 "%s:%d: " % (e.file, e.offset), "checksum", "corrupted")
v = subprocess.run([MECHIR, "cache", "verify", d], capture_output=True, text=True)
check("a flipped bit in a chunk: MechirFormatError naming FILE.bin:OFFSET (%s); mechir cache "
      "verify fails too" % msg, ok and v.returncode != 0 and "%d" % e.offset in v.stderr + v.stdout)
idx = [os.path.join(d, "cache", f) for f in os.listdir(os.path.join(d, "cache"))
       if f.endswith(".idx")][0]
with open(idx, "rb") as f:
    good_idx = f.read()
with open(idx, "wb") as f:
    f.write(good_idx[:210] + bytes([good_idx[210] ^ 1]) + good_idx[211:])  # in a pair id
ok, msg = raises(lambda: mechir.open_cache(d), mechir.MechirFormatError,
                 idx + ": record at offset 200: record checksum")
check("a flipped bit in an index record: MechirFormatError naming the .idx and offset (%s)"
      % msg, ok and subprocess.run([MECHIR, "cache", "ls", d], capture_output=True).returncode)
with open(idx, "wb") as f:
    f.write(good_idx[:-10])
n_c = len([l for l in subprocess.run([MECHIR, "cache", "ls", d], capture_output=True,
                                     text=True).stdout.splitlines() if not l.startswith("total")])
n_py = len(mechir.open_cache(d))
check("an index cut inside its last record: that record ignored, as mechir cache ls does "
      "(%d entries, mechir %d)" % (n_py, n_c), n_py == n_c == (len(good_idx) - 16) // 184 - 1)
ok, msg = raises(lambda: mechir.open_cache(run_dir("bf16")).get("0" * 16, "blocks.0.attn.hook_pattern"),
                 KeyError, "0000000000000000", "blocks.0.attn.hook_pattern")
check("an absent entry: KeyError naming the pair and the hook", ok, msg)
ok, msg = raises(lambda: mechir.open_cache(run_dir("bf16")).get("xyz", "h"), ValueError, "xyz")
check("a pair id that is not hex: ValueError naming it", ok, msg)

print("%d failed" % fails if fails else "PASS: python reader")
sys.exit(1 if fails else 0)
