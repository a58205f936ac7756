/* Attribution patching (see atp.h): the perturbed run is one hooked forward whose hooks copy the
 * sites AtP reads into (L, plane) buffers sized for max_T; the baseline run is the backward
 * context's forward + backward, whose kept activations and gradients are read in place. Every
 * estimate is a dot product in double of an activation change with a gradient, added to the
 * baseline score once, so a zero change or a zero gradient gives score_b exactly. */
#include "atp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_backward.h"
#include "ops.h"

/* Sites of the perturbed run the estimates read. */
static const mch_site kept[] = {MCH_SITE_RESID_PRE, MCH_SITE_V,        MCH_SITE_PATTERN,
                                MCH_SITE_Z,         MCH_SITE_ATTN_OUT, MCH_SITE_MLP_OUT};
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
    int max_T, T; /* T: tokens of the last successful run, 0 if none */
    int bi;       /* bi-encoder: the score is dot(query vector, pooled document) */
    mch_backward *bw;
    mch_workspace *ws; /* the perturbed run and the query (max_position_embeddings tokens) */
    mch_hooks *hooks;
    capture_ctx caps[MCH_SITE_COUNT];
    float *pert[MCH_SITE_COUNT]; /* (L, plane) perturbed activations, NULL for sites not kept */
    float *pooled;               /* (C) the perturbed document's vector */
    float *q_emb;                /* (C) the query's vector, for q_ids[0..q_T) */
    int32_t *q_ids;              /* (max_position_embeddings) */
    int q_T;
    int qk; /* the run reads the perturbed pattern and v (the QK fix); else they are not copied */
};

/* Floats one layer of a perturbed site's buffer reserves. */
static size_t plane_max(const mch_atp *a, mch_site site)
{
    const mch_config *c = &a->m->cfg;
    size_t T = (size_t)a->max_T;
    return site == MCH_SITE_PATTERN ? (size_t)c->NH * T * T : T * (size_t)c->C;
}

static int capture(void *user, const mch_act_view *v)
{
    capture_ctx *cc = user;
    if (!cc->a->qk && (cc->site == MCH_SITE_PATTERN || cc->site == MCH_SITE_V)) return 0;
    float *dst = cc->a->pert[cc->site] + (size_t)v->layer * plane_max(cc->a, cc->site);
    memcpy(dst, v->data, mch_site_floats(&cc->a->m->cfg, cc->site, v->T) * sizeof(float));
    return 0;
}

void mch_atp_free(mch_atp *a)
{
    if (!a) return;
    for (int s = 0; s < MCH_SITE_COUNT; s++) free(a->pert[s]);
    free(a->pooled);
    free(a->q_emb);
    free(a->q_ids);
    mch_hooks_free(a->hooks);
    mch_workspace_free(a->ws);
    mch_backward_free(a->bw);
    free(a);
}

