#!/usr/bin/env python3
"""Writes the hand-made seeds of the reader fuzz targets (docs/FUZZING.md) into
tests/fuzz/corpus/<target>/: input files and their lines, --df and --stopwords, the journal, the
messages between ranks, the job spec, the cache index and JOB.json.

Text seeds are cut from the real inputs (examples/, tests/data/debian/); the binary seeds start
from files a real run wrote (corpus/journal/good-run-*.bin, corpus/store/good-run-*.idx,
committed), from which the messages are taken and the damaged variants made. The first byte of
most seeds is the target's option byte (see each fuzz_<target>.c). good-* must be accepted and
bad-* refused by the replay; files the fuzzer added (-merge=1) are named by their SHA-1 and are
not touched here. Needs the zstd program. Run from anywhere:
    /usr/bin/python3 tests/fuzz/make_reader_seeds.py
"""
import json
import os
import struct
import subprocess
import sys

from make_seeds import CORPUS, ROOT, write

sys.path.insert(0, os.path.join(ROOT, "tests", "mpi"))
from journal_tool import encode, fields, fnv1a64, varint  # noqa: E402 (the wire format)

DEBIAN = os.path.join(ROOT, "tests", "data", "debian")


def read(target, name):
    with open(os.path.join(CORPUS, target, name), "rb") as f:
        return f.read()


