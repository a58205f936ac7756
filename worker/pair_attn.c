/* Both runs' attention patterns of chosen heads (see pair_attn.h): the cache holds one layer's
 * (NH, T, T) pattern per layer asked for; each head's (T, T) slice is copied out after each run. */
#include "pair_attn.h"

#include <stdlib.h>
#include <string.h>

#include "act_cache.h"
#include "encoder.h"

mch_status mch_pair_attn(const mch_model *m, const int32_t *ids_baseline,
                         const int32_t *ids_perturbed, const int32_t *types, int T,
                         const int *heads, int n_heads, float *pat_baseline, float *pat_perturbed,
                         mch_err *err)
{
    mch_status rc = mch_model_need_encoder(m, "attention patterns", err);
    if (rc) return rc;
    for (int k = 0; k < n_heads; k++)
        if (heads[2 * k] < 0 || heads[2 * k] >= m->cfg.L || heads[2 * k + 1] < 0 ||
            heads[2 * k + 1] >= m->cfg.NH)
            return mch_fail(err, MCH_ERR_ARG, "head %d.%d is outside %s (%d layers, %d heads)",
                            heads[2 * k], heads[2 * k + 1], m->dir, m->cfg.L, m->cfg.NH);
    mch_act_cache *ac = mch_act_cache_create(m);
    mch_hooks *hk = mch_hooks_create(m->cfg.L);
    mch_workspace *ws = T > 0 ? mch_workspace_create(m, T, T) : NULL;
    if (!ac || !hk || !ws) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory for a forward");
    for (int k = 0; !rc && k < n_heads; k++) {
        char name[64];
        rc = mch_act_cache_add(ac, mch_hook_name(MCH_SITE_PATTERN, heads[2 * k], name, sizeof name),
                               err);
    }
    if (!rc) rc = mch_act_cache_attach(ac, hk, err);
    size_t TT = (size_t)T * T;
    for (int run = 0; !rc && run < 2; run++) {
        mch_batch b = {1, T, run ? ids_perturbed : ids_baseline, m->wtt ? types : NULL, &T};
        mch_forward_opts o = {hk, 0, NULL, MCH_POOL_CLS};
        mch_forward_out out = {NULL, NULL, NULL};
        rc = mch_forward(m, ws, &b, &o, &out, err);
        for (int k = 0; !rc && k < n_heads; k++) {
            const float *p = mch_act_cache_get(ac, MCH_SITE_PATTERN, heads[2 * k], 0, NULL);
            float *dst = (run ? pat_perturbed : pat_baseline) + (size_t)k * TT;
            if (!p)
                rc = mch_fail(err, MCH_ERR_ARG, "no pattern cached at layer %d", heads[2 * k]);
            else
                memcpy(dst, p + (size_t)heads[2 * k + 1] * TT, TT * sizeof *dst);
        }
    }
    mch_workspace_free(ws);
    mch_hooks_free(hk);
    mch_act_cache_free(ac);
    return rc;
}
