/* Circuit-map reduction, canonical order, loading and JSON (see cmap.h). */
#include "cmap.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "perturb.h"

mch_status mch_cmap_acc_init(mch_cmap_acc *a, int L, int NH, int K, mch_err *err)
{
    memset(a, 0, sizeof *a);
    a->L = L, a->NH = NH, a->K = K, a->R = MCH_ROLE_COUNT;
    mch_status rc = mch_stats_init(&a->heads, (size_t)L * NH, err);
    if (!rc) rc = mch_stats_init(&a->blocks, (size_t)3 * L * a->R, err);
    if (!rc) rc = mch_stats_init(&a->hpz, (size_t)K * a->R, err);
    if (!rc) rc = mch_stats_init(&a->hpp, (size_t)K * a->R, err);
    if (rc) mch_cmap_acc_deinit(a);
    return rc;
}

void mch_cmap_acc_deinit(mch_cmap_acc *a)
{
    if (!a) return;
    mch_stats_deinit(&a->heads);
    mch_stats_deinit(&a->blocks);
    mch_stats_deinit(&a->hpz);
    mch_stats_deinit(&a->hpp);
    for (int i = 0; i < a->n_strata; i++) {
        mch_stats_deinit(&a->strata[i].heads);
        mch_stats_deinit(&a->strata[i].blocks);
    }
    free(a->strata);
    free(a->pair_ids);
    memset(a, 0, sizeof *a);
}

/* Per-role means of one (T)-row of values into the stats cells base*R + role. */
static void add_by_role(mch_stats *s, size_t base, const float *x, const uint8_t *roles, size_t T,
                        int R)
{
    double sum[MCH_ROLE_COUNT] = {0};
    int cnt[MCH_ROLE_COUNT] = {0};
    for (size_t t = 0; t < T; t++) {
        sum[roles[t]] += x[t];
        cnt[roles[t]]++;
    }
    for (int r = 0; r < R; r++)
        if (cnt[r]) mch_stats_add(s, base * R + r, sum[r] / cnt[r]);
}

static mch_acc_stratum *stratum(mch_cmap_acc *a, int kind, int key)
{
    for (int i = 0; i < a->n_strata; i++)
        if (a->strata[i].kind == kind && a->strata[i].key == key) return &a->strata[i];
    mch_acc_stratum *s = realloc(a->strata, (size_t)(a->n_strata + 1) * sizeof *s);
    if (!s) return NULL;
    a->strata = s;
    mch_acc_stratum *n = &s[a->n_strata];
    memset(n, 0, sizeof *n);
    n->kind = kind, n->key = key;
    if (mch_stats_init(&n->heads, a->heads.cells, NULL) ||
        mch_stats_init(&n->blocks, a->blocks.cells, NULL)) {
        mch_stats_deinit(&n->heads);
        return NULL;
    }
    a->n_strata++;
    return n;
}

static void add_maps(mch_cmap_acc *a, mch_stats *heads, mch_stats *blocks, const mch_pair_result *r)
{
    const mch_pair_input *p = &r->pair;
    size_t T = p->T;
    for (size_t i = 0; i < r->n_heads; i++) mch_stats_add(heads, i, r->heads[i]);
    if (r->n_blocks)
        for (size_t cl = 0; cl < 3 * (size_t)a->L; cl++)
            add_by_role(blocks, cl, r->blocks + cl * T, p->roles, T, a->R);
}

/* Doubles the room for pair ids; 1 when out of memory. */
static int grow_ids(mch_cmap_acc *a)
{
    size_t cap = a->cap_ids ? 2 * a->cap_ids : 1024;
    uint64_t *ids = realloc(a->pair_ids, cap * sizeof *ids);
    if (ids) a->pair_ids = ids, a->cap_ids = cap;
    return !ids;
}

