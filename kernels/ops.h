/* Tensor kernels of the encoder. Output first, inputs const, every shape in the comment.
 * Kernels cannot fail and never allocate: shapes were validated when the model was loaded. */
#ifndef MCH_OPS_H
#define MCH_OPS_H

#include <stddef.h>

/* Sets the BLAS threads of this process to n (n <= 0 leaves OpenBLAS's own default). Thread
 * counts are policy: the program's entry sets them, never a kernel; cblas.h stays in kernels/. */
void mch_set_threads(int n);

/* Memory for the large activation buffers of a context (sized once, reused for every pair),
 * freed with free(). Blocks of 2 MiB or more are 2 MiB-aligned and advised as transparent huge
 * pages (MADV_HUGEPAGE, where the kernel allows them on request): a fresh buffer then faults once
 * per 2 MiB instead of once per 4 KiB page, which is most of a short process's time in a VM.
 * NULL when out of memory. */
void *mch_alloc_large(size_t bytes);

/* The BLAS library as it runs here: its build configuration and version, and the kernel it chose
 * for this CPU (OPENBLAS_CORETYPE can change it), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY
 * Haswell MAX_THREADS=64; kernel Haswell". Results can differ in the last bits between kernels. */
void mch_blas_describe(char *buf, size_t len);

/* out = inp @ weight^T + bias, as a HF nn.Linear (weight is (OC, C)).
 * inp is (N, C) with row stride ldi (>= C), out (N, OC) with row stride ldo (>= OC). */
void mch_linear_forward(float *out, int ldo, const float *inp, int ldi, const float *weight,
                        const float *bias, int N, int C, int OC);

/* out = LayerNorm(inp) * g + b over the last axis; inp, out are (N, C); out may alias inp. */
void mch_layernorm_forward(float *out, const float *inp, const float *g, const float *b, int N,
                           int C, float eps);

/* In place, x is (n): exp(x), vectorised, max relative error 8.5e-8 against libm in double
 * (x < -87.34 gives 0, never a subnormal; x > 88.72 gives +inf). */
void mch_exp_forward(float *x, size_t n);
/* In place, x is (n): erf(x), vectorised piecewise polynomial, max absolute error 1.2e-7
 * against libm in double. Both bounds are asserted by tests/unit/test_ops.c over dense sweeps. */
void mch_erf_forward(float *x, size_t n);

/* In place, x is (n): exact GELU 0.5 x (1 + erf(x / sqrt 2)), erf as mch_erf_forward. */
void mch_gelu_erf_forward(float *x, size_t n);
/* In place: tanh GELU 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh through the
 * vectorised exp. */
void mch_gelu_tanh_forward(float *x, size_t n);
void mch_relu_forward(float *x, size_t n);
void mch_tanh_forward(float *x, size_t n);

/* In place row softmax of att (R, T) with row stride ld. */
void mch_softmax_rows(float *att, int R, int T, int ld);

/* Attention scores of one sequence before the softmax: att (NH, T, T), att[h][i][j] =
 * q[i, h] . k[j, h] / sqrt(HS); q and k are (T, C) rows (C = NH * HS, head h at columns
 * h*HS ..), row stride ldq. */
void mch_attn_scores_forward(float *att, const float *q, const float *k, int ldq, int T, int NH,
                             int HS);

/* Per-head attention output without the bias (TransformerLens's hook_result): out (T, NH, C),
 * out[t, h] = z[t, h*HS .. (h+1)*HS) W_O[:, h*HS .. (h+1)*HS)^T; z (T, C) with row stride ldz,
 * o_w (C, C) as HF stores it (out, in). */
void mch_attn_result_forward(float *out, const float *z, int ldz, const float *o_w, int T, int NH,
                             int HS, int C);
/* attn_out (T, C) = bias + sum over heads of result (T, NH, C); bias (C) or NULL. */
void mch_attn_result_sum(float *attn_out, const float *result, const float *bias, int T, int NH,
                         int C);

/* out[i] += a[i] for i < n. */
void mch_add_inplace(float *out, const float *a, size_t n);
/* out[i] = a[i] + b[i] for i < n (the residual sum; out must not partly overlap a or b). */
void mch_add_forward(float *out, const float *a, const float *b, size_t n);

#endif