def zstd(data, *args):
    return subprocess.run(["zstd", "-q", "-c", *args], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def unzstd(path):
    return subprocess.run(["zstd", "-q", "-dc", path], check=True, stdout=subprocess.PIPE).stdout


def clip(line, n=160):
    """A TSV line with each field cut to n bytes (at a UTF-8 boundary)."""
    return b"\t".join(f[:n].decode("utf-8", "ignore").encode() for f in line.split(b"\t"))


def pairs_lines(k=6):
    with open(os.path.join(ROOT, "examples", "debian-demo-pairs.tsv"), "rb") as f:
        return [clip(l) for l in f.read().split(b"\n")[:k]]


# ---- lines ----------------------------------------------------------------------------------
# byte 0: bit 0 zstd, bits 1-2 the limit (default, 1, 16, 4096)

def lines_seeds():
    t = "lines"
    text = b"\n".join(pairs_lines(4)) + b"\n"
    write(t, "good-plain-pairs.tsv", b"\x00" + text)
    write(t, "good-plain-crlf.txt", b"\x00" + text.replace(b"\n", b"\r\n"))
    write(t, "good-plain-bom-no-final-newline.txt", b"\x00\xef\xbb\xbfq1\tx\n\nq2\ty\r")
    write(t, "good-limit-16-crlf.txt", b"\x04" + b"0123456789abcdef\r\nshort\n")
    write(t, "bad-limit-16-line-17.txt", b"\x04" + b"ok\n0123456789abcdefg\nafter\n")
    write(t, "bad-limit-1-bom.txt", b"\x02\xef\xbb\xbf\n")
    write(t, "good-zst-pairs.zst", b"\x01" + zstd(text))
    write(t, "good-zst-two-frames.zst", b"\x01" + zstd(b"a\nb") + zstd(b"c\r\nd\n"))
    write(t, "good-zst-empty.zst", b"\x01" + zstd(b""))
    write(t, "good-zst-topics.zst", b"\x01" + zstd(unzstd(os.path.join(DEBIAN, "topics.tsv.zst"))[:1500]))
    write(t, "bad-zst-truncated.zst", b"\x01" + zstd(text)[:-6])
    write(t, "bad-zst-not-zstd.zst", b"\x01" + text)
    write(t, "bad-zst-bomb-4096.zst", b"\x07" + zstd(b"a" * 100000, "-19"))


# ---- TSV / JSONL / TREC ---------------------------------------------------------------------
# byte 0: bit 0 strict, 1 four columns, 2 duplicates allowed, 3 256-byte lines, 4-5 top_k,
# 6 report cap 1, 7 (TREC) docs as JSONL

def tsv_seeds():
    t = "tsv"
    lines = pairs_lines(6)
    body = b"\n".join(lines) + b"\n"
    write(t, "good-debian-pairs.tsv", b"\x00" + body)
    write(t, "good-debian-pairs-strict.tsv", b"\x01" + body)
    write(t, "good-header-crlf.tsv", b"\x01" + b"qid\tquery\tdocno\ttext\r\n" + body.replace(b"\n", b"\r\n"))
    write(t, "good-term-column.tsv", b"\x01q1\tlinux kernel\td1\tthe kernel\tkernel\n")
    write(t, "good-bad-lines-skipped.tsv",
          b"\x40q1\tquery\nq1\t\td1\ttext\nq1\tq\td1\tt\nq1\tq\td1\tt\nq2\tq\td2\tcaf\xe9\n")
    write(t, "bad-strict-three-columns.tsv", b"\x01q1\tquery\td1\n")
    write(t, "bad-strict-five-columns-four-required.tsv", b"\x03q1\tq\td1\tt\tterm\n")
    write(t, "bad-strict-duplicate.tsv", b"\x01q1\tq\td1\tt\nq1\tq\td1\tt\n")
    write(t, "good-duplicate-allowed.tsv", b"\x05q1\tq\td1\tt\nq1\tq\td1\tt\n")
    write(t, "bad-strict-latin1.tsv", b"\x01q1\tq\td1\tcaf\xe9\n")
    write(t, "bad-strict-nul.tsv", b"\x01q1\tq\td1\ta\x00b\n")
    write(t, "bad-long-line-256.tsv", b"\x08q1\tq\td1\t" + b"x" * 300 + b"\n")


def jsonl_seeds():
    t = "jsonl"
    recs = []
    for l in pairs_lines(6):
        q, query, d, text = l.split(b"\t")[:4]
        recs.append({"qid": q.decode(), "query": query.decode(), "docno": d.decode(),
                     "text": text.decode()})
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode()
    write(t, "good-debian-pairs.jsonl", b"\x01" + body)
    write(t, "good-fields.jsonl", b"\x01" + b'{"qid": 17, "query": "web server", "docno": 9007199254740993, '
          b'"text": "apache \\u00e9 \\ud83d\\ude00", "term": "httpd", "relevance": 2, "rank": 1}\r\n'
          b'  {"qid":"q2","query":"q","docno":"d","text":"t","term":null}  \n\n')
    write(t, "good-bad-lines-skipped.jsonl",
          b'\x00[1]\n{"qid":"q"}\n{"qid":1.5,"query":"q","docno":"d","text":"t"}\nnot json\n'
          b'{"qid":"q","query":"q","docno":"d","text":"a\\u0000b"}\n')
    write(t, "bad-strict-not-object.jsonl", b'\x01[1, 2]\n')
    write(t, "bad-strict-missing-text.jsonl", b'\x01{"qid":"q","query":"q","docno":"d"}\n')
    write(t, "bad-strict-nul-escape.jsonl", b'\x01{"qid":"q","query":"q","docno":"d","text":"a\\u0000b"}\n')
    write(t, "bad-strict-duplicate-key.jsonl", b'\x01{"qid":"q","qid":"r","query":"q","docno":"d","text":"t"}\n')
    write(t, "bad-strict-fraction-id.jsonl", b'\x01{"qid":1.5,"query":"q","docno":"d","text":"t"}\n')
    write(t, "bad-strict-trailing.jsonl", b'\x01{"qid":"q","query":"q","docno":"d","text":"t"} x\n')
    write(t, "bad-strict-duplicate-pair.jsonl", b"\x01" + body.split(b"\n")[0] + b"\n" + body.split(b"\n")[0] + b"\n")


def trec_seeds():
    t = "trec"
    run = unzstd(os.path.join(DEBIAN, "bm25-top20.run.zst")).split(b"\n")
    qids = []
    for l in run:
        q = l.split(b" ")[0] if l else None
        if q and q not in qids:
            qids.append(q)
        if len(qids) == 2:
            break
    run_lines = [l for q in qids for l in [l for l in run if l and l.split(b" ")[0] == q][:4]]
    docnos = {l.split(b" ")[2] for l in run_lines}
    topics = [l for l in unzstd(os.path.join(DEBIAN, "topics.tsv.zst")).split(b"\n")
              if l.split(b"\t")[0] in qids]
    docs = [clip(l, 120) for l in unzstd(os.path.join(DEBIAN, "docs.tsv.zst")).split(b"\n")
            if l.split(b"\t")[0] in docnos]
    qrels = [l for l in unzstd(os.path.join(DEBIAN, "qrels.txt.zst")).split(b"\n")
             if l.split(b" ")[0] in qids][:10]
    j = lambda ls: b"\n".join(ls) + b"\n"
    docs_jsonl = b"".join(json.dumps({"docno": d.split(b"\t")[0].decode(),
                                      "text": d.split(b"\t")[1].decode()}).encode() + b"\n"
                          for d in docs)
    write(t, "good-debian-run-topics-docs-qrels", b"\x00" + b"\f".join([j(run_lines), j(topics), j(docs), j(qrels)]))
    write(t, "good-debian-run-strict-top2", b"\x21" + b"\f".join([j(run_lines), j(topics), j(docs)]))
    write(t, "good-debian-qrels-only", b"\x00" + b"\f".join([b"", j(topics), j(docs), j(qrels)]))
    write(t, "good-debian-docs-jsonl", b"\x80" + b"\f".join([j(run_lines), j(topics), docs_jsonl, j(qrels)]))
    write(t, "good-missing-topic-skipped", b"\x00" + b"\f".join([j(run_lines), j(topics[:1]), j(docs)]))
    write(t, "bad-strict-missing-topic", b"\x01" + b"\f".join([j(run_lines), j(topics[:1]), j(docs)]))
    write(t, "bad-strict-run-line", b"\x01" + b"\f".join([b"q1 Q0 d1 x 1.0 tag\n", b"q1\tq\n", b"d1\tt\n"]))
    write(t, "bad-strict-duplicate-topic", b"\x01" + b"\f".join([b"q1 Q0 d1 1 1.0 t\n", b"q1\tq\nq1\tr\n", b"d1\tt\n"]))


# ---- --df and --stopwords -------------------------------------------------------------------
# byte 0: bit 0 a 16-byte line limit

def df_stopwords_seeds():
    docs = [l.split(b"\t")[1] for l in unzstd(os.path.join(DEBIAN, "docs.tsv.zst")).split(b"\n")[:40] if b"\t" in l]
    df = {}
    for d in docs:
        for w in set("".join(c if c.isalnum() else " " for c in d.decode().lower()).split()):
            df[w] = df.get(w, 0) + 1
    table = "#N\t%d\n" % len(docs) + "".join("%s\t%d\n" % (w, df[w]) for w in sorted(df)[:150])
    write("df", "good-debian-40-docs.tsv", b"\x00" + table.encode())
    write("df", "good-crlf-no-final-newline.tsv", b"\x00#N\t3\r\nzebra\t2\r\ncaf\xc3\xa9\t1")
    write("df", "good-limit-16.tsv", b"\x01#N\t3\nabcdefghijkl\t2\r\n")
    write("df", "bad-no-N.tsv", b"\x00zebra\t2\n")
    write("df", "bad-not-a-count.tsv", b"\x00#N\t6\nzebra\tmany\n")
    write("df", "bad-negative.tsv", b"\x00#N\t6\nzebra\t-1\n")
    write("df", "bad-too-large.tsv", b"\x00#N\t6\nzebra\t4294967296\n")
    write("df", "bad-no-tab.tsv", b"\x00#N\t6\nzebra 2\n")
    write("df", "bad-limit-16.tsv", b"\x01#N\t3\nabcdefghijklmnop\t2\n")
    words = ["i", "me", "my", "the", "a", "an", "and", "of", "to", "in", "is", "it", "for", "on"]
    write("stopwords", "good-english.txt", b"\x00# English\n" + "\n".join(words).encode() + b"\n")
    write("stopwords", "good-crlf-spaces.txt", b"\x00the  \r\n\r\n# c\r\nof \r \r\ncaf\xc3\xa9")
    write("stopwords", "good-limit-16.txt", b"\x01abcdefghijklmnop\r\nx\n")
    write("stopwords", "bad-limit-16.txt", b"\x01x\nabcdefghijklmnopq\n")


# ---- protobuf: journal records, messages, the job spec ----------------------------------------

def ld(n, v):
    return (n, 2, v)


def journal_parse(b):
    slen = struct.unpack("<I", b[8:12])[0]
    spec = b[12:12 + slen]
    off, recs = 12 + slen + 8, []
    while off + 24 <= len(b):
        ln, idx = struct.unpack("<IQ", b[off + 4:off + 16])
        recs.append((idx, b[off + 24:off + 24 + ln]))
        off += 24 + ln + 8
    return spec, recs


def journal_build(spec, recs):
    out = b"MCHJOUR2" + struct.pack("<I", len(spec)) + spec + struct.pack("<Q", fnv1a64(spec))
    for idx, p in recs:
        h = struct.pack("<IIQ", 0x5243484d, len(p), idx)
        out += h + struct.pack("<Q", fnv1a64(h)) + p + struct.pack("<Q", fnv1a64(p))
    return out


def replace_field(msg, n, new_fields):
    return encode([f for f in fields(msg) if f[0] != n] + new_fields)


def protobuf_seeds():
    real = read("journal", "good-run-sweeps-heads-blocks-headpos.bin")[1:]
    spec, recs = journal_parse(real)
    sel_spec, _ = journal_parse(read("journal", "good-run-select-scores.bin")[1:])
    # The job spec.
    write("spec", "good-run-sweeps.pb", spec)
    write("spec", "good-run-select.pb", sel_spec)
    write("spec", "bad-layers-zero.pb", replace_field(spec, 6, [(6, 0, 0)]))
    write("spec", "bad-unknown-sweep.pb", replace_field(spec, 11, [ld(11, b"neurons")]))
    write("spec", "bad-head-outside.pb", replace_field(spec, 12, [ld(12, varint(0) + varint(99))]))
    write("spec", "bad-head-list-odd.pb", replace_field(spec, 12, [ld(12, varint(0))]))
    write("spec", "bad-min-delta-nan.pb", replace_field(spec, 14, [(14, 1, struct.pack("<d", float("nan")))]))
    write("spec", "bad-bootstrap-above-max.pb", replace_field(spec, 25, [(25, 0, 100001)]))
    write("spec", "bad-ci-one.pb", replace_field(spec, 26, [(26, 1, struct.pack("<d", 1.0))]))
    write("spec", "bad-direction.pb", replace_field(spec, 27, [ld(27, b"sideways")]))
    write("spec", "bad-select-k-zero.pb", replace_field(sel_spec, 29, []))
    write("spec", "bad-unknown-field.pb", spec + encode([(99, 0, 1)]))
    write("spec", "bad-truncated.pb", spec[:-3])
    # Messages: 0 a work unit, 1 a unit result, 2 a pair result, 3 an error.
    pair = [v for n, wt, v in fields(recs[0][1]) if n == 1][0]
    write("msg", "good-pair-result-journal-record.pb", b"\x02" + recs[0][1])
    write("msg", "good-pair-result-shape-checked.pb", b"\x16" + recs[1][1])
    write("msg", "good-work-unit.pb", b"\x00" + encode([(1, 0, 7)] + [ld(2, [v for n, wt, v in fields(r[1]) if n == 1][0]) for r in recs]))
    write("msg", "good-work-unit-score-mode.pb", b"\x00" + encode([(1, 0, 8), ld(2, pair), (3, 0, 1)]))
    write("msg", "good-unit-result.pb", b"\x01" + encode([(1, 0, 7), (2, 0, 1)] + [ld(3, r[1]) for r in recs] + [(4, 1, struct.pack("<d", 0.5))]))
    write("msg", "good-error.pb", b"\x03" + encode([(1, 0, 2), (2, 0, 99), ld(3, b"on node1: out of memory")]))
    roles = [v for n, wt, v in fields(pair) if n == 7][0]
    write("msg", "bad-work-unit-role-ff.pb", b"\x00" + encode([ld(2, replace_field(pair, 7, [ld(7, b"\xff" + roles[1:])]))]))
    write("msg", "bad-work-unit-roles-short.pb", b"\x00" + encode([ld(2, replace_field(pair, 7, [ld(7, roles[:-1])]))]))
    write("msg", "bad-work-unit-mode-2.pb", b"\x00" + encode([ld(2, pair), (3, 0, 2)]))
    heads = [f for f in fields(recs[0][1]) if f[0] == 6]
    write("msg", "bad-pair-result-scores-shorter.pb", b"\x02" + replace_field(recs[0][1], 7, []) if heads else b"\x02\xff")
    write("msg", "bad-unit-result-unknown-field.pb", b"\x01" + encode([(1, 0, 7), (77, 0, 1)]))
    write("msg", "bad-truncated.pb", b"\x02" + recs[0][1][:-5])
    # Journals (byte 0 bit 0: the target fixes every checksum first, so these are tampered
    # journals whose checksums hold, the hostile cases of issue 14).
    first = recs[0][1]
    tampered = {
        "index-max": (2 ** 64 - 1, replace_field(first, 1, [ld(1, replace_field(pair, 1, [(1, 0, 2 ** 64 - 1)]))])),
        "role-ff": (recs[0][0], replace_field(first, 1, [ld(1, replace_field(pair, 7, [ld(7, b"\xff" + roles[1:])]))])),
        "roles-longer": (recs[0][0], replace_field(first, 1, [ld(1, replace_field(pair, 7, [ld(7, roles + b"\x01")]))])),
        "n-heads-1": (recs[0][0], replace_field(replace_field(first, 6, [(6, 2, b"\x00\x00\x80\x3f")]), 7, [(7, 2, b"\x00\x00\x80\x3f")])),
        "nan-score": (recs[0][0], replace_field(first, 2, [(2, 1, struct.pack("<d", float("nan")))])),
        "header-index-differs": (recs[0][0] + 1, first),
    }
    for name, rec in tampered.items():
        write("journal", "bad-tampered-%s.bin" % name, b"\x01" + journal_build(spec, [rec] + recs[1:]))
    write("journal", "bad-tampered-beyond-limit-1.bin", b"\x03" + journal_build(spec, recs))
    write("journal", "good-torn-tail.bin", b"\x00" + real[:-10])
    write("journal", "bad-flipped-length.bin", b"\x00" + real[:12 + len(spec) + 8 + 4] + b"\x01" + real[12 + len(spec) + 8 + 5:])
    write("journal", "bad-payload-checksum.bin", b"\x00" + real[:-1] + bytes([real[-1] ^ 1]))
    write("journal", "bad-format-1.bin", b"\x01MCHJOUR1" + real[8:])
    write("journal", "bad-not-a-journal.bin", b"\x01" + b"hello world")
    write("journal", "bad-spec-invalid.bin", b"\x01" + journal_build(replace_field(spec, 6, [(6, 0, 0)]), recs[:1]))


# ---- the cache index --------------------------------------------------------------------------
# byte 0: bit 0 the target fixes each record's checksum first

def store_seeds():
    idx = read("store", "good-run-two-hooks.idx")[1:]
    hdr, recs = idx[:16], [idx[16 + 184 * i:16 + 184 * (i + 1)] for i in range((len(idx) - 16) // 184)]
    r0 = recs[0]
    write("store", "good-torn-last-record.idx", b"\x00" + hdr + recs[0] + recs[1][:100])
    write("store", "good-empty.idx", b"\x00")
    write("store", "good-header-only.idx", b"\x00" + hdr)
    write("store", "good-repeated-record-last-wins.idx", b"\x00" + hdr + r0 + r0)
    write("store", "bad-magic.idx", b"\x00MCHSTBIN" + idx[8:])
    write("store", "bad-version-2.idx", b"\x00" + hdr[:8] + b"\x02" + hdr[9:] + r0)
    write("store", "bad-record-checksum.idx", b"\x00" + hdr + r0[:100] + bytes([r0[100] ^ 1]) + r0[101:])
    def fixed(name, r):
        write("store", "bad-%s.idx" % name, b"\x01" + hdr + r)
    fixed("run-2", r0[:4] + b"\x02" + r0[5:])
    fixed("dtype-3", r0[:5] + b"\x03" + r0[6:])
    fixed("ndim-0", r0[:6] + b"\x00" + r0[7:])
    fixed("ndim-5", r0[:6] + b"\x05" + r0[7:])
    fixed("shape-zero", r0[:16] + b"\x00" * 8 + r0[24:])
    fixed("shape-huge", r0[:16] + struct.pack("<Q", 2 ** 40) + r0[24:])
    fixed("hook-space", r0[:80] + b"a b" + r0[83:])
    fixed("hook-length-over", r0[:7] + b"\x70" + r0[8:])
    fixed("raw-bytes-wrong", r0[:64] + struct.pack("<Q", 12) + r0[72:])


# ---- JOB.json ---------------------------------------------------------------------------------

def jobjson_seeds():
    t = "jobjson"
    write(t, "good-every-kind.json", json.dumps({
        "model": "m", "out": "o", "input": "in.tsv", "sweep": "heads,blocks,head-pos",
        "heads": "0.1,1.0", "min-delta": "0.01", "bootstrap": 10, "ci": 0.9, "seed": 12345678901234567,
        "select": "top-delta 20", "per-grade": True, "resume": False, "threads": 2,
        "unit-size": 8, "max-len": 64, "max-line-bytes": "0x100", "strict": True,
        "perturb": "tdc", "df": "df.tsv", "stopwords": "stop.txt", "cache": "blocks.*.attn.hook_z"},
        indent=1))
    write(t, "good-empty-object.json", "{}")
    write(t, "bad-duplicate-key.json", '{"sweep": "heads", "sweep": "blocks"}')
    write(t, "bad-nul-in-string.json", '{"site": "a\\u0000b"}')
    write(t, "bad-unknown-option.json", '{"swep": "heads"}')
    write(t, "bad-not-object.json", '["model", "m"]')
    write(t, "bad-nested.json", '{"sweep": {"heads": true}}')
    write(t, "bad-seed-fraction.json", '{"seed": 2.5}')
    write(t, "bad-seed-too-large.json", '{"seed": 18446744073709551616}')
    write(t, "bad-threads-zero.json", '{"threads": 0}')
    write(t, "bad-trailing.json", '{"sweep": "heads"} x')
    write(t, "bad-select.json", '{"select": "top 5"}')
    write(t, "bad-min-delta-nan.json", '{"min-delta": "nan"}')



def given_and_ir_datasets_seeds():
    """Given pairs (option byte bit 7) for TSV and JSONL; ir_datasets names and titles in JSONL
    pairs and TREC tables (topics JSONL: bit 1; docs JSONL: bit 7; 3-column docs TSV)."""
    write("tsv", "good-given-pairs.tsv",
          b"\x81qid\tquery\tdocno\ttext\tperturbed\n"
          b"q1\tlinux kernel\td1\tthe kernel\tthe kernel linux\n"
          b"q1\tlinux kernel\td1\tthe kernel\tlinux the kernel\tk2\n"
          b"\tq\t\tt\tt x\n")
    write("tsv", "good-given-bad-lines-skipped.tsv",
          b"\x80q1\tq\td1\tt\nq1\tq\td1\tt\t \nq1\tq\td1\tt\tt x\nq1\tq\td1\tt\tt y\n")
    write("tsv", "bad-strict-given-four-columns.tsv", b"\x81q1\tq\td1\tt\n")
    write("jsonl", "good-given-pairs.jsonl",
          b'\x81{"qid":"q1","query":"web server","docno":"d1","text":"apache","perturbed":'
          b'"apache web"}\n{"query":"q","text":"t","perturbed":"x t","pair_id":7}\n'
          b'{"query":"q","title":"T","text":"t","perturbed":"t z"}\n')
    write("jsonl", "good-given-bad-lines-skipped.jsonl",
          b'\x80{"query":"q","text":"t"}\n{"query":"q","text":"t","perturbed":"  "}\n'
          b'{"query":"q","text":"t","perturbed":7}\n{"query":"q","text":"t","perturbed":"u",'
          b'"pair_id":1.5}\n')
    write("jsonl", "good-ir-datasets-names.jsonl",
          b'\x01{"query_id":"q1","query":"web server","doc_id":"d1","title":"Apache",'
          b'"text":"the http server"}\n{"query_id":2,"query":"q","doc_id":3,"text":"t","title":null}\n')
    write("jsonl", "bad-strict-both-qid-and-query-id.jsonl",
          b'\x01{"qid":"q","query_id":"q","query":"a","docno":"d","text":"t"}\n')
    write("jsonl", "bad-strict-perturbed-not-given.jsonl",
          b'\x01{"qid":"q","query":"a","docno":"d","text":"t","perturbed":"t x"}\n')
    write("trec", "good-ir-datasets-topics-docs-jsonl",
          b"\x82" + b"\f".join([b"", b'{"query_id":"q1","text":"web server"}\n'
                                    b'{"qid":"q2","query":"mail"}\n',
                               b'{"doc_id":"d1","title":"Apache","text":"http server"}\n'
                               b'{"docno":"d2","text":"postfix"}\n',
                               b"q1 0 d1 1\nq2 0 d2 1\n"]))
    write("trec", "good-three-column-docs-tsv",
          b"\x00" + b"\f".join([b"", b"q1\tweb server\n",
                               b"docno\ttitle\ttext\nd1\tApache\thttp server\nd2\tpostfix\n",
                               b"q1 0 d1 1\nq1 0 d2 1\n"]))

if __name__ == "__main__":
    lines_seeds()
    tsv_seeds()
    jsonl_seeds()
    trec_seeds()
    given_and_ir_datasets_seeds()
    df_stopwords_seeds()
    protobuf_seeds()
    store_seeds()
    jobjson_seeds()
