"""`mechir tokenize` against the Hugging Face goldens of tests/data/tokenizers/: for each fixture
tokenizer, every case's text alone (ids and, for hard cases, tokens), every pair (ids and token
types), and every pair cut to 48 tokens where the library does not refuse it (--max-query-len
large, so the query is never cut: the library's only_second). Cases holding NUL are left to
test_hftok (a JSONL input cannot carry NUL). Tokens are the vocabulary's strings of the ids; the
library reports the matched text instead for an unknown piece (Unigram's fused unk) and for an
added token that took spaces (lstrip/rstrip): only those may differ, and only so. Prints the count of values compared; exit 1 on the
first difference."""
import json
import os
import subprocess
import sys

mechir, data, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
tokdir = os.path.join(data, "tokenizers")
cases = [json.loads(l) for l in open(os.path.join(tokdir, "cases.jsonl"), encoding="utf-8")]
keep = [i for i, c in enumerate(cases) if "\0" not in c["text"] + "".join(c["pair"])]
assert len(keep) >= 360, len(keep)

single = os.path.join(tmp, "single.jsonl")
pairs = os.path.join(tmp, "pairs.jsonl")
with open(single, "w", encoding="utf-8") as f:
    for i in keep:
        f.write(json.dumps({"text": cases[i]["text"]}, ensure_ascii=False) + "\n")
with open(pairs, "w", encoding="utf-8") as f:
    for i in keep:
        f.write(json.dumps({"query": cases[i]["pair"][0], "text": cases[i]["pair"][1]},
                           ensure_ascii=False) + "\n")


def run(model, *args):
    out = subprocess.run([mechir, "tokenize", "--model", model, *args], check=True,
                         capture_output=True).stdout.decode("utf-8")
    return [json.loads(l) for l in out.splitlines()]


UNK = ("<unk>", "[UNK]")
compared = 0
for name in ("bpe-roberta", "unigram-t5", "wordpiece-cased"):
    model = os.path.join(tokdir, name)
    gold = [json.loads(l) for l in open(os.path.join(model, "golden.jsonl"), encoding="utf-8")]
    one = run(model, "--input", single)
    full = run(model, "--input", pairs, "--pair", "--max-query-len", "1000000")
    cut = run(model, "--input", pairs, "--pair", "--max-query-len", "1000000", "--max-len", "48")
    assert len(one) == len(full) == len(cut) == len(keep), name
    for k, i in enumerate(keep):
        g = gold[i]
        checks = [("ids", one[k]["ids"], g["ids"]),
                  ("pair_ids", full[k]["ids"], g["pair_ids"]),
                  ("pair_type_ids", full[k]["token_types"],
                   g.get("pair_type_ids", [0] * len(g["pair_ids"])))]
        if "tokens" in g:
            got = [w if t == w or (t in UNK and w) or (w.strip() == t and w != t) else t
                   for t, w in zip(one[k]["tokens"], g["tokens"])]
            checks.append(("tokens", got + one[k]["tokens"][len(got):], g["tokens"]))
        if g["pair_ids_max48"] is not None:
            checks.append(("pair_ids_max48", cut[k]["ids"], g["pair_ids_max48"]))
        for what, got, want in checks:
            if got != want:
                print(f"MISMATCH {name} {g['id']} {what}: got {got} want {want}")
                sys.exit(1)
            compared += len(want)
print(f"tokenize: {len(keep)} cases x 3 tokenizers, {compared} values identical")
assert compared > 100000
