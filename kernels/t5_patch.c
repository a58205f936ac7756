/* Exact MonoT5 patching (see t5_patch.h). The cache hook copies the perturbed run's sites; the
 * patch hook overwrites one head's columns or one row of one site of the baseline run. */
#include "t5_patch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The perturbed run's activations at the patched sites. */
typedef struct {
    int T, C, IN;
    float *enc_z;                         /* (L, T, IN) */
    float *enc_block[MCH_T5_BLOCK_COUNT]; /* (L, T, C) each */
    float *dec_z, *cross_z;               /* (LD, IN) */
} t5_cache;

/* Which block site a hook site is, or -1. */
static int block_of(mch_t5_site s)
{
    if (s == MCH_T5_ENC_RESID_PRE) return MCH_T5_BLOCK_RESID_PRE;
    if (s == MCH_T5_ENC_ATTN_OUT) return MCH_T5_BLOCK_ATTN_OUT;
    if (s == MCH_T5_ENC_MLP_OUT) return MCH_T5_BLOCK_MLP_OUT;
    return -1;
}

/* The cached (rows, cols) activation of (site, layer), or NULL when not cached. */
static float *cached(t5_cache *c, mch_t5_site s, int layer)
{
    int k = block_of(s);
    if (k >= 0) return c->enc_block[k] + (size_t)layer * c->T * c->C;
    if (s == MCH_T5_ENC_Z) return c->enc_z + (size_t)layer * c->T * c->IN;
    if (s == MCH_T5_DEC_Z) return c->dec_z + (size_t)layer * c->IN;
    if (s == MCH_T5_DEC_CROSS_Z) return c->cross_z + (size_t)layer * c->IN;
    return NULL;
}

static void cache_fn(void *ctx, mch_t5_site site, int layer, float *act, int rows, int cols)
{
    float *dst = cached(ctx, site, layer);
    if (dst) memcpy(dst, act, (size_t)rows * cols * sizeof *dst);
}

/* The perturbed run's hook: the cache, then the caller's watch. */
typedef struct {
    t5_cache *cache;
    const mch_t5_hooks *watch;
} cache_and_watch;

static void cache_watch_fn(void *ctx, mch_t5_site site, int layer, float *act, int rows, int cols)
{
    cache_and_watch *cw = ctx;
    cache_fn(cw->cache, site, layer, act, rows, cols);
    cw->watch->fn(cw->watch->ctx, site, layer, act, rows, cols);
}

/* One patch: at (site, layer), head h's columns over every row (h >= 0, width HS) or row t. */
typedef struct {
    t5_cache *cache;
    mch_t5_site site;
    int layer, head, row, HS;
} t5_patch;

static void patch_fn(void *ctx, mch_t5_site site, int layer, float *act, int rows, int cols)
{
    t5_patch *p = ctx;
    if (site != p->site || layer != p->layer) return;
    const float *src = cached(p->cache, site, layer);
    if (p->head >= 0) {
        for (int r = 0; r < rows; r++)
            memcpy(act + (size_t)r * cols + (size_t)p->head * p->HS,
                   src + (size_t)r * cols + (size_t)p->head * p->HS, (size_t)p->HS * sizeof *act);
    } else {
        memcpy(act + (size_t)p->row * cols, src + (size_t)p->row * cols,
               (size_t)cols * sizeof *act);
    }
}

static void cache_free(t5_cache *c)
{
    free(c->enc_z);
    for (int k = 0; k < MCH_T5_BLOCK_COUNT; k++) free(c->enc_block[k]);
    free(c->dec_z);
    free(c->cross_z);
}

void mch_t5_patch_result_free(mch_t5_patch_result *r)
{
    float **a[] = {&r->enc_heads,   &r->enc_heads_scores,   &r->dec_heads, &r->dec_heads_scores,
                   &r->cross_heads, &r->cross_heads_scores, &r->blocks,    &r->blocks_scores};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        free(*a[i]);
        *a[i] = NULL;
    }
}

