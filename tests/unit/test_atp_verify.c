/* Exact verification from attribution patching's own runs (kernels/atp_verify.c and
 * mch_patch_subset_given): for every pair of demo-atp.json, whole heads and blocks sweeps patched
 * from the runs of mch_atp_run must equal, element-wise, the independent exact-patching fixture
 * demo-tfc1.json (the same pairs), and equal to the bit what mch_patch_subset gives when it
 * recomputes both runs; mch_atp_verify with and without the context gives the same lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "atp_verify.h"
#include "testutil.h"

#define MAXT 128
#define DEMO MCH_TEST_DATA "/../../examples/demo-ce"
#define ATP MCH_TEST_DATA "/patching/atp/demo-atp.json"
#define EXACT MCH_TEST_DATA "/patching/demo-tfc1.json"

static const char *const block_names[MCH_BLOCK_COUNT] = {"resid_pre", "attn_out", "mlp_out"};

/* The exact case of ex with the ids of the AtP case c. */
static const cJSON *exact_case(const cJSON *ex, const int32_t *base, const int32_t *pert, int T)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ex, "cases"))
    {
        int32_t b[MAXT], p[MAXT];
        if (tu_ids(c, "ids_baseline", b, MAXT) == T && tu_ids(c, "ids_perturbed", p, MAXT) == T &&
            !memcmp(b, base, (size_t)T * 4) && !memcmp(p, pert, (size_t)T * 4))
            return c;
    }
    return NULL;
}

/* got (n) against the fixture's nested array want within the exact fixture's tolerance. */
static long compare(const float *got, const cJSON *want, long n)
{
    static double w[64 * MAXT];
    assert_int_equal(tu_flatten(want, w, 64 * MAXT), n);
    long bad = 0;
    for (long i = 0; i < n; i++) bad += !tu_close(got[i], w[i], 1e-5, 1e-5);
    return bad;
}

static const float *no_act(const void *ctx, int run, mch_site site, int layer)
{
    (void)ctx, (void)run, (void)site, (void)layer;
    return NULL;
}

static void test_verify_from_atp_runs_is_exact_patching(void **st)
{
    (void)st;
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, DEMO, &err), MCH_OK);
    cJSON *fx = tu_read_json(ATP), *ex = tu_read_json(EXACT);
    assert_non_null(fx);
    assert_non_null(ex);
    const mch_config *cfg = &m->cfg;
    int L = cfg->L, NH = cfg->NH;
    mch_patch_opts o = {.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS, .min_delta = 1e-3};
    mch_atp *a = NULL;
    mch_patcher *p = NULL, *q = NULL; /* p: given runs only; q: recomputed runs only */
    assert_int_equal(mch_atp_create(&a, m, &o, MAXT, &err), MCH_OK);
    assert_int_equal(mch_patcher_create(&p, m, &o, MAXT, &err), MCH_OK);
    assert_int_equal(mch_patcher_create(&q, m, &o, MAXT, &err), MCH_OK);
    static float est_h[64], est_b[3 * 64 * MAXT], given_h[64], given_b[3 * 64 * MAXT], again_h[64],
        again_b[3 * 64 * MAXT];
    static unsigned char hmask[64], bmask[3 * 64 * MAXT];
    long compared = 0, cases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases"))
    {
        int32_t base[MAXT], pert[MAXT], types[MAXT];
        int T = tu_ids(c, "ids_baseline", base, MAXT);
        assert_int_equal(tu_ids(c, "ids_perturbed", pert, MAXT), T);
        assert_int_equal(tu_ids(c, "token_types", types, MAXT), T);
        const cJSON *e = exact_case(ex, base, pert, T);
        assert_non_null(e);
        mch_patch_pair pair = {T, base, pert, types, 0, NULL};
        mch_patch_result est = {.heads_scores = est_h, .blocks_scores = est_b};
        if (mch_atp_run(a, &pair, MCH_ATP_LINEAR, &est, &err)) fail_msg("%s", err.msg);
        size_t nh = (size_t)L * NH, nb = 3 * (size_t)L * T;
        memset(hmask, 1, nh);
        memset(bmask, 1, nb);
        mch_patch_result given = {.heads_scores = given_h, .blocks_scores = given_b};
        mch_patch_result again = {.heads_scores = again_h, .blocks_scores = again_b};
        /* a run without an activation fails with a message naming the hook */
        assert_int_equal(mch_patch_subset_given(p, &pair, &(mch_patch_runs){0, 0, no_act, NULL},
                                                hmask, bmask, &given, &err),
                         MCH_ERR_ARG);
        assert_non_null(strstr(err.msg, "the given baseline run has no blocks.0.hook_resid_pre"));
        err = (mch_err){0};
        mch_atp_verified v1 = {0}, v2 = {0};
        /* mch_atp_verify with the context: the given-runs path; without: the recomputing one */
        if (mch_atp_verify(p, m, a, &pair, &est, o.sweeps, 5, &v1, &err)) fail_msg("%s", err.msg);
        if (mch_atp_verify(q, m, NULL, &pair, &est, o.sweeps, 5, &v2, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(v1.n, v2.n);
        assert_int_equal(v1.n_top, 5);
        assert_true(v1.n > 5); /* the diff rows */
        assert_memory_equal(v1.comp, v2.comp, (size_t)v1.n * sizeof *v1.comp);
        assert_memory_equal(v1.exact, v2.exact, (size_t)v1.n * sizeof *v1.exact);
        assert_memory_equal(v1.estimate, v2.estimate, (size_t)v1.n * sizeof *v1.estimate);
        mch_atp_verified_free(&v1);
        mch_atp_verified_free(&v2);
        /* whole sweeps from the given runs (mch_atp_verify's path, every component) */
        if (mch_atp_patch_subset(p, a, &pair, &est, hmask, bmask, &given, &err))
            fail_msg("%s", err.msg);
        if (mch_patch_subset(q, &pair, hmask, bmask, &again, &err)) fail_msg("%s", err.msg);
        assert_memory_equal(given_h, again_h, nh * sizeof *given_h);
        assert_memory_equal(given_b, again_b, nb * sizeof *given_b);
        assert_true(given.score_baseline == again.score_baseline);
        assert_true(given.score_perturbed == again.score_perturbed);
        long bad = compare(given_h, cJSON_GetObjectItem(e, "heads_scores"), (long)nh);
        const cJSON *bs = cJSON_GetObjectItem(e, "blocks_scores");
        for (int s = 0; s < MCH_BLOCK_COUNT; s++)
            bad += compare(given_b + (size_t)s * L * T, cJSON_GetObjectItem(bs, block_names[s]),
                           (long)L * T);
        assert_int_equal(bad, 0);
        compared += (long)(nh + nb);
        cases++;
    }
    assert_int_equal(cases, 4);
    assert_true(compared > 0);
    print_message("exact patching from AtP's runs: %ld patched scores of %ld pairs equal "
                  "demo-tfc1.json and, to the bit, recomputed runs\n",
                  compared, cases);
    mch_patcher_free(p);
    mch_patcher_free(q);
    mch_atp_free(a);
    cJSON_Delete(fx);
    cJSON_Delete(ex);
    mch_model_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_from_atp_runs_is_exact_patching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
