/* Hooked encoder forward. Activations are packed (N, C) rows, sequence b at rows
 * off[b] .. off[b+1]; attention runs per sequence and head on (T_b, T_b) blocks, so padding is
 * never computed and a sequence's numbers are the same alone or in a batch. */
#include "encoder.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct {
    mch_hook_fn fn;
    void *user;
} hook_entry;

struct mch_hooks {
    int L;
    int active;           /* any callback registered */
    unsigned char *count; /* (SITE_COUNT, L) */
    hook_entry *e;        /* (SITE_COUNT, L, PER_POINT) */
};

mch_hooks *mch_hooks_create(int L)
{
    mch_hooks *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->L = L;
    h->count = calloc((size_t)MCH_SITE_COUNT * L, 1);
    h->e = calloc((size_t)MCH_SITE_COUNT * L * MCH_HOOKS_PER_POINT, sizeof *h->e);
    if (!h->count || !h->e) {
        mch_hooks_free(h);
        return NULL;
    }
    return h;
}

void mch_hooks_free(mch_hooks *h)
{
    if (!h) return;
    free(h->count);
    free(h->e);
    free(h);
}

void mch_hooks_clear(mch_hooks *h)
{
    memset(h->count, 0, (size_t)MCH_SITE_COUNT * h->L);
    h->active = 0;
}

mch_status mch_hooks_add(mch_hooks *h, mch_site site, int layer, mch_hook_fn fn, void *user,
                         mch_err *err)
{
    char name[64];
    if (site < 0 || site >= MCH_SITE_COUNT || layer < 0 || layer >= h->L)
        return mch_fail(err, MCH_ERR_ARG, "hook site %d layer %d is out of range", (int)site,
                        layer);
    size_t p = (size_t)site * h->L + layer;
    if (h->count[p] >= MCH_HOOKS_PER_POINT)
        return mch_fail(err, MCH_ERR_ARG, "hook '%s' already has %d callbacks",
                        mch_hook_name(site, layer, name, sizeof name), MCH_HOOKS_PER_POINT);
    h->e[p * MCH_HOOKS_PER_POINT + h->count[p]++] = (hook_entry){fn, user};
    h->active = 1;
    return MCH_OK;
}

mch_status mch_hooks_add_name(mch_hooks *h, const char *name, mch_hook_fn fn, void *user,
                              mch_err *err)
{
    mch_site site = MCH_SITE_FULL_EMBED;
    int layer = 0;
    mch_status rc = mch_hook_parse(name, h->L, &site, &layer, err);
    return rc ? rc : mch_hooks_add(h, site, layer, fn, user, err);
}

struct mch_workspace {
    int max_tokens, max_T;
    size_t bytes;
    int *off;             /* (max_tokens + 1) */
    float *x;             /* (N, C) residual stream */
    float *q, *k, *v, *z; /* (N, C) */
    float *mid;           /* (N, C) resid_mid, then resid_post: aliases q (free after attention) */
    float *proj;          /* (N, C) attn_out, then mlp_out: aliases k */
    float *ff;            /* (N, I) */
    float *emb;           /* (N, E) embeddings before ELECTRA's projection: aliases ff if I >= E */
    float *att;           /* (NH, max_T, max_T) one sequence's scores, then its pattern */
    float *result;        /* (max_T, NH, C) one sequence's hook_result: made by the first forward
                             with a hook there (a buffer most runs never need) */
    float *head, *head2;  /* (B, C) pooled rows: alias q and k (free once the layers ran) */
    float *logits;        /* (max_tokens, num_labels) */
    float *own_emb;       /* emb when it cannot alias ff */
};

mch_workspace *mch_workspace_create(const mch_model *m, int max_tokens, int max_T)
{
    const mch_config *c = &m->cfg;
    if (max_tokens < 1 || max_T < 1 || m->t5) return NULL;
    mch_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->max_tokens = max_tokens;
    ws->max_T = max_T;
    size_t N = (size_t)max_tokens, C = (size_t)c->C;
    size_t labels = c->num_labels > 0 ? (size_t)c->num_labels : 1;
    int emb_alias = c->FF >= c->E;
    struct {
        float **p;
        size_t n;
    } bufs[] = {
        {&ws->x, N * C},
        {&ws->q, N * C},
        {&ws->k, N * C},
        {&ws->v, N * C},
        {&ws->z, N * C},
        {&ws->ff, N * (size_t)c->FF},
        {&ws->att, (size_t)c->NH * max_T * max_T},
        {&ws->logits, N * labels},
        {&ws->own_emb, emb_alias ? 0 : N * (size_t)c->E},
    };
    int ok = (ws->off = malloc((N + 1) * sizeof *ws->off)) != NULL;
    ws->bytes = (N + 1) * sizeof *ws->off;
    for (size_t i = 0; ok && i < sizeof bufs / sizeof bufs[0]; i++) {
        if (!bufs[i].n) continue;
        ok = (*bufs[i].p = mch_alloc_large(bufs[i].n * sizeof(float))) != NULL;
        ws->bytes += bufs[i].n * sizeof(float);
    }
    if (!ok) {
        mch_workspace_free(ws);
        return NULL;
    }
    ws->mid = ws->q;
    ws->proj = ws->k;
    ws->head = ws->q;
    ws->head2 = ws->k;
    ws->emb = emb_alias ? ws->ff : ws->own_emb;
    return ws;
}

