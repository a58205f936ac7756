"""The reference run of tokenizers_ref.sh: the first N Debian documents (tests/data/debian), each
alone and as the pair (its package's short description, the document), through `mechir tokenize`
and through the real libraries -- Hugging Face tokenizers (hf_encode.js, the Node binding) for the
tokenizer.json fixtures, Debian's python3-sentencepiece for the .model fixtures -- ids and token
types compared one by one. Each tokenizer is also read from its older files where the fixture
has them (vocab.json + merges.txt, vocab.txt + tokenizer_config.json) against the same reference.

usage: /usr/bin/python3 tokenizers_ref.py MECHIR DATA NODE_MODULES N WORKDIR
Exit 0 when every value is identical and more than zero were compared, else 1."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_zst_tsv(path, limit=None):
    out = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    rows = []
    for line in out.decode("utf-8").split("\n"):
        if not line:
            continue
        key, _, text = line.partition("\t")
        rows.append((key, text))
        if limit and len(rows) == limit:
            break
    return rows


def write_jsonl(path, objs):
    with open(path, "w", encoding="utf-8") as f:
        for o in objs:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")


def mechir_encode(mechir, model_dir, inp, pair):
    cmd = [mechir, "tokenize", "--model", model_dir, "--input", inp]
    if pair:
        cmd.append("--pair")
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                r.stderr.decode("utf-8", "replace").strip()))
    return [json.loads(l) for l in r.stdout.decode("utf-8").split("\n") if l]


def hf_encode(modules, tokfile, inp, mode):
    r = subprocess.run(["node", os.path.join(HERE, "hf_encode.js"), modules, tokfile, inp, mode],
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("hf_encode.js %s: %s" % (tokfile, r.stderr.decode().strip()))
    return [json.loads(l) for l in r.stdout.decode("utf-8").split("\n") if l]


def spm_encode(model, layout, rows, pair):
    """sentencepiece's ids composed as the slow transformers tokenizers compose them (README of
    tests/data/tokenizers): T5 a </s> [b </s>]; XLM-R fairseq <s> a </s> [</s> b </s>]."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)
    unk = sp.unk_id()

    def ids(text):
        v = sp.encode(text)
        if layout == "t5":
            return v + [1]
        return [3 if i == unk else i + 1 for i in v] + [2]

    out = []
    for q, d in rows:
        if layout == "t5":
            v = ids(q) + ids(d) if pair else ids(d)
        else:
            v = [0] + ids(q) + [2] + ids(d) if pair else [0] + ids(d)
        out.append({"ids": v, "types": [0] * len(v)})
    return out


def compare(label, got, want, stats):
    if len(got) != len(want):
        print("FAIL %s: %d lines from mechir, %d from the reference" % (label, len(got), len(want)))
        stats["bad"] += 1
        return
    bad = values = 0
    for k, (g, w) in enumerate(zip(got, want)):
        for key_g, key_w in (("ids", "ids"), ("token_types", "types")):
            a, b = g[key_g], w[key_w]
            if a != b:
                if bad < 3:
                    i = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]),
                             min(len(a), len(b)))
                    print("MISMATCH %s doc %d %s[%d]: mechir %s, reference %s (lengths %d, %d)"
                          % (label, k + 1, key_g, i, a[i:i + 5], b[i:i + 5], len(a), len(b)))
                bad += 1
            values += len(b)
    stats["values"] += values
    stats["bad"] += bad
    print("%s %s: %d encodings, %d values compared, %d differ"
          % ("ok  " if not bad else "FAIL", label, len(got), values, bad))


def linked_dir(workdir, name, src, files):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    for f in files:
        os.symlink(os.path.abspath(os.path.join(src, f)), os.path.join(d, f))
    return d


def main():
    mechir, data, modules, n, workdir = sys.argv[1:6]
    n = int(n)
    docs = read_zst_tsv(os.path.join(data, "debian", "docs.tsv.zst"), n)
    topics = dict(read_zst_tsv(os.path.join(data, "debian", "topics.tsv.zst")))
    rows = [(topics.get(d, d), t) for d, t in docs]
    single = os.path.join(workdir, "single.jsonl")
    pairs = os.path.join(workdir, "pair.jsonl")
    write_jsonl(single, [{"text": t} for _, t in rows])
    write_jsonl(pairs, [{"query": q, "text": t} for q, t in rows])
    print("%d Debian documents (%d characters), alone and as pairs"
          % (len(rows), sum(len(t) for _, t in rows)))
    tok = os.path.join(data, "tokenizers")
    stats = {"values": 0, "bad": 0}
    # (label, directory mechir reads, reference)
    runs = []
    for name in ("bpe-roberta", "unigram-t5", "wordpiece-cased"):
        runs.append((name + " tokenizer.json", os.path.join(tok, name),
                     ("hf", os.path.join(tok, name, "tokenizer.json"))))
    runs.append(("bpe-roberta vocab.json+merges.txt",
                 linked_dir(workdir, "bpe-files", os.path.join(tok, "bpe-roberta"),
                            ["vocab.json", "merges.txt", "tokenizer_config.json"]),
                 ("hf", os.path.join(tok, "bpe-roberta", "tokenizer.json"))))
    runs.append(("wordpiece-cased vocab.txt",
                 linked_dir(workdir, "wp-files", os.path.join(tok, "wordpiece-cased"),
                            ["vocab.txt", "tokenizer_config.json"]),
                 ("hf", os.path.join(tok, "wordpiece-cased", "tokenizer.json"))))
    runs.append(("spm-t5 spiece.model", os.path.join(tok, "spm-t5"),
                 ("spm", os.path.join(tok, "spm-t5", "spiece.model"), "t5")))
    runs.append(("spm-xlmr sentencepiece.bpe.model", os.path.join(tok, "spm-xlmr"),
                 ("spm", os.path.join(tok, "spm-xlmr", "sentencepiece.bpe.model"), "xlmr")))
    for label, model_dir, ref in runs:
        for pair in (False, True):
            what = "%s %s" % (label, "pair" if pair else "single")
            try:
                got = mechir_encode(mechir, model_dir, pairs if pair else single, pair)
                if ref[0] == "hf":
                    want = hf_encode(modules, ref[1], pairs if pair else single,
                                     "pair" if pair else "single")
                else:
                    want = spm_encode(ref[1], ref[2], rows, pair)
            except RuntimeError as e:
                print("FAIL %s: %s" % (what, e))
                stats["bad"] += 1
                continue
            compare(what, got, want, stats)
    print("tokenizers reference: %d values compared, %d encodings differ"
          % (stats["values"], stats["bad"]))
    return 0 if stats["bad"] == 0 and stats["values"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
