/* Attribution patching (kernels/atp.c): every estimate of mch_atp_run against golden estimates of
 * an independent float64 autograd reference (tests/data/patching/atp: AtP from demo-atp.json and
 * distilbert-dot-atp.json, the QK fix from demo-atp-qk.json made by tests/ref/atp_qk_ref.py), the
 * top components against the fixtures' verified lists, the QK fix's identity with the hook_z
 * estimate, and the refusals and skips of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "atp.h"
#include "testutil.h"

#define MAXT 128
#define DEMO MCH_TEST_DATA "/../../examples/demo-ce"
#define DOT MCH_TEST_DATA "/models/distilbert-dot-tiny"
#define ATP MCH_TEST_DATA "/patching/atp"
/* The fixtures' tolerance on estimated scores. */
#define ATOL 1e-5
#define RTOL 1e-4

static const char *const block_names[MCH_BLOCK_COUNT] = {"resid_pre", "attn_out", "mlp_out"};

/* The largest |estimate - golden| compare_estimates saw, for the printed summary. */
static double worst_error;

/* Token ids of a fixture case (at most MAXT). */
static int ids_of(const cJSON *c, const char *key, int32_t *out)
{
    int n = tu_ids(c, key, out, MAXT);
    assert_true(n > 0);
    return n;
}

static double num(const cJSON *c, const char *key)
{
    const cJSON *j = cJSON_GetObjectItem(c, key);
    assert_true(cJSON_IsNumber(j));
    return j->valuedouble;
}

/* One case of a fixture: its pair (ids in the caller's arrays) and result arrays. */
typedef struct {
    int32_t base[MAXT], pert[MAXT], types[MAXT], qids[MAXT];
    float heads[64 * 64], heads_scores[64 * 64];
    float blocks[MCH_BLOCK_COUNT * 64 * MAXT], blocks_scores[MCH_BLOCK_COUNT * 64 * MAXT];
    mch_patch_pair pair;
    mch_patch_result res;
} atp_case;

/* Reads case c's pair into k and points k's result at k's arrays. */
static void read_case(int bi, const cJSON *c, atp_case *k)
{
    int T = ids_of(c, "ids_baseline", k->base);
    assert_int_equal(ids_of(c, "ids_perturbed", k->pert), T);
    assert_int_equal(ids_of(c, "token_types", k->types), T);
    k->pair = (mch_patch_pair){T, k->base, k->pert, bi ? NULL : k->types, 0, NULL};
    if (bi) {
        k->pair.Tq = ids_of(c, "query_ids", k->qids);
        k->pair.query_ids = k->qids;
    }
    memset(&k->res, 0, sizeof k->res);
    k->res.heads = k->heads;
    k->res.heads_scores = k->heads_scores;
    k->res.blocks = k->blocks;
    k->res.blocks_scores = k->blocks_scores;
}

/* Reads case c into k and runs it through a with method; the run must succeed unskipped. */
static void run_case(mch_atp *a, int bi, const cJSON *c, mch_atp_method method, atp_case *k)
{
    mch_err err = {0};
    read_case(bi, c, k);
    if (mch_atp_run(a, &k->pair, method, &k->res, &err)) fail_msg("mch_atp_run: %s", err.msg);
    assert_false(k->res.skipped);
}

/* Compares n estimates (and their effects) with the golden scores want, sb/sp the golden
 * scores; for the bi-encoder also the changes (estimate - each side's own baseline). Returns the
 * mismatches; *exact counts the golden estimates equal to score_baseline, which must be ours
 * to the bit. */
