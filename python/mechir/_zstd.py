"""zstd decompression for pairs.jsonl.zst and the activation cache, from whichever module is
there: Python 3.14's compression.zstd, else the zstandard package (Debian: python3-zstandard).
Neither is a hard dependency: reading .jsonl and .cmap files needs no zstd."""
from .errors import MechirFormatError

_HOW = ("reading zstd-compressed mechir files needs Python >= 3.14 (compression.zstd) or the "
        "zstandard module (Debian: apt-get install python3-zstandard; pip: pip install "
        "'mechir[zstd]')")


def _backend():
    try:
        from compression import zstd  # Python >= 3.14

        return "stdlib", zstd
    except ImportError:
        pass
    try:
        import zstandard

        return "zstandard", zstandard
    except ImportError:
        raise ImportError(_HOW) from None


def available():
    """Whether a zstd module is importable."""
    try:
        _backend()
        return True
    except ImportError:
        return False


def decompress_frames(data, path, max_frames=None):
    """The content of data, a sequence of whole zstd frames (independent frames, as
    pairs.jsonl.zst holds). A cut or damaged frame raises MechirFormatError naming path.
    max_frames: refuse more frames than that (the activation cache stores exactly one)."""
    kind, mod = _backend()
    if kind == "stdlib":
        if max_frames is not None:
            return _frames_stdlib(mod, data, path, max_frames)
        try:
            return mod.decompress(data)
        except mod.ZstdError as e:
            raise MechirFormatError(path, "zstd: %s" % e) from None
    out = []
    rest = memoryview(data)
    frames = 0
    dctx = mod.ZstdDecompressor()
    while len(rest):
        if max_frames is not None and frames >= max_frames:
            raise MechirFormatError(path, "zstd: %d bytes after the frame" % len(rest))
        d = dctx.decompressobj()
        try:
            out.append(d.decompress(rest))
        except mod.ZstdError as e:
            raise MechirFormatError(path, "zstd: frame %d: %s" % (frames, e)) from None
        if not d.eof:
            raise MechirFormatError(path, "zstd: frame %d is truncated" % frames)
        frames += 1
        rest = memoryview(d.unused_data)
    return b"".join(out)


def _frames_stdlib(mod, data, path, max_frames):
    d = mod.ZstdDecompressor()
    try:
        out = d.decompress(data)
    except mod.ZstdError as e:
        raise MechirFormatError(path, "zstd: %s" % e) from None
    if not d.eof:
        raise MechirFormatError(path, "zstd: the frame is truncated")
    if d.unused_data:
        raise MechirFormatError(path, "zstd: %d bytes after the frame" % len(d.unused_data))
    return out
