/* Attribution patching (see atp.h): the perturbed run is one hooked forward whose hooks copy the
 * sites AtP reads into (L, plane) buffers sized for max_T; the baseline run is the backward
 * context's forward + backward, whose kept activations and gradients are read in place. Every
 * estimate is a dot product in double of an activation change with a gradient, added to the
 * baseline score once, so a zero change or a zero gradient gives score_b exactly. */
#include "atp.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_backward.h"
#include "ops.h"

/* Sites of the perturbed run the estimates read (q, k and resid_mid only with the qkv and
 * resid-mid sweeps). */
static const mch_site kept[] = {MCH_SITE_RESID_PRE, MCH_SITE_V,        MCH_SITE_PATTERN,
                                MCH_SITE_Z,         MCH_SITE_ATTN_OUT, MCH_SITE_MLP_OUT,
                                MCH_SITE_Q,         MCH_SITE_K,        MCH_SITE_RESID_MID};
/* The blocks sweep's sites, in result order (MCH_BLOCK_*). */
static const mch_site block_sites[MCH_BLOCK_COUNT] = {MCH_SITE_RESID_PRE, MCH_SITE_ATTN_OUT,
                                                      MCH_SITE_MLP_OUT};
static const char *const block_names[MCH_BLOCK_COUNT] = {"resid_pre", "attn_out", "mlp_out"};

struct mch_atp;
typedef struct {
    struct mch_atp *a;
    mch_site site;
} capture_ctx;

struct mch_atp {
    const mch_model *m;
    mch_patch_opts o;
    int max_B, max_T; /* pairs a run takes, tokens a pair has */
    int n;            /* pairs of the last run */
    int *T;           /* (max_B) tokens of each pair of the last run; 0: failed or none */
    int *slot;        /* (max_B) the pair's sequence in the runs' batches */
    int *off;         /* (max_B + 1) first row of each sequence in an (N, C) plane */
    size_t *poff;     /* (max_B + 1) first float of each sequence's (NH, T, T) pattern */
    int bi;           /* bi-encoder: the score is dot(query vector, pooled document) */
    mch_backward *bw;
    mch_workspace *ws; /* the perturbed batch and the queries (max_position_embeddings tokens) */
    mch_hooks *hooks;
    capture_ctx caps[MCH_SITE_COUNT];
    float *pert[MCH_SITE_COUNT];    /* (L, plane) perturbed activations, NULL for sites not kept */
    int32_t *ids_b, *ids_p, *types; /* (max_B, max_T) the batches, padded */
    int *lengths;                   /* (max_B) */
    float *score_b, *score_p;       /* (max_B) */
    float *pooled;                  /* (max_B, C) the perturbed documents' vectors */
    float *q_emb;                   /* (max_B, C) each sequence's query vector */
    float *q_last;                  /* (C) the vector of q_ids[0..q_T) */
    int32_t *q_ids;                 /* (max_position_embeddings) */
    int q_T;
    int qk; /* the QK fix */
    int pv; /* the run reads the perturbed pattern and v (the QK fix, qkv, pattern); else they are
             * not copied */
    float *att; /* (max_T, max_T) one head's recomputed pattern (atp-qk's q and k estimates) */
};

/* Whether the sweeps read the perturbed run's site (q, k, resid_mid are kept only for theirs). */
static int site_needed(unsigned sweeps, mch_site site)
{
    if (site == MCH_SITE_Q || site == MCH_SITE_K) return (sweeps & MCH_SWEEP_QKV) != 0;
    if (site == MCH_SITE_RESID_MID) return (sweeps & MCH_SWEEP_RESID_MID) != 0;
    return 1;
}

/* Floats one layer of a perturbed site's buffer reserves. */
static size_t plane_max(const mch_atp *a, mch_site site)
{
    const mch_config *c = &a->m->cfg;
    size_t T = (size_t)a->max_T, B = (size_t)a->max_B;
    return site == MCH_SITE_PATTERN ? B * c->NH * T * T : B * T * (size_t)c->C;
}

