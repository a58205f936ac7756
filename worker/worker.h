/* One rank's work: load the model once, patch the pairs of each work unit, and (with --cache)
 * append the requested activations of both runs to this rank's cache file. No MPI here: the MPI
 * loops call these functions, and so does the embedded one-process run. */
#ifndef MCH_WORKER_H
#define MCH_WORKER_H

#include "mch_err.h"
#include "mechir.pb-c.h"

typedef struct mch_worker mch_worker;

/* attempt distinguishes cache files of a resumed run from those of earlier attempts. */
mch_status mch_worker_create(mch_worker **out, const Mechir__JobSpec *spec, const char *out_dir,
                             int rank, int attempt, int threads, int scratch_mb, mch_err *err);
void mch_worker_free(mch_worker *w); /* accepts NULL */

/* Patches every pair of the unit into res (res->results allocated here; release with
 * mch_worker_release). A pair that fails gets its error message in its result; the unit goes
 * on. Errors returned are the worker's own (out of memory, cache I/O). */
mch_status mch_worker_run_unit(mch_worker *w, const Mechir__WorkUnit *u, Mechir__UnitResult *res,
                               mch_err *err);
void mch_worker_release(Mechir__UnitResult *res);

/* Parses the spec's sweep names into MCH_SWEEP_* bits; 0 for the no-op sweep "none". */
unsigned mch_worker_sweeps(const Mechir__JobSpec *spec);

#endif
