"""Circuit maps as numpy arrays with named axes: read_cmap (circuit.cmap, the protobuf
CircuitMap) and read_circuit_json (circuit.json, or `mechir report MAP --format json`) give the
same CircuitMap object.

Every estimate block (heads, blocks by role, head-pos, qkv, pattern, resid-mid by role, a
stratum's maps, the verified maps) is an
Estimates: arrays of one shape whose axes are named in .axes and labelled in .coords, holding
what circuit.json holds per cell (ratio_of_means, ci_low, ci_high, the two exact sums, mean, std,
n). From a .cmap it also holds m2 and the bootstrap replicates' ratios of means."""
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import stats
from .errors import MechirFormatError

CMAP_FORMAT = "mechir-circuit/2"
ROLES = ("cls", "sep", "query_term", "query_other", "injected", "doc_term", "doc_match",
         "doc_other")
COMPONENTS = ("resid_pre", "attn_out", "mlp_out")
SWEEPS = ("heads", "blocks", "head-pos", "qkv", "pattern", "resid-mid", "none")
QKV = ("q", "k", "v")
CMAP_MAX_BYTES = 1 << 30
MAX_STRATA = 4096
STAT_KEYS = ("ratio_of_means", "ci_low", "ci_high", "sum_patched_minus_baseline",
             "sum_perturbed_minus_baseline", "mean", "std", "n")


@dataclass
class Estimates:
    """The cells of one map. Arrays have the shape len(coords[a]) for a in axes; float64 with NaN
    where circuit.json has null, n is uint64. ratio_of_means = sum_patched_minus_baseline /
    sum_perturbed_minus_baseline (the headline estimate), ci_low/ci_high its bootstrap percentile
    interval, mean/std/n the mean of the pairs' effects (MechIR's estimate)."""

    axes: Tuple[str, ...]
    coords: Dict[str, list]
    ratio_of_means: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    sum_patched_minus_baseline: np.ndarray
    sum_perturbed_minus_baseline: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray
    m2: Optional[np.ndarray] = None  # .cmap only: the Welford sums of squared deviations
    # .cmap only: the ratio of means of bootstrap replicates 1..B, shape + (B,)
    replicates: Optional[np.ndarray] = None

    @property
    def arr(self):
        """The headline array: ratio_of_means."""
        return self.ratio_of_means

    @property
    def shape(self):
        return self.ratio_of_means.shape

    def cells(self):
        """Every cell as (labels, index): labels a dict axis -> coordinate, in C order."""
        for idx in np.ndindex(*self.shape):
            yield {a: self.coords[a][i] for a, i in zip(self.axes, idx)}, idx


@dataclass
class Stratum:
    name: str
    pairs: int
    heads: Estimates
    blocks_by_role: Estimates


