/* Exact activation patching of one MonoT5 pair (docs/PATCHING.md, "MonoT5"): the perturbed
 * input's activations are cached at the hook sites of kernels/t5.h, then the baseline is run once
 * per component with that component overwritten by the cached one. One full forward a patch. */
#ifndef MCH_T5_PATCH_H
#define MCH_T5_PATCH_H

#include <stdint.h>

#include "t5.h"

/* The sweeps of a MonoT5 pair (the same bits as MCH_SWEEP_HEADS / MCH_SWEEP_BLOCKS). */
enum { MCH_T5_SWEEP_HEADS = 1u, MCH_T5_SWEEP_BLOCKS = 2u };

/* The block sites patched one row at a time, in the order of blocks[k]. */
enum { MCH_T5_BLOCK_RESID_PRE, MCH_T5_BLOCK_ATTN_OUT, MCH_T5_BLOCK_MLP_OUT, MCH_T5_BLOCK_COUNT };

/* Effects are (patched - baseline) / (perturbed - baseline); the *_scores arrays hold the raw
 * patched scores. Arrays are allocated by mch_t5_patch (NULL for a sweep not asked for, and all
 * NULL when skipped) and freed by mch_t5_patch_result_free. */
typedef struct {
    int T, L, LD, NH;
    float score_baseline, score_perturbed;
    int skipped; /* 1: |perturbed - baseline| < min_delta, no map computed */
    char skip_reason[128];
    /* heads sweep: a head's z columns over every position (encoder) or the one step (decoder) */
    float *enc_heads, *enc_heads_scores;     /* (L, NH)  encoder.{l}.attn.hook_z[:, h] */
    float *dec_heads, *dec_heads_scores;     /* (LD, NH) decoder.{l}.attn.hook_z[:, h] */
    float *cross_heads, *cross_heads_scores; /* (LD, NH) decoder.{l}.cross_attn.hook_z[:, h] */
    /* blocks sweep: (MCH_T5_BLOCK_COUNT, L, T), row t of encoder.{l}.hook_resid_pre /
     * hook_attn_out / hook_mlp_out */
    float *blocks, *blocks_scores;
} mch_t5_patch_result;

/* Patches the pair (baseline ids b, perturbed ids p, both T tokens) for the sweeps asked
 * (MCH_T5_SWEEP_* bits); min_delta <= 0 means 1e-3. Fails as mch_monot5_score_ids (ids out of
 * range, no tokens) or when out of memory; *r is then freed. */
mch_status mch_t5_patch(mch_monot5 *m, const int32_t *b, const int32_t *p, int T, unsigned sweeps,
                        double min_delta, mch_t5_patch_result *r, mch_err *err);
void mch_t5_patch_result_free(mch_t5_patch_result *r); /* frees the arrays; accepts zeroed */

/* mch_t5_patch with a direction (+1: patch only pairs whose score rose, -1: fell, 0: any; a
 * pair against it is skipped) and read-only hooks on the two full runs (watch[0] the baseline,
 * watch[1] the perturbed; NULL: none), e.g. to cache their activations. */
typedef struct {
    unsigned sweeps;
    double min_delta;
    int direction;
    const mch_t5_hooks *watch[2];
} mch_t5_patch_opts;
mch_status mch_t5_patch_ex(mch_monot5 *m, const int32_t *b, const int32_t *p, int T,
                           const mch_t5_patch_opts *o, mch_t5_patch_result *r, mch_err *err);

#endif
