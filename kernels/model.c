/* Model loading: resolve every weight the encoder needs by its Hugging Face name (with or
 * without the architecture prefix), check dtype and shape against config.json, then use F32
 * tensors in place and convert F16/BF16 ones into one owned F32 block. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
    const float **dst;
    char name[128]; /* without the architecture prefix */
    int64_t shape[2];
    int ndim;
    const mch_st_tensor *t;
} slot;

typedef struct {
    slot *s;
    int n, cap;
} slot_list;

static int add_slot(slot_list *l, const float **dst, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int add_slot(slot_list *l, const float **dst, int64_t d0, int64_t d1, const char *fmt, ...)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        slot *s = realloc(l->s, (size_t)cap * sizeof *s);
        if (!s) return 0;
        l->s = s;
        l->cap = cap;
    }
    slot *s = &l->s[l->n++];
    memset(s, 0, sizeof *s);
    s->dst = dst;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->ndim = d1 ? 2 : 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    return 1;
}

/* The weights each architecture needs, with their expected shapes. */
static int plan_slots(slot_list *l, mch_model *m)
{
    const mch_config *c = &m->cfg;
    int ok = 1;
    int distil = c->arch == MCH_ARCH_DISTILBERT;
    ok &= add_slot(l, &m->wte, c->V, c->E, "embeddings.word_embeddings.weight");
    ok &= add_slot(l, &m->wpe, c->max_pos, c->E, "embeddings.position_embeddings.weight");
    if (c->type_vocab > 0)
        ok &= add_slot(l, &m->wtt, c->type_vocab, c->E, "embeddings.token_type_embeddings.weight");
    ok &= add_slot(l, &m->emb_ln_g, c->E, 0, "embeddings.LayerNorm.weight");
    ok &= add_slot(l, &m->emb_ln_b, c->E, 0, "embeddings.LayerNorm.bias");
    if (c->arch == MCH_ARCH_ELECTRA && c->E != c->C) {
        ok &= add_slot(l, &m->proj_w, c->C, c->E, "embeddings_project.weight");
        ok &= add_slot(l, &m->proj_b, c->C, 0, "embeddings_project.bias");
    }
    /* One layer's sixteen tensors in mch_layer_weights order: DistilBERT's names, then
     * BERT's and ELECTRA's. */
    static const char *const names[2][16] = {
        {"attention.q_lin.weight", "attention.q_lin.bias", "attention.k_lin.weight",
         "attention.k_lin.bias", "attention.v_lin.weight", "attention.v_lin.bias",
         "attention.out_lin.weight", "attention.out_lin.bias", "sa_layer_norm.weight",
         "sa_layer_norm.bias", "ffn.lin1.weight", "ffn.lin1.bias", "ffn.lin2.weight",
         "ffn.lin2.bias", "output_layer_norm.weight", "output_layer_norm.bias"},
        {"attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
         "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
         "attention.output.dense.weight", "attention.output.dense.bias",
         "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
         "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
         "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"},
    };
    const char *prefix = distil ? "transformer.layer" : "encoder.layer";
    for (int i = 0; i < c->L; i++) {
        mch_layer_weights *w = &m->layers[i];
        struct {
            const float **dst;
            int64_t d0, d1;
        } t[16] = {{&w->q_w, c->C, c->C},    {&w->q_b, c->C, 0},       {&w->k_w, c->C, c->C},
                   {&w->k_b, c->C, 0},       {&w->v_w, c->C, c->C},    {&w->v_b, c->C, 0},
                   {&w->o_w, c->C, c->C},    {&w->o_b, c->C, 0},       {&w->ln1_g, c->C, 0},
                   {&w->ln1_b, c->C, 0},     {&w->ff1_w, c->FF, c->C}, {&w->ff1_b, c->FF, 0},
                   {&w->ff2_w, c->C, c->FF}, {&w->ff2_b, c->C, 0},     {&w->ln2_g, c->C, 0},
                   {&w->ln2_b, c->C, 0}};
        for (int k = 0; k < 16; k++)
            ok &= add_slot(l, t[k].dst, t[k].d0, t[k].d1, "%s.%d.%s", prefix, i,
                           names[distil ? 0 : 1][k]);
    }
    /* Head tensors are named without the architecture prefix in HF checkpoints, except the
     * BERT pooler; lookup tries both forms for every slot. */
    switch (c->head) {
    case MCH_HEAD_NONE:
    case MCH_HEAD_MONOT5: /* never here: mch_model_need_encoder refused it */
        break;
    case MCH_HEAD_BERT_SEQCLS:
        ok &= add_slot(l, &m->head_w, c->C, c->C, "pooler.dense.weight");
        ok &= add_slot(l, &m->head_b, c->C, 0, "pooler.dense.bias");
        ok &= add_slot(l, &m->cls_w, c->num_labels, c->C, "classifier.weight");
        ok &= add_slot(l, &m->cls_b, c->num_labels, 0, "classifier.bias");
        break;
    case MCH_HEAD_DISTIL_SEQCLS:
        ok &= add_slot(l, &m->head_w, c->C, c->C, "pre_classifier.weight");
        ok &= add_slot(l, &m->head_b, c->C, 0, "pre_classifier.bias");
        ok &= add_slot(l, &m->cls_w, c->num_labels, c->C, "classifier.weight");
        ok &= add_slot(l, &m->cls_b, c->num_labels, 0, "classifier.bias");
        break;
    case MCH_HEAD_ELECTRA_SEQCLS:
    case MCH_HEAD_ROBERTA_SEQCLS:
        ok &= add_slot(l, &m->head_w, c->C, c->C, "classifier.dense.weight");
        ok &= add_slot(l, &m->head_b, c->C, 0, "classifier.dense.bias");
        ok &= add_slot(l, &m->cls_w, c->num_labels, c->C, "classifier.out_proj.weight");
        ok &= add_slot(l, &m->cls_b, c->num_labels, 0, "classifier.out_proj.bias");
        break;
    }
    return ok;
}

