"""How well attribution patching agrees with exact patching, pair by pair and in the mean maps.

usage: atp_agreement.py MECHIR MODEL PAIRS.jsonl [N [K]]

PAIRS.jsonl is `mechir pairs` output (baseline_ids, perturbed_ids, token_types, roles). For the
first N pairs (default 200) whose score changes by at least 1e-3, runs `mechir patch --sweep
heads,blocks` exactly, with `--method atp --verify-top K` (default 8) and with `--method atp-qk
--verify-top K`, and reports, for plain AtP, the QK fix, and each of them with the verified
components (the K largest and the diff rows) replaced by their exact scores:

- per pair: Spearman correlation of every head effect with the exact ones (mean over pairs),
  and of every block effect (site x layer x position);
- mean maps (mean of the per-pair effects): overlap of the top-10 cells by |mean effect| with
  the exact map's top 10, for heads, blocks by role (site x layer x token role) and blocks by
  position (site x layer x position; positions past a pair's length count as absent).

Prints a Markdown table and a last machine-readable line (ATP_AGREEMENT ...). Standard library
only.
"""
import json
import subprocess
import sys

MECHIR, MODEL, PAIRS = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 200
K = int(sys.argv[5]) if len(sys.argv) > 5 else 8
SITES = ["resid_pre", "attn_out", "mlp_out"]


def patch(pair, *extra):
    ids = lambda xs: ",".join(str(x) for x in xs)  # noqa: E731
    args = [MECHIR, "patch", "--model", MODEL, "--ids-baseline", ids(pair["baseline_ids"]),
            "--ids-perturbed", ids(pair["perturbed_ids"]),
            "--token-types", ids(pair["token_types"]), "--sweep", "heads,blocks", *extra]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"mechir patch failed on pair {pair['pair_id']}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / (va * vb) ** 0.5 if va > 0 and vb > 0 else None


def effects(out):
    """(heads dict, blocks dict) cell -> effect."""
    heads = {(layer, h): v for layer, row in enumerate(out["heads"]) for h, v in enumerate(row)}
    blocks = {(s, layer, t): v for s in SITES
              for layer, row in enumerate(out["blocks"][s]) for t, v in enumerate(row)}
    return heads, blocks


def with_verified(out, heads, blocks):
    """The effects with every verified component's exact score put in."""
    sb, sp = out["score_baseline"], out["score_perturbed"]
    heads, blocks = dict(heads), dict(blocks)
    for v in out.get("verified", []) + out.get("verified_diff_rows", []):
        parts = v["component"].split()
        eff = (v["exact"] - sb) / (sp - sb)
        if parts[0] == "head":
            layer, h = (int(x) for x in parts[1].split("."))
            heads[(layer, h)] = eff
        else:
            blocks[(parts[0], int(parts[1]), int(parts[2]))] = eff
    return heads, blocks


class Acc:
    """Per-pair Spearman and the sums of the mean maps of one method."""

    def __init__(self):
        self.sp_heads, self.sp_blocks = [], []
        self.maps = {"heads": {}, "role": {}, "position": {}}

    def add(self, heads, blocks, roles, exact=None):
        if exact:
            keys = sorted(heads)
            s = spearman([heads[k] for k in keys], [exact[0][k] for k in keys])
            if s is not None:
                self.sp_heads.append(s)
            keys = sorted(blocks)
            s = spearman([blocks[k] for k in keys], [exact[1][k] for k in keys])
            if s is not None:
                self.sp_blocks.append(s)
        for k, v in heads.items():
            add_cell(self.maps["heads"], k, v)
        for (s, layer, t), v in blocks.items():
            add_cell(self.maps["role"], (s, layer, roles[t]), v)
            add_cell(self.maps["position"], (s, layer, t), v)


def add_cell(m, k, v):
    tot, n = m.get(k, (0.0, 0))
    m[k] = (tot + v, n + 1)


def top10(m):
    means = {k: tot / n for k, (tot, n) in m.items()}
    return set(sorted(means, key=lambda k: (-abs(means[k]), k))[:10])


def main():
    names = ["atp", "atp+verified", "atp-qk", "atp-qk+verified"]
    acc = {n: Acc() for n in ["exact"] + names}
    used = 0
    with open(PAIRS) as f:
        for line in f:
            if used >= N:
                break
            pair = json.loads(line)
            ex = patch(pair)
            if "skipped" in ex:
                continue
            exact = effects(ex)
            roles = pair["roles"]
            acc["exact"].add(*exact, roles)
            for method in ("atp", "atp-qk"):
                out = patch(pair, "--method", method, "--verify-top", str(K))
                est = effects(out)
                acc[method].add(*est, roles, exact)
                acc[method + "+verified"].add(*with_verified(out, *est), roles, exact)
            used += 1
            if used % 25 == 0:
                print(f"  {used} pairs", file=sys.stderr)
    if used == 0:
        sys.exit("no pair was patched")
    want = {k: top10(acc["exact"].maps[k]) for k in ("heads", "role", "position")}
    print(f"{used} pairs, --verify-top {K}\n")
    print("| estimate | heads Spearman (mean per pair) | blocks Spearman (mean per pair) | "
          "heads top-10 | blocks by role top-10 | blocks by position top-10 |")
    print("|---|---|---|---|---|---|")
    line = [f"ATP_AGREEMENT pairs={used} k={K}"]
    for n in names:
        a = acc[n]
        mh = sum(a.sp_heads) / len(a.sp_heads)
        mb = sum(a.sp_blocks) / len(a.sp_blocks)
        ov = {k: len(top10(a.maps[k]) & want[k]) for k in want}
        print(f"| {n} | {mh:.3f} | {mb:.3f} | {ov['heads']}/10 | {ov['role']}/10 | "
              f"{ov['position']}/10 |")
        line.append(f"{n}:heads_sp={mh:.4f},blocks_sp={mb:.4f},heads_top10={ov['heads']},"
                    f"role_top10={ov['role']},position_top10={ov['position']}")
    print("\n" + " ".join(line))


main()
