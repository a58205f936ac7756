/* Circuit-map reduction, canonical order, loading and JSON (see cmap.h). */
#include "cmap.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "perturb.h"

/* The accumulator's estimates in mch_cmap_ests' order. */
static void acc_ests(mch_cmap_acc *a, mch_est *out[MCH_CMAP_EST])
{
    mch_est *all[MCH_CMAP_EST] = {&a->heads,  &a->blocks,     &a->hpz,     &a->hpp,
                                  &a->vheads, &a->vheads_est, &a->vblocks, &a->vblocks_est,
                                  &a->qkv,    &a->pattern,    &a->rmid};
    memcpy(out, all, sizeof all);
}

mch_status mch_cmap_acc_init(mch_cmap_acc *a, const mch_job_spec *spec, mch_err *err)
{
    memset(a, 0, sizeof *a);
    mch_perturb_kind k = MCH_PERTURB_TFC1;
    if (spec->perturbation) mch_perturb_parse(spec->perturbation, &k);
    a->L = (int)spec->layers, a->NH = (int)spec->heads, a->K = (int)spec->n_head_pos;
    a->HR = (int)mch_spec_head_rows(spec);
    a->R = MCH_ROLE_COUNT;
    a->B = spec->bootstrap, a->seed = spec->seed, a->axiom = mch_perturb_axiom_sign(k);
    size_t cells[MCH_CMAP_EST];
    mch_cmap_cells(spec, cells);
    mch_est *all[MCH_CMAP_EST];
    acc_ests(a, all);
    mch_status rc = MCH_OK;
    for (int i = 0; i < MCH_CMAP_EST && !rc; i++) rc = mch_est_init(all[i], cells[i], a->B, err);
    if (!rc) rc = mch_stats_init(&a->vrank, spec->verify_top ? 1 : 0, err);
    if (!rc && !(a->w = malloc((size_t)a->B + 1)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (rc) mch_cmap_acc_deinit(a);
    return rc;
}

void mch_cmap_acc_deinit(mch_cmap_acc *a)
{
    if (!a) return;
    mch_est *all[MCH_CMAP_EST];
    acc_ests(a, all);
    for (int i = 0; i < MCH_CMAP_EST; i++) mch_est_deinit(all[i]);
    mch_stats_deinit(&a->vrank);
    for (int i = 0; i < a->n_strata; i++) {
        mch_est_deinit(&a->strata[i].heads);
        mch_est_deinit(&a->strata[i].blocks);
    }
    free(a->strata);
    free(a->pair_ids);
    free(a->w);
    memset(a, 0, sizeof *a);
}

/* One pair's values being added: its baseline score, quantized score change and weights. */
typedef struct {
    double base;
    int64_t qden;
    const uint8_t *w;
} pair_ctx;

/* Adds a cell's effect and raw patched score; 1 when the score is beyond the exact sums. */
static int add_cell(mch_est *e, size_t cell, double effect, double patched, const pair_ctx *c)
{
    int64_t q;
    if (mch_xsum_quantize(patched - c->base, &q)) return 1;
    mch_est_add(e, cell, effect, q, c->qden, c->w);
    return 0;
}

/* Per-role means of one (T)-row of effects x and patched scores y into the cells base*R +
 * role; 1 when a score is beyond the exact sums. */
static int add_by_role(mch_est *e, size_t base, const float *x, const float *y,
                       const uint8_t *roles, size_t T, int R, const pair_ctx *c)
{
    double sx[MCH_ROLE_COUNT] = {0}, sy[MCH_ROLE_COUNT] = {0};
    int cnt[MCH_ROLE_COUNT] = {0};
    for (size_t t = 0; t < T; t++) {
        sx[roles[t]] += x[t];
        sy[roles[t]] += y[t];
        cnt[roles[t]]++;
    }
    int bad = 0;
    for (int r = 0; r < R; r++)
        if (cnt[r]) bad |= add_cell(e, base * R + r, sx[r] / cnt[r], sy[r] / cnt[r], c);
    return bad;
}

/* The stratum (kind, key), added when new; NULL when out of memory or (*full set) when a map
 * already holds MCH_CMAP_MAX_STRATA. */
static mch_acc_stratum *stratum(mch_cmap_acc *a, int kind, long long key, int *full)
{
    for (int i = 0; i < a->n_strata; i++)
        if (a->strata[i].kind == kind && a->strata[i].key == key) return &a->strata[i];
    if ((*full = a->n_strata >= MCH_CMAP_MAX_STRATA)) return NULL;
    mch_acc_stratum *s = realloc(a->strata, (size_t)(a->n_strata + 1) * sizeof *s);
    if (!s) return NULL;
    a->strata = s;
    mch_acc_stratum *n = &s[a->n_strata];
    memset(n, 0, sizeof *n);
    n->kind = kind, n->key = key;
    if (mch_est_init(&n->heads, a->heads.cells, a->B, NULL) ||
        mch_est_init(&n->blocks, a->blocks.cells, a->B, NULL)) {
        mch_est_deinit(&n->heads);
        return NULL;
    }
    a->n_strata++;
    return n;
}

static int add_maps(mch_cmap_acc *a, mch_est *heads, mch_est *blocks, const mch_pair_result *r,
                    const pair_ctx *c)
{
    const mch_pair_input *p = &r->pair;
    size_t T = p->T;
    int bad = 0;
    for (size_t i = 0; i < r->n_heads; i++)
        bad |= add_cell(heads, i, r->heads[i], r->heads_scores[i], c);
    if (r->n_blocks)
        for (size_t cl = 0; cl < 3 * (size_t)a->L; cl++)
            bad |= add_by_role(blocks, cl, r->blocks + cl * T, r->blocks_scores + cl * T, p->roles,
                               T, a->R, c);
    return bad;
}

static int add_head_pos(mch_cmap_acc *a, const mch_pair_result *r, const pair_ctx *c)
{
    const mch_pair_input *p = &r->pair;
    size_t T = p->T;
    int bad = 0;
    for (int k = 0; k < a->K; k++) {
        size_t o = (size_t)k * T;
        if (r->n_head_pos_z)
            bad |= add_by_role(&a->hpz, (size_t)k, r->head_pos_z + o, r->head_pos_z_scores + o,
                               p->roles, T, a->R, c);
        if (r->n_head_pos_pattern)
            bad |= add_by_role(&a->hpp, (size_t)k, r->head_pos_pattern + o,
                               r->head_pos_pattern_scores + o, p->roles, T, a->R, c);
    }
    return bad;
}

/* The finer sweeps: qkv and pattern cells as heads, resid-mid rows by role. */
static int add_finer(mch_cmap_acc *a, const mch_pair_result *r, const pair_ctx *c)
{
    const mch_pair_input *p = &r->pair;
    size_t T = p->T;
    int bad = 0;
    for (size_t i = 0; i < r->n_qkv; i++)
        bad |= add_cell(&a->qkv, i, r->qkv[i], r->qkv_scores[i], c);
    for (size_t i = 0; i < r->n_pattern; i++)
        bad |= add_cell(&a->pattern, i, r->pattern[i], r->pattern_scores[i], c);
    if (r->n_resid_mid)
        for (size_t l = 0; l < (size_t)a->L; l++)
            bad |= add_by_role(&a->rmid, l, r->resid_mid + l * T, r->resid_mid_scores + l * T,
                               p->roles, T, a->R, c);
    return bad;
}

int mch_spearman(const double *x, const double *y, size_t n, double *ranks, double *rho)
{
    if (n < 2) return 1;
    const double *v[2] = {x, y};
    for (int s = 0; s < 2; s++) { /* rank of i: 1 + #smaller + (#equal - 1) / 2 */
        double *rk = ranks + (size_t)s * n;
        for (size_t i = 0; i < n; i++) {
            size_t less = 0, equal = 0;
            for (size_t j = 0; j < n; j++) {
                less += v[s][j] < v[s][i];
                equal += v[s][j] == v[s][i];
            }
            rk[i] = 1 + (double)less + ((double)equal - 1) / 2;
        }
    }
    double mean = ((double)n + 1) / 2, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = ranks[i] - mean, dy = ranks[n + i] - mean;
        sxy += dx * dy, sxx += dx * dx, syy += dy * dy;
    }
    if (sxx == 0 || syy == 0) return 1;
    *rho = sxy / sqrt(sxx * syy);
    return 0;
}

/* Whether verified entry i of r repeats an earlier one. */
static int verified_repeat(const mch_pair_result *r, size_t i)
{
    const int32_t *c = r->verified_comp + 3 * i;
    for (size_t j = 0; j < i; j++) {
        const int32_t *d = r->verified_comp + 3 * j;
        if (c[0] == d[0] && c[1] == d[1] && c[2] == d[2]) return 1;
    }
    return 0;
}

/* The verified components of a used pair of score change delta: heads as cells, block rows by
 * role as add_by_role does over the distinct verified positions, and the rank correlation; 1
 * when a score is beyond the exact sums, *oom when out of memory. */
static int add_verified(mch_cmap_acc *a, const mch_pair_result *r, double delta, const pair_ctx *c,
                        int *oom)
{
    size_t n = r->n_verified, nb = a->vblocks.cells, R = (size_t)a->R;
    double *buf = calloc(6 * n + 3 * nb + 1, sizeof *buf);
    if (!buf) return *oom = 1, 0;
    double *ex = buf, *est = buf + n, *ranks = buf + 2 * n; /* effects of distinct entries */
    double *sums = buf + 4 * n; /* (nb) exact, estimated and count, per block cell */
    int bad = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (verified_repeat(r, i)) continue;
        const int32_t *cp = r->verified_comp + 3 * i;
        double x = r->verified_exact[i], y = r->verified_estimate[i];
        ex[m] = (x - c->base) / delta, est[m] = (y - c->base) / delta;
        if (cp[0] < 0) {
            size_t cell = (size_t)cp[1] * (size_t)a->NH + (size_t)cp[2];
            bad |= add_cell(&a->vheads, cell, ex[m], x, c) |
                   add_cell(&a->vheads_est, cell, est[m], y, c);
        } else {
            size_t cell = ((size_t)cp[0] * (size_t)a->L + (size_t)cp[1]) * R + r->pair.roles[cp[2]];
            sums[cell] += x, sums[nb + cell] += y, sums[2 * nb + cell] += 1;
        }
        m++;
    }
    for (size_t cell = 0; cell < nb; cell++) {
        double k = sums[2 * nb + cell];
        if (!k) continue;
        double x = sums[cell] / k, y = sums[nb + cell] / k;
        bad |= add_cell(&a->vblocks, cell, (x - c->base) / delta, x, c) |
               add_cell(&a->vblocks_est, cell, (y - c->base) / delta, y, c);
    }
    double rho;
    if (!bad && m >= 3 && !mch_spearman(est, ex, m, ranks, &rho)) mch_stats_add(&a->vrank, 0, rho);
    free(buf);
    return bad;
}

