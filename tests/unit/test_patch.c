/* Patching against golden maps from an independent float64 reference of the
 * one-forward-per-patch loop (tests/data/patching): every raw patched score of every sweep, and
 * the effects of cross-encoder cases, for the optimised engine and for the naive one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "patch.h"
#include "testutil.h"

#define MAXT 512
#define EFFECT_TOL 1e-4
#define EFFECT_MIN_DELTA 0.05

typedef struct {
    float heads[64 * 64], heads_s[64 * 64];
    float blocks[3 * 64 * MAXT], blocks_s[3 * 64 * MAXT];
    float hz[8 * MAXT], hz_s[8 * MAXT], hp[8 * MAXT], hp_s[8 * MAXT];
} maps;

static int ids_of(const cJSON *c, const char *key, int32_t *out)
{
    double tmp[MAXT];
    long n = tu_flatten(cJSON_GetObjectItem(c, key), tmp, MAXT);
    for (long i = 0; i < n; i++) out[i] = (int32_t)tmp[i];
    return (int)n;
}

/* Compares got (n) with the golden array at key inside obj; effects only when asked. */
static long cmp(const char *what, int ci, const cJSON *obj, const char *key, const float *got,
                long n, double atol, double rtol)
{
    static double want[3 * 64 * MAXT];
    long wn = tu_flatten(cJSON_GetObjectItem(obj, key), want, 3 * 64 * MAXT);
    char name[128];
    snprintf(name, sizeof name, "case %d %s.%s", ci, what, key);
    if (wn != n) {
        fprintf(stderr, "%s: golden has %ld numbers, we have %ld\n", name, wn, n);
        return 1;
    }
    return tu_compare(name, got, want, n, atol, rtol);
}

