/* Hook points: names round-trip; cached activations satisfy the block's equations (so each hook
 * holds what TransformerLens means by it); overwriting through a hook changes the output while
 * writing back the same values does not; starting at layer l from a cached resid_pre reproduces
 * the full forward bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "act_cache.h"
#include "testutil.h"

#define MODEL_DIR MCH_TEST_DATA "/models/bert-ce-tiny"

typedef struct {
    mch_model *m;
    int32_t ids[2 * 64];
    int32_t types[2 * 64];
    int lens[2];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mch_err err = {0};
    if (mch_model_open(&f->m, MODEL_DIR, &err)) return -1;
    const char *q[2] = {"what is the capital of france?", "fast lossless compression"};
    const char *d[2] = {"Paris is the capital and most populous city of France.",
                        "Zstd is a fast lossless compression algorithm."};
    for (int b = 0; b < 2; b++)
        if (mch_tok_encode_to(f->m->tok, q[b], d[b], 64, 64, f->ids + 64 * b, f->types + 64 * b,
                              &f->lens[b], &err))
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mch_model_close(f->m);
    free(f);
    return 0;
}

static void test_hook_names_round_trip(void **state)
{
    (void)state;
    char name[64];
    int checked = 0;
    for (int s = 0; s < MCH_SITE_COUNT; s++)
        for (int l = 0; l < 3; l++) {
            mch_site site;
            int layer;
            mch_err err = {0};
            mch_hook_name((mch_site)s, l, name, sizeof name);
            assert_int_equal(mch_hook_parse(name, 3, &site, &layer, &err), MCH_OK);
            assert_int_equal(site, s);
            assert_int_equal(layer, s == MCH_SITE_FULL_EMBED ? 0 : l);
            checked++;
        }
    assert_int_equal(checked, MCH_SITE_COUNT * 3);
    mch_hook_name(MCH_SITE_Z, 2, name, sizeof name);
    assert_string_equal(name, "blocks.2.attn.hook_z");
    mch_hook_name(MCH_SITE_NORM_RESID_POST, 0, name, sizeof name);
    assert_string_equal(name, "blocks.0.hook_normalized_resid_post");
    const char *bad[] = {"blocks.3.hook_resid_pre", "blocks.x.hook_z", "hook_foo",
                         "blocks.0.attn.hook_zz",   "blocks.0hook_z",  ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mch_site site;
        int layer;
        mch_err err = {0};
        assert_int_equal(mch_hook_parse(bad[i], 3, &site, &layer, &err), MCH_ERR_ARG);
        assert_non_null(strstr(err.msg, "hook"));
    }
}

/* y = LayerNorm(x) in double, for reference. */
static void ref_layernorm(double *y, const double *x, const float *g, const float *b, int C,
                          double eps)
{
    double mean = 0, var = 0;
    for (int c = 0; c < C; c++) mean += x[c];
    mean /= C;
    for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
    var /= C;
    for (int c = 0; c < C; c++) y[c] = (x[c] - mean) / sqrt(var + eps) * g[c] + b[c];
}

static long check(const char *what, const float *got, const double *want, long n)
{
    return tu_compare(what, got, want, n, 1e-5, 1e-4);
}