/* Sequence s's part of the perturbed plane of (site, l). */
static float *pert_at(const mch_atp *a, mch_site site, int l, int s)
{
    size_t o = site == MCH_SITE_PATTERN ? a->poff[s] : (size_t)a->off[s] * a->m->cfg.C;
    return a->pert[site] + (size_t)l * plane_max(a, site) + o;
}

static int capture(void *user, const mch_act_view *v)
{
    capture_ctx *cc = user;
    if (!cc->a->pv && (cc->site == MCH_SITE_PATTERN || cc->site == MCH_SITE_V)) return 0;
    memcpy(pert_at(cc->a, cc->site, v->layer, v->seq), v->data,
           mch_site_floats(&cc->a->m->cfg, cc->site, v->T) * sizeof(float));
    return 0;
}

void mch_atp_free(mch_atp *a)
{
    if (!a) return;
    for (int s = 0; s < MCH_SITE_COUNT; s++) free(a->pert[s]);
    void *bufs[] = {a->T,      a->slot,  a->off,     a->poff,    a->ids_b,
                    a->ids_p,  a->types, a->lengths, a->score_b, a->score_p,
                    a->pooled, a->q_emb, a->q_last,  a->q_ids,   a->att};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    mch_hooks_free(a->hooks);
    mch_workspace_free(a->ws);
    mch_backward_free(a->bw);
    free(a);
}

mch_status mch_atp_create(mch_atp **out, const mch_model *m, const mch_patch_opts *opts, int max_T,
                          mch_err *err)
{
    return mch_atp_create_batch(out, m, opts, max_T, 1, err);
}

