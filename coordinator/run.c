/* `mechir run` on rank 0 (see run.h): plan, journal, dispatch, reduce.
 *
 * Determinism: a pair's result depends only on the pair, and the reduction reads the journal in
 * pair order, so circuit.cmap is byte-for-byte the same for any number of ranks, any arrival
 * order, and any number of interruptions and resumes. */
#include "run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "log.h"
#include "plan.h"
#include "reduce.h"

/* Everything a run holds; freed by run_free whatever was reached. */
typedef struct {
    const mch_run_opts *o;
    int size;
    mch_model_meta *meta;
    mch_job_spec spec;
    uint8_t *spec_bytes;
    size_t spec_len;
    mch_journal journal;
    mch_plan_resume resume;
    uint64_t total; /* input records */
    mch_unit_maker units;
    mch_dispatch d;
    char **hosts;
    int job_sent; /* the workers have the job (or there are none) */
    mch_cmap map;
} run_state;

static void run_free(run_state *s)
{
    if (!s->job_sent) mch_dispatch_cancel(s->size);
    if (s->journal.path) mch_journal_close(&s->journal);
    mch_units_deinit(&s->units);
    mch_msg_strv_free(s->hosts, s->hosts ? (size_t)s->size : 0);
    mch_cmap_deinit(&s->map);
    free(s->resume.done);
    free(s->spec_bytes);
    mch_job_spec_deinit(&s->spec);
    mch_model_meta_close(s->meta);
}

/* Up to the first unit: the spec, the journal (new or resumed), job.json, the count of the
 * input, the unit maker and the job sent to the workers. */
static mch_status prepare(run_state *s, mch_err *err)
{
    const mch_run_opts *o = s->o;
    if (mch_mkdir_p(o->out) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", o->out, strerror(errno));
    mch_status rc = mch_model_meta_open(&s->meta, o->model, err);
    if (!rc) rc = mch_plan_spec(o, s->meta, &s->spec, err);
    if (!rc) rc = mch_job_spec_pack(&s->spec, &s->spec_bytes, &s->spec_len, err);
    if (!rc)
        rc = mch_plan_journal(o, &s->spec, s->spec_bytes, s->spec_len, s->size, &s->journal,
                              &s->resume, err);
    if (!rc) rc = mch_plan_write_job(o, err);
    if (!rc) rc = mch_plan_count(o, s->meta, s->journal.n_recs, s->size, &s->total, err);
    mch_pair_source *src = NULL;
    if (!rc) rc = mch_pair_source_open(&src, &o->src, s->meta, err);
    if (!rc)
        rc = mch_units_init(&s->units, src, s->resume.done, s->resume.done_cap, o->unit_size, err);
    if (rc) return rc;
    mch_progress_init(&s->d.prog, "pairs", (long)(s->total - s->resume.n_done));
    rc = mch_dispatch_start(s->size, s->spec_bytes, s->spec_len, o->out, s->resume.attempt,
                            o->threads, o->scratch_mb, &s->hosts, err);
    s->job_sent = 1; /* the workers have the job, or mch_dispatch_start aborted them */
    return rc;
}

/* Names the records that could not be perturbed; refuses a run without a single pair (every
 * line bad, every record unperturbable, or no input) before any map is written. */
static mch_status check_usable(run_state *s, mch_err *err)
{
    mch_pair_source *src = s->units.src;
    long not_perturbed = mch_pair_source_perturb_skips(src);
    if (not_perturbed) {
        mch_log_warn("mechir run: %ld record%s could not be perturbed:", not_perturbed,
                     not_perturbed == 1 ? "" : "s");
        if (mch_log_threshold >= MCH_LOG_WARN)
            mch_pair_source_print_unperturbable(src, MCH_BAD_LINES_SHOWN, stderr);
    }
    if (s->units.next_index) return MCH_OK;
    const mch_source_opts *so = &s->o->src;
    const char *input = so->input ? so->input : so->run ? so->run : so->qrels;
    const mch_skip_report *rep = mch_pair_source_report(src);
    long bad = rep->skipped - not_perturbed + rep->table_skipped;
    return mch_fail(err, MCH_ERR_FORMAT,
                    "no usable pair in %s (%ld bad line%s, %ld record%s could not be perturbed)",
                    input, bad, bad == 1 ? "" : "s", not_perturbed, not_perturbed == 1 ? "" : "s");
}

/* After every unit: the outputs from the journal. */
static mch_status finish(run_state *s, double t0, time_t started, mch_err *err)
{
    const mch_run_opts *o = s->o;
    /* Every record was streamed: next_index is the exact number of pairs. */
    mch_status rc = check_usable(s, err);
    if (!rc)
        rc = mch_reduce(o->out, &s->spec, s->units.next_index, o->site, o->blas, o->pairs_format,
                        &s->map, err);
    if (!rc) rc = mch_reduce_write_maps(o->out, &s->map, err);
    mch_run_record rec = {s->size,        s->hosts,          s->d.done,
                          s->d.n_units,   s->d.busy_s,       mch_now_s() - t0,
                          started,        s->resume.resumed, s->spec.model_sha256,
                          s->spec.inputs, o->job_compact};
    if (!rc) rc = mch_reduce_write_run_json(o->out, &s->map, &rec, err);
    if (rc) return rc;
    mch_log_info("mechir run: %llu pairs: %llu used, %llu skipped, %llu failed; %.1f s; outputs "
                 "in %s",
                 (unsigned long long)s->map.pairs_total, (unsigned long long)s->map.pairs_used,
                 (unsigned long long)s->map.pairs_skipped, (unsigned long long)s->map.pairs_failed,
                 mch_now_s() - t0, o->out);
    return o->summary ? mch_print_top_heads(&s->map, 5, o->summary, err) : MCH_OK;
}

mch_status mch_run_coordinate(const mch_run_opts *o, int size, const mch_local_runner *local,
                              int *interrupted, mch_err *err)
{
    static const volatile sig_atomic_t never = 0;
    time_t started = time(NULL);
    double t0 = mch_now_s();
    run_state s = {.o = o, .size = size};
    *interrupted = 0;
    mch_status rc = prepare(&s, err);
    if (!rc) {
        s.d.spec = &s.spec;
        s.d.journal = &s.journal;
        s.d.units = &s.units;
        s.d.stop = o->stop ? o->stop : &never;
        rc = size > 1 ? mch_dispatch_mpi(&s.d, size, err)
                      : mch_dispatch_local(&s.d, local, o->out, s.resume.attempt, err);
        if (s.d.prog.printed) mch_progress_finish(&s.d.prog, (long)s.d.done, NULL);
        mch_journal_close(&s.journal);
    }
    if (!rc && *s.d.stop) {
        mch_log_warn("mechir run: stopped by signal %d after the units in flight; %llu of %llu "
                     "pairs are journaled in %s; continue with --resume",
                     (int)*s.d.stop, (unsigned long long)(s.resume.n_done + s.d.done),
                     (unsigned long long)s.total, o->out);
        *interrupted = (int)*s.d.stop;
    } else if (!rc) {
        rc = finish(&s, t0, started, err);
    }
    run_free(&s);
    return rc;
}
