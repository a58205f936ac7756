#!/usr/bin/env python3
"""Writes the hand-made seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/.

Good inputs are small real ones (a few tensors cut from the fixture models with their real bytes,
the fixture config.json files, the head of the bert-base-uncased vocab); bad inputs are the ones
the decoders must refuse, one per rule. Files are named good-* or bad-*; files the fuzzer added
with -merge=1 are named by their SHA-1 and are not touched here. Run from anywhere:
    python3 tests/fuzz/make_seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = os.path.join(ROOT, "tests", "data", "models")
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors ---------------------------------------------------------------------------

def st_raw(header_bytes, data=b"", hlen=None):
    """8-byte little-endian header length (default: the real one), header, data section."""
    n = len(header_bytes) if hlen is None else hlen
    return struct.pack("<Q", n) + header_bytes + data


def st_file(entries, data, metadata=None, pad=True):
    """A safetensors file from {name: (dtype, shape, [begin, end])} and the data section."""
    h = {}
    if metadata is not None:
        h["__metadata__"] = metadata
    for name, (dt, shape, offs) in entries.items():
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": offs}
    hb = json.dumps(h, separators=(",", ":")).encode()
    if pad:  # the Python writer pads the header with spaces to a multiple of 8
        hb += b" " * (-len(hb) % 8)
    return st_raw(hb, data)


def read_model(name):
    with open(os.path.join(MODELS, name, "model.safetensors"), "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:], b


def cut_model(name, keep):
    """The tensors named in keep, with their real bytes, re-laid out back to back."""
    header, data, _ = read_model(name)
    entries, out = {}, b""
    for t in keep:
        e = header[t]
        b0, b1 = e["data_offsets"]
        entries[t] = (e["dtype"], e["shape"], [len(out), len(out) + b1 - b0])
        out += data[b0:b1]
    return entries, out


def safetensors_seeds():
    t = "safetensors"
    small = ["bert.embeddings.LayerNorm.bias", "bert.embeddings.LayerNorm.weight",
             "classifier.bias", "bert.pooler.dense.bias"]
    e, d = cut_model("bert-ce-tiny", small)
    write(t, "good-bert-f32-cut.safetensors", st_file(e, d, metadata={"format": "pt"}))
    write(t, "good-bert-f32-cut-unpadded.safetensors", st_file(e, d, pad=False))
    for variant in ("bert-ce-tiny-f16", "bert-ce-tiny-bf16"):
        header, _, _ = read_model(variant)
        names = sorted(k for k, v in header.items()
                       if k != "__metadata__" and v["shape"] in ([32], [1], [2]))[:4]
        e2, d2 = cut_model(variant, names)
        write(t, "good-%s-cut.safetensors" % variant.split("-")[-1], st_file(e2, d2))
    header, _, _ = read_model("electra-ce-tiny")
    names = sorted(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 1)[:3]
    e3, d3 = cut_model("electra-ce-tiny", names)
    write(t, "good-electra-cut.safetensors", st_file(e3, d3))

    write(t, "good-empty-header.safetensors", st_raw(b"{}"))
    write(t, "good-metadata-only.safetensors", st_file({}, b"", metadata={"format": "pt"}))
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
    entries, off = {}, 0
    for dt, sz in sizes.items():
        entries["t_" + dt.lower()] = (dt, [2], [off, off + 2 * sz])
        off += 2 * sz
    write(t, "good-all-dtypes.safetensors", st_file(entries, bytes(range(off))))
    write(t, "good-scalar-and-empty.safetensors",
          st_file({"scalar": ("F32", [], [0, 4]), "empty": ("F32", [0, 3], [4, 4]),
                   "m": ("F16", [1, 1, 1, 1, 1, 1, 1, 2], [4, 8])},
                  struct.pack("<f", 1.5) + b"\x00\x3c\x00\xc0"))
    write(t, "good-trailing-bytes.safetensors",
          st_file({"a": ("U8", [3], [0, 3])}, b"abcdefgh"))
    f16 = struct.pack("<8H", 0x0000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0x7e00, 0x8001)
    write(t, "good-f16-specials.safetensors", st_file({"h": ("F16", [8], [0, 16])}, f16))

    good = st_file(e, d)
    write(t, "bad-short-5-bytes.safetensors", good[:5])
    write(t, "bad-zero-header-length.safetensors", st_raw(b"", hlen=0))
    write(t, "bad-header-beyond-file.safetensors", st_raw(b"{}", hlen=64))
    write(t, "bad-header-length-huge.safetensors", st_raw(b"{}", hlen=1 << 63))
    write(t, "bad-header-length-over-limit.safetensors", st_raw(b"{}", hlen=(100 << 20) + 1))
    write(t, "bad-truncated-data.safetensors", good[:len(good) - 7])
    _, _, full = read_model("bert-ce-tiny")
    hlen = struct.unpack("<Q", full[:8])[0]
    write(t, "bad-real-header-no-data.safetensors", full[:8 + hlen + 64])
    write(t, "bad-truncated-header.safetensors", good[:8 + 40])
    write(t, "bad-not-json.safetensors", st_raw(b"PK\x03\x04 this is a zip file", b""))
    write(t, "bad-json-array.safetensors", st_raw(b'[{"dtype":"F32"}]'))
    write(t, "bad-json-trailing-garbage.safetensors", st_raw(b'{"a":{"dtype":"U8","shape":[1],'
                                                            b'"data_offsets":[0,1]}}}', b"x"))
    write(t, "bad-entry-not-object.safetensors", st_raw(b'{"a":[1,2,3]}'))
    write(t, "bad-missing-dtype.safetensors", st_raw(b'{"a":{"shape":[1],"data_offsets":[0,1]}}',
                                                     b"x"))
    write(t, "bad-dtype-not-string.safetensors",
          st_raw(b'{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}', b"xxxx"))
    write(t, "bad-unsupported-dtype.safetensors",
          st_file({"a": ("C64", [1], [0, 8])}, b"\0" * 8))
    write(t, "bad-dtype-lowercase.safetensors", st_file({"a": ("f32", [1], [0, 4])}, b"\0" * 4))
    write(t, "bad-shape-missing.safetensors",
          st_raw(b'{"a":{"dtype":"U8","data_offsets":[0,1]}}', b"x"))
    write(t, "bad-shape-negative.safetensors", st_file({"a": ("U8", [-1], [0, 1])}, b"x"))
    write(t, "bad-shape-fraction.safetensors", st_file({"a": ("U8", [1.5], [0, 1])}, b"x"))
    write(t, "bad-shape-string.safetensors", st_file({"a": ("U8", ["1"], [0, 1])}, b"x"))
    write(t, "bad-shape-above-2p53.safetensors",
          st_file({"a": ("U8", [2 ** 53 + 2], [0, 1])}, b"x"))
    write(t, "bad-shape-overflow.safetensors",
          st_file({"a": ("F32", [2 ** 32, 2 ** 32, 2], [0, 0])}, b""))
    write(t, "bad-shape-nine-dims.safetensors", st_file({"a": ("U8", [1] * 9, [0, 1])}, b"x"))
    write(t, "bad-shape-byte-mismatch.safetensors",
          st_file({"a": ("F32", [2, 3], [0, 20])}, b"\0" * 24))
    write(t, "bad-offsets-out-of-range.safetensors",
          st_file({"a": ("F32", [2], [0, 8]), "b": ("F32", [2], [8, 16])}, b"\0" * 12))
    write(t, "bad-offsets-reversed.safetensors", st_file({"a": ("U8", [0], [4, 2])}, b"\0" * 4))
    write(t, "bad-offsets-three.safetensors",
          st_raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', b"xx"))
    write(t, "bad-offsets-negative.safetensors", st_file({"a": ("U8", [1], [-1, 0])}, b"x"))
    write(t, "bad-offsets-huge.safetensors",
          st_file({"a": ("U8", [1], [2 ** 64 - 1, 2 ** 64])}, b"x"))
    write(t, "bad-overlapping-offsets.safetensors",
          st_file({"a": ("F32", [4], [0, 16]), "b": ("F32", [2], [8, 16])}, b"\0" * 16))
    write(t, "bad-empty-inside-other.safetensors",
          st_file({"a": ("F32", [4], [0, 16]), "b": ("F32", [0], [8, 8])}, b"\0" * 16))
    write(t, "bad-duplicate-name.safetensors",
          st_raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                 b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"))


# ---- config.json ---------------------------------------------------------------------------

def config_seeds():
    t = "config"
    seen = set()
    base = None
    for m in sorted(os.listdir(MODELS)):
        p = os.path.join(MODELS, m, "config.json")
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            b = f.read()
        if b in seen:
            continue
        seen.add(b)
        write(t, "good-%s.json" % m, b)
        if m == "bert-ce-tiny":
            base = json.loads(b)
    bert = dict(base)

    def variant(name, **changes):
        c = dict(bert)
        for k, v in changes.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        write(t, name, json.dumps(c, indent=1))

    variant("good-bert-model-defaults.json", architectures=["BertModel"], num_labels=None,
            type_vocab_size=None, layer_norm_eps=None, hidden_act=None)
    variant("good-bert-id2label.json", num_labels=None, id2label={"0": "a", "1": "b", "2": "c"})
    variant("good-bert-relu-absolute.json", hidden_act="relu", position_embedding_type="absolute")
    variant("good-bert-float-integers.json", hidden_size=32.0, num_attention_heads=4e0)

    variant("bad-zero-heads.json", num_attention_heads=0)
    variant("bad-hidden-not-divisible.json", hidden_size=30, num_attention_heads=4)
    variant("bad-negative-layers.json", num_hidden_layers=-2)
    variant("bad-fraction-hidden.json", hidden_size=32.5)
    variant("bad-huge-hidden.json", hidden_size=1e300)
    variant("bad-huge-negative-vocab.json", vocab_size=-1e300)
    variant("bad-string-hidden.json", hidden_size="32")
    variant("bad-missing-hidden.json", hidden_size=None)
    variant("bad-missing-model-type.json", model_type=None)
    variant("bad-unknown-model-type.json", model_type="roberta")
    variant("bad-arch-mismatch.json", architectures=["DistilBertModel"])
    variant("bad-unknown-arch.json", architectures=["BertForMaskedLM"])
    variant("bad-empty-architectures.json", architectures=[])
    variant("bad-architectures-string.json", architectures="BertModel")
    variant("bad-relative-positions.json", position_embedding_type="relative_key")
    variant("bad-unknown-activation.json", hidden_act="swish")
    variant("bad-activation-not-string.json", hidden_act=1)
    variant("bad-eps-zero.json", layer_norm_eps=0)
    variant("bad-eps-one.json", layer_norm_eps=1)
    variant("bad-eps-underflows-float.json", layer_norm_eps=1e-300)
    variant("bad-eps-rounds-to-one-float.json", layer_norm_eps=0.99999999999)
    variant("good-eps-tiny-float.json", layer_norm_eps=1e-40)
    variant("bad-num-labels-zero.json", num_labels=0)
    variant("bad-id2label-empty.json", num_labels=None, id2label={})
    variant("bad-vocab-too-big.json", vocab_size=1 << 25)
    write(t, "bad-not-json.json", "model_type = bert\n")
    write(t, "bad-json-array.json", "[1, 2, 3]")
    write(t, "bad-truncated.json", json.dumps(bert)[:60])
    write(t, "bad-empty.json", "")
    write(t, "bad-distilbert-zero-heads.json",
          json.dumps({"model_type": "distilbert", "architectures": ["DistilBertModel"],
                      "vocab_size": 8, "dim": 8, "n_layers": 1, "n_heads": 0, "hidden_dim": 8,
                      "max_position_embeddings": 8}))
    write(t, "bad-electra-zero-embedding.json",
          json.dumps({"model_type": "electra", "architectures": ["ElectraModel"],
                      "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "intermediate_size": 8,
                      "max_position_embeddings": 8, "embedding_size": 0}))


# ---- vocab.txt -----------------------------------------------------------------------------

def vocab_seeds():
    t = "vocab"
    with open(os.path.join(ROOT, "tests", "data", "tokenizer", "bert-base-uncased-vocab.txt"),
              "rb") as f:
        lines = f.read().split(b"\n")
    extra = [b"hello", b"world", b"the", b"na", b"##ive", b"cafe", b"un", b"##aff", b"##able",
             b"##ing", b"##s", b"\xe4\xb8\xad", b"\xe6\x96\x87"]
    head = lines[:1000] + [w for w in extra if w not in lines[:1000]]
    write(t, "good-bert-uncased-head.txt", b"\n".join(head) + b"\n")
    small = [b"[PAD]", b"[UNK]", b"[CLS]", b"[SEP]", b"[MASK]", b"hello", b"world", b",", b"!",
             b"the", b"un", b"##aff", b"##able", b"##ing", b"a", b"##b", b"\xe4\xb8\xad", b""]
    write(t, "good-small-lf.txt", b"\n".join(small) + b"\n")
    write(t, "good-small-crlf.txt", b"\r\n".join(small) + b"\r\n")
    write(t, "good-small-cr.txt", b"\r".join(small))
    write(t, "good-small-no-final-newline.txt", b"\n".join(small[:-1]))
    write(t, "good-minimal-specials.txt", b"[CLS]\n[SEP]\n[UNK]\n")
    write(t, "good-mixed-endings.txt", b"[CLS]\r\n[SEP]\r[UNK]\n\n##\r\n#\r")

    def without(tok):
        return b"\n".join(w for w in small if w != tok) + b"\n"

    write(t, "bad-empty.txt", b"")
    write(t, "bad-no-cls.txt", without(b"[CLS]"))
    write(t, "bad-no-sep.txt", without(b"[SEP]"))
    write(t, "bad-no-unk.txt", without(b"[UNK]"))
    write(t, "bad-lowercase-specials.txt", b"[cls]\n[sep]\n[unk]\n")
    write(t, "bad-duplicate-token.txt", b"[CLS]\n[SEP]\n[UNK]\nhello\nworld\nhello\n")
    write(t, "bad-duplicate-empty-line.txt", b"[CLS]\n\n[SEP]\n\n[UNK]\n")
    write(t, "bad-nul-byte.txt", b"[CLS]\n[SEP]\n[UNK]\nab\x00c\n")
    for name, seq in [("lone-continuation", b"\x80"), ("overlong-2", b"\xc0\xaf"),
                      ("overlong-3", b"\xe0\x80\xaf"), ("surrogate", b"\xed\xa0\x80"),
                      ("above-10ffff", b"\xf4\x90\x80\x80"), ("truncated-3", b"\xe4\xb8"),
                      ("f5-lead", b"\xf5\x80\x80\x80"), ("latin1", b"caf\xe9")]:
        write(t, "bad-utf8-%s.txt" % name, b"[CLS]\n[SEP]\n[UNK]\nok\n" + seq + b"\nend\n")


if __name__ == "__main__":
    safetensors_seeds()
    config_seeds()
    vocab_seeds()