mch_status mch_atp_create_batch(mch_atp **out, const mch_model *m, const mch_patch_opts *opts,
                                int max_T, int max_pairs, mch_err *err)
{
    const mch_config *c = &m->cfg;
    mch_status rc0 = mch_model_need_encoder(m, "attribution patching", err);
    if (rc0) return rc0;
    if (opts->sweeps & MCH_SWEEP_HEAD_POS)
        return mch_fail(err, MCH_ERR_ARG,
                        "attribution patching does not estimate the head-pos sweep (sweeps 0x%x)",
                        opts->sweeps);
    if (max_T < 1 || max_T > c->max_tokens)
        return mch_fail(err, MCH_ERR_ARG, "max_T %d outside 1..%d (the model's longest input)",
                        max_T, c->max_tokens);
    if (max_pairs < 1 || max_pairs > MCH_BACKWARD_MAX_BATCH)
        return mch_fail(err, MCH_ERR_ARG, "a batch of %d pairs; allowed 1..%d", max_pairs,
                        MCH_BACKWARD_MAX_BATCH);
    mch_atp *a = calloc(1, sizeof *a);
    if (!a) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    a->m = m;
    a->o = *opts;
    if (a->o.min_delta <= 0) a->o.min_delta = 1e-3;
    a->max_B = max_pairs;
    a->max_T = max_T;
    a->bi = c->head == MCH_HEAD_NONE;
    mch_err berr = {0};
    mch_status rc = mch_backward_create_batch(&a->bw, m, max_pairs, max_T, opts->pooling, &berr);
    if (rc) {
        mch_atp_free(a);
        if (rc == MCH_ERR_NOMEM) return mch_fail(err, rc, "%s", berr.msg);
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "attribution patching needs a backward pass, which model type '%s' (%s) "
                        "lacks: %s",
                        c->model_type, c->architecture, berr.msg);
    }
    size_t L = (size_t)c->L, B = (size_t)max_pairs, C = (size_t)c->C, BT = B * max_T;
    int tokens = (int)BT > c->max_tokens ? (int)BT : c->max_tokens;
    int ok = (a->ws = mch_workspace_create(m, tokens, c->max_tokens)) != NULL &&
             (a->hooks = mch_hooks_create(c->L)) != NULL &&
             (a->T = calloc(B, sizeof *a->T)) != NULL &&
             (a->slot = calloc(B, sizeof *a->slot)) != NULL &&
             (a->off = calloc(B + 1, sizeof *a->off)) != NULL &&
             (a->poff = calloc(B + 1, sizeof *a->poff)) != NULL &&
             (a->ids_b = malloc(BT * sizeof *a->ids_b)) != NULL &&
             (a->ids_p = malloc(BT * sizeof *a->ids_p)) != NULL &&
             (a->types = malloc(BT * sizeof *a->types)) != NULL &&
             (a->lengths = malloc(B * sizeof *a->lengths)) != NULL &&
             (a->score_b = malloc(B * sizeof(float))) != NULL &&
             (a->score_p = malloc(B * sizeof(float))) != NULL &&
             (a->pooled = malloc(B * C * sizeof(float))) != NULL &&
             (a->q_emb = malloc(B * C * sizeof(float))) != NULL &&
             (a->q_last = malloc(C * sizeof(float))) != NULL &&
             (a->q_ids = malloc((size_t)c->max_tokens * sizeof *a->q_ids)) != NULL &&
             (a->att = malloc((size_t)max_T * max_T * sizeof *a->att)) != NULL;
    for (size_t i = 0; ok && i < sizeof kept / sizeof kept[0]; i++)
        if (site_needed(opts->sweeps, kept[i]))
            ok = (a->pert[kept[i]] = mch_alloc_large(L * plane_max(a, kept[i]) * sizeof(float))) !=
                 NULL;
    if (!ok) {
        mch_atp_free(a);
        return mch_fail(err, MCH_ERR_NOMEM,
                        "out of memory sizing attribution patching for %d pairs of %d tokens",
                        max_pairs, max_T);
    }
    for (size_t i = 0; !rc && i < sizeof kept / sizeof kept[0]; i++) {
        if (!a->pert[kept[i]]) continue;
        a->caps[kept[i]] = (capture_ctx){a, kept[i]};
        for (int l = 0; !rc && l < c->L; l++)
            rc = mch_hooks_add(a->hooks, kept[i], l, capture, &a->caps[kept[i]], err);
    }
    if (rc) {
        mch_atp_free(a);
        return rc;
    }
    *out = a;
    return MCH_OK;
}

/* ---- the two runs ------------------------------------------------------------------------- */

/* The query's vector into q (C), computed again only when the query's ids change. */
static mch_status query_vector(mch_atp *a, const mch_patch_pair *pair, float *q, mch_err *err)
{
    int Tq = pair->Tq;
    if (!pair->query_ids || Tq < 1)
        return mch_fail(err, MCH_ERR_ARG, "a bi-encoder pair needs the query's token ids");
    if (Tq > a->m->cfg.max_tokens)
        return mch_fail(err, MCH_ERR_ARG, "query of %d tokens; max_position_embeddings is %d", Tq,
                        a->m->cfg.max_tokens);
    size_t bytes = (size_t)Tq * sizeof *a->q_ids;
    if (a->q_T != Tq || memcmp(a->q_ids, pair->query_ids, bytes)) {
        a->q_T = 0;
        mch_batch bt = {1, Tq, pair->query_ids, NULL, &Tq};
        mch_forward_opts fo = {NULL, 0, NULL, a->o.pooling};
        mch_forward_out fout = {NULL, NULL, a->q_last};
        mch_status rc = mch_forward(a->m, a->ws, &bt, &fo, &fout, err);
        if (rc) return rc;
        memcpy(a->q_ids, pair->query_ids, bytes);
        a->q_T = Tq;
    }
    memcpy(q, a->q_last, (size_t)a->m->cfg.C * sizeof *q);
    return MCH_OK;
}

/* The checks mch_forward makes of a batch, for one pair, so that a bad pair fails alone instead
 * of the batch it is in: its length and every id and token type of both inputs. */
