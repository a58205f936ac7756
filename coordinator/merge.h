/* Merging circuit maps computed over disjoint pair sets (shards, sites) into the map one run over
 * all pairs would give: counts add, means and M2 combine with Chan's formula (mch_stats_fold).
 * The inputs are put in a canonical order (by their smallest pair id) before folding, so the
 * result does not depend on the order of the arguments. */
#ifndef MCH_MERGE_H
#define MCH_MERGE_H

#include "msg.h"

typedef struct {
    mch_cmap *m; /* validated (mch_cmap_unpack / mch_cmap_load) */
    const char *name;
} mch_cmap_input;

/* Merges n >= 1 maps into out (zeroed; free with mch_cmap_deinit). Refuses maps whose specs
 * differ in a field the numbers depend on (naming the field and both values) and maps that
 * share pairs (naming how many and one); messages name the inputs. Reorders in. */
mch_status mch_cmap_merge(mch_cmap_input *in, int n, mch_cmap *out, mch_err *err);

/* `mechir merge` as a library call: loads the maps, merges them, validates the packed result
 * and writes it atomically to out_path. */
typedef struct {
    const char *const *inputs;
    int n_inputs;
    const char *out_path;
} mch_merge_opts;
typedef struct {
    uint64_t pairs_total, pairs_used;
    size_t n_sites;
} mch_merge_summary;
mch_status mch_merge_files(const mch_merge_opts *o, mch_merge_summary *s, mch_err *err);

#endif