@dataclass
class CircuitMap:
    """A circuit map. spec holds the job spec's fields (proto/mechir.proto JobSpec names) from a
    .cmap, circuit.json's header objects from JSON."""

    path: str
    format: str
    spec: dict
    layers: int
    heads_per_layer: int
    sweeps: List[str]
    method: str  # exact, atp or atp-qk
    bootstrap: dict  # replicates, level, seed
    pairs: dict  # total, used, skipped, failed, with_axiom, against_axiom
    roles: List[str]
    heads: Estimates  # (layer, head)
    blocks_by_role: Estimates  # (component, layer, role)
    head_pos: Optional[Dict[str, Estimates]]  # "z", "pattern": (head_pos, role); None: no sweep
    strata: Dict[str, Stratum]
    verified: Optional[dict]  # heads, heads_estimate, blocks_by_role(_estimate), rank_correlation
    sites: List[str]
    provenance: List[str]
    pair_ids: Optional[np.ndarray] = None  # .cmap only (uint64, sorted)
    # the finer sweeps (None: not swept): hook_q/k/v of each head (component q/k/v, layer,
    # head), a head's whole hook_pattern (layer, head), hook_resid_mid by role (layer, role)
    qkv: Optional[Estimates] = None
    pattern: Optional[Estimates] = None
    resid_mid_by_role: Optional[Estimates] = None

    def components(self, frame=None):
        """Every component with pairs (n > 0) in the map's order, as `mechir report` lists them
        in components.csv: kind (head, block, head_pos, qkv, pattern), component, layer, head,
        role and the
        cell's statistics. A pandas DataFrame when pandas is importable (frame=None) or asked
        for (frame=True), else a list of dicts."""
        rows = []
        level = self.bootstrap.get("level") or 0.95
        z = stats.normal_quantile((1 + level) / 2)

        def add(kind, comp, e, idx, layer, head, role):
            n = int(e.n[idx])
            if not n:
                return
            mean, sd = float(e.mean[idx]), float(e.std[idx])
            half = z * sd / math.sqrt(n) if n >= 2 else math.nan
            rows.append({"kind": kind, "component": comp, "name": component_name(kind, comp,
                                                                                  layer, head, role),
                         "layer": layer, "head": head,
                         "role": role, "ratio_of_means": float(e.ratio_of_means[idx]),
                         "rom_ci_low": float(e.ci_low[idx]), "rom_ci_high": float(e.ci_high[idx]),
                         "mean_of_ratios": mean, "std": sd, "n": n,
                         "mor_ci_low": mean - half, "mor_ci_high": mean + half,
                         "sum_patched_minus_baseline": float(e.sum_patched_minus_baseline[idx]),
                         "sum_perturbed_minus_baseline":
                             float(e.sum_perturbed_minus_baseline[idx])})

        sites = {"decoder": "decoder.attn.hook_z", "cross": "decoder.cross_attn.hook_z"}
        names = self.heads.coords["layer"]
        for (row, head) in np.ndindex(*self.heads.shape):
            part, layer = names[row] if isinstance(names[row], tuple) else (None, names[row])
            add("head", sites.get(part, "attn.hook_z"), self.heads, (row, head), layer, head,
                None)
        for (c, layer, r) in np.ndindex(*self.blocks_by_role.shape):
            add("block", COMPONENTS[c], self.blocks_by_role, (c, layer, r), layer, None, ROLES[r])
        if self.head_pos:
            for key, comp in (("z", "attn.hook_z"), ("pattern", "attn.hook_pattern")):
                e = self.head_pos[key]
                for (k, r) in np.ndindex(*e.shape):
                    layer, head = e.coords["head_pos"][k]
                    add("head_pos", comp, e, (k, r), layer, head, ROLES[r])
        if self.qkv is not None:
            for (c, layer, head) in np.ndindex(*self.qkv.shape):
                add("qkv", "attn.hook_" + QKV[c], self.qkv, (c, layer, head), layer, head, None)
        if self.pattern is not None:
            for (layer, head) in np.ndindex(*self.pattern.shape):
                add("pattern", "attn.hook_pattern", self.pattern, (layer, head), layer, head, None)
        if self.resid_mid_by_role is not None:
            for (layer, r) in np.ndindex(*self.resid_mid_by_role.shape):
                add("block", "resid_mid", self.resid_mid_by_role, (layer, r), layer, None,
                    ROLES[r])
        return _frame(rows, frame)

    def top(self, k=10):
        """The k components with the largest ratio of means (NaN last, ties in the map's
        order), as `mechir report` ranks them in top.txt: a list of components() rows."""
        rows = self.components(frame=False)
        rows.sort(key=lambda c: (math.isnan(c["ratio_of_means"]),
                                 -c["ratio_of_means"] if not math.isnan(c["ratio_of_means"])
                                 else 0.0))
        return rows[:k]


HEAD_LABELS = {"decoder.attn.hook_z": "decoder head",
               "decoder.cross_attn.hook_z": "cross-attention head"}


def component_name(kind, component, layer, head, role):
    """A component as the report names it: "head 1.2", "attn_out layer 1 doc_match",
    "head-pos hook_z head 1.1 doc_match", "hook_q head 1.2", "pattern head 1.2"; a MonoT5's
    "decoder head 0.3" and "cross-attention head 0.3"."""
    if kind == "head":
        return "%s %d.%d" % (HEAD_LABELS.get(component, "head"), layer, head)
    if kind == "qkv":
        return "%s head %d.%d" % (component[len("attn."):], layer, head)
    if kind == "pattern":
        return "pattern head %d.%d" % (layer, head)
    if kind == "block":
        return "%s layer %d %s" % (component, layer, role)
    hook = "hook_z" if component == "attn.hook_z" else "hook_pattern"
    return "head-pos %s head %d.%d %s" % (hook, layer, head, role)