static void run_fixture(const char *model_dir, const char *fixture, int naive)
{
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, model_dir, &err), MCH_OK);
    cJSON *g = tu_read_json(fixture);
    assert_non_null(g);
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    int L = m->cfg.L, NH = m->cfg.NH, checked = 0;
    long bad = 0, compared = 0;
    maps *mp = calloc(1, sizeof *mp);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        int32_t base[MAXT], pert[MAXT], types[MAXT], q[MAXT];
        int T = ids_of(c, "ids_baseline", base);
        assert_int_equal(ids_of(c, "ids_perturbed", pert), T);
        assert_int_equal(ids_of(c, "token_types", types), T);
        int Tq = cJSON_GetObjectItem(c, "query_ids") ? ids_of(c, "query_ids", q) : 0;
        const cJSON *hp = cJSON_GetObjectItem(c, "head_pos");
        int heads[16], nh = 0;
        const cJSON *hl;
        if (hp) cJSON_ArrayForEach(hl, cJSON_GetObjectItem(hp, "heads"))
            {
                heads[2 * nh] = cJSON_GetArrayItem(hl, 0)->valueint;
                heads[2 * nh + 1] = cJSON_GetArrayItem(hl, 1)->valueint;
                nh++;
            }
        mch_patch_opts o = {MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS | (nh ? MCH_SWEEP_HEAD_POS : 0),
                            nh,
                            heads,
                            0,
                            1e-3,
                            naive,
                            0,
                            MCH_POOL_CLS,
                            0,
                            0,
                            0};
        mch_patcher *p = NULL;
        assert_int_equal(mch_patcher_create(&p, m, &o, T, &err), MCH_OK);
        mch_patch_pair pair = {T, base, pert, types, Tq, Tq ? q : NULL};
        mch_patch_result r = {0};
        r.heads = mp->heads, r.heads_scores = mp->heads_s;
        r.blocks = mp->blocks, r.blocks_scores = mp->blocks_s;
        r.head_pos_z = mp->hz, r.head_pos_z_scores = mp->hz_s;
        r.head_pos_pattern = mp->hp, r.head_pos_pattern_scores = mp->hp_s;
        if (mch_patch_run(p, &pair, &r, &err) != MCH_OK) fail_msg("patch: %s", err.msg);
        assert_false(r.skipped);
        double sb = cJSON_GetObjectItem(c, "score_baseline")->valuedouble;
        double sp = cJSON_GetObjectItem(c, "score_perturbed")->valuedouble;
        float got[2] = {(float)r.score_baseline, (float)r.score_perturbed};
        double want[2] = {sb, sp};
        bad += tu_compare("scores", got, want, 2, 1e-5, 1e-5);
        long TL = (long)L * T;
        bad += cmp("", checked, c, "heads_scores", mp->heads_s, (long)L * NH, 1e-5, 1e-5);
        const cJSON *bs = cJSON_GetObjectItem(c, "blocks_scores");
        bad += cmp("blocks_scores", checked, bs, "resid_pre", mp->blocks_s, TL, 1e-5, 1e-5);
        bad += cmp("blocks_scores", checked, bs, "attn_out", mp->blocks_s + TL, TL, 1e-5, 1e-5);
        bad += cmp("blocks_scores", checked, bs, "mlp_out", mp->blocks_s + 2 * TL, TL, 1e-5, 1e-5);
        compared += (long)L * NH + 3 * TL;
        if (nh) {
            const cJSON *hs = cJSON_GetObjectItem(c, "head_pos_scores");
            bad += cmp("head_pos_scores", checked, hs, "z", mp->hz_s, (long)nh * T, 1e-5, 1e-5);
            bad +=
                cmp("head_pos_scores", checked, hs, "pattern", mp->hp_s, (long)nh * T, 1e-5, 1e-5);
            compared += 2L * nh * T;
        }
        /* Effects of cross-encoder cases with a clear score change. */
        if (!Tq && fabs(sp - sb) >= EFFECT_MIN_DELTA) {
            bad += cmp("", checked, c, "heads", mp->heads, (long)L * NH, EFFECT_TOL, 0);
            const cJSON *bm = cJSON_GetObjectItem(c, "blocks");
            bad += cmp("blocks", checked, bm, "resid_pre", mp->blocks, TL, EFFECT_TOL, 0);
            bad += cmp("blocks", checked, bm, "attn_out", mp->blocks + TL, TL, EFFECT_TOL, 0);
            bad += cmp("blocks", checked, bm, "mlp_out", mp->blocks + 2 * TL, TL, EFFECT_TOL, 0);
            if (nh) {
                bad += cmp("head_pos", checked, hp, "z", mp->hz, (long)nh * T, EFFECT_TOL, 0);
                bad += cmp("head_pos", checked, hp, "pattern", mp->hp, (long)nh * T, EFFECT_TOL, 0);
            }
        }
        mch_patcher_free(p);
        checked++;
    }
    assert_true(checked > 0);
    assert_true(compared > 0);
    assert_int_equal(bad, 0);
    free(mp);
    cJSON_Delete(g);
    mch_model_close(m);
}

/* mch_patch_subset over every third head and every fourth block entry (a different third and
 * fourth each case): the chosen raw scores equal the golden ones, nothing else is written. */