void mch_workspace_free(mch_workspace *ws)
{
    if (!ws) return;
    float *bufs[] = {ws->x,  ws->q,   ws->k,      ws->v,       ws->z,
                     ws->ff, ws->att, ws->logits, ws->own_emb, ws->result};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(ws->off);
    free(ws);
}

size_t mch_workspace_bytes(const mch_workspace *ws)
{
    return ws->bytes;
}

const int *mch_workspace_offsets(const mch_workspace *ws)
{
    return ws->off;
}

const float *mch_workspace_hidden(const mch_workspace *ws)
{
    return ws->x;
}

size_t mch_act_view_floats(const mch_act_view *v)
{
    switch (v->site) {
    case MCH_SITE_PATTERN:
    case MCH_SITE_ATTN_SCORES:
        return (size_t)v->NH * v->T * v->T;
    case MCH_SITE_RESULT:
        return (size_t)v->T * v->NH * v->C;
    case MCH_SITE_MLP_PRE:
    case MCH_SITE_MLP_POST:
        return (size_t)v->T * v->FF;
    default:
        return (size_t)v->T * v->C;
    }
}

static int has_hooks(const mch_hooks *h, mch_site site, int layer)
{
    return h && h->active && h->count[(size_t)site * h->L + layer];
}

/* Runs the callbacks at (site, layer) on every sequence of a packed buffer of (N, row) rows (row
 * = C, or FF for the MLP's sites), or on one sequence's block (pattern, scores, result) when
 * seq >= 0. */
static mch_status run_hooks(const mch_hooks *h, const mch_model *m, const mch_workspace *ws, int B,
                            mch_site site, int layer, float *data, int seq, mch_err *err)
{
    if (!has_hooks(h, site, layer)) return MCH_OK;
    size_t p = (size_t)site * h->L + layer;
    int n = h->count[p];
    const mch_config *c = &m->cfg;
    size_t row = (size_t)(site == MCH_SITE_MLP_PRE || site == MCH_SITE_MLP_POST ? c->FF : c->C);
    int b0 = seq >= 0 ? seq : 0, b1 = seq >= 0 ? seq + 1 : B;
    for (int b = b0; b < b1; b++) {
        mch_act_view v = {site, layer, b,    ws->off[b + 1] - ws->off[b], c->NH, c->HS,
                          c->C, NULL,  c->FF};
        v.data = seq >= 0 ? data : data + (size_t)ws->off[b] * row;
        for (int i = 0; i < n; i++) {
            const hook_entry *e = &h->e[p * MCH_HOOKS_PER_POINT + i];
            if (e->fn(e->user, &v) != 0) {
                char name[64];
                return mch_fail(err, MCH_ERR_ARG, "hook '%s' stopped the forward at sequence %d",
                                mch_hook_name(site, layer, name, sizeof name), b);
            }
        }
    }
    return MCH_OK;
}

static void activation_forward(float *x, size_t n, mch_activation act)
{
    switch (act) {
    case MCH_ACT_GELU_ERF:
        mch_gelu_erf_forward(x, n);
        break;
    case MCH_ACT_GELU_TANH:
        mch_gelu_tanh_forward(x, n);
        break;
    case MCH_ACT_RELU:
        mch_relu_forward(x, n);
        break;
    }
}