static mch_status check_pair(const mch_atp *a, const mch_patch_pair *pair, mch_err *err)
{
    const mch_config *c = &a->m->cfg;
    if (pair->T < 1 || pair->T > a->max_T)
        return mch_fail(err, MCH_ERR_ARG,
                        "pair of %d tokens; this attribution patching context holds 1..%d", pair->T,
                        a->max_T);
    for (int t = 0; t < pair->T; t++) {
        int32_t ib = pair->ids_baseline[t], ip = pair->ids_perturbed[t];
        int32_t tt = pair->token_types ? pair->token_types[t] : 0;
        if (ib < 0 || ib >= c->V || ip < 0 || ip >= c->V)
            return mch_fail(err, MCH_ERR_ARG,
                            "%s input position %d: token id %d outside the vocabulary "
                            "(vocab_size %d)",
                            ib < 0 || ib >= c->V ? "baseline" : "perturbed", t,
                            ib < 0 || ib >= c->V ? ib : ip, c->V);
        if (c->type_vocab > 0 && (tt < 0 || tt >= c->type_vocab))
            return mch_fail(err, MCH_ERR_ARG, "position %d: token type %d outside 0..%d", t, tt,
                            c->type_vocab - 1);
    }
    return MCH_OK;
}

/* Pair i into row s of the padded batches (its query's vector already in q_emb row s). */
static void add_pair(mch_atp *a, const mch_patch_pair *pair, int s)
{
    size_t row = (size_t)s * a->max_T, bytes = (size_t)pair->T * sizeof(int32_t);
    memcpy(a->ids_b + row, pair->ids_baseline, bytes);
    memcpy(a->ids_p + row, pair->ids_perturbed, bytes);
    if (pair->token_types)
        memcpy(a->types + row, pair->token_types, bytes);
    else
        memset(a->types + row, 0, bytes);
    a->lengths[s] = pair->T;
    a->off[s + 1] = a->off[s] + pair->T;
    a->poff[s + 1] = a->poff[s] + (size_t)a->m->cfg.NH * pair->T * pair->T;
}

/* The B perturbed inputs' forward, their activations captured, then the baselines' forward +
 * backward: scores into score_p and score_b. */
static mch_status run_batches(mch_atp *a, int B, mch_err *err)
{
    int C = a->m->cfg.C;
    mch_batch bp = {B, a->max_T, a->ids_p, a->types, a->lengths};
    mch_forward_opts fo = {a->hooks, 0, NULL, a->o.pooling};
    mch_forward_out fout = {a->bi ? NULL : a->score_p, NULL, a->bi ? a->pooled : NULL};
    mch_status rc = mch_forward(a->m, a->ws, &bp, &fo, &fout, err);
    if (rc) return rc;
    for (int s = 0; a->bi && s < B; s++) {
        double dot = 0;
        for (int i = 0; i < C; i++)
            dot += (double)a->q_emb[(size_t)s * C + i] * a->pooled[(size_t)s * C + i];
        a->score_p[s] = (float)dot;
    }
    mch_batch bb = {B, a->max_T, a->ids_b, a->types, a->lengths};
    return mch_backward_run_batch(a->bw, &bb, a->bi ? a->q_emb : NULL, a->score_b, err);
}

/* ---- estimates ---------------------------------------------------------------------------- */

/* sum over rows r < R and columns i < n of (ap - ab)[r * ld + i] * g[r * ld + i], in double. */
static double change_dot(const float *ap, const float *ab, const float *g, int R, int n, size_t ld)
{
    double s = 0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < n; i++) {
            size_t k = (size_t)r * ld + (size_t)i;
            s += ((double)ap[k] - ab[k]) * g[k];
        }
    return s;
}

