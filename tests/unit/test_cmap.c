/* Circuit maps: Welford reduction and ratio of means against a two-pass reference; the Poisson
 * weights' distribution; merging the maps of shards equals the map of the whole (counts and the
 * exact sums of the ratio of means and of every bootstrap replicate bit for bit, means and M2
 * within 1e-12 relative); merge order does not change the bytes; incompatible and overlapping
 * maps (and maps of another bootstrap seed) are refused with the field or an example; untrusted
 * bytes are validated before use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cmap.h"
#include "merge.h"
#include "perturb.h"
#include "testutil.h"

#define L 3
#define NH 4
#define K 1
#define NPAIRS 60
#define TMAX 12

typedef struct {
    mch_pair_result r;
    int32_t ids[TMAX];
    uint8_t roles[TMAX];
    float heads[L * NH], blocks[3 * L * TMAX], hpz[K * TMAX], hpp[K * TMAX];
} fake_pair;

static fake_pair pairs[NPAIRS];
static uint64_t rs = 88172645463325252ULL;
static double rnd(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}

static void make_pairs(void)
{
    for (int i = 0; i < NPAIRS; i++) {
        fake_pair *p = &pairs[i];
        int T = 5 + i % (TMAX - 5);
        mch_pair_input *in = &p->r.pair;
        in->index = (uint64_t)i;
        in->pair_id = 1000003ULL * (uint64_t)(i + 1) ^ 0x5bd1e995ULL;
        in->T = (size_t)T;
        in->ids_baseline = in->ids_perturbed = in->token_types = p->ids;
        for (int t = 0; t < T; t++)
            p->roles[t] =
                (uint8_t)(t == 0 ? MCH_ROLE_CLS : 1 + (int)(rnd() * (MCH_ROLE_COUNT - 1)));
        in->roles = p->roles;
        in->relevance = i % 3 == 0 ? 1 : i % 3 == 1 ? 0 : -1;
        in->rank = 1 + i % 25;
        in->qid = in->docno = in->term = (char *)"x";
        p->r.score_baseline = rnd();
        p->r.score_perturbed = p->r.score_baseline + 0.5;
        p->r.skip_reason = (char *)(i % 17 == 5 ? "score change below min_delta" : NULL);
        p->r.error = (char *)(i % 23 == 7 ? "a failure" : NULL);
        p->r.n_heads = L * NH;
        p->r.heads = p->r.heads_scores = p->heads;
        for (int k = 0; k < L * NH; k++) p->heads[k] = (float)(rnd() * 2 - 0.5);
        p->r.n_blocks = (size_t)(3 * L * T);
        p->r.blocks = p->r.blocks_scores = p->blocks;
        for (int k = 0; k < 3 * L * T; k++) p->blocks[k] = (float)(rnd() * 3 - 1);
        p->r.n_head_pos_z = p->r.n_head_pos_pattern = (size_t)(K * T);
        p->r.head_pos_z = p->r.head_pos_z_scores = p->hpz;
        p->r.head_pos_pattern = p->r.head_pos_pattern_scores = p->hpp;
        for (int k = 0; k < K * T; k++) p->hpz[k] = (float)rnd(), p->hpp[k] = (float)rnd();
        if (p->r.skip_reason || p->r.error) /* no maps, as a worker sends them */
            p->r.n_heads = p->r.n_blocks = p->r.n_head_pos_z = p->r.n_head_pos_pattern = 0;
    }
}

static mch_job_spec spec_base(void)
{
    static uint32_t heads[2] = {1, 2};
    static char *sweeps[3] = {"heads", "blocks", "head-pos"};
    mch_job_spec s = {0};
    s.model_path = "m";
    s.model_sha256 = "abc";
    s.arch = "bert";
    s.architecture = "BertForSequenceClassification";
    s.layers = L;
    s.heads = NH;
    s.vocab_hash = "v";
    s.perturbation = "tfc1";
    s.n_sweeps = 3;
    s.sweeps = sweeps;
    s.n_head_pos = 1;
    s.head_pos = heads;
    s.max_len = 64;
    s.min_delta = 1e-3;
    s.position = "end";
    s.filler = "a";
    s.pooling = "cls";
    s.direction = "any";
    s.select = "";
    s.bootstrap = 50;
    s.ci_level = 0.9;
    s.seed = 7;
    return s;
}

