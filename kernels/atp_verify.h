/* Exact verification of attribution patching's estimates (docs/ATP.md): the components of a
 * pair whose estimates matter most, and the rows AtP is known to underestimate, patched exactly
 * through the optimised engine (mch_patch_subset). `mechir patch --verify-top` and a run's
 * worker share it. */
#ifndef MCH_ATP_VERIFY_H
#define MCH_ATP_VERIFY_H

#include "atp.h"

typedef struct {
    mch_component *comp;     /* (n): the n_top of largest |estimate - baseline| (mch_atp_top),
                              * then, with the blocks sweep, the resid_pre rows where the ids
                              * differ (mch_atp_diff_rows); a component may be in both */
    float *estimate, *exact; /* (n) patched scores: estimated, exact */
    int n, n_top;
} mch_atp_verified;

/* Verifies the k largest estimates of est (a pair's mch_atp_run result over sweeps, not
 * skipped) and the pair's diff rows: p must patch heads and blocks (MCH_SWEEP_HEADS |
 * MCH_SWEEP_BLOCKS at creation) for pairs of the pair's length. With a, the context est came
 * from (its last run, of this pair alone), a cross-encoder's two full runs are taken from it
 * (mch_patch_subset_given: the same numbers, two forwards fewer); without it, or for a
 * bi-encoder, mch_patch_subset recomputes them. out is filled with malloc'd arrays (free with
 * mch_atp_verified_free), also when k is larger than the components there are (then all of
 * them). Fails as mch_patch_subset, or when out of memory. */
mch_status mch_atp_verify(mch_patcher *p, const mch_model *m, const mch_atp *a,
                          const mch_patch_pair *pair, const mch_patch_result *est, unsigned sweeps,
                          int k, mch_atp_verified *out, mch_err *err);
void mch_atp_verified_free(mch_atp_verified *v); /* accepts NULL and zeroed */

/* Exact patching of the components chosen by heads_mask and blocks_mask (as mch_patch_subset)
 * of the pair a's last run was of (est: that run's result, for both scores), its two full runs
 * taken from a: a cross-encoder only (mch_patch_subset_given). */
mch_status mch_atp_patch_subset(mch_patcher *p, const mch_atp *a, const mch_patch_pair *pair,
                                const mch_patch_result *est, const unsigned char *heads_mask,
                                const unsigned char *blocks_mask, mch_patch_result *res,
                                mch_err *err);

#endif
