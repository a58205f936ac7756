/* Attribution patching (AtP): first-order estimates of every exact patch of the heads and blocks
 * sweeps of one baseline/perturbed pair, from one perturbed forward and one baseline forward +
 * backward (encoder_backward.h), with the results laid out as patch.h's.
 *
 * For a hook site at layer l, a_b and a_p are the activations of the baseline and perturbed
 * runs and g = d score(baseline input) / d a the total derivative on the baseline run:
 *   MCH_ATP_LINEAR
 *     head (l, h)      blocks.{l}.attn.hook_z:  est = score_b + sum_{t,d} (a_p - a_b)[t,h,d]
 * g[t,h,d] block (s, l, t)  blocks.{l}.hook_resid_pre / hook_attn_out / hook_mlp_out: est = score_b
 * + sum_c (a_p - a_b)[t,c] g[t,c] MCH_ATP_QK (AtP*'s QK fix, heads only; blocks as MCH_ATP_LINEAR):
 * the effect through the head's attention pattern uses the softmax recomputed from the perturbed
 * queries and keys (that is the perturbed run's pattern) instead of linearising the softmax: est =
 * score_b + sum_{i,j} (A_p - A_b)[h,i,j] gA[h,i,j] + sum_{t,d} (v_p - v_b)[t,h,d] gv[t,h,d] with A
 * hook_pattern (post-softmax), v hook_v, gA and gv their gradients on the baseline run. Since z = A
 * v: gA.dA + gv.dv = gz.(dA v_b + A_b dv) = gz.dz - gz.(dA dv), so the QK estimate is the linear
 * one less the second-order term gz.(dA dv) (docs/ATP.md). effect = (est - score_b) / (score_p -
 * score_b), as exact patching. score_b and score_p are the exact scores. An estimate whose
 * activation change or gradient is zero is exactly score_b. For a bi-encoder only the document side
 * is patched; the query's vector is a constant. */
#ifndef MCH_ATP_H
#define MCH_ATP_H

#include "patch.h"

typedef enum { MCH_ATP_LINEAR, MCH_ATP_QK } mch_atp_method;

typedef struct mch_atp mch_atp;

/* opts: sweeps (heads, blocks, qkv, pattern, resid-mid; head-pos is refused), min_delta (<= 0:
 * 1e-3), direction and pooling as mch_patcher_create; the other fields are ignored. Buffers are
 * sized once for pairs of up to max_T tokens (1..max_position_embeddings). A model family
 * without a backward pass is refused (MCH_ERR_UNSUPPORTED, naming the model type). Free with
 * mch_atp_free. */
mch_status mch_atp_create(mch_atp **out, const mch_model *m, const mch_patch_opts *opts, int max_T,
                          mch_err *err);
/* mch_atp_create for batches of up to max_pairs pairs (1..MCH_BACKWARD_MAX_BATCH; create is
 * max_pairs = 1). Memory grows with max_pairs: three (L, max_pairs * NH * max_T^2) pattern
 * buffers (perturbed, baseline, gradient) beside about twenty (L, max_pairs * max_T * C) ones. */
mch_status mch_atp_create_batch(mch_atp **out, const mch_model *m, const mch_patch_opts *opts,
                                int max_T, int max_pairs, mch_err *err);
void mch_atp_free(mch_atp *a); /* accepts NULL */

/* One pair: both exact scores, then, unless the pair is skipped as mch_patch_run skips it (the
 * same min_delta and direction rules and skip_reason texts), the estimates into
 * res->heads_scores / heads (L, NH), res->blocks_scores / blocks (MCH_BLOCK_COUNT, L, T),
 * qkv (3, L, NH), pattern (L, NH) and resid_mid (L, T) of the sweeps asked for (docs/ATP.md:
 * a_p - a_b dotted with the gradient at hook_q/k/v, hook_pattern, hook_resid_mid; the QK fix
 * recomputes a head's pattern for its q and k); NULL arrays are not filled. res->patches counts the
 * estimates, res->forwards_saved those that are exactly score_b because the activation did not
 * change. Fails as mch_patch_run (a length outside 1..max_T, ids outside the vocabulary, a
 * bi-encoder pair without query ids, a score that is not finite); the context stays usable for the
 * next pair. Nothing is allocated. */
