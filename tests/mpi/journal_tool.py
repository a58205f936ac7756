#!/usr/bin/python3
"""Reads and rewrites mechir resume journals (coordinator/journal.h) for tests, outside mechir:
its own FNV-1a and its own protobuf wire-format reader and writer, so a tampered record carries
valid checksums and only mechir's record checks can refuse it. Formats 1 and 2 are both read
and written back in the format they came in (to-v1 converts), so a test can be run against a
mechir of either format.

usage: journal_tool.py COMMAND JOURNAL [ARGS]
  list                   one line a record: ordinal offset index payload-length kind
  pick                   the ordinal of a record of a used pair (with heads) that is neither
                         the first nor the last record, and its offset
  edit K ACTION          rewrites record K's payload (checksums recomputed); prints its offset.
                         ACTION: index-max, role-ff, roles-longer, ids-longer-failed,
                         heads1-skipped, nan-effect, inf-score, nan-score-skipped
  header-index K N       sets record K's header index to N (format 2; checksums recomputed, the
                         payload's own index unchanged); prints its offset
  flip-length K BIT      flips bit BIT of record K's length field (checksums untouched)
  flip-payload K         flips one bit in the middle of record K's payload (checksums untouched)
  dup K                  appends a copy of record K
  keep N                 keeps the first N records
  cut BYTES              removes the last BYTES bytes
  to-v1                  rewrites the journal in format 1
"""
import math
import struct
import sys

RECORD_MAGIC = 0x5243484D


def fnv1a64(data):
    h = 1469598103934665603
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


# ---- protobuf wire format ------------------------------------------------------------------


def read_varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def fields(b):
    """[(number, wire type, raw value)]: ints for varints, bytes otherwise."""
    out, i = [], 0
    while i < len(b):
        key, i = read_varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise SystemExit("unknown wire type %d" % wt)
        out.append([num, wt, v])
    return out


def encode(fs):
    out = bytearray()
    for num, wt, v in fs:
        out += varint(num << 3 | wt)
        if wt == 0:
            out += varint(v)
        elif wt == 2:
            out += varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def get(fs, num):
    for f in fs:
        if f[0] == num:
            return f
    return None


def put(fs, num, wt, v):
    f = get(fs, num)
    if f:
        f[1], f[2] = wt, v
    else:
        fs.append([num, wt, v])
        fs.sort(key=lambda f: f[0])


def packed_varints(b):
    out, i = [], 0
    while i < len(b):
        v, i = read_varint(b, i)
        out.append(v)
    return out


# ---- the journal ---------------------------------------------------------------------------


class Journal:
    def __init__(self, path):
        self.path = path
        data = open(path, "rb").read()
        if data[:7] != b"MCHJOUR" or data[7:8] not in (b"1", b"2"):
            raise SystemExit("%s: not a journal of format 1 or 2" % path)
        self.fmt = int(data[7:8])
        slen = struct.unpack_from("<I", data, 8)[0]
        self.spec = data[12:12 + slen]
        off = 12 + slen + 8
        self.head = data[:off]
        hdr = 8 if self.fmt == 1 else 24
        self.recs = []  # [index, payload]
        while off + hdr <= len(data):
            magic, n = struct.unpack_from("<II", data, off)
            if magic != RECORD_MAGIC or off + hdr + n + 8 > len(data):
                break
            payload = data[off + hdr:off + hdr + n]
            index = struct.unpack_from("<Q", data, off + 8)[0] if self.fmt == 2 else None
            self.recs.append([index, payload])
            off += hdr + n + 8
        self.tail = data[off:]  # a torn record, if any

    def record_bytes(self, index, payload, fmt):
        if fmt == 1:
            h = struct.pack("<II", RECORD_MAGIC, len(payload))
        else:
            h = struct.pack("<IIQ", RECORD_MAGIC, len(payload), index)
            h += struct.pack("<Q", fnv1a64(h))
        return h + payload + struct.pack("<Q", fnv1a64(payload))

    def offset(self, k):
        off = len(self.head)
        hdr = 8 if self.fmt == 1 else 24
        for _, p in self.recs[:k]:
            off += hdr + len(p) + 8
        return off

    def write(self, fmt=None):
        fmt = fmt or self.fmt
        head = self.head[:7] + str(fmt).encode() + self.head[8:]
        out = bytearray(head)
        for index, payload in self.recs:
            out += self.record_bytes(index, payload, fmt)
        open(self.path, "wb").write(bytes(out) + self.tail)


