#!/usr/bin/python3
"""Writes t5-buckets.json: T5's relative position buckets for key - query in [-3000, 3000],
bidirectional (encoder) and causal (decoder), for (32 buckets, max distance 128) and (64, 256),
computed in torch by a transcription of Hugging Face's T5Attention._relative_position_bucket
(modeling_t5.py), float32 as there. Run: /usr/bin/python3 tests/data/models/t5-buckets.py"""
import json
import math
import os

import torch


def bucket(rel, bidirectional, num_buckets, max_distance):
    out = 0
    if bidirectional:
        num_buckets //= 2
        out += (rel > 0).to(torch.long) * num_buckets
        rel = torch.abs(rel)
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (
        torch.log(rel.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return out + torch.where(is_small, rel, large)


LO, HI = -3000, 3000
rel = torch.arange(LO, HI + 1)
sets = []
for nb, md in [(32, 128), (64, 256)]:
    for bi in [True, False]:
        sets.append({"num_buckets": nb, "max_distance": md, "bidirectional": bi, "from": LO,
                     "buckets": bucket(rel, bi, nb, md).tolist()})
doc = {"torch": torch.__version__, "note": __doc__.split("\n\n")[0], "sets": sets}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "t5-buckets.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
