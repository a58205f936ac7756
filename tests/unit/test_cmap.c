/* Circuit maps: Welford reduction against a two-pass reference; merging the maps of shards equals
 * the map of the whole (counts exactly, means and M2 within 1e-12 relative); merge order does not
 * change the bytes; incompatible and overlapping maps are refused with the field or an example;
 * untrusted bytes are validated before use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cmap.h"
#include "perturb.h"
#include "testutil.h"

#define L 3
#define NH 4
#define K 1
#define NPAIRS 60
#define TMAX 12

typedef struct {
    Mechir__PairInput in;
    Mechir__PairResult r;
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
        mechir__pair_input__init(&p->in);
        mechir__pair_result__init(&p->r);
        p->in.index = (uint64_t)i;
        p->in.pair_id = 1000003ULL * (uint64_t)(i + 1) ^ 0x5bd1e995ULL;
        p->in.n_ids_baseline = p->in.n_ids_perturbed = p->in.n_token_types = (size_t)T;
        p->in.ids_baseline = p->in.ids_perturbed = p->in.token_types = p->ids;
        for (int t = 0; t < T; t++)
            p->roles[t] = (uint8_t)(t == 0 ? MCH_ROLE_CLS : 1 + (int)(rnd() * 5));
        p->in.roles.len = (size_t)T;
        p->in.roles.data = p->roles;
        p->in.relevance = i % 3 == 0 ? 1 : i % 3 == 1 ? 0 : -1;
        p->in.rank = 1 + i % 25;
        p->in.qid = p->in.docno = p->in.term = (char *)"x";
        p->r.pair = &p->in;
        p->r.score_baseline = rnd();
        p->r.score_perturbed = p->r.score_baseline + 0.5;
        p->r.skip_reason = (char *)(i % 17 == 5 ? "score change below min_delta" : "");
        p->r.error = (char *)(i % 23 == 7 ? "a failure" : "");
        p->r.n_heads = L * NH;
        p->r.heads = p->heads;
        for (int k = 0; k < L * NH; k++) p->heads[k] = (float)(rnd() * 2 - 0.5);
        p->r.n_blocks = (size_t)(3 * L * T);
        p->r.blocks = p->blocks;
        for (int k = 0; k < 3 * L * T; k++) p->blocks[k] = (float)(rnd() * 3 - 1);
        p->r.n_head_pos_z = p->r.n_head_pos_pattern = (size_t)(K * T);
        p->r.head_pos_z = p->hpz;
        p->r.head_pos_pattern = p->hpp;
        for (int k = 0; k < K * T; k++) p->hpz[k] = (float)rnd(), p->hpp[k] = (float)rnd();
    }
}

static Mechir__JobSpec spec_base(void)
{
    static uint32_t heads[2] = {1, 2};
    static char *sweeps[3] = {"heads", "blocks", "head-pos"};
    Mechir__JobSpec s;
    mechir__job_spec__init(&s);
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
    s.n_head_list = 2;
    s.head_list = heads;
    s.max_len = 64;
    s.min_delta = 1e-3;
    s.position = "end";
    s.filler = "a";
    s.pooling = "cls";
    return s;
}

/* The map of the pairs whose index % mod == rem (mod 1: all), packed and unpacked. */
static Mechir__CircuitMap *map_of(int mod, int rem, const Mechir__JobSpec *spec, const char *site,
                                  uint8_t **bytes, size_t *len)
{
    mch_cmap_acc a;
    mch_err err = {0};
    assert_int_equal(mch_cmap_acc_init(&a, L, NH, K, &err), MCH_OK);
    for (int i = 0; i < NPAIRS; i++)
        if (i % mod == rem) assert_int_equal(mch_cmap_acc_add(&a, &pairs[i].r, &err), MCH_OK);
    char *sites[1] = {(char *)site};
    assert_int_equal(mch_cmap_pack(&a, spec, sites, 1, bytes, len, &err), MCH_OK);
    mch_cmap_acc_free(&a);
    Mechir__CircuitMap *m = NULL;
    if (mch_cmap_unpack(&m, *bytes, *len, "test", &err)) fail_msg("%s", err.msg);
    return m;
}

