/* `mechir run` on rank 0 (see run.h): plan, journal, dispatch, reduce. With --select two passes
 * over the input share the workers: every pair scored into scores.bin, then the selected pairs
 * (select.h) patched into journal.bin; each pass resumes from its own journal.
 *
 * Determinism: a pair's result depends only on the pair, and the reduction reads the journal in
 * pair order, so circuit.cmap is byte-for-byte the same for any number of ranks, any arrival
 * order, and any number of interruptions and resumes. */
#include "run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dirlock.h"
#include "fsutil.h"
#include "log.h"
#include "plan.h"
#include "reduce.h"
#include "select.h"

/* Everything a run holds; freed by run_free whatever was reached. */
typedef struct {
    const mch_run_opts *o;
    int size;
    const mch_local_runner *local;
    mch_dir_lock lock; /* OUT/.mechir.lock, held from before the first file in OUT to the end */
    mch_model_meta *meta;
    mch_job_spec spec;
    uint8_t *spec_bytes;
    size_t spec_len;
    int selecting;          /* --select: a scoring pass, then the selected pairs patched */
    mch_journal journal;    /* OUT/journal.bin: the patched pairs */
    mch_journal scores;     /* OUT/scores.bin: the scoring pass (with --select) */
    mch_plan_resume resume; /* of journal.bin */
    mch_plan_resume scores_resume;
    int attempt;
    uint64_t total; /* input records */
    mch_unit_maker units;
    mch_dispatch d;
    char **hosts;
    int job_sent;        /* the workers have the job (or there are none) */
    uint64_t n_pairs;    /* with --select: the pairs of the input, from the scoring pass */
    uint64_t scored_now; /* pairs scored by this attempt */
    mch_selection sel;
    uint8_t *skip; /* (n_pairs) the patching pass of --select: 1 = not handed out */
    mch_cmap map;
} run_state;

static void run_free(run_state *s)
{
    if (!s->job_sent) mch_dispatch_cancel(s->size);
    mch_dispatch_end(&s->d, s->local);
    if (s->journal.path) mch_journal_close(&s->journal);
    if (s->scores.path) mch_journal_close(&s->scores);
    mch_units_deinit(&s->units);
    mch_msg_strv_free(s->hosts, s->hosts ? (size_t)s->size : 0);
    mch_cmap_deinit(&s->map);
    mch_selection_deinit(&s->sel);
    free(s->skip);
    free(s->resume.done);
    free(s->scores_resume.done);
    free(s->spec_bytes);
    mch_job_spec_deinit(&s->spec);
    mch_model_meta_close(s->meta);
    mch_dir_lock_release(&s->lock);
}

/* The outputs a run writes through temp files (mch_outfile: NAME.tmp.PID, then a rename). */
static const char *const outputs[] = {"circuit.cmap",   "circuit.json",   "run.json",
                                      "job.json",       "selection.json", "pairs.jsonl",
                                      "pairs.jsonl.zst"};

/* On a resume: the temp files of these outputs a killed attempt left in OUT. The run holds OUT's
 * lock, so no other writer of them runs, whatever their PIDs (a killed rank 0 can linger as a
 * zombie, or have run on another node). */
static mch_status remove_stale(const char *out, mch_err *err)
{
    int removed = 0;
    if (mch_outfile_remove_stale(out, outputs, sizeof outputs / sizeof outputs[0], 1, &removed) !=
        0)
        return mch_fail(err, MCH_ERR_IO, "%s: removing stale temp files: %s", out, strerror(errno));
    if (removed)
        mch_log_info("mechir run: removed %d temp file%s a killed attempt left in %s", removed,
                     removed == 1 ? "" : "s", out);
    return MCH_OK;
}

/* Up to the first unit: the spec, the journals (new or resumed), job.json, the count of the
 * input and the job sent to the workers. */
