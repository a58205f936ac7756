/* Backward kernels of the encoder (activation gradients only) over cblas_sgemm. The elementwise
 * GELU derivatives go through the forward's vectorised exp and erf (ops.c) in stack-sized chunks,
 * so a backward costs about what the forward's activations cost; reductions are done in double. */
#include "ops_backward.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ops.h"

/* Elements an elementwise backward hands to the vectorised exp/erf at a time. */
#define CHUNK 256

void mch_linear_backward(float *dinp, int ldi, const float *dout, int ldo, const float *weight,
                         int N, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, ldo, weight, C,
                1.0f, dinp, ldi);
}

void mch_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *g, int N,
                            int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        double sum = 0, var = 0;
        for (int c = 0; c < C; c++) sum += x[c];
        double mean = sum / C;
        for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
        double rstd = 1.0 / sqrt(var / C + eps);
        /* dx = rstd (dnorm - mean(dnorm) - xhat mean(dnorm xhat)), dnorm = dy g. */
        double m1 = 0, m2 = 0;
        for (int c = 0; c < C; c++) {
            double dn = (double)dy[c] * g[c];
            m1 += dn;
            m2 += dn * (x[c] - mean) * rstd;
        }
        m1 /= C;
        m2 /= C;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - mean) * rstd;
            dx[c] += (float)(rstd * ((double)dy[c] * g[c] - m1 - xhat * m2));
        }
    }
}

/* d/dx 0.5 x (1 + erf(x / sqrt 2)) = 0.5 (1 + erf(x / sqrt 2)) + x phi(x). */
void mch_gelu_erf_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    float e[CHUNK], p[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        const float *x = inp + i0;
        for (size_t i = 0; i < m; i++) {
            e[i] = x[i] * 0.70710678118654752f;
            p[i] = -0.5f * x[i] * x[i];
        }
        mch_erf_forward(e, m);
        mch_exp_forward(p, m);
        for (size_t i = 0; i < m; i++) {
            float d = 0.5f * (1.0f + e[i]) + x[i] * p[i] * 0.39894228040143268f; /* 1/sqrt(2 pi) */
            dinp[i0 + i] = dout[i0 + i] * d;
        }
    }
}

/* GELU = 0.5 x (1 + tanh(u)), u = k (x + 0.044715 x^3):
 * d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 * 0.044715 x^2). */
void mch_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    float t[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        const float *x = inp + i0;
        for (size_t i = 0; i < m; i++) t[i] = 2.0f * k * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
        mch_exp_forward(t, m);
        for (size_t i = 0; i < m; i++) {
            float th = 1.0f - 2.0f / (t[i] + 1.0f); /* e^{2u} = inf gives 1, 0 gives -1 */
            float d = 0.5f * (1.0f + th) +
                      0.5f * x[i] * (1.0f - th * th) * k * (1.0f + 0.134145f * x[i] * x[i]);
            dinp[i0 + i] = dout[i0 + i] * d;
        }
    }
}

void mch_relu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) dinp[i] = inp[i] > 0 ? dout[i] : 0.0f;
}

void mch_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float y = tanhf(inp[i]);
        dinp[i] = dout[i] * (1.0f - y * y);
    }
}

void mch_softmax_backward(float *dinp, const float *dout, const float *p, int R, int T, int ld)
{
    for (int r = 0; r < R; r++) {
        const float *pr = p + (size_t)r * ld, *dy = dout + (size_t)r * ld;
        float *dx = dinp + (size_t)r * ld;
        double s = 0;
        for (int t = 0; t < T; t++) s += (double)pr[t] * dy[t];
        float sf = (float)s;
        for (int t = 0; t < T; t++) dx[t] = pr[t] * (dy[t] - sf);
    }
}

void mch_attention_backward(float *dq, float *dk, float *dv, float *dpattern, float *dpre,
                            const float *dz, const float *q, const float *k, const float *v,
                            const float *att, int T, int NH, int HS, int ld)
{
    float scale = 1.0f / sqrtf((float)HS); /* as the forward's */
    for (int h = 0; h < NH; h++) {
        size_t col = (size_t)h * HS;
        const float *ah = att + (size_t)h * T * T;
        float *dp = dpattern + (size_t)h * T * T;
        /* z = att v: datt = dz v^T (T, T), dv += att^T dz (T, HS). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, dz + col, ld, v + col,
                    ld, 0.0f, dp, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, ah, T, dz + col, ld,
                    1.0f, dv + col, ld);
        /* att = softmax(pre), pre = scale q k^T: dq += scale dpre k, dk += scale dpre^T q. */
        mch_softmax_backward(dpre, dp, ah, T, T, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, scale, dpre, T, k + col,
                    ld, 1.0f, dq + col, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, scale, dpre, T, q + col, ld,
                    1.0f, dk + col, ld);
    }
}

void mch_mean_pool_backward(float *dx, const float *demb, int T, int C)
{
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) dx[(size_t)t * C + c] += demb[c] / (float)T;
}

void mch_cls_pool_backward(float *dx, const float *demb, int C)
{
    mch_add_inplace(dx, demb, (size_t)C);
}

void mch_dot_backward(float *da, const float *b, float ds, int C)
{
    for (int c = 0; c < C; c++) da[c] += ds * b[c];
}
