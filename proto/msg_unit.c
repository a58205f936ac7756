/* Work units, pair results, unit results and worker errors: packing, and unpacking with every
 * array's length checked against the pair before anything is copied out. */
#include "msg_pb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perturb.h"

/* A malloc'd copy of n elements of size bytes (NULL for n = 0; *oom set on failure). */
static void *dup_n(const void *src, size_t n, size_t size, int *oom)
{
    if (!n) return NULL;
    void *p = malloc(n * size);
    if (!p) {
        *oom = 1;
        return NULL;
    }
    memcpy(p, src, n * size);
    return p;
}

static char *dup_s(const char *s, int *oom)
{
    char *d = strdup(s ? s : "");
    if (!d) *oom = 1;
    return d;
}

/* A result string: NULL for none. */
static char *dup_opt(const char *s, int *oom)
{
    return s && *s ? dup_s(s, oom) : NULL;
}

/* ---- pair inputs -------------------------------------------------------------------------- */

void mch_pair_input_deinit(mch_pair_input *p)
{
    if (!p) return;
    free(p->ids_baseline);
    free(p->ids_perturbed);
    free(p->token_types);
    free(p->roles);
    free(p->query_ids);
    free(p->qid);
    free(p->docno);
    free(p->term);
    memset(p, 0, sizeof *p);
}

static void pair_to_pb(const mch_pair_input *p, Mechir__PairInput *m)
{
    mechir__pair_input__init(m);
    m->index = p->index;
    m->pair_id = p->pair_id;
    m->n_ids_baseline = m->n_ids_perturbed = m->n_token_types = p->T;
    m->ids_baseline = p->ids_baseline;
    m->ids_perturbed = p->ids_perturbed;
    m->token_types = p->token_types;
    m->roles.len = p->T;
    m->roles.data = p->roles;
    m->n_query_ids = p->Tq;
    m->query_ids = p->query_ids;
    m->qid = msg_s(p->qid);
    m->docno = msg_s(p->docno);
    m->term = msg_s(p->term);
    m->position = p->position;
    m->relevance = p->relevance;
    m->rank = p->rank;
}

/* Checks a generated pair's arrays: 0, or 1 with why. */
static int pair_check(const Mechir__PairInput *m, char *why, size_t len)
{
    size_t T = m->n_ids_baseline;
    if (m->base.n_unknown_fields)
        return snprintf(why, len, "pair with fields this version does not know"), 1;
    if (m->n_ids_perturbed != T || m->n_token_types != T || m->roles.len != T)
        return snprintf(why, len,
                        "pair arrays of different lengths (ids %zu, perturbed %zu, token types "
                        "%zu, roles %zu)",
                        T, m->n_ids_perturbed, m->n_token_types, m->roles.len),
               1;
    for (size_t t = 0; t < T; t++)
        if (m->roles.data[t] >= MCH_ROLE_COUNT)
            return snprintf(why, len, "role %u out of range", m->roles.data[t]), 1;
    return 0;
}

/* Copies a checked generated pair into p; 1 when out of memory (p deinited). */
static int pair_from_pb(mch_pair_input *p, const Mechir__PairInput *m)
{
    int oom = 0;
    memset(p, 0, sizeof *p);
    p->index = m->index;
    p->pair_id = m->pair_id;
    p->T = m->n_ids_baseline;
    p->ids_baseline = dup_n(m->ids_baseline, p->T, sizeof *p->ids_baseline, &oom);
    p->ids_perturbed = dup_n(m->ids_perturbed, p->T, sizeof *p->ids_perturbed, &oom);
    p->token_types = dup_n(m->token_types, p->T, sizeof *p->token_types, &oom);
    p->roles = dup_n(m->roles.data, p->T, 1, &oom);
    p->Tq = m->n_query_ids;
    p->query_ids = dup_n(m->query_ids, p->Tq, sizeof *p->query_ids, &oom);
    p->qid = dup_s(m->qid, &oom);
    p->docno = dup_s(m->docno, &oom);
    p->term = dup_s(m->term, &oom);
    p->position = m->position;
    p->relevance = m->relevance;
    p->rank = m->rank;
    if (oom) mch_pair_input_deinit(p);
    return oom;
}

/* ---- work units --------------------------------------------------------------------------- */

void mch_work_unit_deinit(mch_work_unit *u)
{
    if (!u) return;
    for (size_t i = 0; i < u->n_pairs; i++) mch_pair_input_deinit(&u->pairs[i]);
    free(u->pairs);
    memset(u, 0, sizeof *u);
}