static long compare_estimates(const char *what, const float *got, const float *eff,
                              const double *want, long n, const mch_patch_result *res, double sb,
                              double sp, int bi, long *exact)
{
    static double want_chg[64 * MAXT], want_eff[64 * MAXT];
    static float chg[64 * MAXT];
    long bad = tu_compare(what, got, want, n, ATOL, RTOL);
    for (long i = 0; i < n; i++) {
        worst_error = fmax(worst_error, fabs(got[i] - want[i]));
        chg[i] = (float)(got[i] - res->score_baseline);
        want_chg[i] = want[i] - sb;
        want_eff[i] = want_chg[i] / (sp - sb);
        if (want[i] == sb) {
            (*exact)++;
            if ((double)got[i] != res->score_baseline) {
                fprintf(stderr, "MISMATCH %s[%ld]: %.9g is not exactly score_baseline %.9g\n", what,
                        i, (double)got[i], res->score_baseline);
                bad++;
            }
        }
    }
    char name[128];
    snprintf(name, sizeof name, "%s effects", what);
    /* an effect is a change over sp - sb: the scores' tolerance over that difference */
    bad += tu_compare(name, eff, want_eff, n, (ATOL + RTOL * fabs(sb)) / fabs(sp - sb), 1e-3);
    if (bi) {
        snprintf(name, sizeof name, "%s changes", what);
        bad += tu_compare(name, chg, want_chg, n, ATOL, RTOL);
    }
    return bad;
}

/* What check_case compared, over a fixture's cases. */
typedef struct {
    long compared, bad, exact, verified;
} tally;

/* Case ci's result k (run unskipped) against the fixture's case c: both scores, every
 * heads_scores entry, the blocks_scores entries and mch_atp_top(k = 5) against `verified` when
 * the fixture has them, and the effects. */
static void check_case(const cJSON *c, const atp_case *k, int L, int NH, int bi, unsigned sweeps,
                       int ci, tally *n)
{
    static double want[MCH_BLOCK_COUNT * 64 * MAXT];
    int T = k->pair.T;
    assert_false(k->res.skipped);
    double sb = num(c, "score_baseline"), sp = num(c, "score_perturbed");
    assert_true(tu_close(k->res.score_baseline, sb, 1e-5, 1e-5));
    assert_true(tu_close(k->res.score_perturbed, sp, 1e-5, 1e-5));
    assert_int_equal(k->res.patches, (long)L * NH + 3L * L * T);
    char name[96];
    assert_int_equal(tu_flatten(cJSON_GetObjectItem(c, "heads_scores"), want, 64 * 64), L * NH);
    snprintf(name, sizeof name, "case %d heads_scores", ci);
    n->bad += compare_estimates(name, k->heads_scores, k->heads, want, (long)L * NH, &k->res, sb,
                                sp, bi, &n->exact);
    n->compared += (long)L * NH;
    const cJSON *bs = cJSON_GetObjectItem(c, "blocks_scores");
    for (int b = 0; bs && b < MCH_BLOCK_COUNT; b++) {
        size_t off = (size_t)b * L * T;
        assert_int_equal(tu_flatten(cJSON_GetObjectItem(bs, block_names[b]), want, 64 * MAXT),
                         (long)L * T);
        snprintf(name, sizeof name, "case %d blocks_scores.%s", ci, block_names[b]);
        n->bad += compare_estimates(name, k->blocks_scores + off, k->blocks + off, want,
                                    (long)L * T, &k->res, sb, sp, bi, &n->exact);
        n->compared += (long)L * T;
    }
    const cJSON *v = cJSON_GetObjectItem(c, "verified");
    if (!v) return;
    /* the five largest changes, in the fixture's order */
    mch_component top[5];
    assert_int_equal(cJSON_GetArraySize(v), 5);
    assert_int_equal(mch_atp_top(&k->res, sweeps, L, NH, T, 5, top), 5);
    for (int i = 0; i < 5; i++) {
        const cJSON *vi = cJSON_GetArrayItem(v, i);
        const char *want_name = cJSON_GetObjectItem(vi, "component")->valuestring;
        mch_component_name(&top[i], name, sizeof name);
        if (strcmp(name, want_name)) {
            fprintf(stderr, "MISMATCH case %d top[%d]: %s, verified %s\n", ci, i, name, want_name);
            n->bad++;
        }
        float est = mch_component_score(&k->res, L, NH, T, &top[i]);
        if (!tu_close(est, num(vi, "estimate"), ATOL, RTOL)) n->bad++;
        n->verified++;
    }
}

