/* T5 encoder-decoder weights, the hooked forward (encoder + one decoder step) and MonoT5 scoring.
 * Invariant: every tensor pointer was found by its Hugging Face name with the shape config.json
 * implies before the model is handed out; the forward allocates nothing (mch_t5_ws). */
#include "t5.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ops.h"

/* ---- weights ---- */

/* One tensor to resolve: its name, the shape the config implies (d1 = 0: 1-D) and where the
 * pointer goes. */
typedef struct {
    char name[96];
    int64_t d0, d1;
    const float **dst;
} t5_slot;

typedef struct {
    t5_slot *s;
    int n, cap;
} t5_slots;

static int slot_add(t5_slots *l, const float **dst, int64_t d0, int64_t d1, const char *fmt,
                    const char *stack, int b)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        t5_slot *s = realloc(l->s, (size_t)cap * sizeof *s);
        if (!s) return 0;
        l->s = s;
        l->cap = cap;
    }
    t5_slot *s = &l->s[l->n++];
    snprintf(s->name, sizeof s->name, fmt, stack, b);
    s->d0 = d0;
    s->d1 = d1;
    s->dst = dst;
    return 1;
}

/* The tensors of one stack's block b ("encoder" or "decoder"). */
static int plan_block(t5_slots *l, const mch_t5_config *c, mch_t5_block *w, const char *stack,
                      int b, int is_dec)
{
    int64_t C = c->C, IN = (int64_t)c->NH * c->HS, FF = c->FF;
    int ff = is_dec ? 2 : 1;
    int ok = slot_add(l, &w->ln_attn, C, 0, "%s.block.%d.layer.0.layer_norm.weight", stack, b) &&
             slot_add(l, &w->q, IN, C, "%s.block.%d.layer.0.SelfAttention.q.weight", stack, b) &&
             slot_add(l, &w->k, IN, C, "%s.block.%d.layer.0.SelfAttention.k.weight", stack, b) &&
             slot_add(l, &w->v, IN, C, "%s.block.%d.layer.0.SelfAttention.v.weight", stack, b) &&
             slot_add(l, &w->o, C, IN, "%s.block.%d.layer.0.SelfAttention.o.weight", stack, b);
    if (ok && is_dec)
        ok = slot_add(l, &w->ln_cross, C, 0, "%s.block.%d.layer.1.layer_norm.weight", stack, b) &&
             slot_add(l, &w->cq, IN, C, "%s.block.%d.layer.1.EncDecAttention.q.weight", stack, b) &&
             slot_add(l, &w->ck, IN, C, "%s.block.%d.layer.1.EncDecAttention.k.weight", stack, b) &&
             slot_add(l, &w->cv, IN, C, "%s.block.%d.layer.1.EncDecAttention.v.weight", stack, b) &&
             slot_add(l, &w->co, C, IN, "%s.block.%d.layer.1.EncDecAttention.o.weight", stack, b);
    char fmt[96];
#define FFN(field, d0, d1, leaf)                                                                   \
    (snprintf(fmt, sizeof fmt, "%%s.block.%%d.layer.%d.%s", ff, leaf),                             \
     slot_add(l, &w->field, d0, d1, fmt, stack, b))
    ok = ok && FFN(ln_ff, C, 0, "layer_norm.weight") && FFN(wo, C, FF, "DenseReluDense.wo.weight");
    if (c->gated)
        ok = ok && FFN(wi, FF, C, "DenseReluDense.wi_0.weight") &&
             FFN(wi1, FF, C, "DenseReluDense.wi_1.weight");
    else
        ok = ok && FFN(wi, FF, C, "DenseReluDense.wi.weight");
#undef FFN
    return ok;
}

