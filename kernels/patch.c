/* Activation patching engine (see patch.h for the semantics and the optimisations).
 *
 * Both full runs are cached per layer as (L, T, C) planes. A batch of S "variants" (patched
 * copies of the baseline) is advanced layer by layer in (S, T, C) buffers. A variant is in one
 * of two modes entering a layer: ROW (only row dirty[s] of its resid_pre differs from the
 * baseline, so the other rows' q, k, v are the baseline's) or ALL. The last layer computes only
 * the [CLS] row after attention when the score reads only [CLS]. */
#include "patch.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum { MODE_ROW, MODE_ALL };

typedef struct {
    float *buf[MCH_SITE_COUNT]; /* (L, T, C) planes; PATTERN (L, NH, T, T) or NULL */
    float *ln1;                 /* (L, T, C) LayerNorm 1 of resid_mid */
    float *pooled;              /* (C) bi-encoder vector */
    float score;
} run_cache;

struct mch_patcher;
typedef struct {
    struct mch_patcher *p;
    mch_site site;
} capture_ctx;

/* One patch as the naive engine applies it through a hook. */
typedef struct {
    mch_site site;
    int layer, row, head; /* row -1: all rows; head -1: all columns */
} naive_patch;

struct mch_patcher {
    const mch_model *m;
    mch_patch_opts o;
    int max_T, L, NH, HS, C, FF, T;
    int bi;       /* bi-encoder: only the document side is patched */
    int cls_last; /* the score reads only the [CLS] row of the last layer */
    mch_workspace *ws;
    mch_hooks *cap_hooks, *naive_hooks;
    capture_ctx caps[MCH_SITE_COUNT];
    run_cache base, pert, *cur;
    naive_patch np;
    /* bi-encoder query, reused while the ids are the same */
    int32_t *q_ids;
    int q_T;
    float *q_emb, *q_emb_tmp;
    /* variants */
    int S_max;
    float *X, *Q, *K, *V, *Z, *A;       /* (S_max, max_T, C) */
    float *F;                           /* (S_max, max_T, FF) */
    float *att;                         /* (NH, max_T, max_T) */
    float *rows, *rows2, *rows3, *htmp; /* (S_max, C) */
    float *logits;                      /* (S_max, num_labels) */
    float *vscores, *vscores2;          /* (S_max) */
    int *dirty;                         /* (S_max) */
    int *tpos;                          /* (S_max) patched row of each variant */
    int *todo;                          /* (max(max_T, NH)) rows or heads still to patch */
    /* mch_patch_subset: the components to patch, (L, NH) and (MCH_BLOCK_COUNT, L, T); NULL in a
     * whole sweep */
    const unsigned char *heads_mask, *blocks_mask;
    int *zeros;     /* (S_max) all 0: gathers of the [CLS] row */
    float *derived; /* keep_derived: the largest derived site of max_T tokens, else NULL */
};

static size_t plane(const struct mch_patcher *p)
{
    return (size_t)p->T * p->C;
}

static float *cache_at(run_cache *rc, mch_site site, const struct mch_patcher *p, int l)
{
    size_t n = site == MCH_SITE_PATTERN ? (size_t)p->NH * p->T * p->T : plane(p);
    return rc->buf[site] + (size_t)l * n;
}

static int capture(void *user, const mch_act_view *v)
{
    capture_ctx *cc = user;
    struct mch_patcher *p = cc->p;
    memcpy(cache_at(p->cur, cc->site, p, v->layer), v->data,
           mch_site_floats(&p->m->cfg, cc->site, v->T) * sizeof(float));
    return 0;
}

static float dot_score(const float *a, const float *b, int C)
{
    double s = 0;
    for (int i = 0; i < C; i++) s += (double)a[i] * b[i];
    return (float)s;
}

static int naive_apply(void *user, const mch_act_view *v)
{
    struct mch_patcher *p = user;
    const naive_patch *np = &p->np;
    const float *src = cache_at(&p->pert, np->site, p, np->layer);
    if (np->site == MCH_SITE_PATTERN) { /* one row of head h, or all of it */
        size_t off = ((size_t)np->head * v->T + (np->row < 0 ? 0 : np->row)) * v->T;
        size_t n = (size_t)(np->row < 0 ? v->T : 1) * v->T;
        memcpy(v->data + off, src + off, n * sizeof(float));
        return 0;
    }
    int t0 = np->row < 0 ? 0 : np->row, t1 = np->row < 0 ? v->T : np->row + 1;
    for (int t = t0; t < t1; t++) {
        size_t off = (size_t)t * v->C + (np->head < 0 ? 0 : (size_t)np->head * v->HS);
        size_t n = np->head < 0 ? (size_t)v->C : (size_t)v->HS;
        memcpy(v->data + off, src + off, n * sizeof(float));
    }
    return 0;
}

