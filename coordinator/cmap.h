/* Circuit maps: per-cell Welford statistics (count, mean, M2 in double) of patching effects over
 * pairs, reduced in pair order so the bytes do not depend on ranks or arrival order; their
 * protobuf form (circuit.cmap), validation of untrusted maps, and the circuit.json form. */
#ifndef MCH_CMAP_H
#define MCH_CMAP_H

#include <stdint.h>
#include <stdio.h>

#include "mch_err.h"
#include "mechir.pb-c.h"

#define MCH_CMAP_FORMAT "mechir-circuit/1"
#define MCH_CMAP_MAX_BYTES ((size_t)1 << 30)

typedef struct {
    size_t cells;
    uint64_t *n;
    double *mean, *m2;
} mch_stats;

typedef struct {
    int kind; /* 0: relevance grade, 1: rank bucket */
    int key;  /* grade, or bucket b for ranks 10b+1 .. 10b+10 */
    uint64_t pairs;
    mch_stats heads, blocks;
} mch_stratum;

typedef struct {
    int L, NH, K, R;
    uint64_t total, used, skipped, failed;
    mch_stats heads;  /* (L, NH) */
    mch_stats blocks; /* (3, L, R) */
    mch_stats hpz;    /* (K, R) */
    mch_stats hpp;    /* (K, R) */
    mch_stratum *strata;
    int n_strata;
    uint64_t *pair_ids;
    size_t n_ids, cap_ids;
} mch_cmap_acc;

mch_status mch_cmap_acc_init(mch_cmap_acc *a, int L, int NH, int K, mch_err *err);
void mch_cmap_acc_free(mch_cmap_acc *a);

/* Checks that a result's arrays have the shapes the spec implies (L*NH heads, 3*L*T blocks with
 * T = tokens, K*T head-pos, T roles); returns 0, or 1 with why filled. */
int mch_pair_result_check(const Mechir__PairResult *r, int L, int NH, int K, char *why,
                          size_t why_len);

/* Adds one pair's result (call in pair order). */
mch_status mch_cmap_acc_add(mch_cmap_acc *a, const Mechir__PairResult *r, mch_err *err);

/* Packs the accumulated map with spec and sites into a malloc'd buffer. */
mch_status mch_cmap_pack(const mch_cmap_acc *a, const Mechir__JobSpec *spec, char **sites,
                         size_t n_sites, uint8_t **out, size_t *len, mch_err *err);

/* Reads and validates an untrusted .cmap (sizes, counts and shapes checked before use). Free
 * with mechir__circuit_map__free_unpacked(map, NULL). */
mch_status mch_cmap_load(Mechir__CircuitMap **out, const char *path, mch_err *err);
mch_status mch_cmap_unpack(Mechir__CircuitMap **out, const uint8_t *buf, size_t len,
                           const char *name, mch_err *err);

/* Merges validated maps of disjoint pair sets (coordinator/merge_cmd.c): refuses incompatible
 * specs and shared pairs (messages name the inputs); reorders in canonically, so the packed
 * bytes do not depend on the argument order. */
typedef struct {
    Mechir__CircuitMap *m;
    const char *name;
} mch_cmap_input;
mch_status mch_cmap_merge(mch_cmap_input *in, int n, uint8_t **out, size_t *out_len, mch_err *err);

/* Order of strata names: relevance grades, then rank buckets, each by number. */
int mch_stratum_cmp(const char *a, const char *b);

/* Writes the circuit.json form of a map. */
void mch_cmap_write_json(const Mechir__CircuitMap *m, FILE *f);

#endif