/* Every case of a golden AtP fixture through mch_atp_run (one pair at a time) or, batched,
 * through one mch_atp_run_batch of every case in reverse order (the fixtures' pairs differ in
 * length) with two bad pairs among them (an id outside the vocabulary in the middle, a pair
 * longer than the context after it), which must fail alone. Each case is held to check_case. */
static void run_atp_fixture(const char *model_dir, const char *fixture, mch_atp_method method,
                            int batched)
{
    enum { MAXCASES = 6 };
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, model_dir, &err), MCH_OK);
    int L = m->cfg.L, NH = m->cfg.NH, bi = m->cfg.head == MCH_HEAD_NONE;
    cJSON *g = tu_read_json(fixture);
    assert_non_null(g);
    mch_patch_opts o = {.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS, .pooling = MCH_POOL_CLS};
    mch_atp *a = NULL;
    if (mch_atp_create_batch(&a, m, &o, MAXT, batched ? MAXCASES + 2 : 1, &err))
        fail_msg("mch_atp_create_batch: %s", err.msg);
    static atp_case ks[MAXCASES + 2];
    const cJSON *cs = cJSON_GetObjectItem(g, "cases");
    int nc = cJSON_GetArraySize(cs);
    assert_true(nc > 0 && nc <= MAXCASES);
    tally n = {0};
    worst_error = 0;
    if (!batched) {
        for (int ci = 0; ci < nc; ci++) {
            run_case(a, bi, cJSON_GetArrayItem(cs, ci), method, &ks[0]);
            check_case(cJSON_GetArrayItem(cs, ci), &ks[0], L, NH, bi, o.sweeps, ci, &n);
        }
    } else {
        /* batch slot s holds case order[s]; -1 and -2 are the bad pairs */
        int order[MAXCASES + 2], nb = 0, lens[MAXCASES] = {0};
        for (int ci = nc - 1; ci >= 0; ci--) {
            if (ci == nc / 2 - 1 || (nc == 1 && ci == 0)) order[nb++] = -1;
            order[nb++] = ci;
            if (ci == nc / 2 - 1) order[nb++] = -2;
        }
        mch_patch_pair pairs[MAXCASES + 2];
        mch_patch_result results[MAXCASES + 2];
        mch_err perrs[MAXCASES + 2];
        for (int s = 0; s < nb; s++) {
            atp_case *k = &ks[s];
            read_case(bi, cJSON_GetArrayItem(cs, order[s] < 0 ? 0 : order[s]), k);
            if (order[s] >= 0) lens[order[s]] = k->pair.T;
            if (order[s] == -1) k->pert[k->pair.T / 2] = m->cfg.V; /* outside the vocabulary */
            if (order[s] == -2) k->pair.T = MAXT + 1;
            pairs[s] = k->pair;
            results[s] = k->res;
        }
        assert_int_equal(mch_atp_run_batch(a, pairs, nb, method, results, perrs, &err), MCH_OK);
        int distinct = 0;
        for (int ci = 1; ci < nc; ci++) distinct += lens[ci] != lens[0];
        assert_true(nc == 1 || distinct > 0); /* pairs of different lengths in one batch */
        for (int s = 0; s < nb; s++) {
            ks[s].res = results[s];
            if (order[s] < 0) {
                assert_int_equal(perrs[s].code, MCH_ERR_ARG);
                assert_non_null(
                    strstr(perrs[s].msg, order[s] == -1 ? "outside the vocabulary" : "129 tokens"));
                assert_int_equal(results[s].patches, 0);
                assert_null(mch_atp_grad_pair(a, s, MCH_SITE_Z, 0));
                continue;
            }
            if (perrs[s].code) fail_msg("pair %d (case %d): %s", s, order[s], perrs[s].msg);
            assert_non_null(mch_atp_grad_pair(a, s, MCH_SITE_Z, 0));
            check_case(cJSON_GetArrayItem(cs, order[s]), &ks[s], L, NH, bi, o.sweeps, order[s], &n);
        }
    }
    printf("%s (%s%s): %d cases, %ld estimates compared (%ld exactly score_baseline; largest "
           "error %.3g), %ld top components\n",
           fixture, method == MCH_ATP_QK ? "qk" : "linear", batched ? ", batched" : "", nc,
           n.compared, n.exact, worst_error, n.verified);
    assert_true(n.compared > 0);
    if (method == MCH_ATP_LINEAR) {
        assert_true(n.exact > 0);
        assert_true(n.verified > 0);
    }
    assert_int_equal(n.bad, 0);
    mch_atp_free(a);
    cJSON_Delete(g);
    mch_model_close(m);
}