def _frame(rows, frame):
    if frame is False:
        return rows
    try:
        import pandas as pd
    except ImportError:
        if frame:
            raise ImportError("a DataFrame needs pandas (Debian: python3-pandas; pip: pandas)")
        return rows
    return pd.DataFrame(rows)


# ---- the shapes of a map ------------------------------------------------------------------


def _head_rows(L, LD):
    """The heads map's rows: layers 0..L-1, and for a MonoT5 (LD decoder layers) then
    ("decoder", l) and ("cross", l) rows, as mechir writes them (docs/T5.md)."""
    return list(range(L)) + [("decoder", l) for l in range(LD)] + [("cross", l) for l in range(LD)]


def _axes(kind, L, NH, head_pos, LD=0):
    if kind == "heads":
        return ("layer", "head"), {"layer": _head_rows(L, LD), "head": list(range(NH))}
    if kind == "blocks":
        return (("component", "layer", "role"),
                {"component": list(COMPONENTS), "layer": list(range(L)), "role": list(ROLES)})
    if kind == "qkv":
        return (("component", "layer", "head"),
                {"component": list(QKV), "layer": list(range(L)), "head": list(range(NH))})
    if kind == "pattern":
        return ("layer", "head"), {"layer": list(range(L)), "head": list(range(NH))}
    if kind == "resid_mid":
        return ("layer", "role"), {"layer": list(range(L)), "role": list(ROLES)}
    return ("head_pos", "role"), {"head_pos": [tuple(h) for h in head_pos], "role": list(ROLES)}


def _empty(axes, coords):
    shape = tuple(len(coords[a]) for a in axes)
    nan = np.full(shape, np.nan)
    return Estimates(axes, coords, nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy(),
                     nan.copy(), nan.copy(), np.zeros(shape, dtype=np.uint64))


# ---- circuit.cmap -------------------------------------------------------------------------


def _unknown_fields(msg):
    """Whether msg or a message inside it holds fields this reader's descriptor does not know."""
    try:
        from google.protobuf.unknown_fields import UnknownFieldSet  # protobuf >= 4.22

        if len(UnknownFieldSet(msg)):
            return True
    except ImportError:
        if len(msg.UnknownFields()):
            return True
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        items = value if fd.label == fd.LABEL_REPEATED else [value]
        if any(_unknown_fields(v) for v in items):
            return True
    return False


def _spec_dict(spec):
    out = {}
    for fd in spec.DESCRIPTOR.fields:
        v = getattr(spec, fd.name)
        if fd.message_type is not None:
            v = [{f.name: getattr(x, f.name) for f in x.DESCRIPTOR.fields} for x in v]
        elif fd.label == fd.LABEL_REPEATED:
            v = list(v)
        out[fd.name] = v
    return out


