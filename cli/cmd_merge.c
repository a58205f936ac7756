/* `mechir merge`: combines circuit maps computed over disjoint pair sets (shards, sites) into
 * one, exactly: counts add, means and M2 combine with Chan et al.'s parallel formula in double.
 * The inputs are put in a canonical order (by their smallest pair id) before folding, so the
 * output bytes do not depend on the order of the arguments. Maps from elsewhere are untrusted:
 * each is validated (sizes, counts, shapes) by mch_cmap_load before use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "cmap.h"

static void merge_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir merge A.cmap B.cmap ... -o C.cmap\n"
            "\n"
            "Combines circuit maps of disjoint pair sets (the shards of a collection, or the\n"
            "runs of collaborating sites) exactly: counts add; means and M2 combine with Chan's\n"
            "parallel formula in double. Refuses maps that cannot be combined (different model\n"
            "sha256, architecture, vocab hash, perturbation, sweeps, heads, max_len, min_delta,\n"
            "position, filler, stemming, pooling), naming the field and both values, and maps\n"
            "that share pairs, naming how many and one example. The contributing sites are kept.\n"
            "The output is the same bytes whatever the order of the inputs.\n"
            "\n"
            "  -o, --out FILE   the merged map (written atomically)\n"
            "  -h, --help       this text\n");
}

/* Stats b folded into a (both with the same cells). */
static void chan(uint64_t *n, double *mean, double *m2, uint64_t nb, double meanb, double m2b)
{
    if (!nb) return;
    if (!*n) {
        *n = nb, *mean = meanb, *m2 = m2b;
        return;
    }
    double na = (double)*n, dn = (double)nb, tot = na + dn, d = meanb - *mean;
    *mean += d * dn / tot;
    *m2 += m2b + d * d * na * dn / tot;
    *n += nb;
}

typedef struct {
    size_t cells;
    uint64_t *n;
    double *mean, *m2;
} acc_stats;

static int acc_init(acc_stats *a, size_t cells)
{
    a->cells = cells;
    a->n = calloc(cells + 1, sizeof *a->n);
    a->mean = calloc(cells + 1, sizeof *a->mean);
    a->m2 = calloc(cells + 1, sizeof *a->m2);
    return a->n && a->mean && a->m2;
}

static void acc_free(acc_stats *a)
{
    free(a->n);
    free(a->mean);
    free(a->m2);
}

static void acc_fold(acc_stats *a, const Mechir__Stats *s)
{
    for (size_t i = 0; i < a->cells; i++)
        chan(&a->n[i], &a->mean[i], &a->m2[i], s->n[i], s->mean[i], s->m2[i]);
}

static Mechir__Stats *acc_msg(Mechir__Stats *m, const acc_stats *a)
{
    mechir__stats__init(m);
    m->n_n = m->n_mean = m->n_m2 = a->cells;
    m->n = a->n;
    m->mean = a->mean;
    m->m2 = a->m2;
    return m;
}