void mch_patcher_free(mch_patcher *p)
{
    if (!p) return;
    run_cache *rcs[2] = {&p->base, &p->pert};
    for (int r = 0; r < 2; r++) {
        for (int s = 0; s < MCH_SITE_COUNT; s++) free(rcs[r]->buf[s]);
        free(rcs[r]->ln1);
        free(rcs[r]->pooled);
    }
    float *bufs[] = {p->X,      p->Q,       p->K,        p->V,     p->Z,        p->A,
                     p->F,      p->att,     p->rows,     p->rows2, p->rows3,    p->htmp,
                     p->logits, p->vscores, p->vscores2, p->q_emb, p->q_emb_tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(p->dirty);
    free(p->tpos);
    free(p->todo);
    free(p->zeros);
    free(p->derived);
    free(p->q_ids);
    mch_hooks_free(p->cap_hooks);
    mch_hooks_free(p->naive_hooks);
    mch_workspace_free(p->ws);
    free(p);
}

static const mch_site cached_sites[] = {
    MCH_SITE_RESID_PRE, MCH_SITE_Q,       MCH_SITE_K,
    MCH_SITE_V,         MCH_SITE_Z,       MCH_SITE_ATTN_OUT,
    MCH_SITE_RESID_MID, MCH_SITE_MLP_OUT, MCH_SITE_NORM_RESID_POST,
};

mch_status mch_patcher_create(mch_patcher **out, const mch_model *m, const mch_patch_opts *opts,
                              int max_T, mch_err *err)
{
    const mch_config *c = &m->cfg;
    mch_status rc0 = mch_model_need_encoder(m, "activation patching", err);
    if (rc0) return rc0;
    if (max_T < 1 || max_T > c->max_tokens)
        return mch_fail(err, MCH_ERR_ARG, "max_T %d outside 1..%d (the model's longest input)",
                        max_T, c->max_tokens);
    for (int k = 0; k < opts->n_heads; k++) {
        int l = opts->heads[2 * k], h = opts->heads[2 * k + 1];
        if (l < 0 || l >= c->L || h < 0 || h >= c->NH)
            return mch_fail(err, MCH_ERR_ARG,
                            "head %d.%d is outside the model (%d layers, %d heads)", l, h, c->L,
                            c->NH);
    }
    if ((opts->sweeps & MCH_SWEEP_HEAD_POS) && opts->n_heads < 1)
        return mch_fail(err, MCH_ERR_ARG, "the head-pos sweep needs a list of heads");
    mch_patcher *p = calloc(1, sizeof *p);
    if (!p) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    p->m = m;
    p->o = *opts;
    if (p->o.min_delta <= 0) p->o.min_delta = 1e-3;
    if (!p->o.scratch_bytes) p->o.scratch_bytes = (size_t)256 << 20;
    p->max_T = max_T;
    p->L = c->L;
    p->NH = c->NH;
    p->HS = c->HS;
    p->C = c->C;
    p->FF = c->FF;
    p->bi = c->head == MCH_HEAD_NONE;
    p->cls_last = !p->bi || p->o.pooling == MCH_POOL_CLS;
    /* The naive pattern sweep copies the perturbed run's patterns; the optimised one recomputes
     * a head's from the kept q and k. */
    int need_pattern = (opts->sweeps & MCH_SWEEP_HEAD_POS) || opts->save_patterns ||
                       opts->keep_patterns || (opts->naive && (opts->sweeps & MCH_SWEEP_PATTERN));
    size_t C = (size_t)c->C, T = (size_t)max_T, Lz = (size_t)c->L;
    size_t per_variant = T * (6 * C + (size_t)c->FF) * sizeof(float);
    size_t s_max = p->o.scratch_bytes / per_variant;
    size_t s_cap = T > (size_t)c->NH ? T : (size_t)c->NH;
    if (s_max < 1) s_max = 1;
    if (s_max > s_cap) s_max = s_cap;
    p->S_max = (int)s_max;
    size_t labels = c->num_labels > 0 ? (size_t)c->num_labels : 1;
    int ok = 1;
    run_cache *rcs[2] = {&p->base, &p->pert};
    for (int r = 0; r < 2 && ok; r++) {
        for (size_t i = 0; i < sizeof cached_sites / sizeof cached_sites[0]; i++)
            ok &= (rcs[r]->buf[cached_sites[i]] = malloc(Lz * T * C * sizeof(float))) != NULL;
        if (need_pattern)
            ok &= (rcs[r]->buf[MCH_SITE_PATTERN] =
                       malloc(Lz * (size_t)c->NH * T * T * sizeof(float))) != NULL;
        ok &= (rcs[r]->ln1 = malloc(Lz * T * C * sizeof(float))) != NULL;
        ok &= (rcs[r]->pooled = malloc(C * sizeof(float))) != NULL;
    }
    struct {
        float **p;
        size_t n;
    } bufs[] = {
        {&p->X, s_max * T * C},       {&p->Q, s_max * T * C},
        {&p->K, s_max * T * C},       {&p->V, s_max * T * C},
        {&p->Z, s_max * T * C},       {&p->A, s_max * T * C},
        {&p->F, s_max * T * c->FF},   {&p->att, (size_t)c->NH * T * T},
        {&p->rows, s_max * C},        {&p->rows2, s_max * C},
        {&p->rows3, s_max * C},       {&p->htmp, s_max * C},
        {&p->logits, s_max * labels}, {&p->vscores, s_max},
        {&p->vscores2, s_max},        {&p->q_emb, C},
        {&p->q_emb_tmp, 2 * C},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0] && ok; i++)
        ok &= (*bufs[i].p = malloc(bufs[i].n * sizeof(float))) != NULL;
    ok = ok && (p->dirty = malloc(s_max * sizeof *p->dirty)) &&
         (p->tpos = malloc(s_max * sizeof *p->tpos)) &&
         (p->todo = malloc((size_t)(max_T > p->NH ? max_T : p->NH) * sizeof *p->todo)) &&
         (p->zeros = calloc(s_max, sizeof *p->zeros)) &&
         (p->q_ids = malloc((size_t)c->max_tokens * sizeof *p->q_ids)) &&
         (p->ws = mch_workspace_create(m, c->max_tokens > max_T ? c->max_tokens : max_T,
                                       c->max_tokens > max_T ? c->max_tokens : max_T)) &&
         (p->cap_hooks = mch_hooks_create(c->L)) && (p->naive_hooks = mch_hooks_create(c->L));
    if (ok && opts->keep_derived) {
        size_t most = 0;
        const mch_site derived_sites[] = {MCH_SITE_RESID_POST, MCH_SITE_ATTN_SCORES,
                                          MCH_SITE_RESULT, MCH_SITE_MLP_PRE};
        for (size_t i = 0; i < sizeof derived_sites / sizeof *derived_sites; i++) {
            size_t n = mch_site_floats(c, derived_sites[i], max_T);
            if (n > most) most = n;
        }
        ok = (p->derived = malloc(most * sizeof(float))) != NULL;
    }
    if (!ok) {
        mch_patcher_free(p);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory sizing the patcher for %d tokens",
                        max_T);
    }
    mch_status rc = MCH_OK;
    for (size_t i = 0; i < sizeof cached_sites / sizeof cached_sites[0] && !rc; i++) {
        mch_site s = cached_sites[i];
        p->caps[s] = (capture_ctx){p, s};
        for (int l = 0; l < c->L && !rc; l++)
            rc = mch_hooks_add(p->cap_hooks, s, l, capture, &p->caps[s], err);
    }
    if (need_pattern && !rc) {
        p->caps[MCH_SITE_PATTERN] = (capture_ctx){p, MCH_SITE_PATTERN};
        for (int l = 0; l < c->L && !rc; l++)
            rc = mch_hooks_add(p->cap_hooks, MCH_SITE_PATTERN, l, capture,
                               &p->caps[MCH_SITE_PATTERN], err);
    }
    if (rc) {
        mch_patcher_free(p);
        return rc;
    }
    *out = p;
    return MCH_OK;
}