static void test_demo_atp_matches_golden_estimates(void **st)
{
    (void)st;
    run_atp_fixture(DEMO, ATP "/demo-atp.json", MCH_ATP_LINEAR, 0);
}

static void test_demo_atp_batched_matches_golden_estimates(void **st)
{
    (void)st;
    run_atp_fixture(DEMO, ATP "/demo-atp.json", MCH_ATP_LINEAR, 1);
}

static void test_demo_atp_qk_batched_matches_golden_estimates(void **st)
{
    (void)st;
    run_atp_fixture(DEMO, ATP "/demo-atp-qk.json", MCH_ATP_QK, 1);
}

static void test_biencoder_atp_batched_matches_golden_estimates(void **st)
{
    (void)st;
    run_atp_fixture(DOT, ATP "/distilbert-dot-atp.json", MCH_ATP_LINEAR, 1);
}

static void test_biencoder_atp_matches_golden_estimates(void **st)
{
    (void)st;
    run_atp_fixture(DOT, ATP "/distilbert-dot-atp.json", MCH_ATP_LINEAR, 0);
}

/* gz . (dA dv) of head h at layer l: the second-order term the QK fix leaves out, from the
 * context's own activations and gradients, in double. */
static double second_order(const mch_atp *a, const mch_config *cfg, int l, int h, int T)
{
    const float *gz = mch_atp_grad(a, MCH_SITE_Z, l);
    const float *Ab = mch_atp_activation(a, 0, MCH_SITE_PATTERN, l);
    const float *Ap = mch_atp_activation(a, 1, MCH_SITE_PATTERN, l);
    const float *vb = mch_atp_activation(a, 0, MCH_SITE_V, l);
    const float *vp = mch_atp_activation(a, 1, MCH_SITE_V, l);
    assert_non_null(gz);
    assert_non_null(Ap);
    assert_non_null(vp);
    int C = cfg->C, HS = cfg->HS;
    double s = 0;
    for (int i = 0; i < T; i++)
        for (int d = 0; d < HS; d++) {
            double x = 0;
            for (int j = 0; j < T; j++) {
                size_t aj = ((size_t)h * T + i) * T + j, vj = (size_t)j * C + h * HS + d;
                x += ((double)Ap[aj] - Ab[aj]) * ((double)vp[vj] - vb[vj]);
            }
            s += gz[(size_t)i * C + h * HS + d] * x;
        }
    return s;
}

/* The QK fix: every head estimate against demo-atp-qk.json (tests/ref/atp_qk_ref.py, float64
 * autograd), the blocks as the linear method's; and per head atp-qk - atp = -gz . (dA dv). */