mch_status mch_cmap_acc_add(mch_cmap_acc *a, const mch_pair_result *r, mch_err *err)
{
    const mch_pair_input *p = &r->pair;
    char why[160];
    if (mch_pair_result_check(r, a->L, a->NH, a->K, why, sizeof why))
        return mch_fail(err, MCH_ERR_SHAPE, "pair %016llx: %s", (unsigned long long)p->pair_id,
                        why);
    if (a->n_ids == a->cap_ids && grow_ids(a))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu pair ids", a->n_ids + 1);
    a->pair_ids[a->n_ids++] = p->pair_id;
    a->total++;
    if (r->error) {
        a->failed++;
        return MCH_OK;
    }
    if (r->skip_reason) {
        a->skipped++;
        return MCH_OK;
    }
    a->used++;
    size_t T = p->T;
    add_maps(a, &a->heads, &a->blocks, r);
    for (int k = 0; k < a->K; k++) {
        if (r->n_head_pos_z)
            add_by_role(&a->hpz, (size_t)k, r->head_pos_z + (size_t)k * T, p->roles, T, a->R);
        if (r->n_head_pos_pattern)
            add_by_role(&a->hpp, (size_t)k, r->head_pos_pattern + (size_t)k * T, p->roles, T, a->R);
    }
    int keys[2][2] = {{0, p->relevance}, {1, p->rank >= 1 ? (p->rank - 1) / 10 : -1}};
    for (int i = 0; i < 2; i++) {
        if (keys[i][1] < 0) continue;
        mch_acc_stratum *s = stratum(a, keys[i][0], keys[i][1]);
        if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        s->pairs++;
        add_maps(a, &s->heads, &s->blocks, r);
    }
    return MCH_OK;
}

mch_status mch_cmap_acc_finish(mch_cmap_acc *a, const mch_job_spec *spec, const char *const *sites,
                               size_t n_sites, mch_cmap *out, mch_err *err)
{
    memset(out, 0, sizeof *out);
    mch_status rc = mch_job_spec_copy(&out->spec, spec, err);
    if (!rc && (!(out->strata = calloc((size_t)a->n_strata + 1, sizeof *out->strata)) ||
                !(out->sites = calloc(n_sites + 1, sizeof *out->sites))))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n_sites; i++, out->n_sites++)
        if (!mch_msg_str(&out->sites[i], sites[i]))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < a->n_strata; i++) {
        mch_acc_stratum *s = &a->strata[i];
        mch_cmap_stratum *o = &out->strata[out->n_strata];
        char name[48];
        if (s->kind == 0)
            snprintf(name, sizeof name, "relevance=%d", s->key);
        else
            snprintf(name, sizeof name, "rank=%d-%d", 10 * s->key + 1, 10 * s->key + 10);
        if (!mch_msg_str(&o->name, name)) {
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
            break;
        }
        o->pairs = s->pairs;
        o->heads = s->heads, o->blocks = s->blocks; /* moved */
        memset(&s->heads, 0, sizeof s->heads);
        memset(&s->blocks, 0, sizeof s->blocks);
        out->n_strata++;
    }
    if (rc) {
        mch_cmap_deinit(out);
        return rc;
    }
    out->pairs_total = a->total, out->pairs_used = a->used;
    out->pairs_skipped = a->skipped, out->pairs_failed = a->failed;
    out->heads = a->heads, out->blocks = a->blocks, out->hpz = a->hpz, out->hpp = a->hpp;
    out->pair_ids = a->pair_ids, out->n_pair_ids = a->n_ids;
    memset(&a->heads, 0, sizeof a->heads);
    memset(&a->blocks, 0, sizeof a->blocks);
    memset(&a->hpz, 0, sizeof a->hpz);
    memset(&a->hpp, 0, sizeof a->hpp);
    a->pair_ids = NULL;
    a->n_ids = a->cap_ids = 0;
    mch_cmap_canonicalize(out);
    return MCH_OK;
}

/* ---- canonical order ---------------------------------------------------------------------- */