static int plan(t5_slots *l, mch_t5 *m)
{
    const mch_t5_config *c = &m->cfg;
    int ok =
        slot_add(l, &m->shared, c->V, c->C, "shared.weight%.0s%.0d", "", 0) &&
        slot_add(l, &m->enc_rel, c->n_buckets, c->NH,
                 "%s.block.%d.layer.0.SelfAttention.relative_attention_bias.weight", "encoder",
                 0) &&
        slot_add(l, &m->dec_rel, c->n_buckets, c->NH,
                 "%s.block.%d.layer.0.SelfAttention.relative_attention_bias.weight", "decoder",
                 0) &&
        slot_add(l, &m->enc_final_ln, c->C, 0, "%s.final_layer_norm.weight%.0d", "encoder", 0) &&
        slot_add(l, &m->dec_final_ln, c->C, 0, "%s.final_layer_norm.weight%.0d", "decoder", 0);
    if (ok && !c->tied) ok = slot_add(l, &m->lm_head, c->V, c->C, "lm_head.weight%.0s%.0d", "", 0);
    for (int b = 0; ok && b < c->L; b++) ok = plan_block(l, c, &m->enc[b], "encoder", b, 0);
    for (int b = 0; ok && b < c->LD; b++) ok = plan_block(l, c, &m->dec[b], "decoder", b, 1);
    return ok;
}

mch_status mch_t5_tensors(const mch_t5_config *cfg, mch_t5_tensor_fn fn, void *ctx, mch_err *err)
{
    mch_t5 m = {.cfg = *cfg};
    t5_slots l = {0};
    mch_status rc = MCH_OK;
    m.enc = calloc((size_t)cfg->L, sizeof *m.enc);
    m.dec = calloc((size_t)cfg->LD, sizeof *m.dec);
    if (!m.enc || !m.dec || !plan(&l, &m))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory listing T5 tensors");
    for (int i = 0; !rc && i < l.n; i++)
        if (fn(ctx, l.s[i].name, l.s[i].d0, l.s[i].d1))
            rc = mch_fail(err, MCH_ERR_ARG, "tensor '%s': the caller stopped", l.s[i].name);
    free(l.s);
    free(m.enc);
    free(m.dec);
    return rc;
}

static void shape_text(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Checks one tensor against its slot: present, a float dtype, the implied shape. */
static mch_status check_slot(const mch_safetensors *st, const t5_slot *s, const char *file,
                             const mch_st_tensor **out, mch_err *err)
{
    const mch_st_tensor *t = mch_st_find(st, s->name);
    if (!t) return mch_fail(err, MCH_ERR_FORMAT, "%s: missing tensor '%s'", file, s->name);
    if (t->dtype != MCH_DT_F32 && t->dtype != MCH_DT_F16 && t->dtype != MCH_DT_BF16)
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has dtype %s; supported: F32, F16, BF16", file, t->name,
                        mch_dtype_name(t->dtype));
    int64_t want[2] = {s->d0, s->d1};
    int ndim = s->d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1])) {
        char w[64], g[160];
        shape_text(w, sizeof w, want, ndim);
        shape_text(g, sizeof g, t->shape, t->ndim);
        return mch_fail(err, MCH_ERR_SHAPE,
                        "%s: tensor '%s' has shape %s but config.json implies %s", file, t->name, g,
                        w);
    }
    *out = t;
    return MCH_OK;
}

static int needs_copy(const mch_st_tensor *t)
{
    return t->dtype != MCH_DT_F32 || ((uintptr_t)t->data % sizeof(float)) != 0;
}