/* ---- full runs ---------------------------------------------------------------------------- */

static mch_status query_embedding(mch_patcher *p, const mch_patch_pair *pair, mch_err *err)
{
    if (!pair->query_ids || pair->Tq < 1)
        return mch_fail(err, MCH_ERR_ARG, "a bi-encoder pair needs the query's token ids");
    if (pair->Tq > p->m->cfg.max_tokens)
        return mch_fail(err, MCH_ERR_ARG, "query of %d tokens; max_position_embeddings is %d",
                        pair->Tq, p->m->cfg.max_tokens);
    if (p->q_T == pair->Tq && !memcmp(p->q_ids, pair->query_ids, (size_t)pair->Tq * 4))
        return MCH_OK;
    p->q_T = 0;
    mch_batch bt = {1, pair->Tq, pair->query_ids, NULL, &pair->Tq};
    mch_forward_opts o = {NULL, 0, NULL, p->o.pooling};
    mch_forward_out out = {NULL, NULL, p->q_emb};
    mch_status rc = mch_forward(p->m, p->ws, &bt, &o, &out, err);
    if (rc) return rc;
    memcpy(p->q_ids, pair->query_ids, (size_t)pair->Tq * sizeof *p->q_ids);
    p->q_T = pair->Tq;
    return MCH_OK;
}

/* One hooked forward of ids; with hooks = cap_hooks it fills rc's planes. */
static mch_status forward_score(mch_patcher *p, const int32_t *ids, const int32_t *types,
                                const mch_hooks *hooks, float *score, float *pooled, mch_err *err)
{
    int T = p->T;
    mch_batch bt = {1, T, ids, types, &T};
    mch_forward_opts o = {hooks, 0, NULL, p->o.pooling};
    mch_forward_out out = {NULL, NULL, NULL};
    if (p->bi)
        out.emb = pooled;
    else
        out.scores = score;
    mch_status rc = mch_forward(p->m, p->ws, &bt, &o, &out, err);
    if (!rc && p->bi) *score = dot_score(p->q_emb, pooled, p->C);
    return rc;
}

static mch_status full_run(mch_patcher *p, run_cache *rc, const int32_t *ids, const int32_t *types,
                           mch_err *err)
{
    p->cur = rc;
    mch_status st = forward_score(p, ids, types, p->cap_hooks, &rc->score, rc->pooled, err);
    if (st) return st;
    for (int l = 0; l < p->L; l++) {
        const mch_layer_weights *w = &p->m->layers[l];
        mch_layernorm_forward(rc->ln1 + (size_t)l * plane(p),
                              cache_at(rc, MCH_SITE_RESID_MID, p, l), w->ln1_g, w->ln1_b, p->T,
                              p->C, p->m->cfg.eps);
    }
    return MCH_OK;
}

/* ---- the variant engine ------------------------------------------------------------------- */

static void act_forward(float *x, size_t n, mch_activation act)
{
    if (act == MCH_ACT_GELU_ERF)
        mch_gelu_erf_forward(x, n);
    else if (act == MCH_ACT_GELU_TANH)
        mch_gelu_tanh_forward(x, n);
    else
        mch_relu_forward(x, n);
}

/* The block after attention for M rows: io (M, C) holds attn_out on entry and the block's
 * output (normalized_resid_post) on return; row i's residual is resid[i % period]. mid (M, C)
 * and p->F (M, FF) are scratch. */
static void finish_from_mid(mch_patcher *p, int l, float *io, float *mid, int M);
static void finish_rows(mch_patcher *p, int l, float *io, const float *resid, int period, int M,
                        float *mid)
{
    int C = p->C;
    for (int i = 0; i < M; i++) {
        const float *r = resid + (size_t)(i % period) * C;
        float *d = mid + (size_t)i * C;
        const float *a = io + (size_t)i * C;
        for (int c = 0; c < C; c++) d[c] = r[c] + a[c];
    }
    finish_from_mid(p, l, io, mid, M);
}

/* The block after resid_mid for M rows: mid (M, C) holds resid_mid on entry (LN1 of it on
 * return); io (M, C) gets the block's output (normalized_resid_post). p->F (M, FF) is scratch. */
static void finish_from_mid(mch_patcher *p, int l, float *io, float *mid, int M)
{
    const mch_layer_weights *w = &p->m->layers[l];
    int C = p->C, FF = p->FF;
    float eps = p->m->cfg.eps;
    mch_layernorm_forward(mid, mid, w->ln1_g, w->ln1_b, M, C, eps);
    mch_linear_forward(p->F, FF, mid, C, w->ff1_w, w->ff1_b, M, C, FF);
    act_forward(p->F, (size_t)M * FF, p->m->cfg.act);
    mch_linear_forward(io, C, p->F, FF, w->ff2_w, w->ff2_b, M, FF, C);
    mch_add_inplace(io, mid, (size_t)M * C);
    mch_layernorm_forward(io, io, w->ln2_g, w->ln2_b, M, C, eps);
}

/* Scores of S final [CLS] rows (S, C). */
static void cls_scores(mch_patcher *p, const float *cls, int S, float *scores)
{
    const mch_config *c = &p->m->cfg;
    if (p->bi) {
        for (int s = 0; s < S; s++) scores[s] = dot_score(p->q_emb, cls + (size_t)s * p->C, p->C);
        return;
    }
    mch_head_forward(p->m, p->logits, p->htmp, cls, S);
    for (int s = 0; s < S; s++)
        scores[s] = mch_logits_score(c, p->logits + (size_t)s * c->num_labels);
}

/* Mean-pooled scores of S variants whose final hidden states are X (S, T, C). */
static void mean_scores(mch_patcher *p, const float *X, int S, float *scores)
{
    int T = p->T, C = p->C;
    for (int s = 0; s < S; s++) {
        const float *rows = X + (size_t)s * T * C;
        for (int i = 0; i < C; i++) {
            double acc = 0;
            for (int t = 0; t < T; t++) acc += rows[(size_t)t * C + i];
            p->htmp[i] = (float)(acc / T);
        }
        scores[s] = dot_score(p->q_emb, p->htmp, C);
    }
}

static void gather_rows(float *dst, const float *src, const int *row, int S, size_t stride, int C)
{
    for (int s = 0; s < S; s++)
        memcpy(dst + (size_t)s * C, src + (size_t)s * stride + (size_t)row[s] * C,
               (size_t)C * sizeof(float));
}

