/* Encoder kernels over cblas_sgemm. Elementwise transcendental functions are the hot spot
 * outside sgemm, so exp and erf here are written to vectorise (no libm call in the loop) while
 * staying within a few float ulps of libm. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

void mch_layernorm_forward(float *out, const float *inp, const float *g, const float *b, int N,
                           int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double sum = 0;
        for (int c = 0; c < C; c++) sum += x[c];
        float mean = (float)(sum / C);
        double var = 0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - mean;
            var += d * d;
        }
        float rstd = (float)(1.0 / sqrt(var / C + eps));
        for (int c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd * g[c] + b[c];
    }
}

/* exp(x) for float, vectorisable: x = k ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r
 * (relative error < 2e-7 on the reduced range), then scale by 2^k through the exponent bits.
 * Inputs below -87.3 give 0; above 88.7 give +inf. */
static inline float exp_approx(float x)
{
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.72283f ? 88.72283f : x;
    float k = nearbyintf(x * 1.44269504088896341f);
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* Exact (erf) GELU with libm's erff. */
void mch_gelu_erf_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void mch_gelu_tanh_forward(float *x, size_t n)
{
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
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
    for (int r = 0; r < R; r++) {
        float *row = att + (size_t)r * ld;
        float mx = row[0];
        for (int t = 1; t < T; t++) mx = row[t] > mx ? row[t] : mx;
        float sum = 0;
        for (int t = 0; t < T; t++) {
            row[t] = exp_approx(row[t] - mx);
            sum += row[t];
        }
        float inv = 1.0f / sum;
        for (int t = 0; t < T; t++) row[t] *= inv;
    }
}

void mch_add_inplace(float *out, const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] += a[i];
}