static void test_demo_atp_qk_matches_golden_estimates(void **st)
{
    (void)st;
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, DEMO, &err), MCH_OK);
    int L = m->cfg.L, NH = m->cfg.NH;
    cJSON *g = tu_read_json(ATP "/demo-atp-qk.json");
    cJSON *lin = tu_read_json(ATP "/demo-atp.json");
    assert_non_null(g);
    assert_non_null(lin);
    mch_patch_opts o = {.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS};
    mch_atp *a = NULL;
    assert_int_equal(mch_atp_create(&a, m, &o, MAXT, &err), MCH_OK);
    static atp_case qk, z;
    static double want[64 * 64];
    long compared = 0, bad = 0, identities = 0, exact = 0;
    worst_error = 0;
    double worst_identity = 0, largest_term = 0;
    int ci = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
    {
        /* the same pair as demo-atp.json's case ci */
        const cJSON *cl = cJSON_GetArrayItem(cJSON_GetObjectItem(lin, "cases"), ci);
        assert_non_null(cl);
        run_case(a, 0, cl, MCH_ATP_LINEAR, &z);
        run_case(a, 0, c, MCH_ATP_QK, &qk);
        int T = qk.pair.T;
        assert_int_equal(z.pair.T, T);
        assert_memory_equal(z.base, qk.base, (size_t)T * sizeof(int32_t));
        assert_memory_equal(z.pert, qk.pert, (size_t)T * sizeof(int32_t));
        double sb = num(c, "score_baseline"), sp = num(c, "score_perturbed");
        assert_true(tu_close(qk.res.score_baseline, sb, 1e-5, 1e-5));
        assert_true(tu_close(qk.res.score_perturbed, sp, 1e-5, 1e-5));
        assert_int_equal(tu_flatten(cJSON_GetObjectItem(c, "heads_scores"), want, 64 * 64), L * NH);
        char name[64];
        snprintf(name, sizeof name, "case %d atp-qk heads_scores", ci);
        bad += compare_estimates(name, qk.heads_scores, qk.heads, want, (long)L * NH, &qk.res, sb,
                                 sp, 0, &exact);
        compared += (long)L * NH;
        /* blocks: the linear method's, to the bit */
        assert_memory_equal(qk.blocks_scores, z.blocks_scores, 3 * (size_t)L * T * sizeof(float));
        /* the identity, with the context's numbers (the last run's: the QK one, same pair) */
        for (int l = 0; l < L; l++)
            for (int h = 0; h < NH; h++) {
                double d = (double)qk.heads_scores[l * NH + h] - z.heads_scores[l * NH + h];
                double so = second_order(a, &m->cfg, l, h, T);
                /* float rounding of two scores near sb plus the float sums' */
                double tol = 2e-7 * (fabs(sb) + 1) + 1e-4 * fabs(so);
                worst_identity = fmax(worst_identity, fabs(d + so));
                largest_term = fmax(largest_term, fabs(so));
                if (fabs(d + so) > tol) {
                    fprintf(stderr, "MISMATCH case %d head %d.%d: qk - z %.9g, -gz.(dA dv) %.9g\n",
                            ci, l, h, d, -so);
                    bad++;
                }
                identities++;
            }
        ci++;
    }
    printf("demo-atp-qk.json: %d cases, %ld head estimates compared (largest error %.3g); "
           "identity checked on %ld heads: largest |gz.(dA dv)| %.3g, worst |qk - z + gz.(dA "
           "dv)| %.3g\n",
           ci, compared, worst_error, identities, largest_term, worst_identity);
    assert_true(ci > 0);
    assert_true(compared > 0);
    assert_true(identities > 0);
    assert_true(largest_term > 1e-4); /* the term is not vacuous */
    assert_int_equal(bad, 0);
    mch_atp_free(a);
    cJSON_Delete(lin);
    cJSON_Delete(g);
    mch_model_close(m);
}

