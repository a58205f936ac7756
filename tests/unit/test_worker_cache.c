/* A rank's unit loop with --cache: the activations it stores for both runs of every pair, read
 * back through the cache store, equal those of a separate hooked forward of the same ids bit for
 * bit (lossless) or within the stated bf16 bound; the unit's results match a direct patch run.
 * A job of method atp asking for a cache is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "act_cache.h"
#include "act_store.h"
#include "npy.h"
#include "patch.h"
#include "testutil.h"
#include "worker.h"

#define DEMO MCH_TEST_DATA "/../../examples/demo-ce"

static int ids_of(const cJSON *c, const char *key, int32_t *out)
{
    double tmp[512];
    long n = tu_flatten(cJSON_GetObjectItem(c, key), tmp, 512);
    for (long i = 0; i < n; i++) out[i] = (int32_t)tmp[i];
    return (int)n;
}

static void run_case(const char *dtype, double rel_bound)
{
    char dir[] = "/tmp/mch-wc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    cJSON *g = tu_read_json(MCH_TEST_DATA "/patching/demo-tfc1.json");
    assert_non_null(g);
    /* Two pairs of the golden patching fixture as one work unit. */
    mch_pair_input in[2] = {{0}};
    int32_t b[2][512], p[2][512], t[2][512];
    uint8_t roles[2][512] = {{0}};
    for (int i = 0; i < 2; i++) {
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "cases"), i);
        int T = ids_of(c, "ids_baseline", b[i]);
        assert_int_equal(ids_of(c, "ids_perturbed", p[i]), T);
        assert_int_equal(ids_of(c, "token_types", t[i]), T);
        in[i].index = (uint64_t)i;
        in[i].pair_id = 0xabc0 + (uint64_t)i;
        in[i].T = (size_t)T;
        in[i].ids_baseline = b[i], in[i].ids_perturbed = p[i], in[i].token_types = t[i];
        in[i].roles = roles[i];
    }
    mch_work_unit u = {0, in, 2, MCH_UNIT_PATCH};
    static char *sweeps[1] = {"heads"};
    char *hooks[2] = {"blocks.*.attn.hook_pattern", "hook_full_embed"};
    mch_job_spec spec = {0};
    spec.model_path = DEMO;
    spec.n_sweeps = 1, spec.sweeps = sweeps;
    spec.max_len = 64, spec.min_delta = 1e-3, spec.pooling = "cls";
    spec.n_cache_hooks = 2, spec.cache_hooks = hooks, spec.cache_dtype = (char *)dtype;
    mch_worker *w = NULL;
    mch_err err = {0};
    if (mch_worker_create(&w, &spec, dir, 1, 0, 1, 64, &err)) fail_msg("%s", err.msg);
    mch_unit_result res;
    assert_int_equal(mch_worker_run_unit(w, &u, &res, &err), MCH_OK);
    assert_int_equal(res.n_results, 2);
    for (int i = 0; i < 2; i++) { /* each result echoes its pair's index and id only */
        assert_int_equal(res.results[i].pair.index, in[i].index);
        assert_int_equal(res.results[i].pair.pair_id, in[i].pair_id);
        assert_int_equal(res.results[i].pair.T, 0);
        if (!res.results[i].skip_reason && !res.results[i].error)
            assert_int_equal(res.results[i].n_heads, (size_t)4 * 4); /* L * NH of the demo */
    }
    mch_unit_result_deinit(&res);
    mch_worker_free(w);

    /* The reference: a separate hooked forward of each input. */
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, DEMO, &err), MCH_OK);
    mch_act_cache *ac = mch_act_cache_create(m);
    assert_int_equal(mch_act_cache_add(ac, "blocks.*.attn.hook_pattern", &err), MCH_OK);
    assert_int_equal(mch_act_cache_add(ac, "hook_full_embed", &err), MCH_OK);
    mch_hooks *hk = mch_hooks_create(m->cfg.L);
    assert_int_equal(mch_act_cache_attach(ac, hk, &err), MCH_OK);
    mch_workspace *ws = mch_workspace_create(m, 512, 512);
    mch_store *st = NULL;
    assert_int_equal(mch_store_open(&st, dir, &err), MCH_OK);
    assert_int_equal(mch_store_count(st), 2 * 2 * (m->cfg.L + 1));
    long compared = 0, bad = 0;
    float *got = malloc((size_t)m->cfg.NH * 512 * 512 * sizeof *got);
    for (int i = 0; i < 2; i++)
        for (int run = 0; run < 2; run++) {
            int T = (int)in[i].T;
            mch_batch bt = {1, T, run ? p[i] : b[i], t[i], &T};
            float score;
            mch_forward_out out = {&score, NULL, NULL};
            mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
            assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
            for (int l = 0; l <= m->cfg.L; l++) {
                char name[64];
                mch_site site = l < m->cfg.L ? MCH_SITE_PATTERN : MCH_SITE_FULL_EMBED;
                int layer = l < m->cfg.L ? l : 0;
                mch_hook_name(site, layer, name, sizeof name);
                const mch_store_entry *e = mch_store_find(st, in[i].pair_id, name, run);
                assert_non_null(e);
                size_t n = mch_store_entry_numel(e);
                assert_int_equal(n, mch_site_floats(&m->cfg, site, T));
                assert_int_equal(mch_store_read(st, e, got, &err), MCH_OK);
                const float *want = mch_act_cache_get(ac, site, layer, 0, NULL);
                for (size_t k = 0; k < n; k++) {
                    int ok = rel_bound == 0
                                 ? !memcmp(&got[k], &want[k], sizeof got[k])
                                 : fabs(got[k] - want[k]) <= rel_bound * fabs(want[k]) + 1e-30;
                    if (!ok && bad++ < 3)
                        fprintf(stderr, "%s pair %d run %d [%zu]: got %.9g want %.9g\n", name, i,
                                run, k, (double)got[k], (double)want[k]);
                }
                compared++;
            }
        }
    assert_int_equal(compared, 2 * 2 * (m->cfg.L + 1));
    assert_int_equal(bad, 0);
    /* The .npy of one entry holds the same values. */
    const mch_store_entry *e = mch_store_find(st, in[0].pair_id, "hook_full_embed", 0);
    assert_int_equal(mch_store_read(st, e, got, &err), MCH_OK);
    char npy[64];
    snprintf(npy, sizeof npy, "%s/x.npy", dir);
    assert_int_equal(mch_npy_write(npy, got, e->ndim, e->shape, &err), MCH_OK);
    size_t len;
    char *bytes = tu_read_file(npy, &len);
    assert_non_null(bytes);
    size_t hl = (size_t)(unsigned char)bytes[8] | (size_t)(unsigned char)bytes[9] << 8;
    assert_int_equal(len, 10 + hl + mch_store_entry_numel(e) * sizeof(float));
    assert_memory_equal(bytes + 10 + hl, got, mch_store_entry_numel(e) * sizeof(float));
    free(bytes);
    free(got);
    mch_store_close(st);
    mch_workspace_free(ws);
    mch_hooks_free(hk);
    mch_act_cache_free(ac);
    mch_model_close(m);
    cJSON_Delete(g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_lossless_cache_equals_the_forward_activations(void **s)
{
    (void)s;
    run_case("f32", 0);
}

static void test_bf16_cache_stays_within_its_bound(void **s)
{
    (void)s;
    run_case("bf16", 1.0 / 256);
}

/* The cache holds the exact patcher's runs, which an attribution patching job does not make: a
 * spec that asks for both (the plan and the spec check refuse it first) is refused by the worker
 * too, before anything is written. */
static void test_atp_worker_refuses_a_cache(void **s)
{
    (void)s;
    char dir[] = "/tmp/mch-wc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static char *sweeps[2] = {"heads", "blocks"};
    char *hooks[1] = {"hook_full_embed"};
    mch_job_spec spec = {0};
    spec.model_path = DEMO;
    spec.n_sweeps = 2, spec.sweeps = sweeps;
    spec.max_len = 64, spec.min_delta = 1e-3, spec.pooling = "cls", spec.method = "atp-qk";
    spec.n_cache_hooks = 1, spec.cache_hooks = hooks, spec.cache_dtype = "f32";
    mch_worker *w = NULL;
    mch_err err = {0};
    assert_int_equal(mch_worker_create(&w, &spec, dir, 1, 0, 1, 64, &err), MCH_ERR_ARG);
    assert_null(w);
    assert_string_equal(err.msg, "--cache needs --method exact, not atp-qk");
    assert_int_equal(rmdir(dir), 0); /* empty: no cache file was opened */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossless_cache_equals_the_forward_activations),
        cmocka_unit_test(test_bf16_cache_stays_within_its_bound),
        cmocka_unit_test(test_atp_worker_refuses_a_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