mch_status mch_atp_create(mch_atp **out, const mch_model *m, const mch_patch_opts *opts, int max_T,
                          mch_err *err)
{
    const mch_config *c = &m->cfg;
    if (opts->sweeps & ~(unsigned)(MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS))
        return mch_fail(err, MCH_ERR_ARG,
                        "attribution patching estimates the heads and blocks sweeps only, not "
                        "head-pos (sweeps 0x%x)",
                        opts->sweeps);
    if (max_T < 1 || max_T > c->max_pos)
        return mch_fail(err, MCH_ERR_ARG, "max_T %d outside 1..%d (max_position_embeddings)", max_T,
                        c->max_pos);
    mch_atp *a = calloc(1, sizeof *a);
    if (!a) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    a->m = m;
    a->o = *opts;
    if (a->o.min_delta <= 0) a->o.min_delta = 1e-3;
    a->max_T = max_T;
    a->bi = c->head == MCH_HEAD_NONE;
    mch_err berr = {0};
    mch_status rc = mch_backward_create(&a->bw, m, max_T, opts->pooling, &berr);
    if (rc) {
        mch_atp_free(a);
        if (rc == MCH_ERR_NOMEM) return mch_fail(err, rc, "%s", berr.msg);
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "attribution patching needs a backward pass, which model type '%s' (%s) "
                        "lacks: %s",
                        c->model_type, c->architecture, berr.msg);
    }
    size_t L = (size_t)c->L;
    int ok = (a->ws = mch_workspace_create(m, c->max_pos, c->max_pos)) != NULL &&
             (a->hooks = mch_hooks_create(c->L)) != NULL &&
             (a->pooled = malloc((size_t)c->C * sizeof(float))) != NULL &&
             (a->q_emb = malloc((size_t)c->C * sizeof(float))) != NULL &&
             (a->q_ids = malloc((size_t)c->max_pos * sizeof *a->q_ids)) != NULL;
    for (size_t i = 0; ok && i < sizeof kept / sizeof kept[0]; i++)
        ok =
            (a->pert[kept[i]] = mch_alloc_large(L * plane_max(a, kept[i]) * sizeof(float))) != NULL;
    if (!ok) {
        mch_atp_free(a);
        return mch_fail(err, MCH_ERR_NOMEM,
                        "out of memory sizing attribution patching for %d tokens", max_T);
    }
    for (size_t i = 0; !rc && i < sizeof kept / sizeof kept[0]; i++) {
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

/* The query's vector into a->q_emb, computed again only when the query's ids change. */
static mch_status query_vector(mch_atp *a, const mch_patch_pair *pair, mch_err *err)
{
    int Tq = pair->Tq;
    if (!pair->query_ids || Tq < 1)
        return mch_fail(err, MCH_ERR_ARG, "a bi-encoder pair needs the query's token ids");
    if (Tq > a->m->cfg.max_pos)
        return mch_fail(err, MCH_ERR_ARG, "query of %d tokens; max_position_embeddings is %d", Tq,
                        a->m->cfg.max_pos);
    size_t bytes = (size_t)Tq * sizeof *a->q_ids;
    if (a->q_T == Tq && !memcmp(a->q_ids, pair->query_ids, bytes)) return MCH_OK;
    a->q_T = 0;
    mch_batch bt = {1, Tq, pair->query_ids, NULL, &Tq};
    mch_forward_opts fo = {NULL, 0, NULL, a->o.pooling};
    mch_forward_out fout = {NULL, NULL, a->q_emb};
    mch_status rc = mch_forward(a->m, a->ws, &bt, &fo, &fout, err);
    if (rc) return rc;
    memcpy(a->q_ids, pair->query_ids, bytes);
    a->q_T = Tq;
    return MCH_OK;
}

/* The perturbed input's forward, its activations captured; *score as the backward's. */
static mch_status perturbed_run(mch_atp *a, const mch_patch_pair *pair, float *score, mch_err *err)
{
    int T = pair->T;
    mch_batch bt = {1, T, pair->ids_perturbed, pair->token_types, &T};
    mch_forward_opts fo = {a->hooks, 0, NULL, a->o.pooling};
    mch_forward_out fout = {a->bi ? NULL : score, NULL, a->bi ? a->pooled : NULL};
    mch_status rc = mch_forward(a->m, a->ws, &bt, &fo, &fout, err);
    if (rc || !a->bi) return rc;
    double dot = 0;
    for (int i = 0; i < a->m->cfg.C; i++) dot += (double)a->q_emb[i] * a->pooled[i];
    *score = (float)dot;
    return MCH_OK;
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

static void estimate_heads(const mch_atp *a, mch_atp_method method, mch_patch_result *res)
{
    const mch_config *c = &a->m->cfg;
    int T = a->T, NH = c->NH, HS = c->HS, C = c->C;
    size_t TT = (size_t)T * T;
    for (int l = 0; l < c->L; l++) {
        const float *pz = mch_atp_activation(a, 1, MCH_SITE_Z, l);
        const float *bz = mch_atp_activation(a, 0, MCH_SITE_Z, l);
        const float *gz = mch_atp_grad(a, MCH_SITE_Z, l);
        const float *pv = mch_atp_activation(a, 1, MCH_SITE_V, l);
        const float *bv = mch_atp_activation(a, 0, MCH_SITE_V, l);
        const float *gv = mch_atp_grad(a, MCH_SITE_V, l);
        const float *pA = mch_atp_activation(a, 1, MCH_SITE_PATTERN, l);
        const float *bA = mch_atp_activation(a, 0, MCH_SITE_PATTERN, l);
        const float *gA = mch_atp_grad(a, MCH_SITE_PATTERN, l);
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

static void estimate_blocks(const mch_atp *a, mch_patch_result *res)
{
    int T = a->T, C = a->m->cfg.C, L = a->m->cfg.L;
    for (int k = 0; k < MCH_BLOCK_COUNT; k++)
        for (int l = 0; l < L; l++) {
            const float *ap = mch_atp_activation(a, 1, block_sites[k], l);
            const float *ab = mch_atp_activation(a, 0, block_sites[k], l);
            const float *g = mch_atp_grad(a, block_sites[k], l);
            for (int t = 0; t < T; t++) {
                size_t row = (size_t)t * C;
                int same = !memcmp(ap + row, ab + row, (size_t)C * sizeof(float));
                double s = same ? 0.0 : change_dot(ap + row, ab + row, g + row, 1, C, 0);
                store(res->blocks_scores, res->blocks, ((size_t)k * L + l) * T + t, s, res);
                res->patches++;
                res->forwards_saved += same;
            }
        }
}

mch_status mch_atp_run(mch_atp *a, const mch_patch_pair *pair, mch_atp_method method,
                       mch_patch_result *res, mch_err *err)
{
    res->skipped = 0;
    res->skip_reason[0] = 0;
    res->patches = res->forwards_saved = 0;
    a->T = 0;
    if (pair->T < 1 || pair->T > a->max_T)
        return mch_fail(err, MCH_ERR_ARG,
                        "pair of %d tokens; this attribution patching context holds 1..%d", pair->T,
                        a->max_T);
    if (method != MCH_ATP_LINEAR && method != MCH_ATP_QK)
        return mch_fail(err, MCH_ERR_ARG, "unknown attribution patching method %d", (int)method);
    mch_status rc;
    if (a->bi && (rc = query_vector(a, pair, err))) return rc;
    a->qk = method == MCH_ATP_QK;
    float sp = 0, sb = 0;
    if ((rc = perturbed_run(a, pair, &sp, err)) ||
        (rc = mch_backward_run(a->bw, pair->T, pair->ids_baseline, pair->token_types,
                               a->bi ? a->q_emb : NULL, &sb, err)))
        return rc;
    res->score_baseline = sb;
    res->score_perturbed = sp;
    if (!isfinite(res->score_baseline) || !isfinite(res->score_perturbed))
        return mch_fail(err, MCH_ERR_FORMAT,
                        "non-finite score (baseline %g, perturbed %g): the model's weights or "
                        "activations are not finite (mechir score --check-weights)",
                        res->score_baseline, res->score_perturbed);
    a->T = pair->T;
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
    if (a->o.sweeps & MCH_SWEEP_HEADS) estimate_heads(a, method, res);
    if (a->o.sweeps & MCH_SWEEP_BLOCKS) estimate_blocks(a, res);
    return MCH_OK;
}

const float *mch_atp_activation(const mch_atp *a, int run, mch_site site, int layer)
{
    if (!a->T || site < 0 || site >= MCH_SITE_COUNT || !a->pert[site] || layer < 0 ||
        layer >= a->m->cfg.L)
        return NULL;
    if (run == 0) return mch_backward_activation(a->bw, site, layer);
    if (!a->qk && (site == MCH_SITE_PATTERN || site == MCH_SITE_V)) return NULL; /* not copied */
    return a->pert[site] + (size_t)layer * plane_max(a, site);
}

const float *mch_atp_grad(const mch_atp *a, mch_site site, int layer)
{
    return a->T ? mch_backward_grad(a->bw, site, layer) : NULL;
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
