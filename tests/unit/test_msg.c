/* The message layer (proto/msg.h): every message packs and unpacks to an equal struct, field by
 * field; bytes of the wrong shape, written here by hand in the protobuf wire format, are refused
 * with the field and the numbers named; the job-spec comparison names the first differing field
 * and both values; the sweep, head-list, list and hook parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"
#include "perturb.h"
#include "testutil.h"

/* ---- a protobuf writer, independent of the generated code -------------------------------- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} pbuf;

static void pb_varint(pbuf *p, uint64_t v)
{
    while (v >= 0x80) {
        p->b[p->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p->b[p->n++] = (uint8_t)v;
}

static void pb_uint(pbuf *p, int field, uint64_t v)
{
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}

static void pb_bytes(pbuf *p, int field, const void *data, size_t len)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, len);
    memcpy(p->b + p->n, data, len);
    p->n += len;
}

/* A packed repeated varint field (int32, uint32). */
static void pb_packed(pbuf *p, int field, const uint32_t *v, size_t n)
{
    pbuf t = {.n = 0};
    for (size_t i = 0; i < n; i++) pb_varint(&t, v[i]);
    pb_bytes(p, field, t.b, t.n);
}

/* A PairInput with T ids (and perturbed ids and token types) but roles_len roles. */
static void pb_pair(pbuf *p, uint64_t index, size_t T, const uint8_t *roles, size_t roles_len)
{
    uint32_t ids[16] = {101, 7, 8, 102, 9, 102};
    pb_uint(p, 1, index);
    pb_uint(p, 2, 0xabcd);
    for (int f = 3; f <= 5; f++) pb_packed(p, f, ids, T);
    pb_bytes(p, 7, roles, roles_len);
}

static const uint8_t roles6[6] = {MCH_ROLE_CLS, MCH_ROLE_QUERY_TERM, MCH_ROLE_QUERY_OTHER,
                                  MCH_ROLE_SEP, MCH_ROLE_DOC_OTHER,  MCH_ROLE_SEP};

/* ---- fixtures ----------------------------------------------------------------------------- */

static uint32_t head_pos[4] = {0, 1, 2, 3};
static char *sweeps3[3] = {"heads", "blocks", "head-pos"};
static char *hooks2[2] = {"blocks.*.attn.hook_pattern", "hook_full_embed"};
static mch_input_file files2[2] = {{"x.tsv", 4082, 0xe7c2a6f2a1223766ULL, 0},
                                   {"df.tsv", 1ULL << 33, 0x8000000000000001ULL, 0}};

static mch_job_spec spec_full(void)
{
    mch_job_spec s = {0};
    s.format = MCH_JOB_FORMAT, s.model_path = "/models/ce", s.model_sha256 = "abc";
    s.vocab_hash = "v0", s.arch = "bert", s.architecture = "BertForSequenceClassification";
    s.layers = 3, s.heads = 4, s.hidden = 32;
    s.perturbation = "tdc", s.position = "start", s.filler = "the", s.pooling = "mean";
    s.stem = 1, s.max_len = 96, s.max_query_len = 20, s.min_delta = 0.125, s.seed = 1ULL << 40;
    s.sweeps = sweeps3, s.n_sweeps = 3;
    s.head_pos = head_pos, s.n_head_pos = 2;
    s.cache_hooks = hooks2, s.n_cache_hooks = 2;
    s.cache_dtype = "bf16", s.inputs = "input=x.tsv", s.software_version = "9.9.9";
    s.bootstrap = 3, s.ci_level = 0.8, s.direction = "against", s.select = "top-delta";
    s.select_k = 1ULL << 33, s.select_per_grade = 1;
    s.input_files = files2, s.n_input_files = 2;
    return s;
}

static void assert_spec_equal(const mch_job_spec *a, const mch_job_spec *b)
{
    const char *const sa[] = {
        a->format,       a->model_path,   a->model_sha256,     a->vocab_hash, a->arch,
        a->architecture, a->perturbation, a->position,         a->filler,     a->pooling,
        a->cache_dtype,  a->inputs,       a->software_version, a->direction,  a->select};
    const char *const sb[] = {
        b->format,       b->model_path,   b->model_sha256,     b->vocab_hash, b->arch,
        b->architecture, b->perturbation, b->position,         b->filler,     b->pooling,
        b->cache_dtype,  b->inputs,       b->software_version, b->direction,  b->select};
    for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++) assert_string_equal(sa[i], sb[i]);
    assert_int_equal(a->layers, b->layers);
    assert_int_equal(a->heads, b->heads);
    assert_int_equal(a->hidden, b->hidden);
    assert_int_equal(a->stem, b->stem);
    assert_int_equal(a->max_len, b->max_len);
    assert_int_equal(a->max_query_len, b->max_query_len);
    assert_true(a->min_delta == b->min_delta);
    assert_int_equal(a->bootstrap, b->bootstrap);
    assert_true(a->ci_level == b->ci_level);
    assert_int_equal(a->select_k, b->select_k);
    assert_int_equal(a->select_per_grade, b->select_per_grade);
    assert_int_equal(a->seed, b->seed);
    assert_int_equal(a->n_sweeps, b->n_sweeps);
    for (size_t i = 0; i < a->n_sweeps; i++) assert_string_equal(a->sweeps[i], b->sweeps[i]);
    assert_int_equal(a->n_head_pos, b->n_head_pos);
    assert_memory_equal(a->head_pos, b->head_pos, 2 * a->n_head_pos * sizeof *a->head_pos);
    assert_int_equal(a->n_cache_hooks, b->n_cache_hooks);
    for (size_t i = 0; i < a->n_cache_hooks; i++)
        assert_string_equal(a->cache_hooks[i], b->cache_hooks[i]);
}

static void assert_files_equal(const mch_job_spec *a, const mch_job_spec *b)
{
    assert_int_equal(a->n_input_files, b->n_input_files);
    for (size_t i = 0; i < a->n_input_files; i++) {
        assert_string_equal(a->input_files[i].name, b->input_files[i].name);
        assert_int_equal(a->input_files[i].size_bytes, b->input_files[i].size_bytes);
        assert_int_equal(a->input_files[i].xxh3, b->input_files[i].xxh3);
        assert_int_equal(a->input_files[i].not_regular, b->input_files[i].not_regular);
    }
}

/* ---- round trips -------------------------------------------------------------------------- */