static mch_status prepare(run_state *s, mch_err *err)
{
    const mch_run_opts *o = s->o;
    /* The options and the model first (they read nothing in OUT): a refused option (an unknown
     * hook, a bad dtype) leaves no OUT behind. */
    mch_status rc = mch_model_meta_open(&s->meta, o->model, err);
    if (!rc) rc = mch_plan_spec(o, s->meta, &s->spec, err);
    if (!rc) rc = mch_job_spec_pack(&s->spec, &s->spec_bytes, &s->spec_len, err);
    if (rc) return rc;
    if (mch_mkdir_p(o->out) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", o->out, strerror(errno));
    /* Before any file in OUT is read or written: a second run or --resume there stops here. */
    rc = mch_dir_lock_take(&s->lock, o->out, "mechir run", err);
    s->selecting = !rc && s->spec.select && *s->spec.select;
    if (!rc && s->selecting)
        rc = mch_plan_journal(o, "scores.bin", &s->spec, s->spec_bytes, s->spec_len, s->size,
                              &s->scores, &s->scores_resume, err);
    if (!rc)
        rc = mch_plan_journal(o, "journal.bin", &s->spec, s->spec_bytes, s->spec_len, s->size,
                              &s->journal, &s->resume, err);
    /* Cache files are written by the patching pass only; a number no earlier attempt used. */
    s->attempt =
        s->resume.attempt > s->scores_resume.attempt ? s->resume.attempt : s->scores_resume.attempt;
    if (!rc && s->resume.resumed) rc = remove_stale(o->out, err);
    if (!rc) rc = mch_plan_write_job(o, err);
    mch_pair_source *counter = NULL;
    if (!rc) rc = mch_plan_count(o, s->meta, &s->total, &counter, err);
    /* Every journaled record checked before anything is handed out or written from it. */
    if (!rc && s->scores_resume.resumed)
        rc = mch_plan_resume_check(&s->scores, &s->spec, MCH_UNIT_SCORE, s->total,
                                   &s->scores_resume, err);
    if (!rc && s->resume.resumed)
        rc =
            mch_plan_resume_check(&s->journal, &s->spec, MCH_UNIT_PATCH, s->total, &s->resume, err);
    if (rc) {
        mch_pair_source_close(counter);
        return rc;
    }
    mch_plan_count_report(counter, s->total, s->resume.n_done, s->size);
    if (s->selecting)
        mch_log_info("mechir run: --select top-delta %llu%s: a scoring pass first (%llu pairs "
                     "already scored in scores.bin), then the selected pairs are patched",
                     (unsigned long long)s->spec.select_k,
                     s->spec.select_per_grade ? " per grade" : "",
                     (unsigned long long)s->scores_resume.n_done);
    rc = mch_dispatch_start(s->size, s->spec_bytes, s->spec_len, o->out, s->attempt, o->threads,
                            o->scratch_mb, &s->hosts, err);
    s->job_sent = 1; /* the workers have the job, or mch_dispatch_start aborted them */
    s->d.hosts = s->hosts;
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

/* One pass over the input: units of mode made of the pairs not marked in skip (skip_cap; NULL:
 * every pair), handed out and journaled in j, which is closed at the end. keep: another pass
 * follows (the workers wait for it). */
static mch_status run_pass(run_state *s, mch_journal *j, const uint8_t *skip, uint64_t skip_cap,
                           uint32_t mode, const char *what, long todo, int keep, mch_err *err)
{
    const mch_run_opts *o = s->o;
    mch_units_deinit(&s->units);
    mch_pair_source *src = NULL;
    mch_status rc = mch_pair_source_open(&src, &o->src, s->meta, err);
    if (!rc) rc = mch_units_init(&s->units, src, skip, skip_cap, o->unit_size, err);
    if (!rc) {
        s->units.mode = mode;
        s->d.journal = j;
        s->d.units = &s->units;
        s->d.done = 0;
        mch_progress_init(&s->d.prog, what, todo);
        rc = s->size > 1 ? mch_dispatch_mpi(&s->d, s->size, keep, err)
                         : mch_dispatch_local(&s->d, s->local, o->out, s->attempt, keep, err);
        if (s->d.prog.printed) mch_progress_finish(&s->d.prog, (long)s->d.done, NULL);
    }
    mch_journal_close(j);
    return rc;
}

/* After the scoring pass: the selection from scores.bin, OUT/selection.json, and the pairs the
 * patching pass hands out (selected and not yet journaled). *todo: how many. */
static mch_status choose(run_state *s, long *todo, mch_err *err)
{
    const mch_run_opts *o = s->o;
    s->n_pairs = s->units.next_index;
    s->scored_now = s->d.done;
    mch_log_info("mechir run: %llu pairs scored (%llu by this attempt)",
                 (unsigned long long)s->n_pairs, (unsigned long long)s->scored_now);
    char *path = mch_path_join(o->out, "scores.bin");
    mch_status rc = path ? mch_select_top_delta(path, &s->spec, s->n_pairs, s->spec.select_k,
                                                s->spec.select_per_grade, &s->sel, err)
                         : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    free(path);
    if (!rc) rc = mch_selection_write(o->out, &s->sel, err);
    if (!rc && !(s->skip = malloc(s->n_pairs + 1)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (rc) return rc;
    memset(s->skip, 1, s->n_pairs + 1);
    *todo = 0;
    for (size_t i = 0; i < s->sel.n; i++) {
        uint64_t x = s->sel.indices[i];
        s->skip[x] = x < s->resume.done_cap && s->resume.done[x];
        *todo += !s->skip[x];
    }
    mch_log_info("mechir run: selected %llu of %llu pairs (top-delta %llu%s, %llu failed to "
                 "score); %llu already patched",
                 (unsigned long long)s->sel.n, (unsigned long long)s->n_pairs,
                 (unsigned long long)s->sel.k, s->sel.per_grade ? " per grade" : "",
                 (unsigned long long)s->sel.pairs_failed,
                 (unsigned long long)(s->sel.n - (uint64_t)*todo));
    return MCH_OK;
}

/* After every unit: the outputs from the journal. */
static mch_status finish(run_state *s, double t0, time_t started, mch_err *err)
{
    const mch_run_opts *o = s->o;
    /* Every record was streamed: next_index is the exact number of pairs. */
    mch_status rc = check_usable(s, err);
    if (!rc && s->selecting && s->units.next_index != s->n_pairs)
        rc = mch_fail(err, MCH_ERR_FORMAT,
                      "the input gave %llu pairs to the scoring pass and %llu to the patching "
                      "pass (did it change?)",
                      (unsigned long long)s->n_pairs, (unsigned long long)s->units.next_index);
    char *selection = NULL;
    if (!rc && s->selecting && !(selection = mch_selection_json(&s->sel, 0)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = mch_reduce(o->out, &s->spec, s->selecting ? s->sel.indices : NULL,
                        s->selecting ? s->sel.n : s->units.next_index, o->site, o->blas,
                        o->pairs_format, &s->map, err);
    if (!rc) rc = mch_reduce_write_maps(o->out, &s->map, err);
    mch_run_record rec = {
        s->size,          s->hosts,  s->d.done,           s->d.n_units,         s->d.busy_s,
        mch_now_s() - t0, started,   s->resume.resumed,   s->spec.model_sha256, s->spec.inputs,
        o->job_compact,   selection, s->spec.input_files, s->spec.n_input_files};
    if (!rc) rc = mch_reduce_write_run_json(o->out, &s->map, &rec, err);
    free(selection);
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
    run_state s = {.o = o, .size = size, .local = local};
    mch_dispatch_init(&s.d);
    s.d.stop = o->stop ? o->stop : &never;
    s.d.worker_timeout_s = o->worker_timeout_s;
    *interrupted = 0;
    mch_status rc = prepare(&s, err);
    s.d.spec = &s.spec;
    long todo = (long)(s.total - s.resume.n_done);
    if (!rc && s.selecting)
        rc = run_pass(&s, &s.scores, s.scores_resume.done, s.scores_resume.done_cap, MCH_UNIT_SCORE,
                      "scoring pairs", (long)(s.total - s.scores_resume.n_done), 1, err);
    if (!rc && s.selecting && !*s.d.stop) rc = choose(&s, &todo, err);
    if (!rc && !*s.d.stop)
        rc = s.selecting ? run_pass(&s, &s.journal, s.skip, s.n_pairs, MCH_UNIT_PATCH, "pairs",
                                    todo, 0, err)
                         : run_pass(&s, &s.journal, s.resume.done, s.resume.done_cap,
                                    MCH_UNIT_PATCH, "pairs", todo, 0, err);
    if (!rc && *s.d.stop) {
        uint64_t done =
            s.selecting && !s.skip ? s.scores_resume.n_done + s.d.done : s.resume.n_done + s.d.done;
        mch_log_warn("mechir run: stopped by signal %d after the units in flight%s; %llu of %llu "
                     "pairs are journaled in %s; continue with --resume",
                     (int)*s.d.stop, s.selecting && !s.skip ? " of the scoring pass" : "",
                     (unsigned long long)done, (unsigned long long)(s.skip ? s.sel.n : s.total),
                     o->out);
        *interrupted = (int)*s.d.stop;
    } else if (!rc) {
        rc = finish(&s, t0, started, err);
    }
    run_free(&s);
    return rc;
}