/* Compares the fields two maps must share; fills why and returns 1 when they differ. */
static int incompatible(const Mechir__JobSpec *a, const Mechir__JobSpec *b, char *why, size_t len)
{
    struct {
        const char *name, *x, *y;
    } s[] = {{"model sha256", a->model_sha256, b->model_sha256},
             {"arch", a->arch, b->arch},
             {"architecture", a->architecture, b->architecture},
             {"vocab hash", a->vocab_hash, b->vocab_hash},
             {"perturbation", a->perturbation, b->perturbation},
             {"position", a->position, b->position},
             {"filler", a->filler, b->filler},
             {"pooling", a->pooling, b->pooling}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (strcmp(s[i].x, s[i].y))
            return snprintf(why, len, "%s differs: '%.80s' vs '%.80s'", s[i].name, s[i].x, s[i].y),
                   1;
    struct {
        const char *name;
        unsigned long long x, y;
    } u[] = {{"layers", a->layers, b->layers},
             {"heads", a->heads, b->heads},
             {"max_len", a->max_len, b->max_len},
             {"max_query_len", a->max_query_len, b->max_query_len},
             {"stem", a->stem, b->stem}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (u[i].x != u[i].y)
            return snprintf(why, len, "%s differs: %llu vs %llu", u[i].name, u[i].x, u[i].y), 1;
    if (a->min_delta != b->min_delta)
        return snprintf(why, len, "min_delta differs: %.17g vs %.17g", a->min_delta, b->min_delta),
               1;
    int same = a->n_sweeps == b->n_sweeps;
    for (size_t i = 0; same && i < a->n_sweeps; i++) same = !strcmp(a->sweeps[i], b->sweeps[i]);
    if (!same) {
        char x[128] = "", y[128] = "";
        for (size_t i = 0; i < a->n_sweeps; i++)
            snprintf(x + strlen(x), sizeof x - strlen(x), "%s%s", i ? "," : "", a->sweeps[i]);
        for (size_t i = 0; i < b->n_sweeps; i++)
            snprintf(y + strlen(y), sizeof y - strlen(y), "%s%s", i ? "," : "", b->sweeps[i]);
        return snprintf(why, len, "sweeps differ: %s vs %s", x, y), 1;
    }
    if (a->n_head_list != b->n_head_list ||
        (a->n_head_list &&
         memcmp(a->head_list, b->head_list, a->n_head_list * sizeof *a->head_list)))
        return snprintf(why, len, "head-pos heads differ"), 1;
    return 0;
}

static int cmp_inputs(const void *x, const void *y)
{
    const Mechir__CircuitMap *a = ((const mch_cmap_input *)x)->m,
                             *b = ((const mch_cmap_input *)y)->m;
    if (!a->n_pair_ids || !b->n_pair_ids) return (int)!a->n_pair_ids - (int)!b->n_pair_ids;
    return a->pair_ids[0] < b->pair_ids[0] ? -1 : a->pair_ids[0] > b->pair_ids[0];
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

static const char *min_str(const char *a, const char *b)
{
    return strcmp(a, b) <= 0 ? a : b;
}

mch_status mch_cmap_merge(mch_cmap_input *in, int n, uint8_t **out, size_t *out_len, mch_err *err)
{
    mch_status rc = MCH_OK;
    acc_stats heads = {0}, blocks = {0}, hpz = {0}, hpp = {0};
    uint64_t *ids = NULL;
    char **sites = NULL;
    Mechir__Stratum *strata = NULL;
    Mechir__Stratum **strata_p = NULL;
    acc_stats *sacc = NULL;
    Mechir__Stats *smsg = NULL;
    size_t n_strata = 0, n_sites = 0;
    uint8_t *bytes = NULL;
    *out = NULL;
    *out_len = 0;
    for (int i = 1; i < n; i++) {
        char why[300];
        if (incompatible(in[0].m->spec, in[i].m->spec, why, sizeof why)) {
            rc = mch_fail(err, MCH_ERR_ARG, "%s and %s cannot be combined: %s", in[0].name,
                          in[i].name, why);
            goto done;
        }
    }
    qsort(in, (size_t)n, sizeof *in, cmp_inputs);
    /* The pair sets must be disjoint. */
    size_t total_ids = 0;
    for (int i = 0; i < n; i++) total_ids += in[i].m->n_pair_ids;
    ids = malloc((total_ids + 1) * sizeof *ids);
    if (!ids) goto oom;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (in[i].m->n_pair_ids)
            memcpy(ids + k, in[i].m->pair_ids, in[i].m->n_pair_ids * sizeof *ids);
        k += in[i].m->n_pair_ids;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const Mechir__CircuitMap *a = in[i].m, *b = in[j].m;
            size_t x = 0, y = 0, shared = 0;
            uint64_t example = 0;
            while (x < a->n_pair_ids && y < b->n_pair_ids) {
                if (a->pair_ids[x] < b->pair_ids[y])
                    x++;
                else if (a->pair_ids[x] > b->pair_ids[y])
                    y++;
                else {
                    if (!shared++) example = a->pair_ids[x];
                    x++, y++;
                }
            }
            if (shared) {
                rc = mch_fail(
                    err, MCH_ERR_ARG,
                    "%s and %s share %zu pair%s (e.g. pair %016llx); a pair may be counted "
                    "once only",
                    in[i].name, in[j].name, shared, shared == 1 ? "" : "s",
                    (unsigned long long)example);
                goto done;
            }
        }
    /* Sorted union of the ids (disjoint, so no duplicates). */
    qsort(ids, total_ids, sizeof *ids, cmp_u64);
    const Mechir__CircuitMap *m0 = in[0].m;
    const Mechir__JobSpec *s0 = m0->spec;
    size_t L = s0->layers, NH = s0->heads, R = m0->n_roles, K = s0->n_head_list / 2;
    if (!acc_init(&heads, L * NH) || !acc_init(&blocks, 3 * L * R) || !acc_init(&hpz, K * R) ||
        !acc_init(&hpp, K * R))
        goto oom;
    Mechir__CircuitMap m;
    mechir__circuit_map__init(&m);
    Mechir__JobSpec spec = *s0;
    for (int i = 0; i < n; i++) {
        const Mechir__CircuitMap *x = in[i].m;
        acc_fold(&heads, x->heads);
        acc_fold(&blocks, x->blocks_by_role);
        if (K) {
            acc_fold(&hpz, x->head_pos_z_by_role);
            acc_fold(&hpp, x->head_pos_pattern_by_role);
        }
        m.pairs_total += x->pairs_total, m.pairs_used += x->pairs_used;
        m.pairs_skipped += x->pairs_skipped, m.pairs_failed += x->pairs_failed;
        /* Fields that may differ between shards and sites: the smallest, so the bytes do not
         * depend on the argument order. */
        spec.model_path = (char *)min_str(spec.model_path, x->spec->model_path);
        spec.software_version = (char *)min_str(spec.software_version, x->spec->software_version);
        if (x->spec->seed < spec.seed) spec.seed = x->spec->seed;
        n_sites += x->n_sites;
        n_strata += x->n_strata;
    }
    /* Sites: the sorted union. */
    sites = calloc(n_sites + 1, sizeof *sites);
    if (!sites) goto oom;
    size_t ns = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < in[i].m->n_sites; j++) sites[ns++] = in[i].m->sites[j];
    qsort(sites, ns, sizeof *sites, cmp_str);
    size_t us = 0;
    for (size_t i = 0; i < ns; i++)
        if (!us || strcmp(sites[us - 1], sites[i])) sites[us++] = sites[i];
    /* Strata: by name, folded in the same canonical order; names sorted. */
    strata = calloc(n_strata + 1, sizeof *strata);
    strata_p = calloc(n_strata + 1, sizeof *strata_p);
    sacc = calloc(2 * n_strata + 1, sizeof *sacc);
    smsg = calloc(2 * n_strata + 1, sizeof *smsg);
    if (!strata || !strata_p || !sacc || !smsg) goto oom;
    size_t nst = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < in[i].m->n_strata; j++) {
            const Mechir__Stratum *st = in[i].m->strata[j];
            size_t t = 0;
            while (t < nst && strcmp(strata[t].name, st->name)) t++;
            if (t == nst) {
                mechir__stratum__init(&strata[t]);
                strata[t].name = st->name;
                if (!acc_init(&sacc[2 * t], L * NH) || !acc_init(&sacc[2 * t + 1], 3 * L * R))
                    goto oom;
                nst++;
            }
            strata[t].pairs += st->pairs;
            acc_fold(&sacc[2 * t], st->heads);
            acc_fold(&sacc[2 * t + 1], st->blocks_by_role);
        }
    for (size_t t = 0; t < nst; t++) {
        strata[t].heads = acc_msg(&smsg[2 * t], &sacc[2 * t]);
        strata[t].blocks_by_role = acc_msg(&smsg[2 * t + 1], &sacc[2 * t + 1]);
        strata_p[t] = &strata[t];
    }
    for (size_t a = 0; a < nst; a++) /* insertion sort by name */
        for (size_t b = a; b > 0 && mch_stratum_cmp(strata_p[b - 1]->name, strata_p[b]->name) > 0;
             b--) {
            Mechir__Stratum *tmp = strata_p[b];
            strata_p[b] = strata_p[b - 1];
            strata_p[b - 1] = tmp;
        }
    m.format = (char *)MCH_CMAP_FORMAT;
    m.spec = &spec;
    m.n_roles = m0->n_roles;
    m.roles = m0->roles;
    Mechir__Stats sh, sb, sz, sp;
    m.heads = acc_msg(&sh, &heads);
    m.blocks_by_role = acc_msg(&sb, &blocks);
    m.head_pos_z_by_role = acc_msg(&sz, &hpz);
    m.head_pos_pattern_by_role = acc_msg(&sp, &hpp);
    m.n_strata = nst;
    m.strata = strata_p;
    m.n_pair_ids = total_ids;
    m.pair_ids = ids;
    m.n_sites = us;
    m.sites = sites;
    size_t len = mechir__circuit_map__get_packed_size(&m);
    bytes = malloc(len + 1);
    if (!bytes) goto oom;
    mechir__circuit_map__pack(&m, bytes);
    *out = bytes;
    *out_len = len;
    bytes = NULL;
    goto done;
oom:
    rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
done:
    for (size_t t = 0; sacc && t < 2 * n_strata; t++) acc_free(&sacc[t]);
    free(sacc);
    free(smsg);
    free(strata);
    free(strata_p);
    free(sites);
    free(ids);
    free(bytes);
    acc_free(&heads);
    acc_free(&blocks);
    acc_free(&hpz);
    acc_free(&hpp);
    return rc;
}

