/* The statistics of a circuit map: Welford's mean and M2 with Chan's combination (the mean of
 * ratios), exact fixed-point sums (the ratio of means), the Poisson bootstrap's weights and its
 * percentile intervals. Exact sums make every estimate independent of the order and grouping in
 * which pairs are added: a merge of shards gives the bytes of the whole run. */
#include "msg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Welford ------------------------------------------------------------------------------ */

mch_status mch_stats_init(mch_stats *s, size_t cells, mch_err *err)
{
    s->cells = cells;
    s->n = calloc(cells + 1, sizeof *s->n);
    s->mean = calloc(cells + 1, sizeof *s->mean);
    s->m2 = calloc(cells + 1, sizeof *s->m2);
    if (s->n && s->mean && s->m2) return MCH_OK;
    mch_stats_deinit(s);
    return mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu statistics cells", cells);
}

void mch_stats_deinit(mch_stats *s)
{
    if (!s) return;
    free(s->n);
    free(s->mean);
    free(s->m2);
    memset(s, 0, sizeof *s);
}

void mch_stats_add(mch_stats *s, size_t i, double x)
{
    s->n[i]++;
    double d = x - s->mean[i];
    s->mean[i] += d / (double)s->n[i];
    s->m2[i] += d * (x - s->mean[i]);
}

void mch_stats_fold(mch_stats *a, const mch_stats *b)
{
    for (size_t i = 0; i < a->cells; i++) {
        uint64_t nb = b->n[i];
        if (!nb) continue;
        if (!a->n[i]) {
            a->n[i] = nb, a->mean[i] = b->mean[i], a->m2[i] = b->m2[i];
            continue;
        }
        double na = (double)a->n[i], dn = (double)nb, tot = na + dn, d = b->mean[i] - a->mean[i];
        a->mean[i] += d * dn / tot;
        a->m2[i] += b->m2[i] + d * d * na * dn / tot;
        a->n[i] += nb;
    }
}

double mch_stats_std(const mch_stats *s, size_t i)
{
    return s->n[i] >= 2 ? sqrt(s->m2[i] / (double)(s->n[i] - 1)) : NAN;
}

/* ---- exact sums --------------------------------------------------------------------------- */

int mch_xsum_quantize(double v, int64_t *q)
{
    if (!(fabs(v) < MCH_XSUM_MAX)) return 1;
    *q = llround(ldexp(v, MCH_XSUM_FRAC_BITS));
    return 0;
}

/* Two's complement 128-bit addition of a signed 64-bit value. */
static void xsum_add1(mch_xsum *s, int64_t q)
{
    uint64_t lo = s->lo + (uint64_t)q;
    s->hi += (lo < s->lo) - (q < 0);
    s->lo = lo;
}

void mch_xsum_add(mch_xsum *s, int64_t q, unsigned w)
{
    for (unsigned k = 0; k < w; k++) xsum_add1(s, q);
}

static void xsum_fold(mch_xsum *a, mch_xsum b)
{
    uint64_t lo = a->lo + b.lo;
    a->hi += b.hi + (lo < a->lo);
    a->lo = lo;
}

double mch_xsum_value(mch_xsum s)
{
    int neg = s.hi < 0;
    uint64_t hi = (uint64_t)s.hi, lo = s.lo;
    if (neg) { /* the magnitude, so the low limb does not cancel against the high one */
        lo = ~lo + 1;
        hi = ~hi + (lo == 0);
    }
    double v = ldexp((double)hi, 64) + (double)lo;
    return ldexp(neg ? -v : v, -MCH_XSUM_FRAC_BITS);
}

/* ---- the Poisson bootstrap ---------------------------------------------------------------- */

/* splitmix64's output function (Steele, Lea and Flood 2014). */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* floor(2^64 P(X <= k)) for X ~ Poisson(1), k = 0..19, computed with 80-digit decimals
 * (docs/STATISTICS.md shows how); P(X <= 19) = 1 - 2^64 * 1e-19 or so, so weights stop at 20. */
