"""Hostile copies of a test model, made at test time (no binary fixture is committed).

  hostile_model.py copy SRC DST               copy config.json, vocab.txt, model.safetensors
  hostile_model.py config DIR KEY JSON        set config.json's KEY to the JSON value
  hostile_model.py poison DIR TENSOR I VALUE  element I of TENSOR (F32, F16 or BF16) := VALUE
                                              (nan, inf, -inf or a number), found through the
                                              safetensors header's data_offsets

Standard library only; run with Debian's /usr/bin/python3.
"""
import json
import shutil
import struct
import sys


def copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("golden.json", "README.md"))


def config(d, key, value):
    path = d + "/config.json"
    with open(path) as f:
        cfg = json.load(f)
    cfg[key] = json.loads(value)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def poison(d, tensor, index, value):
    path = d + "/model.safetensors"
    with open(path, "r+b") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        t = header[tensor]  # KeyError names a tensor that is not there
        begin, end = t["data_offsets"]
        x = float(value)
        if t["dtype"] == "F32":
            raw = struct.pack("<f", x)
        elif t["dtype"] == "F16":
            raw = struct.pack("<e", x)
        elif t["dtype"] == "BF16":
            raw = struct.pack("<f", x)[2:]  # the high half of the float32
        else:
            sys.exit("poison: %s is %s, not a float tensor" % (tensor, t["dtype"]))
        at = begin + int(index) * len(raw)
        if not begin <= at < end:
            sys.exit("poison: element %s is outside %s" % (index, tensor))
        f.seek(8 + hlen + at)
        f.write(raw)


if __name__ == "__main__":
    cmds = {"copy": copy, "config": config, "poison": poison}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
