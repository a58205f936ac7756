/* The optimised patching engine against the naive one-forward-per-patch oracle on seeded random
 * tiny models (BERT and ELECTRA cross-encoders, a DistilBERT bi-encoder with CLS and mean
 * pooling) and random pairs: raw patched scores of every sweep within 1e-5 + 1e-5 |want|.
 * Also: pairs below min_delta are skipped without a map and nothing is NaN or inf, and rows
 * equal only in a prefix are patched (the identical-row shortcut compares whole rows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "patch.h"
#include "testutil.h"

static uint64_t rng_state;
static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}
static float rng_normal(void)
{
    double u1 = (rng() + 1.0) / 2147483649.0, u2 = (rng() + 1.0) / 2147483649.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct {
    mch_model *m;
    char *bytes; /* safetensors bytes the model's tensors point into */
} rand_model;

/* The fixture's tensor layout with every F32 weight redrawn from N(0, sigma^2) (LayerNorm
 * gains around 1), seeded. */
static void rand_model_open(rand_model *rm, const char *name, uint64_t seed, float sigma)
{
    char path[512];
    size_t len;
    snprintf(path, sizeof path, MCH_TEST_DATA "/models/%s/model.safetensors", name);
    rm->bytes = tu_read_file(path, &len);
    assert_non_null(rm->bytes);
    mch_err err = {0};
    mch_safetensors *st = NULL;
    assert_int_equal(mch_st_parse(&st, rm->bytes, len, name, &err), MCH_OK);
    rng_state = seed;
    for (size_t i = 0; i < st->n; i++) {
        mch_st_tensor *t = &st->tensors[i];
        assert_int_equal(t->dtype, MCH_DT_F32);
        float *d = (float *)(uintptr_t)t->data;
        int gain = strstr(t->name, "LayerNorm.weight") || strstr(t->name, "layer_norm.weight");
        for (size_t k = 0; k < t->numel; k++) d[k] = (gain ? 1.0f : 0.0f) + sigma * rng_normal();
    }
    mch_config cfg;
    snprintf(path, sizeof path, MCH_TEST_DATA "/models/%s/config.json", name);
    assert_int_equal(mch_config_open(&cfg, path, &err), MCH_OK);
    assert_int_equal(mch_model_from_parts(&rm->m, &cfg, st, NULL, name, &err), MCH_OK);
}

static void rand_model_close(rand_model *rm)
{
    mch_model_close(rm->m);
    free(rm->bytes);
}

typedef struct {
    float *heads, *blocks, *hz, *hp;
} score_maps;

static void maps_alloc(score_maps *s, const mch_config *c, int T, int nh)
{
    s->heads = calloc((size_t)c->L * c->NH, sizeof(float));
    s->blocks = calloc((size_t)3 * c->L * T, sizeof(float));
    s->hz = calloc((size_t)nh * T, sizeof(float));
    s->hp = calloc((size_t)nh * T, sizeof(float));
}

static void maps_free(score_maps *s)
{
    free(s->heads);
    free(s->blocks);
    free(s->hz);
    free(s->hp);
}