static void test_cached_activations_satisfy_block_equations(void **state)
{
    fixture *f = *state;
    const mch_model *m = f->m;
    const mch_config *c = &m->cfg;
    int C = c->C, NH = c->NH, HS = c->HS;
    mch_err err = {0};
    mch_act_cache *cache = mch_act_cache_create(m);
    const char *names[] = {
        "hook_full_embed",       "blocks.*.hook_resid_pre",  "blocks.*.attn.hook_q",
        "blocks.*.attn.hook_k",  "blocks.*.attn.hook_v",     "blocks.*.attn.hook_pattern",
        "blocks.*.attn.hook_z",  "blocks.*.hook_attn_out",   "blocks.*.hook_resid_mid",
        "blocks.*.hook_mlp_out", "blocks.*.hook_resid_post", "blocks.*.hook_normalized_resid_post"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(mch_act_cache_add(cache, names[i], &err), MCH_OK);
    mch_hooks *hk = mch_hooks_create(c->L);
    assert_int_equal(mch_act_cache_attach(cache, hk, &err), MCH_OK);
    mch_workspace *ws = mch_workspace_create(m, 256, 64);
    mch_batch bt = {2, 64, f->ids, f->types, f->lens};
    mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
    float scores[2];
    mch_forward_out out = {scores, NULL, NULL};
    assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);

    long bad = 0, checked = 0;
    double *ref = calloc((size_t)64 * C, sizeof *ref), *tmp = calloc((size_t)C, sizeof *tmp);
    for (int b = 0; b < 2; b++) {
        int T;
        const float *emb = mch_act_cache_get(cache, MCH_SITE_FULL_EMBED, 0, b, &T);
        assert_non_null(emb);
        assert_int_equal(T, f->lens[b]);
        for (int l = 0; l < c->L; l++) {
            const mch_layer_weights *w = &m->layers[l];
#define GET(site) mch_act_cache_get(cache, site, l, b, NULL)
            const float *pre = GET(MCH_SITE_RESID_PRE), *q = GET(MCH_SITE_Q), *v = GET(MCH_SITE_V),
                        *pat = GET(MCH_SITE_PATTERN), *z = GET(MCH_SITE_Z),
                        *ao = GET(MCH_SITE_ATTN_OUT), *mid = GET(MCH_SITE_RESID_MID),
                        *mlp = GET(MCH_SITE_MLP_OUT), *post = GET(MCH_SITE_RESID_POST),
                        *npost = GET(MCH_SITE_NORM_RESID_POST);
#undef GET
            assert_non_null(npost);
            const float *expect_pre =
                l == 0 ? emb : mch_act_cache_get(cache, MCH_SITE_NORM_RESID_POST, l - 1, b, NULL);
            assert_memory_equal(pre, expect_pre, (size_t)T * C * sizeof(float));
            /* q = resid_pre W_q^T + b_q */
            for (int t = 0; t < T; t++)
                for (int o2 = 0; o2 < C; o2++) {
                    double s = w->q_b[o2];
                    for (int i = 0; i < C; i++) s += (double)pre[t * C + i] * w->q_w[o2 * C + i];
                    ref[t * C + o2] = s;
                }
            bad += check("hook_q", q, ref, (long)T * C);
            /* pattern rows are distributions; z = pattern @ v per head */
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    double sum = 0;
                    for (int s = 0; s < T; s++) {
                        float p = pat[((size_t)h * T + t) * T + s];
                        bad += p < 0;
                        sum += p;
                    }
                    double one = 1.0;
                    float fs = (float)sum;
                    bad += check("pattern row sum", &fs, &one, 1);
                    for (int d = 0; d < HS; d++) {
                        double acc = 0;
                        for (int s = 0; s < T; s++)
                            acc += (double)pat[((size_t)h * T + t) * T + s] *
                                   v[(size_t)s * C + h * HS + d];
                        ref[(size_t)t * C + h * HS + d] = acc;
                    }
                }
            bad += check("hook_z", z, ref, (long)T * C);
            /* attn_out = z W_O^T + b_O; resid_mid = resid_pre + attn_out */
            for (int t = 0; t < T; t++)
                for (int o2 = 0; o2 < C; o2++) {
                    double s = w->o_b[o2];
                    for (int i = 0; i < C; i++) s += (double)z[t * C + i] * w->o_w[o2 * C + i];
                    ref[t * C + o2] = s;
                }
            bad += check("hook_attn_out", ao, ref, (long)T * C);
            for (int i = 0; i < T * C; i++) bad += mid[i] != pre[i] + ao[i];
            /* resid_post = LN1(resid_mid) + mlp_out; normalized_resid_post = LN2(resid_post) */
            for (int t = 0; t < T; t++) {
                for (int i = 0; i < C; i++) tmp[i] = mid[t * C + i];
                ref_layernorm(ref + (size_t)t * C, tmp, w->ln1_g, w->ln1_b, C, c->eps);
                for (int i = 0; i < C; i++) ref[(size_t)t * C + i] += mlp[t * C + i];
            }
            bad += check("hook_resid_post", post, ref, (long)T * C);
            for (int t = 0; t < T; t++) {
                for (int i = 0; i < C; i++) tmp[i] = post[t * C + i];
                ref_layernorm(ref + (size_t)t * C, tmp, w->ln2_g, w->ln2_b, C, c->eps);
            }
            bad += check("hook_normalized_resid_post", npost, ref, (long)T * C);
            checked++;
        }
        const float *last = mch_act_cache_get(cache, MCH_SITE_NORM_RESID_POST, c->L - 1, b, NULL);
        const float *hidden = mch_workspace_hidden(ws) + (size_t)mch_workspace_offsets(ws)[b] * C;
        assert_memory_equal(last, hidden, (size_t)T * C * sizeof(float));
    }
    assert_int_equal(checked, 2 * c->L);
    assert_int_equal(bad, 0);
    free(ref);
    free(tmp);
    mch_workspace_free(ws);
    mch_hooks_free(hk);
    mch_act_cache_free(cache);
}