static void stratum_key(const char *name, int *kind, long *key)
{
    const char *eq = strchr(name, '=');
    *kind = !strncmp(name, "relevance=", 10) ? 0 : !strncmp(name, "rank=", 5) ? 1 : 2;
    *key = eq ? strtol(eq + 1, NULL, 10) : 0;
}

int mch_stratum_cmp(const char *a, const char *b)
{
    int ka, kb;
    long va, vb;
    stratum_key(a, &ka, &va);
    stratum_key(b, &kb, &vb);
    if (ka != kb) return ka - kb;
    if (va != vb) return va < vb ? -1 : 1;
    return strcmp(a, b);
}

static int cmp_stratum(const void *a, const void *b)
{
    return mch_stratum_cmp(((const mch_cmap_stratum *)a)->name,
                           ((const mch_cmap_stratum *)b)->name);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mch_cmap_canonicalize(mch_cmap *m)
{
    if (m->n_strata) qsort(m->strata, m->n_strata, sizeof *m->strata, cmp_stratum);
    if (m->n_pair_ids) qsort(m->pair_ids, m->n_pair_ids, sizeof *m->pair_ids, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < m->n_pair_ids; i++)
        if (!u || m->pair_ids[u - 1] != m->pair_ids[i]) m->pair_ids[u++] = m->pair_ids[i];
    m->n_pair_ids = u;
    if (m->n_sites) qsort(m->sites, m->n_sites, sizeof *m->sites, cmp_str);
    u = 0;
    for (size_t i = 0; i < m->n_sites; i++) {
        if (u && !strcmp(m->sites[u - 1], m->sites[i]))
            free(m->sites[i]);
        else
            m->sites[u++] = m->sites[i];
    }
    m->n_sites = u;
}

/* ---- files -------------------------------------------------------------------------------- */

mch_status mch_cmap_load(mch_cmap *m, const char *path, mch_err *err)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    fseeko(f, 0, SEEK_END);
    off_t n = ftello(f);
    fseeko(f, 0, SEEK_SET);
    if (n < 0 || (size_t)n > MCH_CMAP_MAX_BYTES) {
        fclose(f);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: unreadable or too large", path);
    }
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return mch_fail(err, MCH_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    mch_status rc = mch_cmap_unpack(m, buf, (size_t)n, path, err);
    free(buf);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* One statistic of cell i: 0 mean, 1 std, 2 n. */
static void json_cell(FILE *f, const mch_stats *s, size_t i, int k)
{
    if (k == 0)
        s->n[i] ? mch_json_number(f, s->mean[i]) : (void)fputs("null", f);
    else if (k == 1)
        s->n[i] >= 2 ? mch_json_number(f, mch_stats_std(s, i)) : (void)fputs("null", f);
    else
        fprintf(f, "%llu", (unsigned long long)s->n[i]);
}

static void json_stats_block(FILE *f, const mch_stats *s, size_t rows, size_t cols, size_t planes)
{
    const char *keys[3] = {"mean", "std", "n"};
    for (int k = 0; k < 3; k++) {
        fprintf(f, "%s\"%s\":", k ? "," : "", keys[k]);
        if (planes > 1) putc('[', f);
        for (size_t p = 0; p < planes; p++) {
            if (p) putc(',', f);
            putc('[', f);
            for (size_t r = 0; r < rows; r++) {
                if (r) putc(',', f);
                putc('[', f);
                for (size_t c = 0; c < cols; c++) {
                    if (c) putc(',', f);
                    json_cell(f, s, (p * rows + r) * cols + c, k);
                }
                putc(']', f);
            }
            putc(']', f);
        }
        if (planes > 1) putc(']', f);
    }
}

static void json_string_list(FILE *f, char *const *x, size_t n)
{
    putc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) putc(',', f);
        mch_json_string(f, x[i]);
    }
    putc(']', f);
}

