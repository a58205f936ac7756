"""Recomputes every aggregate of a `mechir run` from its per-pair output, independently of the C
code, and compares it with circuit.json: counts, the mean of ratios (mean, std, n), the ratio of
means and its exact sums, the Poisson bootstrap intervals (weights drawn here from the generator
docs/STATISTICS.md documents, with the Poisson table computed here with 80-digit decimals), for
heads and blocks by role, over all pairs and per stratum (relevance grade, rank bucket,
direction). Optionally (--width) compares the interval widths of the heads with a plain
nonparametric bootstrap that resamples pairs (numpy).

usage: stats_check.py OUT [--width]   (exit 0: every check passed; prints what it checked)
       stats_check.py --same A.json B.json
                      two circuit.json forms of the same pairs (a merge of shards and the
                      whole run): counts and the exact estimates (ratio of means, its sums,
                      the intervals, n) identical, mean and std of the mean of ratios (Welford
                      and Chan's combination) within 1e-12 relative
"""
import json
import os
import subprocess
import sys
from decimal import ROUND_FLOOR, Decimal, getcontext

import numpy as np

MASK = (1 << 64) - 1
BLOCKS = ("resid_pre", "attn_out", "mlp_out")


def poisson_table():
    getcontext().prec = 80
    e, cdf, fact, out = Decimal(-1).exp(), Decimal(0), 1, []
    for k in range(20):
        fact *= max(k, 1)
        cdf += e / fact
        out.append(int((cdf * (1 << 64)).to_integral_value(rounding=ROUND_FLOOR)))
    return out


TABLE = poisson_table()


def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def weight(seed, pair_id, b):
    u = mix(mix(mix(seed) ^ pair_id) ^ b)
    return sum(1 for t in TABLE if u >= t)


def read_pairs(out):
    plain = os.path.join(out, "pairs.jsonl")
    if os.path.exists(plain):
        with open(plain, encoding="utf-8") as f:
            text = f.read()
    else:
        text = subprocess.run(["zstd", "-dc", plain + ".zst"], check=True,
                              capture_output=True).stdout.decode()
    return [json.loads(line) for line in text.splitlines() if line]


class Cell:
    """One component's contributions: effect, patched - baseline, perturbed - baseline."""

    def __init__(self):
        self.eff, self.num, self.den, self.ids = [], [], [], []

    def add(self, pair_id, eff, num, den):
        self.eff.append(eff)
        self.num.append(num)
        self.den.append(den)
        self.ids.append(pair_id)


class Checker:
    def __init__(self, seed, B, level):
        self.seed, self.B, self.level = seed, B, level
        self.checked = self.bad = 0
        self.weights = {}

    def fail(self, what):
        self.bad += 1
        if self.bad <= 20:
            print("FAIL -", what)

    def close(self, what, got, want, tol):
        self.checked += 1
        if got is None or want is None:
            if got is not want:
                self.fail(f"{what}: {got} vs {want}")
            return
        if not abs(got - want) <= tol:
            self.fail(f"{what}: {got!r} vs {want!r} (tolerance {tol:.3g})")

    def w(self, pair_id):
        if pair_id not in self.weights:
            self.weights[pair_id] = np.array(
                [weight(self.seed, pair_id, b) for b in range(1, self.B + 1)], dtype=float)
        return self.weights[pair_id]

    def cell(self, what, c, block, idx):
        """Compares one cell of a circuit.json block (idx: the nested indices) with c."""
        def at(key):
            v = block[key]
            for i in idx:
                v = v[i]
            return v
        n = len(c.eff)
        self.checked += 1
        if at("n") != n:
            self.fail(f"{what}: n {at('n')} vs {n}")
            return
        if n == 0:
            return
        eff, num, den = np.array(c.eff), np.array(c.num), np.array(c.den)
        self.close(what + " mean", at("mean"), float(eff.mean()),
                   1e-9 * abs(eff.mean()) + 1e-12 * np.abs(eff).max())
        if n >= 2:
            sd = float(eff.std(ddof=1))
            self.close(what + " std", at("std"), sd, 1e-9 * sd + 1e-12 * np.abs(eff).max())
        # sums: each value was rounded to 2^-40 by the exact sums
        q = n * 2.0 ** -41
        sn, sd_ = float(num.sum()), float(den.sum())
        self.close(what + " sum num", at("sum_patched_minus_baseline"), sn,
                   1e-9 * np.abs(num).sum() + q)
        self.close(what + " sum den", at("sum_perturbed_minus_baseline"), sd_,
                   1e-9 * np.abs(den).sum() + q)
        rom = sn / sd_ if sd_ != 0 else None
        tol = None if rom is None else (
            1e-9 * abs(rom) + (1e-9 * (np.abs(num).sum() + abs(rom) * np.abs(den).sum()) + 2 * q)
            / abs(sd_))
        self.close(what + " ratio of means", at("ratio_of_means"), rom, tol or 0)
        if self.B:
            W = np.stack([self.w(i) for i in c.ids])  # (n, B)
            rn, rd = W.T @ num, W.T @ den
            ok = rd != 0
            ratios = rn[ok] / rd[ok]
            if len(ratios) >= 2:
                a = (1 - self.level) / 2
                lo, hi = np.percentile(ratios, [100 * a, 100 * (1 - a)])
                # the replicates' own rounding, propagated like the ratio's
                wt = (1e-9 * np.abs(ratios).max() + (1e-9 * (np.abs(num).sum() + np.abs(ratios).max()
                      * np.abs(den).sum()) + 40 * q) / np.abs(rd[ok]).min())
                self.close(what + " ci_low", at("ci_low"), float(lo), wt)
                self.close(what + " ci_high", at("ci_high"), float(hi), wt)
            else:
                self.close(what + " ci_low", at("ci_low"), None, 0)