/* x (N, C) <- LayerNorm(word + position + token type) [-> ELECTRA projection]. */
static void embed_forward(const mch_model *m, mch_workspace *ws, const mch_batch *bt)
{
    const mch_config *c = &m->cfg;
    int E = c->E;
    float *dst = m->proj_w ? ws->emb : ws->x;
    for (int b = 0; b < bt->B; b++) {
        int pos = c->pos_offset; /* RoBERTa: pads (pad_id) keep position pad_id, others count on */
        for (int t = 0; t < bt->lengths[b]; t++) {
            float *row = dst + (size_t)(ws->off[b] + t) * E;
            int32_t id = bt->ids[(size_t)b * bt->T + t];
            int32_t tt = bt->types ? bt->types[(size_t)b * bt->T + t] : 0;
            int p = c->pos_offset && id == c->pad_id ? c->pad_id : c->pos_offset ? pos++ : t;
            const float *we = m->wte + (size_t)id * E, *pe = m->wpe + (size_t)p * E;
            for (int e = 0; e < E; e++) row[e] = we[e] + pe[e];
            if (m->wtt) {
                const float *te = m->wtt + (size_t)tt * E;
                for (int e = 0; e < E; e++) row[e] += te[e];
            }
        }
    }
    int N = ws->off[bt->B];
    mch_layernorm_forward(dst, dst, m->emb_ln_g, m->emb_ln_b, N, E, c->eps);
    if (m->proj_w) mch_linear_forward(ws->x, c->C, ws->emb, E, m->proj_w, m->proj_b, N, E, c->C);
}

/* Self-attention of one layer: z (N, C) from q, k, v, one (T_b, T_b) block per sequence and
 * head. The scores hook sees each sequence's (NH, T_b, T_b) scores before the softmax, the
 * pattern hook its weights before they are used. A sequence's keys are its own T_b tokens:
 * padding is never computed, so no score is masked (TransformerLens adds a large negative
 * number to the padding keys of a padded batch; a sequence has none here). */
static mch_status attention_forward(const mch_model *m, mch_workspace *ws, int B, int layer,
                                    const mch_hooks *hooks, mch_err *err)
{
    const mch_config *c = &m->cfg;
    int C = c->C, HS = c->HS;
    for (int b = 0; b < B; b++) {
        int o = ws->off[b], T = ws->off[b + 1] - o;
        mch_attn_scores_forward(ws->att, ws->q + (size_t)o * C, ws->k + (size_t)o * C, C, T, c->NH,
                                HS);
        mch_status rc = run_hooks(hooks, m, ws, B, MCH_SITE_ATTN_SCORES, layer, ws->att, b, err);
        if (rc) return rc;
        mch_softmax_rows(ws->att, c->NH * T, T, T);
        rc = run_hooks(hooks, m, ws, B, MCH_SITE_PATTERN, layer, ws->att, b, err);
        if (rc) return rc;
        for (int h = 0; h < c->NH; h++) {
            const float *att = ws->att + (size_t)h * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, att, T,
                        ws->v + (size_t)o * C + h * HS, C, 0.0f, ws->z + (size_t)o * C + h * HS, C);
        }
    }
    return MCH_OK;
}

/* attn_out (N, C) from z. With a hook at hook_result, as TransformerLens with use_attn_result:
 * each sequence's per-head outputs (T_b, NH, C) go through the hook, then attn_out = their sum
 * over heads + b_O (so an overwritten head changes attn_out; the sum's rounding differs from the
 * one sgemm of the plain path by float rounding only). */
static mch_status attn_out_forward(const mch_model *m, mch_workspace *ws, int B, int l,
                                   const mch_hooks *hk, mch_err *err)
{
    const mch_config *c = &m->cfg;
    const mch_layer_weights *w = &m->layers[l];
    int C = c->C;
    if (!has_hooks(hk, MCH_SITE_RESULT, l)) {
        mch_linear_forward(ws->proj, C, ws->z, C, w->o_w, w->o_b, ws->off[B], C, C);
        return MCH_OK;
    }
    if (!ws->result &&
        !(ws->result = mch_alloc_large((size_t)ws->max_T * c->NH * C * sizeof(float))))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory for hook_result (%d x %d x %d floats)",
                        ws->max_T, c->NH, C);
    for (int b = 0; b < B; b++) {
        int o = ws->off[b], T = ws->off[b + 1] - o;
        mch_attn_result_forward(ws->result, ws->z + (size_t)o * C, C, w->o_w, T, c->NH, c->HS, C);
        mch_status rc = run_hooks(hk, m, ws, B, MCH_SITE_RESULT, l, ws->result, b, err);
        if (rc) return rc;
        mch_attn_result_sum(ws->proj + (size_t)o * C, ws->result, w->o_b, T, c->NH, C);
    }
    return MCH_OK;
}

