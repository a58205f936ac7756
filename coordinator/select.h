/* --select top-delta K [--per-grade]: which pairs a run patches, chosen from the scores of its
 * first pass (OUT/scores.bin, a journal of score-only results; see journal.h).
 *
 * Δ = score_perturbed - score_baseline of each pair; the K pairs with the largest Δ, signed
 * (the largest rise of the score, i.e. the pairs most in favour of an axiom that expects the
 * score to rise: tfc1, tdc, inject), are selected; with per_grade K per relevance grade, and
 * the pairs without a grade (relevance unknown or negative) form a group of their own. Equal Δ
 * are ordered by pair id, then by index, so the selection depends only on the scores: the same
 * for any number of ranks, arrival order and resumes. A pair whose scoring failed has no Δ and
 * cannot be selected (counted as failed). */
#ifndef MCH_SELECT_H
#define MCH_SELECT_H

#include <stdint.h>

#include "mch_err.h"
#include "msg.h"

typedef struct {
    int32_t grade;     /* the relevance grade; -1: no grade (per grade) or every pair */
    uint64_t scored;   /* pairs of the group with a score */
    uint64_t selected; /* min(K, scored) */
    double threshold;  /* Δ of the last pair selected (the smallest); 0 when none */
} mch_select_group;

typedef struct {
    uint64_t k;
    int per_grade;
    uint64_t pairs_scored; /* every pair of the input, failed ones included */
    uint64_t pairs_failed; /* scoring failed: not selectable */
    uint64_t *indices;     /* (n) the selected pairs' indices, ascending */
    uint64_t *pair_ids;    /* (n) their pair ids, in the same order */
    double *deltas;        /* (n) their Δ */
    size_t n;
    mch_select_group *groups; /* (n_groups) by grade ascending, the group without a grade last */
    size_t n_groups;
} mch_selection;

/* Reads the scores journal at path, which must hold each of the pairs 0..n_pairs-1 (a pair
 * scored twice after a crash counts once; every record checked as a score unit's result of spec,
 * see journal.h), and selects as above into *sel (zeroed here; free
 * with mch_selection_deinit, also after an error). Errors name the file and the pair. */
mch_status mch_select_top_delta(const char *path, const mch_job_spec *spec, uint64_t n_pairs,
                                uint64_t k, int per_grade, mch_selection *sel, mch_err *err);
void mch_selection_deinit(mch_selection *sel); /* accepts NULL and zeroed */

/* The selection as one line of JSON (malloc'd; NULL when out of memory): its counts, K, per
 * grade and the groups with their thresholds; with lists also the selected pairs' ids, indices
 * and Δ. */
char *mch_selection_json(const mch_selection *sel, int lists);

/* Writes OUT/selection.json atomically (mch_selection_json with the lists). */
mch_status mch_selection_write(const char *out, const mch_selection *sel, mch_err *err);

#endif