def f32(x):
    """A per-pair map value as the program holds it: pairs.jsonl prints floats with 9 digits,
    which name one float32 exactly (but not the double that Python would parse)."""
    return float(np.float32(x))


def maps_of(pairs, spec_heads, L, roles):
    """heads[(l, h)] and blocks[(k, l, r)] cells over the given used pairs."""
    heads, blocks = {}, {}
    for p in pairs:
        pid = int(p["pair_id"], 16)
        sb, sp = p["score_baseline"], p["score_perturbed"]
        den = sp - sb
        if "heads" in p:
            for l in range(L):
                for h in range(spec_heads):
                    heads.setdefault((l, h), Cell()).add(
                        pid, f32(p["heads"][l][h]), f32(p["heads_scores"][l][h]) - sb, den)
        if "blocks" in p:
            r_of = [roles.index(r) for r in p["roles"]]
            for k, comp in enumerate(BLOCKS):
                for l in range(L):
                    eff = [f32(x) for x in p["blocks"][comp][l]]
                    sc = [f32(x) for x in p["blocks_scores"][comp][l]]
                    for r in set(r_of):
                        pos = [t for t, x in enumerate(r_of) if x == r]
                        e = sum(eff[t] for t in pos) / len(pos)
                        y = sum(sc[t] for t in pos) / len(pos)
                        blocks.setdefault((k, l, r), Cell()).add(pid, e, y - sb, den)
    return heads, blocks


def check_maps(ck, label, used, cj_heads, cj_blocks, L, NH, roles):
    heads, blocks = maps_of(used, NH, L, roles)
    if cj_heads is not None:
        for l in range(L):
            for h in range(NH):
                ck.cell(f"{label} head {l}.{h}", heads.get((l, h), Cell()), cj_heads, (l, h))
    if cj_blocks is not None and blocks:
        for k in range(3):
            for l in range(L):
                for r in range(len(roles)):
                    ck.cell(f"{label} {BLOCKS[k]} {l} {roles[r]}",
                            blocks.get((k, l, r), Cell()), cj_blocks, (k, l, r))


def stratum_names(p, sign):
    names = []
    if p.get("relevance", -1) >= 0:
        names.append(f"relevance={p['relevance']}")
    if p.get("rank", -1) >= 1:
        b = (p["rank"] - 1) // 10
        names.append(f"rank={10 * b + 1}-{10 * b + 10}")
    d = (p["score_perturbed"] - p["score_baseline"]) * sign
    names.append("direction=with" if d > 0 else "direction=against")
    return names


def width_check(cj, used, L, NH, level):
    """Interval widths of the heads against numpy's resampling bootstrap."""
    heads, _ = maps_of(used, NH, L, cj["blocks_by_role"]["roles"])
    rng = np.random.default_rng(12345)
    n = len(used)
    idx = rng.integers(0, n, size=(4000, n))
    a = (1 - level) / 2
    ratios = []
    for l in range(L):
        for h in range(NH):
            c = heads[(l, h)]
            num, den = np.array(c.num), np.array(c.den)
            reps = num[idx].sum(axis=1) / den[idx].sum(axis=1)
            lo, hi = np.percentile(reps, [100 * a, 100 * (1 - a)])
            got = cj["heads"]["ci_high"][l][h] - cj["heads"]["ci_low"][l][h]
            ratios.append(got / (hi - lo))
    ratios = np.array(ratios)
    print(f"interval width / numpy resampling width over {len(ratios)} heads: "
          f"min {ratios.min():.3f} median {np.median(ratios):.3f} max {ratios.max():.3f}")
    return len(ratios) > 0 and bool(np.all(np.abs(ratios - 1) <= 0.25))


