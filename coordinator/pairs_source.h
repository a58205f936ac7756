/* The pair source shared by `mechir pairs` and `mechir run`: input options (a TSV/JSONL file or a
 * TREC run/topics/docs/qrels set), the perturbation options, and the document-frequency pass
 * that tdc and lnc1 need. Turns input records into perturbed pairs with a skip report in which
 * produced + skipped equals the input units. */
#ifndef MCH_PAIRS_SOURCE_H
#define MCH_PAIRS_SOURCE_H

#include "input.h"
#include "meta.h"
#include "perturb.h"

typedef struct {
    const char *input, *format; /* --input FILE, --format tsv|jsonl (default by extension) */
    const char *run, *topics, *docs, *qrels;
    int top_k;
    int strict;
    const char *perturb, *term, *position, *filler, *stopwords, *df, *write_df;
    uint64_t seed;
    int max_len, max_query_len, stem;
} mch_source_opts;

/* The options' help text. */
extern const char mch_source_help[];

typedef struct mch_pair_source mch_pair_source;

/* Opens the inputs and builds the perturber (running the df pass when needed). Prints nothing;
 * errors name the file and line. */
mch_status mch_pair_source_open(mch_pair_source **out, const mch_source_opts *o,
                                const mch_model_meta *m, mch_err *err);

/* The next pair: *pair and *rec set, or *pair NULL at the end. Records that cannot be
 * perturbed are counted as skipped (with file:line and reason in the report) and passed over. */
mch_status mch_pair_source_next(mch_pair_source *s, const mch_pair **pair, const mch_record **rec,
                                mch_err *err);

/* The next input record without building its pair (for counting): *rec NULL at the end. */
mch_status mch_pair_source_next_record(mch_pair_source *s, const mch_record **rec, mch_err *err);

/* Units read, produced, skipped (reader and perturbation skips together). */
const mch_skip_report *mch_pair_source_report(const mch_pair_source *s);
long mch_pair_source_perturb_skips(const mch_pair_source *s);
/* Counts, then every kept `file:line: reason` (input skips, bad table lines, perturbation skips).
 */
void mch_pair_source_print_report(const mch_pair_source *s, FILE *f);
const mch_perturb_opts *mch_pair_source_perturb_opts(const mch_pair_source *s);

void mch_pair_source_close(mch_pair_source *s); /* accepts NULL */

#endif