/* Scores the baseline b with patch pp; stores the raw score and the effect at index i. */
static mch_status patched(mch_monot5 *m, const int32_t *b, int T, t5_patch *pp,
                          const mch_t5_patch_result *r, float *eff, float *raw, size_t i,
                          mch_err *err)
{
    mch_t5_hooks hk = {patch_fn, pp};
    mch_monot5_result res;
    mch_status rc = mch_monot5_score_ids(m, b, T, &hk, &res, err);
    if (rc) return rc;
    double delta = (double)r->score_perturbed - r->score_baseline;
    raw[i] = res.score;
    eff[i] = (float)(((double)res.score - r->score_baseline) / delta);
    return MCH_OK;
}

/* Every head of one site: eff / raw (nl, NH). */
static mch_status sweep_heads(mch_monot5 *m, const int32_t *b, int T, t5_cache *cache,
                              mch_t5_site site, int nl, const mch_t5_patch_result *r, float *eff,
                              float *raw, mch_err *err)
{
    int NH = m->model->cfg.NH;
    for (int l = 0; l < nl; l++)
        for (int h = 0; h < NH; h++) {
            t5_patch pp = {cache, site, l, h, -1, m->model->cfg.HS};
            mch_status rc = patched(m, b, T, &pp, r, eff, raw, (size_t)l * NH + h, err);
            if (rc) return rc;
        }
    return MCH_OK;
}

static mch_status sweep_blocks(mch_monot5 *m, const int32_t *b, int T, t5_cache *cache,
                               const mch_t5_patch_result *r, mch_err *err)
{
    static const mch_t5_site sites[MCH_T5_BLOCK_COUNT] = {MCH_T5_ENC_RESID_PRE, MCH_T5_ENC_ATTN_OUT,
                                                          MCH_T5_ENC_MLP_OUT};
    int L = m->model->cfg.L;
    for (int k = 0; k < MCH_T5_BLOCK_COUNT; k++)
        for (int l = 0; l < L; l++)
            for (int t = 0; t < T; t++) {
                t5_patch pp = {cache, sites[k], l, -1, t, 0};
                size_t i = ((size_t)k * L + l) * T + t;
                mch_status rc = patched(m, b, T, &pp, r, r->blocks, r->blocks_scores, i, err);
                if (rc) return rc;
            }
    return MCH_OK;
}

static int alloc_maps(mch_t5_patch_result *r, unsigned sweeps)
{
    size_t LH = (size_t)r->L * r->NH, DH = (size_t)r->LD * r->NH;
    size_t BT = (size_t)MCH_T5_BLOCK_COUNT * r->L * r->T;
    if (sweeps & MCH_T5_SWEEP_HEADS) {
        r->enc_heads = calloc(LH, sizeof(float));
        r->enc_heads_scores = calloc(LH, sizeof(float));
        r->dec_heads = calloc(DH, sizeof(float));
        r->dec_heads_scores = calloc(DH, sizeof(float));
        r->cross_heads = calloc(DH, sizeof(float));
        r->cross_heads_scores = calloc(DH, sizeof(float));
        if (!r->enc_heads || !r->enc_heads_scores || !r->dec_heads || !r->dec_heads_scores ||
            !r->cross_heads || !r->cross_heads_scores)
            return -1;
    }
    if (sweeps & MCH_T5_SWEEP_BLOCKS) {
        r->blocks = calloc(BT, sizeof(float));
        r->blocks_scores = calloc(BT, sizeof(float));
        if (!r->blocks || !r->blocks_scores) return -1;
    }
    return 0;
}