static void json_roles(FILE *f)
{
    char *roles[MCH_ROLE_COUNT];
    for (int r = 0; r < MCH_ROLE_COUNT; r++) roles[r] = (char *)mch_role_name((mch_role)r);
    json_string_list(f, roles, MCH_ROLE_COUNT);
}

/* Pairs of literal JSON text and a string value to print after it. */
static void json_strings(FILE *f, const char *const (*kv)[2], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fputs(kv[i][0], f);
        mch_json_string(f, kv[i][1]);
    }
}

static void json_spec(FILE *f, const mch_job_spec *s)
{
    const char *const model[][2] = {
        {"{\"format\":\"" MCH_CMAP_FORMAT "\",\"model\":{\"path\":", s->model_path},
        {",\"sha256\":", s->model_sha256},
        {",\"arch\":", s->arch},
        {",\"architecture\":", s->architecture}};
    json_strings(f, model, 4);
    fprintf(f, ",\"layers\":%u,\"heads\":%u,\"hidden\":%u", s->layers, s->heads, s->hidden);
    const char *const pert[][2] = {{",\"vocab_sha256\":", s->vocab_hash},
                                   {"},\"perturbation\":{\"kind\":", s->perturbation},
                                   {",\"position\":", s->position},
                                   {",\"filler\":", s->filler}};
    json_strings(f, pert, 4);
    fprintf(f, ",\"seed\":%llu,\"max_len\":%u,\"max_query_len\":%u,\"min_delta\":",
            (unsigned long long)s->seed, s->max_len, s->max_query_len);
    mch_json_number(f, s->min_delta);
    fprintf(f, ",\"stem\":%s},\"sweeps\":", s->stem ? "true" : "false");
    json_string_list(f, s->sweeps, s->n_sweeps);
    fputs(",\"software_version\":", f);
    mch_json_string(f, s->software_version);
}

void mch_cmap_write_json(const mch_cmap *m, FILE *f)
{
    const mch_job_spec *s = &m->spec;
    size_t L = s->layers, NH = s->heads, R = MCH_ROLE_COUNT, K = s->n_head_pos;
    json_spec(f, s);
    fprintf(f, ",\"pairs\":{\"total\":%llu,\"used\":%llu,\"skipped\":%llu,\"failed\":%llu}",
            (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
            (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed);
    fputs(",\"heads\":{", f);
    json_stats_block(f, &m->heads, L, NH, 1);
    fputs(
        "},\"blocks_by_role\":{\"components\":[\"resid_pre\",\"attn_out\",\"mlp_out\"],\"roles\":",
        f);
    json_roles(f);
    putc(',', f);
    json_stats_block(f, &m->blocks, L, R, 3);
    putc('}', f);
    if (K) {
        fputs(",\"head_pos\":{\"heads\":[", f);
        for (size_t k = 0; k < K; k++)
            fprintf(f, "%s[%u,%u]", k ? "," : "", s->head_pos[2 * k], s->head_pos[2 * k + 1]);
        fputs("],\"roles\":", f);
        json_roles(f);
        fputs(",\"z\":{", f);
        json_stats_block(f, &m->hpz, K, R, 1);
        fputs("},\"pattern\":{", f);
        json_stats_block(f, &m->hpp, K, R, 1);
        fputs("}}", f);
    }
    fputs(",\"strata\":{", f);
    for (size_t i = 0; i < m->n_strata; i++) {
        const mch_cmap_stratum *st = &m->strata[i];
        if (i) putc(',', f);
        mch_json_string(f, st->name);
        fprintf(f, ":{\"pairs\":%llu,\"heads\":{", (unsigned long long)st->pairs);
        json_stats_block(f, &st->heads, L, NH, 1);
        fputs("},\"blocks_by_role\":{", f);
        json_stats_block(f, &st->blocks, L, R, 3);
        fputs("}}", f);
    }
    fputs("},\"sites\":", f);
    json_string_list(f, m->sites, m->n_sites);
    fputs("}\n", f);
}