static void store(float *scores_out, float *effects_out, size_t idx, double change,
                  const mch_patch_result *res)
{
    float est = (float)(res->score_baseline + change);
    if (scores_out) scores_out[idx] = est;
    if (effects_out)
        effects_out[idx] =
            (float)((est - res->score_baseline) / (res->score_perturbed - res->score_baseline));
}

static void estimate_heads(const mch_atp *a, int p, mch_atp_method method, mch_patch_result *res)
{
    const mch_config *c = &a->m->cfg;
    int T = a->T[p], NH = c->NH, HS = c->HS, C = c->C;
    size_t TT = (size_t)T * T;
    for (int l = 0; l < c->L; l++) {
        const float *pz = mch_atp_activation_pair(a, p, 1, MCH_SITE_Z, l);
        const float *bz = mch_atp_activation_pair(a, p, 0, MCH_SITE_Z, l);
        const float *gz = mch_atp_grad_pair(a, p, MCH_SITE_Z, l);
        const float *pv = mch_atp_activation_pair(a, p, 1, MCH_SITE_V, l);
        const float *bv = mch_atp_activation_pair(a, p, 0, MCH_SITE_V, l);
        const float *gv = mch_atp_grad_pair(a, p, MCH_SITE_V, l);
        const float *pA = mch_atp_activation_pair(a, p, 1, MCH_SITE_PATTERN, l);
        const float *bA = mch_atp_activation_pair(a, p, 0, MCH_SITE_PATTERN, l);
        const float *gA = mch_atp_grad_pair(a, p, MCH_SITE_PATTERN, l);
        for (int h = 0; h < NH; h++) {
            size_t col = (size_t)h * HS, pat = (size_t)h * TT;
            double s;
            if (method == MCH_ATP_QK)
                s = change_dot(pA + pat, bA + pat, gA + pat, 1, (int)TT, 0) +
                    change_dot(pv + col, bv + col, gv + col, T, HS, (size_t)C);
            else
                s = change_dot(pz + col, bz + col, gz + col, T, HS, (size_t)C);
            store(res->heads_scores, res->heads, (size_t)l * NH + h, s, res);
            res->patches++;
        }
    }
}

/* qkv (3, L, NH): hook_q, hook_k, hook_v of a head at every position, est = score_b + sum
 * (a_p - a_b) g over the head's (T, HS). With the QK fix, a q or k patch goes through the
 * head's pattern recomputed with the perturbed q (or k) and the baseline k (or q), the change
 * of the pattern times its gradient (AtP*'s QK fix, applied to one side). */
static void estimate_qkv(mch_atp *a, int p, mch_atp_method method, mch_patch_result *res)
{
    const mch_config *c = &a->m->cfg;
    int T = a->T[p], NH = c->NH, HS = c->HS, C = c->C, L = c->L;
    static const mch_site sites[3] = {MCH_SITE_Q, MCH_SITE_K, MCH_SITE_V};
    size_t TT = (size_t)T * T;
    for (int j = 0; j < 3; j++)
        for (int l = 0; l < L; l++) {
            const float *ap = mch_atp_activation_pair(a, p, 1, sites[j], l);
            const float *ab = mch_atp_activation_pair(a, p, 0, sites[j], l);
            const float *g = mch_atp_grad_pair(a, p, sites[j], l);
            const float *bq = mch_atp_activation_pair(a, p, 0, MCH_SITE_Q, l);
            const float *bk = mch_atp_activation_pair(a, p, 0, MCH_SITE_K, l);
            const float *bA = mch_atp_activation_pair(a, p, 0, MCH_SITE_PATTERN, l);
            const float *gA = mch_atp_grad_pair(a, p, MCH_SITE_PATTERN, l);
            for (int h = 0; h < NH; h++) {
                size_t col = (size_t)h * HS, pat = (size_t)h * TT;
                double s;
                if (method == MCH_ATP_QK && j < 2) {
                    const float *q = j == 0 ? ap : bq, *k = j == 1 ? ap : bk;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS,
                                1.0f / sqrtf((float)HS), q + col, C, k + col, C, 0.0f, a->att, T);
                    mch_softmax_rows(a->att, T, T, T);
                    s = change_dot(a->att, bA + pat, gA + pat, 1, (int)TT, 0);
                } else {
                    s = change_dot(ap + col, ab + col, g + col, T, HS, (size_t)C);
                }
                store(res->qkv_scores, res->qkv, ((size_t)j * L + l) * NH + h, s, res);
                res->patches++;
            }
        }
}

