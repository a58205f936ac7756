/* Backward passes of the encoder kernels (ops.h), llm.c's habit: one mch_<op>_backward per forward
 * op, gradients out first, the saved forward values it needs as arguments, nothing allocated.
 * Only activation gradients are computed; the weights' gradients are never needed.
 * Matrix ops accumulate (dinp += ...), so a tensor read by several ops (the residual stream, the
 * input of q, k and v) sums its gradients; elementwise ops write (dinp = ...) and may run in place
 * (dinp == dout). */
#ifndef MCH_OPS_BACKWARD_H
#define MCH_OPS_BACKWARD_H

#include <stddef.h>

/* Input gradient of mch_linear_forward (weight (OC, C)): dinp += dout @ weight.
 * dout is (N, OC) with row stride ldo, dinp (N, C) with row stride ldi. The bias has none. */
void mch_linear_backward(float *dinp, int ldi, const float *dout, int ldo, const float *weight,
                         int N, int C, int OC);

/* Input gradient of mch_layernorm_forward at inp (N, C) with gain g (C): dinp (N, C) += J^T dout,
 * dout (N, C). The row's mean and 1/std are recomputed from inp (in double), so nothing of the
 * forward needs saving but its input. dinp must not alias dout or inp. The embeddings' LayerNorm
 * (over E) is this op with C = E. */
void mch_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *g, int N,
                            int C, float eps);

/* Elementwise, inp (n) the forward's input: dinp = dout * f'(inp). */
void mch_gelu_erf_backward(float *dinp, const float *dout, const float *inp, size_t n);
void mch_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);
void mch_relu_backward(float *dinp, const float *dout, const float *inp, size_t n); /* 0 at 0 */
void mch_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Row softmax p = softmax(x) of R rows of T (row stride ld), given its output p:
 * dinp = p * (dout - sum_j p_j dout_j) per row. dinp may alias dout. */
void mch_softmax_backward(float *dinp, const float *dout, const float *p, int R, int T, int ld);

/* Self-attention of one sequence, per head h: z_h = softmax(scale q_h k_h^T) v_h with
 * scale = 1/sqrt(HS). q, k, v and dz are (T, NH * HS) with row stride ld (the packed rows of
 * one sequence: padding never enters them, which is the padding mask of the forward, so a padded
 * key gets no gradient), att (NH, T, T) the forward's probabilities. Accumulates dq, dk, dv
 * (T, NH * HS, row stride ld); writes dpattern (NH, T, T), the gradient with respect to the
 * probabilities (hook_pattern); dpre (T, T) is scratch. */
void mch_attention_backward(float *dq, float *dk, float *dv, float *dpattern, float *dpre,
                            const float *dz, const float *q, const float *k, const float *v,
                            const float *att, int T, int NH, int HS, int ld);

/* Mean pooling emb = mean over T rows of x (T, C): dx (T, C) += demb / T, demb (C). */
void mch_mean_pool_backward(float *dx, const float *demb, int T, int C);
/* CLS pooling emb = row 0 of x (T, C): dx row 0 += demb (C). */
void mch_cls_pool_backward(float *dx, const float *demb, int C);
/* s = a . b over C: da (C) += ds * b. */
void mch_dot_backward(float *da, const float *b, float ds, int C);

#endif
