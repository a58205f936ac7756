/* Streaming readers of IR inputs: what researchers have (TSV or JSONL pair files; TREC runs,
 * topics, documents and qrels) turned into one stream of query-document records.
 *
 * Every input unit (a line of the TSV/JSONL file; a line of the run; a qrels line when no run
 * is given) is either produced as a record or skipped with a reason, file and line: produced +
 * skipped always equals the units read. Bad lines of the joined tables (topics, docs, qrels
 * when a run is given) are reported too, with file:line, and counted apart. With strict, the
 * first bad line of any file is an error instead. All text is checked to be valid UTF-8. Files
 * ending in .zst are decompressed on the fly (zstd streaming API). */
#ifndef MCH_INPUT_H
#define MCH_INPUT_H

#include <stddef.h>
#include <stdio.h>

#include "mch_err.h"

/* One query-document record. Strings are NUL-terminated UTF-8, valid until the next call to
 * mch_input_next (or, for joined tables, until mch_input_close). */
typedef struct {
    const char *qid, *query, *docno, *text;
    const char *term;      /* the term to inject (TSV 5th column, JSONL "term"), or NULL */
    const char *perturbed; /* given pairs: the perturbed document; NULL otherwise */
    const char *pair_key;  /* given pairs: tells pairs of one (qid, docno) apart, or NULL */
    int relevance;         /* qrels grade or JSONL "relevance"; -1 when unknown */
    int rank;              /* run rank or JSONL "rank"; -1 when unknown */
    const char *file; /* where the unit came from (the TSV/JSONL file, or the run/qrels file) */
    long line;        /* 1-based line in that file */
} mch_record;

/* A skipped unit or bad table line. */
typedef struct {
    const char *file;
    long line;
    char reason[160];
} mch_skip;

/* The skip report: counts and the first entries (all entries up to a cap). */
typedef struct {
    long units;         /* input units read (see above) */
    long produced;      /* records returned */
    long skipped;       /* units skipped; units == produced + skipped at the end */
    long table_skipped; /* bad lines of joined tables (topics, docs, qrels with a run) */
    mch_skip *entries;  /* the first `cap` skips and table skips, in order */
    long n_entries, cap;
} mch_skip_report;

typedef struct {
    int strict;            /* the first bad line is an error */
    int top_k;             /* TREC run: keep ranks 1..top_k of each query (0 = all) */
    long report_cap;       /* skip entries kept in the report (default 1000) */
    int four_columns;      /* TSV: exactly 4 columns; a 5th (term) column makes a bad line */
    int allow_duplicates;  /* TSV/JSONL: a repeated (qid, docno) pair is a unit like any other */
    size_t max_line_bytes; /* longest line of any file (0: MCH_LINE_BYTES_DEFAULT), see below */
    int given;             /* TSV/JSONL: given (pre-perturbed) pairs, see below */
} mch_input_opts;

typedef struct mch_input mch_input;

/* TSV: qid, query, docno, text, optional 5th column term (none with four_columns); an optional
 * header line whose first field is "qid". Bad: wrong column count, invalid UTF-8, empty qid,
 * query, docno or text, a repeated (qid, docno) pair (the first wins; unless allow_duplicates). */
mch_status mch_input_open_tsv(mch_input **out, const char *path, const mch_input_opts *o,
                              mch_err *err);

/* JSONL: {"qid", "query", "docno", "text", "title"?, "term"?, "relevance"?, "rank"?} per line
 * (qid and docno may be strings or integers; ir_datasets' "query_id" and "doc_id" stand for
 * them; a title is joined as ir_datasets' default_text(): "{title} {text}"). Bad: not a JSON
 * object, missing or mistyped fields, invalid UTF-8, empty qid, query, docno or text, a repeated
 * (qid, docno) pair (unless allow_duplicates), a "perturbed" field without given.
 *
 * Given pairs (o->given): the record's text is the baseline document and perturbed the
 * perturbed one (JSONL "perturbed", joined with the title too; TSV 5th column), with an
 * optional pair key (JSONL "pair_id", string or integer; TSV 6th column). qid and docno may be
 * missing or empty; a pair with neither nor a key is keyed by its line number. Repeats are
 * judged on (qid, docno, key). TSV: qid, query, docno, text, perturbed[, pair_id]. */
mch_status mch_input_open_jsonl(mch_input **out, const char *path, const mch_input_opts *o,
                                mch_err *err);

/* TREC: run (`qid Q0 docno rank score tag`) or, without a run, the qrels lines with grade > 0
 * (each query with its relevant documents); topics (`qid<TAB>query`, or JSONL {"qid" or
 * "query_id", "query" or "text"} when the name ends in .jsonl or .jsonl.zst); docs (TSV
 * `docno<TAB>text` or `docno<TAB>title<TAB>text`, or JSONL {"docno" or "doc_id", "text",
 * "title"?}; a title joined as "{title} {text}");
 * qrels (`qid 0 docno grade`) optional with a run (gives relevance). Joined by id; a unit whose
 * qid or docno is missing from a table is skipped with that reason; a duplicate qid in topics or
 * docno in docs is a bad table line (the first one wins). Only documents the units need are
 * kept in memory. */
mch_status mch_input_open_trec(mch_input **out, const char *run, const char *topics,
                               const char *docs, const char *qrels, const mch_input_opts *o,
                               mch_err *err);

/* The next record: *rec is set, or NULL at the end of the input. Errors: I/O, decompression,
 * out of memory, or (strict) a bad line, with the file and line in the message. */
mch_status mch_input_next(mch_input *in, const mch_record **rec, mch_err *err);

const mch_skip_report *mch_input_report(const mch_input *in);

/* Writes the report as text: counts, then one `file:line: reason` per kept entry. */
void mch_skip_report_print(const mch_skip_report *r, FILE *f);

/* Writes one `file:line: reason` line for each of the first max entries of e[0..n) (max < 0:
 * all n), then `... and N more WHAT` (`... and N more` when what is NULL) when total, the count
 * of every bad line whether kept in e or not, exceeds the lines written: N = total - written. */
void mch_skip_print(const mch_skip *e, long n, long total, long max, const char *what, FILE *f);

void mch_input_close(mch_input *in); /* accepts NULL */

/* Reading lines of plain or .zst files (used by the readers, and by --df and --stopwords). A line
 * longer than max_line_bytes (0: MCH_LINE_BYTES_DEFAULT; without its line end, decompressed) is
 * the error MCH_ERR_FORMAT "FILE:LINE: line longer than N bytes (--max-line-bytes)", found
 * before more than N bytes of it are held: /dev/zero or a zstd bomb of one line fail fast. Any
 * file is read as a stream (FIFOs and /dev/stdin too), never whole. */

/* MCH_OK when path (a file read more than once) is a regular file; otherwise MCH_ERR_ARG
 * "PATH: not a regular file; WHY reads it twice (save it to a file first)": a FIFO or
 * /dev/stdin would be empty the second time. */
mch_status mch_input_need_regular(const char *path, const char *why, mch_err *err);
typedef struct mch_lines mch_lines;
mch_status mch_lines_open(mch_lines **out, const char *path, size_t max_line_bytes, mch_err *err);
/* The next line without its "\n" or "\r\n" (NUL-terminated; valid until the next call), its
 * length (a NUL byte inside makes strlen(line) < len), and 1-based number; *line NULL at end.
 * After an error the file is finished (later calls give *line NULL). */
mch_status mch_lines_next(mch_lines *l, char **line, size_t *len, long *lineno, mch_err *err);
void mch_lines_close(mch_lines *l); /* accepts NULL */

#endif