static void test_job_spec_roundtrip_preserves_every_field(void **st)
{
    (void)st;
    mch_job_spec s = spec_full(), back, copy;
    uint8_t *bytes;
    size_t len;
    mch_err err = {0};
    assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &err), MCH_OK);
    if (mch_job_spec_unpack(&back, bytes, len, "spec", &err)) fail_msg("%s", err.msg);
    assert_spec_equal(&s, &back);
    assert_files_equal(&s, &back);
    assert_int_equal(mch_job_spec_copy(&copy, &back, &err), MCH_OK);
    mch_job_spec_deinit(&back);
    assert_spec_equal(&s, &copy); /* a deep copy outlives its source */
    assert_files_equal(&s, &copy);
    mch_job_spec_deinit(&copy);
    mch_job_spec_deinit(&copy); /* deinit of a zeroed struct, and of NULL */
    mch_job_spec_deinit(NULL);
    free(bytes);
}

static void fill_pair(mch_pair_input *p, int32_t *ids, uint8_t *roles, int32_t *q, uint64_t i)
{
    *p = (mch_pair_input){.index = 40 + i,
                          .pair_id = 0xfeedULL << 20 | i,
                          .T = 6,
                          .ids_baseline = ids,
                          .ids_perturbed = ids + 6,
                          .token_types = ids + 12,
                          .roles = roles,
                          .Tq = i ? 2 : 0,
                          .query_ids = i ? q : NULL,
                          .qid = "q1",
                          .docno = i ? "d\xc3\xa9" : "d0",
                          .term = "frogs",
                          .position = 3,
                          .relevance = i ? 2 : -1,
                          .rank = i ? 11 : -1};
}

static void assert_pair_equal(const mch_pair_input *a, const mch_pair_input *b)
{
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->pair_id, b->pair_id);
    assert_int_equal(a->T, b->T);
    assert_memory_equal(a->ids_baseline, b->ids_baseline, a->T * sizeof(int32_t));
    assert_memory_equal(a->ids_perturbed, b->ids_perturbed, a->T * sizeof(int32_t));
    assert_memory_equal(a->token_types, b->token_types, a->T * sizeof(int32_t));
    assert_memory_equal(a->roles, b->roles, a->T);
    assert_int_equal(a->Tq, b->Tq);
    if (a->Tq) assert_memory_equal(a->query_ids, b->query_ids, a->Tq * sizeof(int32_t));
    assert_string_equal(a->qid ? a->qid : "", b->qid); /* NULL packs as "" */
    assert_string_equal(a->docno ? a->docno : "", b->docno);
    assert_string_equal(a->term ? a->term : "", b->term);
    assert_int_equal(a->position, b->position);
    assert_int_equal(a->relevance, b->relevance);
    assert_int_equal(a->rank, b->rank);
}

static void test_work_unit_roundtrip_preserves_every_field(void **st)
{
    (void)st;
    int32_t ids[18] = {101, 7, 8, 102, 9, 102, 101, 7, 8, 102, 55, 102, 0, 0, 0, 0, 1, 1};
    int32_t q[2] = {7, 8};
    uint8_t roles[6];
    memcpy(roles, roles6, 6);
    mch_pair_input pairs[2];
    for (uint64_t i = 0; i < 2; i++) fill_pair(&pairs[i], ids, roles, q, i);
    mch_work_unit u = {77, pairs, 2, MCH_UNIT_SCORE}, back;
    uint8_t *bytes;
    size_t len;
    mch_err err = {0};
    assert_int_equal(mch_work_unit_pack(&u, &bytes, &len, &err), MCH_OK);
    if (mch_work_unit_unpack(&back, bytes, len, &err)) fail_msg("%s", err.msg);
    assert_int_equal(back.unit_id, 77);
    assert_int_equal(back.n_pairs, 2);
    assert_int_equal(back.mode, MCH_UNIT_SCORE);
    for (int i = 0; i < 2; i++) assert_pair_equal(&pairs[i], &back.pairs[i]);
    mch_work_unit_deinit(&back);
    free(bytes);
    /* A mode this version does not know is refused, naming the unit and the mode. */
    u.mode = 7;
    assert_int_equal(mch_work_unit_pack(&u, &bytes, &len, &err), MCH_OK);
    assert_int_equal(mch_work_unit_unpack(&back, bytes, len, &err), MCH_ERR_PROTO);
    assert_non_null(strstr(err.msg, "work unit 77: unknown mode 7"));
    assert_int_equal(back.n_pairs, 0);
    assert_null(back.pairs);
    free(bytes);
}

static void assert_floats(const float *a, const float *b, size_t n)
{
    if (n) assert_memory_equal(a, b, n * sizeof *a);
}

static void assert_result_equal(const mch_pair_result *a, const mch_pair_result *b)
{
    assert_pair_equal(&a->pair, &b->pair);
    assert_true(a->score_baseline == b->score_baseline);
    assert_true(a->score_perturbed == b->score_perturbed);
    assert_true(!a->skip_reason == !b->skip_reason);
    if (a->skip_reason) assert_string_equal(a->skip_reason, b->skip_reason);
    assert_true(!a->error == !b->error);
    if (a->error) assert_string_equal(a->error, b->error);
    const struct {
        size_t na, nb;
        const float *a[2], *b[2];
    } maps[] = {
        {a->n_heads, b->n_heads, {a->heads, a->heads_scores}, {b->heads, b->heads_scores}},
        {a->n_blocks, b->n_blocks, {a->blocks, a->blocks_scores}, {b->blocks, b->blocks_scores}},
        {a->n_head_pos_z,
         b->n_head_pos_z,
         {a->head_pos_z, a->head_pos_z_scores},
         {b->head_pos_z, b->head_pos_z_scores}},
        {a->n_head_pos_pattern,
         b->n_head_pos_pattern,
         {a->head_pos_pattern, a->head_pos_pattern_scores},
         {b->head_pos_pattern, b->head_pos_pattern_scores}},
    };
    for (int k = 0; k < 4; k++) {
        assert_int_equal(maps[k].na, maps[k].nb);
        for (int e = 0; e < 2; e++) assert_floats(maps[k].a[e], maps[k].b[e], maps[k].na);
    }
    assert_int_equal(a->n_verified, b->n_verified);
    assert_int_equal(a->verified_top, b->verified_top);
    if (a->n_verified) {
        assert_memory_equal(a->verified_comp, b->verified_comp,
                            3 * a->n_verified * sizeof(int32_t));
        assert_floats(a->verified_estimate, b->verified_estimate, a->n_verified);
        assert_floats(a->verified_exact, b->verified_exact, a->n_verified);
    }
}

