/* Circuit-map reduction, packing, validation and JSON (see cmap.h). */
#include "cmap.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonout.h"
#include "perturb.h"

static const char *const block_names[3] = {"resid_pre", "attn_out", "mlp_out"};

static int stats_init(mch_stats *s, size_t cells)
{
    s->cells = cells;
    s->n = calloc(cells ? cells : 1, sizeof *s->n);
    s->mean = calloc(cells ? cells : 1, sizeof *s->mean);
    s->m2 = calloc(cells ? cells : 1, sizeof *s->m2);
    return s->n && s->mean && s->m2;
}

static void stats_free(mch_stats *s)
{
    free(s->n);
    free(s->mean);
    free(s->m2);
}

static void stats_add(mch_stats *s, size_t i, double x)
{
    s->n[i]++;
    double d = x - s->mean[i];
    s->mean[i] += d / (double)s->n[i];
    s->m2[i] += d * (x - s->mean[i]);
}

mch_status mch_cmap_acc_init(mch_cmap_acc *a, int L, int NH, int K, mch_err *err)
{
    memset(a, 0, sizeof *a);
    a->L = L, a->NH = NH, a->K = K, a->R = MCH_ROLE_COUNT;
    if (!stats_init(&a->heads, (size_t)L * NH) || !stats_init(&a->blocks, (size_t)3 * L * a->R) ||
        !stats_init(&a->hpz, (size_t)K * a->R) || !stats_init(&a->hpp, (size_t)K * a->R)) {
        mch_cmap_acc_free(a);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    return MCH_OK;
}

void mch_cmap_acc_free(mch_cmap_acc *a)
{
    stats_free(&a->heads);
    stats_free(&a->blocks);
    stats_free(&a->hpz);
    stats_free(&a->hpp);
    for (int i = 0; i < a->n_strata; i++) {
        stats_free(&a->strata[i].heads);
        stats_free(&a->strata[i].blocks);
    }
    free(a->strata);
    free(a->pair_ids);
    memset(a, 0, sizeof *a);
}

int mch_pair_result_check(const Mechir__PairResult *r, int L, int NH, int K, char *why,
                          size_t why_len)
{
    const Mechir__PairInput *p = r->pair;
    if (!p) return snprintf(why, why_len, "result without its pair"), 1;
    size_t T = p->n_ids_baseline;
    if (p->n_ids_perturbed != T || p->n_token_types != T || p->roles.len != T)
        return snprintf(why, why_len, "pair arrays of different lengths"), 1;
    for (size_t t = 0; t < T; t++)
        if (p->roles.data[t] >= MCH_ROLE_COUNT)
            return snprintf(why, why_len, "role %u out of range", p->roles.data[t]), 1;
    if ((r->skip_reason && *r->skip_reason) || (r->error && *r->error)) return 0;
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
        if (cnt[r]) stats_add(s, base * R + r, sum[r] / cnt[r]);
}

static mch_stratum *stratum(mch_cmap_acc *a, int kind, int key)
{
    for (int i = 0; i < a->n_strata; i++)
        if (a->strata[i].kind == kind && a->strata[i].key == key) return &a->strata[i];
    mch_stratum *s = realloc(a->strata, (size_t)(a->n_strata + 1) * sizeof *s);
    if (!s) return NULL;
    a->strata = s;
    mch_stratum *n = &s[a->n_strata];
    memset(n, 0, sizeof *n);
    n->kind = kind, n->key = key;
    if (!stats_init(&n->heads, a->heads.cells) || !stats_init(&n->blocks, a->blocks.cells)) {
        stats_free(&n->heads);
        stats_free(&n->blocks);
        return NULL;
    }
    a->n_strata++;
    return n;
}

static void add_maps(mch_cmap_acc *a, mch_stats *heads, mch_stats *blocks,
                     const Mechir__PairResult *r)
{
    const Mechir__PairInput *p = r->pair;
    size_t T = p->n_ids_baseline;
    for (size_t i = 0; i < r->n_heads; i++) stats_add(heads, i, r->heads[i]);
    if (r->n_blocks)
        for (size_t cl = 0; cl < 3 * (size_t)a->L; cl++)
            add_by_role(blocks, cl, r->blocks + cl * T, p->roles.data, T, a->R);
}

mch_status mch_cmap_acc_add(mch_cmap_acc *a, const Mechir__PairResult *r, mch_err *err)
{
    const Mechir__PairInput *p = r->pair;
    if (a->n_ids == a->cap_ids) {
        size_t cap = a->cap_ids ? 2 * a->cap_ids : 1024;
        uint64_t *ids = realloc(a->pair_ids, cap * sizeof *ids);
        if (!ids) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        a->pair_ids = ids;
        a->cap_ids = cap;
    }
    a->pair_ids[a->n_ids++] = p->pair_id;
    a->total++;
    if (r->error && *r->error) {
        a->failed++;
        return MCH_OK;
    }
    if (r->skip_reason && *r->skip_reason) {
        a->skipped++;
        return MCH_OK;
    }
    a->used++;
    size_t T = p->n_ids_baseline;
    add_maps(a, &a->heads, &a->blocks, r);
    for (int k = 0; k < a->K; k++) {
        if (r->n_head_pos_z)
            add_by_role(&a->hpz, (size_t)k, r->head_pos_z + (size_t)k * T, p->roles.data, T, a->R);
        if (r->n_head_pos_pattern)
            add_by_role(&a->hpp, (size_t)k, r->head_pos_pattern + (size_t)k * T, p->roles.data, T,
                        a->R);
    }
    int keys[2][2] = {{0, p->relevance}, {1, p->rank >= 1 ? (p->rank - 1) / 10 : -1}};
    for (int i = 0; i < 2; i++) {
        if (keys[i][1] < 0) continue;
        mch_stratum *s = stratum(a, keys[i][0], keys[i][1]);
        if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        s->pairs++;
        add_maps(a, &s->heads, &s->blocks, r);
    }
    return MCH_OK;
}

static Mechir__Stats *stats_msg(Mechir__Stats *m, const mch_stats *s)
{
    mechir__stats__init(m);
    m->n_n = m->n_mean = m->n_m2 = s->cells;
    m->n = s->n;
    m->mean = s->mean;
    m->m2 = s->m2;
    return m;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_stratum(const void *a, const void *b)
{
    const mch_stratum *x = a, *y = b;
    if (x->kind != y->kind) return x->kind - y->kind;
    return x->key - y->key;
}

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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

mch_status mch_cmap_pack(const mch_cmap_acc *ca, const Mechir__JobSpec *spec, char **sites,
                         size_t n_sites, uint8_t **out, size_t *len, mch_err *err)
{
    mch_cmap_acc *a = (mch_cmap_acc *)ca;
    Mechir__CircuitMap m;
    mechir__circuit_map__init(&m);
    m.format = (char *)MCH_CMAP_FORMAT;
    m.spec = (Mechir__JobSpec *)spec;
    m.pairs_total = a->total, m.pairs_used = a->used, m.pairs_skipped = a->skipped;
    m.pairs_failed = a->failed;
    char *roles[MCH_ROLE_COUNT];
    for (int r = 0; r < MCH_ROLE_COUNT; r++) roles[r] = (char *)mch_role_name((mch_role)r);
    m.n_roles = MCH_ROLE_COUNT;
    m.roles = roles;
    Mechir__Stats sh, sb, sz, sp;
    m.heads = stats_msg(&sh, &a->heads);
    m.blocks_by_role = stats_msg(&sb, &a->blocks);
    m.head_pos_z_by_role = stats_msg(&sz, &a->hpz);
    m.head_pos_pattern_by_role = stats_msg(&sp, &a->hpp);
    if (a->n_strata) qsort(a->strata, (size_t)a->n_strata, sizeof *a->strata, cmp_stratum);
    Mechir__Stratum *st = calloc((size_t)a->n_strata + 1, sizeof *st);
    Mechir__Stratum **stp = calloc((size_t)a->n_strata + 1, sizeof *stp);
    Mechir__Stats *sts = calloc(2 * (size_t)a->n_strata + 1, sizeof *sts);
    char(*names)[32] = calloc((size_t)a->n_strata + 1, sizeof *names);
    uint64_t *ids = malloc((a->n_ids + 1) * sizeof *ids);
    char **sorted_sites = calloc(n_sites + 1, sizeof *sorted_sites);
    mch_status rc = MCH_OK;
    if (!st || !stp || !sts || !names || !ids || !sorted_sites) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < a->n_strata; i++) {
        mch_stratum *s = &a->strata[i];
        mechir__stratum__init(&st[i]);
        if (s->kind == 0)
            snprintf(names[i], sizeof names[i], "relevance=%d", s->key);
        else
            snprintf(names[i], sizeof names[i], "rank=%d-%d", 10 * s->key + 1, 10 * s->key + 10);
        st[i].name = names[i];
        st[i].pairs = s->pairs;
        st[i].heads = stats_msg(&sts[2 * i], &s->heads);
        st[i].blocks_by_role = stats_msg(&sts[2 * i + 1], &s->blocks);
        stp[i] = &st[i];
    }
    m.n_strata = (size_t)a->n_strata;
    m.strata = stp;
    if (a->n_ids) memcpy(ids, a->pair_ids, a->n_ids * sizeof *ids);
    qsort(ids, a->n_ids, sizeof *ids, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < a->n_ids; i++)
        if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    m.n_pair_ids = u;
    m.pair_ids = ids;
    for (size_t i = 0; i < n_sites; i++) sorted_sites[i] = sites[i];
    qsort(sorted_sites, n_sites, sizeof *sorted_sites, cmp_str);
    m.n_sites = n_sites;
    m.sites = sorted_sites;
    *len = mechir__circuit_map__get_packed_size(&m);
    if (!(*out = malloc(*len ? *len : 1))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        goto done;
    }
    mechir__circuit_map__pack(&m, *out);
done:
    free(st);
    free(stp);
    free(sts);
    free(names);
    free(ids);
    free(sorted_sites);
    return rc;
}

static int stats_ok(const Mechir__Stats *s, size_t cells, uint64_t max_n)
{
    if (!s) return cells == 0;
    if (s->n_n != cells || s->n_mean != cells || s->n_m2 != cells) return 0;
    for (size_t i = 0; i < cells; i++)
        if (s->n[i] > max_n || !isfinite(s->mean[i]) || !isfinite(s->m2[i]) || s->m2[i] < 0 ||
            (s->n[i] == 0 && (s->mean[i] != 0 || s->m2[i] != 0)))
            return 0;
    return 1;
}

mch_status mch_cmap_unpack(Mechir__CircuitMap **out, const uint8_t *buf, size_t len,
                           const char *name, mch_err *err)
{
    if (len > MCH_CMAP_MAX_BYTES)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: %zu bytes is larger than any circuit map", name,
                        len);
    Mechir__CircuitMap *m = mechir__circuit_map__unpack(NULL, len, buf);
    if (!m)
        return mch_fail(err, MCH_ERR_PROTO, "%s: not a circuit map (protobuf decoding failed)",
                        name);
    const char *bad = NULL;
    const Mechir__JobSpec *s = m->spec;
    size_t L = s ? s->layers : 0, NH = s ? s->heads : 0, R = m->n_roles;
    size_t K = s ? s->n_head_list / 2 : 0;
    int unknown = m->base.n_unknown_fields || (s && s->base.n_unknown_fields);
    const Mechir__Stats *all[4] = {m->heads, m->blocks_by_role, m->head_pos_z_by_role,
                                   m->head_pos_pattern_by_role};
    for (int i = 0; i < 4; i++) unknown |= all[i] && all[i]->base.n_unknown_fields;
    for (size_t i = 0; i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        unknown |= st->base.n_unknown_fields || (st->heads && st->heads->base.n_unknown_fields) ||
                   (st->blocks_by_role && st->blocks_by_role->base.n_unknown_fields);
    }
    if (!m->format || strcmp(m->format, MCH_CMAP_FORMAT))
        bad = "format is not mechir-circuit/1";
    else if (unknown)
        bad = "fields this version does not know (a newer mechir, or damage)";
    else if (!s)
        bad = "no job spec";
    else if (L < 1 || L > 1024 || NH < 1 || NH > 1024)
        bad = "spec: layers or heads out of range";
    else if (s->n_head_list % 2)
        bad = "spec: head list of odd length";
    else if (R != MCH_ROLE_COUNT)
        bad = "roles: unexpected number of roles";
    else if (m->pairs_used + m->pairs_skipped + m->pairs_failed != m->pairs_total)
        bad = "pair counts: used + skipped + failed != total";
    else if (m->n_pair_ids != m->pairs_total)
        bad = "pair_ids: count differs from pairs_total";
    else if (!stats_ok(m->heads, L * NH, m->pairs_used))
        bad = "heads: wrong shape or values";
    else if (!stats_ok(m->blocks_by_role, 3 * L * R, m->pairs_used))
        bad = "blocks_by_role: wrong shape or values";
    else if (!stats_ok(m->head_pos_z_by_role, K * R, m->pairs_used))
        bad = "head_pos_z_by_role: wrong shape or values";
    else if (!stats_ok(m->head_pos_pattern_by_role, K * R, m->pairs_used))
        bad = "head_pos_pattern_by_role: wrong shape or values";
    for (size_t i = 0; !bad && i < m->n_roles; i++)
        if (!m->roles[i] || strcmp(m->roles[i], mch_role_name((mch_role)i)))
            bad = "roles: unknown role";
    for (size_t i = 1; !bad && i < m->n_pair_ids; i++)
        if (m->pair_ids[i] <= m->pair_ids[i - 1]) bad = "pair_ids: not sorted and unique";
    for (size_t i = 0; !bad && i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        if (!st->name || !stats_ok(st->heads, L * NH, st->pairs) ||
            !stats_ok(st->blocks_by_role, 3 * L * R, st->pairs) || st->pairs > m->pairs_used)
            bad = "strata: wrong shape or values";
    }
    for (size_t i = 0; !bad && i < K; i++)
        if (s->head_list[2 * i] >= L || s->head_list[2 * i + 1] >= NH)
            bad = "spec: head outside the model";
    if (bad) {
        mechir__circuit_map__free_unpacked(m, NULL);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: invalid circuit map: %s", name, bad);
    }
    *out = m;
    return MCH_OK;
}