/* The map of the pairs whose index % mod == rem (mod 1: all), packed (into *bytes unless bytes
 * is NULL) and unpacked (heap; free with free_map). */
static mch_cmap *map_of(int mod, int rem, const mch_job_spec *spec, const char *site,
                        uint8_t **bytes, size_t *len)
{
    mch_cmap_acc a;
    mch_cmap built;
    mch_err err = {0};
    assert_int_equal(mch_cmap_acc_init(&a, spec, &err), MCH_OK);
    for (int i = 0; i < NPAIRS; i++)
        if (i % mod == rem) assert_int_equal(mch_cmap_acc_add(&a, &pairs[i].r, &err), MCH_OK);
    const char *sites[1] = {site}, *prov[1] = {"OpenBLAS test; kernel Test"};
    assert_int_equal(mch_cmap_acc_finish(&a, spec, sites, prov, 1, &built, &err), MCH_OK);
    mch_cmap_acc_deinit(&a);
    uint8_t *b;
    size_t n;
    assert_int_equal(mch_cmap_pack(&built, &b, &n, &err), MCH_OK);
    mch_cmap_deinit(&built);
    mch_cmap *m = calloc(1, sizeof *m);
    if (mch_cmap_unpack(m, b, n, "test", &err)) fail_msg("%s", err.msg);
    if (bytes)
        *bytes = b, *len = n;
    else
        free(b);
    return m;
}

static void free_map(mch_cmap *m)
{
    mch_cmap_deinit(m);
    free(m);
}

static long cmp_stats(const char *what, const mch_est *ea, const mch_est *eb)
{
    const mch_stats *a = &ea->mor, *b = &eb->mor;
    size_t nx = ea->cells * ((size_t)ea->B + 1);
    assert_int_equal(ea->B, eb->B);
    assert_int_equal(ea->cells, eb->cells);
    /* exact sums: bit for bit, whatever the grouping */
    long bad = memcmp(ea->num, eb->num, nx * sizeof *ea->num) != 0;
    bad += memcmp(ea->den, eb->den, nx * sizeof *ea->den) != 0;
    if (bad) fprintf(stderr, "%s: exact sums differ\n", what);
    assert_int_equal(a->cells, b->cells);
    for (size_t i = 0; i < a->cells; i++) {
        double tm = 1e-12 * fmax(1.0, fabs(b->mean[i])), t2 = 1e-12 * fmax(1.0, fabs(b->m2[i]));
        if (a->n[i] != b->n[i] || fabs(a->mean[i] - b->mean[i]) > tm ||
            fabs(a->m2[i] - b->m2[i]) > t2) {
            if (bad++ < 3)
                fprintf(stderr, "%s[%zu]: n %llu/%llu mean %.17g/%.17g m2 %.17g/%.17g\n", what, i,
                        (unsigned long long)a->n[i], (unsigned long long)b->n[i], a->mean[i],
                        b->mean[i], a->m2[i], b->m2[i]);
        }
    }
    return bad;
}

static int used(int i)
{
    return !pairs[i].r.skip_reason && !pairs[i].r.error;
}

/* Whether replicate b of cell c holds the sums num and den of n values: each value was rounded to
 * 2^-40 (error 2^-41 at most), nothing else. */
static int sums_match(const mch_est *e, size_t c, uint32_t b, double num, double den, int n)
{
    size_t i = c * ((size_t)e->B + 1) + b;
    double tol = n * ldexp(1, -41) * 1.0001;
    return fabs(mch_xsum_value(e->num[i]) - num) <= tol + 1e-15 * fabs(num) &&
           fabs(mch_xsum_value(e->den[i]) - den) <= tol + 1e-15 * fabs(den);
}