/* Runs layers l0 .. L-1 on S variants whose resid_pre at l0 is X; mode MODE_ROW means only row
 * dirty[s] of variant s differs from the baseline. Writes scores (S). */
static void run_layers(mch_patcher *p, int l0, int S, int mode, float *scores)
{
    int T = p->T, C = p->C, NH = p->NH, HS = p->HS;
    size_t TC = plane(p);
    int M = S * T;
    float scale = 1.0f / sqrtf((float)HS);
    for (int l = l0; l < p->L; l++) {
        const mch_layer_weights *w = &p->m->layers[l];
        int last = l == p->L - 1 && p->cls_last;
        if (mode == MODE_ALL) {
            mch_linear_forward(p->K, C, p->X, C, w->k_w, w->k_b, M, C, C);
            mch_linear_forward(p->V, C, p->X, C, w->v_w, w->v_b, M, C, C);
            if (!last) {
                mch_linear_forward(p->Q, C, p->X, C, w->q_w, w->q_b, M, C, C);
            } else {
                gather_rows(p->rows, p->X, p->zeros, S, TC, C);
                mch_linear_forward(p->rows2, C, p->rows, C, w->q_w, w->q_b, S, C, C);
                for (int s = 0; s < S; s++)
                    memcpy(p->Q + s * TC, p->rows2 + (size_t)s * C, (size_t)C * sizeof(float));
            }
        } else {
            const float *bq = cache_at(&p->base, MCH_SITE_Q, p, l);
            const float *bk = cache_at(&p->base, MCH_SITE_K, p, l);
            const float *bv = cache_at(&p->base, MCH_SITE_V, p, l);
            for (int s = 0; s < S; s++) {
                memcpy(p->K + s * TC, bk, TC * sizeof(float));
                memcpy(p->V + s * TC, bv, TC * sizeof(float));
                memcpy(p->Q + s * TC, bq, (last ? (size_t)C : TC) * sizeof(float));
            }
            gather_rows(p->rows, p->X, p->dirty, S, TC, C);
            const float *W[3] = {w->q_w, w->k_w, w->v_w}, *Bv[3] = {w->q_b, w->k_b, w->v_b};
            float *dst[3] = {p->Q, p->K, p->V};
            for (int j = 0; j < 3; j++) {
                mch_linear_forward(p->rows2, C, p->rows, C, W[j], Bv[j], S, C, C);
                for (int s = 0; s < S; s++) {
                    if (j == 0 && last && p->dirty[s] != 0) continue;
                    memcpy(dst[j] + s * TC + (size_t)p->dirty[s] * C, p->rows2 + (size_t)s * C,
                           (size_t)C * sizeof(float));
                }
            }
        }
        int R = last ? 1 : T;
        for (int s = 0; s < S; s++) {
            const float *q = p->Q + s * TC, *k = p->K + s * TC, *v = p->V + s * TC;
            float *z = p->Z + s * TC;
            for (int h = 0; h < NH; h++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, T, HS, scale, q + h * HS, C,
                            k + h * HS, C, 0.0f, p->att, T);
                mch_softmax_rows(p->att, R, T, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, HS, T, 1.0f, p->att, T,
                            v + h * HS, C, 0.0f, z + h * HS, C);
            }
        }
        if (!last) {
            mch_linear_forward(p->A, C, p->Z, C, w->o_w, w->o_b, M, C, C);
            finish_rows(p, l, p->A, p->X, M, M, p->Q);
            float *t = p->X;
            p->X = p->A;
            p->A = t;
            mode = MODE_ALL;
            continue;
        }
        gather_rows(p->rows, p->Z, p->zeros, S, TC, C);
        mch_linear_forward(p->rows2, C, p->rows, C, w->o_w, w->o_b, S, C, C);
        gather_rows(p->rows3, p->X, p->zeros, S, TC, C);
        finish_rows(p, l, p->rows2, p->rows3, S, S, p->rows);
        cls_scores(p, p->rows2, S, scores);
        return;
    }
    mean_scores(p, p->X, S, scores);
}

/* Variants whose only change is row tpos[s] of layer l's output (normalized_resid_post), given
 * in out_rows (S, C): finish the scores. */
static void continue_rows(mch_patcher *p, int l, int S, const float *out_rows, float *scores,
                          mch_patch_result *res)
{
    int C = p->C;
    size_t TC = plane(p);
    const float *bout = cache_at(&p->base, MCH_SITE_NORM_RESID_POST, p, l);
    if (l < p->L - 1) {
        for (int s = 0; s < S; s++) {
            memcpy(p->X + s * TC, bout, TC * sizeof(float));
            memcpy(p->X + s * TC + (size_t)p->tpos[s] * C, out_rows + (size_t)s * C,
                   (size_t)C * sizeof(float));
            p->dirty[s] = p->tpos[s];
        }
        run_layers(p, l + 1, S, MODE_ROW, scores);
        return;
    }
    if (!p->cls_last) { /* mean pooling over the final rows */
        for (int s = 0; s < S; s++) {
            memcpy(p->X + s * TC, bout, TC * sizeof(float));
            memcpy(p->X + s * TC + (size_t)p->tpos[s] * C, out_rows + (size_t)s * C,
                   (size_t)C * sizeof(float));
        }
        mean_scores(p, p->X, S, scores);
        return;
    }
    /* Only [CLS] is read: a change at another row leaves the score exactly the baseline's. */
    int n = 0;
    for (int s = 0; s < S; s++) {
        if (p->tpos[s] == 0)
            memcpy(p->rows + (size_t)n++ * C, out_rows + (size_t)s * C, (size_t)C * sizeof(float));
    }
    if (n) cls_scores(p, p->rows, n, p->vscores2);
    for (int s = 0, j = 0; s < S; s++) {
        if (p->tpos[s] == 0) {
            scores[s] = p->vscores2[j++];
        } else {
            scores[s] = p->base.score;
            res->forwards_saved++;
        }
    }
}

/* attn_out rows (S, C) for one-row patches at layer l, rows tpos[s]: finish the block on those
 * rows, then the rest. rows_in may be p->rows2. */
static void attn_row_patches(mch_patcher *p, int l, int S, float *attn_rows, float *scores,
                             mch_patch_result *res)
{
    gather_rows(p->rows3, cache_at(&p->base, MCH_SITE_RESID_PRE, p, l), p->tpos, S, 0, p->C);
    finish_rows(p, l, attn_rows, p->rows3, S, S, p->rows);
    memcpy(p->A, attn_rows, (size_t)S * p->C * sizeof(float));
    continue_rows(p, l, S, p->A, scores, res);
}