mch_status mch_t5_from_parts(mch_t5 **out, const mch_t5_config *cfg, mch_safetensors *st,
                             const char *name, mch_err *err)
{
    mch_t5 *m = calloc(1, sizeof *m);
    t5_slots l = {0};
    const mch_st_tensor **ts = NULL;
    mch_status rc = MCH_OK;
    if (!m || !(m->dir = strdup(name)) || !(m->enc = calloc((size_t)cfg->L, sizeof *m->enc)) ||
        !(m->dec = calloc((size_t)cfg->LD, sizeof *m->dec))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    m->cfg = *cfg;
    m->st = st;
    m->weight_bytes = st->map_len;
    if (!plan(&l, m) || !(ts = calloc((size_t)l.n, sizeof *ts))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    const char *file = st->path ? st->path : name;
    size_t copy_floats = 0;
    for (int i = 0; i < l.n; i++) {
        if ((rc = check_slot(st, &l.s[i], file, &ts[i], err))) goto fail;
        if (needs_copy(ts[i])) copy_floats += ts[i]->numel;
    }
    if (copy_floats && !(m->owned = malloc(copy_floats * sizeof(float)))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory converting %zu weights", name,
                      copy_floats);
        goto fail;
    }
    size_t off = 0;
    for (int i = 0; i < l.n; i++) {
        if (!needs_copy(ts[i])) {
            *l.s[i].dst = ts[i]->data;
            continue;
        }
        mch_to_f32(m->owned + off, ts[i]->data, ts[i]->dtype, ts[i]->numel);
        *l.s[i].dst = m->owned + off;
        off += ts[i]->numel;
    }
    if (cfg->tied) m->lm_head = m->shared;
    free(l.s);
    free(ts);
    *out = m;
    return MCH_OK;
fail:
    free(l.s);
    free(ts);
    if (m) {
        m->st = st;
        mch_t5_close(m);
    } else {
        mch_st_close(st);
    }
    return rc;
}

mch_status mch_t5_open(mch_t5 **out, const char *dir, mch_err *err)
{
    char path[4096];
    mch_t5_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    mch_status rc = mch_t5_config_open(&cfg, path, err);
    if (rc) return rc;
    mch_safetensors *st = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = mch_st_open(&st, path, err))) return rc;
    return mch_t5_from_parts(out, &cfg, st, dir, err);
}

void mch_t5_close(mch_t5 *m)
{
    if (!m) return;
    mch_st_close(m->st);
    free(m->owned);
    free(m->enc);
    free(m->dec);
    free(m->dir);
    free(m);
}

/* ---- kernels ---- */

int mch_t5_bucket(int rel, int bidirectional, int n_buckets, int max_distance)
{
    int ret = 0, n;
    if (bidirectional) {
        n_buckets /= 2;
        if (rel > 0) ret += n_buckets;
        n = rel < 0 ? -rel : rel;
    } else {
        n = rel < 0 ? -rel : 0;
    }
    int max_exact = n_buckets / 2;
    if (n < max_exact) return ret + n;
    /* torch: log(n.float() / max_exact) / math.log(max_distance / max_exact) * (nb - max_exact),
     * each step in float32 (the Python scalars become float operands), then truncated. */
    float ratio = (float)n / (float)max_exact;
    float scale = (float)log((double)max_distance / (double)max_exact);
    float v = logf(ratio) / scale * (float)(n_buckets - max_exact);
    int large = max_exact + (int)v;
    if (large > n_buckets - 1) large = n_buckets - 1;
    return ret + large;
}

/* T5LayerNorm: out = g * x / sqrt(mean(x^2) + eps), no mean subtraction and no bias.
 * x, out are (N, C); out may alias x. */
static void rmsnorm_forward(float *out, const float *x, const float *g, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        for (int i = 0; i < C; i++) o[i] = g[i] * (xr[i] * r);
    }
}

static void act_forward(float *x, size_t n, mch_t5_act act)
{
    switch (act) {
    case MCH_T5_ACT_RELU:
        mch_relu_forward(x, n);
        break;
    case MCH_T5_ACT_GELU_ERF:
        mch_gelu_erf_forward(x, n);
        break;
    case MCH_T5_ACT_GELU_TANH:
        mch_gelu_tanh_forward(x, n);
        break;
    }
}

/* ---- workspace ---- */

struct mch_t5_ws {
    int T_max;
    float *x, *xn, *tmp;  /* (T, C): residual, normed, attn_out / mlp_out */
    float *q, *k, *v, *z; /* (T, IN) */
    float *att;           /* (T, T): one head's scores */
    float *bias;          /* (NH, 2T - 1): position bias by key - query + T - 1 */
    float *ff, *ff1;      /* (T, FF) */
    float *enc_out;       /* (T, C) */
    float *y, *yn, *ytmp; /* (C): the decoder's one position */
    float *dq, *dz;       /* (IN) */
    float *logits;        /* (V) */
    float *block;         /* the one allocation */
};

