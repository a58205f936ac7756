/* Golden parity of the encoder: every score, logit, embedding and every element of
 * normalized_resid_post of case 0, for every fixture model (F32, F16, BF16; BERT, DistilBERT,
 * ELECTRA, RoBERTa, XLM-RoBERTa), against golden.json from an independent reference; plus the
 * batch-equals-single property and the tokenizer path from texts to the golden ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "encoder.h"
#include "testutil.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define MAXN 65536

typedef struct {
    const mch_config *cfg;
    float *buf; /* (L, T, C) */
    int T;
    int calls;
} capture;

static int capture_resid(void *user, const mch_act_view *v)
{
    capture *cap = user;
    memcpy(cap->buf + (size_t)v->layer * cap->T * v->C, v->data,
           (size_t)v->T * v->C * sizeof(float));
    cap->calls++;
    return 0;
}

static int read_ids(const cJSON *c, const char *key, int32_t *out, int cap)
{
    double tmp[1024];
    long n = tu_flatten(cJSON_GetObjectItem(c, key), tmp, cap < 1024 ? cap : 1024);
    for (long i = 0; i < n; i++) out[i] = (int32_t)tmp[i];
    return (int)n;
}

static long compare_key(const char *model, int ci, const char *key, const cJSON *c,
                        const float *got, long n)
{
    static double want[MAXN];
    long wn = tu_flatten(cJSON_GetObjectItem(c, key), want, MAXN);
    char what[160];
    snprintf(what, sizeof what, "%s case %d %s", model, ci, key);
    if (wn != n) {
        fprintf(stderr, "%s: golden has %ld numbers, we have %ld\n", what, wn, n);
        return 1;
    }
    return tu_compare(what, got, want, n, ATOL, RTOL);
}

/* Checks case 0's normalized_resid_post of every layer ([L][T][C]) captured by hooks. */
static long check_resid(const char *model, const cJSON *c0, const capture *cap)
{
    long n = (long)cap->cfg->L * cap->T * cap->cfg->C;
    return compare_key(model, 0, "normalized_resid_post", c0, cap->buf, n);
}