/* ---- sweeps ------------------------------------------------------------------------------- */

static void store(float *scores_out, float *effects_out, size_t idx, float patched,
                  const mch_patch_result *res)
{
    double d = res->score_perturbed - res->score_baseline;
    if (scores_out) scores_out[idx] = patched;
    if (effects_out) effects_out[idx] = (float)((patched - res->score_baseline) / d);
}

/* The positions t of a layer's rows (bsrc, psrc: T x C) to patch, into p->todo: those mask
 * (NULL: all) keeps at base_idx + t. A row the two runs hold identically changes nothing when
 * patched, so (unless naive) its score is the baseline's, stored at base_idx + t without a
 * forward. @return how many are in p->todo. */
static int changed_rows(mch_patcher *p, const float *bsrc, const float *psrc,
                        const unsigned char *mask, float *scores_out, float *effects_out,
                        size_t base_idx, mch_patch_result *res)
{
    int n = 0, C = p->C;
    for (int t = 0; t < p->T; t++) {
        if (mask && !mask[base_idx + t]) continue;
        if (!memcmp(bsrc + (size_t)t * C, psrc + (size_t)t * C, (size_t)C * 4) && !p->o.naive) {
            store(scores_out, effects_out, base_idx + t, p->base.score, res);
            res->patches++;
            res->forwards_saved++;
        } else {
            p->todo[n++] = t;
        }
    }
    return n;
}

static mch_status naive_score(mch_patcher *p, const mch_patch_pair *pair, naive_patch np,
                              float *score, mch_err *err)
{
    mch_hooks_clear(p->naive_hooks);
    p->np = np;
    mch_status rc = mch_hooks_add(p->naive_hooks, np.site, np.layer, naive_apply, p, err);
    if (rc) return rc;
    return forward_score(p, pair->ids_baseline, pair->token_types, p->naive_hooks, score,
                         p->q_emb_tmp, err);
}

/* dz (T, HS) of head h at layer l -> delta (rows, C) += dz W_O[:, h]^T, for rows t0.. of dz. */
static void head_delta(mch_patcher *p, int l, int h, const float *dz, int ldz, int rows, float *out)
{
    const mch_layer_weights *w = &p->m->layers[l];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, p->C, p->HS, 1.0f, dz, ldz,
                w->o_w + (size_t)h * p->HS, p->C, 1.0f, out, p->C);
}

/* dz (rows, HS) of head h at layer l when its `site` takes the perturbed run's values at every
 * position: hook_z[:, h] itself, or hook_q / hook_k / hook_v[:, h] or the whole
 * hook_pattern[h] (the perturbed run's q and k), through that head's attention; the new
 * z[:, h] minus the baseline's. */
static void head_dz(mch_patcher *p, mch_site site, int l, int h, int rows, float *dz)
{
    int T = p->T, C = p->C, HS = p->HS;
    const float *bz = cache_at(&p->base, MCH_SITE_Z, p, l) + h * HS;
    if (site == MCH_SITE_Z) {
        const float *pz = cache_at(&p->pert, MCH_SITE_Z, p, l) + h * HS;
        for (int t = 0; t < rows; t++)
            for (int d = 0; d < HS; d++)
                dz[(size_t)t * HS + d] = pz[(size_t)t * C + d] - bz[(size_t)t * C + d];
        return;
    }
    int pat = site == MCH_SITE_PATTERN;
    run_cache *qr = site == MCH_SITE_Q || pat ? &p->pert : &p->base;
    run_cache *kr = site == MCH_SITE_K || pat ? &p->pert : &p->base;
    run_cache *vr = site == MCH_SITE_V ? &p->pert : &p->base;
    const float *q = cache_at(qr, MCH_SITE_Q, p, l) + h * HS;
    const float *k = cache_at(kr, MCH_SITE_K, p, l) + h * HS;
    const float *v = cache_at(vr, MCH_SITE_V, p, l) + h * HS;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, T, HS, 1.0f / sqrtf((float)HS), q, C,
                k, C, 0.0f, p->att, T);
    mch_softmax_rows(p->att, rows, T, T);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, T, 1.0f, p->att, T, v, C, 0.0f,
                dz, HS);
    for (int t = 0; t < rows; t++)
        for (int d = 0; d < HS; d++) dz[(size_t)t * HS + d] -= bz[(size_t)t * C + d];
}

/* Every head (l, h) with its `site` (hook_z, hook_q, hook_k, hook_v or hook_pattern) patched at
 * every position: patched scores and effects at idx0 + l * NH + h. The heads mask (subsets)
 * applies to hook_z. */
static mch_status sweep_head_site(mch_patcher *p, const mch_patch_pair *pair, mch_site site,
                                  float *scores_out, float *effects_out, size_t idx0,
                                  mch_patch_result *res, mch_err *err)
{
    int T = p->T, C = p->C, NH = p->NH, HS = p->HS;
    size_t TC = plane(p);
    for (int l = 0; l < p->L; l++) {
        int *todo = p->todo, n = 0;
        for (int h = 0; h < NH; h++)
            if (site != MCH_SITE_Z || !p->heads_mask || p->heads_mask[(size_t)l * NH + h])
                todo[n++] = h;
        if (p->o.naive) {
            for (int i = 0; i < n; i++) {
                int h = todo[i];
                float s;
                naive_patch np = {site, l, -1, h};
                mch_status rc = naive_score(p, pair, np, &s, err);
                if (rc) return rc;
                store(scores_out, effects_out, idx0 + (size_t)l * NH + h, s, res);
                res->patches++;
            }
            continue;
        }
        const float *bao = cache_at(&p->base, MCH_SITE_ATTN_OUT, p, l);
        const float *bpre = cache_at(&p->base, MCH_SITE_RESID_PRE, p, l);
        int last = l == p->L - 1 && p->cls_last;
        int rows = last ? 1 : T;
        for (int i0 = 0; i0 < n; i0 += p->S_max) {
            int S = n - i0 < p->S_max ? n - i0 : p->S_max;
            /* dz for each head into Z (T, HS) blocks; attn_out + delta into A. */
            for (int s = 0; s < S; s++) {
                int h = todo[i0 + s];
                float *dz = p->Z + s * TC;
                head_dz(p, site, l, h, rows, dz);
                float *a = p->A + (size_t)s * rows * C;
                memcpy(a, bao, (size_t)rows * C * sizeof(float));
                head_delta(p, l, h, dz, HS, rows, a);
            }
            float *scores = p->vscores;
            if (last) {
                finish_rows(p, l, p->A, bpre, 1, S, p->rows);
                cls_scores(p, p->A, S, scores);
            } else {
                finish_rows(p, l, p->A, bpre, T, S * T, p->Q);
                float *t = p->X;
                p->X = p->A;
                p->A = t;
                if (l + 1 < p->L)
                    run_layers(p, l + 1, S, MODE_ALL, scores);
                else
                    mean_scores(p, p->X, S, scores);
            }
            for (int s = 0; s < S; s++) {
                store(scores_out, effects_out, idx0 + (size_t)l * NH + todo[i0 + s], scores[s],
                      res);
                res->patches++;
            }
        }
    }
    return MCH_OK;
}