static void run_subset(const char *model_dir, const char *fixture, int naive)
{
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, model_dir, &err), MCH_OK);
    cJSON *g = tu_read_json(fixture);
    assert_non_null(g);
    int L = m->cfg.L, NH = m->cfg.NH, ci = 0;
    long bad = 0, chosen_total = 0;
    maps *mp = calloc(1, sizeof *mp);
    static double want[3 * 64 * MAXT];
    static unsigned char hmask[64 * 64], bmask[3 * 64 * MAXT];
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
    {
        int32_t base[MAXT], pert[MAXT], types[MAXT], q[MAXT];
        int T = ids_of(c, "ids_baseline", base);
        assert_int_equal(ids_of(c, "ids_perturbed", pert), T);
        assert_int_equal(ids_of(c, "token_types", types), T);
        int Tq = cJSON_GetObjectItem(c, "query_ids") ? ids_of(c, "query_ids", q) : 0;
        mch_patch_opts o = {.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS,
                            .min_delta = 1e-3,
                            .naive = naive,
                            .pooling = MCH_POOL_CLS};
        mch_patcher *p = NULL;
        assert_int_equal(mch_patcher_create(&p, m, &o, T, &err), MCH_OK);
        mch_patch_pair pair = {T, base, pert, types, Tq, Tq ? q : NULL};
        long nhd = (long)L * NH, nbl = 3L * L * T, chosen = 0;
        for (long i = 0; i < nhd; i++) chosen += hmask[i] = (unsigned char)(i % 3 == ci % 3);
        for (long i = 0; i < nbl; i++) chosen += bmask[i] = (unsigned char)(i % 4 == ci % 4);
        for (long i = 0; i < nhd; i++) mp->heads[i] = mp->heads_s[i] = -7.0f;
        for (long i = 0; i < nbl; i++) mp->blocks[i] = mp->blocks_s[i] = -7.0f;
        mch_patch_result r = {0};
        r.heads = mp->heads, r.heads_scores = mp->heads_s;
        r.blocks = mp->blocks, r.blocks_scores = mp->blocks_s;
        if (mch_patch_subset(p, &pair, hmask, bmask, &r, &err) != MCH_OK)
            fail_msg("subset: %s", err.msg);
        assert_int_equal(r.patches, chosen);
        assert_int_equal(tu_flatten(cJSON_GetObjectItem(c, "heads_scores"), want, nhd), nhd);
        for (long i = 0; i < nhd; i++) {
            assert_true(mp->heads[i] == -7.0f);
            if (!hmask[i])
                assert_true(mp->heads_s[i] == -7.0f);
            else
                bad += tu_compare("subset heads_scores", mp->heads_s + i, want + i, 1, 1e-5, 1e-5);
        }
        static const char *sites[3] = {"resid_pre", "attn_out", "mlp_out"};
        for (int k = 0; k < 3; k++) {
            const cJSON *bs = cJSON_GetObjectItem(c, "blocks_scores");
            long TL = (long)L * T;
            assert_int_equal(tu_flatten(cJSON_GetObjectItem(bs, sites[k]), want, TL), TL);
            for (long i = 0; i < TL; i++) {
                long j = k * TL + i;
                assert_true(mp->blocks[j] == -7.0f);
                if (!bmask[j])
                    assert_true(mp->blocks_s[j] == -7.0f);
                else
                    bad += tu_compare(sites[k], mp->blocks_s + j, want + i, 1, 1e-5, 1e-5);
            }
        }
        chosen_total += chosen;
        mch_patcher_free(p);
        ci++;
    }
    assert_true(ci > 0 && chosen_total > 0);
    assert_int_equal(bad, 0);
    free(mp);
    cJSON_Delete(g);
    mch_model_close(m);
}

#define DEMO MCH_TEST_DATA "/../../examples/demo-ce"
#define DOT MCH_TEST_DATA "/models/distilbert-dot-tiny"

static void test_subset_matches_golden_scores(void **s)
{
    (void)s;
    run_subset(DEMO, MCH_TEST_DATA "/patching/demo-tfc1.json", 0);
    run_subset(DEMO, MCH_TEST_DATA "/patching/demo-tfc1.json", 1);
    run_subset(DOT, MCH_TEST_DATA "/patching/distilbert-dot-tfc1.json", 0);
}

static void test_demo_optimised_matches_golden_maps(void **s)
{
    (void)s;
    run_fixture(DEMO, MCH_TEST_DATA "/patching/demo-tfc1.json", 0);
}
static void test_demo_naive_matches_golden_maps(void **s)
{
    (void)s;
    run_fixture(DEMO, MCH_TEST_DATA "/patching/demo-tfc1.json", 1);
}
static void test_biencoder_optimised_matches_golden_maps(void **s)
{
    (void)s;
    run_fixture(DOT, MCH_TEST_DATA "/patching/distilbert-dot-tfc1.json", 0);
}
static void test_biencoder_naive_matches_golden_maps(void **s)
{
    (void)s;
    run_fixture(DOT, MCH_TEST_DATA "/patching/distilbert-dot-tfc1.json", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_optimised_matches_golden_maps),
        cmocka_unit_test(test_demo_naive_matches_golden_maps),
        cmocka_unit_test(test_biencoder_optimised_matches_golden_maps),
        cmocka_unit_test(test_biencoder_naive_matches_golden_maps),
        cmocka_unit_test(test_subset_matches_golden_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
