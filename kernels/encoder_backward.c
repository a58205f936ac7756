/* The encoder's backward pass (see encoder_backward.h). Buffers are (L, plane) per site, sized
 * once for max_B sequences of max_T tokens. A layer's plane holds the run's sequences packed as
 * mch_forward packs them: (N, C) rows with sequence s at rows off[s] .. off[s+1], or the
 * patterns (NH, T_s, T_s) one after the other from poff[s]. So the linears, LayerNorms and
 * activations run once over N = sum T_s rows (one sgemm a weight) and attention per sequence.
 *
 * Save or recompute: the forward is mch_forward itself with capture hooks (as the patcher's full
 * runs), so the exact engine's forward stays as it is. The hooks copy the sites the backward and
 * attribution patching read (resid_pre, q, k, v, pattern, z, attn_out, resid_mid, mlp_out,
 * resid_post: nine (T, C) planes and the (NH, T, T) pattern a layer, little beside the sgemm
 * work). What no hook sees is recomputed in the backward: LN1's output h1 and the MLP's
 * pre-activation u = h1 W1^T + b1, one (T, C) x (C, FF) sgemm a layer (a third of a layer's
 * forward FLOPs). Saving u instead would need a second forward in encoder.c (duplicated layer
 * code) or a branch in the hot one. */
#include "encoder_backward.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_backward.h"

/* Sites whose activation the forward keeps (all but the aliases, see plane_of). */
static const mch_site kept[] = {MCH_SITE_RESID_PRE, MCH_SITE_Q,         MCH_SITE_K,
                                MCH_SITE_V,         MCH_SITE_PATTERN,   MCH_SITE_Z,
                                MCH_SITE_ATTN_OUT,  MCH_SITE_RESID_MID, MCH_SITE_MLP_OUT,
                                MCH_SITE_RESID_POST};
/* Sites with a gradient buffer of their own. */
static const mch_site graded[] = {MCH_SITE_RESID_PRE, MCH_SITE_Q,       MCH_SITE_K,
                                  MCH_SITE_V,         MCH_SITE_PATTERN, MCH_SITE_Z,
                                  MCH_SITE_ATTN_OUT,  MCH_SITE_MLP_OUT};

typedef struct {
    struct mch_backward *b;
    mch_site site;
} capture_ctx;

struct mch_backward {
    const mch_model *m;
    mch_pooling pooling;
    int max_B, max_T;
    int B;        /* sequences of the last successful run, 0 if none */
    int *off;     /* (max_B + 1) first row of each sequence in an (N, C) plane */
    size_t *poff; /* (max_B + 1) first float of each sequence's (NH, T, T) in a pattern plane */
    mch_workspace *ws;
    mch_hooks *hooks;
    capture_ctx caps[MCH_SITE_COUNT];
    float *act[MCH_SITE_COUNT];  /* (L, plane) kept activations, NULL for the others */
    float *grad[MCH_SITE_COUNT]; /* (L, plane) gradients, NULL for aliases */
    float *hidden, *dtop;        /* (N, C) final hidden state and its gradient */
    float *h1, *dh1;             /* (N, C) LN1 output and its gradient */
    float *u, *du;               /* (N, FF) MLP pre-activation and its gradient */
    float *dpre;                 /* (max_T, max_T) one head's pre-softmax gradient */
    float *emb;                  /* (max_B, C) pooled vectors of a bi-encoder's run */
    float *pre, *demb;           /* (C) head scratch; a pooled vector's gradient */
};

/* Floats one layer of a site's buffer reserves. */
static size_t plane_max(const mch_backward *b, mch_site site)
{
    const mch_config *c = &b->m->cfg;
    size_t T = (size_t)b->max_T, B = (size_t)b->max_B;
    return site == MCH_SITE_PATTERN ? B * c->NH * T * T : B * T * (size_t)c->C;
}

static float *at(const mch_backward *b, float *const *bufs, mch_site site, int l)
{
    return bufs[site] + (size_t)l * plane_max(b, site);
}

