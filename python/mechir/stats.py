"""The estimates of a circuit map's cells, computed as mechir's C code does (proto/msg_stats.c),
so a value read from circuit.cmap is the double circuit.json prints.

Exact sums are 128-bit integers counting 2^-40 score units, stored as a signed high limb and an
unsigned low limb; the interval is the percentile ("linear", numpy's default) of the bootstrap
replicates' ratios of means that are finite."""
import numpy as np

XSUM_FRAC_BITS = 40


def xsum_value(hi, lo):
    """The doubles of exact sums (hi: int64, lo: uint64 arrays of one shape), rounded as
    mch_xsum_value: the magnitude's limbs converted, added, then scaled by 2^-40."""
    hi = np.asarray(hi, dtype=np.int64)
    lo = np.asarray(lo, dtype=np.uint64)
    neg = hi < 0
    uhi = hi.astype(np.uint64)  # two's complement bits
    with np.errstate(over="ignore"):
        mlo = np.where(neg, ~lo + np.uint64(1), lo)  # two's complement, wrapping
        mhi = np.where(neg, ~uhi + (mlo == 0).astype(np.uint64), uhi)
    v = np.ldexp(mhi.astype(np.float64), 64) + mlo.astype(np.float64)
    return np.ldexp(np.where(neg, -v, v), -XSUM_FRAC_BITS)


def ratio(num, den):
    """num / den where den != 0, NaN elsewhere (mch_est_ratio)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = den != 0
    np.divide(num, den, out=out, where=ok)
    return out


def _percentile(x, p):
    """Linear percentile of sorted x, with mechir's arithmetic (x[i] + (h - f) (x[i+1] - x[i]))."""
    n = len(x)
    h = (n - 1) * p
    f = np.floor(h)
    i = int(f)
    return x[i] + (h - f) * (x[i + 1] - x[i]) if i + 1 < n else x[n - 1]


def intervals(replicate_ratios, level):
    """Percentile intervals of each cell's bootstrap ratios (cells, B): (lo, hi) arrays, NaN
    where fewer than two replicates are finite (mch_est_interval)."""
    cells = replicate_ratios.shape[0]
    lo = np.full(cells, np.nan)
    hi = np.full(cells, np.nan)
    a = (1 - level) / 2
    for c in range(cells):
        r = replicate_ratios[c]
        r = np.sort(r[np.isfinite(r)])
        if len(r) >= 2:
            lo[c] = _percentile(r, a)
            hi[c] = _percentile(r, 1 - a)
    return lo, hi


def std(n, m2):
    """Sample standard deviation sqrt(M2 / (n - 1)), NaN where n < 2."""
    n = np.asarray(n, dtype=np.uint64)
    out = np.full(n.shape, np.nan)
    ok = n >= 2
    out[ok] = np.sqrt(np.asarray(m2, dtype=np.float64)[ok] / (n[ok].astype(np.float64) - 1))
    return out


def normal_quantile(p):
    """Phi^-1(p) by bisection on erfc, as mechir report computes z (200 halvings of [-40, 40])."""
    from math import erfc, sqrt

    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * erfc(-mid / sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
