/* Activation patching with MechIR semantics, over one baseline/perturbed pair at a time.
 *
 * The perturbed input is run and its activations cached; the baseline input is then run with one
 * component's activation replaced by the perturbed one, and the effect of that component is
 * (patched - baseline) / (perturbed - baseline): 0 = no effect, 1 = it alone carries the change.
 * Baseline and perturbed inputs have the same length and token types. For a bi-encoder only the
 * document side is patched and the score is the dot product with the query's vector.
 *
 * Sweeps (TransformerLens hooks):
 *   heads     blocks.{l}.attn.hook_z[:, h], all positions            -> heads[l][h]
 *   blocks    blocks.{l}.hook_resid_pre / hook_attn_out / hook_mlp_out at one position t
 *                                                                     -> blocks[c][l][t]
 *   head-pos  for listed heads (l, h): hook_z[t, h] alone            -> head_pos_z[k][t]
 *             row t of hook_pattern[h]                               -> head_pos_pattern[k][t]
 *   qkv       blocks.{l}.attn.hook_q / hook_k / hook_v[:, h], all positions
 *                                                                     -> qkv[j][l][h], j = q, k, v
 *   pattern   blocks.{l}.attn.hook_pattern[h], the whole (T, T)      -> pattern[l][h]
 *   resid-mid blocks.{l}.hook_resid_mid at one position t            -> resid_mid[l][t]
 *
 * The optimised engine gives the same numbers as one forward per patch (to float rounding): it
 * starts each patch at its layer from the cached baseline, applies a head patch as a rank-HS
 * update of attn_out (a q, k, v or pattern patch recomputes that one head's z), runs one-row
 * patches as one row until the next attention, computes only
 * the [CLS] row after the last attention when the score reads only [CLS], and batches the
 * patches of one layer into large sgemm calls within a scratch budget. `naive` runs one full
 * hooked forward per patch instead (the test oracle and the benchmark baseline). */
#ifndef MCH_PATCH_H
#define MCH_PATCH_H

#include "encoder.h"

/* The sweeps (MCH_SWEEP_*) are named in hooks.h, beside the hook names. */

/* Components of the blocks sweep, in result order. */
enum { MCH_BLOCK_RESID_PRE, MCH_BLOCK_ATTN_OUT, MCH_BLOCK_MLP_OUT, MCH_BLOCK_COUNT };

typedef struct {
    unsigned sweeps;      /* MCH_SWEEP_* bits */
    int n_heads;          /* heads listed for head-pos (and saved patterns) */
    const int *heads;     /* (n_heads, 2): layer, head */
    int save_patterns;    /* copy both runs' attention patterns of the listed heads */
    double min_delta;     /* |perturbed - baseline| below this: skipped (default 1e-3) */
    int naive;            /* one full forward per patch */
    size_t scratch_bytes; /* budget for batched patches (default 256 MiB) */
    mch_pooling pooling;  /* bi-encoder pooling */
    int keep_patterns;    /* keep every layer's attention pattern (mch_patcher_activation) */
    int direction;        /* +1: patch only pairs whose score rose, -1: fell, 0: any */
    int keep_derived;     /* make mch_patcher_activation answer the sites it derives */
} mch_patch_opts;

typedef struct {
    int T;                        /* tokens of both inputs (the document side for a bi-encoder) */
    const int32_t *ids_baseline;  /* (T) */
    const int32_t *ids_perturbed; /* (T) */
    const int32_t *token_types;   /* (T) shared, or NULL for all 0 */
    int Tq;                       /* bi-encoder: query tokens */
    const int32_t *query_ids;     /* bi-encoder: (Tq), encoded once and reused while equal */
} mch_patch_pair;

/* Results in caller-owned arrays; a NULL array is not filled. Shapes for a pair of T tokens:
 * heads (L, NH); blocks (MCH_BLOCK_COUNT, L, T); head_pos_* (n_heads, T);
 * patterns_* (n_heads, T, T); qkv (3, L, NH); pattern (L, NH); resid_mid (L, T). *_scores hold
 * the raw patched scores, the others the effects. */