mch_t5_ws *mch_t5_workspace_create(const mch_t5 *m, int T_max)
{
    const mch_t5_config *c = &m->cfg;
    if (T_max < 1) return NULL;
    size_t T = (size_t)T_max, C = (size_t)c->C, IN = (size_t)c->NH * c->HS, FF = (size_t)c->FF;
    size_t sizes[] = {
        T * C,  T * C,  T * C, T * IN, T * IN, T * IN, T * IN, T * T, (size_t)c->NH * (2 * T - 1),
        T * FF, T * FF, T * C, C,      C,      C,      IN,     IN,    (size_t)c->V};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += (sizes[i] + 15) & ~(size_t)15;
    mch_t5_ws *ws = calloc(1, sizeof *ws);
    if (!ws || !(ws->block = mch_alloc_large(total * sizeof(float)))) {
        free(ws);
        return NULL;
    }
    float **dst[] = {&ws->x, &ws->xn,  &ws->tmp,  &ws->q,  &ws->k,   &ws->v,
                     &ws->z, &ws->att, &ws->bias, &ws->ff, &ws->ff1, &ws->enc_out,
                     &ws->y, &ws->yn,  &ws->ytmp, &ws->dq, &ws->dz,  &ws->logits};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = ws->block + off;
        off += (sizes[i] + 15) & ~(size_t)15;
    }
    ws->T_max = T_max;
    return ws;
}

void mch_t5_workspace_free(mch_t5_ws *ws)
{
    if (!ws) return;
    free(ws->block);
    free(ws);
}

int mch_t5_workspace_tokens(const mch_t5_ws *ws)
{
    return ws->T_max;
}

const float *mch_t5_logits(const mch_t5_ws *ws)
{
    return ws->logits;
}

void mch_t5_capture_fn(void *ctx, mch_t5_site site, int layer, float *act, int rows, int cols)
{
    const mch_t5_capture *c = ctx;
    size_t n = (size_t)rows * cols;
    float *dst = NULL;
    if (site == MCH_T5_ENC_RESID_POST && c->enc_resid_post)
        dst = c->enc_resid_post + (size_t)layer * n;
    else if (site == MCH_T5_ENC_OUT)
        dst = c->enc_out;
    else if (site == MCH_T5_DEC_RESID_POST && c->dec_resid_post)
        dst = c->dec_resid_post + (size_t)layer * n;
    else if (site == MCH_T5_LOGITS)
        dst = c->logits;
    if (dst) memcpy(dst, act, n * sizeof *dst);
}

static void hook(const mch_t5_hooks *h, mch_t5_site s, int layer, float *act, int rows, int cols)
{
    if (h && h->fn) h->fn(h->ctx, s, layer, act, rows, cols);
}

/* Hooks delta (N, C) as out_site, adds it to resid (N, C), hooks the sum as resid_site. */
static void add_residual(float *resid, float *delta, int N, int C, const mch_t5_hooks *hk,
                         mch_t5_site out_site, mch_t5_site resid_site, int layer)
{
    hook(hk, out_site, layer, delta, N, C);
    mch_add_inplace(resid, delta, (size_t)N * C);
    hook(hk, resid_site, layer, resid, N, C);
}

/* ---- forward ---- */

/* The feed-forward of one block on xn (N, C) into out (N, C); ff, ff1 are (N, FF) scratch. */
static void ffn_forward(float *out, const float *xn, float *ff, float *ff1, const mch_t5_block *w,
                        const mch_t5_config *c, int N)
{
    int C = c->C, FF = c->FF;
    mch_linear_forward(ff, FF, xn, C, w->wi, NULL, N, C, FF);
    act_forward(ff, (size_t)N * FF, c->act);
    if (w->wi1) {
        mch_linear_forward(ff1, FF, xn, C, w->wi1, NULL, N, C, FF);
        for (size_t i = 0; i < (size_t)N * FF; i++) ff[i] *= ff1[i];
    }
    mch_linear_forward(out, C, ff, FF, w->wo, NULL, N, FF, C);
}

/* Multi-head attention of R queries over S keys for every head; q (R, IN), k, v (S, IN), z
 * (R, IN); att (R, S) scratch. bias (NH, R + S - 1) or NULL: added to scores[i][j] at
 * bias[h][j - i + R - 1] (R = S in the encoder). No 1/sqrt(HS) scaling (T5). */
