"""Every documented hook through `mechir run --cache` and `mechir cache get`, against the float64
torch reference encoder_ref.py; and the bad hook names of --cache and cache get.

usage: hooks_check.py MECHIR REPO_ROOT TMPDIR

- For each BERT-family fixture model (and the demo cross-encoder): a run of two TFC1 pairs that
  caches hook_full_embed and blocks.*.X for every X of docs/HOOKS.md; every entry of both runs of
  the pairs (both for the demo model, the first for the others) read back as .npy and compared element-wise with the reference's activation of the
  same token ids, |got - want| <= 1e-5 + 1e-4 |want|; the cache holds exactly the expected
  entries.
- A typo in --cache (and in a JOB.json's "cache"): exit 1, one line "unknown hook 'X' (did you
  mean 'Y'?)", no output directory; a typo in `cache get --hook`: the nearest stored hook.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encoder_ref import Encoder  # noqa: E402

MECHIR, ROOT, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
MODELS = ["examples/demo-ce"] + ["tests/data/models/" + m for m in (
    "bert-ce-tiny", "bert-ce-tiny-gelu-tanh", "electra-ce-tiny", "distilbert-ce-tiny",
    "roberta-ce-tiny", "distilbert-dot-tiny")]
SUFFIXES = ["hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
            "attn.hook_pattern", "attn.hook_z", "attn.hook_result", "hook_attn_out",
            "hook_resid_mid", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
            "hook_normalized_resid_post"]
failures = []
counts = {"values": 0, "entries": 0}


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def mechir(*args):
    return subprocess.run([MECHIR, *args], capture_output=True, text=True)


def docs_hooks():
    """The hook names docs/HOOKS.md's table lists (so a documented hook cannot be left out)."""
    names = set()
    with open(os.path.join(ROOT, "docs", "HOOKS.md"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("| `"):
                cell = line.split("|")[1]
                for part in cell.replace("`", "").split(","):
                    part = part.strip()
                    if part.startswith("blocks.{l}."):
                        names.add(part[len("blocks.{l}."):])
                    elif part.startswith("hook_") and "{l}" not in part:
                        names.add(part if part == "hook_full_embed" else "attn." + part)
    return names


def input_tsv():
    path = os.path.join(TMP, "pairs.tsv")
    with open(os.path.join(ROOT, "examples", "demo-200.tsv"), encoding="utf-8") as f:
        rows = [next(f) for _ in range(3)][1:]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(rows)
    return path


def check_model(rel, tsv):
    model = os.path.join(ROOT, rel)
    name = os.path.basename(rel)
    out = os.path.join(TMP, "run-" + name)
    hooks = ["hook_full_embed"] + ["blocks.*." + s for s in SUFFIXES]
    p = mechir("run", "--model", model, "--input", tsv, "--max-len", "40", "--out", out,
               "--pairs-format", "jsonl", "--cache", ",".join(hooks))
    if p.returncode != 0:
        fail("%s: mechir run --cache exited %d: %s" % (name, p.returncode, p.stderr.strip()))
        return
    ref = Encoder(model)
    with open(os.path.join(out, "pairs.jsonl"), encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    read = pairs if name == "demo-ce" else pairs[:1]  # `cache get` costs a process an entry
    names = ["hook_full_embed"] + ["blocks.%d.%s" % (l, s) for l in range(ref.L)
                                   for s in SUFFIXES]
    ls = mechir("cache", "ls", out).stdout.splitlines()
    want_entries = len(pairs) * 2 * len(names)
    if len([x for x in ls if not x.startswith("total")]) != want_entries or not pairs:
        fail("%s: cache ls lists %d entries, want %d" % (name, len(ls) - 1, want_entries))
    worst = 0.0
    for pr in read:
        roles = pr["roles"]
        for run, key in (("baseline", "baseline_ids"), ("perturbed", "perturbed_ids")):
            ids = pr[key]
            types = [0] * len(ids)
            if not ref.distil and not ref.roberta and "sep" in roles:
                first = roles.index("sep")
                types = [0 if t <= first else 1 for t in range(len(ids))]
            _, acts = ref.forward(ids, types, query_emb=ref.embedding([101, 102]) if ref.bi
                                  else None)
            for hook in names:
                npy = os.path.join(TMP, "x.npy")
                g = mechir("cache", "get", out, "--pair", pr["pair_id"], "--hook", hook, "--run",
                           run, "-o", npy)
                if g.returncode != 0:
                    fail("%s: cache get %s %s: %s" % (name, hook, run, g.stderr.strip()))
                    continue
                got = np.load(npy)
                want = acts[hook].detach().numpy()
                if got.shape != want.shape:
                    fail("%s %s %s: shape %s, want %s" % (name, hook, run, got.shape, want.shape))
                    continue
                diff = np.abs(got.astype(np.float64) - want)
                bad = diff > 1e-5 + 1e-4 * np.abs(want)
                counts["values"] += want.size
                counts["entries"] += 1
                worst = max(worst, float(diff.max()))
                if bad.any():
                    i = np.unravel_index(np.argmax(bad), bad.shape)
                    fail("%s pair %s %s %s%s: got %.9g want %.9g (%d of %d differ)" % (
                        name, pr["pair_id"], run, hook, list(i), got[i], want[i], bad.sum(),
                        want.size))
    print("ok: %s: %d pairs, %d hooks x 2 runs, max |diff| %.3g" % (name, len(read), len(names),
                                                                    worst))


def check_bad_names(tsv):
    model = os.path.join(ROOT, "examples", "demo-ce")
    cases = [("blocks.0.attn.hook_reslt", "blocks.0.attn.hook_result"),
             ("blocks.*.mlp.hook_pots", "blocks.*.mlp.hook_post"),
             ("blocks.1.hook_resid_psot", "blocks.1.hook_resid_post"),
             ("blocks.2.attn.hook_attn_score", "blocks.2.attn.hook_attn_scores")]
    for bad, near in cases:
        out = os.path.join(TMP, "bad-run")
        for how in ("argv", "job"):
            if how == "argv":
                p = mechir("run", "--model", model, "--input", tsv, "--max-len", "40", "--out",
                           out, "--cache", bad)
            else:
                job = os.path.join(TMP, "job.json")
                with open(job, "w") as f:
                    json.dump({"model": model, "input": tsv, "max-len": 40, "out": out,
                               "cache": bad}, f)
                p = mechir("run", job)
            want = "unknown hook '%s' (did you mean '%s'?)" % (bad, near)
            lines = p.stderr.strip().splitlines()
            if p.returncode != 1 or len(lines) != 1 or want not in lines[0]:
                fail("run --cache %s (%s): exit %d, stderr %r; want one line with %r" % (
                    bad, how, p.returncode, p.stderr, want))
            if os.path.exists(out):
                fail("run --cache %s (%s) left %s behind" % (bad, how, out))
    out = os.path.join(TMP, "run-demo-ce")
    pair = json.loads(open(os.path.join(out, "pairs.jsonl")).readline())["pair_id"]
    p = mechir("cache", "get", out, "--pair", pair, "--hook", "blocks.3.attn.hook_patern", "-o",
               os.path.join(TMP, "typo.npy"))
    want = "unknown hook 'blocks.3.attn.hook_patern' (did you mean 'blocks.3.attn.hook_pattern'?)"
    if p.returncode != 1 or want not in p.stderr or os.path.exists(os.path.join(TMP, "typo.npy")):
        fail("cache get with a typo: exit %d, %r" % (p.returncode, p.stderr))


def main():
    documented = docs_hooks()
    listed = set(SUFFIXES) | {"hook_full_embed"}
    if documented != listed:
        fail("docs/HOOKS.md lists %s; this check covers %s" % (sorted(documented),
                                                                sorted(listed)))
    tsv = input_tsv()
    for rel in MODELS:
        check_model(rel, tsv)
    check_bad_names(tsv)
    print("%s: %d cached activations (%d values) against the torch reference, %d failures" % (
        "FAIL" if failures or not counts["values"] else "ok", counts["entries"], counts["values"],
        len(failures)))
    sys.exit(1 if failures or not counts["values"] else 0)


if __name__ == "__main__":
    main()
