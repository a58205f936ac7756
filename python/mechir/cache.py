"""The activation cache of `mechir run --cache` (OUT/cache/*.idx and *.bin; docs/CACHE.md):
activations by pair id, hook name and run as float32 numpy arrays, decoded from f32, bf16 or
fp16 chunks exactly as mechir's reader does (worker/store_read.c), every record and chunk
checked before use.

    c = mechir.open_cache("OUT")
    c.get("35498dbed8c48396", "blocks.0.attn.hook_pattern", run="perturbed")  # (NH, T, T)
"""
import glob
import os
import struct
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from . import _zstd
from ._xxh64 import xxh64
from .errors import MechirFormatError

HDR_BYTES = 16
REC_BYTES = 184
REC_SUM_AT = 176
VERSION = 1
DTYPES = ("f32", "bf16", "fp16")
RUNS = ("baseline", "perturbed")
MAX_RAW_BYTES = 1 << 32
HOOK_MAX = 95


@dataclass(frozen=True)
class CacheEntry:
    pair_id: int
    hook: str
    run: str  # baseline | perturbed
    shape: Tuple[int, ...]
    dtype: str  # how it is stored: f32, bf16, fp16 (read back as float32)
    file: str  # the .bin
    offset: int  # of the chunk's header record in the .bin
    stored_bytes: int
    raw_bytes: int
    checksum: int

    @property
    def pair(self):
        """The pair id as `mechir pairs` and pairs.jsonl print it (16 hex digits)."""
        return "%016x" % self.pair_id


def parse_pair_id(pair_id):
    """A pair id as an int: an int, or 1-16 hex digits with or without 0x (as `mechir cache get
    --pair` takes it)."""
    if isinstance(pair_id, (int, np.integer)):
        v = int(pair_id)
    else:
        s = str(pair_id)
        h = s[2:] if s[:2].lower() == "0x" else s
        if not 1 <= len(h) <= 16 or any(c not in "0123456789abcdefABCDEF" for c in h):
            raise ValueError("pair id %r is not 1-16 hex digits" % s)
        v = int(h, 16)
    if not 0 <= v < 1 << 64:
        raise ValueError("pair id %r is out of range" % pair_id)
    return v


def _compress_bound(n):
    """ZSTD_COMPRESSBOUND(n) of zstd 1.5."""
    return n + (n >> 8) + (((128 << 10) - n) >> 11 if n < (128 << 10) else 0)