static int zero_head0(void *user, const mch_act_view *v)
{
    (void)user;
    for (int t = 0; t < v->T; t++) memset(v->data + (size_t)t * v->C, 0, v->HS * sizeof(float));
    return 0;
}

static int rewrite_same(void *user, const mch_act_view *v)
{
    (void)user;
    size_t n = (size_t)v->T * v->C;
    for (size_t i = 0; i < n; i++) {
        volatile float x = v->data[i];
        v->data[i] = x;
    }
    return 0;
}

static int stop(void *user, const mch_act_view *v)
{
    (void)user;
    return v->seq == 1;
}

static void test_overwriting_through_a_hook_changes_the_score(void **state)
{
    fixture *f = *state;
    mch_err err = {0};
    mch_workspace *ws = mch_workspace_create(f->m, 256, 64);
    mch_hooks *hk = mch_hooks_create(f->m->cfg.L);
    mch_batch bt = {2, 64, f->ids, f->types, f->lens};
    float base[2], same[2], zeroed[2];
    mch_forward_out out = {base, NULL, NULL};
    assert_int_equal(mch_forward(f->m, ws, &bt, NULL, &out, &err), MCH_OK);
    assert_int_equal(mch_hooks_add_name(hk, "blocks.0.attn.hook_z", rewrite_same, NULL, &err),
                     MCH_OK);
    mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
    out.scores = same;
    assert_int_equal(mch_forward(f->m, ws, &bt, &o, &out, &err), MCH_OK);
    assert_memory_equal(base, same, sizeof base);
    mch_hooks_clear(hk);
    assert_int_equal(mch_hooks_add_name(hk, "blocks.0.attn.hook_z", zero_head0, NULL, &err),
                     MCH_OK);
    out.scores = zeroed;
    assert_int_equal(mch_forward(f->m, ws, &bt, &o, &out, &err), MCH_OK);
    assert_true(zeroed[0] != base[0] && zeroed[1] != base[1]);
    /* A hook that returns non-zero stops the forward with a message naming it. */
    mch_hooks_clear(hk);
    assert_int_equal(mch_hooks_add_name(hk, "blocks.1.hook_mlp_out", stop, NULL, &err), MCH_OK);
    assert_int_equal(mch_forward(f->m, ws, &bt, &o, &out, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "blocks.1.hook_mlp_out"));
    mch_hooks_free(hk);
    mch_workspace_free(ws);
}