static mch_status sweep_heads(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                              mch_err *err)
{
    return sweep_head_site(p, pair, MCH_SITE_Z, res->heads_scores, res->heads, 0, res, err);
}

/* qkv: (3, L, NH), q then k then v. */
static mch_status sweep_qkv(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                            mch_err *err)
{
    static const mch_site sites[3] = {MCH_SITE_Q, MCH_SITE_K, MCH_SITE_V};
    size_t LNH = (size_t)p->L * p->NH;
    mch_status rc = MCH_OK;
    for (int j = 0; j < 3 && !rc; j++)
        rc = sweep_head_site(p, pair, sites[j], res->qkv_scores, res->qkv, j * LNH, res, err);
    return rc;
}

/* resid-mid: (L, T), row t of hook_resid_mid at layer l. */
static mch_status sweep_resid_mid(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                                  mch_err *err)
{
    int T = p->T, C = p->C;
    for (int l = 0; l < p->L; l++) {
        const float *bsrc = cache_at(&p->base, MCH_SITE_RESID_MID, p, l);
        const float *psrc = cache_at(&p->pert, MCH_SITE_RESID_MID, p, l);
        int *todo = p->todo;
        int n = changed_rows(p, bsrc, psrc, NULL, res->resid_mid_scores, res->resid_mid,
                             (size_t)l * T, res);
        for (int i0 = 0; i0 < n; i0 += p->S_max) {
            int S = n - i0 < p->S_max ? n - i0 : p->S_max;
            float *scores = p->vscores;
            for (int s = 0; s < S; s++) p->tpos[s] = todo[i0 + s];
            if (p->o.naive) {
                for (int s = 0; s < S; s++) {
                    naive_patch np = {MCH_SITE_RESID_MID, l, p->tpos[s], -1};
                    mch_status rc = naive_score(p, pair, np, &scores[s], err);
                    if (rc) return rc;
                }
            } else {
                gather_rows(p->rows3, psrc, p->tpos, S, 0, C);
                finish_from_mid(p, l, p->rows2, p->rows3, S);
                memcpy(p->A, p->rows2, (size_t)S * C * sizeof(float));
                continue_rows(p, l, S, p->A, scores, res);
            }
            for (int s = 0; s < S; s++) {
                store(res->resid_mid_scores, res->resid_mid, (size_t)l * T + p->tpos[s], scores[s],
                      res);
                res->patches++;
            }
        }
    }
    return MCH_OK;
}

static mch_status sweep_blocks(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                               mch_err *err)
{
    int T = p->T, C = p->C, L = p->L;
    size_t TC = plane(p);
    static const mch_site sites[MCH_BLOCK_COUNT] = {MCH_SITE_RESID_PRE, MCH_SITE_ATTN_OUT,
                                                    MCH_SITE_MLP_OUT};
    for (int c = 0; c < MCH_BLOCK_COUNT; c++) {
        for (int l = 0; l < L; l++) {
            size_t base_idx = ((size_t)c * L + l) * T;
            const float *bsrc = cache_at(&p->base, sites[c], p, l);
            const float *psrc = cache_at(&p->pert, sites[c], p, l);
            int *todo = p->todo;
            int n = changed_rows(p, bsrc, psrc, p->blocks_mask, res->blocks_scores, res->blocks,
                                 base_idx, res);
            for (int i0 = 0; i0 < n; i0 += p->S_max) {
                int S = n - i0 < p->S_max ? n - i0 : p->S_max;
                float *scores = p->vscores;
                for (int s = 0; s < S; s++) p->tpos[s] = todo[i0 + s];
                if (p->o.naive) {
                    for (int s = 0; s < S; s++) {
                        naive_patch np = {sites[c], l, p->tpos[s], -1};
                        mch_status rc = naive_score(p, pair, np, &scores[s], err);
                        if (rc) return rc;
                    }
                } else if (c == MCH_BLOCK_RESID_PRE) {
                    for (int s = 0; s < S; s++) {
                        memcpy(p->X + s * TC, bsrc, TC * sizeof(float));
                        memcpy(p->X + s * TC + (size_t)p->tpos[s] * C,
                               psrc + (size_t)p->tpos[s] * C, (size_t)C * sizeof(float));
                        p->dirty[s] = p->tpos[s];
                    }
                    run_layers(p, l, S, MODE_ROW, scores);
                } else if (c == MCH_BLOCK_ATTN_OUT) {
                    gather_rows(p->rows2, psrc, p->tpos, S, 0, C);
                    attn_row_patches(p, l, S, p->rows2, scores, res);
                } else {
                    const mch_layer_weights *w = &p->m->layers[l];
                    gather_rows(p->rows2, p->base.ln1 + (size_t)l * TC, p->tpos, S, 0, C);
                    gather_rows(p->rows3, psrc, p->tpos, S, 0, C);
                    mch_add_inplace(p->rows2, p->rows3, (size_t)S * C);
                    mch_layernorm_forward(p->rows2, p->rows2, w->ln2_g, w->ln2_b, S, C,
                                          p->m->cfg.eps);
                    memcpy(p->A, p->rows2, (size_t)S * C * sizeof(float));
                    continue_rows(p, l, S, p->A, scores, res);
                }
                for (int s = 0; s < S; s++) {
                    store(res->blocks_scores, res->blocks, base_idx + p->tpos[s], scores[s], res);
                    res->patches++;
                }
            }
        }
    }
    return MCH_OK;
}