static void test_results_roundtrip_preserve_every_field(void **st)
{
    (void)st;
    int32_t ids[18] = {101, 7, 8, 102, 9, 102, 101, 7, 8, 102, 55, 102};
    uint8_t roles[6];
    memcpy(roles, roles6, 6);
    float v[2 * 3 * 3 * 6]; /* L 3, NH 4, T 6, K 2 */
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) v[i] = (float)i * 0.25f - 3.0f;
    mch_pair_result r[3];
    memset(r, 0, sizeof r);
    fill_pair(&r[0].pair, ids, roles, NULL, 0);
    r[0].score_baseline = -1.5, r[0].score_perturbed = 2.25;
    r[0].n_heads = 12, r[0].heads = v, r[0].heads_scores = v + 12;
    r[0].n_blocks = 54, r[0].blocks = v + 1, r[0].blocks_scores = v + 2;
    r[0].n_head_pos_z = r[0].n_head_pos_pattern = 12;
    r[0].head_pos_z = v + 3, r[0].head_pos_z_scores = v + 4;
    r[0].head_pos_pattern = v + 5, r[0].head_pos_pattern_scores = v + 6;
    r[1].pair.index = 41, r[1].skip_reason = "score change below min_delta";
    r[2].pair.index = 42, r[2].error = "pair arrays of inconsistent lengths";
    mch_err err = {0};
    uint8_t *bytes;
    size_t len;
    mch_pair_result back;
    assert_int_equal(mch_pair_result_pack(&r[0], &bytes, &len, &err), MCH_OK);
    if (mch_pair_result_unpack(&back, bytes, len, &err)) fail_msg("%s", err.msg);
    assert_result_equal(&r[0], &back);
    uint64_t index = 0;
    assert_int_equal(mch_pair_result_index(bytes, len, &index), 0);
    assert_int_equal(index, 40);
    mch_pair_result_deinit(&back);
    free(bytes);
    mch_unit_result u = {9, 3, 0.75, r, 3}, ub;
    assert_int_equal(mch_unit_result_pack(&u, &bytes, &len, &err), MCH_OK);
    if (mch_unit_result_unpack(&ub, bytes, len, &err)) fail_msg("%s", err.msg);
    assert_int_equal(ub.unit_id, 9);
    assert_int_equal(ub.rank, 3);
    assert_true(ub.seconds == 0.75);
    assert_int_equal(ub.n_results, 3);
    for (int i = 0; i < 3; i++) assert_result_equal(&r[i], &ub.results[i]);
    mch_unit_result_deinit(&ub);
    free(bytes);
    mch_error_msg e = {5, 0x1234, "on node7: the model is missing"}, eb;
    assert_int_equal(mch_error_msg_pack(&e, &bytes, &len, &err), MCH_OK);
    assert_int_equal(mch_error_msg_unpack(&eb, bytes, len, &err), MCH_OK);
    assert_int_equal(eb.rank, 5);
    assert_int_equal(eb.pair_id, 0x1234);
    assert_string_equal(eb.message, e.message);
    mch_error_msg_deinit(&eb);
    free(bytes);
}

/* A valid map of the full spec: L 3, NH 4, K 2, R roles; 5 pairs, 3 used. */
static void build_map(mch_cmap *m)
{
    mch_err err = {0};
    mch_job_spec s = spec_full();
    s.cache_hooks = NULL, s.n_cache_hooks = 0; /* maps record no cache options */
    memset(m, 0, sizeof *m);
    assert_int_equal(mch_job_spec_copy(&m->spec, &s, &err), MCH_OK);
    m->pairs_total = 5, m->pairs_used = 3, m->pairs_skipped = 1, m->pairs_failed = 1;
    m->pairs_with = 3, m->pairs_against = 1;
    size_t R = MCH_ROLE_COUNT, cells[4] = {12, 3 * 3 * R, 2 * R, 2 * R};
    mch_est *all[4] = {&m->heads, &m->blocks, &m->hpz, &m->hpp};
    const uint8_t w[4] = {1, 0, 2, 5};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(mch_est_init(all[k], cells[k], 3, &err), MCH_OK);
        for (size_t i = 0; i < cells[k]; i += 2)
            for (int x = 0; x < 3; x++)
                mch_est_add(all[k], i, 0.5 * x - (double)i / 7, -(int64_t)i * 1000003 + x,
                            (int64_t)x << 45, w);
    }
    m->n_strata = 1;
    m->strata = calloc(1, sizeof *m->strata);
    m->strata[0].name = strdup("relevance=2");
    m->strata[0].pairs = 1;
    assert_int_equal(mch_est_init(&m->strata[0].heads, 12, 3, &err), MCH_OK);
    assert_int_equal(mch_est_init(&m->strata[0].blocks, 3 * 3 * R, 3, &err), MCH_OK);
    mch_est_add(&m->strata[0].heads, 3, -0.25, -7, 9, w);
    m->n_pair_ids = 5;
    m->pair_ids = malloc(5 * sizeof *m->pair_ids);
    for (int i = 0; i < 5; i++) m->pair_ids[i] = 1000 + 17 * (uint64_t)i;
    m->n_sites = 2;
    m->sites = calloc(2, sizeof *m->sites);
    m->sites[0] = strdup("lab-a");
    m->sites[1] = strdup("lab-b");
    m->n_provenance = 1;
    m->provenance = calloc(1, sizeof *m->provenance);
    m->provenance[0] = strdup("lab-a\tOpenBLAS 0.3.21; kernel Haswell");
}

static void assert_stats_equal(const mch_est *e, const mch_est *f)
{
    const mch_stats *a = &e->mor, *b = &f->mor;
    size_t n = e->cells * ((size_t)e->B + 1);
    assert_int_equal(e->B, f->B);
    assert_int_equal(e->cells, f->cells);
    assert_memory_equal(e->num, f->num, n * sizeof *e->num);
    assert_memory_equal(e->den, f->den, n * sizeof *e->den);
    assert_int_equal(a->cells, b->cells);
    assert_memory_equal(a->n, b->n, a->cells * sizeof *a->n);
    assert_memory_equal(a->mean, b->mean, a->cells * sizeof *a->mean);
    assert_memory_equal(a->m2, b->m2, a->cells * sizeof *a->m2);
}