/* pattern (L, NH): est = score_b + sum (A_p - A_b) gA over the head's (T, T). */
static void estimate_pattern(const mch_atp *a, int p, mch_patch_result *res)
{
    const mch_config *c = &a->m->cfg;
    int T = a->T[p], NH = c->NH;
    size_t TT = (size_t)T * T;
    for (int l = 0; l < c->L; l++) {
        const float *pA = mch_atp_activation_pair(a, p, 1, MCH_SITE_PATTERN, l);
        const float *bA = mch_atp_activation_pair(a, p, 0, MCH_SITE_PATTERN, l);
        const float *gA = mch_atp_grad_pair(a, p, MCH_SITE_PATTERN, l);
        for (int h = 0; h < NH; h++) {
            size_t pat = (size_t)h * TT;
            store(res->pattern_scores, res->pattern, (size_t)l * NH + h,
                  change_dot(pA + pat, bA + pat, gA + pat, 1, (int)TT, 0), res);
            res->patches++;
        }
    }
}

/* (site, l, t) rows: est = score_b + (a_p - a_b)[t] . g[t], into out at idx0 + l * T + t. */
static void estimate_rows(const mch_atp *a, int p, mch_site site, float *scores_out,
                          float *effects_out, size_t idx0, mch_patch_result *res)
{
    int T = a->T[p], C = a->m->cfg.C, L = a->m->cfg.L;
    for (int l = 0; l < L; l++) {
        const float *ap = mch_atp_activation_pair(a, p, 1, site, l);
        const float *ab = mch_atp_activation_pair(a, p, 0, site, l);
        const float *g = mch_atp_grad_pair(a, p, site, l);
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)t * C;
            int same = !memcmp(ap + row, ab + row, (size_t)C * sizeof(float));
            double s = same ? 0.0 : change_dot(ap + row, ab + row, g + row, 1, C, 0);
            store(scores_out, effects_out, idx0 + (size_t)l * T + t, s, res);
            res->patches++;
            res->forwards_saved += same;
        }
    }
}

/* Pair p's scores, skip decision and estimates, once both batches ran. */
static mch_status finish_pair(mch_atp *a, int p, const mch_patch_pair *pair, mch_atp_method method,
                              mch_patch_result *res, mch_err *err)
{
    int s = a->slot[p];
    res->score_baseline = a->score_b[s];
    res->score_perturbed = a->score_p[s];
    if (!isfinite(res->score_baseline) || !isfinite(res->score_perturbed))
        return mch_fail(err, MCH_ERR_FORMAT,
                        "non-finite score (baseline %g, perturbed %g): the model's weights or "
                        "activations are not finite (mechir score --check-weights)",
                        res->score_baseline, res->score_perturbed);
    a->T[p] = pair->T;
    /* The skip rules and texts of mch_patch_run, so either engine skips the same pairs. */
    double delta = res->score_perturbed - res->score_baseline;
    if (!(fabs(delta) >= a->o.min_delta))
        snprintf(res->skip_reason, sizeof res->skip_reason,
                 "score change %.3g is below min_delta %.3g", delta, a->o.min_delta);
    else if (a->o.direction && (delta > 0) != (a->o.direction > 0))
        snprintf(res->skip_reason, sizeof res->skip_reason,
                 "score change %.3g is not in the direction selected", delta);
    res->skipped = res->skip_reason[0] != 0;
    if (res->skipped) return MCH_OK;
    if (a->o.sweeps & MCH_SWEEP_HEADS) estimate_heads(a, p, method, res);
    for (int k = 0; (a->o.sweeps & MCH_SWEEP_BLOCKS) && k < MCH_BLOCK_COUNT; k++)
        estimate_rows(a, p, block_sites[k], res->blocks_scores, res->blocks,
                      (size_t)k * a->m->cfg.L * pair->T, res);
    if (a->o.sweeps & MCH_SWEEP_QKV) estimate_qkv(a, p, method, res);
    if (a->o.sweeps & MCH_SWEEP_PATTERN) estimate_pattern(a, p, res);
    if (a->o.sweeps & MCH_SWEEP_RESID_MID)
        estimate_rows(a, p, MCH_SITE_RESID_MID, res->resid_mid_scores, res->resid_mid, 0, res);
    return MCH_OK;
}

