/* Planning a run: the options to the job spec (what the run computes and a resume must agree
 * on), the journal to append to (new, or the one to resume), OUT/job.json, and the counting
 * pass over the inputs. */
#ifndef MCH_PLAN_H
#define MCH_PLAN_H

#include <stdint.h>

#include "journal.h"
#include "meta.h"
#include "msg.h"
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
 * with o->resume and an existing journal opens it for appending after checking that it is the
 * same job (a refusal names the first differing field: "seed: 1 in the journal, 2 now"). */
mch_status mch_plan_journal(const mch_run_opts *o, const char *name, const mch_job_spec *spec,
                            const uint8_t *bytes, size_t len, int size, mch_journal *j,
                            mch_plan_resume *r, mch_err *err);

/* Writes o->job_json to OUT/job.json (so `mechir run OUT/job.json --resume` continues). */
mch_status mch_plan_write_job(const mch_run_opts *o, mch_err *err);

/* Counts the input records (the progress total; bad input shows up before any work) and logs
 * the input summary with the journaled count and the ranks, then the first MCH_BAD_LINES_SHOWN
 * bad input lines as `file:line: reason` (warn). */
mch_status mch_plan_count(const mch_run_opts *o, const mch_model_meta *m, size_t journaled,
                          int size, uint64_t *total, mch_err *err);

#endif