static void test_cmap_roundtrip_preserves_every_field(void **st)
{
    (void)st;
    mch_cmap m, back;
    build_map(&m);
    uint8_t *bytes;
    size_t len;
    mch_err err = {0};
    assert_int_equal(mch_cmap_pack(&m, &bytes, &len, &err), MCH_OK);
    if (mch_cmap_unpack(&back, bytes, len, "map", &err)) fail_msg("%s", err.msg);
    assert_spec_equal(&m.spec, &back.spec);
    assert_int_equal(m.spec.n_input_files, 2);
    assert_int_equal(back.spec.n_input_files, 0); /* a map never records the input files */
    assert_int_equal(back.pairs_total, 5);
    assert_int_equal(back.pairs_used, 3);
    assert_int_equal(back.pairs_skipped, 1);
    assert_int_equal(back.pairs_failed, 1);
    assert_stats_equal(&m.heads, &back.heads);
    assert_stats_equal(&m.blocks, &back.blocks);
    assert_stats_equal(&m.hpz, &back.hpz);
    assert_stats_equal(&m.hpp, &back.hpp);
    assert_int_equal(back.n_strata, 1);
    assert_string_equal(back.strata[0].name, "relevance=2");
    assert_int_equal(back.strata[0].pairs, 1);
    assert_stats_equal(&m.strata[0].heads, &back.strata[0].heads);
    assert_stats_equal(&m.strata[0].blocks, &back.strata[0].blocks);
    assert_int_equal(back.n_pair_ids, 5);
    assert_memory_equal(m.pair_ids, back.pair_ids, 5 * sizeof *m.pair_ids);
    assert_int_equal(back.n_sites, 2);
    assert_string_equal(back.sites[1], "lab-b");
    assert_int_equal(back.n_provenance, 1);
    assert_string_equal(back.provenance[0], "lab-a\tOpenBLAS 0.3.21; kernel Haswell");
    assert_int_equal(back.pairs_with, 3);
    assert_int_equal(back.pairs_against, 1);
    /* Welford against the values added: cell 0 holds 0, 0.5, 1. */
    assert_int_equal(back.heads.mor.n[0], 3);
    assert_true(fabs(back.heads.mor.mean[0] - 0.5) < 1e-15);
    assert_true(fabs(back.heads.mor.m2[0] - 0.5) < 1e-15);
    assert_true(fabs(mch_stats_std(&back.heads.mor, 0) - 0.5) < 1e-15);
    assert_true(isnan(mch_stats_std(&back.strata[0].heads.mor, 3))); /* n 1 */
    /* Exact sums: cell 2 of blocks got -2000006 + x for x = 0, 1, 2 with weights 1, 0, 2, 5 */
    assert_true(mch_xsum_value(back.blocks.num[2 * 4 + 3]) == ldexp(5 * (3 - 6000018.0), -40));
    assert_true(mch_xsum_value(back.blocks.den[2 * 4 + 2]) == ldexp(2.0 * (3LL << 45), -40));
    assert_true(isnan(mch_est_ratio(&back.blocks, 2, 1))); /* weight 0: no denominator */
    mch_cmap_deinit(&back);
    mch_cmap_deinit(&m);
    free(bytes);
}

/* ---- refusals ----------------------------------------------------------------------------- */

static void assert_names(const mch_err *err, const char *what)
{
    if (!strstr(err->msg, what)) fail_msg("'%s' does not say '%s'", err->msg, what);
}

typedef enum { PAIR_RESULT, UNIT_RESULT, WORK_UNIT } msg_kind;

/* Unpacks b as a message of kind k: refused (MCH_ERR_PROTO), nothing returned, and the message
 * says each of the needles. */
static void expect_refused(msg_kind k, const pbuf *b, const char *needle, const char *needle2)
{
    mch_err err = {0};
    mch_status rc;
    if (k == PAIR_RESULT) {
        mch_pair_result r;
        rc = mch_pair_result_unpack(&r, b->b, b->n, &err);
        assert_null(r.heads);
    } else if (k == UNIT_RESULT) {
        mch_unit_result r;
        rc = mch_unit_result_unpack(&r, b->b, b->n, &err);
        assert_null(r.results);
    } else {
        mch_work_unit u;
        rc = mch_work_unit_unpack(&u, b->b, b->n, &err);
        assert_null(u.pairs);
    }
    assert_int_equal(rc, MCH_ERR_PROTO);
    assert_names(&err, needle);
    if (needle2) assert_names(&err, needle2);
}

static void test_bad_shapes_are_refused_naming_the_field(void **st)
{
    (void)st;
    float f3[3] = {1, 2, 3};
    /* A result whose heads and heads_scores differ in length, alone and in a unit result. */
    pbuf pair = {.n = 0}, res = {.n = 0}, unit = {.n = 0}, nopair = {.n = 0};
    pb_pair(&pair, 5, 6, roles6, 6);
    pb_bytes(&res, 1, pair.b, pair.n);
    pb_bytes(&res, 6, f3, sizeof f3);
    pb_bytes(&res, 7, f3, 2 * sizeof *f3);
    expect_refused(PAIR_RESULT, &res, "heads has 3 values but 2 scores", NULL);
    pb_uint(&unit, 1, 7);
    pb_bytes(&unit, 3, res.b, res.n);
    expect_refused(UNIT_RESULT, &unit, "a malformed result of unit 7, pair 0",
                   "heads has 3 values but 2 scores");
    /* A result without its pair. */
    pb_bytes(&nopair, 6, f3, sizeof f3);
    pb_bytes(&nopair, 7, f3, sizeof f3);
    expect_refused(PAIR_RESULT, &nopair, "result without its pair", NULL);
    /* A unit whose pair has 6 ids but 5 roles, and one with a role out of range (the first
     * value past the last role, MCH_ROLE_DOC_OTHER = 7). */
    uint8_t bad_roles[6] = {0, 2, 3, 1, MCH_ROLE_COUNT, 1};
    const struct {
        const uint8_t *roles;
        size_t n;
        const char *what;
    } cases[] = {{roles6, 5,
                  "pair arrays of different lengths (ids 6, perturbed 6, token types 6, roles 5)"},
                 {bad_roles, 6, "role 8 out of range"}};
    for (int c = 0; c < 2; c++) {
        pbuf p = {.n = 0}, u = {.n = 0};
        pb_pair(&p, 0, 6, cases[c].roles, cases[c].n);
        pb_uint(&u, 1, 3);
        pb_bytes(&u, 2, p.b, p.n);
        expect_refused(WORK_UNIT, &u, "work unit 3, pair 0", cases[c].what);
    }
    /* Sizes are checked before anything is read. */
    uint8_t one = 0;
    mch_err e4 = {0};
    mch_work_unit wu;
    assert_int_equal(mch_work_unit_unpack(&wu, &one, MCH_MSG_MAX_BYTES + 1, &e4), MCH_ERR_PROTO);
    assert_names(&e4, "too large");
}

/* Every string of a decoded job spec, work unit, pair result and unit result must be UTF-8 (they
 * reach job.json, pairs.jsonl and circuit.json); a spec that would not decode does not pack. A
 * worker's error message is only logged and passes as it is. */