/* Finds name with the architecture prefix first, then bare; LayerNorm weight/bias also under
 * their old gamma/beta names. */
static const mch_st_tensor *find_weight(const mch_safetensors *st, const char *prefix,
                                        const char *name)
{
    char alias[160] = "", full[200];
    size_t n = strlen(name);
    const char *old = NULL;
    if (n > 16 && !strcmp(name + n - 16, "LayerNorm.weight")) old = "gamma";
    if (n > 14 && !strcmp(name + n - 14, "LayerNorm.bias")) old = "beta";
    if (old) {
        int cut = (int)(strrchr(name, '.') - name);
        snprintf(alias, sizeof alias, "%.*s.%s", cut, name, old);
    }
    const char *names[2] = {name, old ? alias : NULL};
    for (int a = 0; a < 2 && names[a]; a++) {
        snprintf(full, sizeof full, "%s.%s", prefix, names[a]);
        const mch_st_tensor *t = mch_st_find(st, full);
        if (!t) t = mch_st_find(st, names[a]);
        if (t) return t;
    }
    return NULL;
}

static void shape_str(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* Tensors config.json says the model does not have. One in the weights means the config
 * contradicts them: the encoder would leave it out and compute another model (type_vocab_size 0
 * beside token type embeddings drops them from every score). */
static mch_status check_absent(const mch_safetensors *st, const mch_config *c, const char *prefix,
                               const char *file, mch_err *err)
{
    char extra_layer[96];
    snprintf(extra_layer, sizeof extra_layer, "%s.%d.%s",
             c->arch == MCH_ARCH_DISTILBERT ? "transformer.layer" : "encoder.layer", c->L,
             c->arch == MCH_ARCH_DISTILBERT ? "attention.q_lin.weight"
                                            : "attention.self.query.weight");
    char layers[64];
    snprintf(layers, sizeof layers, "%s is %d",
             c->arch == MCH_ARCH_DISTILBERT ? "n_layers" : "num_hidden_layers", c->L);
    const struct {
        int absent;
        const char *name, *field;
    } t[] = {
        {c->type_vocab == 0 && c->arch != MCH_ARCH_DISTILBERT,
         "embeddings.token_type_embeddings.weight", "type_vocab_size is 0"},
        {c->arch == MCH_ARCH_ELECTRA && c->E == c->C, "embeddings_project.weight",
         "embedding_size equals hidden_size (no projection)"},
        {1, extra_layer, layers},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const mch_st_tensor *w = t[i].absent ? find_weight(st, prefix, t[i].name) : NULL;
        if (!w) continue;
        char got[128];
        shape_str(got, sizeof got, w->shape, w->ndim);
        return mch_fail(err, MCH_ERR_SHAPE,
                        "%s: tensor '%s' has shape %s but config.json's %s: the config "
                        "contradicts the weights",
                        file, w->name, got, t[i].field);
    }
    return MCH_OK;
}

mch_status mch_model_from_parts(mch_model **out, const mch_config *cfg, mch_safetensors *st,
                                mch_tok *tok, const char *name, mch_err *err)
{
    mch_model *m = calloc(1, sizeof *m);
    slot_list l = {0};
    mch_status rc = MCH_OK;
    if (!m || !(m->layers = calloc((size_t)cfg->L, sizeof *m->layers)) ||
        !(m->dir = strdup(name))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    m->cfg = *cfg;
    m->st = st;
    m->tok = tok;
    m->weight_bytes = st->map_len;
    /* Checked before any weight is converted: that may close st, which fail: below would close
     * again. */
    char tok_file[4096];
    if (tok && mch_tok_size(tok) > cfg->V) {
        rc = mch_fail(err, MCH_ERR_SHAPE, "%s: %s has %d tokens but vocab_size is %d", name,
                      mch_tok_file(name, tok_file, sizeof tok_file) ? "the tokenizer"
                                                                    : strrchr(tok_file, '/') + 1,
                      mch_tok_size(tok), cfg->V);
        goto fail;
    }
    if (!plan_slots(&l, m)) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    const char *prefix = mch_arch_name(cfg->arch);
    const char *file = st->path ? st->path : name;
    if ((rc = check_absent(st, cfg, prefix, file, err))) goto fail;
    size_t convert_floats = 0;
    for (int i = 0; i < l.n; i++) {
        slot *s = &l.s[i];
        s->t = find_weight(st, prefix, s->name);
        if (!s->t) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: missing tensor '%s.%s' (or '%s')", file, prefix,
                          s->name, s->name);
            goto fail;
        }
        const mch_st_tensor *t = s->t;
        if (t->dtype != MCH_DT_F32 && t->dtype != MCH_DT_F16 && t->dtype != MCH_DT_BF16) {
            rc = mch_fail(err, MCH_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s; supported: F32, F16, BF16", file, t->name,
                          mch_dtype_name(t->dtype));
            goto fail;
        }
        if (t->ndim != s->ndim || t->shape[0] != s->shape[0] ||
            (s->ndim == 2 && t->shape[1] != s->shape[1])) {
            char want[64], got[128];
            shape_str(want, sizeof want, s->shape, s->ndim);
            shape_str(got, sizeof got, t->shape, t->ndim);
            rc = mch_fail(err, MCH_ERR_SHAPE,
                          "%s: tensor '%s' has shape %s but config.json implies %s", file, t->name,
                          got, want);
            goto fail;
        }
        if (t->dtype != MCH_DT_F32 || ((uintptr_t)t->data % sizeof(float)) != 0)
            convert_floats += t->numel;
    }
    if (convert_floats && !(m->owned = malloc(convert_floats * sizeof(float)))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory converting %zu weights", name,
                      convert_floats);
        goto fail;
    }
    size_t off = 0;
    for (int i = 0; i < l.n; i++) {
        const mch_st_tensor *t = l.s[i].t;
        if (t->dtype == MCH_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
            *l.s[i].dst = t->data;
        } else {
            mch_to_f32(m->owned + off, t->data, t->dtype, t->numel);
            *l.s[i].dst = m->owned + off;
            off += t->numel;
        }
    }
    /* Every weight converted: the mapping is no longer needed and would only add to RSS. */
    if (off == convert_floats && convert_floats && m->st->map) {
        size_t total = 0;
        for (int i = 0; i < l.n; i++) total += l.s[i].t->numel;
        if (total == convert_floats) {
            mch_st_close(m->st);
            m->st = NULL;
        }
    }
    free(l.s);
    *out = m;
    return MCH_OK;
