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
    void *owned[] = {p->ids_baseline, p->ids_perturbed, p->token_types, p->roles,     p->query_ids,
                     p->qid,          p->docno,         p->term,        p->alignment, p->pair_key};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) free(owned[i]);
    memset(p, 0, sizeof *p);
}

mch_status mch_pair_input_copy(mch_pair_input *dst, const mch_pair_input *src, mch_err *err)
{
    int oom = 0;
    *dst = *src;
    dst->ids_baseline = dup_n(src->ids_baseline, src->T, sizeof(int32_t), &oom);
    dst->ids_perturbed = dup_n(src->ids_perturbed, src->T, sizeof(int32_t), &oom);
    dst->token_types = dup_n(src->token_types, src->T, sizeof(int32_t), &oom);
    dst->roles = dup_n(src->roles, src->T, 1, &oom);
    dst->query_ids = dup_n(src->query_ids, src->Tq, sizeof(int32_t), &oom);
    dst->qid = dup_s(src->qid, &oom);
    dst->docno = dup_s(src->docno, &oom);
    dst->term = dup_s(src->term, &oom);
    dst->alignment = dup_s(src->alignment, &oom);
    dst->pair_key = dup_s(src->pair_key, &oom);
    if (!oom) return MCH_OK;
    mch_pair_input_deinit(dst);
    return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
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
    m->alignment = msg_s(p->alignment);
    m->span_baseline = p->span_baseline;
    m->span_perturbed = p->span_perturbed;
    m->pair_key = msg_s(p->pair_key);
}

/* Checks a generated pair's arrays: 0, or 1 with why. */
static int pair_check(const void *pb, char *why, size_t len)
{
    const Mechir__PairInput *m = pb;
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

/* Copies a checked generated pair into p; 1 when out of memory (p zeroed). */
static int pair_from_pb(void *p, const void *pb)
{
    const Mechir__PairInput *m = pb;
    /* A view of m in the field order of mch_pair_input, then one deep copy. */
    mch_pair_input view = {
        m->index,       m->pair_id,       m->n_ids_baseline, m->ids_baseline, m->ids_perturbed,
        m->token_types, m->roles.data,    m->n_query_ids,    m->query_ids,    m->qid,
        m->docno,       m->term,          m->position,       m->relevance,    m->rank,
        m->alignment,   m->span_baseline, m->span_perturbed, m->pair_key};
    return mch_pair_input_copy(p, &view, NULL) != MCH_OK;
}

/* Unpacks len bytes as a message of descriptor d after the size check, refusing fields this
 * version does not know; what ("a work unit") names the message in errors. */
static mch_status unpack_checked(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                                 size_t len, const char *what, ProtobufCMessage **out, mch_err *err)
{
    *out = NULL;
    if (len > MCH_MSG_MAX_BYTES)
        return mch_fail(err, MCH_ERR_PROTO, "%s of %zu bytes (too large)", what, len);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
    if (!m) return mch_fail(err, MCH_ERR_PROTO, "%s that does not decode", what);
    if (m->n_unknown_fields) {
        protobuf_c_message_free_unpacked(m, NULL);
        return mch_fail(err, MCH_ERR_PROTO, "%s with fields this version does not know", what);
    }
    *out = m;
    return MCH_OK;
}

/* How the elements of a list (a unit's pairs, a unit result's results) are checked and
 * copied out of their generated form. */
typedef struct {
    const char *name; /* "pair", in refusals */
    size_t size;      /* of one plain element */
    int (*check)(const void *pb, char *why, size_t len);
    int (*copy)(void *plain, const void *pb); /* 1 when out of memory */
} list_kind;

/* Checks all n generated elements pb (a refusal names "where, pair i"), then copies them into
 * out (room for n, zeroed) counting in *count; after a failure the caller's deinit frees what
 * was copied. pb is the generated array of element pointers, read as void pointers the way
 * protobuf-c itself reads repeated messages. */
static mch_status list_from_pb(const list_kind *k, void *const *pb, size_t n, const char *where,
                               void *out, size_t *count, mch_err *err)
{
    char why[200];
    for (size_t i = 0; i < n; i++)
        if (k->check(pb[i], why, sizeof why))
            return mch_fail(err, MCH_ERR_PROTO, "%s, %s %zu: %s", where, k->name, i, why);
    if (!out) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (*count = 0; *count < n; ++*count)
        if (k->copy((char *)out + *count * k->size, pb[*count]))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    return MCH_OK;
}

/* A message of an id and a list (a work unit's pairs, a unit result's results), read through
 * the places of those fields in its generated struct. */
typedef struct {
    const ProtobufCMessageDescriptor *desc;
    const char *what;  /* "a work unit", in refusals of the whole */
    const char *where; /* "work unit %llu", before a refusal of one element */
    size_t id_off, n_off, list_off;
    list_kind elems;
    /* Takes the message's own fields and the n copied elements into the plain struct. */
    void (*adopt)(void *plain, const void *pb, void *elems, size_t n);
    void (*deinit)(void *plain);
} list_msg;

#define LIST_MSG(D, T, what, where, n, list, E, check, copy, adopt, deinit)                        \
    {                                                                                              \
        &D, what, where, offsetof(T, unit_id), offsetof(T, n), offsetof(T, list),                  \
            {"pair", sizeof(E), check, copy}, adopt, deinit                                        \
    }

/* Unpacks a list message into plain (zeroed): the message's fields, then its elements, each
 * checked before any is copied. */
static mch_status unpack_list(const list_msg *k, const uint8_t *buf, size_t len, void *plain,
                              mch_err *err)
{
    ProtobufCMessage *m;
    mch_status rc = unpack_checked(k->desc, buf, len, k->what, &m, err);
    if (rc) return rc;
    const char *base = (const char *)m;
    size_t n = *(const size_t *)(base + k->n_off), count = 0;
    char where[96], why[200];
    snprintf(where, sizeof where, k->where,
             (unsigned long long)*(const uint64_t *)(base + k->id_off));
    if (msg_utf8_check(m, "", why, sizeof why)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return mch_fail(err, MCH_ERR_PROTO, "%s: %s", where, why);
    }
    void *elems = calloc(n + 1, k->elems.size);
    rc = list_from_pb(&k->elems, *(void *const *const *)(base + k->list_off), n, where, elems,
                      &count, err);
    k->adopt(plain, m, elems, count);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc) k->deinit(plain);
    return rc;
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
    Mechir__WorkUnit m;
    mechir__work_unit__init(&m);
    m.unit_id = u->unit_id;
    m.mode = u->mode;
    m.n_pairs = u->n_pairs;
    m.pairs = calloc(u->n_pairs + 1, sizeof *m.pairs);
    Mechir__PairInput *ps = calloc(u->n_pairs + 1, sizeof *ps);
    mch_status rc = MCH_OK;
    if (!m.pairs || !ps) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory packing a unit of %zu pairs", u->n_pairs);
    } else {
        for (size_t i = 0; i < u->n_pairs; i++) pair_to_pb(&u->pairs[i], m.pairs[i] = &ps[i]);
        rc = msg_pack(&m.base, out, len, err);
    }
    free(m.pairs);
    free(ps);
    return rc;
}

