/* Dispatch of work units and journaling of results (see dispatch.h). The journal is fsynced at
 * most every quarter second, after the worker already has its next unit: a killed process loses
 * nothing that was appended (the page cache has it), a power loss at most the last quarter
 * second, which a resume recomputes. */
#include "dispatch.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

void mch_mpi_start(int *rank, int *size)
{
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_SINGLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
}

/* Set by the watchdog: some worker is gone, and MPI_Finalize would wait for it forever. */
static int workers_lost;

void mch_mpi_end(int status)
{
    if (workers_lost) MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
    MPI_Finalize();
}

/* ---- journaling results ------------------------------------------------------------------- */

/* Checks the results of unit u against its pairs and the spec, and journals each with the
 * coordinator's own copy of the pair's input (moved out of u), not the worker's echo. */
static mch_status take_results(mch_dispatch *d, mch_work_unit *u, mch_unit_result *res,
                               mch_err *err)
{
    const mch_job_spec *spec = d->spec;
    if (res->n_results != u->n_pairs)
        return mch_fail(err, MCH_ERR_PROTO, "rank %u returned %zu results for a unit of %zu pairs",
                        res->rank, res->n_results, u->n_pairs);
    for (size_t i = 0; i < u->n_pairs; i++) {
        mch_pair_result *r = &res->results[i];
        char why[160];
        if (r->pair.index != u->pairs[i].index)
            return mch_fail(err, MCH_ERR_PROTO, "rank %u answered for pair #%llu instead of #%llu",
                            res->rank, (unsigned long long)r->pair.index,
                            (unsigned long long)u->pairs[i].index);
        mch_pair_input_deinit(&r->pair);
        r->pair = u->pairs[i];
        memset(&u->pairs[i], 0, sizeof u->pairs[i]);
        /* The checks a journal record passes when it is read back (journal.h). */
        if (mch_journal_check_result(r, spec, u->mode, why, sizeof why))
            return mch_fail(err, MCH_ERR_PROTO,
                            "rank %u sent a malformed result for pair %016llx: %s", res->rank,
                            (unsigned long long)r->pair.pair_id, why);
        if (r->error && d->errors_reported++ < 5)
            mch_log_warn("%smechir run: rank %u, pair %016llx (%s, %s): %s",
                         d->prog.tty ? "\r\033[K" : "", res->rank,
                         (unsigned long long)r->pair.pair_id, r->pair.qid, r->pair.docno, r->error);
        uint8_t *buf = NULL;
        size_t n;
        mch_status rc = mch_pair_result_pack(r, &buf, &n, err);
        if (!rc) rc = mch_journal_append(d->journal, r->pair.index, buf, n, err);
        free(buf);
        if (rc) return rc;
    }
    d->done += u->n_pairs;
    d->n_units++;
    d->busy_s += res->seconds;
    mch_units_observe(d->units, res->seconds, u->n_pairs);
    return MCH_OK;
}

/* fsyncs the journal at most every quarter second (and when forced). */
static mch_status journal_sync_maybe(mch_dispatch *d, int force, mch_err *err)
{
    double now = mch_now_s();
    if (!force && now - d->synced_s < 0.25) return MCH_OK;
    d->synced_s = now;
    return mch_journal_sync(d->journal, err);
}

static void progress(mch_dispatch *d, int ranks_working)
{
    char extra[64];
    snprintf(extra, sizeof extra, "%d rank%s working", ranks_working,
             ranks_working == 1 ? "" : "s");
    mch_progress_update(&d->prog, (long)d->done, extra);
}

void mch_dispatch_init(mch_dispatch *d)
{
    memset(d, 0, sizeof *d);
    d->alive = -1;
}

mch_status mch_dispatch_local(mch_dispatch *d, const mch_local_runner *r, const char *out_dir,
                              int attempt, int keep_open, mch_err *err)
{
    mch_status rc = d->runner_open ? MCH_OK : r->open(r->ctx, d->spec, out_dir, attempt, err);
    d->runner_open = 1; /* closed below, also after a failed open */
    while (!rc && !*d->stop) {
        mch_work_unit *u;
        if ((rc = mch_units_next(d->units, &u, err)) || !u) break;
        mch_unit_result res = {0};
        rc = r->run_unit(r->ctx, u, &res, err);
        if (!rc) rc = take_results(d, u, &res, err);
        if (!rc) rc = journal_sync_maybe(d, 0, err);
        mch_unit_result_deinit(&res);
        mch_unit_free(u);
        progress(d, 1);
    }
    if (rc || !keep_open || *d->stop) {
        r->close(r->ctx);
        d->runner_open = 0;
    }
    if (!rc) rc = journal_sync_maybe(d, 1, err);
    return rc;
}