static mch_status sweep_head_pos(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                                 mch_err *err)
{
    int T = p->T, C = p->C, HS = p->HS;
    for (int k = 0; k < p->o.n_heads; k++) {
        int l = p->o.heads[2 * k], h = p->o.heads[2 * k + 1];
        const float *bz = cache_at(&p->base, MCH_SITE_Z, p, l);
        const float *pz = cache_at(&p->pert, MCH_SITE_Z, p, l);
        const float *bao = cache_at(&p->base, MCH_SITE_ATTN_OUT, p, l);
        const float *bv = cache_at(&p->base, MCH_SITE_V, p, l);
        const float *ppat = cache_at(&p->pert, MCH_SITE_PATTERN, p, l);
        for (int kind = 0; kind < 2; kind++) { /* 0: z[t, h]; 1: pattern[h] row t */
            float *sc = kind ? res->head_pos_pattern_scores : res->head_pos_z_scores;
            float *ef = kind ? res->head_pos_pattern : res->head_pos_z;
            for (int t0 = 0; t0 < T; t0 += p->S_max) {
                int S = T - t0 < p->S_max ? T - t0 : p->S_max;
                float *scores = p->vscores;
                for (int s = 0; s < S; s++) p->tpos[s] = t0 + s;
                if (p->o.naive) {
                    for (int s = 0; s < S; s++) {
                        naive_patch np = {kind ? MCH_SITE_PATTERN : MCH_SITE_Z, l, t0 + s, h};
                        mch_status rc = naive_score(p, pair, np, &scores[s], err);
                        if (rc) return rc;
                    }
                } else {
                    /* dz rows (S, HS) in rows, then attn_out rows = base + dz W_O[:, h]^T. */
                    for (int s = 0; s < S; s++) {
                        int t = t0 + s;
                        float *dz = p->rows + (size_t)s * HS;
                        const float *bzt = bz + (size_t)t * C + h * HS;
                        if (kind == 0) {
                            for (int d = 0; d < HS; d++)
                                dz[d] = pz[(size_t)t * C + h * HS + d] - bzt[d];
                        } else {
                            const float *prow = ppat + ((size_t)h * T + t) * T;
                            for (int d = 0; d < HS; d++) {
                                double acc = 0;
                                for (int u = 0; u < T; u++)
                                    acc += (double)prow[u] * bv[(size_t)u * C + h * HS + d];
                                dz[d] = (float)acc - bzt[d];
                            }
                        }
                        memcpy(p->rows2 + (size_t)s * C, bao + (size_t)t * C,
                               (size_t)C * sizeof(float));
                    }
                    head_delta(p, l, h, p->rows, HS, S, p->rows2);
                    attn_row_patches(p, l, S, p->rows2, scores, res);
                }
                for (int s = 0; s < S; s++) {
                    store(sc, ef, (size_t)k * T + t0 + s, scores[s], res);
                    res->patches++;
                }
            }
        }
    }
    return MCH_OK;
}

mch_status mch_patch_scores(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                            mch_err *err)
{
    res->skipped = 0;
    res->skip_reason[0] = 0;
    res->patches = res->forwards_saved = 0;
    if (pair->T < 1 || pair->T > p->max_T)
        return mch_fail(err, MCH_ERR_ARG, "pair of %d tokens; this patcher holds 1..%d", pair->T,
                        p->max_T);
    if (pair->T > 4096)
        return mch_fail(err, MCH_ERR_ARG, "pair of %d tokens is longer than 4096", pair->T);
    p->T = pair->T;
    mch_status rc;
    if (p->bi && (rc = query_embedding(p, pair, err))) return rc;
    if ((rc = full_run(p, &p->pert, pair->ids_perturbed, pair->token_types, err)) ||
        (rc = full_run(p, &p->base, pair->ids_baseline, pair->token_types, err)))
        return rc;
    res->score_baseline = p->base.score;
    res->score_perturbed = p->pert.score;
    /* A NaN or inf score (a non-finite weight, an overflow) would make every effect NaN, or pass
     * as a skip below min_delta: the pair fails instead. */
    if (!isfinite(res->score_baseline) || !isfinite(res->score_perturbed))
        return mch_fail(err, MCH_ERR_FORMAT,
                        "non-finite score (baseline %g, perturbed %g): the model's weights or "
                        "activations are not finite (mechir score --check-weights)",
                        res->score_baseline, res->score_perturbed);
    return MCH_OK;
}

mch_status mch_patch_run(mch_patcher *p, const mch_patch_pair *pair, mch_patch_result *res,
                         mch_err *err)
{
    mch_status rc = mch_patch_scores(p, pair, res, err);
    if (rc) return rc;
    double delta = res->score_perturbed - res->score_baseline;
    if (!(fabs(delta) >= p->o.min_delta)) {
        res->skipped = 1;
        snprintf(res->skip_reason, sizeof res->skip_reason,
                 "score change %.3g is below min_delta %.3g", delta, p->o.min_delta);
        return MCH_OK;
    }
    if (p->o.direction && (delta > 0) != (p->o.direction > 0)) {
        res->skipped = 1;
        snprintf(res->skip_reason, sizeof res->skip_reason,
                 "score change %.3g is not in the direction selected", delta);
        return MCH_OK;
    }
    if (p->o.save_patterns) {
        size_t TT = (size_t)p->T * p->T;
        for (int k = 0; k < p->o.n_heads; k++) {
            int l = p->o.heads[2 * k], h = p->o.heads[2 * k + 1];
            if (res->patterns_baseline)
                memcpy(res->patterns_baseline + k * TT,
                       cache_at(&p->base, MCH_SITE_PATTERN, p, l) + h * TT, TT * sizeof(float));
            if (res->patterns_perturbed)
                memcpy(res->patterns_perturbed + k * TT,
                       cache_at(&p->pert, MCH_SITE_PATTERN, p, l) + h * TT, TT * sizeof(float));
        }
    }
    if ((p->o.sweeps & MCH_SWEEP_HEADS) && (rc = sweep_heads(p, pair, res, err))) return rc;
    if ((p->o.sweeps & MCH_SWEEP_BLOCKS) && (rc = sweep_blocks(p, pair, res, err))) return rc;
    if ((p->o.sweeps & MCH_SWEEP_HEAD_POS) && (rc = sweep_head_pos(p, pair, res, err))) return rc;
    if ((p->o.sweeps & MCH_SWEEP_QKV) && (rc = sweep_qkv(p, pair, res, err))) return rc;
    if ((p->o.sweeps & MCH_SWEEP_PATTERN) &&
        (rc = sweep_head_site(p, pair, MCH_SITE_PATTERN, res->pattern_scores, res->pattern, 0, res,
                              err)))
        return rc;
    if ((p->o.sweeps & MCH_SWEEP_RESID_MID) && (rc = sweep_resid_mid(p, pair, res, err))) return rc;
    return MCH_OK;
}

