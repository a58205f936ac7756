/* Exact verification of AtP estimates (see atp_verify.h). */
#include "atp_verify.h"

#include <stdlib.h>
#include <string.h>

void mch_atp_verified_free(mch_atp_verified *v)
{
    if (!v) return;
    free(v->comp);
    free(v->estimate);
    free(v->exact);
    memset(v, 0, sizeof *v);
}

/* The runs of an mch_atp context, as mch_patch_runs reads them. */
static const float *atp_act(const void *ctx, int run, mch_site site, int layer)
{
    return run ? mch_atp_activation(ctx, 1, site, layer) : mch_atp_baseline(ctx, site, layer);
}

mch_status mch_atp_patch_subset(mch_patcher *p, const mch_atp *a, const mch_patch_pair *pair,
                                const mch_patch_result *est, const unsigned char *heads_mask,
                                const unsigned char *blocks_mask, mch_patch_result *res,
                                mch_err *err)
{
    mch_patch_runs runs = {(float)est->score_baseline, (float)est->score_perturbed, atp_act, a};
    return mch_patch_subset_given(p, pair, &runs, heads_mask, blocks_mask, res, err);
}

mch_status mch_atp_verify(mch_patcher *p, const mch_model *m, const mch_atp *a,
                          const mch_patch_pair *pair, const mch_patch_result *est, unsigned sweeps,
                          int k, mch_atp_verified *out, mch_err *err)
{
    memset(out, 0, sizeof *out);
    const mch_config *cfg = &m->cfg;
    int L = cfg->L, NH = cfg->NH, T = pair->T;
    size_t LH = (size_t)L * NH, LT = (size_t)L * T;
    size_t cap = (size_t)(k > 0 ? k : 0) + LT;
    out->comp = malloc(cap * sizeof *out->comp);
    out->estimate = malloc(cap * sizeof *out->estimate);
    out->exact = malloc(cap * sizeof *out->exact);
    unsigned char *hmask = calloc(LH, 1), *bmask = calloc(3 * LT, 1);
    float *hs = malloc(LH * sizeof *hs), *bs = malloc(3 * LT * sizeof *bs);
    mch_status rc = out->comp && out->estimate && out->exact && hmask && bmask && hs && bs
                        ? MCH_OK
                        : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) {
        out->n_top = mch_atp_top(est, sweeps, L, NH, T, k, out->comp);
        int nr = (sweeps & MCH_SWEEP_BLOCKS)
                     ? mch_atp_diff_rows(pair, L, out->comp + out->n_top, (int)LT)
                     : 0;
        out->n = out->n_top + nr;
        for (int i = 0; i < out->n; i++) {
            const mch_component *c = &out->comp[i];
            if (c->block < 0)
                hmask[(size_t)c->layer * NH + c->index] = 1;
            else
                bmask[((size_t)c->block * L + c->layer) * T + c->index] = 1;
        }
        mch_patch_result ex = {.heads_scores = hs, .blocks_scores = bs};
        rc = a && m->cfg.head != MCH_HEAD_NONE
                 ? mch_atp_patch_subset(p, a, pair, est, hmask, bmask, &ex, err)
                 : mch_patch_subset(p, pair, hmask, bmask, &ex, err);
        for (int i = 0; !rc && i < out->n; i++) {
            out->estimate[i] = mch_component_score(est, L, NH, T, &out->comp[i]);
            out->exact[i] = mch_component_score(&ex, L, NH, T, &out->comp[i]);
        }
    }
    free(hmask);
    free(bmask);
    free(hs);
    free(bs);
    if (rc) mch_atp_verified_free(out);
    return rc;
}