static void test_start_at_layer_reproduces_full_forward(void **state)
{
    fixture *f = *state;
    const mch_model *m = f->m;
    int C = m->cfg.C;
    mch_err err = {0};
    mch_act_cache *cache = mch_act_cache_create(m);
    assert_int_equal(mch_act_cache_add(cache, "blocks.*.hook_resid_pre", &err), MCH_OK);
    mch_hooks *hk = mch_hooks_create(m->cfg.L);
    assert_int_equal(mch_act_cache_attach(cache, hk, &err), MCH_OK);
    mch_workspace *ws = mch_workspace_create(m, 256, 64);
    mch_batch bt = {2, 64, f->ids, f->types, f->lens};
    float full[2], from[2];
    mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
    mch_forward_out out = {full, NULL, NULL};
    assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
    int N = f->lens[0] + f->lens[1], checked = 0;
    float *packed = malloc((size_t)N * C * sizeof *packed);
    for (int l = 1; l < m->cfg.L; l++) {
        memcpy(packed, mch_act_cache_get(cache, MCH_SITE_RESID_PRE, l, 0, NULL),
               (size_t)f->lens[0] * C * sizeof(float));
        memcpy(packed + (size_t)f->lens[0] * C,
               mch_act_cache_get(cache, MCH_SITE_RESID_PRE, l, 1, NULL),
               (size_t)f->lens[1] * C * sizeof(float));
        mch_forward_opts ol = {NULL, l, packed, MCH_POOL_CLS};
        out.scores = from;
        assert_int_equal(mch_forward(m, ws, &bt, &ol, &out, &err), MCH_OK);
        assert_memory_equal(full, from, sizeof full);
        checked++;
    }
    assert_true(checked > 0);
    free(packed);
    mch_workspace_free(ws);
    mch_hooks_free(hk);
    mch_act_cache_free(cache);
}

/* ---- the finer hooks against the float64 torch reference (tests/data/hooks/, made by
 * tests/ref/hooks_golden.py from tests/cli/encoder_ref.py) ---- */

typedef struct {
    int n;
    int32_t ids[2][64], types[2][64];
    int lens[2];
} golden_batch;

static cJSON *golden_hooks(const char *model, golden_batch *gb)
{
    char path[512];
    snprintf(path, sizeof path, MCH_TEST_DATA "/hooks/%s.json", model);
    cJSON *j = tu_read_json(path);
    assert_non_null(j);
    const cJSON *cases = cJSON_GetObjectItem(j, "cases");
    gb->n = cJSON_GetArraySize(cases);
    assert_int_equal(gb->n, 2);
    for (int b = 0; b < 2; b++) {
        const cJSON *c = cJSON_GetArrayItem(cases, b);
        gb->lens[b] = tu_ids(c, "input_ids", gb->ids[b], 64);
        assert_int_equal(tu_ids(c, "token_type_ids", gb->types[b], 64), gb->lens[b]);
    }
    return j;
}

static void test_finer_hooks_match_torch_reference(void **state)
{
    (void)state;
    mch_model *m = NULL;
    mch_err err = {0};
    assert_int_equal(mch_model_open(&m, MODEL_DIR, &err), MCH_OK);
    golden_batch gb;
    cJSON *j = golden_hooks("bert-ce-tiny", &gb);
    const char *names[] = {"blocks.*.attn.hook_attn_scores", "blocks.*.attn.hook_result",
                           "blocks.*.mlp.hook_pre",          "blocks.*.mlp.hook_post",
                           "blocks.*.hook_resid_mid",        "blocks.*.hook_resid_post"};
    mch_act_cache *cache = mch_act_cache_create(m);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(mch_act_cache_add(cache, names[i], &err), MCH_OK);
    mch_hooks *hk = mch_hooks_create(m->cfg.L);
    assert_int_equal(mch_act_cache_attach(cache, hk, &err), MCH_OK);
    mch_workspace *ws = mch_workspace_create(m, 128, 64);
    mch_batch bt = {2, 64, gb.ids[0], gb.types[0], gb.lens};
    float scores[2];
    mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
    mch_forward_out out = {scores, NULL, NULL};
    assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
    double *want = malloc(sizeof(double) * 64 * 64 * 64);
    long bad = 0, values = 0, points = 0;
    for (int b = 0; b < 2; b++) {
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "cases"), b);
        const cJSON *hooks = cJSON_GetObjectItem(c, "hooks");
        double ws0 = cJSON_GetObjectItem(c, "score")->valuedouble;
        bad += tu_compare("score", &scores[b], &ws0, 1, 1e-5, 1e-4);
        for (const cJSON *h = hooks->child; h; h = h->next) {
            mch_site site;
            int layer, T = 0;
            assert_int_equal(mch_hook_parse(h->string, m->cfg.L, &site, &layer, &err), MCH_OK);
            const float *got = mch_act_cache_get(cache, site, layer, b, &T);
            assert_non_null(got);
            long n = tu_flatten(h, want, 64 * 64 * 64);
            assert_int_equal(n, (long)mch_site_floats(&m->cfg, site, T));
            bad += tu_compare(h->string, got, want, n, 1e-5, 1e-4);
            values += n;
            points++;
        }
    }
    printf("bert-ce-tiny: %ld hook points, %ld values against the torch reference\n", points,
           values);
    assert_int_equal(points, 2 * 6 * m->cfg.L);
    assert_int_equal(bad, 0);
    free(want);
    cJSON_Delete(j);
    mch_workspace_free(ws);
    mch_hooks_free(hk);
    mch_act_cache_free(cache);
    mch_model_close(m);
}