static void run_cross_encoder(const char *model)
{
    char path[512];
    snprintf(path, sizeof path, MCH_TEST_DATA "/models/%s", model);
    mch_model *m = NULL;
    mch_err err = {0};
    assert_int_equal(mch_model_open(&m, path, &err), MCH_OK);
    snprintf(path, sizeof path, MCH_TEST_DATA "/models/%s/golden.json", model);
    cJSON *g = tu_read_json(path);
    assert_non_null(g);
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    int nc = cJSON_GetArraySize(cases);
    assert_true(nc > 0);
    const mch_config *cfg = &m->cfg;
    mch_workspace *ws = mch_workspace_create(m, 8192, 512);
    mch_hooks *hk = mch_hooks_create(cfg->L);
    capture cap = {cfg, calloc((size_t)cfg->L * 512 * cfg->C, sizeof(float)), 0, 0};
    int32_t *all_ids = calloc((size_t)nc * 512, sizeof *all_ids);
    int32_t *all_types = calloc((size_t)nc * 512, sizeof *all_types);
    int *lens = calloc((size_t)nc, sizeof *lens);
    float *single = calloc((size_t)nc, sizeof *single);
    long bad = 0;
    int checked = 0;
    for (int ci = 0; ci < nc; ci++) {
        const cJSON *c = cJSON_GetArrayItem(cases, ci);
        int32_t *ids = all_ids + (size_t)ci * 512, *types = all_types + (size_t)ci * 512;
        int T = read_ids(c, "input_ids", ids, 512);
        assert_int_equal(read_ids(c, "token_type_ids", types, 512), T);
        lens[ci] = T;
        /* The tokenizer path: texts -> the golden ids. */
        int32_t tids[512], ttypes[512];
        int tn = 0;
        int max_len = (int)cJSON_GetObjectItem(c, "max_len")->valuedouble;
        assert_int_equal(mch_tok_encode_to(m->tok, cJSON_GetObjectItem(c, "query")->valuestring,
                                           cJSON_GetObjectItem(c, "doc")->valuestring, 64, max_len,
                                           tids, ttypes, &tn, &err),
                         MCH_OK);
        assert_int_equal(tn, T);
        assert_memory_equal(tids, ids, (size_t)T * sizeof *ids);
        assert_memory_equal(ttypes, types, (size_t)T * sizeof *types);

        mch_batch bt = {1, 512, ids, types, &T};
        float logits[16], score;
        mch_forward_out out = {&score, logits, NULL};
        mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
        mch_hooks_clear(hk);
        if (ci == 0) {
            cap.T = T;
            for (int l = 0; l < cfg->L; l++)
                assert_int_equal(
                    mch_hooks_add(hk, MCH_SITE_NORM_RESID_POST, l, capture_resid, &cap, &err),
                    MCH_OK);
        }
        assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
        bad += compare_key(model, ci, "score", c, &score, 1);
        bad += compare_key(model, ci, "logits", c, logits, cfg->num_labels);
        if (ci == 0) {
            assert_int_equal(cap.calls, cfg->L);
            bad += check_resid(model, c, &cap);
        }
        single[ci] = score;
        checked++;
    }
    /* All cases as one padded batch equal the one-by-one scores. */
    float *batch_scores = calloc((size_t)nc, sizeof *batch_scores);
    mch_batch bt = {nc, 512, all_ids, all_types, lens};
    mch_forward_out out = {batch_scores, NULL, NULL};
    assert_int_equal(mch_forward(m, ws, &bt, NULL, &out, &err), MCH_OK);
    for (int ci = 0; ci < nc; ci++) {
        char what[128];
        snprintf(what, sizeof what, "%s batched case %d", model, ci);
        double want = single[ci];
        bad += tu_compare(what, &batch_scores[ci], &want, 1, ATOL, RTOL);
        bad += compare_key(model, ci, "score", cJSON_GetArrayItem(cases, ci), &batch_scores[ci], 1);
    }
    assert_int_equal(checked, nc);
    assert_int_equal(bad, 0);
    free(batch_scores);
    free(single);
    free(lens);
    free(all_types);
    free(all_ids);
    free(cap.buf);
    mch_hooks_free(hk);
    mch_workspace_free(ws);
    cJSON_Delete(g);
    mch_model_close(m);
}

static void test_bert_ce_tiny_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("bert-ce-tiny");
}
static void test_bert_ce_tiny_f16_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("bert-ce-tiny-f16");
}
static void test_bert_ce_tiny_bf16_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("bert-ce-tiny-bf16");
}
static void test_bert_ce_tiny_gelu_tanh_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("bert-ce-tiny-gelu-tanh");
}
static void test_distilbert_ce_tiny_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("distilbert-ce-tiny");
}
static void test_electra_ce_tiny_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("electra-ce-tiny");
}

static void test_roberta_ce_tiny_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("roberta-ce-tiny");
}
static void test_xlmr_ce_tiny_matches_golden(void **s)
{
    (void)s;
    run_cross_encoder("xlmr-ce-tiny");
}