static void test_welford_matches_two_pass_reference(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base();
    mch_cmap *m = map_of(1, 0, &spec, "", NULL, NULL);
    long bad = 0, checked = 0;
    for (int c = 0; c < L * NH; c++) {
        double sum = 0, n = 0;
        for (int i = 0; i < NPAIRS; i++)
            if (used(i)) sum += pairs[i].heads[c], n++;
        double mean = sum / n, ss = 0;
        for (int i = 0; i < NPAIRS; i++)
            if (used(i)) ss += (pairs[i].heads[c] - mean) * (pairs[i].heads[c] - mean);
        const mch_stats *w = &m->heads.mor;
        bad += w->n[c] != (uint64_t)n || fabs(w->mean[c] - mean) > 1e-12 ||
               fabs(w->m2[c] - ss) > 1e-12 * fmax(1, ss);
        /* ratio of means: sum(patched - baseline) / sum(perturbed - baseline), two passes */
        double num = 0, den = 0;
        for (int i = 0; i < NPAIRS; i++)
            if (used(i)) {
                num += (double)pairs[i].heads[c] - pairs[i].r.score_baseline;
                den += pairs[i].r.score_perturbed - pairs[i].r.score_baseline;
            }
        bad += !sums_match(&m->heads, (size_t)c, 0, num, den, (int)n);
        checked++;
    }
    assert_int_equal(checked, L * NH);
    assert_int_equal(bad, 0);
    assert_int_equal(m->pairs_total, NPAIRS);
    assert_int_equal(m->pairs_used + m->pairs_skipped + m->pairs_failed, NPAIRS);
    assert_true(m->pairs_skipped > 0 && m->pairs_failed > 0);
    assert_true(m->n_strata > 0);
    free_map(m);
}

/* Merges the maps in the given order and packs the result. */
static void merge_packed(mch_cmap *const *maps, const int *order, int n, uint8_t **out, size_t *len)
{
    mch_cmap_input in[8];
    mch_cmap merged;
    mch_err err = {0};
    for (int k = 0; k < n; k++) in[k] = (mch_cmap_input){maps[order[k]], "shard"};
    if (mch_cmap_merge(in, n, &merged, &err)) fail_msg("%s", err.msg);
    assert_int_equal(mch_cmap_pack(&merged, out, len, &err), MCH_OK);
    mch_cmap_deinit(&merged);
}