typedef struct {
    const char *op;
    int head;
    double factor;
} overwrite;

/* The fixture's overwrite ops on sequence 0 (see tests/ref/hooks_golden.py). */
static int apply_overwrite(void *user, const mch_act_view *v)
{
    const overwrite *w = user;
    if (v->seq != 0) return 0;
    size_t n = mch_act_view_floats(v);
    if (!strcmp(w->op, "scale")) {
        for (size_t i = 0; i < n; i++) v->data[i] = (float)(v->data[i] * w->factor);
    } else if (!strcmp(w->op, "ramp")) {
        size_t row = v->site == MCH_SITE_MLP_PRE || v->site == MCH_SITE_MLP_POST ? (size_t)v->FF
                                                                                 : (size_t)v->C;
        for (size_t i = 0; i < n; i++)
            v->data[i] = (float)(v->data[i] + w->factor * (double)(i % row) / (double)row);
    } else if (v->site == MCH_SITE_RESULT) { /* scale_head: (T, NH, C) */
        for (int t = 0; t < v->T; t++)
            for (int c = 0; c < v->C; c++) {
                float *x = v->data + ((size_t)t * v->NH + w->head) * v->C + c;
                *x = (float)(*x * w->factor);
            }
    } else { /* scale_head of the scores: (NH, T, T) */
        for (size_t i = 0; i < (size_t)v->T * v->T; i++) {
            float *x = v->data + (size_t)w->head * v->T * v->T + i;
            *x = (float)(*x * w->factor);
        }
    }
    return 0;
}

static long overwrites_of(const char *model_dir, const char *model)
{
    mch_model *m = NULL;
    mch_err err = {0};
    assert_int_equal(mch_model_open(&m, model_dir, &err), MCH_OK);
    golden_batch gb;
    cJSON *j = golden_hooks(model, &gb);
    mch_workspace *ws = mch_workspace_create(m, 128, 64);
    mch_hooks *hk = mch_hooks_create(m->cfg.L);
    long checked = 0, bad = 0;
    for (const cJSON *o = cJSON_GetObjectItem(j, "overwrites")->child; o; o = o->next) {
        const cJSON *head = cJSON_GetObjectItem(o, "head");
        overwrite w = {cJSON_GetObjectItem(o, "op")->valuestring, head ? head->valueint : -1,
                       cJSON_GetObjectItem(o, "factor")->valuedouble};
        const char *name = cJSON_GetObjectItem(o, "hook")->valuestring;
        double want = cJSON_GetObjectItem(o, "score")->valuedouble;
        const cJSON *case1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "cases"), 1);
        double want1 = cJSON_GetObjectItem(case1, "score")->valuedouble;
        mch_hooks_clear(hk);
        assert_int_equal(mch_hooks_add_name(hk, name, apply_overwrite, &w, &err), MCH_OK);
        /* in a batch of two, where sequence 1 is left alone */
        mch_batch bt = {2, 64, gb.ids[0], gb.types[0], gb.lens};
        float scores[2];
        mch_forward_opts fo = {hk, 0, NULL, MCH_POOL_CLS};
        mch_forward_out out = {scores, NULL, NULL};
        assert_int_equal(mch_forward(m, ws, &bt, &fo, &out, &err), MCH_OK);
        char what[160];
        snprintf(what, sizeof what, "%s score with %s %s", model, name, w.op);
        bad += tu_compare(what, &scores[0], &want, 1, 1e-5, 1e-4);
        bad += tu_compare("sequence 1 untouched", &scores[1], &want1, 1, 1e-5, 1e-4);
        checked++;
    }
    assert_int_equal(bad, 0);
    cJSON_Delete(j);
    mch_hooks_free(hk);
    mch_workspace_free(ws);
    mch_model_close(m);
    return checked;
}