/* Sequence s's part of the plane of (site, l) in bufs. */
static float *at_seq(const mch_backward *b, float *const *bufs, mch_site site, int l, int s)
{
    size_t o = site == MCH_SITE_PATTERN ? b->poff[s] : (size_t)b->off[s] * b->m->cfg.C;
    return at(b, bufs, site, l) + o;
}

static int capture(void *user, const mch_act_view *v)
{
    capture_ctx *cc = user;
    memcpy(at_seq(cc->b, cc->b->act, cc->site, v->layer, v->seq), v->data,
           mch_site_floats(&cc->b->m->cfg, cc->site, v->T) * sizeof(float));
    return 0;
}

void mch_backward_free(mch_backward *b)
{
    if (!b) return;
    for (int s = 0; s < MCH_SITE_COUNT; s++) {
        free(b->act[s]);
        free(b->grad[s]);
    }
    float *bufs[] = {b->hidden, b->dtop, b->h1,  b->dh1, b->u,
                     b->du,     b->dpre, b->emb, b->pre, b->demb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(b->off);
    free(b->poff);
    mch_hooks_free(b->hooks);
    mch_workspace_free(b->ws);
    free(b);
}

mch_status mch_backward_create(mch_backward **out, const mch_model *m, int max_T,
                               mch_pooling pooling, mch_err *err)
{
    return mch_backward_create_batch(out, m, 1, max_T, pooling, err);
}

mch_status mch_backward_create_batch(mch_backward **out, const mch_model *m, int max_B, int max_T,
                                     mch_pooling pooling, mch_err *err)
{
    const mch_config *c = &m->cfg;
    mch_status rc0 = mch_model_need_encoder(m, "the backward pass", err);
    if (rc0) return rc0;
    if (max_T < 1 || max_T > c->max_tokens)
        return mch_fail(err, MCH_ERR_ARG, "backward for %d tokens; allowed 1..%d", max_T,
                        c->max_tokens);
    if (max_B < 1 || max_B > MCH_BACKWARD_MAX_BATCH)
        return mch_fail(err, MCH_ERR_ARG, "backward for %d sequences; allowed 1..%d", max_B,
                        MCH_BACKWARD_MAX_BATCH);
    mch_backward *b = calloc(1, sizeof *b);
    if (!b) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    b->m = m;
    b->pooling = pooling;
    b->max_B = max_B;
    b->max_T = max_T;
    size_t N = (size_t)max_B * max_T, L = (size_t)c->L;
    size_t TC = N * c->C, TF = N * c->FF;
    int ok = (b->ws = mch_workspace_create(m, (int)N, max_T)) != NULL &&
             (b->hooks = mch_hooks_create(c->L)) != NULL &&
             (b->off = calloc((size_t)max_B + 1, sizeof *b->off)) != NULL &&
             (b->poff = calloc((size_t)max_B + 1, sizeof *b->poff)) != NULL;
    for (size_t i = 0; ok && i < sizeof kept / sizeof kept[0]; i++)
        ok = (b->act[kept[i]] = mch_alloc_large(L * plane_max(b, kept[i]) * sizeof(float))) != NULL;
    for (size_t i = 0; ok && i < sizeof graded / sizeof graded[0]; i++)
        ok = (b->grad[graded[i]] = mch_alloc_large(L * plane_max(b, graded[i]) * sizeof(float))) !=
             NULL;
    struct {
        float **p;
        size_t n;
    } bufs[] = {{&b->hidden, TC},
                {&b->dtop, TC},
                {&b->h1, TC},
                {&b->dh1, TC},
                {&b->u, TF},
                {&b->du, TF},
                {&b->dpre, (size_t)max_T * max_T},
                {&b->emb, (size_t)max_B * c->C},
                {&b->pre, (size_t)c->C},
                {&b->demb, (size_t)c->C}};
    for (size_t i = 0; ok && i < sizeof bufs / sizeof bufs[0]; i++)
        ok = (*bufs[i].p = mch_alloc_large(bufs[i].n * sizeof(float))) != NULL;
    if (!ok) {
        mch_backward_free(b);
        return mch_fail(err, MCH_ERR_NOMEM,
                        "out of memory for the backward of %d sequences of %d tokens", max_B,
                        max_T);
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        b->caps[kept[i]] = (capture_ctx){b, kept[i]};
        for (int l = 0; l < c->L; l++) {
            mch_status rc = mch_hooks_add(b->hooks, kept[i], l, capture, &b->caps[kept[i]], err);
            if (rc) {
                mch_backward_free(b);
                return rc;
            }
        }
    }
    *out = b;
    return MCH_OK;
}

void mch_head_backward(const mch_model *m, float *dcls, float *pre, float *dpre, const float *cls,
                       int label)
{
    const mch_config *c = &m->cfg;
    int C = c->C;
    assert(c->head != MCH_HEAD_NONE && label >= 0 && label < c->num_labels);
    mch_linear_forward(pre, C, cls, C, m->head_w, m->head_b, 1, C, C);
    /* d logits[label] / d act = row label of the classifier's weight. */
    memcpy(dpre, m->cls_w + (size_t)label * C, (size_t)C * sizeof *dpre);
    switch (c->head) {
    case MCH_HEAD_BERT_SEQCLS:
    case MCH_HEAD_ROBERTA_SEQCLS:
        mch_tanh_backward(dpre, dpre, pre, (size_t)C);
        break;
    case MCH_HEAD_DISTIL_SEQCLS:
        mch_relu_backward(dpre, dpre, pre, (size_t)C);
        break;
    case MCH_HEAD_ELECTRA_SEQCLS:
        mch_gelu_erf_backward(dpre, dpre, pre, (size_t)C);
        break;
    case MCH_HEAD_NONE:
    case MCH_HEAD_MONOT5: /* never here: mch_model_need_encoder refused it */
        break;
    }
    mch_linear_backward(dcls, C, dpre, C, m->head_w, 1, C, C);
}

static void activation_backward(float *dinp, const float *inp, size_t n, mch_activation act)
{
    switch (act) {
    case MCH_ACT_GELU_ERF:
        mch_gelu_erf_backward(dinp, dinp, inp, n);
        break;
    case MCH_ACT_GELU_TANH:
        mch_gelu_tanh_backward(dinp, dinp, inp, n);
        break;
    case MCH_ACT_RELU:
        mch_relu_backward(dinp, dinp, inp, n);
        break;
    }
}

/* Layer l backwards: from dout (N, C), the gradient of its output x' = LN2(mid2), to the
 * gradients of every site of the layer, ending with resid_pre (its input). Row-wise ops and the
 * linears run over all N packed rows at once; attention per sequence. */
static void layer_backward(mch_backward *b, int l, const float *dout)
{
    const mch_config *c = &b->m->cfg;
    const mch_layer_weights *w = &b->m->layers[l];
    int N = b->off[b->B], C = c->C, FF = c->FF;
    size_t NC = (size_t)N * C;
    float *dmid2 = at(b, b->grad, MCH_SITE_MLP_OUT, l);
    float *dmid1 = at(b, b->grad, MCH_SITE_ATTN_OUT, l);
    float *dz = at(b, b->grad, MCH_SITE_Z, l), *dx = at(b, b->grad, MCH_SITE_RESID_PRE, l);
    float *dq = at(b, b->grad, MCH_SITE_Q, l), *dk = at(b, b->grad, MCH_SITE_K, l);
    float *dv = at(b, b->grad, MCH_SITE_V, l);
    const float *mid1 = at(b, b->act, MCH_SITE_RESID_MID, l);

    /* x' = LN2(mid2), mid2 = h1 + mlp_out: g(mlp_out) = g(mid2). */
    memset(dmid2, 0, NC * sizeof(float));
    mch_layernorm_backward(dmid2, dout, at(b, b->act, MCH_SITE_RESID_POST, l), w->ln2_g, N, C,
                           c->eps);
    /* mlp_out = act(u) W2^T + b2, u = h1 W1^T + b1 (recomputed); h1 also feeds mid2. */
    mch_layernorm_forward(b->h1, mid1, w->ln1_g, w->ln1_b, N, C, c->eps);
    mch_linear_forward(b->u, FF, b->h1, C, w->ff1_w, w->ff1_b, N, C, FF);
    memset(b->du, 0, (size_t)N * FF * sizeof(float));
    mch_linear_backward(b->du, FF, dmid2, C, w->ff2_w, N, FF, C);
    activation_backward(b->du, b->u, (size_t)N * FF, c->act);
    memcpy(b->dh1, dmid2, NC * sizeof(float));
    mch_linear_backward(b->dh1, C, b->du, FF, w->ff1_w, N, C, FF);
    /* h1 = LN1(mid1), mid1 = x + attn_out: g(attn_out) = g(mid1). */
    memset(dmid1, 0, NC * sizeof(float));
    mch_layernorm_backward(dmid1, b->dh1, mid1, w->ln1_g, N, C, c->eps);
    /* attn_out = z Wo^T + bo. */
    memset(dz, 0, NC * sizeof(float));
    mch_linear_backward(dz, C, dmid1, C, w->o_w, N, C, C);
    memset(dq, 0, NC * sizeof(float));
    memset(dk, 0, NC * sizeof(float));
    memset(dv, 0, NC * sizeof(float));
    for (int s = 0; s < b->B; s++) {
        size_t o = (size_t)b->off[s] * C;
        mch_attention_backward(dq + o, dk + o, dv + o, at_seq(b, b->grad, MCH_SITE_PATTERN, l, s),
                               b->dpre, dz + o, at(b, b->act, MCH_SITE_Q, l) + o,
                               at(b, b->act, MCH_SITE_K, l) + o, at(b, b->act, MCH_SITE_V, l) + o,
                               at_seq(b, b->act, MCH_SITE_PATTERN, l, s), b->off[s + 1] - b->off[s],
                               c->NH, c->HS, C);
    }
    /* x feeds q, k, v and the residual of mid1. */
    memcpy(dx, dmid1, NC * sizeof(float));
    mch_linear_backward(dx, C, dq, C, w->q_w, N, C, C);
    mch_linear_backward(dx, C, dk, C, w->k_w, N, C, C);
    mch_linear_backward(dx, C, dv, C, w->v_w, N, C, C);
}

/* dtop (rows of sequence s) = d score_s / d hidden; a bi-encoder's score_s into scores[s]. */
static void top_backward(mch_backward *b, int s, const float *query_emb, float *scores)
{
    const mch_config *c = &b->m->cfg;
    int C = c->C, T = b->off[s + 1] - b->off[s];
    float *dtop = b->dtop + (size_t)b->off[s] * C;
    if (c->head != MCH_HEAD_NONE) {
        mch_head_backward(b->m, dtop, b->pre, b->demb, b->hidden + (size_t)b->off[s] * C,
                          c->num_labels == 1 ? 0 : 1);
        return;
    }
    const float *q = query_emb + (size_t)s * C, *e = b->emb + (size_t)s * C;
    double dot = 0;
    for (int i = 0; i < C; i++) dot += (double)q[i] * e[i];
    scores[s] = (float)dot;
    memset(b->demb, 0, (size_t)C * sizeof(float));
    mch_dot_backward(b->demb, q, 1.0f, C);
    if (b->pooling == MCH_POOL_MEAN)
        mch_mean_pool_backward(dtop, b->demb, T, C);
    else
        mch_cls_pool_backward(dtop, b->demb, C);
}

mch_status mch_backward_run_batch(mch_backward *b, const mch_batch *bt, const float *query_emb,
                                  float *scores, mch_err *err)
{
    const mch_config *c = &b->m->cfg;
    int C = c->C, bi = c->head == MCH_HEAD_NONE;
    b->B = 0;
    if (bt->B < 1 || bt->B > b->max_B)
        return mch_fail(err, MCH_ERR_ARG, "batch of %d sequences; the backward holds 1..%d", bt->B,
                        b->max_B);
    for (int s = 0; s < bt->B; s++)
        if (bt->lengths[s] < 1 || bt->lengths[s] > b->max_T)
            return mch_fail(err, MCH_ERR_ARG,
                            "sequence %d of %d tokens; the backward holds 1..%d tokens", s,
                            bt->lengths[s], b->max_T);
    if (bi && !query_emb)
        return mch_fail(err, MCH_ERR_ARG, "a bi-encoder's backward needs the query's vector");
    /* The planes' offsets, before the forward's capture hooks write into them. */
    for (int s = 0; s < bt->B; s++) {
        size_t T = (size_t)bt->lengths[s];
        b->off[s + 1] = b->off[s] + (int)T;
        b->poff[s + 1] = b->poff[s] + (size_t)c->NH * T * T;
    }
    mch_forward_opts o = {b->hooks, 0, NULL, b->pooling};
    mch_forward_out out = {bi ? NULL : scores, NULL, bi ? b->emb : NULL};
    mch_status rc = mch_forward(b->m, b->ws, bt, &o, &out, err);
    if (rc) return rc;
    size_t NC = (size_t)b->off[bt->B] * C;
    memcpy(b->hidden, mch_workspace_hidden(b->ws), NC * sizeof(float));
    memset(b->dtop, 0, NC * sizeof(float));
    b->B = bt->B;
    for (int s = 0; s < b->B; s++) top_backward(b, s, query_emb, scores);
    for (int l = c->L - 1; l >= 0; l--)
        layer_backward(b, l, l == c->L - 1 ? b->dtop : at(b, b->grad, MCH_SITE_RESID_PRE, l + 1));
    return MCH_OK;
}

mch_status mch_backward_run(mch_backward *b, int T, const int32_t *ids, const int32_t *types,
                            const float *query_emb, float *score, mch_err *err)
{
    mch_batch bt = {1, T, ids, types, &T};
    return mch_backward_run_batch(b, &bt, query_emb, score, err);
}

/* Sequence s's part of the buffer of (site, layer) among bufs (act or grad) after the aliases of
 * the header (top: the final hidden state's buffer); NULL for a layer or sequence out of range
 * or before a run. */
static const float *lookup(const mch_backward *b, float *const *bufs, const float *top, int s,
                           mch_site site, int l)
{
    int L = b->m->cfg.L;
    if (s < 0 || s >= b->B || l < 0 || l >= L || site < 0 || site >= MCH_SITE_COUNT) return NULL;
    switch (site) {
    case MCH_SITE_FULL_EMBED:
        return l == 0 ? at_seq(b, bufs, MCH_SITE_RESID_PRE, 0, s) : NULL;
    case MCH_SITE_NORM_RESID_POST:
        return l + 1 < L ? at_seq(b, bufs, MCH_SITE_RESID_PRE, l + 1, s)
                         : top + (size_t)b->off[s] * b->m->cfg.C;
    default:
        return bufs[site] ? at_seq(b, bufs, site, l, s) : NULL;
    }
}

const float *mch_backward_grad_seq(const mch_backward *b, int seq, mch_site site, int layer)
{
    if (site == MCH_SITE_RESID_MID) site = MCH_SITE_ATTN_OUT;
    if (site == MCH_SITE_RESID_POST) site = MCH_SITE_MLP_OUT;
    return lookup(b, b->grad, b->dtop, seq, site, layer);
}

const float *mch_backward_activation_seq(const mch_backward *b, int seq, mch_site site, int layer)
{
    return lookup(b, b->act, b->hidden, seq, site, layer);
}

const float *mch_backward_grad(const mch_backward *b, mch_site site, int layer)
{
    return mch_backward_grad_seq(b, 0, site, layer);
}

const float *mch_backward_activation(const mch_backward *b, mch_site site, int layer)
{
    return mch_backward_activation_seq(b, 0, site, layer);
}

int mch_backward_seq_tokens(const mch_backward *b, int seq)
{
    return seq >= 0 && seq < b->B ? b->off[seq + 1] - b->off[seq] : 0;
}

int mch_backward_tokens(const mch_backward *b)
{
    return mch_backward_seq_tokens(b, 0);
}