static void attention_forward(float *z, const float *q, const float *k, const float *v, float *att,
                              const float *bias, int R, int S, int NH, int HS)
{
    int IN = NH * HS;
    for (int h = 0; h < NH; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, S, HS, 1.0f, q + h * HS, IN,
                    k + h * HS, IN, 0.0f, att, S);
        if (bias)
            for (int i = 0; i < R; i++)
                mch_add_inplace(att + (size_t)i * S, bias + (size_t)h * (R + S - 1) + (R - 1 - i),
                                (size_t)S);
        mch_softmax_rows(att, R, S, S);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, HS, S, 1.0f, att, S, v + h * HS,
                    IN, 0.0f, z + h * HS, IN);
    }
}

static void encoder_forward(const mch_t5 *m, mch_t5_ws *ws, const int32_t *ids, int T,
                            const mch_t5_hooks *hk)
{
    const mch_t5_config *c = &m->cfg;
    int C = c->C, NH = c->NH, IN = NH * c->HS;
    for (int t = 0; t < T; t++)
        memcpy(ws->x + (size_t)t * C, m->shared + (size_t)ids[t] * C, (size_t)C * sizeof(float));
    hook(hk, MCH_T5_EMBED, -1, ws->x, T, C);
    /* Block 0's bias, reused by every block: bias[h][d + T - 1] for d = key - query. */
    for (int d = -(T - 1); d <= T - 1; d++) {
        int b = mch_t5_bucket(d, 1, c->n_buckets, c->max_distance);
        for (int h = 0; h < NH; h++)
            ws->bias[(size_t)h * (2 * T - 1) + d + T - 1] = m->enc_rel[(size_t)b * NH + h];
    }
    for (int l = 0; l < c->L; l++) {
        const mch_t5_block *w = &m->enc[l];
        hook(hk, MCH_T5_ENC_RESID_PRE, l, ws->x, T, C);
        rmsnorm_forward(ws->xn, ws->x, w->ln_attn, T, C, c->eps);
        mch_linear_forward(ws->q, IN, ws->xn, C, w->q, NULL, T, C, IN);
        mch_linear_forward(ws->k, IN, ws->xn, C, w->k, NULL, T, C, IN);
        mch_linear_forward(ws->v, IN, ws->xn, C, w->v, NULL, T, C, IN);
        attention_forward(ws->z, ws->q, ws->k, ws->v, ws->att, ws->bias, T, T, NH, c->HS);
        hook(hk, MCH_T5_ENC_Z, l, ws->z, T, IN);
        mch_linear_forward(ws->tmp, C, ws->z, IN, w->o, NULL, T, IN, C);
        add_residual(ws->x, ws->tmp, T, C, hk, MCH_T5_ENC_ATTN_OUT, MCH_T5_ENC_RESID_MID, l);
        rmsnorm_forward(ws->xn, ws->x, w->ln_ff, T, C, c->eps);
        ffn_forward(ws->tmp, ws->xn, ws->ff, ws->ff1, w, c, T);
        add_residual(ws->x, ws->tmp, T, C, hk, MCH_T5_ENC_MLP_OUT, MCH_T5_ENC_RESID_POST, l);
    }
    rmsnorm_forward(ws->enc_out, ws->x, m->enc_final_ln, T, C, c->eps);
    hook(hk, MCH_T5_ENC_OUT, -1, ws->enc_out, T, C);
}

