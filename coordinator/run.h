/* `mechir run` on rank 0, as a library call: plan the job (plan.h), open or resume its journal,
 * hand out work units (units.h) to the workers or to a local runner (dispatch.h), and reduce the
 * journal into the outputs (reduce.h). Prints progress and messages on stderr (log.h) and the top
 * heads on o->summary; never exits. */
#ifndef MCH_RUN_H
#define MCH_RUN_H

#include <signal.h>
#include <stdio.h>

#include "dispatch.h"
#include "pairs_source.h"
#include "pairs_writer.h"

typedef struct {
    const char *model, *out;   /* required */
    const char *site;          /* provenance in the map (NULL: "") */
    const char *blas;          /* provenance: mch_blas_describe of this build (NULL: none) */
    const char *sweep, *heads; /* NULL: "heads"; L.H list for head-pos */
    const char *method;        /* NULL or "exact", "atp", "atp-qk" (docs/ATP.md) */
    int verify_top;            /* atp: exact patching of each pair's K largest estimates */
    const char *cache, *cache_dtype, *pooling;
    double min_delta;                           /* 0: 1e-3 */
    int bootstrap;                              /* replicates B (-1: 200; 0: none) */
    double ci;                                  /* interval level (0: 0.95) */
    const char *direction;                      /* any (NULL), with, against */
    const char *select;                         /* NULL: every pair; "top-delta" */
    uint64_t select_k;                          /* top-delta: K */
    int per_grade;                              /* top-delta: K per relevance grade */
    int resume, threads, scratch_mb, unit_size; /* 0: defaults (1, 256 MB, adaptive) */
    int worker_timeout_s;                       /* 0: MCH_WORKER_TIMEOUT_S (dispatch.h) */
    mch_pairs_format pairs_format;              /* OUT/pairs.jsonl.zst (default) or .jsonl */
    mch_source_opts src;
    const char *job_json;              /* the options as given: OUT/job.json */
    const char *job_compact;           /* the same on one line, for run.json */
    const volatile sig_atomic_t *stop; /* a signal number once a stop was asked for */
    FILE *summary;                     /* the top heads at the end (stdout), or NULL */
} mch_run_opts;

/* Runs the coordinator of a job over size ranks (size 1: units run through local). On success
 * *interrupted is 0 (outputs written) or the signal that stopped the run after the units in
 * flight (journal flushed; continue with --resume). Errors name the file, rank or field. */
mch_status mch_run_coordinate(const mch_run_opts *o, int size, const mch_local_runner *local,
                              int *interrupted, mch_err *err);

#endif