static void test_merged_shards_equal_the_whole(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base();
    uint8_t *wb, *sb[3], *mb[2];
    size_t wl, sl[3], ml[2];
    mch_cmap *whole = map_of(1, 0, &spec, "a", &wb, &wl), *shard[3];
    for (int k = 0; k < 3; k++) shard[k] = map_of(3, k, &spec, k == 1 ? "b" : "a", &sb[k], &sl[k]);
    int orders[2][3] = {{0, 1, 2}, {2, 0, 1}};
    for (int o = 0; o < 2; o++) merge_packed(shard, orders[o], 3, &mb[o], &ml[o]);
    assert_int_equal(ml[0], ml[1]);
    assert_memory_equal(mb[0], mb[1], ml[0]); /* argument order gives identical bytes */
    mch_cmap m;
    mch_err err = {0};
    assert_int_equal(mch_cmap_unpack(&m, mb[0], ml[0], "merged", &err), MCH_OK);
    assert_int_equal(m.pairs_total, whole->pairs_total);
    assert_int_equal(m.pairs_used, whole->pairs_used);
    assert_int_equal(m.n_pair_ids, whole->n_pair_ids);
    assert_memory_equal(m.pair_ids, whole->pair_ids, m.n_pair_ids * sizeof *m.pair_ids);
    long bad = cmp_stats("heads", &m.heads, &whole->heads) +
               cmp_stats("blocks", &m.blocks, &whole->blocks) +
               cmp_stats("head_pos_z", &m.hpz, &whole->hpz) +
               cmp_stats("head_pos_pattern", &m.hpp, &whole->hpp);
    assert_int_equal(m.n_strata, whole->n_strata);
    for (size_t i = 0; i < m.n_strata; i++) {
        assert_string_equal(m.strata[i].name, whole->strata[i].name);
        assert_int_equal(m.strata[i].pairs, whole->strata[i].pairs);
        bad += cmp_stats(m.strata[i].name, &m.strata[i].heads, &whole->strata[i].heads);
        bad += cmp_stats(m.strata[i].name, &m.strata[i].blocks, &whole->strata[i].blocks);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(m.n_sites, 2); /* provenance: the union of sites */
    assert_string_equal(m.sites[0], "a");
    assert_string_equal(m.sites[1], "b");
    mch_cmap_deinit(&m);
    free_map(whole);
    for (int k = 0; k < 3; k++) free_map(shard[k]), free(sb[k]);
    free(mb[0]);
    free(mb[1]);
    free(wb);
}

static void test_incompatible_and_overlapping_maps_are_refused(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base(), other = spec_base();
    other.min_delta = 0.01;
    uint8_t *b0, *b1, *b2;
    size_t l0, l1, l2;
    mch_cmap *a = map_of(2, 0, &spec, "", &b0, &l0), *b = map_of(2, 1, &other, "", &b1, &l1);
    mch_cmap_input in[2] = {{a, "A.cmap"}, {b, "B.cmap"}};
    mch_cmap out;
    mch_err err = {0};
    assert_int_equal(mch_cmap_merge(in, 2, &out, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "min_delta"));
    assert_non_null(strstr(err.msg, "0.001"));
    assert_non_null(strstr(err.msg, "0.01"));
    assert_null(out.pair_ids);                       /* nothing was built */
    mch_cmap *c = map_of(3, 0, &spec, "", &b2, &l2); /* shares index 0, 6, ... with a */
    mch_cmap_input in2[2] = {{a, "A.cmap"}, {c, "C.cmap"}};
    mch_err e2 = {0};
    assert_int_equal(mch_cmap_merge(in2, 2, &out, &e2), MCH_ERR_ARG);
    assert_non_null(strstr(e2.msg, "share 10 pairs"));
    assert_non_null(strstr(e2.msg, "e.g. pair"));
    free_map(a);
    free_map(b);
    free_map(c);
    free(b0);
    free(b1);
    free(b2);
}

/* Packs m and expects mch_cmap_unpack to refuse it with a message holding what. */
static void expect_refused(const mch_cmap *m, const char *what)
{
    uint8_t *b;
    size_t n;
    mch_cmap x;
    mch_err err = {0};
    assert_int_equal(mch_cmap_pack(m, &b, &n, &err), MCH_OK);
    assert_int_equal(mch_cmap_unpack(&x, b, n, "bad.cmap", &err), MCH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad.cmap"));
    if (!strstr(err.msg, what)) fail_msg("'%s' does not name '%s'", err.msg, what);
    free(b);
}

static void test_untrusted_maps_are_validated(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base();
    uint8_t *bytes;
    size_t len;
    mch_cmap *m = map_of(1, 0, &spec, "", &bytes, &len);
    mch_cmap x;
    /* Every truncation is refused or, if protobuf still decodes it, caught by validation. */
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += 7) {
        mch_err e = {0};
        if (mch_cmap_unpack(&x, bytes, cut, "cut", &e) != MCH_OK)
            refused++;
        else
            mch_cmap_deinit(&x);
    }
    assert_true(refused > 0);
    /* A map whose heads have the wrong number of cells. */
    m->heads.cells = L * NH - 1;
    expect_refused(m, "heads");
    m->heads.cells = L * NH;
    /* Counts that do not add up. */
    m->pairs_used++;
    expect_refused(m, "pair counts");
    m->pairs_used--;
    /* Pair ids out of order. */
    uint64_t t = m->pair_ids[0];
    m->pair_ids[0] = m->pair_ids[1], m->pair_ids[1] = t;
    expect_refused(m, "pair_ids: not sorted");
    m->pair_ids[1] = m->pair_ids[0], m->pair_ids[0] = t;
    /* A head-pos head outside the model. */
    m->spec.head_pos[0] = L;
    expect_refused(m, "head outside the model");
    m->spec.head_pos[0] = 1;
    /* A negative M2. */
    m->hpz.mor.m2[0] = -1;
    expect_refused(m, "head_pos_z_by_role");
    free_map(m);
    free(bytes);
}

/* ---- maps that lie -------------------------------------------------------------------------- */

static char *sweeps_none[1] = {"none"};

/* A map of no sweep (no cells, B 0) over pairs first + 1 .. first + n, all used and moved with
 * the axiom, with n_strata strata: "relevance=0", "relevance=1", ... (one pair each while there
 * are pairs) and last "direction=with" (every pair). Built directly, not validated. */
static void map_direct(mch_cmap *m, uint64_t first, size_t n, size_t n_strata)
{
    mch_job_spec spec = spec_base();
    spec.sweeps = sweeps_none, spec.n_sweeps = 1, spec.n_head_pos = 0, spec.bootstrap = 0;
    mch_err err = {0};
    memset(m, 0, sizeof *m);
    assert_int_equal(mch_job_spec_copy(&m->spec, &spec, &err), MCH_OK);
    m->pairs_total = m->pairs_used = m->pairs_with = n;
    mch_est *top[4] = {&m->heads, &m->blocks, &m->hpz, &m->hpp};
    for (int k = 0; k < 4; k++) assert_int_equal(mch_est_init(top[k], 0, 0, &err), MCH_OK);
    m->pair_ids = malloc((n + 1) * sizeof *m->pair_ids);
    assert_non_null(m->pair_ids);
    for (size_t i = 0; i < n; i++) m->pair_ids[i] = first + 1 + i;
    m->n_pair_ids = n;
    m->strata = calloc(n_strata + 1, sizeof *m->strata);
    assert_non_null(m->strata);
    for (size_t k = 0; k < n_strata; k++, m->n_strata++) {
        mch_cmap_stratum *st = &m->strata[k];
        char name[32];
        int last = k + 1 == n_strata;
        snprintf(name, sizeof name, last ? "direction=with" : "relevance=%zu", k);
        st->name = strdup(name);
        st->pairs = last ? n : k < n;
        assert_int_equal(mch_est_init(&st->heads, 0, 0, &err), MCH_OK);
        assert_int_equal(mch_est_init(&st->blocks, 0, 0, &err), MCH_OK);
    }
}

/* Packs m and unpacks (validates) it into out. */
static mch_status roundtrip(const mch_cmap *m, mch_cmap *out, mch_err *err)
{
    uint8_t *b;
    size_t n;
    assert_int_equal(mch_cmap_pack(m, &b, &n, err), MCH_OK);
    mch_status rc = mch_cmap_unpack(out, b, n, "direct.cmap", err);
    free(b);
    return rc;
}

static void rename_stratum(mch_cmap *m, size_t i, const char *name)
{
    free(m->strata[i].name);
    m->strata[i].name = strdup(name);
}

static void test_counts_that_wrap_are_refused(void **s)
{
    (void)s;
    mch_cmap m, a, b;
    map_direct(&m, 0, 0, 0);
    /* used 2^64 - 1 + skipped 1 wraps to total 0 */
    m.pairs_used = UINT64_MAX, m.pairs_skipped = 1;
    expect_refused(&m, "pair counts: used 18446744073709551615 + skipped 1 + failed 0 != total 0");
    m.pairs_used = 0, m.pairs_skipped = 0, m.pairs_failed = UINT64_MAX, m.pairs_total = 0;
    m.pairs_skipped = 1;
    expect_refused(&m, "pair counts: used 0 + skipped 1 + failed 18446744073709551615");
    m.pairs_skipped = m.pairs_failed = 0;
    m.pairs_with = UINT64_MAX, m.pairs_against = 1; /* with + against wraps to 0 */
    expect_refused(&m, "with 18446744073709551615 + against 1 the axiom > used + skipped 0");
    mch_cmap_deinit(&m);
    /* Merging maps whose counts add past 2^64 (maps no decoder lets through, handed to merge
     * directly) is refused rather than wrapped. */
    map_direct(&a, 0, 2, 2);
    map_direct(&b, 100, 2, 2);
    a.pairs_total = a.pairs_used = a.pairs_with = UINT64_MAX - 1;
    mch_cmap_input in[2] = {{&a, "A.cmap"}, {&b, "B.cmap"}};
    mch_cmap out;
    mch_err err = {0};
    assert_int_equal(mch_cmap_merge(in, 2, &out, &err), MCH_ERR_ARG);
    if (!strstr(err.msg, "add up to more than 2^64")) fail_msg("%s", err.msg);
    assert_null(out.pair_ids);
    mch_cmap_deinit(&a);
    mch_cmap_deinit(&b);
}

static void test_strata_must_be_unique_bounded_and_add_up(void **s)
{
    (void)s;
    mch_cmap m, x;
    mch_err err = {0};
    map_direct(&m, 0, 3, 3); /* relevance=0 (1 pair), relevance=1 (1), direction=with (3) */
    if (roundtrip(&m, &x, &err)) fail_msg("%s", err.msg);
    assert_int_equal(x.n_strata, 3);
    mch_cmap_deinit(&x);
    rename_stratum(&m, 1, "relevance=0"); /* merge would fold both into one */
    expect_refused(&m, "strata[1]: 'relevance=0' appears twice");
    rename_stratum(&m, 1, "grade=1");
    expect_refused(&m, "strata[1]: unknown name 'grade=1'");
    rename_stratum(&m, 1, "relevance=1");
    m.strata[0].pairs = 3; /* each within pairs_used, together 4 relevance pairs of 3 */
    expect_refused(&m, "the relevance strata hold more pairs than pairs_used (3)");
    m.strata[0].pairs = 1;
    m.strata[2].pairs = 4;
    expect_refused(&m, "strata[2] (direction=with): wrong shape or values");
    mch_cmap_deinit(&m);
    map_direct(&m, 0, 10, MCH_CMAP_MAX_STRATA + 1);
    expect_refused(&m, "strata: 4097, more than 4096");
    mch_cmap_deinit(&m);
}

/* Two maps at the bound merge (by a hash of the names: this stays quick), each stratum's pairs
 * add; a third map with one more name is refused. */
static void test_maps_at_the_strata_bound_merge(void **s)
{
    (void)s;
    enum { N = MCH_CMAP_MAX_STRATA };
    mch_cmap d[3], m[3], out, check;
    mch_err err = {0};
    map_direct(&d[0], 0, N, N);
    map_direct(&d[1], 100000, N, N);
    map_direct(&d[2], 200000, 1, 2);
    rename_stratum(&d[2], 0, "relevance=4095"); /* d[0] and d[1] stop at relevance=4094 */
    for (int i = 0; i < 3; i++) {
        if (roundtrip(&d[i], &m[i], &err)) fail_msg("%s", err.msg);
        mch_cmap_deinit(&d[i]);
    }
    assert_int_equal(m[0].n_strata, N);
    mch_cmap_input in[3] = {{&m[0], "A.cmap"}, {&m[1], "B.cmap"}, {&m[2], "C.cmap"}};
    if (mch_cmap_merge(in, 2, &out, &err)) fail_msg("%s", err.msg);
    assert_int_equal(out.n_strata, N);
    assert_int_equal(out.pairs_total, 2 * N);
    size_t checked = 0;
    for (size_t i = 0; i < out.n_strata; i++, checked++)
        assert_int_equal(out.strata[i].pairs,
                         strcmp(out.strata[i].name, "direction=with") ? 2 : 2 * N);
    assert_int_equal(checked, N);
    if (roundtrip(&out, &check, &err)) fail_msg("%s", err.msg);
    mch_cmap_deinit(&check);
    mch_cmap_deinit(&out);
    assert_int_equal(mch_cmap_merge(in, 3, &out, &err), MCH_ERR_ARG);
    if (!strstr(err.msg, "more than 4096 strata (C.cmap adds 'relevance=4095')"))
        fail_msg("%s", err.msg);
    for (int i = 0; i < 3; i++) mch_cmap_deinit(&m[i]);
}

/* The reduction refuses a pair that would make stratum 4097 (naming it), and values of a sweep
 * the job does not run (they have no cells to go to). */
static void test_reduction_keeps_to_the_strata_bound(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base();
    spec.sweeps = sweeps_none, spec.n_sweeps = 1, spec.n_head_pos = 0, spec.bootstrap = 0;
    mch_cmap_acc a;
    mch_err err = {0};
    assert_int_equal(mch_cmap_acc_init(&a, &spec, &err), MCH_OK);
    mch_pair_result r = pairs[0].r; /* used, rank 1, moved with the axiom */
    assert_true(used(0) && r.pair.rank == 1);
    r.n_head_pos_z = r.n_head_pos_pattern = 0; /* K 0: refused as a shape */
    mch_err e2 = {0};
    assert_int_equal(mch_cmap_acc_add(&a, &r, &e2), MCH_ERR_SHAPE); /* heads, no heads sweep */
    if (!strstr(e2.msg, "values of a sweep the job does not run")) fail_msg("%s", e2.msg);
    r.n_heads = r.n_blocks = r.n_head_pos_z = r.n_head_pos_pattern = 0;
    /* grades 0..4093, rank=1-10 and direction=with: 4096 strata */
    for (int g = 0; g < MCH_CMAP_MAX_STRATA - 2; g++) {
        r.pair.relevance = g, r.pair.pair_id = 1 + (uint64_t)g;
        if (mch_cmap_acc_add(&a, &r, &err)) fail_msg("grade %d: %s", g, err.msg);
    }
    assert_int_equal(a.n_strata, MCH_CMAP_MAX_STRATA);
    r.pair.relevance = 1, r.pair.pair_id = 99999; /* strata it has: fine */
    assert_int_equal(mch_cmap_acc_add(&a, &r, &err), MCH_OK);
    r.pair.relevance = MCH_CMAP_MAX_STRATA, r.pair.pair_id = 0xabc;
    assert_int_equal(mch_cmap_acc_add(&a, &r, &err), MCH_ERR_SHAPE);
    if (!strstr(err.msg, "pair 0000000000000abc: its relevance grade would be stratum 4097"))
        fail_msg("%s", err.msg);
    mch_cmap_acc_deinit(&a);
}

static void replace(char **dst, const char *s)
{
    free(*dst);
    *dst = strdup(s);
}

/* Every string of a map must be UTF-8 (it is copied into circuit.json, HTML and SVG); a NaN
 * min_delta and exact sums no pair count allows are refused. */
static void test_map_strings_and_values_are_checked(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base();
    mch_cmap *m = map_of(1, 0, &spec, "lab", NULL, NULL);
    replace(&m->sites[0], "lab-\xff");
    expect_refused(m, "sites[0] is not valid UTF-8 (byte 5)");
    replace(&m->sites[0], "lab");
    replace(&m->provenance[0], "lab\tOpen\xc3(BLAS");
    expect_refused(m, "provenance[0] is not valid UTF-8 (byte 9)");
    replace(&m->provenance[0], "lab\tOpenBLAS");
    char *name = strdup(m->strata[0].name);
    replace(&m->strata[0].name, "relevance=\xe0\x80\xaf"); /* an overlong '/' */
    expect_refused(m, "strata[0].name is not valid UTF-8 (byte 11)");
    replace(&m->strata[0].name, name);
    free(name);
    replace(&m->spec.architecture, "Bert\xed\xa0\x80"); /* a surrogate */
    expect_refused(m, "spec.architecture is not valid UTF-8 (byte 5)");
    replace(&m->spec.architecture, "BertForSequenceClassification");
    m->spec.min_delta = NAN;
    expect_refused(m, "min_delta nan is not a finite number");
    m->spec.min_delta = 1e-3;
    /* A sum of n pairs' values below 2^22 each cannot reach 2^126 (folding two would overflow). */
    mch_xsum keep = m->heads.num[0];
    m->heads.num[0].hi = INT64_MAX;
    expect_refused(m, "heads: wrong shape or values");
    m->heads.num[0] = keep;
    /* replicate 0 has weight 1: n values below 2^62 units each stay below n 2^62 (hi <= n / 4) */
    m->heads.num[0].hi = (int64_t)(m->heads.mor.n[0] / 4 + 1);
    expect_refused(m, "heads: wrong shape or values");
    m->heads.num[0] = keep;
    keep = m->blocks.den[3];
    m->blocks.den[3].hi = INT64_MIN;
    expect_refused(m, "blocks_by_role: wrong shape or values");
    m->blocks.den[3] = keep;
    mch_cmap x;
    mch_err err = {0};
    if (roundtrip(m, &x, &err)) fail_msg("%s", err.msg); /* restored: valid again */
    mch_cmap_deinit(&x);
    free_map(m);
}

static void test_exact_sums(void **s)
{
    (void)s;
    int64_t q;
    mch_xsum x = {0, 0};
    assert_int_equal(mch_xsum_quantize(-5.25, &q), 0);
    mch_xsum_add(&x, q, 1);
    assert_true(mch_xsum_value(x) == -5.25); /* a negative sum keeps its low bits */
    assert_int_equal(mch_xsum_quantize(0.125, &q), 0);
    mch_xsum_add(&x, q, 3);
    assert_true(mch_xsum_value(x) == -4.875);
    /* 2^22 values of 2^21 - 1: beyond 64 bits, still exact */
    mch_xsum big = {0, 0};
    assert_int_equal(mch_xsum_quantize(2097151.0, &q), 0);
    for (int i = 0; i < 4; i++) mch_xsum_add(&big, q, 1u << 20);
    assert_true(mch_xsum_value(big) == 2097151.0 * 4194304.0);
    assert_int_equal(big.hi, 2097151 >> 2); /* 2097151 * 2^22 * 2^40 = 2097151 * 2^62 */
    assert_int_equal(mch_xsum_quantize(4194304.0, &q), 1);
    assert_int_equal(mch_xsum_quantize(-4194304.5, &q), 1);
    assert_int_equal(mch_xsum_quantize(NAN, &q), 1);
    /* sums of values in any order are equal bit for bit (doubles are not) */
    mch_xsum f = {0, 0}, r = {0, 0};
    double v[64];
    for (int i = 0; i < 64; i++) v[i] = (rnd() - 0.5) * (i % 2 ? 1e-6 : 3e3);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(mch_xsum_quantize(v[i], &q), 0);
        mch_xsum_add(&f, q, 1);
        assert_int_equal(mch_xsum_quantize(v[63 - i], &q), 0);
        mch_xsum_add(&r, q, 1);
    }
    assert_memory_equal(&f, &r, sizeof f);
}

