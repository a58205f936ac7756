/* Planning a run: the options to the job spec (what the run computes and a resume must agree
 * on), the journal to append to (new, or the one to resume), OUT/job.json, and the counting
 * pass over the inputs. */
#ifndef MCH_PLAN_H
#define MCH_PLAN_H

#include <stdint.h>

#include "journal.h"
#include "meta.h"
#include "msg.h"
#include "pairs_source.h"
#include "run.h"

/* The job spec of the options for the model m (sha256 of its weights and vocabulary read from
 * the model directory). Errors name the option. */
mch_status mch_plan_spec(const mch_run_opts *o, const mch_model_meta *m, mch_job_spec *s,
                         mch_err *err);

/* What a resume found in the journal. */
typedef struct {
    uint8_t *done; /* (done_cap) 1 when the pair of that index is journaled */
    uint64_t done_cap, n_done;
    int attempt; /* a cache-file attempt number no rank of this size has used */
    int resumed;
} mch_plan_resume;

/* Creates OUT/NAME (journal.bin; scores.bin for the scores of --select) for the packed spec, or
 * with o->resume and an existing journal opens it for appending (a torn tail cut off, logged)
 * after checking that it is the same job (a refusal names the first differing field: "seed: 1
 * in the journal, 2 now"); its records are checked by mch_plan_resume_check. */
mch_status mch_plan_journal(const mch_run_opts *o, const char *name, const mch_job_spec *spec,
                            const uint8_t *bytes, size_t len, int size, mch_journal *j,
                            mch_plan_resume *r, mch_err *err);

/* Writes o->job_json to OUT/job.json (so `mechir run OUT/job.json --resume` continues). */
mch_status mch_plan_write_job(const mch_run_opts *o, mch_err *err);

/* After the count: checks every record of the resumed journal j as mch_journal_load does (as a
 * worker's result is checked, results of units of mode, pair indices below limit: the input's
 * records) and marks the journaled pairs done in r, counting a pair journaled twice once. Errors
 * name the journal and the record's offset. */
mch_status mch_plan_resume_check(const mch_journal *j, const mch_job_spec *spec, uint32_t mode,
                                 uint64_t limit, mch_plan_resume *r, mch_err *err);

/* Counts the input records (the progress total; bad input shows up before any work) into
 * *total; *counter keeps the input summary for mch_plan_count_report (NULL on failure). */
mch_status mch_plan_count(const mch_run_opts *o, const mch_model_meta *m, uint64_t *total,
                          mch_pair_source **counter, mch_err *err);
/* Logs the input summary with the journaled pairs and the ranks, then the first
 * MCH_BAD_LINES_SHOWN bad input lines as `file:line: reason` (warn); closes counter (NULL: does
 * nothing). */
void mch_plan_count_report(mch_pair_source *counter, uint64_t total, uint64_t journaled, int size);

#endif
