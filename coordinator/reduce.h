/* The outputs of a run, all from the journal: it is read in pair order (the pair's index in the
 * input, not arrival order) into pairs.jsonl[.zst] and the circuit map, so the outputs are the same
 * for any number of ranks, arrival order and interruptions. circuit.cmap and circuit.json from the
 * map, run.json, and the top heads. */
#ifndef MCH_REDUCE_H
#define MCH_REDUCE_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "msg.h"
#include "pairs_writer.h"

/* Reads OUT/journal.bin (the expected pairs, each index once; a pair redone after a crash
 * counts once) into OUT/pairs.jsonl.zst or OUT/pairs.jsonl (pairs_format; the other one is
 * removed, see pairs_writer.h) and *map (zeroed; the spec as a map records it: no inputs or
 * cache options; sites: site, with blas as its provenance when not NULL). The expected pairs are
 * indices (n_expected, sorted ascending: the pairs a selection chose), or with indices NULL every
 * index 0..n_expected-1. */
mch_status mch_reduce(const char *out, const mch_job_spec *spec, const uint64_t *indices,
                      uint64_t n_expected, const char *site, const char *blas,
                      mch_pairs_format pairs_format, mch_cmap *map, mch_err *err);

/* Writes OUT/circuit.cmap, then validates what was written and prints it as OUT/circuit.json. */
mch_status mch_reduce_write_maps(const char *out, const mch_cmap *map, mch_err *err);

/* What run.json records besides the map's counts. */
typedef struct {
    int ranks;
    char *const *hosts; /* (ranks) */
    uint64_t done;      /* pairs of this attempt */
    uint64_t units;
    double busy_s, seconds;
    time_t started;
    int resumed;
    const char *model_sha256, *inputs;
    const char *job;                   /* the options as given, one line of JSON */
    const char *selection;             /* --select: a JSON object (see select.h), or NULL */
    const mch_input_file *input_files; /* (n_input_files) their fingerprints, as in the spec */
    size_t n_input_files;
} mch_run_record;
mch_status mch_reduce_write_run_json(const char *out, const mch_cmap *map, const mch_run_record *r,
                                     mch_err *err);

/* Prints the k heads with the largest ratio of means, with their intervals and mean of ratios
 * (nothing without a heads map). */
mch_status mch_print_top_heads(const mch_cmap *map, int k, FILE *f, mch_err *err);

#endif