static mch_status layer_forward(const mch_model *m, mch_workspace *ws, int B, int l,
                                const mch_hooks *hk, mch_err *err)
{
    const mch_config *c = &m->cfg;
    const mch_layer_weights *w = &m->layers[l];
    int N = ws->off[B], C = c->C;
    size_t NC = (size_t)N * C;
    mch_status rc;
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_RESID_PRE, l, ws->x, -1, err))) return rc;
    mch_linear_forward(ws->q, C, ws->x, C, w->q_w, w->q_b, N, C, C);
    mch_linear_forward(ws->k, C, ws->x, C, w->k_w, w->k_b, N, C, C);
    mch_linear_forward(ws->v, C, ws->x, C, w->v_w, w->v_b, N, C, C);
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_Q, l, ws->q, -1, err)) ||
        (rc = run_hooks(hk, m, ws, B, MCH_SITE_K, l, ws->k, -1, err)) ||
        (rc = run_hooks(hk, m, ws, B, MCH_SITE_V, l, ws->v, -1, err)) ||
        (rc = attention_forward(m, ws, B, l, hk, err)) ||
        (rc = run_hooks(hk, m, ws, B, MCH_SITE_Z, l, ws->z, -1, err)) ||
        (rc = attn_out_forward(m, ws, B, l, hk, err)) ||
        (rc = run_hooks(hk, m, ws, B, MCH_SITE_ATTN_OUT, l, ws->proj, -1, err)))
        return rc;
    mch_add_forward(ws->mid, ws->x, ws->proj, NC);
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_RESID_MID, l, ws->mid, -1, err))) return rc;
    /* Post-LN block: the MLP's residual is the normalised resid_mid. */
    mch_layernorm_forward(ws->x, ws->mid, w->ln1_g, w->ln1_b, N, C, c->eps);
    mch_linear_forward(ws->ff, c->FF, ws->x, C, w->ff1_w, w->ff1_b, N, C, c->FF);
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_MLP_PRE, l, ws->ff, -1, err))) return rc;
    activation_forward(ws->ff, (size_t)N * c->FF, c->act);
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_MLP_POST, l, ws->ff, -1, err))) return rc;
    mch_linear_forward(ws->proj, C, ws->ff, c->FF, w->ff2_w, w->ff2_b, N, c->FF, C);
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_MLP_OUT, l, ws->proj, -1, err))) return rc;
    mch_add_forward(ws->mid, ws->x, ws->proj, NC);
    if ((rc = run_hooks(hk, m, ws, B, MCH_SITE_RESID_POST, l, ws->mid, -1, err))) return rc;
    mch_layernorm_forward(ws->x, ws->mid, w->ln2_g, w->ln2_b, N, C, c->eps);
    return run_hooks(hk, m, ws, B, MCH_SITE_NORM_RESID_POST, l, ws->x, -1, err);
}

static mch_status check_batch(const mch_model *m, const mch_workspace *ws, const mch_batch *bt,
                              const mch_forward_opts *o, mch_err *err)
{
    const mch_config *c = &m->cfg;
    if (bt->B < 1) return mch_fail(err, MCH_ERR_ARG, "empty batch");
    if (o->start_layer < 0 || o->start_layer >= c->L)
        return mch_fail(err, MCH_ERR_ARG, "start layer %d outside 0..%d", o->start_layer, c->L - 1);
    if (o->start_layer > 0 && !o->resid_pre)
        return mch_fail(err, MCH_ERR_ARG, "start layer %d needs a resid_pre", o->start_layer);
    long total = 0;
    for (int b = 0; b < bt->B; b++) {
        int T = bt->lengths[b];
        int lim = bt->T < c->max_tokens ? bt->T : c->max_tokens;
        if (T < 1 || T > lim)
            return mch_fail(err, MCH_ERR_ARG,
                            "sequence %d has %d tokens; allowed 1..%d (max_position_embeddings %d)",
                            b, T, lim, c->max_tokens);
        if (T > ws->max_T)
            return mch_fail(err, MCH_ERR_ARG, "sequence %d has %d tokens; workspace holds %d", b, T,
                            ws->max_T);
        total += T;
        for (int t = 0; t < T; t++) {
            int32_t id = bt->ids[(size_t)b * bt->T + t];
            if (id < 0 || id >= c->V)
                return mch_fail(err, MCH_ERR_ARG,
                                "sequence %d position %d: token id %d outside the vocabulary "
                                "(vocab_size %d)",
                                b, t, id, c->V);
            int32_t tt = bt->types ? bt->types[(size_t)b * bt->T + t] : 0;
            if (c->type_vocab > 0 && (tt < 0 || tt >= c->type_vocab))
                return mch_fail(err, MCH_ERR_ARG,
                                "sequence %d position %d: token type %d outside 0..%d", b, t, tt,
                                c->type_vocab - 1);
        }
    }
    if (total > ws->max_tokens)
        return mch_fail(err, MCH_ERR_ARG, "batch of %ld tokens; workspace holds %d", total,
                        ws->max_tokens);
    return MCH_OK;
}

