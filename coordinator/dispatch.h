/* Handing out work units and journaling their results: to the worker ranks over MPI (the only
 * file of coordinator/ that calls MPI; the protocol is in msg.h), or, in a one-process run, to
 * a local runner whose callbacks the CLI fills with the worker's functions, so the coordinator
 * does not depend on the worker. Every result is checked against its pair and the spec before
 * it enters the journal. */
#ifndef MCH_DISPATCH_H
#define MCH_DISPATCH_H

#include <signal.h>

#include "journal.h"
#include "msg.h"
#include "progress.h"
#include "units.h"

/* Runs units in this process (rank 0 of a one-rank run). */
typedef struct {
    void *ctx;
    /* Loads what running units needs; spec outlives the runner. */
    mch_status (*open)(void *ctx, const mch_job_spec *spec, const char *out_dir, int attempt,
                       mch_err *err);
    /* As mch_worker_run_unit: res is always freed by the caller (mch_unit_result_deinit). */
    mch_status (*run_unit)(void *ctx, const mch_work_unit *u, mch_unit_result *res, mch_err *err);
    void (*close)(void *ctx); /* also after a failed open */
} mch_local_runner;

/* The coordinator's bookkeeping while units are out. */
typedef struct {
    const mch_job_spec *spec;
    mch_journal *journal;
    mch_unit_maker *units;
    const volatile sig_atomic_t *stop; /* non-zero: hand out no more units */
    mch_progress prog;
    uint64_t done; /* pairs journaled by this attempt */
    uint64_t n_units;
    double busy_s;   /* seconds the workers reported */
    double synced_s; /* when the journal was last fsynced */
    long errors_reported;
    /* Kept between the calls of a run of two passes (--select): */
    int runner_open; /* the local runner is open */
    int alive;       /* worker ranks not yet stopped (-1: the first MPI call sets it) */
    int *parked;     /* (n_parked) ranks waiting for a unit of the next pass */
    int n_parked;
    /* The watchdog: a worker holding a unit that sends nothing for this long is taken for lost
     * (0: MCH_WORKER_TIMEOUT_S). */
    int worker_timeout_s;
    char *const *hosts; /* (size) each rank's host, for messages; may be NULL */
} mch_dispatch;

#define MCH_WORKER_TIMEOUT_S 600

/* MPI for the whole process (any rank): init and rank/size; finalize. After the watchdog of
 * mch_dispatch_mpi found silent workers, mch_mpi_end aborts the job with status instead (the
 * silent ranks would hold MPI_Finalize forever), so it does not return then. */
void mch_mpi_start(int *rank, int *size);
void mch_mpi_end(int status);

/* Sends the job to the worker ranks (header ints, packed spec, output directory) and gathers
 * every rank's host name into *hosts (size strings, malloc'd; free with mch_msg_strv_free).
 * With size 1 only this host's name. */
mch_status mch_dispatch_start(int size, const uint8_t *spec, size_t spec_len, const char *out_dir,
                              int attempt, int threads, int scratch_mb, char ***hosts,
                              mch_err *err);
/* Before mch_dispatch_start: tells waiting worker ranks that the job will not start. */
void mch_dispatch_cancel(int size);

/* Zeroes d for a run (alive -1); the caller then sets spec, journal, units and stop. */
void mch_dispatch_init(mch_dispatch *d);

/* Runs every unit of d->units through the local runner (opened on the first call). With
 * keep_open (a first pass) the runner stays open for a next call with other units and another
 * journal; otherwise, after an error or a stop it is closed. */
mch_status mch_dispatch_local(mch_dispatch *d, const mch_local_runner *r, const char *out_dir,
                              int attempt, int keep_open, mch_err *err);
/* Rank 0 with size - 1 workers: a unit to each worker that asks, until none is left or a stop
 * was asked for; then every worker is stopped, or with keep_workers (a first pass, no stop, no
 * error) left waiting for the units of the next call. Polls with MPI_Iprobe and sleeps in
 * between (50 us doubling to 2 ms), so the coordinator does not take a core from the workers.
 * A worker that holds a unit and sends nothing for d->worker_timeout_s (a dead node, a broken
 * link) ends the loop at once with MCH_ERR_MPI naming every silent rank and its host; the
 * journal is synced first, and mch_mpi_end then aborts the job. */
mch_status mch_dispatch_mpi(mch_dispatch *d, int size, int keep_workers, mch_err *err);

/* Whatever a run ends with (also after an error between passes): stops the workers still
 * waiting, closes the local runner (r may be NULL when none was given), frees d's lists. */
void mch_dispatch_end(mch_dispatch *d, const mch_local_runner *r);

#endif
