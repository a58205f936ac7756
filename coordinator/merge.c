/* Merging circuit maps (see merge.h). Maps from elsewhere are untrusted: each was validated by
 * mch_cmap_unpack before it gets here, and the merged map is validated again before it is
 * written. */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "cmap.h"
#include "fsutil.h"
#include "strmap.h"

static int cmp_inputs(const void *x, const void *y)
{
    const mch_cmap *a = ((const mch_cmap_input *)x)->m, *b = ((const mch_cmap_input *)y)->m;
    if (!a->n_pair_ids || !b->n_pair_ids) return (int)!a->n_pair_ids - (int)!b->n_pair_ids;
    return a->pair_ids[0] < b->pair_ids[0] ? -1 : a->pair_ids[0] > b->pair_ids[0];
}

/* Refuses specs that differ in a field the numbers depend on. */
static mch_status check_specs(const mch_cmap_input *in, int n, mch_err *err)
{
    for (int i = 1; i < n; i++) {
        mch_spec_diff d;
        if (mch_job_spec_diff(&in[0].m->spec, &in[i].m->spec, MCH_SPEC_SAME_MAP, &d))
            return mch_fail(err, MCH_ERR_ARG, "%s and %s cannot be combined: %s differ%s: %s vs %s",
                            in[0].name, in[i].name, d.field, d.plural ? "" : "s", d.a, d.b);
    }
    return MCH_OK;
}

/* Refuses inputs that share pairs (each map's ids are sorted and unique). */
static mch_status check_disjoint(const mch_cmap_input *in, int n, mch_err *err)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const mch_cmap *a = in[i].m, *b = in[j].m;
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
            if (shared)
                return mch_fail(err, MCH_ERR_ARG,
                                "%s and %s share %zu pair%s (e.g. pair %016llx); a pair may be "
                                "counted once only",
                                in[i].name, in[j].name, shared, shared == 1 ? "" : "s",
                                (unsigned long long)example);
        }
    return MCH_OK;
}

static const char *min_str(const char *a, const char *b)
{
    return strcmp(a, b) <= 0 ? a : b;
}

/* The merged spec: in[0]'s, with the fields allowed to differ (model path, seed, software
 * version) set to the smallest value, so the bytes do not depend on the argument order. */
