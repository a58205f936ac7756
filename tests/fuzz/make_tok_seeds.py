"""Seeds of fuzz_hftok (small tokenizer.json files, one per supported part, and refusals) and
fuzz_spm (sentencepiece models trained here by Debian's python3-sentencepiece on Debian
descriptions, and hand-made ModelProto bytes that must be refused). good-* must load, bad-* must
be refused (replay.c checks). usage: /usr/bin/python3 make_tok_seeds.py  (from any directory)"""
import json
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
HF = os.path.join(HERE, "corpus", "hftok")
SPM = os.path.join(HERE, "corpus", "spm")


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def tj(**parts):
    base = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": None}
    base.update(parts)
    return json.dumps(base, ensure_ascii=False)


def added(id_, content, **kw):
    a = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
    a.update(kw)
    return a


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def hftok_seeds():
    wp_vocab = {t: i for i, t in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "na", "##ive",
         "caf", "##e", "!", ",", ".", "a", "##b", "un", "##aff", "##able", "中", "文"])}
    specials = [added(i, t) for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])]
    tpl = {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
           "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                              "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}
    bert_norm = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                 "strip_accents": None, "lowercase": True}
    wp = {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
          "max_input_chars_per_word": 100, "vocab": wp_vocab}
    write(HF, "good-wordpiece-bert.json", tj(added_tokens=specials, normalizer=bert_norm,
                                             pre_tokenizer={"type": "BertPreTokenizer"},
                                             post_processor=tpl, model=wp))
    write(HF, "good-wordpiece-bertprocessing.json",
          tj(added_tokens=specials, normalizer=bert_norm,
             pre_tokenizer={"type": "BertPreTokenizer"},
             post_processor={"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
             model=wp))
    syms = bytes_to_unicode()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for s in syms:
        vocab[s] = len(vocab)
    merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["Ġ", "a"], ["e", "r"], ["i", "n"],
              ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["l", "d"], ["Ġwor", "ld"], ["x", "x"]]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    bpe_added = [added(0, "<s>"), added(1, "<pad>"), added(2, "</s>"), added(3, "<unk>"),
                 added(vocab["<mask>"], "<mask>", lstrip=True)]
    bpe = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
           "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
           "ignore_merges": False, "vocab": vocab, "merges": merges}
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    rp = {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
          "add_prefix_space": False}
    write(HF, "good-bpe-bytelevel-roberta.json",
          tj(added_tokens=bpe_added, pre_tokenizer=bl, post_processor=rp, model=bpe))
    legacy = dict(bpe, merges=[a + " " + b for a, b in merges])
    write(HF, "good-bpe-legacy-merges.json",
          tj(added_tokens=bpe_added, pre_tokenizer=dict(bl, add_prefix_space=True),
             post_processor={"type": "ByteLevel"}, model=legacy))
    uni_vocab = [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["▁", -2.0], ["▁a", -3.0],
                 ["a", -4.0], ["x", -5.0], ["xx", -6.0], ["▁the", -3.5], ["e", -4.5],
                 ["h", -4.7], ["t", -4.9], ["▁x", -5.5], ["l", -5.1], ["o", -5.2]]
    uni = {"type": "Unigram", "unk_id": 2, "vocab": uni_vocab, "byte_fallback": False}
    t5_tpl = {"type": "TemplateProcessing",
              "single": [{"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "</s>", "type_id": 0}}],
              "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}},
                       {"Sequence": {"id": "B", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
              "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}}
    seq_norm = {"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": False, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"},
        {"type": "Replace", "pattern": {"String": "``"}, "content": "\""}]}
    meta = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    t5_added = [added(0, "<pad>"), added(1, "</s>"), added(2, "<unk>")]
    write(HF, "good-unigram-metaspace.json",
          tj(added_tokens=t5_added, normalizer=seq_norm, pre_tokenizer=meta,
             post_processor=t5_tpl, model=uni))
    old_pre = {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}]}
    with open(os.path.join(DATA, "tokenizers", "unigram-t5", "tokenizer.json"),
              encoding="utf-8") as f:
        t5 = json.load(f)
    charsmap = t5["normalizer"]["normalizers"][0]
    write(HF, "good-unigram-precompiled-old-t5.json",
          tj(added_tokens=t5_added, normalizer=charsmap, pre_tokenizer=old_pre,
             post_processor=t5_tpl, model=uni))
    write(HF, "bad-normalizer-nfkc.json", tj(normalizer={"type": "NFKC"}, model=wp))
    write(HF, "bad-merge-unknown-token.json",
          tj(model=dict(bpe, merges=merges + [["q", "@@"]])))
    write(HF, "bad-unigram-unk-null.json", tj(model=dict(uni, unk_id=None)))
    write(HF, "bad-byte-fallback.json", tj(model=dict(bpe, byte_fallback=True)))
    write(HF, "bad-template-unknown-special.json",
          tj(post_processor=dict(t5_tpl, special_tokens={}), model=uni))
    write(HF, "bad-truncated.json", tj(model=wp)[:300])
    write(HF, "bad-charsmap-not-base64.json",
          tj(normalizer={"type": "Precompiled", "precompiled_charsmap": "!!!"}, model=uni))


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def piece(p, score, type_=1):
    return field(1, 2, field(1, 2, p.encode()) + field(2, 5, struct.pack("<f", score)) +
                 field(3, 0, varint(type_)))


def spm_seeds():
    import sentencepiece as sp_lib

    text = subprocess.run(["zstd", "-dc", os.path.join(DATA, "debian", "docs.tsv.zst")],
                          check=True, capture_output=True).stdout.decode().split("\n")[:300]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for line in text:
                f.write(line.partition("\t")[2] + "\n")
        for name, rule, size in (("identity", "identity", 60), ("nmt-nfkc", "nmt_nfkc", 80)):
            prefix = os.path.join(tmp, name)
            sp_lib.SentencePieceTrainer.train(input=corpus, model_prefix=prefix,
                                              model_type="unigram", vocab_size=size,
                                              normalization_rule_name=rule,
                                              character_coverage=0.98, minloglevel=2)
            with open(prefix + ".model", "rb") as f:
                model = f.read()
            write(SPM, "good-trained-%s-%s.model" % (name, "xlmr" if len(model) & 1 else "t5"),
                  model)
            if name == "identity":
                small = model
    hand = piece("<unk>", 0, 2) + piece("</s>", 0, 3) + piece("▁a", -1.5) + piece("a", -2.5)
    write(SPM, "good-hand-four-pieces.model", hand)
    write(SPM, "good-hand-no-dummy-prefix.model",
          hand + field(3, 2, field(3, 0, b"\x00") + field(4, 0, b"\x00") + field(5, 0, b"\x00")))
    write(SPM, "bad-truncated.model", small[: len(small) // 2])
    write(SPM, "bad-bpe-model-type.model", hand + field(2, 2, field(3, 0, b"\x02")))
    write(SPM, "bad-byte-fallback.model", hand + field(2, 2, field(35, 0, b"\x01")))
    write(SPM, "bad-byte-piece.model", hand + piece("<0x41>", 0, 6))
    write(SPM, "bad-duplicate-piece.model", hand + piece("a", -3))
    write(SPM, "bad-no-unknown.model", piece("</s>", 0, 3) + piece("a", -1))
    write(SPM, "bad-piece-type-9.model", hand + piece("b", -3, 9))
    write(SPM, "bad-charsmap-short.model", hand + field(3, 2, field(2, 2, b"\x09\x09")))
    write(SPM, "bad-group-wire-type.model", hand + bytes([3 << 3 | 3]))
    write(SPM, "bad-empty.model", b"")


hftok_seeds()
spm_seeds()