int mch_cmd_merge(int argc, char **argv)
{
    const char *out = NULL;
    mch_cmap_input *in = calloc((size_t)argc + 1, sizeof *in);
    int n = 0, status = 1;
    if (!in) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            merge_usage(stdout);
            free(in);
            return 0;
        }
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mechir merge: %s needs a file\n", argv[i]);
                free(in);
                return 2;
            }
            out = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mechir merge: unknown option '%s' (see --help)\n", argv[i]);
            free(in);
            return 2;
        } else {
            in[n++].name = argv[i];
        }
    }
    if (!out || n < 1) {
        fprintf(stderr, "mechir merge: give one or more maps and -o OUT.cmap (see --help)\n");
        free(in);
        return 2;
    }
    mch_err err = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    Mechir__CircuitMap *check = NULL;
    for (int i = 0; i < n; i++)
        if (mch_cmap_load(&in[i].m, in[i].name, &err)) goto fail;
    if (mch_cmap_merge(in, n, &bytes, &len, &err) ||
        mch_cmap_unpack(&check, bytes, len, out, &err) ||
        mch_write_file_atomic(out, bytes, len, &err))
        goto fail;
    fprintf(stderr, "mechir merge: %d map%s, %llu pairs (%llu used), %zu site%s -> %s\n", n,
            n == 1 ? "" : "s", (unsigned long long)check->pairs_total,
            (unsigned long long)check->pairs_used, check->n_sites, check->n_sites == 1 ? "" : "s",
            out);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "mechir merge: %s\n", err.msg);
done:
    if (check) mechir__circuit_map__free_unpacked(check, NULL);
    free(bytes);
    for (int i = 0; i < n; i++)
        if (in[i].m) mechir__circuit_map__free_unpacked(in[i].m, NULL);
    free(in);
    return status;
}