mch_status mch_work_unit_pack(const mch_work_unit *u, uint8_t **out, size_t *len, mch_err *err)
{
    Mechir__PairInput *ps = calloc(u->n_pairs + 1, sizeof *ps);
    Mechir__PairInput **pp = calloc(u->n_pairs + 1, sizeof *pp);
    mch_status rc = ps && pp ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < u->n_pairs; i++) {
        pair_to_pb(&u->pairs[i], &ps[i]);
        pp[i] = &ps[i];
    }
    if (!rc) {
        Mechir__WorkUnit m;
        mechir__work_unit__init(&m);
        m.unit_id = u->unit_id;
        m.n_pairs = u->n_pairs;
        m.pairs = pp;
        rc = msg_pack(&m.base, out, len, err);
    }
    free(ps);
    free(pp);
    return rc;
}

mch_status mch_work_unit_unpack(mch_work_unit *u, const uint8_t *buf, size_t len, mch_err *err)
{
    memset(u, 0, sizeof *u);
    if (len > MCH_MSG_MAX_BYTES)
        return mch_fail(err, MCH_ERR_PROTO, "a work unit of %zu bytes is too large", len);
    Mechir__WorkUnit *m = mechir__work_unit__unpack(NULL, len, buf);
    if (!m) return mch_fail(err, MCH_ERR_PROTO, "a work unit does not decode");
    char why[200] = "";
    mch_status rc = MCH_OK;
    if (m->base.n_unknown_fields)
        rc = mch_fail(err, MCH_ERR_PROTO, "a work unit has unknown fields");
    for (size_t i = 0; !rc && i < m->n_pairs; i++)
        if (pair_check(m->pairs[i], why, sizeof why))
            rc = mch_fail(err, MCH_ERR_PROTO, "work unit %llu, pair %zu: %s",
                          (unsigned long long)m->unit_id, i, why);
    if (!rc && !(u->pairs = calloc(m->n_pairs + 1, sizeof *u->pairs)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_pairs; i++, u->n_pairs++)
        if (pair_from_pb(&u->pairs[i], m->pairs[i]))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    u->unit_id = m->unit_id;
    mechir__work_unit__free_unpacked(m, NULL);
    if (rc) mch_work_unit_deinit(u);
    return rc;
}

/* ---- pair results ------------------------------------------------------------------------- */

void mch_pair_result_deinit(mch_pair_result *r)
{
    if (!r) return;
    mch_pair_input_deinit(&r->pair);
    free(r->skip_reason);
    free(r->error);
    float *arrays[] = {
        r->heads,      r->heads_scores,      r->blocks,           r->blocks_scores,
        r->head_pos_z, r->head_pos_z_scores, r->head_pos_pattern, r->head_pos_pattern_scores};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    memset(r, 0, sizeof *r);
}

/* The generated result pointing into r (pair_pb receives the pair). */
static void result_to_pb(const mch_pair_result *r, Mechir__PairResult *m, Mechir__PairInput *pair)
{
    mechir__pair_result__init(m);
    pair_to_pb(&r->pair, pair);
    m->pair = pair;
    m->score_baseline = r->score_baseline;
    m->score_perturbed = r->score_perturbed;
    m->skip_reason = msg_s(r->skip_reason);
    m->error = msg_s(r->error);
    m->n_heads = m->n_heads_scores = r->n_heads;
    m->heads = r->heads, m->heads_scores = r->heads_scores;
    m->n_blocks = m->n_blocks_scores = r->n_blocks;
    m->blocks = r->blocks, m->blocks_scores = r->blocks_scores;
    m->n_head_pos_z = m->n_head_pos_z_scores = r->n_head_pos_z;
    m->head_pos_z = r->head_pos_z, m->head_pos_z_scores = r->head_pos_z_scores;
    m->n_head_pos_pattern = m->n_head_pos_pattern_scores = r->n_head_pos_pattern;
    m->head_pos_pattern = r->head_pos_pattern;
    m->head_pos_pattern_scores = r->head_pos_pattern_scores;
}

/* Checks a generated result: its pair, and effects and scores of equal lengths. */
static int result_check(const Mechir__PairResult *m, char *why, size_t len)
{
    if (m->base.n_unknown_fields)
        return snprintf(why, len, "result with fields this version does not know"), 1;
    if (!m->pair) return snprintf(why, len, "result without its pair"), 1;
    if (pair_check(m->pair, why, len)) return 1;
    struct {
        size_t n, n_scores;
        const char *name;
    } arr[] = {{m->n_heads, m->n_heads_scores, "heads"},
               {m->n_blocks, m->n_blocks_scores, "blocks"},
               {m->n_head_pos_z, m->n_head_pos_z_scores, "head_pos_z"},
               {m->n_head_pos_pattern, m->n_head_pos_pattern_scores, "head_pos_pattern"}};
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
        if (arr[i].n != arr[i].n_scores)
            return snprintf(why, len, "%s has %zu values but %zu scores", arr[i].name, arr[i].n,
                            arr[i].n_scores),
                   1;
    return 0;
}

/* Copies a checked generated result into r; 1 when out of memory (r deinited). */
static int result_from_pb(mch_pair_result *r, const Mechir__PairResult *m)
{
    memset(r, 0, sizeof *r);
    int oom = pair_from_pb(&r->pair, m->pair);
    r->score_baseline = m->score_baseline;
    r->score_perturbed = m->score_perturbed;
    r->skip_reason = dup_opt(m->skip_reason, &oom);
    r->error = dup_opt(m->error, &oom);
    size_t f = sizeof(float);
    r->n_heads = m->n_heads;
    r->heads = dup_n(m->heads, m->n_heads, f, &oom);
    r->heads_scores = dup_n(m->heads_scores, m->n_heads, f, &oom);
    r->n_blocks = m->n_blocks;
    r->blocks = dup_n(m->blocks, m->n_blocks, f, &oom);
    r->blocks_scores = dup_n(m->blocks_scores, m->n_blocks, f, &oom);
    r->n_head_pos_z = m->n_head_pos_z;
    r->head_pos_z = dup_n(m->head_pos_z, m->n_head_pos_z, f, &oom);
    r->head_pos_z_scores = dup_n(m->head_pos_z_scores, m->n_head_pos_z, f, &oom);
    r->n_head_pos_pattern = m->n_head_pos_pattern;
    r->head_pos_pattern = dup_n(m->head_pos_pattern, m->n_head_pos_pattern, f, &oom);
    r->head_pos_pattern_scores = dup_n(m->head_pos_pattern_scores, m->n_head_pos_pattern, f, &oom);
    if (oom) mch_pair_result_deinit(r);
    return oom;
}

mch_status mch_pair_result_pack(const mch_pair_result *r, uint8_t **out, size_t *len, mch_err *err)
{
    Mechir__PairResult m;
    Mechir__PairInput pair;
    result_to_pb(r, &m, &pair);
    return msg_pack(&m.base, out, len, err);
}

mch_status mch_pair_result_unpack(mch_pair_result *r, const uint8_t *buf, size_t len, mch_err *err)
{
    memset(r, 0, sizeof *r);
    if (len > MCH_MSG_MAX_BYTES)
        return mch_fail(err, MCH_ERR_PROTO, "a pair result of %zu bytes is too large", len);
    Mechir__PairResult *m = mechir__pair_result__unpack(NULL, len, buf);
    if (!m) return mch_fail(err, MCH_ERR_PROTO, "a pair result does not decode");
    char why[200];
    mch_status rc = MCH_OK;
    if (result_check(m, why, sizeof why))
        rc = mch_fail(err, MCH_ERR_PROTO, "malformed pair result: %s", why);
    else if (result_from_pb(r, m))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mechir__pair_result__free_unpacked(m, NULL);
    return rc;
}

int mch_pair_result_index(const uint8_t *buf, size_t len, uint64_t *index)
{
    Mechir__PairResult *m = mechir__pair_result__unpack(NULL, len, buf);
    int bad = !m || !m->pair;
    if (!bad) *index = m->pair->index;
    if (m) mechir__pair_result__free_unpacked(m, NULL);
    return bad;
}

int mch_pair_result_check(const mch_pair_result *r, int L, int NH, int K, char *why, size_t why_len)
{
    if (r->skip_reason || r->error) return 0;
    size_t T = r->pair.T;
    struct {
        size_t got, want;
        const char *name;
    } arr[] = {
        {r->n_heads, (size_t)L * NH, "heads"},
        {r->n_blocks, 3 * (size_t)L * T, "blocks"},
        {r->n_head_pos_z, (size_t)K * T, "head_pos_z"},
        {r->n_head_pos_pattern, (size_t)K * T, "head_pos_pattern"},
    };
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
        if (arr[i].got && arr[i].got != arr[i].want)
            return snprintf(why, why_len, "%s has %zu values, expected %zu", arr[i].name,
                            arr[i].got, arr[i].want),
                   1;
    if (!isfinite(r->score_baseline) || !isfinite(r->score_perturbed))
        return snprintf(why, why_len, "non-finite score"), 1;
    return 0;
}

/* ---- unit results ------------------------------------------------------------------------- */

void mch_unit_result_deinit(mch_unit_result *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_results; i++) mch_pair_result_deinit(&r->results[i]);
    free(r->results);
    memset(r, 0, sizeof *r);
}

