/* The encoder's backward pass: the gradient of one sequence's score with respect to the
 * activation at every hook site, in one sweep (attribution patching reads it).
 *
 * g = d score / d a is the total derivative: a hook's tensor is treated as an input of the rest
 * of the network and everything downstream of it is differentiated, as autograd would. The score
 * is the cross-encoder's (mch_logits_score of the classification head on [CLS]) or, for a
 * bi-encoder, dot(query_emb, pooled document) with query_emb a constant. Weights' gradients are
 * never computed. Post-LayerNorm blocks (encoder.c):
 *   mid1 = x + attn_out(x);  h1 = LN1(mid1);  mid2 = h1 + mlp_out(h1);  x' = LN2(mid2)
 * so g(hook_resid_pre l+1) = g(hook_normalized_resid_post l), g(hook_attn_out) =
 * g(hook_resid_mid) and g(hook_mlp_out) = g(hook_resid_post): the sublayer outputs are taken
 * before the residual add and the LayerNorm, where encoder.c calls their hooks. */
#ifndef MCH_ENCODER_BACKWARD_H
#define MCH_ENCODER_BACKWARD_H

#include "encoder.h"

typedef struct mch_backward mch_backward;

/* The most sequences one batched run takes (a bound on create's max_B). */
#define MCH_BACKWARD_MAX_BATCH 256

/* Sizes every buffer once for batches of up to max_B sequences of up to max_T tokens each
 * (pooling: a bi-encoder's). Refuses max_T outside 1..max_position_embeddings and max_B outside
 * 1..MCH_BACKWARD_MAX_BATCH. Memory grows with max_B * max_T (rows) and max_B * max_T^2
 * (patterns). Free with mch_backward_free. */
mch_status mch_backward_create_batch(mch_backward **out, const mch_model *m, int max_B, int max_T,
                                     mch_pooling pooling, mch_err *err);
/* mch_backward_create_batch with max_B = 1. */
mch_status mch_backward_create(mch_backward **out, const mch_model *m, int max_T,
                               mch_pooling pooling, mch_err *err);
void mch_backward_free(mch_backward *b); /* accepts NULL */

/* A batch: every sequence's forward (one mch_forward of the padded batch, rows packed) that keeps
 * what the backward needs, then every sequence's backward at once: the linears, LayerNorms and
 * activations over all N = sum of lengths rows (one sgemm a weight), attention per sequence with
 * its own length. Sequence s's gradients are of its own score (sequences do not interact), so
 * each equals a run of that sequence alone up to float rounding. bt->B in 1..max_B, every
 * length in 1..max_T. query_emb (B, C) holds one query vector per sequence, required for a
 * bi-encoder and ignored otherwise; scores (B) gets each sequence's score. Fails as a whole
 * (the forward's errors: ids, types, lengths), leaving no gradient readable; callers that must
 * fail one sequence alone check their input first. Nothing is allocated. */
mch_status mch_backward_run_batch(mch_backward *b, const mch_batch *bt, const float *query_emb,
                                  float *scores, mch_err *err);

/* One sequence of T tokens (mch_backward_run_batch with B = 1): a forward that keeps what the
 * backward needs, then the backward. types may be NULL (all 0); query_emb (C) is required for a
 * bi-encoder and ignored otherwise. *score gets the score the gradients are of. Errors as
 * mch_forward's (ids, types, length); a failed run leaves no gradient readable
 * (mch_backward_grad returns NULL). Nothing is allocated. */
mch_status mch_backward_run(mch_backward *b, int T, const int32_t *ids, const int32_t *types,
                            const float *query_emb, float *score, mch_err *err);

/* After a run: sequence seq's g at (site, layer), contiguous and shaped as the site (hooks.h)
 * for that sequence's T: (T, C) for the residual and sublayer sites, (T, NH, HS) for q, k, v, z,
 * (NH, T, T) for the pattern. NULL before a successful run, for a sequence outside the last
 * batch or a layer out of range, and for the finer sites (hook_attn_scores, hook_result,
 * mlp.hook_pre, mlp.hook_post: no sweep reads their gradient). hook_full_embed is
 * blocks.0.hook_resid_pre. */
const float *mch_backward_grad_seq(const mch_backward *b, int seq, mch_site site, int layer);
/* After a run: sequence seq's activation at (site, layer) of the run's forward, same shapes. */
const float *mch_backward_activation_seq(const mch_backward *b, int seq, mch_site site, int layer);
/* Sequence 0's (the one-sequence run's) gradient and activation, as the _seq functions. */
const float *mch_backward_grad(const mch_backward *b, mch_site site, int layer);
const float *mch_backward_activation(const mch_backward *b, mch_site site, int layer);
/* Tokens of sequence seq (of sequence 0) of the last successful run; 0 before one or for a
 * sequence outside it. */
int mch_backward_seq_tokens(const mch_backward *b, int seq);
int mch_backward_tokens(const mch_backward *b);

/* d logits[label] / d cls of the classification head at one [CLS] row: dcls (C) += the gradient
 * (the model must have a head); pre, dpre (C) are scratch. The head is dense -> activation (tanh
 * for BERT's pooler, ReLU for DistilBERT's pre_classifier, exact GELU for ELECTRA) -> classifier,
 * as mch_head_forward. */
void mch_head_backward(const mch_model *m, float *dcls, float *pre, float *dpre, const float *cls,
                       int label);

#endif