static void test_strings_must_be_utf8(void **st)
{
    (void)st;
    pbuf qid = {.n = 0}, unit = {.n = 0}, res = {.n = 0}, ures = {.n = 0}, spec = {.n = 0};
    pb_pair(&qid, 0, 6, roles6, 6);
    pb_bytes(&qid, 8, "q\xff", 2);
    pb_uint(&unit, 1, 3);
    pb_bytes(&unit, 2, roles6, 0); /* an empty pair first: the bad one is pairs[1] */
    pb_bytes(&unit, 2, qid.b, qid.n);
    expect_refused(WORK_UNIT, &unit, "work unit 3: pairs[1].qid is not valid UTF-8 (byte 2)", NULL);
    pbuf pair = {.n = 0};
    pb_pair(&pair, 5, 6, roles6, 6);
    pb_bytes(&res, 1, pair.b, pair.n);
    pb_bytes(&res, 4, "below \xc0\xae", 8); /* an overlong '.' */
    expect_refused(PAIR_RESULT, &res, "skip_reason is not valid UTF-8 (byte 7)", NULL);
    pbuf term = {.n = 0}, res2 = {.n = 0};
    pb_pair(&term, 5, 6, roles6, 6);
    pb_bytes(&term, 10, "\xf4\x90\x80\x80", 4); /* past U+10FFFF */
    pb_bytes(&res2, 1, term.b, term.n);
    pb_bytes(&res2, 5, "failed", 6);
    pb_uint(&ures, 1, 9);
    pb_bytes(&ures, 3, res2.b, res2.n);
    expect_refused(UNIT_RESULT, &ures, "results[0].pair.term is not valid UTF-8 (byte 1)", NULL);
    /* A job spec: refused when decoded, and not packed in the first place. */
    pb_uint(&spec, 6, 2);
    pb_uint(&spec, 7, 2);
    pb_bytes(&spec, 5, "Bert\xe2\x82", 6);
    mch_job_spec back, s = spec_full();
    mch_err err = {0}, e2 = {0}, e3 = {0};
    assert_int_equal(mch_job_spec_unpack(&back, spec.b, spec.n, "job.bin", &err), MCH_ERR_FORMAT);
    assert_names(&err, "job.bin: invalid job spec: spec.architecture is not valid UTF-8 (byte 5)");
    s.model_path = "/models/\x80";
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &e2), MCH_ERR_ARG);
    assert_names(&e2, "spec.model_path is not valid UTF-8 (byte 9)");
    assert_null(bytes);
    mch_error_msg e = {1, 2, "on n\xff: failed"}, eb;
    assert_int_equal(mch_error_msg_pack(&e, &bytes, &len, &e3), MCH_OK);
    assert_int_equal(mch_error_msg_unpack(&eb, bytes, len, &e3), MCH_OK);
    assert_string_equal(eb.message, e.message);
    mch_error_msg_deinit(&eb);
    free(bytes);
}

static void test_bad_specs_are_refused_naming_the_field(void **st)
{
    (void)st;
    mch_job_spec s = spec_full(), back;
    char *bogus[1] = {"bogus"};
    uint8_t *bytes;
    size_t len;
    mch_err err = {0};
    s.layers = 0;
    assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &err), MCH_OK);
    assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "journal.bin", &err), MCH_ERR_FORMAT);
    assert_names(&err, "journal.bin: invalid job spec: spec: layers or heads out of range");
    free(bytes);
    s = spec_full();
    s.sweeps = bogus, s.n_sweeps = 1;
    mch_err e2 = {0};
    assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &e2), MCH_OK);
    assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "x", &e2), MCH_ERR_FORMAT);
    assert_names(&e2, "unknown sweep 'bogus'");
    free(bytes);
    s = spec_full();
    head_pos[2] = 3; /* layer 3 of 3 */
    mch_err e3 = {0};
    assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &e3), MCH_OK);
    assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "x", &e3), MCH_ERR_FORMAT);
    assert_names(&e3, "head outside the model");
    head_pos[2] = 2;
    free(bytes);
    pbuf odd = {.n = 0};
    uint32_t h3[3] = {0, 1, 2};
    pb_uint(&odd, 6, 2);
    pb_uint(&odd, 7, 2);
    pb_packed(&odd, 12, h3, 3);
    mch_err e4 = {0};
    assert_int_equal(mch_job_spec_unpack(&back, odd.b, odd.n, "x", &e4), MCH_ERR_FORMAT);
    assert_names(&e4, "head list of odd length");
    /* Input files: a non-regular one has no size; a name is required; at most 16. */
    mch_input_file bad[MCH_SPEC_INPUT_FILES_MAX + 1];
    for (size_t i = 0; i <= MCH_SPEC_INPUT_FILES_MAX; i++) bad[i] = (mch_input_file){"f", 1, 2, 0};
    const struct {
        size_t n;
        mch_input_file first;
        const char *why;
    } files[] = {{1, {"fifo", 5, 0, 1}, "input file 'fifo' is not regular but has a size"},
                 {1, {"fifo", 0, 7, 1}, "input file 'fifo' is not regular but has a size"},
                 {1, {"", 1, 2, 0}, "input file 0 has no name"},
                 {MCH_SPEC_INPUT_FILES_MAX + 1, {"f", 1, 2, 0}, "17 input files (at most 16)"}};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        s = spec_full();
        bad[0] = files[k].first;
        s.input_files = bad, s.n_input_files = files[k].n;
        mch_err e5 = {0};
        assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &e5), MCH_OK);
        assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "x", &e5), MCH_ERR_FORMAT);
        assert_names(&e5, files[k].why);
        free(bytes);
    }
    s = spec_full();
    s.input_files = bad, s.n_input_files = MCH_SPEC_INPUT_FILES_MAX; /* the most there may be */
    bad[0] = (mch_input_file){"fifo", 0, 0, 1};
    assert_int_equal(mch_job_spec_pack(&s, &bytes, &len, &err), MCH_OK);
    if (mch_job_spec_unpack(&back, bytes, len, "x", &err)) fail_msg("%s", err.msg);
    assert_files_equal(&s, &back);
    mch_job_spec_deinit(&back);
    free(bytes);
    /* A result checked against the spec: shapes and scores. */
    float v[12] = {0};
    mch_pair_result r = {.n_heads = 5, .heads = v, .heads_scores = v};
    r.pair.T = 6;
    char why[160];
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "heads has 5 values, expected 12");
    r.n_heads = 12, r.score_perturbed = NAN;
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "non-finite score");
    r.score_perturbed = 1, r.n_blocks = 3 * 3 * 6 + 1, r.blocks = r.blocks_scores = v;
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "blocks has 55 values, expected 54");
    r.n_blocks = 0, r.n_heads = 12;
    v[11] = NAN; /* an effect */
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "non-finite heads value 11 (effect nan, score nan)");
    v[11] = 0;
    /* A skipped or failed pair has no maps: arrays there are refused, whatever their shape
     * (the reduction would print them with the spec's shape). */
    r.skip_reason = "below min_delta";
    r.n_heads = 1;
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "a skipped pair with heads values");
    r.skip_reason = NULL, r.error = "ids outside the vocabulary";
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "a failed pair with heads values");
    r.n_heads = 0, r.score_baseline = INFINITY; /* its scores are checked too */
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 1);
    assert_string_equal(why, "non-finite score");
    r.score_baseline = 0, r.error = NULL, r.skip_reason = "below min_delta";
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 2, why, sizeof why), 0);
}

/* ---- the comparison and the parsers -------------------------------------------------------- */