/* mch_atp_top's order and ties, mch_atp_diff_rows and the component names on a made-up result. */
static void test_top_components_diff_rows_and_names(void **st)
{
    (void)st;
    enum { L = 2, NH = 2, T = 3 };
    float heads[L * NH] = {1.0f, 1.5f, 0.5f, 1.0f};
    float blocks[MCH_BLOCK_COUNT * L * T] = {0};
    for (int i = 0; i < MCH_BLOCK_COUNT * L * T; i++) blocks[i] = 1.0f;
    blocks[0 * L * T + 1 * T + 2] = 0.5f; /* resid_pre 1 2: |change| 0.5, ties head 1.0 */
    blocks[2 * L * T + 0 * T + 1] = 3.0f; /* mlp_out 0 1: the largest */
    blocks[1 * L * T + 1 * T + 0] = 1.5f; /* attn_out 1 0: ties head 0.1 */
    mch_patch_result res = {.score_baseline = 1.0, .heads_scores = heads, .blocks_scores = blocks};
    unsigned both = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS;
    mch_component top[8];
    char name[32];
    const char *want[] = {"mlp_out 0 1", "head 0.1", "head 1.0", "resid_pre 1 2", "attn_out 1 0"};
    assert_int_equal(mch_atp_top(&res, both, L, NH, T, 5, top), 5);
    for (int i = 0; i < 5; i++) {
        mch_component_name(&top[i], name, sizeof name);
        assert_string_equal(name, want[i]);
    }
    /* fewer than k: every component, the unchanged ones last in enumeration order */
    assert_int_equal(mch_atp_top(&res, MCH_SWEEP_HEADS, L, NH, T, 8, top), L * NH);
    mch_component_name(&top[3], name, sizeof name);
    assert_string_equal(name, "head 1.1");
    res.heads_scores = NULL; /* an array not filled is not ranked */
    assert_int_equal(mch_atp_top(&res, both, L, NH, T, 2, top), 2);
    mch_component_name(&top[1], name, sizeof name);
    assert_string_equal(name, "resid_pre 1 2");
    assert_true(isnan(mch_component_score(&res, L, NH, T, &(mch_component){-1, 0, 0})));
    assert_true(mch_component_score(&res, L, NH, T, &top[0]) == 3.0f);
    res.skipped = 1;
    assert_int_equal(mch_atp_top(&res, both, L, NH, T, 5, top), 0);

    int32_t b[5] = {101, 7, 8, 9, 102}, p[5] = {101, 7, 18, 19, 102};
    mch_patch_pair pair = {5, b, p, NULL, 0, NULL};
    mch_component rows[8];
    assert_int_equal(mch_atp_diff_rows(&pair, 3, rows, 8), 6);
    const char *wrows[] = {"resid_pre 0 2", "resid_pre 0 3", "resid_pre 1 2",
                           "resid_pre 1 3", "resid_pre 2 2", "resid_pre 2 3"};
    for (int i = 0; i < 6; i++) {
        mch_component_name(&rows[i], name, sizeof name);
        assert_string_equal(name, wrows[i]);
    }
    assert_int_equal(mch_atp_diff_rows(&pair, 3, rows, 4), 4);
    mch_component_name(&(mch_component){MCH_BLOCK_ATTN_OUT, 0, 3}, name, sizeof name);
    assert_string_equal(name, "attn_out 0 3");
}

/* Head-pos refused; a pair too long, a bi-encoder pair without query ids and ids outside the
 * vocabulary fail with a message and leave the context usable; a tiny score change is skipped
 * as the patcher skips it, and so is a change in the other direction. */