static void test_overwriting_finer_hooks_matches_torch_reference(void **state)
{
    (void)state;
    long n = overwrites_of(MODEL_DIR, "bert-ce-tiny");
    n += overwrites_of(MCH_TEST_DATA "/../../examples/demo-ce", "demo-ce");
    printf("%ld overwritten forwards against the torch reference\n", n);
    assert_int_equal(n, 16);
}

static void test_unknown_hook_suggests_the_nearest(void **state)
{
    (void)state;
    struct {
        const char *name, *want;
    } cases[] = {
        {"blocks.0.attn.hook_zz", "did you mean 'blocks.0.attn.hook_z'?"},
        {"blocks.1.hook_resid_psot", "did you mean 'blocks.1.hook_resid_post'?"},
        {"blocks.2.attn.hook_atn_scores", "did you mean 'blocks.2.attn.hook_attn_scores'?"},
        {"blocks.0.mlp.hook_pos", "did you mean 'blocks.0.mlp.hook_post'?"},
        {"blocks.0.mlp_hook_pre", "did you mean 'blocks.0.mlp.hook_pre'?"},
        {"hook_full_embeds", "did you mean 'hook_full_embed'?"},
        {"hook_embed", "did you mean 'hook_full_embed'?"},
        {"block.1.attn.hook_result", "did you mean 'blocks.1.attn.hook_result'?"},
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mch_site site;
        int layer;
        mch_err err = {0};
        assert_int_equal(mch_hook_parse(cases[i].name, 3, &site, &layer, &err), MCH_ERR_ARG);
        if (!strstr(err.msg, cases[i].want) || !strstr(err.msg, "unknown hook"))
            fail_msg("%s: '%s'", cases[i].name, err.msg);
        checked++;
    }
    /* a blocks.*. name is answered with a blocks.*. name */
    char *star[] = {"blocks.*.attn.hook_reslt"};
    mch_hook_point *pts = NULL;
    size_t n = 0;
    mch_err err = {0};
    assert_int_equal(mch_hooks_expand(star, 1, 3, &pts, &n, &err), MCH_ERR_ARG);
    assert_string_equal(err.msg, "unknown hook 'blocks.*.attn.hook_reslt' (did you mean "
                                 "'blocks.*.attn.hook_result'?)");
    assert_int_equal(checked, 8);
    /* `cache get` parses with no model (L unbounded): the name's own layer is suggested; a layer
     * beyond 64 that the name does not give is not tried (the first 64 are) */
    mch_site site;
    int layer;
    mch_err e1 = {0}, e2 = {0};
    assert_int_equal(mch_hook_parse("blocks.70000.attn.hook_patern", 1 << 20, &site, &layer, &e1),
                     MCH_ERR_ARG);
    assert_non_null(strstr(e1.msg, "did you mean 'blocks.70000.attn.hook_pattern'?"));
    assert_int_equal(mch_hook_parse("blocks.x.attn.hook_pattern", 1 << 20, &site, &layer, &e2),
                     MCH_ERR_ARG);
    assert_non_null(strstr(e2.msg, "did you mean 'blocks.0.attn.hook_pattern'?"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_names_round_trip),
        cmocka_unit_test_setup_teardown(test_cached_activations_satisfy_block_equations, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_overwriting_through_a_hook_changes_the_score, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_at_layer_reproduces_full_forward, setup,
                                        teardown),
        cmocka_unit_test(test_finer_hooks_match_torch_reference),
        cmocka_unit_test(test_overwriting_finer_hooks_matches_torch_reference),
        cmocka_unit_test(test_unknown_hook_suggests_the_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