/* Poisson(1): mean 1, variance 1, P(0) = P(1) = 1/e, P(2) = 1/(2e); from (seed, pair, b) only. */
static void test_poisson_weights(void **s)
{
    (void)s;
    const int N = 400000;
    double sum = 0, sq = 0, c[4] = {0};
    for (int i = 0; i < N; i++) {
        unsigned w = mch_poisson_weight(42, 0x9e37ULL * (uint64_t)i, 1 + (uint32_t)(i % 200));
        sum += w, sq += (double)w * w;
        if (w < 4) c[w]++;
    }
    double mean = sum / N, var = sq / N - mean * mean, e1 = exp(-1.0);
    assert_true(fabs(mean - 1) < 0.01);
    assert_true(fabs(var - 1) < 0.02);
    assert_true(fabs(c[0] / N - e1) < 0.003);
    assert_true(fabs(c[1] / N - e1) < 0.003);
    assert_true(fabs(c[2] / N - e1 / 2) < 0.003);
    assert_true(fabs(c[3] / N - e1 / 6) < 0.002);
    int differ = 0;
    for (uint32_t b = 1; b <= 64; b++)
        differ += mch_poisson_weight(42, 5, b) != mch_poisson_weight(43, 5, b);
    assert_true(differ > 20); /* the seed matters */
    assert_int_equal(mch_poisson_weight(42, 5, 9), mch_poisson_weight(42, 5, 9));
}