mch_status mch_atp_run(mch_atp *a, const mch_patch_pair *pair, mch_atp_method method,
                       mch_patch_result *res, mch_err *err);

/* n pairs (1..max_pairs) at once, each with the result mch_atp_run would give it (up to float
 * rounding: the sgemm sees more rows): the n perturbed inputs run as one padded mch_forward
 * batch, the n baselines as one batched forward + backward (mch_backward_run_batch), then each
 * pair's scores, skip and estimates into results[i] as mch_atp_run's. Pairs may differ in
 * length and come in any order.
 * Per-pair errors: pair_errs (n) gets each pair's outcome, code MCH_OK or the code and message
 * mch_atp_run would have returned for that pair alone (a length outside 1..max_T, ids or token
 * types outside the model's, a bi-encoder pair without query ids, a non-finite score). A failed
 * pair fails alone: it is left out of the batch (or, for a non-finite score, only its result
 * is dropped) and the others run; its result has score_* undefined, skipped 0 and patches 0.
 * @return MCH_OK when the batch ran (even if every pair failed); MCH_ERR_ARG, with nothing run,
 * for n outside 1..max_pairs or an unknown method. Nothing is allocated. */
mch_status mch_atp_run_batch(mch_atp *a, const mch_patch_pair *pairs, int n, mch_atp_method method,
                             mch_patch_result *results, mch_err *pair_errs, mch_err *err);

/* After a successful run: run 0 baseline, 1 perturbed, the activation at (site, layer) for the
 * sites AtP reads (resid_pre, v, pattern, z, attn_out, mlp_out), shaped as hooks.h for the
 * pair's T; NULL for another site or a layer out of range, and for the perturbed pattern and v
 * after a run without the QK fix (only MCH_ATP_QK reads them, so only it copies them). */
const float *mch_atp_activation(const mch_atp *a, int run, mch_site site, int layer);
/* After a successful run of one pair (mch_atp_run, or pair 0 of a batch): the baseline run's
 * activation at any site the backward's forward keeps (hooks.h shapes; NULL otherwise), for
 * exact patching from these runs (mch_atp_verify). */
const float *mch_atp_baseline(const mch_atp *a, mch_site site, int layer);
/* After a successful run: the baseline's gradient at (site, layer) (mch_backward_grad). */
const float *mch_atp_grad(const mch_atp *a, mch_site site, int layer);
/* The same for pair i of the last mch_atp_run_batch (pair 0 is what the two above read), shaped
 * for that pair's T; NULL for a pair that failed or is outside the last batch. */
const float *mch_atp_activation_pair(const mch_atp *a, int pair, int run, mch_site site, int layer);
const float *mch_atp_grad_pair(const mch_atp *a, int pair, mch_site site, int layer);

/* A component of the heads and blocks sweeps. */
typedef struct {
    int block;        /* -1: a head; else MCH_BLOCK_* */
    int layer, index; /* head, or position */
} mch_component;

/* The k components (heads and blocks of the sweeps asked for whose arrays are not NULL) with
 * the largest |estimate - score_baseline|, largest first (ties: heads before blocks, then
 * block, layer, index ascending), into out (k); returns how many (k, or fewer when fewer exist;
 * 0 for a skipped pair). L, NH, T: the shapes of res. */
int mch_atp_top(const mch_patch_result *res, unsigned sweeps, int L, int NH, int T, int k,
                mch_component *out);

/* The rows AtP underestimates most (a whole token changed): resid_pre at every layer x every
 * position where the two inputs' ids differ, in (layer, position) order, into out (cap);
 * returns how many were written (<= cap). */
int mch_atp_diff_rows(const mch_patch_pair *pair, int L, mch_component *out, int cap);

/* The component's name as JSON output writes it: "head 1.1", "resid_pre 2 7", "attn_out 0 3",
 * "mlp_out 1 12". Truncated to cap (NUL included). */
void mch_component_name(const mch_component *c, char *buf, size_t cap);

/* The estimated (or, for a patch result, patched) score of c in res; NAN when its array is
 * NULL or c is outside (L, NH, T). */
float mch_component_score(const mch_patch_result *res, int L, int NH, int T,
                          const mch_component *c);

#endif