static mch_status merged_spec(const mch_cmap_input *in, int n, mch_job_spec *out, mch_err *err)
{
    const char *path = in[0].m->spec.model_path, *version = in[0].m->spec.software_version;
    uint64_t seed = in[0].m->spec.seed;
    for (int i = 1; i < n; i++) {
        const mch_job_spec *s = &in[i].m->spec;
        path = min_str(path, s->model_path);
        version = min_str(version, s->software_version);
        if (s->seed < seed) seed = s->seed;
    }
    mch_status rc = mch_job_spec_copy(out, &in[0].m->spec, err);
    if (!rc &&
        (!mch_msg_str(&out->model_path, path) || !mch_msg_str(&out->software_version, version)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    out->seed = seed;
    return rc;
}

/* Strata folded by name, found through a hash of the names so far (linear in the strata of the
 * inputs); out->strata has room for every input stratum. Refuses a union of more than
 * MCH_CMAP_MAX_STRATA strata, which no map may hold. */
static mch_status merge_strata(const mch_cmap_input *in, int n, mch_cmap *out, mch_err *err)
{
    mch_strmap *index = mch_strmap_create();
    mch_status rc = index ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
    for (int i = 0; i < n && !rc; i++)
        for (size_t j = 0; j < in[i].m->n_strata && !rc; j++) {
            const mch_cmap_stratum *st = &in[i].m->strata[j];
            int added = 0;
            int64_t *t = mch_strmap_put(index, st->name, strlen(st->name), &added);
            if (!t) {
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
                break;
            }
            if (added && out->n_strata == MCH_CMAP_MAX_STRATA) {
                rc = mch_fail(err, MCH_ERR_ARG,
                              "the maps together have more than %d strata (%s adds '%s'), more "
                              "than a map may hold",
                              MCH_CMAP_MAX_STRATA, in[i].name, st->name);
                break;
            }
            if (added) *t = (int64_t)out->n_strata;
            mch_cmap_stratum *o = &out->strata[*t];
            if (added) {
                if (!mch_msg_str(&o->name, st->name)) {
                    rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
                    break;
                }
                out->n_strata++;
                rc = mch_est_init(&o->heads, st->heads.cells, st->heads.B, err);
                if (!rc) rc = mch_est_init(&o->blocks, st->blocks.cells, st->blocks.B, err);
            }
            if (!rc && mch_u64_add(&o->pairs, st->pairs))
                rc = mch_fail(err, MCH_ERR_ARG,
                              "stratum '%s' of the maps holds more than 2^64 pairs", st->name);
            if (rc) break;
            mch_est_fold(&o->heads, &st->heads);
            mch_est_fold(&o->blocks, &st->blocks);
        }
    mch_strmap_free(index);
    return rc;
}

/* Sizes out's arrays for the union of the inputs. */
static mch_status merge_alloc(const mch_cmap_input *in, int n, mch_cmap *out, mch_err *err)
{
    const mch_cmap *m0 = in[0].m;
    size_t ids = 0, strata = 0, sites = 0, prov = 0;
    for (int i = 0; i < n; i++) {
        ids += in[i].m->n_pair_ids;
        strata += in[i].m->n_strata;
        sites += in[i].m->n_sites;
        prov += in[i].m->n_provenance;
    }
    uint32_t B = m0->spec.bootstrap;
    mch_est *from[MCH_CMAP_EST], *to[MCH_CMAP_EST];
    mch_cmap_ests((mch_cmap *)m0, from);
    mch_cmap_ests(out, to);
    mch_status rc = MCH_OK;
    for (int i = 0; i < MCH_CMAP_EST && !rc; i++) rc = mch_est_init(to[i], from[i]->cells, B, err);
    if (!rc) rc = mch_stats_init(&out->vrank, m0->vrank.cells, err);
    if (!rc && (!(out->pair_ids = malloc((ids + 1) * sizeof *out->pair_ids)) ||
                !(out->strata = calloc(strata + 1, sizeof *out->strata)) ||
                !(out->sites = calloc(sites + 1, sizeof *out->sites)) ||
                !(out->provenance = calloc(prov + 1, sizeof *out->provenance))))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
    return rc;
}

/* Adds x's pair counts to out's; 1 (out partly added) when a sum does not fit 64 bits. */
static int add_counts(mch_cmap *out, const mch_cmap *x)
{
    uint64_t *dst[6] = {&out->pairs_total,  &out->pairs_used, &out->pairs_skipped,
                        &out->pairs_failed, &out->pairs_with, &out->pairs_against};
    const uint64_t src[6] = {x->pairs_total,  x->pairs_used, x->pairs_skipped,
                             x->pairs_failed, x->pairs_with, x->pairs_against};
    int wraps = 0;
    for (int k = 0; k < 6; k++) wraps |= mch_u64_add(dst[k], src[k]);
    return wraps;
}

mch_status mch_cmap_merge(mch_cmap_input *in, int n, mch_cmap *out, mch_err *err)
{
    memset(out, 0, sizeof *out);
    mch_status rc = check_specs(in, n, err);
    if (rc) return rc;
    qsort(in, (size_t)n, sizeof *in, cmp_inputs);
    if ((rc = check_disjoint(in, n, err)) || (rc = merged_spec(in, n, &out->spec, err)) ||
        (rc = merge_alloc(in, n, out, err)))
        goto done;
    for (int i = 0; i < n && !rc; i++) {
        const mch_cmap *x = in[i].m;
        if (add_counts(out, x)) {
            rc = mch_fail(err, MCH_ERR_ARG,
                          "%s: its pair counts and those of the maps before it add up to more "
                          "than 2^64",
                          in[i].name);
            break;
        }
        mch_est *from[MCH_CMAP_EST], *to[MCH_CMAP_EST];
        mch_cmap_ests((mch_cmap *)x, from);
        mch_cmap_ests(out, to);
        for (int k = 0; k < MCH_CMAP_EST; k++) mch_est_fold(to[k], from[k]);
        mch_stats_fold(&out->vrank, &x->vrank);
        for (size_t j = 0; j < x->n_provenance && !rc; j++, out->n_provenance++)
            if (!mch_msg_str(&out->provenance[out->n_provenance], x->provenance[j]))
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
        if (x->n_pair_ids)
            memcpy(out->pair_ids + out->n_pair_ids, x->pair_ids,
                   x->n_pair_ids * sizeof *x->pair_ids);
        out->n_pair_ids += x->n_pair_ids;
        for (size_t j = 0; j < x->n_sites && !rc; j++, out->n_sites++)
            if (!mch_msg_str(&out->sites[out->n_sites], x->sites[j]))
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory merging maps");
    }
    if (!rc) rc = merge_strata(in, n, out, err);
    if (!rc) mch_cmap_canonicalize(out);
done:
    if (rc) mch_cmap_deinit(out);
    return rc;
}

mch_status mch_merge_files(const mch_merge_opts *o, mch_merge_summary *s, mch_err *err)
{
    int n = o->n_inputs;
    mch_cmap_input *in = calloc((size_t)n + 1, sizeof *in);
    mch_cmap *maps = calloc((size_t)n + 1, sizeof *maps);
    mch_cmap merged = {0}, check = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    mch_status rc = in && maps ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        in[i] = (mch_cmap_input){&maps[i], o->inputs[i]};
        rc = mch_cmap_load(&maps[i], o->inputs[i], err);
    }
    if (!rc) rc = mch_cmap_merge(in, n, &merged, err);
    if (!rc) rc = mch_cmap_pack(&merged, &bytes, &len, err);
    if (!rc) rc = mch_cmap_unpack(&check, bytes, len, o->out_path, err);
    if (!rc) rc = mch_write_file_atomic(o->out_path, bytes, len, err);
    if (!rc) *s = (mch_merge_summary){check.pairs_total, check.pairs_used, check.n_sites};
    for (int i = 0; maps && i < n; i++) mch_cmap_deinit(&maps[i]);
    mch_cmap_deinit(&merged);
    mch_cmap_deinit(&check);
    free(bytes);
    free(maps);
    free(in);
    return rc;
}