static mch_status run_sweeps(mch_monot5 *m, const int32_t *b, int T, unsigned sweeps,
                             t5_cache *cache, mch_t5_patch_result *r, mch_err *err)
{
    const mch_t5_config *c = &m->model->cfg;
    if (alloc_maps(r, sweeps)) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status rc = MCH_OK;
    if (sweeps & MCH_T5_SWEEP_HEADS) {
        rc = sweep_heads(m, b, T, cache, MCH_T5_ENC_Z, c->L, r, r->enc_heads, r->enc_heads_scores,
                         err);
        if (!rc)
            rc = sweep_heads(m, b, T, cache, MCH_T5_DEC_Z, c->LD, r, r->dec_heads,
                             r->dec_heads_scores, err);
        if (!rc)
            rc = sweep_heads(m, b, T, cache, MCH_T5_DEC_CROSS_Z, c->LD, r, r->cross_heads,
                             r->cross_heads_scores, err);
    }
    if (!rc && (sweeps & MCH_T5_SWEEP_BLOCKS)) rc = sweep_blocks(m, b, T, cache, r, err);
    return rc;
}

mch_status mch_t5_patch(mch_monot5 *m, const int32_t *b, const int32_t *p, int T, unsigned sweeps,
                        double min_delta, mch_t5_patch_result *r, mch_err *err)
{
    mch_t5_patch_opts o = {sweeps, min_delta, 0, {NULL, NULL}};
    return mch_t5_patch_ex(m, b, p, T, &o, r, err);
}

mch_status mch_t5_patch_ex(mch_monot5 *m, const int32_t *b, const int32_t *p, int T,
                           const mch_t5_patch_opts *o, mch_t5_patch_result *r, mch_err *err)
{
    unsigned sweeps = o->sweeps;
    double min_delta = o->min_delta;
    const mch_t5_config *c = &m->model->cfg;
    memset(r, 0, sizeof *r);
    r->T = T, r->L = c->L, r->LD = c->LD, r->NH = c->NH;
    if (min_delta <= 0) min_delta = 1e-3;
    if (T < 1) return mch_fail(err, MCH_ERR_ARG, "%s: no input tokens", m->model->dir);
    int IN = c->NH * c->HS;
    size_t LT = (size_t)c->L * T;
    t5_cache cache = {T, c->C, IN, calloc(LT * IN, sizeof(float)), {0}, NULL, NULL};
    for (int k = 0; k < MCH_T5_BLOCK_COUNT; k++)
        cache.enc_block[k] = calloc(LT * c->C, sizeof(float));
    cache.dec_z = calloc((size_t)c->LD * IN, sizeof(float));
    cache.cross_z = calloc((size_t)c->LD * IN, sizeof(float));
    mch_status rc = MCH_OK;
    if (!cache.enc_z || !cache.enc_block[0] || !cache.enc_block[1] || !cache.enc_block[2] ||
        !cache.dec_z || !cache.cross_z)
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory for a %d-token patching cache", T);
    mch_monot5_result rb, rp;
    cache_and_watch cw = {&cache, o->watch[1]};
    mch_t5_hooks hk = {cache_fn, &cache}, hkw = {cache_watch_fn, &cw};
    if (!rc) rc = mch_monot5_score_ids(m, b, T, o->watch[0], &rb, err);
    if (!rc) rc = mch_monot5_score_ids(m, p, T, o->watch[1] ? &hkw : &hk, &rp, err);
    if (!rc) {
        r->score_baseline = rb.score;
        r->score_perturbed = rp.score;
        double delta = (double)rp.score - rb.score;
        if (!(fabs(delta) >= min_delta)) {
            r->skipped = 1;
            snprintf(r->skip_reason, sizeof r->skip_reason,
                     "score change %.3g is below min_delta %.3g", delta, min_delta);
        } else if (o->direction && (delta > 0) != (o->direction > 0)) {
            r->skipped = 1;
            snprintf(r->skip_reason, sizeof r->skip_reason,
                     "score change %.3g is not in the direction selected", delta);
        } else {
            rc = run_sweeps(m, b, T, sweeps, &cache, r, err);
        }
    }
    cache_free(&cache);
    if (rc) mch_t5_patch_result_free(r);
    return rc;
}
