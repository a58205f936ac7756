"""pairs.jsonl and pairs.jsonl.zst (one JSON object per pair, in input order; the .zst as
independent zstd frames of 64 lines each): a pandas DataFrame when pandas is there, else a
list of dicts; pair_arrays turns one pair's maps into numpy arrays with named axes."""
import json
import os
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from . import _zstd
from .circuit import COMPONENTS, QKV
from .errors import MechirFormatError


@dataclass
class NamedArray:
    """An array and the names of its axes (coords: the labels along each, where known)."""

    arr: np.ndarray
    axes: Tuple[str, ...]
    coords: Dict[str, list]


def _lines(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".zst"):
        data = _zstd.decompress_frames(data, path)
    if data and not data.endswith(b"\n"):
        raise MechirFormatError(path, "the last line is cut (no newline at the end)")
    return data.decode("utf-8").splitlines()


def read_pairs(path, frame=None):
    """The pairs of OUT/pairs.jsonl or OUT/pairs.jsonl.zst, in file order. frame=None: a
    pandas DataFrame if pandas is importable, else a list of dicts; True: a DataFrame (pandas
    required); False: the list. Lists stay lists inside the DataFrame's cells. A line that is
    not a JSON object raises MechirFormatError naming the file and line."""
    path = os.fspath(path)
    rows = []
    for no, line in enumerate(_lines(path), 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise MechirFormatError(path, "line %d: not JSON (%s)" % (no, e)) from None
        if not isinstance(obj, dict) or "pair_id" not in obj:
            raise MechirFormatError(path, "line %d: not a pair (no \"pair_id\")" % no)
        rows.append(obj)
    from .circuit import _frame

    return _frame(rows, frame)


def _grid(x, what):
    a = np.array([[np.nan if v is None else v for v in row] for row in x], dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("pair map %s is not a matrix" % what)
    return a


def pair_arrays(pair, scores=False):
    """One pair's maps (a row of read_pairs: a dict or a DataFrame row) as NamedArrays:
    "heads" (layer, head), "blocks" (component, layer, position), "head_pos_z" and
    "head_pos_pattern" (head_pos, position), "qkv" (component q/k/v, layer, head), "pattern"
    (layer, head) and "resid_mid" (layer, position): the effects, or with scores=True the raw
    patched scores. Only the maps the pair holds (none for a skipped or failed pair). Positions are
    labelled with the pair's roles."""
    sfx = "_scores" if scores else ""
    get = pair.get if hasattr(pair, "get") else pair.__getitem__
    out = {}
    roles = list(get("roles"))
    heads = get("heads" + sfx)
    if isinstance(heads, list):
        a = _grid(heads, "heads")
        out["heads"] = NamedArray(a, ("layer", "head"),
                                  {"layer": list(range(a.shape[0])),
                                   "head": list(range(a.shape[1]))})
    blocks = get("blocks" + sfx)
    if isinstance(blocks, dict):
        a = np.stack([_grid(blocks[c], c) for c in COMPONENTS])
        out["blocks"] = NamedArray(a, ("component", "layer", "position"),
                                   {"component": list(COMPONENTS),
                                    "layer": list(range(a.shape[1])), "position": roles})
    hp = get("head_pos" + sfx)
    if isinstance(hp, dict):
        for key in ("z", "pattern"):
            a = _grid(hp[key], key)
            out["head_pos_" + key] = NamedArray(a, ("head_pos", "position"),
                                                {"head_pos": list(range(a.shape[0])),
                                                 "position": roles})
    qkv = get("qkv" + sfx)
    if isinstance(qkv, dict):
        a = np.stack([_grid(qkv[c], c) for c in QKV])
        out["qkv"] = NamedArray(a, ("component", "layer", "head"),
                                {"component": list(QKV), "layer": list(range(a.shape[1])),
                                 "head": list(range(a.shape[2]))})
    pattern = get("pattern" + sfx)
    if isinstance(pattern, list):
        a = _grid(pattern, "pattern")
        out["pattern"] = NamedArray(a, ("layer", "head"), {"layer": list(range(a.shape[0])),
                                                           "head": list(range(a.shape[1]))})
    rmid = get("resid_mid" + sfx)
    if isinstance(rmid, list):
        a = _grid(rmid, "resid_mid")
        out["resid_mid"] = NamedArray(a, ("layer", "position"),
                                      {"layer": list(range(a.shape[0])), "position": roles})
    return out