static void expect_diff(const mch_job_spec *a, const mch_job_spec *b, mch_spec_scope scope,
                        const char *field, const char *va, const char *vb)
{
    mch_spec_diff d;
    assert_int_equal(mch_job_spec_diff(a, b, scope, &d), 1);
    assert_string_equal(d.field, field);
    assert_string_equal(d.a, va);
    assert_string_equal(d.b, vb);
}

static void test_spec_diff_names_the_first_differing_field(void **st)
{
    (void)st;
    mch_job_spec a = spec_full(), b = spec_full();
    mch_spec_diff d;
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_JOB, &d), 0);
    b.seed = 2;
    expect_diff(&a, &b, MCH_SPEC_SAME_JOB, "seed", "1099511627776", "2");
    /* with a bootstrap the seed draws the replicates: maps of two seeds do not merge */
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "seed", "1099511627776", "2");
    a.bootstrap = b.bootstrap = 0;
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_MAP, &d), 0); /* seeds may differ */
    a.bootstrap = b.bootstrap = 3;
    b.max_len = 32; /* reported before the seed */
    expect_diff(&a, &b, MCH_SPEC_SAME_JOB, "max_len", "96", "32");
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "max_len", "96", "32");
    b = spec_full();
    b.model_sha256 = "abd";
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "model sha256", "'abc'", "'abd'");
    b = spec_full();
    b.min_delta = 0.5;
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "min_delta", "0.125", "0.5");
    b = spec_full();
    b.n_sweeps = 2;
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "sweeps", "heads,blocks,head-pos", "heads,blocks");
    mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_MAP, &d);
    assert_int_equal(d.plural, 1);
    b = spec_full();
    b.n_head_pos = 1;
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "head-pos heads", "0.1,2.3", "0.1");
    b = spec_full();
    b.n_cache_hooks = 1;
    expect_diff(&a, &b, MCH_SPEC_SAME_JOB, "cache hooks",
                "'blocks.*.attn.hook_pattern,hook_full_embed'", "'blocks.*.attn.hook_pattern'");
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_MAP, &d), 0);
    /* Input files count for a resume only, and the sentence names the file and what changed. */
    mch_input_file f[2] = {files2[0], files2[1]};
    b = spec_full();
    b.input_files = f;
    f[1].xxh3 ^= 1ULL << 63;
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_MAP, &d), 0);
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_JOB, &d), 1);
    assert_string_equal(d.field, "input files");
    assert_string_equal(d.what, "input file 'df.tsv' changed: the same size (8589934592 bytes) but "
                                "other contents (xxh3 8000000000000001 when the job started, "
                                "0000000000000001 now)");
    f[1] = files2[1], f[0].size_bytes = 4083;
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_JOB, &d), 1);
    assert_string_equal(d.what, "input file 'x.tsv' changed: 4082 bytes when the job started, "
                                "4083 now");
    f[0] = files2[0], f[1].name = "df2.tsv";
    expect_diff(&a, &b, MCH_SPEC_SAME_JOB, "input files", "'x.tsv','df.tsv'", "'x.tsv','df2.tsv'");
    mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_JOB, &d);
    assert_string_equal(d.what, ""); /* the two lists tell */
    b.n_input_files = 0;             /* a journal of a version without fingerprints */
    expect_diff(&b, &a, MCH_SPEC_SAME_JOB, "input files", "none", "'x.tsv','df.tsv'");
    /* A non-regular file never agrees, even with itself: its contents were never read. */
    f[1] = (mch_input_file){"/dev/fd/63", 0, 0, 1};
    b.n_input_files = 2;
    assert_int_equal(mch_job_spec_diff(&b, &b, MCH_SPEC_SAME_JOB, &d), 1);
    assert_string_equal(d.what, "input file '/dev/fd/63' is not a regular file (a pipe or a "
                                "device): its contents cannot be fingerprinted, so a job reading "
                                "it cannot be resumed");
    assert_int_equal(mch_job_spec_diff(&b, &b, MCH_SPEC_SAME_MAP, &d), 0);
    /* Strings longer than what a message shows still compare in full. */
    char la[400], lb[400];
    memset(la, 'x', sizeof la - 1), la[sizeof la - 1] = 0;
    memcpy(lb, la, sizeof lb), lb[sizeof lb - 2] = 'y';
    a.model_path = la, b = spec_full(), b.model_path = lb;
    assert_int_equal(mch_job_spec_diff(&a, &b, MCH_SPEC_SAME_JOB, &d), 1);
    assert_string_equal(d.field, "model path");
    assert_true(strlen(d.a) < sizeof d.a);
}

/* spec_full as an attribution patching job can be: heads and blocks, no head-pos, no cache. */
static mch_job_spec spec_atp(const char *method)
{
    mch_job_spec s = spec_full();
    s.n_sweeps = 2, s.n_head_pos = 0, s.n_cache_hooks = 0;
    s.method = (char *)method;
    return s;
}