/* One decoder step at position 0 over the encoder output (T rows). */
static void decoder_step(const mch_t5 *m, mch_t5_ws *ws, int T, int32_t dec_id,
                         const mch_t5_hooks *hk)
{
    const mch_t5_config *c = &m->cfg;
    int C = c->C, NH = c->NH, IN = NH * c->HS;
    memcpy(ws->y, m->shared + (size_t)dec_id * C, (size_t)C * sizeof(float));
    for (int l = 0; l < c->LD; l++) {
        const mch_t5_block *w = &m->dec[l];
        hook(hk, MCH_T5_DEC_RESID_PRE, l, ws->y, 1, C);
        rmsnorm_forward(ws->yn, ws->y, w->ln_attn, 1, C, c->eps);
        /* Self-attention of the only position over itself: the softmax over one key is exactly
         * 1 whatever the score and its position bias, so z is the value row (as in torch). */
        mch_linear_forward(ws->dz, IN, ws->yn, C, w->v, NULL, 1, C, IN);
        hook(hk, MCH_T5_DEC_Z, l, ws->dz, 1, IN);
        mch_linear_forward(ws->ytmp, C, ws->dz, IN, w->o, NULL, 1, IN, C);
        add_residual(ws->y, ws->ytmp, 1, C, hk, MCH_T5_DEC_ATTN_OUT, MCH_T5_DEC_RESID_MID, l);
        /* Cross-attention: keys and values from the encoder output, no position bias. */
        rmsnorm_forward(ws->yn, ws->y, w->ln_cross, 1, C, c->eps);
        mch_linear_forward(ws->dq, IN, ws->yn, C, w->cq, NULL, 1, C, IN);
        mch_linear_forward(ws->k, IN, ws->enc_out, C, w->ck, NULL, T, C, IN);
        mch_linear_forward(ws->v, IN, ws->enc_out, C, w->cv, NULL, T, C, IN);
        attention_forward(ws->dz, ws->dq, ws->k, ws->v, ws->att, NULL, 1, T, NH, c->HS);
        hook(hk, MCH_T5_DEC_CROSS_Z, l, ws->dz, 1, IN);
        mch_linear_forward(ws->ytmp, C, ws->dz, IN, w->co, NULL, 1, IN, C);
        add_residual(ws->y, ws->ytmp, 1, C, hk, MCH_T5_DEC_CROSS_ATTN_OUT,
                     MCH_T5_DEC_RESID_MID_CROSS, l);
        rmsnorm_forward(ws->yn, ws->y, w->ln_ff, 1, C, c->eps);
        ffn_forward(ws->ytmp, ws->yn, ws->ff, ws->ff1, w, c, 1);
        add_residual(ws->y, ws->ytmp, 1, C, hk, MCH_T5_DEC_MLP_OUT, MCH_T5_DEC_RESID_POST, l);
    }
    rmsnorm_forward(ws->yn, ws->y, m->dec_final_ln, 1, C, c->eps);
    if (c->tied) {
        /* Mesh TensorFlow's rescale before the tied unembedding, in float32 as torch does. */
        float s = (float)pow((double)C, -0.5);
        for (int i = 0; i < C; i++) ws->yn[i] *= s;
    }
    mch_linear_forward(ws->logits, c->V, ws->yn, C, m->lm_head, NULL, 1, C, c->V);
    hook(hk, MCH_T5_LOGITS, -1, ws->logits, 1, c->V);
}

mch_status mch_t5_forward(const mch_t5 *m, mch_t5_ws *ws, const int32_t *ids, int T, int32_t dec_id,
                          const mch_t5_hooks *hooks, mch_err *err)
{
    const mch_t5_config *c = &m->cfg;
    if (T < 1 || T > ws->T_max)
        return mch_fail(err, MCH_ERR_ARG, "%s: %d input tokens, outside [1, %d] (the workspace)",
                        m->dir, T, ws->T_max);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->V)
            return mch_fail(err, MCH_ERR_ARG, "%s: token %d has id %d, outside [0, %d)", m->dir, t,
                            ids[t], c->V);
    if (dec_id < 0 || dec_id >= c->V)
        return mch_fail(err, MCH_ERR_ARG, "%s: decoder input id %d is outside [0, %d)", m->dir,
                        dec_id, c->V);
    encoder_forward(m, ws, ids, T, hooks);
    decoder_step(m, ws, T, dec_id, hooks);
    return MCH_OK;
}

/* ---- MonoT5 ---- */