static const uint64_t poisson_cdf[20] = {
    0x5e2d58d8b3bcdf1aULL, 0xbc5ab1b16779be35ULL, 0xeb715e1dc1582dc2ULL, 0xfb23979734a252f1ULL,
    0xff1025f59174dc3dULL, 0xffd90f3ba4055e19ULL, 0xfffa8b71fc72c913ULL, 0xffff540c0914b3c9ULL,
    0xffffed1f4aa8f120ULL, 0xfffffe216e641462ULL, 0xffffffd4d85d3183ULL, 0xfffffffc6da262b4ULL,
    0xffffffffba12d178ULL, 0xfffffffffb07c64cULL, 0xffffffffffab8ea5ULL, 0xfffffffffffabe22ULL,
    0xffffffffffffb11aULL, 0xfffffffffffffba1ULL, 0xffffffffffffffc5ULL, 0xfffffffffffffffdULL};

unsigned mch_poisson_weight(uint64_t seed, uint64_t pair_id, uint32_t b)
{
    uint64_t u = mix64(mix64(mix64(seed) ^ pair_id) ^ (uint64_t)b);
    unsigned w = 0;
    while (w < 20 && u >= poisson_cdf[w]) w++;
    return w;
}

void mch_bootstrap_weights(uint64_t seed, uint64_t pair_id, uint32_t B, uint8_t *w)
{
    w[0] = 1;
    for (uint32_t b = 1; b <= B; b++) w[b] = (uint8_t)mch_poisson_weight(seed, pair_id, b);
}

/* ---- estimates ---------------------------------------------------------------------------- */

mch_status mch_est_init(mch_est *e, size_t cells, uint32_t B, mch_err *err)
{
    memset(e, 0, sizeof *e);
    mch_status rc = mch_stats_init(&e->mor, cells, err);
    if (rc) return rc;
    e->cells = cells, e->B = B;
    size_t n = cells * ((size_t)B + 1) + 1;
    e->num = calloc(n, sizeof *e->num);
    e->den = calloc(n, sizeof *e->den);
    if (e->num && e->den) return MCH_OK;
    mch_est_deinit(e);
    return mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu x %lu bootstrap sums", cells,
                    (unsigned long)B + 1);
}

void mch_est_deinit(mch_est *e)
{
    if (!e) return;
    mch_stats_deinit(&e->mor);
    free(e->num);
    free(e->den);
    memset(e, 0, sizeof *e);
}

void mch_est_add(mch_est *e, size_t cell, double effect, int64_t qnum, int64_t qden,
                 const uint8_t *w)
{
    mch_stats_add(&e->mor, cell, effect);
    size_t R = (size_t)e->B + 1;
    mch_xsum *num = e->num + cell * R, *den = e->den + cell * R;
    for (size_t b = 0; b < R; b++)
        if (w[b]) {
            mch_xsum_add(&num[b], qnum, w[b]);
            mch_xsum_add(&den[b], qden, w[b]);
        }
}

void mch_est_fold(mch_est *a, const mch_est *b)
{
    mch_stats_fold(&a->mor, &b->mor);
    size_t n = a->cells * ((size_t)a->B + 1);
    for (size_t i = 0; i < n; i++) {
        xsum_fold(&a->num[i], b->num[i]);
        xsum_fold(&a->den[i], b->den[i]);
    }
}

double mch_est_ratio(const mch_est *e, size_t cell, uint32_t b)
{
    size_t i = cell * ((size_t)e->B + 1) + b;
    double den = mch_xsum_value(e->den[i]);
    return den != 0 ? mch_xsum_value(e->num[i]) / den : NAN;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* numpy.percentile's default ("linear") of sorted x[0..n). */
static double percentile(const double *x, size_t n, double p)
{
    double h = (double)(n - 1) * p, f = floor(h);
    size_t i = (size_t)f;
    return i + 1 < n ? x[i] + (h - f) * (x[i + 1] - x[i]) : x[n - 1];
}

int mch_est_interval(const mch_est *e, size_t cell, double level, double *scratch, double *lo,
                     double *hi)
{
    size_t n = 0;
    for (uint32_t b = 1; b <= e->B; b++) {
        double r = mch_est_ratio(e, cell, b);
        if (isfinite(r)) scratch[n++] = r;
    }
    if (n < 2) return 1;
    qsort(scratch, n, sizeof *scratch, cmp_double);
    double a = (1 - level) / 2;
    *lo = percentile(scratch, n, a);
    *hi = percentile(scratch, n, 1 - a);
    return 0;
}