mch_status mch_atp_run_batch(mch_atp *a, const mch_patch_pair *pairs, int n, mch_atp_method method,
                             mch_patch_result *results, mch_err *pair_errs, mch_err *err)
{
    a->n = 0;
    if (n < 1 || n > a->max_B)
        return mch_fail(err, MCH_ERR_ARG,
                        "a batch of %d pairs; this attribution patching context holds 1..%d", n,
                        a->max_B);
    if (method != MCH_ATP_LINEAR && method != MCH_ATP_QK)
        return mch_fail(err, MCH_ERR_ARG, "unknown attribution patching method %d", (int)method);
    a->qk = method == MCH_ATP_QK;
    a->pv = a->qk || (a->o.sweeps & (MCH_SWEEP_QKV | MCH_SWEEP_PATTERN));
    int B = 0;
    for (int p = 0; p < n; p++) {
        mch_patch_result *res = &results[p];
        res->skipped = 0;
        res->skip_reason[0] = 0;
        res->patches = res->forwards_saved = 0;
        pair_errs[p] = (mch_err){0};
        a->T[p] = 0;
        a->slot[p] = -1;
        if (check_pair(a, &pairs[p], &pair_errs[p]) ||
            (a->bi &&
             query_vector(a, &pairs[p], a->q_emb + (size_t)B * a->m->cfg.C, &pair_errs[p])))
            continue;
        add_pair(a, &pairs[p], B);
        a->slot[p] = B++;
    }
    a->n = n;
    mch_err berr = {0};
    if (B && run_batches(a, B, &berr)) { /* not expected once every pair passed check_pair */
        for (int p = 0; p < n; p++)
            if (a->slot[p] >= 0) mch_fail(&pair_errs[p], berr.code, "%s", berr.msg);
        return MCH_OK;
    }
    for (int p = 0; p < n; p++)
        if (a->slot[p] >= 0) finish_pair(a, p, &pairs[p], method, &results[p], &pair_errs[p]);
    return MCH_OK;
}

mch_status mch_atp_run(mch_atp *a, const mch_patch_pair *pair, mch_atp_method method,
                       mch_patch_result *res, mch_err *err)
{
    mch_err perr = {0};
    mch_status rc = mch_atp_run_batch(a, pair, 1, method, res, &perr, err);
    if (rc) return rc;
    return perr.code ? mch_fail(err, perr.code, "%s", perr.msg) : MCH_OK;
}

const float *mch_atp_activation_pair(const mch_atp *a, int pair, int run, mch_site site, int layer)
{
    if (pair < 0 || pair >= a->n || !a->T[pair] || site < 0 || site >= MCH_SITE_COUNT ||
        !a->pert[site] || layer < 0 || layer >= a->m->cfg.L)
        return NULL;
    if (run == 0) return mch_backward_activation_seq(a->bw, a->slot[pair], site, layer);
    if (!a->pv && (site == MCH_SITE_PATTERN || site == MCH_SITE_V)) return NULL; /* not copied */
    return pert_at(a, site, layer, a->slot[pair]);
}