static void unit_adopt(void *plain, const void *pb, void *elems, size_t n)
{
    mch_work_unit *u = plain;
    u->unit_id = ((const Mechir__WorkUnit *)pb)->unit_id;
    u->mode = ((const Mechir__WorkUnit *)pb)->mode;
    u->pairs = elems, u->n_pairs = n;
}

static void unit_deinit(void *plain)
{
    mch_work_unit_deinit(plain);
}

mch_status mch_work_unit_unpack(mch_work_unit *u, const uint8_t *buf, size_t len, mch_err *err)
{
    static const list_msg unit =
        LIST_MSG(mechir__work_unit__descriptor, Mechir__WorkUnit, "a work unit", "work unit %llu",
                 n_pairs, pairs, mch_pair_input, pair_check, pair_from_pb, unit_adopt, unit_deinit);
    memset(u, 0, sizeof *u);
    mch_status rc = unpack_list(&unit, buf, len, u, err);
    if (!rc && u->mode >= MCH_UNIT_MODES) {
        rc = mch_fail(err, MCH_ERR_PROTO, "work unit %llu: unknown mode %u (0 patch, 1 score)",
                      (unsigned long long)u->unit_id, u->mode);
        mch_work_unit_deinit(u);
    }
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
        r->head_pos_z, r->head_pos_z_scores, r->head_pos_pattern, r->head_pos_pattern_scores,
        r->qkv,        r->qkv_scores,        r->pattern,          r->pattern_scores,
        r->resid_mid,  r->resid_mid_scores};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    free(r->verified_comp);
    free(r->verified_estimate);
    free(r->verified_exact);
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
    m->n_verified_component = 3 * r->n_verified;
    m->verified_component = r->verified_comp;
    m->n_verified_estimate = m->n_verified_exact = r->n_verified;
    m->verified_estimate = r->verified_estimate, m->verified_exact = r->verified_exact;
    m->verified_top = (uint32_t)r->verified_top;
    m->n_qkv = m->n_qkv_scores = r->n_qkv;
    m->qkv = r->qkv, m->qkv_scores = r->qkv_scores;
    m->n_pattern = m->n_pattern_scores = r->n_pattern;
    m->pattern = r->pattern, m->pattern_scores = r->pattern_scores;
    m->n_resid_mid = m->n_resid_mid_scores = r->n_resid_mid;
    m->resid_mid = r->resid_mid, m->resid_mid_scores = r->resid_mid_scores;
}