void mch_head_forward(const mch_model *m, float *logits, float *tmp, const float *cls, int B)
{
    const mch_config *c = &m->cfg;
    int C = c->C;
    mch_linear_forward(tmp, C, cls, C, m->head_w, m->head_b, B, C, C);
    size_t n = (size_t)B * C;
    switch (c->head) {
    case MCH_HEAD_BERT_SEQCLS:
    case MCH_HEAD_ROBERTA_SEQCLS:
        mch_tanh_forward(tmp, n);
        break;
    case MCH_HEAD_DISTIL_SEQCLS:
        mch_relu_forward(tmp, n);
        break;
    case MCH_HEAD_ELECTRA_SEQCLS:
        mch_gelu_erf_forward(tmp, n);
        break;
    case MCH_HEAD_NONE:
    case MCH_HEAD_MONOT5: /* never here: mch_model_need_encoder refused it */
        break;
    }
    mch_linear_forward(logits, c->num_labels, tmp, C, m->cls_w, m->cls_b, B, C, c->num_labels);
}

/* logits (B, num_labels) from the CLS rows, as the model's classification head computes. */
static void head_forward(const mch_model *m, mch_workspace *ws, int B)
{
    int C = m->cfg.C;
    for (int b = 0; b < B; b++)
        memcpy(ws->head + (size_t)b * C, ws->x + (size_t)ws->off[b] * C, (size_t)C * sizeof(float));
    mch_head_forward(m, ws->logits, ws->head2, ws->head, B);
}

mch_status mch_forward(const mch_model *m, mch_workspace *ws, const mch_batch *bt,
                       const mch_forward_opts *opts, mch_forward_out *out, mch_err *err)
{
    static const mch_forward_opts defaults = {0};
    const mch_forward_opts *o = opts ? opts : &defaults;
    const mch_config *c = &m->cfg;
    mch_status rc = mch_model_need_encoder(m, "the hooked encoder forward", err);
    if (!rc) rc = check_batch(m, ws, bt, o, err);
    if (rc) return rc;
    if ((out->scores || out->logits) && c->head == MCH_HEAD_NONE)
        return mch_fail(err, MCH_ERR_ARG,
                        "%s: a bi-encoder (%s) has no classification head; ask for embeddings",
                        m->dir, c->architecture);
    ws->off[0] = 0;
    for (int b = 0; b < bt->B; b++) ws->off[b + 1] = ws->off[b] + bt->lengths[b];
    int N = ws->off[bt->B];
    if (o->start_layer == 0) {
        embed_forward(m, ws, bt);
        if ((rc = run_hooks(o->hooks, m, ws, bt->B, MCH_SITE_FULL_EMBED, 0, ws->x, -1, err)))
            return rc;
    } else {
        memcpy(ws->x, o->resid_pre, (size_t)N * c->C * sizeof(float));
    }
    for (int l = o->start_layer; l < c->L; l++)
        if ((rc = layer_forward(m, ws, bt->B, l, o->hooks, err))) return rc;

    if (out->scores || out->logits) {
        head_forward(m, ws, bt->B);
        for (int b = 0; b < bt->B; b++) {
            const float *lg = ws->logits + (size_t)b * c->num_labels;
            if (out->logits)
                memcpy(out->logits + (size_t)b * c->num_labels, lg,
                       (size_t)c->num_labels * sizeof(float));
            if (out->scores) out->scores[b] = mch_logits_score(c, lg);
        }
    }
    if (out->emb) {
        for (int b = 0; b < bt->B; b++) {
            float *e = out->emb + (size_t)b * c->C;
            const float *rows = ws->x + (size_t)ws->off[b] * c->C;
            int T = ws->off[b + 1] - ws->off[b];
            if (o->pooling == MCH_POOL_CLS) {
                memcpy(e, rows, (size_t)c->C * sizeof(float));
                continue;
            }
            for (int i = 0; i < c->C; i++) {
                double s = 0;
                for (int t = 0; t < T; t++) s += rows[(size_t)t * c->C + i];
                e[i] = (float)(s / T);
            }
        }
    }
    return MCH_OK;
}
