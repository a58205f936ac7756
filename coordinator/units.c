/* Work units (see units.h). A pair's input is copied out of the pair source once, into the
 * window, and moves from there into its unit and then into its journaled result. */
#include "units.h"

#include <stdlib.h>
#include <string.h>

mch_status mch_units_init(mch_unit_maker *um, mch_pair_source *src, const uint8_t *done,
                          uint64_t done_cap, int unit_size, mch_err *err)
{
    memset(um, 0, sizeof *um);
    um->src = src;
    um->done = done;
    um->done_cap = done ? done_cap : 0;
    um->unit_size = unit_size;
    if (!(um->window = calloc(MCH_WINDOW_PAIRS, sizeof *um->window))) {
        mch_units_deinit(um);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    return MCH_OK;
}

void mch_units_deinit(mch_unit_maker *um)
{
    if (!um) return;
    mch_pair_source_close(um->src);
    for (size_t i = um->pos_window; i < um->n_window; i++) mch_pair_input_deinit(&um->window[i]);
    free(um->window);
    memset(um, 0, sizeof *um);
}

/* The pair's input for a work unit: a view of the perturber's pair (valid until its next call)
 * and of the record, in the field order of mch_pair_input, copied once. */
static mch_status pair_input_of(mch_pair_input *p, const mch_pair *pr, const mch_record *r,
                                const mch_alignment *al, uint64_t index, mch_err *err)
{
    mch_pair_input view = {index,
                           pr->pair_id,
                           (size_t)pr->T,
                           (int32_t *)pr->ids_baseline,
                           (int32_t *)pr->ids_perturbed,
                           (int32_t *)pr->token_types,
                           (uint8_t *)pr->roles,
                           (size_t)pr->Tq,
                           (int32_t *)pr->query_ids,
                           (char *)r->qid,
                           (char *)r->docno,
                           (char *)pr->term,
                           pr->position,
                           r->relevance,
                           r->rank,
                           (char *)(al ? mch_align_name(al->kind) : ""),
                           al ? al->n_baseline : 0,
                           al ? al->n_perturbed : 0,
                           (char *)r->pair_key};
    return mch_pair_input_copy(p, &view, err);
}

static int cmp_by_len(const void *a, const void *b)
{
    const mch_pair_input *x = a, *y = b;
    if (x->T != y->T) return x->T < y->T ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Fills the window with the next pairs not yet journaled, sorted by length (buckets). */
static mch_status fill_window(mch_unit_maker *um, mch_err *err)
{
    um->n_window = um->pos_window = 0;
    while (um->n_window < MCH_WINDOW_PAIRS && !um->exhausted) {
        const mch_pair *pr;
        const mch_record *r;
        mch_status rc = mch_pair_source_next(um->src, &pr, &r, err);
        if (rc) return rc;
        if (!pr) {
            um->exhausted = 1;
            break;
        }
        uint64_t index = um->next_index++;
        if (index < um->done_cap && um->done[index]) continue;
        if ((rc = pair_input_of(&um->window[um->n_window], pr, r,
                                mch_pair_source_alignment(um->src), index, err)))
            return rc;
        um->n_window++;
    }
    qsort(um->window, um->n_window, sizeof *um->window, cmp_by_len);
    return MCH_OK;
}

mch_status mch_units_next(mch_unit_maker *um, mch_work_unit **out, mch_err *err)
{
    *out = NULL;
    if (um->pos_window == um->n_window) {
        mch_status rc = fill_window(um, err);
        if (rc) return rc;
        if (!um->n_window) return MCH_OK;
    }
    size_t size = (size_t)um->unit_size;
    if (!size) { /* about half a second of work, 1..256 pairs */
        double s = um->sec_per_pair > 0 ? 0.5 / um->sec_per_pair : 4;
        size = s < 1 ? 1 : s > 256 ? 256 : (size_t)s;
    }
    size_t left = um->n_window - um->pos_window;
    if (size > left) size = left;
    mch_work_unit *u = calloc(1, sizeof *u);
    mch_pair_input *ps = calloc(size, sizeof *ps);
    if (!u || !ps) {
        free(u);
        free(ps);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    u->unit_id = um->next_unit_id++;
    u->mode = um->mode;
    u->n_pairs = size;
    u->pairs = ps;
    memcpy(ps, um->window + um->pos_window, size * sizeof *ps); /* moved */
    memset(um->window + um->pos_window, 0, size * sizeof *ps);
    um->pos_window += size;
    *out = u;
    return MCH_OK;
}

void mch_unit_free(mch_work_unit *u)
{
    mch_work_unit_deinit(u);
    free(u);
}

void mch_units_observe(mch_unit_maker *um, double seconds, size_t pairs)
{
    double spp = seconds / (double)(pairs ? pairs : 1);
    um->sec_per_pair = um->sec_per_pair > 0 ? 0.8 * um->sec_per_pair + 0.2 * spp : spp;
}