mch_status mch_monot5_open(mch_monot5 **out, const char *dir, mch_err *err)
{
    mch_monot5 *m = calloc(1, sizeof *m);
    if (!m) return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", dir);
    mch_status rc = mch_t5_open(&m->model, dir, err);
    if (!rc) rc = mch_tok_open(&m->tok, dir, err);
    if (rc) {
        mch_monot5_close(m);
        return rc;
    }
    char tokfile[4096];
    struct stat sb;
    snprintf(tokfile, sizeof tokfile, "%s/tokenizer.json", dir);
    if (stat(tokfile, &sb) != 0) snprintf(tokfile, sizeof tokfile, "%s/vocab.txt", dir);
    static const char t_piece[] = "\xe2\x96\x81true", f_piece[] = "\xe2\x96\x81"
                                                                  "false";
    m->true_id = mch_tok_lookup(m->tok, t_piece, sizeof t_piece - 1);
    m->false_id = mch_tok_lookup(m->tok, f_piece, sizeof f_piece - 1);
    const mch_t5_config *c = &m->model->cfg;
    if (m->true_id < 0 || m->false_id < 0)
        rc = mch_fail(err, MCH_ERR_FORMAT,
                      "%s: no piece '%s' in the vocabulary: not a MonoT5 tokenizer (MonoT5 scores "
                      "the step-0 logits of '\xe2\x96\x81true' and '\xe2\x96\x81"
                      "false')",
                      tokfile, m->true_id < 0 ? t_piece : f_piece);
    else if (mch_tok_size(m->tok) > c->V)
        rc = mch_fail(err, MCH_ERR_SHAPE,
                      "%s: the tokenizer has %d ids but config.json's vocab_size is %d", tokfile,
                      mch_tok_size(m->tok), c->V);
    if (rc) {
        mch_monot5_close(m);
        return rc;
    }
    *out = m;
    return MCH_OK;
}

void mch_monot5_close(mch_monot5 *m)
{
    if (!m) return;
    mch_t5_workspace_free(m->ws);
    mch_tok_enc_free(&m->enc);
    mch_tok_free(m->tok);
    mch_t5_close(m->model);
    free(m);
}

mch_status mch_monot5_encode(mch_monot5 *m, const char *query, const char *doc, int max_len,
                             mch_err *err)
{
    return mch_tok_encode_monot5(m->tok, query, doc, max_len, &m->enc, err);
}

mch_status mch_monot5_score_ids(mch_monot5 *m, const int32_t *ids, int T, const mch_t5_hooks *hooks,
                                mch_monot5_result *res, mch_err *err)
{
    if (T < 1) return mch_fail(err, MCH_ERR_ARG, "%s: no input tokens", m->model->dir);
    if (!m->ws || mch_t5_workspace_tokens(m->ws) < T) {
        mch_t5_workspace_free(m->ws);
        if (!(m->ws = mch_t5_workspace_create(m->model, T)))
            return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory for a %d-token workspace",
                            m->model->dir, T);
    }
    mch_status rc =
        mch_t5_forward(m->model, m->ws, ids, T, m->model->cfg.decoder_start, hooks, err);
    if (rc) return rc;
    const float *lg = mch_t5_logits(m->ws);
    float lt = lg[m->true_id], lf = lg[m->false_id];
    /* log_softmax([lf, lt])[1] = lt - logsumexp(lf, lt), computed stably. */
    double mx = lt > lf ? lt : lf;
    double lse = mx + log(exp((double)lf - mx) + exp((double)lt - mx));
    res->score = (float)((double)lt - lse);
    res->logit_true = lt;
    res->logit_false = lf;
    res->n_tokens = T;
    return MCH_OK;
}

mch_status mch_monot5_score(mch_monot5 *m, const char *query, const char *doc, int max_len,
                            mch_monot5_result *res, mch_err *err)
{
    mch_status rc = mch_monot5_encode(m, query, doc, max_len, err);
    if (rc) return rc;
    return mch_monot5_score_ids(m, m->enc.ids, (int)m->enc.n, NULL, res, err);
}

mch_status mch_monot5_score_batch(mch_monot5 *m, const char *const *queries,
                                  const char *const *docs, size_t n, int max_len, float *scores,
                                  mch_err *err)
{
    for (size_t i = 0; i < n; i++) {
        mch_monot5_result r;
        mch_err e = {0};
        mch_status rc = mch_monot5_score(m, queries[i], docs[i], max_len, &r, &e);
        if (rc) return mch_fail(err, rc, "pair %zu: %s", i, e.msg);
        scores[i] = r.score;
    }
    return MCH_OK;
}