class _Checker:
    """The validation of a decoded map (proto/msg_cmap.c's map_problem, the same rules), raising
    MechirFormatError naming the file and the field."""

    def __init__(self, path):
        self.path = path

    def fail(self, msg):
        raise MechirFormatError(self.path, "invalid circuit map: " + msg)

    def stats(self, name, s, cells, max_n, present):
        if not present:
            if cells:
                self.fail("%s: missing (%d cells expected)" % (name, cells))
            return
        if not (len(s.n) == len(s.mean) == len(s.m2) == cells):
            self.fail("%s: %d, %d and %d values for %d cells (wrong shape)"
                      % (name, len(s.n), len(s.mean), len(s.m2), cells))
        n = np.array(s.n, dtype=np.uint64)
        mean = np.array(s.mean, dtype=np.float64)
        m2 = np.array(s.m2, dtype=np.float64)
        bad = ((n > np.uint64(max_n)) | ~np.isfinite(mean) | ~np.isfinite(m2) | (m2 < 0) |
               ((n == 0) & ((mean != 0) | (m2 != 0))))
        if bad.any():
            self.fail("%s: cell %d has n %d, mean %r, m2 %r (wrong values; at most %d pairs)"
                      % (name, int(np.argmax(bad)), int(n[np.argmax(bad)]),
                         float(mean[np.argmax(bad)]), float(m2[np.argmax(bad)]), max_n))

    def est(self, name, e, present, cells, B, max_n):
        if not present:
            if cells:
                self.fail("%s: missing (%d cells expected)" % (name, cells))
            return
        if e.replicates != B:
            self.fail("%s: %d replicates, the spec has %d" % (name, e.replicates, B))
        self.stats(name + ".mean_of_ratios", e.mean_of_ratios, cells, max_n,
                   e.HasField("mean_of_ratios"))
        R = B + 1
        k = cells * R
        if not (len(e.num_hi) == len(e.num_lo) == len(e.den_hi) == len(e.den_lo) == k):
            self.fail("%s: exact sums of %d, %d, %d, %d limbs for %d cells x %d (wrong shape)"
                      % (name, len(e.num_hi), len(e.num_lo), len(e.den_hi), len(e.den_lo), cells,
                         R))
        if not k:
            return
        n = np.repeat(np.array(e.mean_of_ratios.n, dtype=object), R)
        w = np.array([1 if i % R == 0 else 20 for i in range(k)], dtype=object)
        lim = np.array([min(a * b // 4, 2**64 - 1) for a, b in zip(n, w)], dtype=object)
        for hi_l, lo_l, what in ((e.num_hi, e.num_lo, "sum_patched"),
                                 (e.den_hi, e.den_lo, "sum_perturbed")):
            for i, (hi, lo) in enumerate(zip(hi_l, lo_l)):
                mag = -hi - 1 if hi < 0 else hi
                ok = mag <= lim[i] if n[i] else (hi == 0 and lo == 0)
                if not ok:
                    self.fail("%s: %s of cell %d replicate %d is impossible for %d pairs"
                              % (name, what, i // R, i % R, n[i]))


def _est_from_pb(e, present, axes, coords, level, B):
    out = _empty(axes, coords)
    shape = out.shape
    cells = int(np.prod(shape)) if shape else 1
    if not present or len(e.mean_of_ratios.n) == 0:
        out.m2 = np.zeros(shape)
        out.replicates = np.full(shape + (B,), np.nan)
        return out
    R = B + 1
    s = e.mean_of_ratios
    n = np.array(s.n, dtype=np.uint64)
    num = stats.xsum_value(np.array(e.num_hi, dtype=np.int64),
                           np.array(e.num_lo, dtype=np.uint64)).reshape(cells, R)
    den = stats.xsum_value(np.array(e.den_hi, dtype=np.int64),
                           np.array(e.den_lo, dtype=np.uint64)).reshape(cells, R)
    rom = stats.ratio(num, den)
    if B:
        lo, hi = stats.intervals(rom[:, 1:], level)
    else:
        lo = hi = np.full(cells, np.nan)
    mean = np.where(n > 0, np.array(s.mean, dtype=np.float64), np.nan)
    m2 = np.array(s.m2, dtype=np.float64)
    out.ratio_of_means = rom[:, 0].reshape(shape)
    out.ci_low, out.ci_high = lo.reshape(shape), hi.reshape(shape)
    out.sum_patched_minus_baseline = num[:, 0].reshape(shape)
    out.sum_perturbed_minus_baseline = den[:, 0].reshape(shape)
    out.mean = mean.reshape(shape)
    out.std = stats.std(n, m2).reshape(shape)
    out.n = n.reshape(shape)
    out.m2 = m2.reshape(shape)
    out.replicates = rom[:, 1:].reshape(shape + (B,))
    return out


def read_cmap(path):
    """Reads and validates circuit.cmap (a protobuf CircuitMap, no header or compression).
    A file that does not decode or breaks the map's rules raises MechirFormatError naming the
    file; a missing file raises OSError."""
    from google.protobuf.message import DecodeError

    from .proto import CircuitMap as CircuitMapPb

    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > CMAP_MAX_BYTES:
        raise MechirFormatError(path, "%d bytes is larger than any circuit map" % size)
    with open(path, "rb") as f:
        data = f.read()
    m = CircuitMapPb()
    try:
        # Some runtimes (the C++ one) stop at an end-group tag with a warning and a short count
        # rather than an error: both are a decoding failure here.
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            used = m.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise MechirFormatError(path, "not a circuit map (protobuf decoding failed: %s)" % e) \
            from None
    if used is not None and used != len(data):
        why = "; ".join(str(w.message) for w in warned) or "stopped early"
        raise MechirFormatError(path, "not a circuit map (protobuf decoding failed at byte %d of "
                                "%d: %s)" % (used, len(data), why))
    return _from_pb(path, m)


def _from_pb(path, m):
    ck = _Checker(path)
    if m.format != CMAP_FORMAT:
        ck.fail("format is %r, not %r (a map of another mechir version, or not a map)"
                % (m.format[:40], CMAP_FORMAT))
    if _unknown_fields(m):
        ck.fail("fields this reader does not know (a newer mechir, or damage)")
    if not m.HasField("spec"):
        ck.fail("no job spec")
    s = m.spec
    L, NH = s.layers, s.heads
    if not (1 <= L <= 1024 and 1 <= NH <= 1024):
        ck.fail("spec: layers %d or heads %d out of range (1..1024)" % (L, NH))
    if len(s.head_list) % 2:
        ck.fail("spec: head list of odd length")
    for sw in s.sweeps:
        if sw not in SWEEPS:
            ck.fail("spec: unknown sweep %r" % sw[:60])
    head_pos = [(s.head_list[2 * k], s.head_list[2 * k + 1]) for k in range(len(s.head_list) // 2)]
    for (l, h) in head_pos:
        if l >= L or h >= NH:
            ck.fail("spec: head %d.%d outside the model (%d layers, %d heads)" % (l, h, L, NH))
    B = s.bootstrap
    if B > 100000:
        ck.fail("spec: bootstrap %d is above 100000" % B)
    if B and not (0 < s.ci_level < 1):
        ck.fail("spec: ci_level %r is not in (0, 1)" % s.ci_level)
    if not (math.isfinite(s.min_delta) and s.min_delta >= 0):
        ck.fail("spec: min_delta %r is not a finite number >= 0" % s.min_delta)
    if list(m.roles) != list(ROLES):
        ck.fail("roles: %r, expected %r" % (list(m.roles)[:10], list(ROLES)))
    if m.pairs_used + m.pairs_skipped + m.pairs_failed != m.pairs_total:
        ck.fail("pair counts: used %d + skipped %d + failed %d != total %d"
                % (m.pairs_used, m.pairs_skipped, m.pairs_failed, m.pairs_total))
    if m.pairs_with + m.pairs_against > m.pairs_used + m.pairs_skipped:
        ck.fail("pair counts: with %d + against %d the axiom > used + skipped %d"
                % (m.pairs_with, m.pairs_against, m.pairs_used + m.pairs_skipped))
    if len(m.pair_ids) != m.pairs_total:
        ck.fail("pair_ids: %d ids for %d pairs" % (len(m.pair_ids), m.pairs_total))
    ids = np.array(m.pair_ids, dtype=np.uint64)
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
        ck.fail("pair_ids: not sorted and unique")
    sw = set(s.sweeps)
    K = len(head_pos)
    R = len(ROLES)
    LD = s.decoder_layers
    if LD > 1024:
        ck.fail("spec: decoder_layers %d out of range (0..1024)" % LD)
    cells = {"heads": (L + 2 * LD) * NH if "heads" in sw else 0,
             "blocks": 3 * L * R if "blocks" in sw else 0,
             "head_pos": K * R if "head-pos" in sw else 0,
             "qkv": 3 * L * NH if "qkv" in sw else 0,
             "pattern": L * NH if "pattern" in sw else 0,
             "resid_mid": L * R if "resid-mid" in sw else 0}
    verify = s.verify_top != 0
    top = [("heads", "heads", "heads"), ("blocks_by_role", "blocks", "blocks"),
           ("head_pos_z_by_role", "head_pos", "head_pos"),
           ("head_pos_pattern_by_role", "head_pos", "head_pos"), ("qkv", "qkv", "qkv"),
           ("pattern", "pattern", "pattern"), ("resid_mid_by_role", "resid_mid", "resid_mid")]
    ver = [("heads_verified", "heads"), ("heads_verified_estimate", "heads"),
           ("blocks_by_role_verified", "blocks"), ("blocks_by_role_verified_estimate", "blocks")]
    for name, kind, _ in top:
        ck.est(name, getattr(m, name), m.HasField(name), cells[kind], B, m.pairs_used)
    for name, kind in ver:
        ck.est(name, getattr(m, name), m.HasField(name), cells[kind] if verify else 0, B,
               m.pairs_used)
    for i in (0, 2):
        a, b = getattr(m, ver[i][0]), getattr(m, ver[i + 1][0])
        if verify and list(a.mean_of_ratios.n) != list(b.mean_of_ratios.n):
            ck.fail("%s: the cells' pairs differ from %s's" % (ver[i][0], ver[i + 1][0]))
    ck.stats("verified_rank", m.verified_rank, 1 if verify else 0, m.pairs_used,
             m.HasField("verified_rank"))
    if m.HasField("verified_rank") and len(m.verified_rank.n) and abs(m.verified_rank.mean[0]) > 1:
        ck.fail("verified_rank: mean %r outside [-1, 1]" % m.verified_rank.mean[0])
    if len(m.strata) > MAX_STRATA:
        ck.fail("strata: %d, more than %d" % (len(m.strata), MAX_STRATA))
    seen, per_kind = set(), {}
    for i, st in enumerate(m.strata):
        kind = next((k for k in ("relevance=", "rank=", "direction=")
                     if st.name.startswith(k) and len(st.name) > len(k)), None)
        if kind is None:
            ck.fail("strata[%d]: unknown name %r" % (i, st.name[:40]))
        if st.name in seen:
            ck.fail("strata[%d]: %r appears twice" % (i, st.name))
        seen.add(st.name)
        if st.pairs > m.pairs_used:
            ck.fail("strata[%d] (%s): %d pairs, more than used" % (i, st.name, st.pairs))
        ck.est("strata[%d] (%s).heads" % (i, st.name), st.heads, st.HasField("heads"),
               cells["heads"], B, st.pairs)
        ck.est("strata[%d] (%s).blocks_by_role" % (i, st.name), st.blocks_by_role,
               st.HasField("blocks_by_role"), cells["blocks"], B, st.pairs)
        per_kind[kind] = per_kind.get(kind, 0) + st.pairs
        if per_kind[kind] > m.pairs_used:
            ck.fail("strata: the %s strata hold more pairs than pairs_used (%d)"
                    % (kind[:-1], m.pairs_used))

    level = s.ci_level

    def est(name, kind):
        axes, coords = _axes(kind, L, NH, head_pos, LD)
        return _est_from_pb(getattr(m, name), m.HasField(name), axes, coords, level, B)

    def est_of(msg, fieldname, kind):
        axes, coords = _axes(kind, L, NH, head_pos, LD)
        return _est_from_pb(getattr(msg, fieldname), msg.HasField(fieldname), axes, coords,
                            level, B)

    verified = None
    if verify:
        vr = m.verified_rank
        n = vr.n[0] if len(vr.n) else 0
        verified = {
            "rank_correlation": {
                "pairs": int(n), "mean": vr.mean[0] if n else math.nan,
                "std": float(stats.std(np.array([n], dtype=np.uint64), [vr.m2[0]])[0])
                if len(vr.n) else math.nan},
            "heads": est("heads_verified", "heads"),
            "heads_estimate": est("heads_verified_estimate", "heads"),
            "blocks_by_role": est("blocks_by_role_verified", "blocks"),
            "blocks_by_role_estimate": est("blocks_by_role_verified_estimate", "blocks")}
    return CircuitMap(
        path=path, format=m.format, spec=_spec_dict(s), layers=L, heads_per_layer=NH,
        sweeps=list(s.sweeps), method=s.method or "exact",
        bootstrap={"replicates": B, "level": s.ci_level, "seed": s.seed},
        pairs={"total": m.pairs_total, "used": m.pairs_used, "skipped": m.pairs_skipped,
               "failed": m.pairs_failed, "with_axiom": m.pairs_with,
               "against_axiom": m.pairs_against},
        roles=list(m.roles), heads=est("heads", "heads"),
        blocks_by_role=est("blocks_by_role", "blocks"),
        head_pos={"z": est("head_pos_z_by_role", "head_pos"),
                  "pattern": est("head_pos_pattern_by_role", "head_pos")} if K else None,
        strata={st.name: Stratum(st.name, st.pairs, est_of(st, "heads", "heads"),
                                 est_of(st, "blocks_by_role", "blocks")) for st in m.strata},
        verified=verified, sites=list(m.sites), provenance=list(m.provenance), pair_ids=ids,
        qkv=est("qkv", "qkv") if "qkv" in sw else None,
        pattern=est("pattern", "pattern") if "pattern" in sw else None,
        resid_mid_by_role=est("resid_mid_by_role", "resid_mid") if "resid-mid" in sw else None)


# ---- circuit.json -------------------------------------------------------------------------


def _num(x):
    return math.nan if x is None else float(x)


def _est_from_json(path, block, axes, coords, where):
    out = _empty(axes, coords)
    shape = out.shape
    for key in STAT_KEYS:
        if key not in block:
            raise MechirFormatError(path, "%s: no %r" % (where, key))
        try:
            if key == "n":
                a = np.array(block[key], dtype=np.uint64)
            else:
                a = np.array(block[key], dtype=object)
                a = np.vectorize(_num, otypes=[np.float64])(a) if a.size else \
                    a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise MechirFormatError(path, "%s.%s: not an array of numbers (%s)" % (where, key, e))
        if a.shape != shape:
            raise MechirFormatError(path, "%s.%s: shape %s, expected %s"
                                    % (where, key, a.shape, shape))
        setattr(out, key, a)
    return out


def read_circuit_json(path):
    """Reads circuit.json (or the output of `mechir report MAP.cmap --format json`) into the
    CircuitMap read_cmap gives (without m2, bootstrap replicates and pair ids, which the JSON
    does not hold). Not JSON or another layout: MechirFormatError naming the file."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            j = json.load(f)
        except ValueError as e:
            raise MechirFormatError(path, "not JSON (%s)" % e) from None
    if not isinstance(j, dict) or j.get("format") != CMAP_FORMAT:
        raise MechirFormatError(path, "not a %s circuit.json" % CMAP_FORMAT)
    try:
        model = j["model"]
        L, NH = int(model["layers"]), int(model["heads"])
        LD = int(model.get("decoder_layers", 0))
        hp = j.get("head_pos")
        head_pos = [tuple(h) for h in hp["heads"]] if hp else []

        def est(block, kind, where):
            axes, coords = _axes(kind, L, NH, head_pos, LD)
            return _est_from_json(path, block, axes, coords, where)

        verified = None
        if "verified" in j:
            v = j["verified"]
            rc = v["rank_correlation"]
            verified = {"rank_correlation": {"pairs": rc["pairs"], "mean": _num(rc["mean"]),
                                             "std": _num(rc["std"])}}
            for key, kind in (("heads", "heads"), ("heads_estimate", "heads"),
                              ("blocks_by_role", "blocks"), ("blocks_by_role_estimate", "blocks")):
                if key in v:
                    verified[key] = est(v[key], kind, "verified." + key)
        spec = {k: j[k] for k in ("model", "perturbation", "direction", "software_version")}
        finer = {}
        for key, kind in (("qkv", "qkv"), ("pattern", "pattern"),
                          ("resid_mid_by_role", "resid_mid")):
            if key in j:
                finer[key] = est(j[key], kind, key)
        if "verify_top" in j:
            spec["verify_top"] = j["verify_top"]
        return CircuitMap(
            path=path, format=j["format"], spec=spec, layers=L, heads_per_layer=NH,
            sweeps=list(j["sweeps"]), method=j.get("method", "exact"),
            bootstrap=dict(j["bootstrap"]), pairs=dict(j["pairs"]),
            roles=list(j["blocks_by_role"]["roles"]),
            heads=est(j["heads"], "heads", "heads"),
            blocks_by_role=est(j["blocks_by_role"], "blocks", "blocks_by_role"),
            head_pos={"z": est(hp["z"], "head_pos", "head_pos.z"),
                      "pattern": est(hp["pattern"], "head_pos", "head_pos.pattern")}
            if hp else None,
            strata={name: Stratum(name, st["pairs"],
                                  est(st["heads"], "heads", "strata.%s.heads" % name),
                                  est(st["blocks_by_role"], "blocks",
                                      "strata.%s.blocks_by_role" % name))
                    for name, st in j["strata"].items()},
            verified=verified, sites=list(j["sites"]), provenance=list(j["provenance"]),
            **finer)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, MechirFormatError):
            raise
        raise MechirFormatError(path, "not the circuit.json layout (%s: %s)"
                                % (type(e).__name__, e)) from None
