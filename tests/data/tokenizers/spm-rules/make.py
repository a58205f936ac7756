"""A small sentencepiece model for the normalizer's corners the fixture models never reach, and
its goldens from Debian's python3-sentencepiece: custom normalization rules that nest (a rule
for "ab" and one for "a": the longest must win), remove_extra_whitespaces false (spaces kept as
they come) and add_dummy_prefix false. Trained on the first 300 Debian descriptions.
usage: /usr/bin/python3 make.py  (writes spiece.model and golden.jsonl here)"""
import json
import os
import subprocess
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "..", "..", "debian", "docs.tsv.zst")

# source code points -> target code points (hex), as sentencepiece's normalization_rule_tsv
RULES = [("61 62", "79"), ("61", "41 41"), ("78 78 78", "7A"), ("78", "58"), ("FF21", "41"),
         ("3000", "20"), ("9", "20")]
TEXTS = ["ab", "a", "aab", "abab a ab", "xxxx", "xx x", "  two  spaces  ", "\ttab\tand  runs",
         "Ａbc", "\u3000ideographic\u3000space", "", " ", "a  b", "trailing   ", "   leading",
         "xxx ab a x", "unknown \u2603 snowman", "Ωmega ab"]

with tempfile.TemporaryDirectory() as tmp:
    docs = subprocess.run(["zstd", "-dc", DOCS], check=True, capture_output=True).stdout
    lines = [l.partition("\t")[2] for l in docs.decode().split("\n")[:300]]
    with open(os.path.join(tmp, "c.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(tmp, "rules.tsv"), "w") as f:
        for a, b in RULES:
            f.write("%s\t%s\n" % (a, b))
    spm.SentencePieceTrainer.train(
        input=os.path.join(tmp, "c.txt"), model_prefix=os.path.join(tmp, "m"),
        model_type="unigram", vocab_size=300, character_coverage=0.99,
        normalization_rule_tsv=os.path.join(tmp, "rules.tsv"), remove_extra_whitespaces=False,
        add_dummy_prefix=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    with open(os.path.join(tmp, "m.model"), "rb") as f:
        model = f.read()
with open(os.path.join(HERE, "spiece.model"), "wb") as f:
    f.write(model)
sp = spm.SentencePieceProcessor(model_proto=model)
with open(os.path.join(HERE, "golden.jsonl"), "w", encoding="utf-8") as f:
    for t in TEXTS + lines[:40]:
        f.write(json.dumps({"text": t, "ids": sp.encode(t), "pieces": sp.encode(t, out_type=str)},
                           ensure_ascii=False) + "\n")