/* Every replicate's sums equal a two-pass weighted sum; maps of another seed do not merge. */
static void test_bootstrap_replicates(void **s)
{
    (void)s;
    mch_job_spec spec = spec_base(), other = spec_base();
    mch_cmap *m = map_of(1, 0, &spec, "", NULL, NULL);
    long bad = 0, checked = 0;
    for (uint32_t b = 1; b <= spec.bootstrap; b++)
        for (int c = 0; c < L * NH; c += 5) {
            double num = 0, den = 0;
            int n = 0;
            for (int i = 0; i < NPAIRS; i++)
                if (used(i)) {
                    unsigned w = mch_poisson_weight(spec.seed, pairs[i].r.pair.pair_id, b);
                    num += w * ((double)pairs[i].heads[c] - pairs[i].r.score_baseline);
                    den += w * (pairs[i].r.score_perturbed - pairs[i].r.score_baseline);
                    n += (int)w;
                }
            bad += !sums_match(&m->heads, (size_t)c, b, num, den, n);
            checked++;
        }
    assert_true(checked > 100);
    assert_int_equal(bad, 0);
    double scratch[64], lo, hi;
    assert_int_equal(mch_est_interval(&m->heads, 0, spec.ci_level, scratch, &lo, &hi), 0);
    double r0 = mch_est_ratio(&m->heads, 0, 0);
    assert_true(lo < r0 && r0 < hi);
    other.seed = 8;
    mch_cmap *a = map_of(2, 0, &spec, "", NULL, NULL), *o = map_of(2, 1, &other, "", NULL, NULL);
    mch_cmap_input in[2] = {{a, "A.cmap"}, {o, "B.cmap"}};
    mch_cmap out;
    mch_err err = {0};
    assert_int_equal(mch_cmap_merge(in, 2, &out, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "seed differs: 7 vs 8"));
    free_map(m);
    free_map(a);
    free_map(o);
}

int main(void)
{
    make_pairs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_welford_matches_two_pass_reference),
        cmocka_unit_test(test_merged_shards_equal_the_whole),
        cmocka_unit_test(test_incompatible_and_overlapping_maps_are_refused),
        cmocka_unit_test(test_untrusted_maps_are_validated),
        cmocka_unit_test(test_counts_that_wrap_are_refused),
        cmocka_unit_test(test_strata_must_be_unique_bounded_and_add_up),
        cmocka_unit_test(test_maps_at_the_strata_bound_merge),
        cmocka_unit_test(test_reduction_keeps_to_the_strata_bound),
        cmocka_unit_test(test_map_strings_and_values_are_checked),
        cmocka_unit_test(test_exact_sums),
        cmocka_unit_test(test_poisson_weights),
        cmocka_unit_test(test_bootstrap_replicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