static void test_method_is_absent_for_exact_and_checked(void **st)
{
    (void)st;
    assert_int_equal(mch_method_of(NULL), MCH_JOB_EXACT);
    assert_int_equal(mch_method_of(""), MCH_JOB_EXACT);
    assert_int_equal(mch_method_of("exact"), MCH_JOB_EXACT);
    assert_int_equal(mch_method_of("atp"), MCH_JOB_ATP);
    assert_int_equal(mch_method_of("atp-qk"), MCH_JOB_ATP_QK);
    assert_int_equal(mch_method_of("ATP"), -1);
    assert_int_equal(mch_method_of("atp-"), -1);
    assert_string_equal(mch_method_spec_name(MCH_JOB_EXACT), "");
    assert_string_equal(mch_method_spec_name(MCH_JOB_ATP_QK), "atp-qk");
    /* Exact ("" or NULL) packs to the bytes of a spec without the field; atp appends field 32
     * (tag 32 << 3 | 2 = 0x82 0x02) after every other field, as protobuf orders them. */
    mch_job_spec s = spec_atp(NULL), back;
    uint8_t *none, *empty, *atp;
    size_t n_none, n_empty, n_atp;
    mch_err err = {0};
    assert_int_equal(mch_job_spec_pack(&s, &none, &n_none, &err), MCH_OK);
    s.method = "";
    assert_int_equal(mch_job_spec_pack(&s, &empty, &n_empty, &err), MCH_OK);
    assert_int_equal(n_none, n_empty);
    assert_memory_equal(none, empty, n_none);
    s.method = "atp";
    assert_int_equal(mch_job_spec_pack(&s, &atp, &n_atp, &err), MCH_OK);
    static const uint8_t tail[6] = {0x82, 0x02, 3, 'a', 't', 'p'};
    assert_int_equal(n_atp, n_none + sizeof tail);
    assert_memory_equal(atp, none, n_none);
    assert_memory_equal(atp + n_none, tail, sizeof tail);
    if (mch_job_spec_unpack(&back, atp, n_atp, "spec", &err)) fail_msg("%s", err.msg);
    assert_string_equal(back.method, "atp");
    mch_job_spec_deinit(&back);
    if (mch_job_spec_unpack(&back, none, n_none, "spec", &err)) fail_msg("%s", err.msg);
    assert_string_equal(back.method, ""); /* never NULL once unpacked */
    mch_job_spec_deinit(&back);
    free(none), free(empty), free(atp);
    /* Refused: an unknown method, exact spelt out (one job, one spelling), and attribution
     * patching with the head-pos sweep or with cache hooks. */
    const struct {
        mch_job_spec s;
        const char *why;
    } bad[] = {{spec_atp("bogus"), "spec: unknown method 'bogus'"},
               {spec_atp("exact"), "spec: unknown method 'exact'"},
               {spec_full(), "spec: method atp-qk with a head-pos sweep or cache hooks"},
               {spec_atp("atp"), "spec: method atp with a head-pos sweep or cache hooks"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        mch_job_spec b = bad[k].s;
        if (k == 2) b.method = "atp-qk", b.n_cache_hooks = 0; /* head-pos */
        if (k == 3) b.n_cache_hooks = 1;                      /* a cache hook */
        uint8_t *bytes;
        size_t len;
        mch_err e = {0};
        assert_int_equal(mch_job_spec_pack(&b, &bytes, &len, &e), MCH_OK);
        assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "x", &e), MCH_ERR_FORMAT);
        assert_names(&e, bad[k].why);
        free(bytes);
    }
    /* A resume and a merge both refuse another method, printing exact for "". */
    mch_job_spec a = spec_atp(""), b = spec_atp("atp"), c = spec_atp("atp-qk");
    expect_diff(&a, &b, MCH_SPEC_SAME_JOB, "method", "'exact'", "'atp'");
    expect_diff(&a, &b, MCH_SPEC_SAME_MAP, "method", "'exact'", "'atp'");
    expect_diff(&c, &b, MCH_SPEC_SAME_MAP, "method", "'atp-qk'", "'atp'");
    mch_spec_diff d;
    a.method = NULL;
    assert_int_equal(mch_job_spec_diff(&a, &a, MCH_SPEC_SAME_MAP, &d), 0);
    b.method = "atp";
    assert_int_equal(mch_job_spec_diff(&b, &b, MCH_SPEC_SAME_JOB, &d), 0);
}

/* --verify-top: the spec's field (needs attribution patching's sweeps, compared for a merge), a
 * result's verified components (round trip, and mch_pair_result_check's refusals), and a map's
 * verified estimates (round trip; a cell whose exact and estimated counts differ is refused). */
static void test_verified_fields_roundtrip_and_checks(void **st)
{
    (void)st;
    mch_err err = {0};
    mch_job_spec s = spec_atp("atp"), x = spec_atp(""), back;
    s.verify_top = 5, x.verify_top = 3;
    uint8_t *bytes;
    size_t len;
    assert_int_equal(mch_job_spec_pack(&x, &bytes, &len, &err), MCH_OK);
    assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "x", &err), MCH_ERR_FORMAT);
    assert_names(&err, "spec: verify_top 3 without attribution patching's sweeps");
    free(bytes);
    err = (mch_err){0};
    x.method = "atp", x.verify_top = MCH_VERIFY_TOP_MAX + 1;
    assert_int_equal(mch_job_spec_pack(&x, &bytes, &len, &err), MCH_OK);
    assert_int_equal(mch_job_spec_unpack(&back, bytes, len, "x", &err), MCH_ERR_FORMAT);
    assert_names(&err, "spec: verify_top 4097 is above 4096");
    free(bytes);
    x.verify_top = 3;
    expect_diff(&s, &x, MCH_SPEC_SAME_MAP, "verify top", "5", "3");

    /* A result of L 3, NH 4, T 6: a head, a block, the same block again (in both lists). */
    int32_t ids[18] = {101, 7, 8, 102, 9, 102, 101, 7, 8, 102, 55, 102};
    uint8_t roles[6];
    memcpy(roles, roles6, 6);
    float v[2 * 3 * 3 * 6];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) v[i] = (float)i * 0.5f - 1.0f;
    int32_t comp[9] = {-1, 2, 3, 1, 0, 5, 1, 0, 5};
    float est[3] = {0.5f, -0.25f, -0.25f}, ex[3] = {0.75f, 0.125f, 0.125f};
    mch_pair_result r = {0}, rb;
    fill_pair(&r.pair, ids, roles, NULL, 0);
    r.score_baseline = 0.25, r.score_perturbed = 1.25;
    r.n_heads = 12, r.heads = v, r.heads_scores = v + 12;
    r.n_blocks = 54, r.blocks = v + 1, r.blocks_scores = v + 2;
    r.n_verified = 3, r.verified_top = 2;
    r.verified_comp = comp, r.verified_estimate = est, r.verified_exact = ex;
    char why[200];
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 0, why, sizeof why), 0);
    assert_int_equal(mch_pair_result_pack(&r, &bytes, &len, &err), MCH_OK);
    if (mch_pair_result_unpack(&rb, bytes, len, &err)) fail_msg("%s", err.msg);
    assert_result_equal(&r, &rb);
    mch_pair_result_deinit(&rb);
    free(bytes);
    const struct {
        int at, val;
        const char *why;
    } bad[] = {{1, 3, "verified component 0 (-1, 3, 3)"},   /* head layer 3 of 3 */
               {2, 4, "verified component 0 (-1, 2, 4)"},   /* head 4 of 4 */
               {5, 6, "verified component 1 (1, 0, 6)"},    /* position 6 of 6 tokens */
               {3, 3, "verified component 1 (3, 0, 5)"},    /* block kind 3 */
               {0, -2, "verified component 0 (-2, 2, 3)"}}; /* neither */
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int32_t keep = comp[bad[k].at];
        comp[bad[k].at] = bad[k].val;
        assert_int_equal(mch_pair_result_check(&r, 3, 4, 0, why, sizeof why), 1);
        if (!strstr(why, bad[k].why)) fail_msg("'%s' does not say '%s'", why, bad[k].why);
        comp[bad[k].at] = keep;
    }
    ex[2] = NAN;
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 0, why, sizeof why), 1);
    assert_non_null(strstr(why, "verified component 2: non-finite score"));
    ex[2] = 0.125f;
    r.n_heads = 0; /* a head verified in a result without the heads sweep */
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 0, why, sizeof why), 1);
    r.n_heads = 12, r.verified_top = 4;
    assert_int_equal(mch_pair_result_check(&r, 3, 4, 0, why, sizeof why), 1);
    assert_non_null(strstr(why, "verified: top 4 of 3 components"));

    /* A map with the verified estimates: they survive the round trip; unequal counts do not. */
    err = (mch_err){0};
    mch_cmap m, mb;
    build_map(&m);
    mch_job_spec_deinit(&m.spec);
    s.input_files = NULL, s.n_input_files = 0;
    assert_int_equal(mch_job_spec_copy(&m.spec, &s, &err), MCH_OK);
    mch_est_deinit(&m.hpz), mch_est_deinit(&m.hpp); /* atp: no head-pos */
    assert_int_equal(mch_est_init(&m.hpz, 0, 3, &err), MCH_OK);
    assert_int_equal(mch_est_init(&m.hpp, 0, 3, &err), MCH_OK);
    size_t cells[MCH_CMAP_EST];
    mch_cmap_cells(&m.spec, cells);
    assert_int_equal(cells[4], 12);
    assert_int_equal(cells[6], 3 * 3 * MCH_ROLE_COUNT);
    mch_est *all[MCH_CMAP_EST];
    mch_cmap_ests(&m, all);
    const uint8_t w[4] = {1, 2, 0, 1};
    for (int k = 4; k < 8; k++) { /* the verified estimates */
        assert_int_equal(mch_est_init(all[k], cells[k], 3, &err), MCH_OK);
        mch_est_add(all[k], 7, 0.25 * k, 1000 * k, 4000, w);
    }
    assert_int_equal(mch_stats_init(&m.vrank, 1, &err), MCH_OK);
    mch_stats_add(&m.vrank, 0, 0.5);
    mch_stats_add(&m.vrank, 0, -0.25);
    assert_int_equal(mch_cmap_pack(&m, &bytes, &len, &err), MCH_OK);
    if (mch_cmap_unpack(&mb, bytes, len, "map", &err)) fail_msg("%s", err.msg);
    mch_est *got[MCH_CMAP_EST];
    mch_cmap_ests(&mb, got);
    for (int k = 4; k < 8; k++) assert_stats_equal(all[k], got[k]);
    assert_int_equal(mb.vrank.n[0], 2);
    assert_true(mb.vrank.mean[0] == 0.125);
    mch_cmap_deinit(&mb);
    free(bytes);
    mch_est_add(&m.vheads, 1, 0.5, 1, 2, w); /* cell 1: 1 pair exact, 0 estimated */
    err = (mch_err){0};
    assert_int_equal(mch_cmap_pack(&m, &bytes, &len, &err), MCH_OK);
    assert_int_equal(mch_cmap_unpack(&mb, bytes, len, "map", &err), MCH_ERR_FORMAT);
    assert_names(&err, "heads_verified: cell 1 has 1 pairs, its estimates 0");
    free(bytes);
    mch_cmap_deinit(&m);
}

