/* Encoder kernels over cblas_sgemm. Outside sgemm the hot spots are elementwise exp and erf, so
 * those are written with GCC/Clang vector extensions (no libm call in the loop, no -ffast-math)
 * and stay within a few 1e-7 of libm; tests/unit/test_ops.c sweeps and asserts the bounds.
 * Invariant: an element's result never depends on where it sits in the array (array tails go
 * through the same vector code via a padded block), so a sequence scores the same in any batch. */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "ops.h"

#include <cblas.h>
#include <stdio.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* One vector register of the target: the widest the compile flags allow. Elementwise results
 * are the same at every width; only the summation order of reductions changes. */
#if defined(__AVX512F__)
#define VEC_BYTES 64
#elif defined(__AVX__)
#define VEC_BYTES 32
#else
#define VEC_BYTES 16
#endif
#define W (VEC_BYTES / (int)sizeof(float))

typedef float vf __attribute__((vector_size(VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(VEC_BYTES)));

static inline vf vload(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}

static inline vf vsplat(float a)
{
    return (vf){0} + a;
}

/* Lanes of a where m is set (all ones), else lanes of b. */
static inline vf vsel(vi m, vf a, vf b)
{
    return (vf)(((vi)a & m) | ((vi)b & ~m));
}

/* min and max that keep a NaN in a. */
static inline vf vmin(vf a, vf b)
{
    return vsel(b < a, b, a);
}

static inline vf vmax(vf a, vf b)
{
    return vsel(b > a, b, a);
}

static inline float hsum(vf v)
{
    float s = 0;
    for (int i = 0; i < W; i++) s += v[i];
    return s;
}

static inline float hmax(vf v)
{
    float m = v[0];
    for (int i = 1; i < W; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* The last n % W elements of x, padded with pad, as one vector. */
static inline vf load_tail(const float *x, size_t rem, float pad)
{
    float buf[W];
    for (int i = 0; i < W; i++) buf[i] = (size_t)i < rem ? x[i] : pad;
    return vload(buf);
}

static inline void store_tail(float *x, size_t rem, vf v)
{
    float buf[W];
    vstore(buf, v);
    memcpy(x, buf, rem * sizeof *x);
}

/* e^x for x already clamped to [-87.33654, 88.72283]: x = k ln2 + r with |r| <= ln2/2, k
 * rounded to nearest by adding 1.5 * 2^23 (so k is both t - 1.5 * 2^23 and the low bits of
 * t's mantissa: no float-to-int conversion, and NaN lanes stay defined and come out NaN), then
 * Cephes' degree-6 polynomial for e^r in Estrin's form (a Horner chain would be latency-bound).
 * Returns e^r and sets *k. */
static inline vf exp_reduced(vf x, vi *k)
{
    vf t = x * 1.44269504088896341f + 12582912.0f;
    vf kf = t - 12582912.0f;
    vf r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    vf r2 = r * r;
    vf p = ((1.9875691500e-4f * r + 1.3981999507e-3f) * r2 +
            (8.3334519073e-3f * r + 4.1665795894e-2f)) *
               r2 +
           (1.6666665459e-1f * r + 5.0000001201e-1f);
    *k = (vi)t - 0x4B400000;
    return p * r2 + r + 1.0f;
}

/* exp(x). Below -87.33654 (e^x under FLT_MIN) gives 0, never a subnormal; above 88.72283 gives
 * +inf. Max relative error against libm (double) is asserted by test_ops. */
static inline vf vexp(vf x)
{
    vi under = x < -87.33654f;
    vi over = x > 88.72283f;
    vi k;
    vf p = exp_reduced(vmax(vmin(x, vsplat(88.72283f)), vsplat(-87.33654f)), &k);
    /* 2^k as 2^(k/2) 2^(k - k/2): k = 128 (x near the top of the range) has no float. */
    vi k1 = k >> 1;
    vi e1 = (k1 + 127) << 23, e2 = (k - k1 + 127) << 23;
    return vsel(over, vsplat(INFINITY), vsel(under, vsplat(0.0f), p * (vf)e1 * (vf)e2));
}

/* exp(x) for x <= 0 or NaN (softmax after subtracting the row max): the same numbers as vexp
 * with the overflow handling left out, since k <= 0 always has a float 2^k. */
static inline vf vexp_nonpos(vf x)
{
    vi under = x < -87.33654f;
    vi k;
    vf p = exp_reduced(vmax(x, vsplat(-87.33654f)), &k);
    return vsel(under, vsplat(0.0f), p * (vf)((k + 127) << 23));
}

/* erf(x) in two pieces, both evaluated and one selected per lane (z = |x|, sign copied back):
 *   z <= 1:        erf = z P(s),      s = 2 z^2 - 1, P of degree 6 fits erf(z) / z;
 *   1 < z <= 3.92: erf = 1 - Q(s),    s = (2 z - 4.92) / 2.92, Q of degree 12 fits erfc(z);
 *   z > 3.92:      erf = 1 (erf(3.92) already rounds to 1 in float).
 * P and Q are Chebyshev interpolants (200 nodes, computed in double) turned into monomials in s
 * and rounded to float; evaluated in s in [-1, 1] the rounding error stays near two ulps. Max
 * absolute error against libm (double) is 1.2e-7 over [-10, 10], asserted by test_ops. */
static inline vf verf(vf x)
{
    const vi sign_bit = (vi){0} + (int32_t)0x80000000u;
    vi sign = (vi)x & sign_bit;
    vf z = (vf)((vi)x & ~sign_bit);
    /* P in two short Horner pieces: half the latency of one chain, max error 1.2e-7 instead of
     * 9.4e-8. */
    vf s = z * z * 2.0f - 1.0f;
    vf p_hi = (1.231640113e-06f * s + -1.766908099e-05f) * s + 2.175119880e-04f;
    vf p_lo =
        ((-2.285419498e-03f * s + 1.985249855e-02f) * s + -1.405360997e-01f) * s + 9.654687643e-01f;
    vf s2 = s * s;
    vf p = p_hi * (s2 * s2) + p_lo;
    p = p * z;
    vf zl = vmin(z, vsplat(3.92f));
    s = zl * 0.684931507f + -1.68493151f;
    /* Estrin's scheme for Q: a 12-step Horner chain would make the loop latency-bound. */
    s2 = s * s;
    vf s4 = s2 * s2, s8 = s4 * s4;
    vf q_lo = ((-6.526904646e-03f * s + 2.869897336e-02f) * s2 +
               (-4.509779066e-02f * s + 4.500537366e-02f)) *
                  s4 +
              ((-3.060109727e-02f * s + 1.393160224e-02f) * s2 +
               (-3.878064919e-03f * s + 5.033268826e-04f));
    vf q_hi = 8.599194116e-04f * s4 + ((-1.629612991e-03f * s + -2.283840673e-03f) * s2 +
                                       (9.083879180e-03f * s + -8.065709844e-03f));
    vf q = q_hi * s8 + q_lo;
    vf y = vsel(z <= 1.0f, p, vsel(z >= 3.92f, vsplat(1.0f), vmin(1.0f - q, vsplat(1.0f))));
    return (vf)((vi)y | sign);
}

/* tanh(x) = sign(x) (1 - 2 / (e^{2|x|} + 1)); e^{2|x|} = inf for large |x| gives exactly 1. */
static inline vf vtanh(vf x)
{
    vi neg = x < 0.0f;
    vf a = vsel(neg, -x, x);
    vf t = 1.0f - 2.0f / (vexp(a + a) + 1.0f);
    return vsel(neg, -t, t);
}

static inline vf vgelu_erf(vf v)
{
    return 0.5f * v * (1.0f + verf(v * 0.70710678118654752f));
}

static inline vf vgelu_tanh(vf v)
{
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    return 0.5f * v * (1.0f + vtanh(k * (v + 0.044715f * v * v * v)));
}

/* Applies the vector function F in place over x (n), the tail through a padded block. */
#define MAP_INPLACE(x, n, F)                                                                       \
    do {                                                                                           \
        size_t i_ = 0;                                                                             \
        for (; i_ + W <= (n); i_ += W) vstore((x) + i_, F(vload((x) + i_)));                       \
        if (i_ < (n)) store_tail((x) + i_, (n)-i_, F(load_tail((x) + i_, (n)-i_, 0.0f)));          \
    } while (0)

void mch_exp_forward(float *x, size_t n)
{
    MAP_INPLACE(x, n, vexp);
}

void mch_erf_forward(float *x, size_t n)
{
    MAP_INPLACE(x, n, verf);
}

void mch_linear_forward(float *out, int ldo, const float *inp, int ldi, const float *weight,
                        const float *bias, int N, int C, int OC)
{
    /* Seed out with the bias and let sgemm accumulate onto it (beta = 1). */
    for (int n = 0; n < N; n++) {
        float *row = out + (size_t)n * ldo;
        if (bias)
            memcpy(row, bias, (size_t)OC * sizeof *row);
        else
            memset(row, 0, (size_t)OC * sizeof *row);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, ldi, weight, C, 1.0f,
                out, ldo);
}

/* Two passes per row (mean, then the mean squared deviation) with W float partial sums each:
 * for rows of a few thousand values the statistics stay within ~1e-6 relative of a double loop
 * (test_ops checks the output against one). */
void mch_layernorm_forward(float *out, const float *inp, const float *g, const float *b, int N,
                           int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        vf vs = {0};
        int c = 0;
        for (; c + W <= C; c += W) vs += vload(x + c);
        float sum = hsum(vs);
        for (int t = c; t < C; t++) sum += x[t];
        float mean = sum / (float)C;
        vf vv = {0};
        for (c = 0; c + W <= C; c += W) {
            vf d = vload(x + c) - mean;
            vv += d * d;
        }
        float var = hsum(vv);
        for (int t = c; t < C; t++) var += (x[t] - mean) * (x[t] - mean);
        float rstd = (float)(1.0 / sqrt((double)var / C + eps));
        for (c = 0; c + W <= C; c += W)
            vstore(y + c, (vload(x + c) - mean) * rstd * vload(g + c) + vload(b + c));
        for (; c < C; c++) y[c] = (x[c] - mean) * rstd * g[c] + b[c];
    }
}

void mch_gelu_erf_forward(float *x, size_t n)
{
    MAP_INPLACE(x, n, vgelu_erf);
}

void mch_gelu_tanh_forward(float *x, size_t n)
{
    MAP_INPLACE(x, n, vgelu_tanh);
}

void mch_relu_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

void mch_tanh_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

void mch_softmax_rows(float *att, int R, int T, int ld)
{
    size_t full = (size_t)T / W * W, rem = (size_t)T - full;
    for (int r = 0; r < R; r++) {
        float *row = att + (size_t)r * ld;
        vf vm = vsplat(-INFINITY);
        for (size_t t = 0; t < full; t += W) vm = vmax(vm, vload(row + t));
        float mx = hmax(vm);
        for (size_t t = full; t < (size_t)T; t++) mx = row[t] > mx ? row[t] : mx;
        vf vs = {0};
        for (size_t t = 0; t < full; t += W) {
            vf e = vexp_nonpos(vload(row + t) - mx);
            vstore(row + t, e);
            vs += e;
        }
        if (rem) {
            /* Padding lanes are -inf: e^-inf is 0 and adds nothing to the sum. */
            vf e = vexp_nonpos(load_tail(row + full, rem, -INFINITY) - mx);
            store_tail(row + full, rem, e);
            vs += e;
        }
        float inv = 1.0f / hsum(vs);
        for (size_t t = 0; t < full; t += W) vstore(row + t, vload(row + t) * inv);
        for (size_t t = full; t < (size_t)T; t++) row[t] *= inv;
    }
}

void mch_attn_scores_forward(float *att, const float *q, const float *k, int ldq, int T, int NH,
                             int HS)
{
    float scale = 1.0f / sqrtf((float)HS);
    for (int h = 0; h < NH; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, scale, q + h * HS, ldq,
                    k + h * HS, ldq, 0.0f, att + (size_t)h * T * T, T);
}

void mch_attn_result_forward(float *out, const float *z, int ldz, const float *o_w, int T, int NH,
                             int HS, int C)
{
    /* Head h's rows of out are (T, C) with stride NH * C: one sgemm a head. */
    for (int h = 0; h < NH; h++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, C, HS, 1.0f, z + h * HS, ldz,
                    o_w + (size_t)h * HS, C, 0.0f, out + (size_t)h * C, NH * C);
}

void mch_attn_result_sum(float *attn_out, const float *result, const float *bias, int T, int NH,
                         int C)
{
    for (int t = 0; t < T; t++) {
        float *row = attn_out + (size_t)t * C;
        if (bias)
            memcpy(row, bias, (size_t)C * sizeof *row);
        else
            memset(row, 0, (size_t)C * sizeof *row);
        for (int h = 0; h < NH; h++) mch_add_inplace(row, result + ((size_t)t * NH + h) * C, C);
    }
}

void mch_add_inplace(float *out, const float *a, size_t n)
{
    size_t i = 0;
    for (; i + W <= n; i += W) vstore(out + i, vload(out + i) + vload(a + i));
    for (; i < n; i++) out[i] += a[i];
}

void mch_add_forward(float *out, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + W <= n; i += W) vstore(out + i, vload(a + i) + vload(b + i));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

void *mch_alloc_large(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return malloc(bytes ? bytes : 1);
    if (bytes > SIZE_MAX - huge) return NULL;
    size_t len = (bytes + huge - 1) / huge * huge;
    void *p = NULL;
    if (posix_memalign(&p, huge, len)) return NULL;
    madvise(p, len, MADV_HUGEPAGE); /* a request: refused or ignored, the pages stay small */
    return p;
}

void mch_set_threads(int n)
{
    if (n > 0) openblas_set_num_threads(n);
}

void mch_blas_describe(char *buf, size_t len)
{
    const char *config = openblas_get_config(), *core = openblas_get_corename();
    snprintf(buf, len, "%s; kernel %s", config ? config : "OpenBLAS", core ? core : "unknown");
}