def pair_index(payload):
    pair = fields(get(fields(payload), 1)[2])
    f = get(pair, 1)
    return f[2] if f else 0


def f32s(b):
    return list(struct.unpack("<%df" % (len(b) // 4), b))


def edit(payload, action):
    """The payload with one tampering; its pair index stays that of the header unless the
    action changes both."""
    r = fields(payload)
    pair = fields(get(r, 1)[2])
    if action == "index-max":
        put(pair, 1, 0, 2**64 - 1)
    elif action == "role-ff":
        roles = bytearray(get(pair, 7)[2])
        roles[1] = 0xFF
        put(pair, 7, 2, bytes(roles))
    elif action == "roles-longer":
        put(pair, 7, 2, get(pair, 7)[2] + b"\x07\x07\x07\x07")
    elif action == "ids-longer-failed":
        # Four more tokens in every array of the pair, consistently; the result claims the pair
        # failed but keeps its maps (blocks sized for the old length).
        for num in (3, 4, 5):
            put(pair, num, 2, get(pair, num)[2] + varint(1000) * 4)
        put(pair, 7, 2, get(pair, 7)[2] + b"\x07" * 4)
        put(r, 5, 2, b"tampered")
    elif action == "heads1-skipped":
        put(r, 6, 2, get(r, 6)[2][:4])
        put(r, 7, 2, get(r, 7)[2][:4])
        put(r, 4, 2, b"tampered")
    elif action == "nan-effect":
        h = f32s(get(r, 6)[2])
        h[0] = math.nan
        put(r, 6, 2, struct.pack("<%df" % len(h), *h))
    elif action == "inf-score":
        put(r, 3, 1, struct.pack("<d", math.inf))
    elif action == "nan-score-skipped":
        for num in (6, 7, 8, 9):
            r = [f for f in r if f[0] != num]
        put(r, 2, 1, struct.pack("<d", math.nan))
        put(r, 4, 2, b"tampered")
    else:
        raise SystemExit("unknown action " + action)
    put(r, 1, 2, encode(pair))
    return encode(r)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    cmd, path, args = argv[1], argv[2], argv[3:]
    j = Journal(path)
    if cmd == "list":
        for k, (index, p) in enumerate(j.recs):
            r = fields(p)
            kind = "used" if get(r, 6) else "skipped" if get(r, 4) else "failed" if get(r, 5) else "other"
            print(k, j.offset(k), pair_index(p) if index is None else index, len(p), kind)
        return
    if cmd == "pick":
        for k in range(1, len(j.recs) - 1):
            if get(fields(j.recs[k][1]), 6):
                print(k, j.offset(k))
                return
        raise SystemExit("no used pair in the middle of " + path)
    if cmd == "edit":
        k, action = int(args[0]), args[1]
        j.recs[k][1] = edit(j.recs[k][1], action)
        if action == "index-max":
            j.recs[k][0] = 2**64 - 1
        j.write()
        print(j.offset(k))
        return
    if cmd == "header-index":
        k = int(args[0])
        j.recs[k][0] = int(args[1])
        j.write()
        print(j.offset(k))
        return
    if cmd in ("flip-length", "flip-payload"):
        k = int(args[0])
        off = j.offset(k)
        data = bytearray(open(path, "rb").read())
        if cmd == "flip-length":
            data[off + 4 + int(args[1]) // 8] ^= 1 << (int(args[1]) % 8)
        else:
            hdr = 8 if j.fmt == 1 else 24
            data[off + hdr + len(j.recs[k][1]) // 2] ^= 0x10
        open(path, "wb").write(bytes(data))
        print(off)
        return
    if cmd == "dup":
        j.recs.append(list(j.recs[int(args[0])]))
        j.write()
        return
    if cmd == "keep":
        j.recs = j.recs[:int(args[0])]
        j.tail = b""
        j.write()
        return
    if cmd == "cut":
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) - int(args[0])])
        return
    if cmd == "to-v1":
        j.write(1)
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
