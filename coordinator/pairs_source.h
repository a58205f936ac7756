/* The pair source shared by `mechir pairs` and `mechir run`: input options (a TSV/JSONL file or a
 * TREC run/topics/docs/qrels set), the perturbation options, and the document-frequency pass
 * that tdc and lnc1 need. Turns input records into perturbed pairs with a skip report in which
 * produced + skipped equals the input units. */
#ifndef MCH_PAIRS_SOURCE_H
#define MCH_PAIRS_SOURCE_H

#include "align.h"
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
    uint64_t max_line_bytes; /* --max-line-bytes (0: MCH_LINE_BYTES_DEFAULT) */
    int max_span;            /* --perturb given: --max-span, longest differing span (0: any) */
} mch_source_opts;

/* --perturb given: the input's records are given pairs (a baseline and a perturbed document),
 * aligned by kernels/text/align.h instead of perturbed. */
#define MCH_PERTURB_GIVEN_NAME "given"

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

/* Bad lines `mechir run` and `mechir pairs` name on stderr, of each kind below; the rest are
 * counted in one trailing line, so a file of millions of bad lines prints a screenful. */
#define MCH_BAD_LINES_SHOWN 20

/* One `file:line: reason` per bad input line (skipped units and bad table lines, in the order
 * read), at most max of them (max < 0: every kept one), then `... and N more bad input lines`
 * for the rest. */
void mch_pair_source_print_bad_input(const mch_pair_source *s, long max, FILE *f);
/* The same for the records that could not be perturbed (the file:line of the unit that gave
 * the record), then `... and N more records that could not be perturbed`. */
void mch_pair_source_print_unperturbable(const mch_pair_source *s, long max, FILE *f);
const mch_perturb_opts *mch_pair_source_perturb_opts(const mch_pair_source *s);
/* The name of the source's perturbation: the kind's, or "given". */
const char *mch_pair_source_perturb_name(const mch_pair_source *s);
/* Given pairs: the alignment of the pair mch_pair_source_next returned last; NULL otherwise. */
const mch_alignment *mch_pair_source_alignment(const mch_pair_source *s);

void mch_pair_source_close(mch_pair_source *s); /* accepts NULL */

#endif