static void test_atp_refuses_bad_input_and_skips_like_the_patcher(void **st)
{
    (void)st;
    mch_err err = {0};
    mch_model *m = NULL, *dot = NULL;
    assert_int_equal(mch_model_open(&m, MCH_TEST_DATA "/models/bert-ce-tiny", &err), MCH_OK);
    assert_int_equal(mch_model_open(&dot, DOT, &err), MCH_OK);
    mch_atp *a = NULL, *ab = NULL;
    mch_patch_opts o = {.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_HEAD_POS};
    assert_int_equal(mch_atp_create(&a, m, &o, 8, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "head-pos"));
    o.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS;
    err = (mch_err){0};
    assert_int_equal(mch_atp_create(&a, m, &o, 513, &err), MCH_ERR_ARG);
    err = (mch_err){0};
    assert_int_equal(mch_atp_create(&a, m, &o, 8, &err), MCH_OK);

    int32_t base[9] = {101, 2000, 2001, 102, 2002, 102, 7, 8, 9};
    int32_t pert[9] = {101, 2000, 2001, 102, 2003, 102, 7, 8, 9};
    float hs[64], bs[3 * 64];
    mch_patch_result res = {.heads_scores = hs, .blocks_scores = bs};
    mch_patch_pair pair = {9, base, pert, NULL, 0, NULL};
    assert_int_equal(mch_atp_run(a, &pair, MCH_ATP_LINEAR, &res, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "9 tokens"));
    assert_null(mch_atp_grad(a, MCH_SITE_Z, 0));
    pert[2] = 40000; /* outside the vocabulary */
    pair.T = 6;
    err = (mch_err){0};
    assert_int_equal(mch_atp_run(a, &pair, MCH_ATP_LINEAR, &res, &err), MCH_ERR_ARG);
    assert_null(mch_atp_activation(a, 1, MCH_SITE_Z, 0));
    pert[2] = 2001;

    /* the patcher's own decision and text on the same pair */
    mch_patcher *p = NULL;
    mch_patch_result pres = {0};
    int skipped = 0;
    double deltas[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: min_delta above the change; pass 1: the other direction */
        err = (mch_err){0};
        assert_int_equal(mch_atp_run(a, &pair, MCH_ATP_LINEAR, &res, &err), MCH_OK);
        /* Without the QK fix the perturbed pattern and v are not copied, nor handed out. */
        assert_null(mch_atp_activation(a, 1, MCH_SITE_PATTERN, 0));
        assert_null(mch_atp_activation(a, 1, MCH_SITE_V, 0));
        assert_non_null(mch_atp_activation(a, 1, MCH_SITE_Z, 0));
        double delta = res.score_perturbed - res.score_baseline;
        deltas[pass] = delta;
        assert_true(fabs(delta) > 1e-7);
        mch_patch_opts so = o;
        if (pass == 0)
            so.min_delta = fabs(delta) * 2;
        else
            so.min_delta = 1e-12, so.direction = delta > 0 ? -1 : 1;
        mch_atp *as = NULL;
        assert_int_equal(mch_atp_create(&as, m, &so, 8, &err), MCH_OK);
        assert_int_equal(mch_patcher_create(&p, m, &so, 8, &err), MCH_OK);
        hs[0] = -7.0f;
        assert_int_equal(mch_atp_run(as, &pair, MCH_ATP_QK, &res, &err), MCH_OK);
        assert_int_equal(mch_patch_run(p, &pair, &pres, &err), MCH_OK);
        assert_true(res.skipped);
        assert_true(pres.skipped);
        assert_string_equal(res.skip_reason, pres.skip_reason);
        assert_true(res.score_baseline == pres.score_baseline);
        assert_true(res.score_perturbed == pres.score_perturbed);
        assert_true(hs[0] == -7.0f); /* nothing written */
        assert_int_equal(res.patches, 0);
        skipped++;
        mch_patcher_free(p);
        mch_atp_free(as);
    }
    assert_int_equal(skipped, 2);
    assert_true(deltas[0] == deltas[1]);
    assert_non_null(strstr(res.skip_reason, "direction"));

    /* a bi-encoder pair without the query's ids */
    err = (mch_err){0};
    o.min_delta = 1e-12;
    assert_int_equal(mch_atp_create(&ab, dot, &o, 8, &err), MCH_OK);
    assert_int_equal(mch_atp_run(ab, &pair, MCH_ATP_LINEAR, &res, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "query"));
    /* and with them, the context runs */
    int32_t q[4] = {101, 2000, 2001, 102};
    pair.Tq = 4;
    pair.query_ids = q;
    err = (mch_err){0};
    assert_int_equal(mch_atp_run(ab, &pair, MCH_ATP_LINEAR, &res, &err), MCH_OK);
    assert_int_equal(res.patches, (long)dot->cfg.L * dot->cfg.NH + 3L * dot->cfg.L * 6);

    mch_atp_free(ab);
    mch_atp_free(a);
    mch_atp_free(NULL);
    mch_model_close(dot);
    mch_model_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_atp_matches_golden_estimates),
        cmocka_unit_test(test_biencoder_atp_matches_golden_estimates),
        cmocka_unit_test(test_demo_atp_batched_matches_golden_estimates),
        cmocka_unit_test(test_demo_atp_qk_batched_matches_golden_estimates),
        cmocka_unit_test(test_biencoder_atp_batched_matches_golden_estimates),
        cmocka_unit_test(test_demo_atp_qk_matches_golden_estimates),
        cmocka_unit_test(test_top_components_diff_rows_and_names),
        cmocka_unit_test(test_atp_refuses_bad_input_and_skips_like_the_patcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
