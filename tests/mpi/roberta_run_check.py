"""Every pair of a `mechir run` over a RoBERTa / XLM-R model recomputed by the float64 torch
reference tests/cli/roberta_ref.py (checked against golden.json by cli_roberta): both scores,
every heads and blocks patched score and effect (roberta_check.check_maps' tolerances).
usage: roberta_run_check.py REPO_ROOT MODEL_DIR RUN_DIR"""
import json
import os
import sys

root, model, run_dir = sys.argv[1:4]
sys.path.insert(0, os.path.join(root, "tests", "cli"))
import roberta_check  # noqa: E402
import roberta_ref  # noqa: E402
import run_golden  # noqa: E402

ref = roberta_ref.Roberta(model)
with open(os.path.join(run_dir, "pairs.jsonl"), encoding="utf-8") as f:
    pairs = [json.loads(x) for x in f if x.strip()]
for p in pairs:
    sbr, spr, heads, blocks = ref.patch(p["baseline_ids"], p["perturbed_ids"])
    roberta_check.check_maps("%s pair %s/%s" % (os.path.basename(model), p["qid"], p["docno"]), p,
                             (heads, blocks), sbr, spr)
print("%d pairs, %d patched scores compared" % (len(pairs), roberta_check.stats["patched"]))
sys.exit(1 if run_golden.failures or not pairs or not roberta_check.stats["patched"] else 0)
