/* kernels/t5_patch: exact MonoT5 patching on the fixtures' golden case 0 with one document token
 * replaced. Checked against golden.json (the baseline score) and against exact identities of
 * patching that need no reference: patching layer 0's resid_pre at the only row where the inputs
 * differ IS the perturbed forward (effect exactly 1), at any other row it is the baseline
 * (effect exactly 0), and the decoder's first self-attention sees only the start token, never
 * the encoder (every head of decoder layer 0's self-attention has effect exactly 0; later layers
 * see the encoder through the cross-attention before them). The value-by-value comparison with an
 * independent reference is tests/cli/t5_ref.py (cli_t5_patch). Also: min_delta skips, bad ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "t5_patch.h"
#include "testutil.h"

static void check_model(const char *model)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, MCH_TEST_DATA "/models/%s", model);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    cJSON *g = tu_read_json(path);
    assert_non_null(g);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "cases"), 0);
    int32_t b[1024], p[1024];
    int T = tu_ids(c0, "input_ids", b, 1024);
    assert_true(T > 20);
    memcpy(p, b, sizeof b);
    int at = 17; /* a document token */
    p[at] = b[at] == 100 ? 101 : 100;
    mch_err err = {0};
    mch_monot5 *m = NULL;
    if (mch_monot5_open(&m, dir, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    const mch_t5_config *c = &m->model->cfg;
    mch_t5_patch_result r;
    mch_status rc =
        mch_t5_patch(m, b, p, T, MCH_T5_SWEEP_HEADS | MCH_T5_SWEEP_BLOCKS, 1e-9, &r, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, MCH_OK);
    assert_false(r.skipped);
    double want = cJSON_GetObjectItem(c0, "score")->valuedouble;
    assert_true(tu_close(r.score_baseline, want, 1e-5, 1e-4));
    assert_true(r.score_perturbed != r.score_baseline);
    long n = 0;
    for (int t = 0; t < T; t++, n++) { /* blocks[resid_pre][0][t] */
        float s = r.blocks_scores[t];
        assert_true(t == at ? s == r.score_perturbed : s == r.score_baseline);
        assert_true(t == at ? r.blocks[t] == 1.0f : r.blocks[t] == 0.0f);
    }
    for (int i = 0; i < c->NH; i++, n++) { /* decoder layer 0 */
        assert_true(r.dec_heads_scores[i] == r.score_baseline);
        assert_true(r.dec_heads[i] == 0.0f);
    }
    /* the cross-attention heads do see the change (or the test above would prove nothing) */
    int moved = 0;
    for (int i = 0; i < c->LD * c->NH; i++) moved += r.cross_heads_scores[i] != r.score_baseline;
    assert_true(moved > 0);
    fprintf(stderr, "  %s: %ld patched values checked\n", model, n);
    mch_t5_patch_result_free(&r);

    /* below min_delta: skipped, no map */
    assert_int_equal(mch_t5_patch(m, b, p, T, MCH_T5_SWEEP_HEADS, 10.0, &r, &err), MCH_OK);
    assert_true(r.skipped && strstr(r.skip_reason, "min_delta"));
    assert_null(r.enc_heads);
    assert_null(r.blocks);
    mch_t5_patch_result_free(&r);

    /* an id outside the vocabulary: refused, naming the id */
    p[3] = c->V + 5;
    assert_int_equal(mch_t5_patch(m, b, p, T, MCH_T5_SWEEP_HEADS, 1e-9, &r, &err), MCH_ERR_ARG);
    char id[32];
    snprintf(id, sizeof id, "%d", c->V + 5);
    assert_non_null(strstr(err.msg, id));
    assert_null(r.enc_heads);
    mch_monot5_close(m);
    cJSON_Delete(g);
}

static void test_t5_patch_tiny(void **state)
{
    (void)state;
    check_model("monot5-tiny");
}

static void test_t5_patch_tiny_gated(void **state)
{
    (void)state;
    check_model("monot5-tiny-gated");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t5_patch_tiny),
        cmocka_unit_test(test_t5_patch_tiny_gated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