mch_status mch_unit_result_pack(const mch_unit_result *r, uint8_t **out, size_t *len, mch_err *err)
{
    size_t n = r->n_results;
    Mechir__PairResult *rs = calloc(n + 1, sizeof *rs), **rp = calloc(n + 1, sizeof *rp);
    Mechir__PairInput *ps = calloc(n + 1, sizeof *ps);
    mch_status rc = rs && rp && ps ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        result_to_pb(&r->results[i], &rs[i], &ps[i]);
        rp[i] = &rs[i];
    }
    if (!rc) {
        Mechir__UnitResult m;
        mechir__unit_result__init(&m);
        m.unit_id = r->unit_id;
        m.rank = r->rank;
        m.n_results = n;
        m.results = rp;
        m.seconds = r->seconds;
        rc = msg_pack(&m.base, out, len, err);
    }
    free(rs);
    free(rp);
    free(ps);
    return rc;
}

mch_status mch_unit_result_unpack(mch_unit_result *r, const uint8_t *buf, size_t len, mch_err *err)
{
    memset(r, 0, sizeof *r);
    if (len > MCH_MSG_MAX_BYTES)
        return mch_fail(err, MCH_ERR_PROTO, "a unit result of %zu bytes is too large", len);
    Mechir__UnitResult *m = mechir__unit_result__unpack(NULL, len, buf);
    if (!m) return mch_fail(err, MCH_ERR_PROTO, "a result that does not decode");
    char why[200];
    mch_status rc = MCH_OK;
    if (m->base.n_unknown_fields)
        rc = mch_fail(err, MCH_ERR_PROTO, "a unit result with fields this version does not know");
    for (size_t i = 0; !rc && i < m->n_results; i++)
        if (result_check(m->results[i], why, sizeof why))
            rc = mch_fail(err, MCH_ERR_PROTO, "a malformed result (pair %zu of unit %llu): %s", i,
                          (unsigned long long)m->unit_id, why);
    if (!rc && !(r->results = calloc(m->n_results + 1, sizeof *r->results)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_results; i++, r->n_results++)
        if (result_from_pb(&r->results[i], m->results[i]))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    r->unit_id = m->unit_id;
    r->rank = m->rank;
    r->seconds = m->seconds;
    mechir__unit_result__free_unpacked(m, NULL);
    if (rc) mch_unit_result_deinit(r);
    return rc;
}

/* ---- worker errors ------------------------------------------------------------------------ */

void mch_error_msg_deinit(mch_error_msg *e)
{
    if (!e) return;
    free(e->message);
    memset(e, 0, sizeof *e);
}

mch_status mch_error_msg_pack(const mch_error_msg *e, uint8_t **out, size_t *len, mch_err *err)
{
    Mechir__Error m;
    mechir__error__init(&m);
    m.rank = e->rank;
    m.pair_id = e->pair_id;
    m.message = msg_s(e->message);
    return msg_pack(&m.base, out, len, err);
}

mch_status mch_error_msg_unpack(mch_error_msg *e, const uint8_t *buf, size_t len, mch_err *err)
{
    memset(e, 0, sizeof *e);
    Mechir__Error *m = len <= MCH_MSG_MAX_BYTES ? mechir__error__unpack(NULL, len, buf) : NULL;
    if (!m) return mch_fail(err, MCH_ERR_PROTO, "an error message that does not decode");
    int oom = 0;
    e->rank = m->rank;
    e->pair_id = m->pair_id;
    e->message = dup_s(m->message, &oom);
    mechir__error__free_unpacked(m, NULL);
    return oom ? mch_fail(err, MCH_ERR_NOMEM, "out of memory") : MCH_OK;
}