/* The chosen components of mch_patch_subset, once both runs are cached. */
static mch_status subset_sweeps(mch_patcher *p, const mch_patch_pair *pair,
                                const unsigned char *heads_mask, const unsigned char *blocks_mask,
                                mch_patch_result *res, mch_err *err)
{
    mch_status rc = MCH_OK;
    /* Only the raw scores: the effects divide by a score change no rule has checked here. */
    mch_patch_result sub = *res;
    sub.heads = sub.blocks = NULL;
    p->heads_mask = heads_mask;
    p->blocks_mask = blocks_mask;
    if (heads_mask) rc = sweep_heads(p, pair, &sub, err);
    if (!rc && blocks_mask) rc = sweep_blocks(p, pair, &sub, err);
    p->heads_mask = p->blocks_mask = NULL;
    res->patches = sub.patches;
    res->forwards_saved = sub.forwards_saved;
    return rc;
}

mch_status mch_patch_subset(mch_patcher *p, const mch_patch_pair *pair,
                            const unsigned char *heads_mask, const unsigned char *blocks_mask,
                            mch_patch_result *res, mch_err *err)
{
    mch_status rc = mch_patch_scores(p, pair, res, err);
    return rc ? rc : subset_sweeps(p, pair, heads_mask, blocks_mask, res, err);
}

/* Copies the sites of one given run into rc (need: those the engine reads of that run). */
static mch_status load_run(mch_patcher *p, const mch_patch_runs *runs, int run, run_cache *rc,
                           mch_err *err)
{
    static const mch_site pert_sites[] = {MCH_SITE_Z, MCH_SITE_RESID_PRE, MCH_SITE_ATTN_OUT,
                                          MCH_SITE_MLP_OUT};
    const mch_site *sites = run ? pert_sites : cached_sites;
    size_t n =
        run ? sizeof pert_sites / sizeof *pert_sites : sizeof cached_sites / sizeof *cached_sites;
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < p->L; l++) {
            const float *src = runs->act(runs->ctx, run, sites[i], l);
            char name[64];
            if (!src)
                return mch_fail(err, MCH_ERR_ARG, "the given %s run has no %s",
                                run ? "perturbed" : "baseline",
                                mch_hook_name(sites[i], l, name, sizeof name));
            memcpy(cache_at(rc, sites[i], p, l), src, plane(p) * sizeof(float));
        }
    return MCH_OK;
}

mch_status mch_patch_subset_given(mch_patcher *p, const mch_patch_pair *pair,
                                  const mch_patch_runs *runs, const unsigned char *heads_mask,
                                  const unsigned char *blocks_mask, mch_patch_result *res,
                                  mch_err *err)
{
    if (p->bi || p->o.n_heads || p->o.save_patterns)
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "given runs: cross-encoders without head-pos or saved patterns only");
    if (pair->T < 1 || pair->T > p->max_T)
        return mch_fail(err, MCH_ERR_ARG, "pair of %d tokens; this patcher holds 1..%d", pair->T,
                        p->max_T);
    p->T = pair->T;
    res->skipped = 0;
    res->skip_reason[0] = 0;
    res->patches = res->forwards_saved = 0;
    mch_status rc = load_run(p, runs, 0, &p->base, err);
    if (!rc) rc = load_run(p, runs, 1, &p->pert, err);
    if (rc) return rc;
    for (int l = 0; l < p->L; l++) { /* as full_run */
        const mch_layer_weights *w = &p->m->layers[l];
        mch_layernorm_forward(p->base.ln1 + (size_t)l * plane(p),
                              cache_at(&p->base, MCH_SITE_RESID_MID, p, l), w->ln1_g, w->ln1_b,
                              p->T, p->C, p->m->cfg.eps);
    }
    p->base.score = res->score_baseline = runs->score_baseline;
    p->pert.score = res->score_perturbed = runs->score_perturbed;
    return subset_sweeps(p, pair, heads_mask, blocks_mask, res, err);
}

/* A site the engine does not keep, computed into p->derived from those it keeps (see patch.h). */
static const float *derive(mch_patcher *p, run_cache *rc, mch_site site, int l)
{
    const mch_layer_weights *w = &p->m->layers[l];
    int T = p->T, C = p->C, NH = p->NH, HS = p->HS, FF = p->FF;
    const float *ln1 = rc->ln1 + (size_t)l * plane(p);
    switch (site) {
    case MCH_SITE_RESID_POST: /* as encoder.c: LN1(resid_mid) + mlp_out */
        mch_add_forward(p->derived, ln1, cache_at(rc, MCH_SITE_MLP_OUT, p, l), plane(p));
        break;
    case MCH_SITE_ATTN_SCORES:
        mch_attn_scores_forward(p->derived, cache_at(rc, MCH_SITE_Q, p, l),
                                cache_at(rc, MCH_SITE_K, p, l), C, T, NH, HS);
        break;
    case MCH_SITE_RESULT:
        mch_attn_result_forward(p->derived, cache_at(rc, MCH_SITE_Z, p, l), C, w->o_w, T, NH, HS,
                                C);
        break;
    case MCH_SITE_MLP_PRE:
    case MCH_SITE_MLP_POST:
        mch_linear_forward(p->derived, FF, ln1, C, w->ff1_w, w->ff1_b, T, C, FF);
        if (site == MCH_SITE_MLP_POST) act_forward(p->derived, (size_t)T * FF, p->m->cfg.act);
        break;
    default:
        return NULL;
    }
    return p->derived;
}

const float *mch_patcher_activation(const mch_patcher *cp, int run, mch_site site, int layer)
{
    mch_patcher *p = (mch_patcher *)cp;
    run_cache *rc = run ? &p->pert : &p->base;
    if (site == MCH_SITE_FULL_EMBED) site = MCH_SITE_RESID_PRE, layer = 0;
    if (site < 0 || site >= MCH_SITE_COUNT || layer < 0 || layer >= p->L) return NULL;
    if (rc->buf[site]) return cache_at(rc, site, p, layer);
    return p->derived ? derive(p, rc, site, layer) : NULL;
}

int mch_patcher_tokens(const mch_patcher *p)
{
    return p->T;
}