static void test_sweep_head_list_and_hook_parsers(void **st)
{
    (void)st;
    mch_err err = {0};
    unsigned bits = 99;
    const char *names[MCH_SWEEP_NAMES_MAX];
    assert_int_equal(mch_sweeps_parse("head-pos,heads", &bits, &err), MCH_OK);
    assert_int_equal(bits, MCH_SWEEP_HEADS | MCH_SWEEP_HEAD_POS);
    assert_int_equal(mch_sweeps_names(bits, names), 2);
    assert_string_equal(names[0], "heads"); /* canonical order, whatever the given one */
    assert_string_equal(names[1], "head-pos");
    char *spec_names[2] = {"blocks", "heads"};
    assert_int_equal(mch_sweeps_bits(spec_names, 2), MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS);
    assert_int_equal(mch_sweeps_parse("none", &bits, &err), MCH_OK);
    assert_int_equal(bits, 0);
    assert_int_equal(mch_sweeps_names(0, names), 1);
    assert_string_equal(names[0], "none");
    const char *bad[][2] = {{"heads,frogs", "unknown sweep 'frogs'"},
                            {"none,heads", "none cannot be combined"},
                            {",", "--sweep is empty"}};
    for (int i = 0; i < 3; i++) {
        mch_err e = {0};
        assert_int_equal(mch_sweeps_parse(bad[i][0], &bits, &e), MCH_ERR_ARG);
        assert_names(&e, bad[i][1]);
    }
    uint32_t *heads;
    size_t n;
    assert_int_equal(mch_heads_parse("0.1,11.3", &heads, &n, &err), MCH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(heads[2], 11);
    assert_int_equal(heads[3], 3);
    assert_int_equal(mch_heads_outside(heads, n, 12, 4), 0);
    assert_int_equal(mch_heads_outside(heads, n, 11, 4), 2); /* the second head, 1-based */
    free(heads);
    const char *bad_heads[] = {"", "1", "1.", "a.b", "1.2,x", "-1.2", "0.1,1."};
    for (int i = 0; i < 7; i++) {
        mch_err e = {0};
        assert_int_equal(mch_heads_parse(bad_heads[i], &heads, &n, &e), MCH_ERR_ARG);
        assert_names(&e, "LAYER.HEAD pairs");
    }
    char **items;
    assert_int_equal(mch_list_split(",a,,bc,", &items, &n, &err), MCH_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[1], "bc");
    mch_msg_strv_free(items, n);
    mch_hook_point *pts;
    assert_int_equal(mch_hooks_expand(hooks2, 2, 3, &pts, &n, &err), MCH_OK);
    assert_int_equal(n, 4);
    assert_string_equal(pts[2].name, "blocks.2.attn.hook_pattern");
    assert_int_equal(pts[2].site, MCH_SITE_PATTERN);
    assert_int_equal(pts[2].layer, 2);
    assert_int_equal(pts[3].site, MCH_SITE_FULL_EMBED);
    free(pts);
    char *outside[1] = {"blocks.3.hook_mlp_out"};
    mch_err e = {0};
    assert_int_equal(mch_hooks_expand(outside, 1, 3, &pts, &n, &e), MCH_ERR_ARG);
    assert_names(&e, "hook 'blocks.3.hook_mlp_out': layer 3 but the model has 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_spec_roundtrip_preserves_every_field),
        cmocka_unit_test(test_work_unit_roundtrip_preserves_every_field),
        cmocka_unit_test(test_results_roundtrip_preserve_every_field),
        cmocka_unit_test(test_cmap_roundtrip_preserves_every_field),
        cmocka_unit_test(test_bad_shapes_are_refused_naming_the_field),
        cmocka_unit_test(test_bad_specs_are_refused_naming_the_field),
        cmocka_unit_test(test_strings_must_be_utf8),
        cmocka_unit_test(test_spec_diff_names_the_first_differing_field),
        cmocka_unit_test(test_method_is_absent_for_exact_and_checked),
        cmocka_unit_test(test_sweep_head_list_and_hook_parsers),
        cmocka_unit_test(test_verified_fields_roundtrip_and_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
