/* One rank's work: load the model once, patch the pairs of each work unit, and (with --cache)
 * append the requested activations of both runs to this rank's cache file. No MPI here: the
 * rank loop (rank.c) calls these functions, and so does the one-process run through the
 * coordinator's local-runner callbacks. */
#ifndef MCH_WORKER_H
#define MCH_WORKER_H

#include "msg.h"

typedef struct mch_worker mch_worker;

/* spec must outlive the worker. attempt distinguishes cache files of a resumed run from those
 * of earlier attempts; threads: BLAS threads (0: leave as is); scratch_mb 0: 256. */
mch_status mch_worker_create(mch_worker **out, const mch_job_spec *spec, const char *out_dir,
                             int rank, int attempt, int threads, int scratch_mb, mch_err *err);
void mch_worker_free(mch_worker *w); /* accepts NULL */

/* Patches every pair of the unit into res (zeroed here; free with mch_unit_result_deinit, also
 * after an error). Each result's pair holds only the index and pair id. A pair that fails gets
 * its error message in its result; the unit goes on. Errors returned are the worker's own (out
 * of memory, cache I/O). A unit of mode MCH_UNIT_SCORE gets both scores of each pair only (no
 * sweep, no skip, nothing cached); it needs a spec with a selection (the model is loaded). */
mch_status mch_worker_run_unit(mch_worker *w, const mch_work_unit *u, mch_unit_result *res,
                               mch_err *err);

#endif