static void test_distilbert_dot_tiny_matches_golden(void **s)
{
    (void)s;
    const char *model = "distilbert-dot-tiny";
    mch_model *m = NULL;
    mch_err err = {0};
    assert_int_equal(mch_model_open(&m, MCH_TEST_DATA "/models/distilbert-dot-tiny", &err), MCH_OK);
    cJSON *g = tu_read_json(MCH_TEST_DATA "/models/distilbert-dot-tiny/golden.json");
    assert_non_null(g);
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    int nc = cJSON_GetArraySize(cases);
    assert_true(nc > 0);
    const mch_config *cfg = &m->cfg;
    int C = cfg->C;
    mch_workspace *ws = mch_workspace_create(m, 2048, 512);
    mch_hooks *hk = mch_hooks_create(cfg->L);
    capture cap = {cfg, calloc((size_t)cfg->L * 512 * C, sizeof(float)), 0, 0};
    long bad = 0;
    int checked = 0;
    for (int ci = 0; ci < nc; ci++) {
        const cJSON *c = cJSON_GetArrayItem(cases, ci);
        int32_t ids[2 * 512] = {0};
        int lens[2];
        lens[0] = read_ids(c, "query_ids", ids, 512);
        lens[1] = read_ids(c, "doc_ids", ids + 512, 512);
        int max_len = (int)cJSON_GetObjectItem(c, "max_len")->valuedouble;
        const char *texts[2] = {cJSON_GetObjectItem(c, "query")->valuestring,
                                cJSON_GetObjectItem(c, "doc")->valuestring};
        for (int side = 0; side < 2; side++) {
            int32_t tids[512];
            int tn = 0;
            assert_int_equal(
                mch_tok_encode_to(m->tok, texts[side], NULL, 0, max_len, tids, NULL, &tn, &err),
                MCH_OK);
            assert_int_equal(tn, lens[side]);
            assert_memory_equal(tids, ids + 512 * side, (size_t)tn * sizeof *tids);
        }
        /* Query and document as one batch of two sequences. */
        mch_batch bt = {2, 512, ids, NULL, lens};
        float emb[2 * 1024], emb_mean[2 * 1024];
        mch_hooks_clear(hk);
        if (ci == 0) {
            cap.T = lens[1];
            for (int l = 0; l < cfg->L; l++)
                assert_int_equal(
                    mch_hooks_add(hk, MCH_SITE_NORM_RESID_POST, l, capture_resid, &cap, &err),
                    MCH_OK);
        }
        mch_batch doc_only = {1, 512, ids + 512, NULL, &lens[1]};
        mch_forward_out out = {NULL, NULL, emb};
        mch_forward_opts o = {NULL, 0, NULL, MCH_POOL_CLS};
        assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
        o.pooling = MCH_POOL_MEAN;
        out.emb = emb_mean;
        assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
        if (ci == 0) { /* the document alone, with the capture hooks */
            float tmp[1024];
            mch_forward_out o2 = {NULL, NULL, tmp};
            mch_forward_opts oh = {hk, 0, NULL, MCH_POOL_CLS};
            assert_int_equal(mch_forward(m, ws, &doc_only, &oh, &o2, &err), MCH_OK);
            assert_int_equal(cap.calls, cfg->L);
            bad += check_resid(model, c, &cap);
        }
        float score = 0, score_mean = 0;
        for (int i = 0; i < C; i++) {
            score += emb[i] * emb[C + i];
            score_mean += emb_mean[i] * emb_mean[C + i];
        }
        bad += compare_key(model, ci, "query_emb", c, emb, C);
        bad += compare_key(model, ci, "doc_emb", c, emb + C, C);
        bad += compare_key(model, ci, "query_emb_mean", c, emb_mean, C);
        bad += compare_key(model, ci, "doc_emb_mean", c, emb_mean + C, C);
        bad += compare_key(model, ci, "score", c, &score, 1);
        bad += compare_key(model, ci, "score_mean", c, &score_mean, 1);
        checked++;
    }
    assert_int_equal(checked, nc);
    assert_int_equal(bad, 0);
    free(cap.buf);
    mch_hooks_free(hk);
    mch_workspace_free(ws);
    cJSON_Delete(g);
    mch_model_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_ce_tiny_matches_golden),
        cmocka_unit_test(test_bert_ce_tiny_f16_matches_golden),
        cmocka_unit_test(test_bert_ce_tiny_bf16_matches_golden),
        cmocka_unit_test(test_bert_ce_tiny_gelu_tanh_matches_golden),
        cmocka_unit_test(test_distilbert_ce_tiny_matches_golden),
        cmocka_unit_test(test_electra_ce_tiny_matches_golden),
        cmocka_unit_test(test_roberta_ce_tiny_matches_golden),
        cmocka_unit_test(test_xlmr_ce_tiny_matches_golden),
        cmocka_unit_test(test_distilbert_dot_tiny_matches_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