/* Checks a generated result: its pair, and effects and scores of equal lengths. */
static int result_check(const void *pb, char *why, size_t len)
{
    const Mechir__PairResult *m = pb;
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
               {m->n_head_pos_pattern, m->n_head_pos_pattern_scores, "head_pos_pattern"},
               {m->n_qkv, m->n_qkv_scores, "qkv"},
               {m->n_pattern, m->n_pattern_scores, "pattern"},
               {m->n_resid_mid, m->n_resid_mid_scores, "resid_mid"}};
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
        if (arr[i].n != arr[i].n_scores)
            return snprintf(why, len, "%s has %zu values but %zu scores", arr[i].name, arr[i].n,
                            arr[i].n_scores),
                   1;
    size_t nv = m->n_verified_estimate;
    if (m->n_verified_exact != nv || m->n_verified_component != 3 * nv || m->verified_top > nv)
        return snprintf(why, len,
                        "verified: %zu components, %zu estimates, %zu exact scores, top %lu",
                        m->n_verified_component / 3, nv, m->n_verified_exact,
                        (unsigned long)m->verified_top),
               1;
    return 0;
}

/* Copies a checked generated result into r; 1 when out of memory (r deinited). */
static int result_from_pb(void *plain, const void *pb)
{
    mch_pair_result *r = plain;
    const Mechir__PairResult *m = pb;
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
    r->n_verified = m->n_verified_estimate, r->verified_top = m->verified_top;
    r->verified_comp = dup_n(m->verified_component, 3 * r->n_verified, sizeof(int32_t), &oom);
    r->verified_estimate = dup_n(m->verified_estimate, r->n_verified, f, &oom);
    r->verified_exact = dup_n(m->verified_exact, r->n_verified, f, &oom);
    r->n_qkv = m->n_qkv;
    r->qkv = dup_n(m->qkv, m->n_qkv, f, &oom);
    r->qkv_scores = dup_n(m->qkv_scores, m->n_qkv, f, &oom);
    r->n_pattern = m->n_pattern;
    r->pattern = dup_n(m->pattern, m->n_pattern, f, &oom);
    r->pattern_scores = dup_n(m->pattern_scores, m->n_pattern, f, &oom);
    r->n_resid_mid = m->n_resid_mid;
    r->resid_mid = dup_n(m->resid_mid, m->n_resid_mid, f, &oom);
    r->resid_mid_scores = dup_n(m->resid_mid_scores, m->n_resid_mid, f, &oom);
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
    Mechir__PairResult *m;
    mch_status rc = unpack_checked(&mechir__pair_result__descriptor, buf, len, "a pair result",
                                   (ProtobufCMessage **)&m, err);
    if (rc) return rc;
    char why[200];
    if (result_check(m, why, sizeof why) || msg_utf8_check(&m->base, "", why, sizeof why))
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

/* The verified components of r: inside the sweeps the result holds, finite scores. */
static int verified_check(const mch_pair_result *r, int L, int NH, char *why, size_t why_len)
{
    if (!r->n_verified) return 0;
    if (r->skip_reason || r->error)
        return snprintf(why, why_len, "a %s pair with verified components",
                        r->error ? "failed" : "skipped"),
               1;
    if (r->verified_top > r->n_verified)
        return snprintf(why, why_len, "verified: top %zu of %zu components", r->verified_top,
                        r->n_verified),
               1;
    for (size_t i = 0; i < r->n_verified; i++) {
        const int32_t *c = r->verified_comp + 3 * i;
        int head = c[0] == -1;
        int ok = head ? r->n_heads && c[1] >= 0 && c[1] < L && c[2] >= 0 && c[2] < NH
                      : r->n_blocks && c[0] >= 0 && c[0] < 3 && c[1] >= 0 && c[1] < L &&
                            c[2] >= 0 && (size_t)c[2] < r->pair.T;
        if (!ok)
            return snprintf(why, why_len,
                            "verified component %zu (%d, %d, %d) is not one of the "
                            "pair's heads or blocks",
                            i, (int)c[0], (int)c[1], (int)c[2]),
                   1;
        if (!isfinite(r->verified_estimate[i]) || !isfinite(r->verified_exact[i]))
            return snprintf(why, why_len, "verified component %zu: non-finite score", i), 1;
    }
    return 0;
}

int mch_pair_result_check(const mch_pair_result *r, int L, int NH, int K, char *why, size_t why_len)
{
    return mch_pair_result_check_rows(r, L, L, NH, K, why, why_len);
}

int mch_pair_result_check_rows(const mch_pair_result *r, int L, int HR, int NH, int K, char *why,
                               size_t why_len)
{
    size_t T = r->pair.T;
    struct {
        size_t got, want;
        const float *x, *scores;
        const char *name;
    } arr[] = {
        {r->n_heads, (size_t)HR * NH, r->heads, r->heads_scores, "heads"},
        {r->n_blocks, 3 * (size_t)L * T, r->blocks, r->blocks_scores, "blocks"},
        {r->n_head_pos_z, (size_t)K * T, r->head_pos_z, r->head_pos_z_scores, "head_pos_z"},
        {r->n_head_pos_pattern, (size_t)K * T, r->head_pos_pattern, r->head_pos_pattern_scores,
         "head_pos_pattern"},
        {r->n_qkv, 3 * (size_t)L * NH, r->qkv, r->qkv_scores, "qkv"},
        {r->n_pattern, (size_t)L * NH, r->pattern, r->pattern_scores, "pattern"},
        {r->n_resid_mid, (size_t)L * T, r->resid_mid, r->resid_mid_scores, "resid_mid"},
    };
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++) {
        if (!arr[i].got) continue;
        if (r->skip_reason || r->error)
            return snprintf(why, why_len, "a %s pair with %s values",
                            r->error ? "failed" : "skipped", arr[i].name),
                   1;
        if (arr[i].got != arr[i].want)
            return snprintf(why, why_len, "%s has %zu values, expected %zu", arr[i].name,
                            arr[i].got, arr[i].want),
                   1;
        for (size_t k = 0; k < arr[i].got; k++)
            if (!isfinite(arr[i].x[k]) || !isfinite(arr[i].scores[k]))
                return snprintf(why, why_len, "non-finite %s value %zu (effect %g, score %g)",
                                arr[i].name, k, (double)arr[i].x[k], (double)arr[i].scores[k]),
                       1;
    }
    if (!isfinite(r->score_baseline) || !isfinite(r->score_perturbed))
        return snprintf(why, why_len, "non-finite score"), 1;
    return verified_check(r, L, NH, why, why_len);
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
    /* One block: the result pointers, the results, and the pair each result holds. */
    Mechir__UnitResult m;
    mechir__unit_result__init(&m);
    m.unit_id = r->unit_id, m.rank = r->rank, m.seconds = r->seconds;
    m.n_results = n;
    m.results =
        calloc(n + 1, sizeof *m.results + sizeof(Mechir__PairResult) + sizeof(Mechir__PairInput));
    if (!m.results) return mch_fail(err, MCH_ERR_NOMEM, "out of memory packing %zu results", n);
    Mechir__PairResult *rs = (Mechir__PairResult *)(m.results + n + 1);
    Mechir__PairInput *ps = (Mechir__PairInput *)(rs + n + 1);
    for (size_t i = 0; i < n; i++) result_to_pb(&r->results[i], m.results[i] = &rs[i], &ps[i]);
    mch_status rc = msg_pack(&m.base, out, len, err);
    free(m.results);
    return rc;
}