/* ---- the job's start ---------------------------------------------------------------------- */

void mch_dispatch_cancel(int size)
{
    int hdr[MCH_JOB_HDR_INTS] = {-1};
    if (size > 1) MPI_Bcast(hdr, MCH_JOB_HDR_INTS, MPI_INT, 0, MPI_COMM_WORLD);
}

mch_status mch_dispatch_start(int size, const uint8_t *spec, size_t spec_len, const char *out_dir,
                              int attempt, int threads, int scratch_mb, char ***hosts, mch_err *err)
{
    char *all = calloc((size_t)size, MPI_MAX_PROCESSOR_NAME);
    char **h = calloc((size_t)size, sizeof *h);
    int ok = all && h;
    /* Once the workers wait in a collective, out of memory can only end the whole job. */
    if (!ok && size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    if (size > 1) {
        int hdr[MCH_JOB_HDR_INTS];
        hdr[MCH_JOB_HDR_SPEC_BYTES] = (int)spec_len;
        hdr[MCH_JOB_HDR_OUT_BYTES] = (int)strlen(out_dir);
        hdr[MCH_JOB_HDR_ATTEMPT] = attempt;
        hdr[MCH_JOB_HDR_THREADS] = threads;
        hdr[MCH_JOB_HDR_SCRATCH_MB] = scratch_mb;
        MPI_Bcast(hdr, MCH_JOB_HDR_INTS, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast((void *)spec, hdr[MCH_JOB_HDR_SPEC_BYTES], MPI_BYTE, 0, MPI_COMM_WORLD);
        MPI_Bcast((void *)out_dir, hdr[MCH_JOB_HDR_OUT_BYTES], MPI_BYTE, 0, MPI_COMM_WORLD);
    }
    int hl;
    if (ok) MPI_Get_processor_name(all, &hl);
    if (size > 1)
        MPI_Gather(MPI_IN_PLACE, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME,
                   MPI_CHAR, 0, MPI_COMM_WORLD);
    for (int r = 0; ok && r < size; r++)
        ok =
            (h[r] = strndup(all + (size_t)r * MPI_MAX_PROCESSOR_NAME, MPI_MAX_PROCESSOR_NAME)) != 0;
    if (!ok && size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    free(all);
    if (!ok) {
        mch_msg_strv_free(h, h ? (size_t)size : 0);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    *hosts = h;
    return MCH_OK;
}

/* ---- the MPI loop ------------------------------------------------------------------------- */

/* The loop's state: the unit each worker holds, the receive buffer, the first failure. */
typedef struct {
    mch_dispatch *d;
    mch_work_unit **inflight; /* (size) by rank */
    double *heard_s;          /* (size) by rank: its last message, or the unit it was sent */
    uint8_t *buf;
    size_t cap;
    int working;
    mch_status first_rc;
    char fatal[sizeof(((mch_err *)0)->msg) + 64];
} mpi_loop;

/* Records the first failure; the loop then hands out no more units. */
static void fail_loop(mpi_loop *l, mch_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_loop(mpi_loop *l, mch_status rc, const char *fmt, ...)
{
    if (!l->first_rc) l->first_rc = rc;
    if (l->fatal[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->fatal, sizeof l->fatal, fmt, ap);
    va_end(ap);
}

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Receives the next message; *count is 0 for a refused size. @return the tag. */
static int receive(mpi_loop *l, const MPI_Status *st, int *count)
{
    MPI_Get_count(st, MPI_BYTE, count);
    if (*count < 0 || (size_t)*count > MCH_MSG_MAX_BYTES) {
        fail_loop(l, MCH_ERR_PROTO, "rank %d sent a message of %d bytes", st->MPI_SOURCE, *count);
        *count = 0;
    }
    if ((size_t)*count > l->cap) {
        uint8_t *nb = realloc(l->buf, (size_t)*count);
        if (!nb) {
            fail_loop(l, MCH_ERR_NOMEM, "out of memory receiving %d bytes", *count);
            *count = 0;
        } else {
            l->buf = nb;
            l->cap = (size_t)*count;
        }
    }
    MPI_Recv(l->buf, *count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    return st->MPI_TAG;
}

/* Frees the unit worker src held. */
static void drop_unit(mpi_loop *l, int src)
{
    if (!l->inflight[src]) return;
    mch_unit_free(l->inflight[src]);
    l->inflight[src] = NULL;
    l->working--;
}

/* A worker's result: unpacked, matched with the unit it holds, journaled. */
static void on_result(mpi_loop *l, int src, int count)
{
    mch_work_unit *u = l->inflight[src];
    if (!count || !u) {
        fail_loop(l, MCH_ERR_PROTO, "rank %d sent an empty or unexpected result", src);
        return;
    }
    mch_unit_result res;
    mch_err e = {0};
    mch_status rc = mch_unit_result_unpack(&res, l->buf, (size_t)count, &e);
    if (rc)
        fail_loop(l, rc, "rank %d sent %s", src, e.msg);
    else if (res.unit_id != u->unit_id)
        fail_loop(l, MCH_ERR_PROTO, "rank %d answered unit %llu, expected %llu", src,
                  (unsigned long long)res.unit_id, (unsigned long long)u->unit_id);
    else if ((rc = take_results(l->d, u, &res, &e)))
        fail_loop(l, rc, "%s", e.msg);
    mch_unit_result_deinit(&res);
    drop_unit(l, src);
}

/* A worker's failure stops the job with its rank, host and message. */
static void on_error(mpi_loop *l, int src, int count)
{
    mch_error_msg e = {0};
    mch_status rc = count ? mch_error_msg_unpack(&e, l->buf, (size_t)count, NULL) : MCH_ERR_PROTO;
    fail_loop(l, MCH_ERR_MPI, "rank %d: %s", src, !rc && e.message ? e.message : "failed");
    mch_error_msg_deinit(&e);
    drop_unit(l, src);
}

/* The answer to a worker: its next unit (1), stop (0), or none yet (2: parked until the next
 * pass, when keep is set and nothing went wrong). */
static int reply(mpi_loop *l, int src, int keep)
{
    mch_work_unit *u = NULL;
    mch_err e = {0};
    mch_status rc = MCH_OK;
    if (!l->fatal[0] && !*l->d->stop && (rc = mch_units_next(l->d->units, &u, &e)))
        fail_loop(l, rc, "%s", e.msg);
    uint8_t *out = NULL;
    size_t n = 0;
    if (u && !(rc = mch_work_unit_pack(u, &out, &n, &e)) && n > MCH_MSG_MAX_BYTES)
        rc = mch_fail(&e, MCH_ERR_SHAPE, "unit %llu takes %zu bytes, more than a message may (%zu)",
                      (unsigned long long)u->unit_id, n, MCH_MSG_MAX_BYTES);
    if (u && rc) {
        mch_unit_free(u);
        free(out);
        u = NULL;
        fail_loop(l, rc, "%s", e.msg);
    }
    int parked = 0;
    if (u) {
        MPI_Send(out, (int)n, MPI_BYTE, src, MCH_TAG_UNIT, MPI_COMM_WORLD);
        free(out);
        l->inflight[src] = u;
        l->heard_s[src] = mch_now_s();
        l->working++;
    } else if (keep && !l->fatal[0] && !*l->d->stop) {
        l->d->parked[l->d->n_parked++] = src;
        parked = 1;
    } else {
        MPI_Send(NULL, 0, MPI_BYTE, src, MCH_TAG_STOP, MPI_COMM_WORLD);
    }
    /* The journal's fsync, after the worker already has its next unit. */
    if ((rc = journal_sync_maybe(l->d, 0, &e))) fail_loop(l, rc, "%s", e.msg);
    return u ? 1 : parked ? 2 : 0;
}

/* Stops every parked worker. */
static void release_parked(mch_dispatch *d)
{
    for (int i = 0; i < d->n_parked; i++)
        MPI_Send(NULL, 0, MPI_BYTE, d->parked[i], MCH_TAG_STOP, MPI_COMM_WORLD);
    d->alive -= d->n_parked;
    d->n_parked = 0;
}

/* The watchdog: 1 when a worker holding a unit has sent nothing for the timeout. The failure
 * names every such rank and its host; the loop must end, since they may never answer. */
static int silent_workers(mpi_loop *l, int size, double now)
{
    const mch_dispatch *d = l->d;
    int limit_s = d->worker_timeout_s > 0 ? d->worker_timeout_s : MCH_WORKER_TIMEOUT_S;
    char list[200];
    size_t used = 0;
    int n = 0;
    list[0] = 0;
    for (int r = 1; r < size; r++) {
        if (!l->inflight[r] || now - l->heard_s[r] < limit_s) continue;
        const char *host = d->hosts && d->hosts[r] ? d->hosts[r] : "?";
        if (used < sizeof list) {
            int k = snprintf(list + used, sizeof list - used, "%s%d on %s", n ? ", " : "", r, host);
            used += k > 0 ? (size_t)k : 0;
        }
        n++;
    }
    if (!n) return 0;
    char what[sizeof l->fatal];
    snprintf(what, sizeof what,
             "no message for %d s from rank%s %s while %s a unit (--worker-timeout); %s node or "
             "the network to it is down; the results received are journaled (--resume)",
             limit_s, n == 1 ? "" : "s", list, n == 1 ? "it held" : "they held",
             n == 1 ? "its" : "their");
    if (l->fatal[0])
        mch_log_error("mechir run: %s", what); /* the first failure is reported by the caller */
    else
        fail_loop(l, MCH_ERR_MPI, "%s", what);
    return 1;
}

void mch_dispatch_end(mch_dispatch *d, const mch_local_runner *r)
{
    if (d->n_parked) release_parked(d);
    if (d->runner_open && r) r->close(r->ctx);
    d->runner_open = 0;
    free(d->parked);
    d->parked = NULL;
}

mch_status mch_dispatch_mpi(mch_dispatch *d, int size, int keep_workers, mch_err *err)
{
    mpi_loop l = {.d = d,
                  .inflight = calloc((size_t)size, sizeof(mch_work_unit *)),
                  .heard_s = calloc((size_t)size, sizeof(double))};
    if (!d->parked) d->parked = calloc((size_t)size, sizeof *d->parked);
    if (!l.inflight || !l.heard_s || !d->parked) {
        free(l.inflight);
        free(l.heard_s);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    if (d->alive < 0) d->alive = size - 1;
    /* The workers parked by the previous pass asked for a unit: they get this pass's. */
    int waiting = d->n_parked;
    d->n_parked = 0;
    for (int i = 0; i < waiting; i++) {
        int src = d->parked[i];
        if (!reply(&l, src, keep_workers)) d->alive--;
    }
    long idle_us = 50;
    double watched_s = mch_now_s(); /* the watchdog's last look (once a second) */
    while (d->alive > d->n_parked) {
        double now = mch_now_s();
        if (l.working && now - watched_s >= 1.0) {
            watched_s = now;
            if (silent_workers(&l, size, now)) {
                /* Parked ranks are not told to stop either: mch_mpi_end aborts them all. */
                workers_lost = 1;
                d->n_parked = 0;
                break;
            }
        }
        int flag = 0, count = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            progress(d, l.working);
            sleep_us(idle_us);
            idle_us = idle_us < 2000 ? idle_us * 2 : 2000;
            continue;
        }
        idle_us = 50;
        int tag = receive(&l, &st, &count), src = st.MPI_SOURCE;
        l.heard_s[src] = mch_now_s();
        if (tag == MCH_TAG_RESULT)
            on_result(&l, src, count);
        else if (tag == MCH_TAG_ERROR)
            on_error(&l, src, count);
        if (!reply(&l, src, keep_workers)) d->alive--;
    }
    if (!workers_lost && (!keep_workers || l.fatal[0] || *d->stop)) release_parked(d);
    mch_err e = {0};
    mch_status rc = journal_sync_maybe(d, 1, &e);
    if (rc) fail_loop(&l, rc, "%s", e.msg);
    for (int r = 0; r < size; r++) mch_unit_free(l.inflight[r]);
    free(l.inflight);
    free(l.heard_s);
    free(l.buf);
    if (l.fatal[0]) return mch_fail(err, l.first_rc ? l.first_rc : MCH_ERR_MPI, "%s", l.fatal);
    return MCH_OK;
}