EXACT = ("ratio_of_means", "ci_low", "ci_high", "sum_patched_minus_baseline",
         "sum_perturbed_minus_baseline", "n")


def flat(x):
    return [v for y in x for v in flat(y)] if isinstance(x, list) else [x]


def same(path_a, path_b):
    with open(path_a, encoding="utf-8") as f:
        a = json.load(f)
    with open(path_b, encoding="utf-8") as f:
        b = json.load(f)

    def blocks(m):
        out = {"heads": m["heads"], "blocks": m["blocks_by_role"]}
        for name, st in m["strata"].items():
            out[name + " heads"], out[name + " blocks"] = st["heads"], st["blocks_by_role"]
        return out
    ba, bb = blocks(a), blocks(b)
    bad = []
    if sorted(ba) != sorted(bb):
        bad.append(f"blocks {sorted(ba)} vs {sorted(bb)}")
    if a["pairs"] != b["pairs"]:
        bad.append(f"pairs {a['pairs']} vs {b['pairs']}")
    n = 0
    for k in set(ba) & set(bb):
        for key in EXACT:
            n += 1
            if ba[k][key] != bb[k][key]:
                bad.append(f"{k} {key} differs")
        for key in ("mean", "std"):
            for x, y in zip(flat(ba[k][key]), flat(bb[k][key])):
                n += 1
                if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-12 * max(1, abs(y))):
                    bad.append(f"{k} {key}: {x} vs {y}")
    for line in bad[:10]:
        print("FAIL -", line)
    print(f"{n} arrays and values compared over {len(ba)} blocks, {len(bad)} differ")
    return n > 0 and not bad


def main():
    if sys.argv[1] == "--same":
        sys.exit(0 if same(sys.argv[2], sys.argv[3]) else 1)
    out = sys.argv[1]
    with open(os.path.join(out, "circuit.json"), encoding="utf-8") as f:
        cj = json.load(f)
    pairs = read_pairs(out)
    L, NH = cj["model"]["layers"], cj["model"]["heads"]
    roles = cj["blocks_by_role"]["roles"]
    boot = cj["bootstrap"]
    ck = Checker(cj["perturbation"]["seed"], boot["replicates"], boot["level"])
    sign = -1 if cj["perturbation"]["kind"] == "lnc1" else 1
    used = [p for p in pairs if "skipped" not in p and "error" not in p]
    scored = [p for p in pairs if "error" not in p]
    counts = {"total": len(pairs), "used": len(used),
              "skipped": sum(1 for p in pairs if "skipped" in p and "error" not in p),
              "failed": sum(1 for p in pairs if "error" in p),
              "with_axiom": sum(1 for p in scored
                                if (p["score_perturbed"] - p["score_baseline"]) * sign > 0),
              "against_axiom": sum(1 for p in scored
                                   if (p["score_perturbed"] - p["score_baseline"]) * sign < 0)}
    for k, v in counts.items():
        ck.close(f"pairs {k}", cj["pairs"][k], v, 0)
    has_heads = "heads" in cj["sweeps"]
    has_blocks = "blocks" in cj["sweeps"]
    check_maps(ck, "all", used, cj["heads"] if has_heads else None,
               cj["blocks_by_role"] if has_blocks else None, L, NH, roles)
    strata = {}
    for p in used:
        for name in stratum_names(p, sign):
            strata.setdefault(name, []).append(p)
    if sorted(cj["strata"]) != sorted(strata):
        ck.fail(f"strata {sorted(cj['strata'])} vs {sorted(strata)}")
    for name, members in strata.items():
        st = cj["strata"].get(name)
        if st is None:
            continue
        ck.close(f"{name} pairs", st["pairs"], len(members), 0)
        check_maps(ck, name, members, st["heads"] if has_heads else None,
                   st["blocks_by_role"] if has_blocks else None, L, NH, roles)
    print(f"{ck.checked} values checked over {len(pairs)} pairs ({len(used)} used), "
          f"{len(strata)} strata, {ck.bad} differ")
    ok = ck.checked > 0 and ck.bad == 0 and len(used) > 0
    if "--width" in sys.argv[2:]:
        ok = width_check(cj, used, L, NH, boot["level"]) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