/* Doubles the room for pair ids; 1 when out of memory. */
static int grow_ids(mch_cmap_acc *a)
{
    size_t cap = a->cap_ids ? 2 * a->cap_ids : 1024;
    uint64_t *ids = realloc(a->pair_ids, cap * sizeof *ids);
    if (ids) a->pair_ids = ids, a->cap_ids = cap;
    return !ids;
}

/* Counts a pair that was scored by the direction of its score change. */
static void count_direction(mch_cmap_acc *a, const mch_pair_result *r)
{
    double d = (r->score_perturbed - r->score_baseline) * a->axiom;
    a->with += d > 0;
    a->against += d < 0;
}

mch_status mch_cmap_acc_add(mch_cmap_acc *a, const mch_pair_result *r, mch_err *err)
{
    const mch_pair_input *p = &r->pair;
    char why[160];
    if (mch_pair_result_check_rows(r, a->L, a->HR, a->NH, a->K, why, sizeof why))
        return mch_fail(err, MCH_ERR_SHAPE, "pair %016llx: %s", (unsigned long long)p->pair_id,
                        why);
    if ((r->n_heads && !a->heads.cells) || (r->n_blocks && !a->blocks.cells) ||
        (r->n_head_pos_z && !a->hpz.cells) || (r->n_head_pos_pattern && !a->hpp.cells) ||
        (r->n_verified && !a->vrank.cells) || (r->n_qkv && !a->qkv.cells) ||
        (r->n_pattern && !a->pattern.cells) || (r->n_resid_mid && !a->rmid.cells))
        return mch_fail(err, MCH_ERR_SHAPE, "pair %016llx: values of a sweep the job does not run",
                        (unsigned long long)p->pair_id);
    if (a->n_ids == a->cap_ids && grow_ids(a))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu pair ids", a->n_ids + 1);
    a->pair_ids[a->n_ids++] = p->pair_id;
    a->total++;
    if (r->error) {
        a->failed++;
        return MCH_OK;
    }
    count_direction(a, r);
    if (r->skip_reason) {
        a->skipped++;
        return MCH_OK;
    }
    a->used++;
    double delta = r->score_perturbed - r->score_baseline;
    pair_ctx c = {r->score_baseline, 0, a->w};
    mch_bootstrap_weights(a->seed, p->pair_id, a->B, a->w);
    int bad = mch_xsum_quantize(delta, &c.qden);
    if (!bad)
        bad = add_maps(a, &a->heads, &a->blocks, r, &c) | add_head_pos(a, r, &c) |
              add_finer(a, r, &c);
    if (!bad && r->n_verified) {
        int oom = 0;
        bad = add_verified(a, r, delta, &c, &oom);
        if (oom) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    long long keys[3][2] = {{0, p->relevance},
                            {1, p->rank >= 1 ? (p->rank - 1) / 10 : -1},
                            {2, delta * a->axiom > 0 ? 1 : 0}};
    for (int i = 0; !bad && i < 3; i++) {
        if (keys[i][1] < 0) continue;
        int full = 0;
        mch_acc_stratum *s = stratum(a, (int)keys[i][0], keys[i][1], &full);
        if (!s && full)
            return mch_fail(err, MCH_ERR_SHAPE,
                            "pair %016llx: its %s would be stratum %d, more than a map holds "
                            "(relevance grades + rank buckets of 10 + 2 directions)",
                            (unsigned long long)p->pair_id,
                            (const char *[]){"relevance grade", "rank", "direction"}[i],
                            MCH_CMAP_MAX_STRATA + 1);
        if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        s->pairs++;
        bad = add_maps(a, &s->heads, &s->blocks, r, &c);
    }
    if (bad)
        return mch_fail(err, MCH_ERR_SHAPE,
                        "pair %016llx: a score change of %g or more is beyond the exact sums "
                        "(|patched - baseline| < %g)",
                        (unsigned long long)p->pair_id, MCH_XSUM_MAX, MCH_XSUM_MAX);
    return MCH_OK;
}

/* The sites and their provenance lines ("SITE<TAB>description") into out. */
static mch_status finish_sites(const char *const *sites, const char *const *provenance,
                               size_t n_sites, mch_cmap *out, mch_err *err)
{
    if (!(out->sites = calloc(n_sites + 1, sizeof *out->sites)) ||
        !(out->provenance = calloc(n_sites + 1, sizeof *out->provenance)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n_sites; i++, out->n_sites++)
        if (!mch_msg_str(&out->sites[i], sites[i]))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; provenance && i < n_sites; i++, out->n_provenance++) {
        size_t n = strlen(sites[i]) + strlen(provenance[i]) + 2;
        if (!(out->provenance[i] = malloc(n))) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        snprintf(out->provenance[i], n, "%s\t%s", sites[i], provenance[i]);
    }
    return MCH_OK;
}

/* Moves the strata into out, named. */
static mch_status finish_strata(mch_cmap_acc *a, mch_cmap *out, mch_err *err)
{
    if (!(out->strata = calloc((size_t)a->n_strata + 1, sizeof *out->strata)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < a->n_strata; i++) {
        mch_acc_stratum *s = &a->strata[i];
        mch_cmap_stratum *o = &out->strata[out->n_strata];
        char name[64];
        if (s->kind == 0)
            snprintf(name, sizeof name, "relevance=%lld", s->key);
        else if (s->kind == 1)
            snprintf(name, sizeof name, "rank=%lld-%lld", 10 * s->key + 1, 10 * s->key + 10);
        else
            snprintf(name, sizeof name, "direction=%s", s->key ? "with" : "against");
        if (!mch_msg_str(&o->name, name)) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        o->pairs = s->pairs;
        o->heads = s->heads, o->blocks = s->blocks; /* moved */
        memset(&s->heads, 0, sizeof s->heads);
        memset(&s->blocks, 0, sizeof s->blocks);
        out->n_strata++;
    }
    return MCH_OK;
}

mch_status mch_cmap_acc_finish(mch_cmap_acc *a, const mch_job_spec *spec, const char *const *sites,
                               const char *const *provenance, size_t n_sites, mch_cmap *out,
                               mch_err *err)
{
    memset(out, 0, sizeof *out);
    mch_status rc = mch_job_spec_copy(&out->spec, spec, err);
    if (!rc) rc = finish_sites(sites, provenance, n_sites, out, err);
    if (!rc) rc = finish_strata(a, out, err);
    if (rc) {
        mch_cmap_deinit(out);
        return rc;
    }
    out->pairs_total = a->total, out->pairs_used = a->used;
    out->pairs_skipped = a->skipped, out->pairs_failed = a->failed;
    out->pairs_with = a->with, out->pairs_against = a->against;
    mch_est *from[MCH_CMAP_EST], *to[MCH_CMAP_EST];
    acc_ests(a, from);
    mch_cmap_ests(out, to);
    for (int i = 0; i < MCH_CMAP_EST; i++) { /* moved */
        *to[i] = *from[i];
        memset(from[i], 0, sizeof *from[i]);
    }
    out->vrank = a->vrank;
    memset(&a->vrank, 0, sizeof a->vrank);
    out->pair_ids = a->pair_ids, out->n_pair_ids = a->n_ids;
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

/* Sorts v and frees repeated strings. */
static void sort_unique(char **v, size_t *n)
{
    if (*n) qsort(v, *n, sizeof *v, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < *n; i++) {
        if (u && !strcmp(v[u - 1], v[i]))
            free(v[i]);
        else
            v[u++] = v[i];
    }
    *n = u;
}

void mch_cmap_canonicalize(mch_cmap *m)
{
    if (m->n_strata) qsort(m->strata, m->n_strata, sizeof *m->strata, cmp_stratum);
    if (m->n_pair_ids) qsort(m->pair_ids, m->n_pair_ids, sizeof *m->pair_ids, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < m->n_pair_ids; i++)
        if (!u || m->pair_ids[u - 1] != m->pair_ids[i]) m->pair_ids[u++] = m->pair_ids[i];
    m->n_pair_ids = u;
    sort_unique(m->sites, &m->n_sites);
    sort_unique(m->provenance, &m->n_provenance);
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

/* The statistics of a circuit.json block, in key order. */
enum { J_ROM, J_CI_LOW, J_CI_HIGH, J_NUM, J_DEN, J_MEAN, J_STD, J_N, J_KEYS };
static const char *const json_keys[J_KEYS] = {"ratio_of_means",
                                              "ci_low",
                                              "ci_high",
                                              "sum_patched_minus_baseline",
                                              "sum_perturbed_minus_baseline",
                                              "mean",
                                              "std",
                                              "n"};

/* Statistic k of cell i; ci holds the cell's interval (NAN: none). */
static void json_cell(FILE *f, const mch_est *e, size_t i, int k, const double ci[2])
{
    const mch_stats *s = &e->mor;
    size_t r0 = i * ((size_t)e->B + 1);
    if (i >= e->cells) { /* a sweep that did not run */
        fputs(k == J_N ? "0" : "null", f);
        return;
    }
    switch (k) {
    case J_ROM:
        mch_json_double(f, mch_est_ratio(e, i, 0));
        return;
    case J_CI_LOW:
    case J_CI_HIGH:
        mch_json_double(f, ci[k - J_CI_LOW]);
        return;
    case J_NUM:
        mch_json_double(f, mch_xsum_value(e->num[r0]));
        return;
    case J_DEN:
        mch_json_double(f, mch_xsum_value(e->den[r0]));
        return;
    case J_MEAN:
        mch_json_double(f, s->n[i] ? s->mean[i] : NAN);
        return;
    case J_STD:
        mch_json_double(f, mch_stats_std(s, i));
        return;
    default:
        fprintf(f, "%llu", (unsigned long long)s->n[i]);
    }
}

/* Every cell's interval (2 per cell; NAN: none) at level, malloc'd; NULL when out of memory. */
static double *intervals(const mch_est *e, double level)
{
    double *ci = malloc((2 * e->cells + 1) * sizeof *ci),
           *scratch = malloc(((size_t)e->B + 1) * sizeof *scratch);
    for (size_t i = 0; ci && scratch && i < e->cells; i++)
        if (!e->B || mch_est_interval(e, i, level, scratch, &ci[2 * i], &ci[2 * i + 1]))
            ci[2 * i] = ci[2 * i + 1] = NAN;
    free(scratch);
    return ci;
}

static void json_stats_block(FILE *f, const mch_est *e, double level, size_t rows, size_t cols,
                             size_t planes)
{
    double *ci = intervals(e, level);
    for (int k = 0; k < J_KEYS; k++) {
        fprintf(f, "%s\"%s\":", k ? "," : "", json_keys[k]);
        if (planes > 1) putc('[', f);
        for (size_t p = 0; p < planes; p++) {
            if (p) putc(',', f);
            putc('[', f);
            for (size_t r = 0; r < rows; r++) {
                if (r) putc(',', f);
                putc('[', f);
                for (size_t c = 0; c < cols; c++) {
                    size_t i = (p * rows + r) * cols + c;
                    const double none[2] = {NAN, NAN};
                    if (c) putc(',', f);
                    json_cell(f, e, i, k, ci && i < e->cells ? ci + 2 * i : none);
                }
                putc(']', f);
            }
            putc(']', f);
        }
        if (planes > 1) putc(']', f);
    }
    free(ci);
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
    if (s->decoder_layers) fprintf(f, ",\"decoder_layers\":%u", s->decoder_layers);
    const char *const pert[][2] = {{",\"vocab_sha256\":", s->vocab_hash},
                                   {"},\"perturbation\":{\"kind\":", s->perturbation},
                                   {",\"position\":", s->position},
                                   {",\"filler\":", s->filler}};
    json_strings(f, pert, 4);
    fprintf(f, ",\"seed\":%llu,\"max_len\":%u,\"max_query_len\":%u,\"min_delta\":",
            (unsigned long long)s->seed, s->max_len, s->max_query_len);
    mch_json_double(f, s->min_delta);
    if (s->max_span) fprintf(f, ",\"max_span\":%u", s->max_span);
    fprintf(f, ",\"stem\":%s},\"direction\":", s->stem ? "true" : "false");
    mch_json_string(f, *s->direction ? s->direction : "any");
    fprintf(f, ",\"bootstrap\":{\"replicates\":%lu,\"level\":", (unsigned long)s->bootstrap);
    mch_json_double(f, s->ci_level);
    fprintf(f, ",\"seed\":%llu},\"sweeps\":", (unsigned long long)s->seed);
    json_string_list(f, s->sweeps, s->n_sweeps);
    if (s->method && *s->method) { /* absent for exact patching: its maps' JSON is unchanged */
        fputs(",\"method\":", f);
        mch_json_string(f, s->method);
    }
    if (s->verify_top) fprintf(f, ",\"verify_top\":%lu", (unsigned long)s->verify_top);
    fputs(",\"software_version\":", f);
    mch_json_string(f, s->software_version);
}

/* The verified maps: exact and estimated effects of the verified components over the pairs
 * where each was verified, and the per-pair rank correlation. */
static void json_verified(FILE *f, const mch_cmap *m, double lv)
{
    size_t L = m->spec.layers, HR = mch_spec_head_rows(&m->spec), NH = m->spec.heads;
    size_t R = MCH_ROLE_COUNT;
    fputs(",\"verified\":{\"rank_correlation\":{\"pairs\":", f);
    const mch_stats *v = &m->vrank;
    uint64_t n = v->cells ? v->n[0] : 0;
    fprintf(f, "%llu,\"mean\":", (unsigned long long)n);
    mch_json_double(f, n ? v->mean[0] : NAN);
    fputs(",\"std\":", f);
    mch_json_double(f, v->cells ? mch_stats_std(v, 0) : NAN);
    putc('}', f);
    const struct {
        const char *key;
        const mch_est *e;
        size_t rows, cols, planes;
    } part[] = {{"heads", &m->vheads, HR, NH, 1},
                {"heads_estimate", &m->vheads_est, HR, NH, 1},
                {"blocks_by_role", &m->vblocks, L, R, 3},
                {"blocks_by_role_estimate", &m->vblocks_est, L, R, 3}};
    for (size_t i = 0; i < sizeof part / sizeof part[0]; i++) {
        if (!part[i].e->cells) continue;
        fprintf(f, ",\"%s\":{", part[i].key);
        json_stats_block(f, part[i].e, lv, part[i].rows, part[i].cols, part[i].planes);
        putc('}', f);
    }
    putc('}', f);
}

void mch_cmap_write_json(const mch_cmap *m, FILE *f)
{
    const mch_job_spec *s = &m->spec;
    size_t L = s->layers, NH = s->heads, R = MCH_ROLE_COUNT, K = s->n_head_pos;
    size_t HR = mch_spec_head_rows(s); /* a MonoT5: encoder, decoder, cross-attention rows */
    double lv = s->ci_level;
    json_spec(f, s);
    fprintf(f,
            ",\"pairs\":{\"total\":%llu,\"used\":%llu,\"skipped\":%llu,\"failed\":%llu,"
            "\"with_axiom\":%llu,\"against_axiom\":%llu}",
            (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
            (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed,
            (unsigned long long)m->pairs_with, (unsigned long long)m->pairs_against);
    fputs(",\"heads\":{", f);
    json_stats_block(f, &m->heads, lv, HR, NH, 1);
    fputs(
        "},\"blocks_by_role\":{\"components\":[\"resid_pre\",\"attn_out\",\"mlp_out\"],\"roles\":",
        f);
    json_roles(f);
    putc(',', f);
    json_stats_block(f, &m->blocks, lv, L, R, 3);
    putc('}', f);
    if (K) {
        fputs(",\"head_pos\":{\"heads\":[", f);
        for (size_t k = 0; k < K; k++)
            fprintf(f, "%s[%u,%u]", k ? "," : "", s->head_pos[2 * k], s->head_pos[2 * k + 1]);
        fputs("],\"roles\":", f);
        json_roles(f);
        fputs(",\"z\":{", f);
        json_stats_block(f, &m->hpz, lv, K, R, 1);
        fputs("},\"pattern\":{", f);
        json_stats_block(f, &m->hpp, lv, K, R, 1);
        fputs("}}", f);
    }
    if (m->qkv.cells) {
        fputs(",\"qkv\":{\"components\":[\"q\",\"k\",\"v\"],", f);
        json_stats_block(f, &m->qkv, lv, L, NH, 3);
        putc('}', f);
    }
    if (m->pattern.cells) {
        fputs(",\"pattern\":{", f);
        json_stats_block(f, &m->pattern, lv, L, NH, 1);
        putc('}', f);
    }
    if (m->rmid.cells) {
        fputs(",\"resid_mid_by_role\":{\"roles\":", f);
        json_roles(f);
        putc(',', f);
        json_stats_block(f, &m->rmid, lv, L, R, 1);
        putc('}', f);
    }
    if (s->verify_top) json_verified(f, m, lv);
    fputs(",\"strata\":{", f);
    for (size_t i = 0; i < m->n_strata; i++) {
        const mch_cmap_stratum *st = &m->strata[i];
        if (i) putc(',', f);
        mch_json_string(f, st->name);
        fprintf(f, ":{\"pairs\":%llu,\"heads\":{", (unsigned long long)st->pairs);
        json_stats_block(f, &st->heads, lv, HR, NH, 1);
        fputs("},\"blocks_by_role\":{", f);
        json_stats_block(f, &st->blocks, lv, L, R, 3);
        fputs("}}", f);
    }
    fputs("},\"sites\":", f);
    json_string_list(f, m->sites, m->n_sites);
    fputs(",\"provenance\":", f);
    json_string_list(f, m->provenance, m->n_provenance);
    fputs("}\n", f);
}