mch_status mch_cmap_load(Mechir__CircuitMap **out, const char *path, mch_err *err)
{
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
    mch_status rc = mch_cmap_unpack(out, buf, (size_t)n, path, err);
    free(buf);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_stats_block(FILE *f, const Mechir__Stats *s, size_t rows, size_t cols,
                             size_t planes)
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
                    size_t i = (p * rows + r) * cols + c;
                    if (c) putc(',', f);
                    if (k == 0)
                        s->n[i] ? mch_json_number(f, s->mean[i]) : (void)fputs("null", f);
                    else if (k == 1)
                        s->n[i] >= 2 ? mch_json_number(f, sqrt(s->m2[i] / (double)(s->n[i] - 1)))
                                     : (void)fputs("null", f);
                    else
                        fprintf(f, "%llu", (unsigned long long)s->n[i]);
                }
                putc(']', f);
            }
            putc(']', f);
        }
        if (planes > 1) putc(']', f);
    }
}

static void json_string_list(FILE *f, char **x, size_t n)
{
    putc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) putc(',', f);
        mch_json_string(f, x[i]);
    }
    putc(']', f);
}

void mch_cmap_write_json(const Mechir__CircuitMap *m, FILE *f)
{
    const Mechir__JobSpec *s = m->spec;
    size_t L = s->layers, NH = s->heads, R = m->n_roles, K = s->n_head_list / 2;
    fputs("{\"format\":\"" MCH_CMAP_FORMAT "\",\"model\":{\"path\":", f);
    mch_json_string(f, s->model_path);
    fputs(",\"sha256\":", f);
    mch_json_string(f, s->model_sha256);
    fputs(",\"arch\":", f);
    mch_json_string(f, s->arch);
    fputs(",\"architecture\":", f);
    mch_json_string(f, s->architecture);
    fprintf(f, ",\"layers\":%u,\"heads\":%u,\"hidden\":%u,\"vocab_sha256\":", s->layers, s->heads,
            s->hidden);
    mch_json_string(f, s->vocab_hash);
    fputs("},\"perturbation\":{\"kind\":", f);
    mch_json_string(f, s->perturbation);
    fputs(",\"position\":", f);
    mch_json_string(f, s->position);
    fputs(",\"filler\":", f);
    mch_json_string(f, s->filler);
    fprintf(f, ",\"seed\":%llu,\"max_len\":%u,\"max_query_len\":%u,\"min_delta\":",
            (unsigned long long)s->seed, s->max_len, s->max_query_len);
    mch_json_number(f, s->min_delta);
    fprintf(f, ",\"stem\":%s},\"sweeps\":", s->stem ? "true" : "false");
    json_string_list(f, s->sweeps, s->n_sweeps);
    fputs(",\"software_version\":", f);
    mch_json_string(f, s->software_version);
    fprintf(f, ",\"pairs\":{\"total\":%llu,\"used\":%llu,\"skipped\":%llu,\"failed\":%llu}",
            (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
            (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed);
    fputs(",\"heads\":{", f);
    json_stats_block(f, m->heads, L, NH, 1);
    fputs(
        "},\"blocks_by_role\":{\"components\":[\"resid_pre\",\"attn_out\",\"mlp_out\"],\"roles\":",
        f);
    json_string_list(f, m->roles, R);
    putc(',', f);
    json_stats_block(f, m->blocks_by_role, L, R, 3);
    putc('}', f);
    if (K) {
        fputs(",\"head_pos\":{\"heads\":[", f);
        for (size_t k = 0; k < K; k++)
            fprintf(f, "%s[%u,%u]", k ? "," : "", s->head_list[2 * k], s->head_list[2 * k + 1]);
        fputs("],\"roles\":", f);
        json_string_list(f, m->roles, R);
        fputs(",\"z\":{", f);
        json_stats_block(f, m->head_pos_z_by_role, K, R, 1);
        fputs("},\"pattern\":{", f);
        json_stats_block(f, m->head_pos_pattern_by_role, K, R, 1);
        fputs("}}", f);
    }
    fputs(",\"strata\":{", f);
    for (size_t i = 0; i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        if (i) putc(',', f);
        mch_json_string(f, st->name);
        fprintf(f, ":{\"pairs\":%llu,\"heads\":{", (unsigned long long)st->pairs);
        json_stats_block(f, st->heads, L, NH, 1);
        fputs("},\"blocks_by_role\":{", f);
        json_stats_block(f, st->blocks_by_role, L, R, 3);
        fputs("}}", f);
    }
    fputs("},\"sites\":", f);
    json_string_list(f, m->sites, m->n_sites);
    fputs("}\n", f);
    (void)block_names;
}
