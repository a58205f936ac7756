/* Circuit maps on the coordinator: the reduction of pair results into per-cell Welford
 * statistics (fed in pair order, so the bytes do not depend on ranks or arrival order), the
 * canonical order of a map, reading a .cmap file, and the circuit.json form. The map itself and
 * its validation are the message layer's (msg.h: mch_cmap). */
#ifndef MCH_CMAP_H
#define MCH_CMAP_H

#include <stdint.h>
#include <stdio.h>

#include "msg.h"

typedef struct {
    int kind;      /* 0: relevance grade, 1: rank bucket, 2: direction */
    long long key; /* grade; bucket b for ranks 10b+1 .. 10b+10; 1 with the axiom, 0 against */
    uint64_t pairs;
    mch_est heads, blocks;
} mch_acc_stratum;

/* The reduction so far. */
typedef struct {
    int L, HR, NH, K, R; /* HR: rows of heads (mch_spec_head_rows) */
    uint32_t B;          /* bootstrap replicates */
    uint64_t seed;       /* of the bootstrap weights */
    int axiom;           /* the sign of the score change the perturbation's axiom expects */
    uint64_t total, used, skipped, failed, with, against;
    mch_est heads;   /* (L, NH) */
    mch_est blocks;  /* (3, L, R) */
    mch_est hpz;     /* (K, R) */
    mch_est hpp;     /* (K, R) */
    mch_est qkv;     /* (3, L, NH) */
    mch_est pattern; /* (L, NH) */
    mch_est rmid;    /* (L, R) */
    /* verify_top: the verified components' exact effects and their estimates (over the same
     * pairs), and the per-pair rank correlation of the two (1 cell). */
    mch_est vheads, vheads_est;   /* (L, NH) */
    mch_est vblocks, vblocks_est; /* (3, L, R) */
    mch_stats vrank;
    mch_acc_stratum *strata;
    int n_strata;
    uint64_t *pair_ids; /* in the order added */
    size_t n_ids, cap_ids;
    uint8_t *w; /* (B + 1) bootstrap weights of the pair being added */
} mch_cmap_acc;

/* Sized from the spec: layers, heads, head-pos heads, bootstrap replicates, seed, perturbation. */
mch_status mch_cmap_acc_init(mch_cmap_acc *a, const mch_job_spec *spec, mch_err *err);
void mch_cmap_acc_deinit(mch_cmap_acc *a); /* accepts NULL */

/* Adds one pair's result, checked with mch_pair_result_check (call in pair order). Strata:
 * relevance grade, rank bucket and direction of the score change (the verified maps have none).
 * Verified components: each distinct one once (a head, or a block row whose per-role mean over
 * the pair's distinct verified positions of the role makes the cell), into the exact and the
 * estimated verified maps; the pair's rank correlation when it has 3 or more distinct
 * components (mch_spearman). */
mch_status mch_cmap_acc_add(mch_cmap_acc *a, const mch_pair_result *r, mch_err *err);

/* Moves the statistics into out (zeroed) with a copy of spec, of the sites and of their
 * provenance (provenance[i] describes sites[i]'s BLAS; NULL: none), in canonical order; a is
 * left empty (deinit it still). */
mch_status mch_cmap_acc_finish(mch_cmap_acc *a, const mch_job_spec *spec, const char *const *sites,
                               const char *const *provenance, size_t n_sites, mch_cmap *out,
                               mch_err *err);

/* The canonical order: strata by mch_stratum_cmp, pair ids and sites sorted and unique. */
void mch_cmap_canonicalize(mch_cmap *m);

/* Order of strata names: relevance grades, then rank buckets, each by number. */
int mch_stratum_cmp(const char *a, const char *b);

/* Spearman's rank correlation of x and y (n): Pearson's of their ranks, ties given their mean
 * rank; ranks (2 n) is scratch. @return 0 and *rho, or 1 when n < 2 or either side is all
 * tied (no correlation). */
int mch_spearman(const double *x, const double *y, size_t n, double *ranks, double *rho);

/* Reads and validates an untrusted .cmap file (mch_cmap_unpack). */
mch_status mch_cmap_load(mch_cmap *m, const char *path, mch_err *err);

/* Writes the circuit.json form of a map. */
void mch_cmap_write_json(const mch_cmap *m, FILE *f);

#endif