static long cmp_stats(const char *what, const Mechir__Stats *a, const Mechir__Stats *b)
{
    long bad = 0;
    assert_int_equal(a->n_n, b->n_n);
    for (size_t i = 0; i < a->n_n; i++) {
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

static void test_welford_matches_two_pass_reference(void **s)
{
    (void)s;
    Mechir__JobSpec spec = spec_base();
    uint8_t *bytes;
    size_t len;
    Mechir__CircuitMap *m = map_of(1, 0, &spec, "", &bytes, &len);
    long bad = 0, checked = 0;
    for (int c = 0; c < L * NH; c++) {
        double sum = 0, n = 0;
        for (int i = 0; i < NPAIRS; i++)
            if (!*pairs[i].r.skip_reason && !*pairs[i].r.error) sum += pairs[i].heads[c], n++;
        double mean = sum / n, ss = 0;
        for (int i = 0; i < NPAIRS; i++)
            if (!*pairs[i].r.skip_reason && !*pairs[i].r.error)
                ss += (pairs[i].heads[c] - mean) * (pairs[i].heads[c] - mean);
        bad += m->heads->n[c] != (uint64_t)n || fabs(m->heads->mean[c] - mean) > 1e-12 ||
               fabs(m->heads->m2[c] - ss) > 1e-12 * fmax(1, ss);
        checked++;
    }
    assert_int_equal(checked, L * NH);
    assert_int_equal(bad, 0);
    assert_int_equal(m->pairs_total, NPAIRS);
    assert_int_equal(m->pairs_used + m->pairs_skipped + m->pairs_failed, NPAIRS);
    assert_true(m->pairs_skipped > 0 && m->pairs_failed > 0);
    assert_true(m->n_strata > 0);
    mechir__circuit_map__free_unpacked(m, NULL);
    free(bytes);
}

static void test_merged_shards_equal_the_whole(void **s)
{
    (void)s;
    Mechir__JobSpec spec = spec_base();
    uint8_t *wb, *sb[3], *mb[2];
    size_t wl, sl[3], ml[2];
    Mechir__CircuitMap *whole = map_of(1, 0, &spec, "a", &wb, &wl), *shard[3];
    for (int k = 0; k < 3; k++) shard[k] = map_of(3, k, &spec, k == 1 ? "b" : "a", &sb[k], &sl[k]);
    int orders[2][3] = {{0, 1, 2}, {2, 0, 1}};
    mch_err err = {0};
    for (int o = 0; o < 2; o++) {
        mch_cmap_input in[3];
        for (int k = 0; k < 3; k++) in[k] = (mch_cmap_input){shard[orders[o][k]], "shard"};
        assert_int_equal(mch_cmap_merge(in, 3, &mb[o], &ml[o], &err), MCH_OK);
    }
    assert_int_equal(ml[0], ml[1]);
    assert_memory_equal(mb[0], mb[1], ml[0]); /* argument order gives identical bytes */
    Mechir__CircuitMap *m = NULL;
    assert_int_equal(mch_cmap_unpack(&m, mb[0], ml[0], "merged", &err), MCH_OK);
    assert_int_equal(m->pairs_total, whole->pairs_total);
    assert_int_equal(m->pairs_used, whole->pairs_used);
    assert_int_equal(m->n_pair_ids, whole->n_pair_ids);
    assert_memory_equal(m->pair_ids, whole->pair_ids, m->n_pair_ids * sizeof *m->pair_ids);
    long bad =
        cmp_stats("heads", m->heads, whole->heads) +
        cmp_stats("blocks", m->blocks_by_role, whole->blocks_by_role) +
        cmp_stats("head_pos_z", m->head_pos_z_by_role, whole->head_pos_z_by_role) +
        cmp_stats("head_pos_pattern", m->head_pos_pattern_by_role, whole->head_pos_pattern_by_role);
    assert_int_equal(m->n_strata, whole->n_strata);
    for (size_t i = 0; i < m->n_strata; i++) {
        assert_string_equal(m->strata[i]->name, whole->strata[i]->name);
        assert_int_equal(m->strata[i]->pairs, whole->strata[i]->pairs);
        bad += cmp_stats(m->strata[i]->name, m->strata[i]->heads, whole->strata[i]->heads);
        bad += cmp_stats(m->strata[i]->name, m->strata[i]->blocks_by_role,
                         whole->strata[i]->blocks_by_role);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(m->n_sites, 2); /* provenance: the union of sites */
    assert_string_equal(m->sites[0], "a");
    assert_string_equal(m->sites[1], "b");
    mechir__circuit_map__free_unpacked(m, NULL);
    mechir__circuit_map__free_unpacked(whole, NULL);
    for (int k = 0; k < 3; k++) mechir__circuit_map__free_unpacked(shard[k], NULL), free(sb[k]);
    free(mb[0]);
    free(mb[1]);
    free(wb);
}

static void test_incompatible_and_overlapping_maps_are_refused(void **s)
{
    (void)s;
    Mechir__JobSpec spec = spec_base(), other = spec_base();
    other.min_delta = 0.01;
    uint8_t *b0, *b1, *b2;
    size_t l0, l1, l2;
    Mechir__CircuitMap *a = map_of(2, 0, &spec, "", &b0, &l0),
                       *b = map_of(2, 1, &other, "", &b1, &l1);
    mch_cmap_input in[2] = {{a, "A.cmap"}, {b, "B.cmap"}};
    uint8_t *out = NULL;
    size_t len;
    mch_err err = {0};
    assert_int_equal(mch_cmap_merge(in, 2, &out, &len, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "min_delta"));
    assert_non_null(strstr(err.msg, "0.001"));
    assert_non_null(strstr(err.msg, "0.01"));
    assert_null(out);
    Mechir__CircuitMap *c = map_of(3, 0, &spec, "", &b2, &l2); /* shares index 0, 6, ... with a */
    mch_cmap_input in2[2] = {{a, "A.cmap"}, {c, "C.cmap"}};
    mch_err e2 = {0};
    assert_int_equal(mch_cmap_merge(in2, 2, &out, &len, &e2), MCH_ERR_ARG);
    assert_non_null(strstr(e2.msg, "share 10 pairs"));
    assert_non_null(strstr(e2.msg, "e.g. pair"));
    mechir__circuit_map__free_unpacked(a, NULL);
    mechir__circuit_map__free_unpacked(b, NULL);
    mechir__circuit_map__free_unpacked(c, NULL);
    free(b0);
    free(b1);
    free(b2);
}

static void test_untrusted_maps_are_validated(void **s)
{
    (void)s;
    Mechir__JobSpec spec = spec_base();
    uint8_t *bytes;
    size_t len;
    Mechir__CircuitMap *m = map_of(1, 0, &spec, "", &bytes, &len);
    mch_err err = {0};
    Mechir__CircuitMap *x = NULL;
    /* Every truncation is refused or, if protobuf still decodes it, caught by validation. */
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += 7) {
        mch_err e = {0};
        if (mch_cmap_unpack(&x, bytes, cut, "cut", &e) != MCH_OK)
            refused++;
        else
            mechir__circuit_map__free_unpacked(x, NULL);
    }
    assert_true(refused > 0);
    /* A map whose heads have the wrong number of cells. */
    m->heads->n_n = m->heads->n_mean = m->heads->n_m2 = L * NH - 1;
    size_t n2 = mechir__circuit_map__get_packed_size(m);
    uint8_t *b2 = malloc(n2);
    mechir__circuit_map__pack(m, b2);
    assert_int_equal(mch_cmap_unpack(&x, b2, n2, "bad.cmap", &err), MCH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad.cmap"));
    assert_non_null(strstr(err.msg, "heads"));
    m->heads->n_n = m->heads->n_mean = m->heads->n_m2 = L * NH;
    free(b2);
    /* Counts that do not add up. */
    m->pairs_used++;
    n2 = mechir__circuit_map__get_packed_size(m);
    b2 = malloc(n2);
    mechir__circuit_map__pack(m, b2);
    mch_err e3 = {0};
    assert_int_equal(mch_cmap_unpack(&x, b2, n2, "bad.cmap", &e3), MCH_ERR_FORMAT);
    assert_non_null(strstr(e3.msg, "pair counts"));
    m->pairs_used--;
    free(b2);
    mechir__circuit_map__free_unpacked(m, NULL);
    free(bytes);
}

int main(void)
{
    make_pairs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_welford_matches_two_pass_reference),
        cmocka_unit_test(test_merged_shards_equal_the_whole),
        cmocka_unit_test(test_incompatible_and_overlapping_maps_are_refused),
        cmocka_unit_test(test_untrusted_maps_are_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