static void answer_adopt(void *plain, const void *pb, void *elems, size_t n)
{
    mch_unit_result *r = plain;
    const Mechir__UnitResult *m = pb;
    r->unit_id = m->unit_id, r->rank = m->rank, r->seconds = m->seconds;
    r->results = elems, r->n_results = n;
}

static void answer_deinit(void *plain)
{
    mch_unit_result_deinit(plain);
}

mch_status mch_unit_result_unpack(mch_unit_result *r, const uint8_t *buf, size_t len, mch_err *err)
{
    static const list_msg answer =
        LIST_MSG(mechir__unit_result__descriptor, Mechir__UnitResult, "a result",
                 "a malformed result of unit %llu", n_results, results, mch_pair_result,
                 result_check, result_from_pb, answer_adopt, answer_deinit);
    memset(r, 0, sizeof *r);
    return unpack_list(&answer, buf, len, r, err);
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
    m.rank = e->rank, m.pair_id = e->pair_id, m.message = msg_s(e->message);
    return msg_pack(&m.base, out, len, err);
}

mch_status mch_error_msg_unpack(mch_error_msg *e, const uint8_t *buf, size_t len, mch_err *err)
{
    ProtobufCMessage *pm = NULL;
    memset(e, 0, sizeof *e);
    mch_status rc =
        unpack_checked(&mechir__error__descriptor, buf, len, "an error message", &pm, err);
    const Mechir__Error *m = (const Mechir__Error *)pm;
    if (!rc && !(e->message = strdup(m->message)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) e->rank = m->rank, e->pair_id = m->pair_id;
    if (pm) protobuf_c_message_free_unpacked(pm, NULL);
    return rc;
}