typedef struct {
    double score_baseline, score_perturbed;
    int skipped; /* 1: no map was computed; see skip_reason */
    char skip_reason[128];
    float *heads, *heads_scores;
    float *blocks, *blocks_scores;
    float *head_pos_z, *head_pos_z_scores;
    float *head_pos_pattern, *head_pos_pattern_scores;
    float *patterns_baseline, *patterns_perturbed;
    float *qkv, *qkv_scores;
    float *pattern, *pattern_scores;
    float *resid_mid, *resid_mid_scores;
    long patches;        /* patched scores computed (for benchmarks) */
    long forwards_saved; /* patches answered without running anything (exactly baseline) */
} mch_patch_result;

typedef struct mch_patcher mch_patcher;

/* Sizes every buffer once for pairs of up to max_T tokens. Refuses head lists outside the
 * model, and max_T beyond max_position_embeddings. */
mch_status mch_patcher_create(mch_patcher **out, const mch_model *m, const mch_patch_opts *opts,
                              int max_T, mch_err *err);
void mch_patcher_free(mch_patcher *p); /* accepts NULL */

/* Runs the requested sweeps on one pair. A pair that cannot be patched (length beyond max_T,
 * ids outside the vocabulary, a bi-encoder pair without query ids, a baseline or perturbed score
 * that is not finite) fails with a message; the
 * patcher stays usable for the next pair. No NaN or inf is ever written: a pair whose score
 * change is below min_delta is reported as skipped. */
mch_status mch_patch_run(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                         mch_err *err);

/* Only the two full runs of mch_patch_run and both scores (no sweep, never skipped; a score
 * that is not finite fails): the first pass of a run with --select. The activations of both runs
 * are kept as after mch_patch_run. */
mch_status mch_patch_scores(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                            mch_err *err);

/* Exact patching of chosen components only (attribution patching's verification): heads_mask
 * (L, NH) and blocks_mask (MCH_BLOCK_COUNT, L, T), nonzero = patch that one, NULL = none of that
 * sweep. Both full runs as mch_patch_run, then the same engine (naive or optimised, as the
 * options say) over the chosen components: their patched scores into res->heads_scores and
 * res->blocks_scores; entries not chosen, and every effect, are not written. Never skipped
 * (min_delta and direction do not apply); fails as mch_patch_scores. */
mch_status mch_patch_subset(mch_patcher *p, const mch_patch_pair *pair,
                            const unsigned char *heads_mask, const unsigned char *blocks_mask,
                            mch_patch_result *res, mch_err *err);
/* Both full runs of a pair as another context already computed them (attribution patching's
 * forwards, kernels/atp_verify.c): act(ctx, run, site, layer) gives run 0 (baseline) or 1
 * (perturbed)'s activation at (site, layer) shaped as hooks.h says for the pair's T, for the
 * baseline every site the engine caches (resid_pre, q, k, v, z, attn_out, resid_mid, mlp_out,
 * normalized_resid_post), for the perturbed run hook_z, resid_pre, attn_out and mlp_out; a NULL
 * fails. They must be the numbers mch_forward gives for the pair (one sequence), so that the
 * patched scores are those of mch_patch_subset. */
typedef struct {
    float score_baseline, score_perturbed;
    const float *(*act)(const void *ctx, int run, mch_site site, int layer);
    const void *ctx;
} mch_patch_runs;

/* mch_patch_subset from given full runs instead of recomputing them: cross-encoders only (a
 * bi-encoder is refused, MCH_ERR_UNSUPPORTED), neither head-pos nor saved patterns. */
mch_status mch_patch_subset_given(mch_patcher *p, const mch_patch_pair *pair,
                                  const mch_patch_runs *runs, const unsigned char *heads_mask,
                                  const unsigned char *blocks_mask, mch_patch_result *res,
                                  mch_err *err);

/* One activation of the last pair's full runs (run 0 baseline, 1 perturbed), shaped as the site
 * says for T = the pair's tokens; NULL for a site that is not kept (hook_pattern without
 * keep_patterns, head-pos or save_patterns). hook_full_embed is blocks.0.hook_resid_pre. With
 * keep_derived, the sites the engine does not keep are computed from those it keeps, with the
 * kernels the forward uses (the numbers a hook of the full run sees): hook_resid_post (LN1 of
 * resid_mid + mlp_out), attn.hook_attn_scores (q, k), attn.hook_result (z, W_O), mlp.hook_pre
 * and mlp.hook_post (LN1 of resid_mid); such a pointer is valid until the next call. */
const float *mch_patcher_activation(const mch_patcher *p, int run, mch_site site, int layer);
/* Tokens of the last pair. */
int mch_patcher_tokens(const mch_patcher *p);

#endif