fail:
    free(l.s);
    if (m) {
        m->st = st;
        m->tok = tok;
        mch_model_close(m);
    } else {
        mch_st_close(st);
        mch_tok_free(tok);
    }
    return rc;
}

mch_status mch_model_need_encoder(const mch_model *m, const char *what, mch_err *err)
{
    if (!m->t5) return MCH_OK;
    return mch_fail(err, MCH_ERR_UNSUPPORTED,
                    "%s: a MonoT5 (T5ForConditionalGeneration) can be scored, but %s is not "
                    "supported for it yet",
                    m->dir, what);
}

/* A MonoT5 directory: the model and its tokenizer through kernels/t5.h. */
static mch_status open_monot5(mch_model **out, const char *dir, const mch_config *cfg, mch_err *err)
{
    mch_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", dir);
    }
    m->cfg = *cfg;
    mch_status rc = mch_monot5_open(&m->t5, dir, err);
    if (rc) {
        mch_model_close(m);
        return rc;
    }
    m->weight_bytes = m->t5->model->weight_bytes;
    *out = m;
    return MCH_OK;
}

mch_status mch_model_open(mch_model **out, const char *dir, mch_err *err)
{
    char path[4096];
    mch_config cfg;
    mch_tok *tok = NULL;
    mch_status rc = mch_model_text_read(dir, &cfg, &tok, err);
    if (rc) return rc;
    if (cfg.arch == MCH_ARCH_T5) {
        mch_tok_free(tok);
        return open_monot5(out, dir, &cfg, err);
    }
    mch_safetensors *st = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = mch_st_open(&st, path, err))) {
        mch_tok_free(tok);
        return rc;
    }
    return mch_model_from_parts(out, &cfg, st, tok, dir, err);
}

void mch_model_close(mch_model *m)
{
    if (!m) return;
    mch_st_close(m->st);
    mch_tok_free(m->tok);
    mch_monot5_close(m->t5);
    free(m->owned);
    free(m->layers);
    free(m->dir);
    free(m);
}
