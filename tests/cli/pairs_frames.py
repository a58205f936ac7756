#!/usr/bin/python3
"""pairs.jsonl.zst frame by frame, for test_pairs_zst.sh (standard library and the zstd CLI only).

  pairs_frames.py check ZST JSONL RUN_JSON PAIRS_JSONL
      splits ZST into its zstd frames with a parser of its own (RFC 8878 frame and block headers,
      no libzstd), decompresses every frame alone with `zstd -dc`, and checks: the frames cover
      the file exactly; each frame gives whole lines, 64 of them except the last (1..64); the
      concatenation equals JSONL byte for byte; the line count is run.json's pairs.total; the
      lines' pair ids and qid/docno/term are `mechir pairs`'s (PAIRS_JSONL), in order, with
      index 0..n-1.
  pairs_frames.py truncate ZST OUT
      writes ZST cut in the middle of its last frame to OUT.
"""
import json
import subprocess
import sys

LINES_PER_FRAME = 64
ZSTD_MAGIC = 0xFD2FB528


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def frames(data, path):
    """(start, end) of every frame of data, from the frame and block headers alone."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        if pos + 5 > len(data):
            fail("%s: %d stray bytes at %d" % (path, len(data) - pos, pos))
        magic = int.from_bytes(data[pos:pos + 4], "little")
        if magic != ZSTD_MAGIC:
            fail("%s: frame at %d has magic 0x%08x, not a zstd frame" % (path, pos, magic))
        fhd = data[pos + 4]
        pos += 5
        fcs_flag, single, checksum, did_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
        if (fhd >> 3) & 1:
            fail("%s: frame at %d sets the reserved bit" % (path, start))
        pos += 0 if single else 1  # window descriptor
        pos += (0, 1, 2, 4)[did_flag]
        pos += (1 if single else 0, 2, 4, 8)[fcs_flag]
        while True:
            if pos + 3 > len(data):
                fail("%s: frame at %d is cut inside a block header" % (path, start))
            bh = int.from_bytes(data[pos:pos + 3], "little")
            last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
            if btype == 3:
                fail("%s: reserved block type at %d" % (path, pos))
            pos += 3 + (1 if btype == 1 else bsize)
            if last:
                break
        pos += 4 if checksum else 0
        if pos > len(data):
            fail("%s: the frame at %d ends past the end of the file (%d > %d)"
                 % (path, start, pos, len(data)))
        out.append((start, pos))
    return out


def unzstd(frame, what):
    r = subprocess.run(["zstd", "-dcq"], input=frame, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        fail("%s: zstd -dc: exit %d: %s" % (what, r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


def check(zst, jsonl, run_json, pairs_jsonl):
    data = open(zst, "rb").read()
    fr = frames(data, zst)
    parts = []
    for k, (a, b) in enumerate(fr):
        text = unzstd(data[a:b], "%s frame %d (bytes %d..%d)" % (zst, k, a, b))
        n = text.count(b"\n")
        if not text.endswith(b"\n"):
            fail("%s frame %d does not end with a whole line" % (zst, k))
        want = LINES_PER_FRAME if k + 1 < len(fr) else n
        if n != want or not 1 <= n <= LINES_PER_FRAME:
            fail("%s frame %d has %d lines, want %d" % (zst, k, n, want if k + 1 < len(fr) else 64))
        parts.append(text)
    whole = b"".join(parts)
    plain = open(jsonl, "rb").read()
    if whole != plain:
        fail("%s frame by frame (%d bytes) differs from %s (%d bytes)"
             % (zst, len(whole), jsonl, len(plain)))
    if unzstd(data, zst) != plain:
        fail("zstd -dc %s differs from %s" % (zst, jsonl))
    lines = plain.decode("utf-8").splitlines()
    total = json.load(open(run_json))["pairs"]["total"]
    if len(lines) != total:
        fail("%s has %d lines, run.json says %d pairs" % (zst, len(lines), total))
    if len(fr) != (total + LINES_PER_FRAME - 1) // LINES_PER_FRAME:
        fail("%s has %d frames for %d pairs" % (zst, len(fr), total))
    want = [json.loads(x) for x in open(pairs_jsonl, encoding="utf-8")]
    if len(want) != total:
        fail("%s has %d pairs, the run %d" % (pairs_jsonl, len(want), total))
    for i, (line, p) in enumerate(zip(lines, want)):
        r = json.loads(line)
        got = (r["index"], r["pair_id"], r["qid"], r["docno"], r["term"], r["position"])
        exp = (i, p["pair_id"], p["qid"], p["docno"], p["term"], p["position"])
        if got != exp:
            fail("%s line %d: (index, pair_id, qid, docno, term, position) %r, want %r"
                 % (zst, i + 1, got, exp))
    print("ok: %s: %d frames of %d lines (last %d), each whole lines alone; = %s byte for byte "
          "(%d bytes from %d); %d pairs as run.json and mechir pairs"
          % (zst, len(fr), LINES_PER_FRAME, parts[-1].count(b"\n"), jsonl, len(plain), len(data),
             total))


def main(argv):
    if len(argv) == 6 and argv[1] == "check":
        check(*argv[2:])
    elif len(argv) == 4 and argv[1] == "truncate":
        data = open(argv[2], "rb").read()
        a, b = frames(data, argv[2])[-1]
        open(argv[3], "wb").write(data[:a + (b - a) // 2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