def _decode_record(r):
    """The entry of a 184-byte record (file and offset filled by the caller), or raises
    ValueError saying what is wrong (the checks of mch_store_record_decode)."""
    if r[:4] != b"MCHR":
        raise ValueError("not a record (bad magic)")
    (want,) = struct.unpack_from("<Q", r, REC_SUM_AT)
    got = xxh64(r[:REC_SUM_AT])
    if want != got:
        raise ValueError("record checksum %016x, computed %016x" % (want, got))
    run, dtype, ndim, hlen = r[4], r[5], r[6], r[7]
    if run > 1 or dtype > 2 or not 1 <= ndim <= 4:
        raise ValueError("run %d, dtype %d or ndim %d out of range" % (run, dtype, ndim))
    hook_b = r[80:80 + hlen]
    if not 1 <= hlen <= HOOK_MAX or any(b < 0x21 or b > 0x7E for b in hook_b) or \
            any(r[80 + hlen:176]):
        raise ValueError("hook name of %d bytes is not printable and NUL-padded" % hlen)
    pair_id, = struct.unpack_from("<Q", r, 8)
    dims = struct.unpack_from("<4Q", r, 16)
    for d, v in enumerate(dims):
        if (d >= ndim and v) or v >= 1 << 63:
            raise ValueError("shape[%d] = %d out of range" % (d, v))
    shape = dims[:ndim]
    offset, stored, raw, checksum = struct.unpack_from("<4Q", r, 48)
    numel = 1
    for v in shape:
        if v < 1 or v > (MAX_RAW_BYTES // 4) // numel:
            raise ValueError("shape %s is empty or above %d bytes"
                             % (list(shape), MAX_RAW_BYTES))
        numel *= v
    if raw != numel * 4:
        raise ValueError("raw_bytes %d, but the shape holds %d" % (raw, numel * 4))
    bound = _compress_bound(numel * (4 if dtype == 0 else 2))
    if not 1 <= stored <= bound or offset < HDR_BYTES or offset > (1 << 64) - 1 - REC_BYTES - stored:
        raise ValueError("chunk offset %d or size %d out of range (at most %d)"
                         % (offset, stored, bound))
    return dict(pair_id=pair_id, hook=hook_b.decode("ascii"), run=RUNS[run],
                shape=tuple(int(v) for v in shape), dtype=DTYPES[dtype], offset=offset,
                stored_bytes=stored, raw_bytes=raw, checksum=checksum)


def _check_header(data, path, magic):
    want = magic + struct.pack("<II", VERSION, REC_BYTES)
    if len(data) < HDR_BYTES:
        if want.startswith(data):
            return False  # a writer killed inside its header: empty
        raise MechirFormatError(path, "not a mechir cache index (%d bytes, bad header)"
                                % len(data))
    if data[:8] != magic:
        raise MechirFormatError(path, "bad magic %r (expected %r)" % (data[:8], magic))
    version, rec = struct.unpack_from("<II", data, 8)
    if version != VERSION or rec != REC_BYTES:
        raise MechirFormatError(path, "format version %d, record size %d (expected %d, %d)"
                                % (version, rec, VERSION, REC_BYTES))
    return True


def decode_values(payload, dtype, numel):
    """A chunk's decompressed bytes (byte planes: byte 0 of every value, then byte 1, ...) as
    float32: f32 bit for bit, bf16 as its top 16 bits, fp16 by IEEE half -> single (exact)."""
    width = 4 if dtype == "f32" else 2
    planes = np.frombuffer(payload, dtype=np.uint8).reshape(width, numel)
    words = np.ascontiguousarray(planes.T).view("<u%d" % width).reshape(numel)
    if dtype == "f32":
        return words.view(np.float32).copy()
    if dtype == "bf16":
        return (words.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return words.view(np.float16).astype(np.float32)


class Cache:
    """The entries of OUT/cache: every *.idx in name order, each front to back, the last of a
    repeated (pair, hook, run) winning; a truncated last record (a killed writer) ignored.
    A malformed header or record raises MechirFormatError naming the .idx and the offset."""

    def __init__(self, out_dir, verify=True):
        self.out_dir = os.fspath(out_dir)
        self.verify = verify  # check each chunk's XXH64 before decoding it
        cdir = os.path.join(self.out_dir, "cache")
        if not os.path.isdir(cdir):
            raise FileNotFoundError("%s: no activation cache (run with --cache)" % cdir)
        found = {}
        for idx in sorted(glob.glob(os.path.join(glob.escape(cdir), "*.idx"))):
            with open(idx, "rb") as f:
                data = f.read()
            if not _check_header(data, idx, b"MCHSTIDX"):
                continue
            binf = idx[:-4] + ".bin"
            off = HDR_BYTES
            while off + REC_BYTES <= len(data):
                try:
                    e = _decode_record(data[off:off + REC_BYTES])
                except ValueError as why:
                    raise MechirFormatError(idx, "record at offset %d: %s" % (off, why)) \
                        from None
                found[(e["pair_id"], e["hook"], e["run"])] = CacheEntry(file=binf, **e)
                off += REC_BYTES
        self._entries = found
        self._order = sorted(found, key=lambda k: (k[0], k[1].encode(), RUNS.index(k[2])))

    def __len__(self):
        return len(self._entries)

    def entries(self):
        """Every entry, sorted by (pair id, hook, run) as `mechir cache ls` prints them."""
        return [self._entries[k] for k in self._order]

    def hooks(self):
        return sorted({k[1] for k in self._entries})

    def pair_ids(self):
        return sorted({k[0] for k in self._entries})

    def entry(self, pair_id, hook, run="baseline"):
        key = (parse_pair_id(pair_id), hook, run)
        if run not in RUNS:
            raise ValueError("run %r is not baseline or perturbed" % run)
        if key not in self._entries:
            raise KeyError("%s: no cached activation of pair %016x, hook '%s', %s run"
                           % (os.path.join(self.out_dir, "cache"), key[0], hook, run))
        return self._entries[key]

    def get(self, pair_id, hook, run="baseline"):
        """The activation as a float32 array of the stored shape. A damaged chunk raises
        MechirFormatError naming the .bin and the chunk's offset."""
        e = self.entry(pair_id, hook, run)
        return self.read(e)

    def read(self, e):
        what = "chunk of pair %016x %s %s" % (e.pair_id, e.hook, e.run)
        where = "%s:%d" % (e.file, e.offset)
        try:
            with open(e.file, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if not _check_header(f.read(HDR_BYTES), e.file, b"MCHSTBIN"):
                    raise MechirFormatError(e.file, "empty")
                if e.offset + REC_BYTES + e.stored_bytes > size:
                    raise MechirFormatError(where, "%s runs past the end of the file (%d bytes)"
                                            % (what, size))
                f.seek(e.offset)
                rec = f.read(REC_BYTES)
                frame = f.read(e.stored_bytes)
        except FileNotFoundError:
            raise MechirFormatError(e.file, "missing (its index lists %s)" % what) from None
        try:
            again = _decode_record(rec)
        except ValueError as why:
            raise MechirFormatError(where, "%s: header: %s" % (what, why)) from None
        if (again["pair_id"], again["hook"], again["run"], again["offset"]) != \
                (e.pair_id, e.hook, e.run, e.offset) or again["checksum"] != e.checksum:
            raise MechirFormatError(where, "%s: the chunk's header differs from its index "
                                    "record" % what)
        if self.verify:
            got = xxh64(frame)
            if got != e.checksum:
                raise MechirFormatError(where, "%s: checksum %016x, expected %016x (corrupted)"
                                        % (what, got, e.checksum))
        numel = e.raw_bytes // 4
        payload = _zstd.decompress_frames(frame, where, max_frames=1)
        width = 4 if e.dtype == "f32" else 2
        if len(payload) != numel * width:
            raise MechirFormatError(where, "%s: %d bytes decoded, expected %d"
                                    % (what, len(payload), numel * width))
        return decode_values(payload, e.dtype, numel).reshape(e.shape)


def open_cache(out_dir, verify=True):
    """The activation cache of a run's output directory (OUT, holding cache/)."""
    return Cache(out_dir, verify=verify)