const float *mch_atp_grad_pair(const mch_atp *a, int pair, mch_site site, int layer)
{
    if (pair < 0 || pair >= a->n || !a->T[pair]) return NULL;
    return mch_backward_grad_seq(a->bw, a->slot[pair], site, layer);
}

const float *mch_atp_activation(const mch_atp *a, int run, mch_site site, int layer)
{
    return mch_atp_activation_pair(a, 0, run, site, layer);
}

const float *mch_atp_baseline(const mch_atp *a, mch_site site, int layer)
{
    if (a->n < 1 || !a->T[0]) return NULL;
    return mch_backward_activation_seq(a->bw, a->slot[0], site, layer);
}

const float *mch_atp_grad(const mch_atp *a, mch_site site, int layer)
{
    return mch_atp_grad_pair(a, 0, site, layer);
}

/* ---- components --------------------------------------------------------------------------- */

float mch_component_score(const mch_patch_result *res, int L, int NH, int T, const mch_component *c)
{
    if (c->layer < 0 || c->layer >= L || c->index < 0) return NAN;
    if (c->block < 0)
        return res->heads_scores && c->index < NH ? res->heads_scores[c->layer * NH + c->index]
                                                  : NAN;
    if (c->block >= MCH_BLOCK_COUNT || c->index >= T || !res->blocks_scores) return NAN;
    return res->blocks_scores[((size_t)c->block * L + c->layer) * T + c->index];
}

void mch_component_name(const mch_component *c, char *buf, size_t cap)
{
    if (c->block < 0)
        snprintf(buf, cap, "head %d.%d", c->layer, c->index);
    else if (c->block < MCH_BLOCK_COUNT)
        snprintf(buf, cap, "%s %d %d", block_names[c->block], c->layer, c->index);
    else
        snprintf(buf, cap, "block%d %d %d", c->block, c->layer, c->index);
}

/* Inserts c into the n (< k or == k) best of out, sorted by decreasing |score - baseline|; a
 * tie goes after the equal ones, so the enumeration order (heads, then blocks by site, layer,
 * position) breaks ties. Returns the new count. */
static int top_insert(const mch_patch_result *res, int L, int NH, int T, mch_component *out, int n,
                      int k, const mch_component *c)
{
    double key = fabs((double)mch_component_score(res, L, NH, T, c) - res->score_baseline);
    int at = n;
    while (at > 0 && key > fabs((double)mch_component_score(res, L, NH, T, &out[at - 1]) -
                                res->score_baseline))
        at--;
    if (at >= k) return n;
    int last = n < k ? n : k - 1;
    memmove(out + at + 1, out + at, (size_t)(last - at) * sizeof *out);
    out[at] = *c;
    return n < k ? n + 1 : n;
}

int mch_atp_top(const mch_patch_result *res, unsigned sweeps, int L, int NH, int T, int k,
                mch_component *out)
{
    int n = 0;
    if (res->skipped || k < 1) return 0;
    if ((sweeps & MCH_SWEEP_HEADS) && res->heads_scores)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < NH; h++)
                n = top_insert(res, L, NH, T, out, n, k, &(mch_component){-1, l, h});
    if ((sweeps & MCH_SWEEP_BLOCKS) && res->blocks_scores)
        for (int b = 0; b < MCH_BLOCK_COUNT; b++)
            for (int l = 0; l < L; l++)
                for (int t = 0; t < T; t++)
                    n = top_insert(res, L, NH, T, out, n, k, &(mch_component){b, l, t});
    return n;
}

int mch_atp_diff_rows(const mch_patch_pair *pair, int L, mch_component *out, int cap)
{
    int n = 0;
    for (int l = 0; l < L; l++)
        for (int t = 0; t < pair->T; t++)
            if (pair->ids_baseline[t] != pair->ids_perturbed[t] && n < cap)
                out[n++] = (mch_component){MCH_BLOCK_RESID_PRE, l, t};
    return n;
}