static int all_finite(const float *x, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Runs pairs random pairs through both engines; returns how many unskipped pairs compared. */
static int compare_engines(const mch_model *m, mch_pooling pooling, int pairs, uint64_t seed)
{
    const mch_config *c = &m->cfg;
    int heads[4] = {0, 1, c->L - 1, c->NH - 1};
    int compared = 0;
    long bad = 0;
    rng_state = seed;
    for (int i = 0; i < pairs; i++) {
        int T = 6 + (int)(rng() % 30), Tq = 3 + (int)(rng() % 8);
        int32_t base[64], pert[64], types[64], q[16];
        for (int t = 0; t < T; t++) base[t] = 1000 + (int32_t)(rng() % 20000);
        for (int t = 0; t < Tq; t++) q[t] = 1000 + (int32_t)(rng() % 20000);
        /* Cross-encoder: query segment 0..seg; bi-encoder: the whole document (seg 0). */
        int seg = c->head == MCH_HEAD_NONE ? 0 : 2 + (int)(rng() % (T - 3));
        for (int t = 0; t < T; t++) types[t] = seg && t > seg && c->type_vocab > 1;
        memcpy(pert, base, sizeof base);
        int changes = 1 + (int)(rng() % 2);
        for (int k = 0; k < changes; k++)
            pert[seg + 1 + (int)(rng() % (T - seg - 1))] = 1000 + (int32_t)(rng() % 20000);
        score_maps sm[2];
        mch_patch_result r[2];
        for (int naive = 0; naive < 2; naive++) {
            mch_patch_opts o = {MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS | MCH_SWEEP_HEAD_POS,
                                2,
                                heads,
                                0,
                                1e-6,
                                naive,
                                /* a small budget forces several chunks */ naive ? 0 : 64 << 10,
                                pooling,
                                0,
                                0,
                                0};
            mch_patcher *p = NULL;
            mch_err err = {0};
            assert_int_equal(mch_patcher_create(&p, m, &o, 64, &err), MCH_OK);
            maps_alloc(&sm[naive], c, T, 2);
            memset(&r[naive], 0, sizeof r[naive]);
            r[naive].heads_scores = sm[naive].heads;
            r[naive].blocks_scores = sm[naive].blocks;
            r[naive].head_pos_z_scores = sm[naive].hz;
            r[naive].head_pos_pattern_scores = sm[naive].hp;
            mch_patch_pair pair = {T, base, pert, types, Tq, q};
            if (mch_patch_run(p, &pair, &r[naive], &err)) fail_msg("%s", err.msg);
            mch_patcher_free(p);
        }
        assert_int_equal(r[0].skipped, r[1].skipped);
        if (!r[0].skipped) {
            long nH = (long)c->L * c->NH, nB = 3L * c->L * T, nP = 2L * T;
            double *want = malloc((size_t)nB * sizeof *want);
            const float *got[4] = {sm[0].heads, sm[0].blocks, sm[0].hz, sm[0].hp};
            const float *ref[4] = {sm[1].heads, sm[1].blocks, sm[1].hz, sm[1].hp};
            long n[4] = {nH, nB, nP, nP};
            const char *what[4] = {"heads_scores", "blocks_scores", "head_pos_z_scores",
                                   "head_pos_pattern_scores"};
            for (int k = 0; k < 4; k++) {
                for (long j = 0; j < n[k]; j++) want[j] = ref[k][j];
                bad += tu_compare(what[k], got[k], want, n[k], 1e-5, 1e-5);
                bad += !all_finite(got[k], n[k]);
            }
            free(want);
            assert_true(r[0].forwards_saved > 0 || c->L == 1);
            compared++;
        }
        maps_free(&sm[0]);
        maps_free(&sm[1]);
    }
    assert_int_equal(bad, 0);
    return compared;
}

static void test_bert_optimised_equals_naive(void **s)
{
    (void)s;
    rand_model rm;
    rand_model_open(&rm, "bert-ce-tiny", 11, 0.3f);
    assert_true(compare_engines(rm.m, MCH_POOL_CLS, 6, 101) > 0);
    rand_model_close(&rm);
}

static void test_electra_optimised_equals_naive(void **s)
{
    (void)s;
    rand_model rm;
    rand_model_open(&rm, "electra-ce-tiny", 12, 0.3f);
    assert_true(compare_engines(rm.m, MCH_POOL_CLS, 6, 102) > 0);
    rand_model_close(&rm);
}

static void test_distilbert_biencoder_optimised_equals_naive(void **s)
{
    (void)s;
    rand_model rm;
    rand_model_open(&rm, "distilbert-dot-tiny", 13, 0.3f);
    assert_true(compare_engines(rm.m, MCH_POOL_CLS, 6, 103) > 0);
    assert_true(compare_engines(rm.m, MCH_POOL_MEAN, 6, 104) > 0);
    rand_model_close(&rm);
}

static void test_demo_optimised_equals_naive_on_random_pairs(void **s)
{
    (void)s;
    mch_model *m = NULL;
    mch_err err = {0};
    assert_int_equal(mch_model_open(&m, MCH_TEST_DATA "/../../examples/demo-ce", &err), MCH_OK);
    assert_true(compare_engines(m, MCH_POOL_CLS, 4, 105) > 0);
    mch_model_close(m);
}

static void test_identical_inputs_are_skipped_without_nan(void **s)
{
    (void)s;
    mch_model *m = NULL;
    mch_err err = {0};
    assert_int_equal(mch_model_open(&m, MCH_TEST_DATA "/models/bert-ce-tiny", &err), MCH_OK);
    int32_t ids[8] = {101, 2054, 2003, 102, 3000, 2003, 1996, 102};
    int32_t types[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    float heads[8] = {0};
    for (int naive = 0; naive < 2; naive++) {
        mch_patch_opts o = {MCH_SWEEP_HEADS, 0, NULL, 0, 1e-3, naive, 0, MCH_POOL_CLS, 0, 0, 0};
        mch_patcher *p = NULL;
        assert_int_equal(mch_patcher_create(&p, m, &o, 8, &err), MCH_OK);
        mch_patch_pair pair = {8, ids, ids, types, 0, NULL};
        mch_patch_result r = {0};
        r.heads = heads;
        assert_int_equal(mch_patch_run(p, &pair, &r, &err), MCH_OK);
        assert_true(r.skipped);
        assert_non_null(strstr(r.skip_reason, "min_delta"));
        assert_true(isfinite(r.score_baseline) && r.score_baseline == r.score_perturbed);
        assert_int_equal(r.patches, 0);
        for (int i = 0; i < 8; i++) assert_true(heads[i] == 0);
        mch_patcher_free(p);
    }
    mch_model_close(m);
}

/* "Identical rows are free" must compare whole rows: here the layer-0 resid_pre rows of the
 * changed position agree in their first C/4 floats (C bytes) and differ in the rest, so that
 * position must be patched, not answered with the baseline score. The embedding rows are
 * dyadic (multiples of 0.5, summed exactly in any order) with the position's and the token
 * type's embeddings zero, and token B's row is token A's with the last 3C/4 entries reversed:
 * the same mean and variance bit for bit, hence equal LayerNorm outputs in the first C/4. */
static void test_rows_equal_only_in_a_prefix_are_patched(void **s)
{
    (void)s;
    rand_model rm;
    rand_model_open(&rm, "bert-ce-tiny", 21, 0.3f);
    const mch_config *c = &rm.m->cfg;
    int C = c->C, E = c->E, L = c->L, Q = C / 4;
    assert_int_equal(E, C); /* no ELECTRA projection: the embedding LayerNorm output is resid_pre */
    enum { T = 10, POS = 7, A = 2000, B = 2001 };
    int32_t base[T] = {101, 3000, 3001, 102, 4000, 4001, 4002, A, 4003, 102}, pert[T], types[T];
    memcpy(pert, base, sizeof base);
    pert[POS] = B;
    for (int t = 0; t < T; t++) types[t] = t > 3;
    float *wte = (float *)(uintptr_t)rm.m->wte, *wpe = (float *)(uintptr_t)rm.m->wpe;
    float *wtt = (float *)(uintptr_t)rm.m->wtt;
    float *ea = wte + (size_t)A * E, *eb = wte + (size_t)B * E;
    rng_state = 77;
    for (int e = 0; e < E; e++) {
        ea[e] = 0.5f * (float)((int)(rng() % 5) - 2);
        wpe[(size_t)POS * E + e] = 0;
        wtt[(size_t)types[POS] * E + e] = 0;
    }
    ea[Q] = 1, ea[E - 1] = -1; /* the reversed tail differs from the tail */
    for (int e = 0; e < E; e++) eb[e] = e < Q ? ea[e] : ea[E - 1 - (e - Q)];

    float *scores[2];
    mch_patch_result r[2];
    for (int naive = 0; naive < 2; naive++) {
        mch_patch_opts o = {MCH_SWEEP_BLOCKS, 0, NULL, 0, 1e-6, naive, 0, MCH_POOL_CLS, 0, 0, 0};
        mch_patcher *p = NULL;
        mch_err err = {0};
        assert_int_equal(mch_patcher_create(&p, rm.m, &o, T, &err), MCH_OK);
        scores[naive] = calloc((size_t)3 * L * T, sizeof(float));
        memset(&r[naive], 0, sizeof r[naive]);
        r[naive].blocks_scores = scores[naive];
        mch_patch_pair pair = {T, base, pert, types, 0, NULL};
        if (mch_patch_run(p, &pair, &r[naive], &err)) fail_msg("%s", err.msg);
        assert_false(r[naive].skipped);
        /* The case is the one described: rows equal in their first C/4 floats, not after. */
        const float *rb = mch_patcher_activation(p, 0, MCH_SITE_RESID_PRE, 0);
        const float *rp = mch_patcher_activation(p, 1, MCH_SITE_RESID_PRE, 0);
        assert_non_null(rb);
        assert_non_null(rp);
        rb += (size_t)POS * C, rp += (size_t)POS * C;
        for (int e = 0; e < Q; e++)
            if (rb[e] != rp[e])
                fail_msg("blocks.0.hook_resid_pre[%d, %d]: baseline %.9g, perturbed %.9g: want "
                         "equal in the first %d entries",
                         POS, e, (double)rb[e], (double)rp[e], Q);
        if (!memcmp(rb + Q, rp + Q, (size_t)(C - Q) * sizeof *rb))
            fail_msg("blocks.0.hook_resid_pre[%d]: the rows are equal after entry %d too", POS, Q);
        mch_patcher_free(p);
    }
    /* The naive oracle patches the row: its score is not the baseline's. */
    double want_t = scores[1][POS], base_score = r[1].score_baseline;
    if (fabs(want_t - base_score) <= 1e-4)
        fail_msg("the naive patched score %.9g is the baseline's %.9g: the case cannot tell",
                 want_t, base_score);
    double *want = malloc((size_t)3 * L * T * sizeof *want);
    for (long j = 0; j < 3L * L * T; j++) want[j] = scores[1][j];
    assert_int_equal(tu_compare("blocks_scores", scores[0], want, 3L * L * T, 1e-5, 1e-5), 0);
    free(want);
    free(scores[0]);
    free(scores[1]);
    rand_model_close(&rm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_optimised_equals_naive),
        cmocka_unit_test(test_electra_optimised_equals_naive),
        cmocka_unit_test(test_distilbert_biencoder_optimised_equals_naive),
        cmocka_unit_test(test_demo_optimised_equals_naive_on_random_pairs),
        cmocka_unit_test(test_identical_inputs_are_skipped_without_nan),
        cmocka_unit_test(test_rows_equal_only_in_a_prefix_are_patched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
