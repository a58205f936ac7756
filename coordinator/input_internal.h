/* Private to the input readers (coordinator/input_*.c): the input object they share, the skip
 * report, the record arena, duplicate-pair detection and the line checks. Invariant: every unit
 * a reader reads is counted once in rep.units and then once as produced or skipped. */
#ifndef MCH_INPUT_INTERNAL_H
#define MCH_INPUT_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "fsutil.h"
#include "input.h"
#include "strmap.h"

#define MCH_INPUT_ID_SHOW 60      /* ids quoted in reasons are cut to this many bytes */
#define MCH_INPUT_WHY_BYTES 160   /* a reason, as kept in mch_skip */
#define MCH_INPUT_REPORT_CAP 1000 /* default report_cap */

/* Strings that live until mch_input_arena_free (blocks of 1 MiB, larger strings alone). */
typedef struct mch_input_arena_block mch_input_arena_block;
typedef struct {
    mch_input_arena_block *head;
} mch_input_arena;

/* A NUL-terminated copy of s[0..len); NULL when out of memory. */
char *mch_input_arena_copy(mch_input_arena *a, const char *s, size_t len);
void mch_input_arena_free(mch_input_arena *a);

/* Grows a heap array of elem-byte elements to twice *cap (16 at first): the new pointer and
 * *cap updated, or NULL with p and *cap untouched when out of memory. */
void *mch_input_grow(void *p, size_t *cap, size_t elem);

/* TREC ids (qids or docnos) the units need; the index gives each id its position in v. */
typedef struct {
    const char *key;  /* the id: the index's copy */
    const char *text; /* the query or document text, NULL until its table line is read */
    long line;        /* the table line that gave text */
} mch_trec_id;

typedef struct {
    mch_strmap *index; /* id -> position in v */
    mch_trec_id *v;
    size_t n, cap;
} mch_trec_ids;

/* A qrels grade of a (qid, docno) pair, and the qrels line that gave it. */
typedef struct {
    long line;
    int grade;
} mch_trec_grade;

struct mch_input {
    mch_input_opts o;
    mch_skip_report rep;
    long entries_alloc; /* allocated length of rep.entries */
    mch_lines *lines;   /* the unit file, being read */
    char *path;         /* the unit file: TSV, JSONL, run, or qrels when no run */
    mch_record rec;
    /* The reader: the next unit, as mch_input_next (errors need not be sticky). */
    mch_status (*next)(mch_input *in, const mch_record **rec, mch_err *err);
    mch_status failed; /* a first error ends the input; later calls repeat it */
    char fail_msg[sizeof(((mch_err *)0)->msg)];
    mch_input_arena ar;
    /* TSV/JSONL */
    mch_strmap *pairs; /* "qid\0docno" -> first line; NULL with allow_duplicates */
    char *key;         /* scratch for pair keys */
    size_t key_cap;
    cJSON *json;     /* JSONL: the current line's object (its strings back rec) */
    char *joined[2]; /* "{title} {text}" of the current line: text, perturbed (joined_cap) */
    size_t joined_cap[2];
    char line_key[24]; /* given pairs without ids: the line number as the pair key */
    /* TREC */
    int has_run;
    char *topics, *docs, *qrels; /* paths */
    mch_trec_ids qids, docnos;   /* needed ids; text = query or document once read */
    mch_strmap *seen;            /* unit pairs (8-byte keys, see input_trec.c) -> first line */
    mch_strmap *grades;          /* qrels with a run: pairs -> position in grade */
    mch_trec_grade *grade;
    size_t n_grades, grades_cap;
};

/* A new input of the unit file path with the options o (NULL = defaults) and the reader next;
 * *out NULL on error. */
mch_status mch_input_create(mch_input **out, const char *path, const mch_input_opts *o,
                            mch_status (*next)(mch_input *, const mch_record **, mch_err *),
                            mch_err *err);

/* A line-based input (TSV or JSONL) of one file: created, the pair map made (unless
 * allow_duplicates) and the file opened. */
mch_status mch_input_open_lines(mch_input **out, const char *path, const mch_input_opts *o,
                                mch_status (*next)(mch_input *, const mch_record **, mch_err *),
                                mch_err *err);

/* The reason a line check gives when it ran out of memory: not a bad line, the error
 * MCH_ERR_NOMEM "FILE:LINE: out of memory" (mch_input_skip turns it into that). */
#define MCH_INPUT_OOM "out of memory"

/* Counts a skipped unit (table = 0) or a bad table line (table = 1), keeps the entry, and with
 * strict returns the "FILE:LINE: reason" error (MCH_ERR_FORMAT); the reason MCH_INPUT_OOM is
 * the error MCH_ERR_NOMEM instead, never a skip. */
mch_status mch_input_skip(mch_input *in, int table, const char *file, long line, mch_err *err,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Offers the TSV/JSONL unit whose fields are set in in->rec to the common checks: non-empty
 * fields, then not a repeat (unless allow_duplicates). A good unit is counted as produced and
 * *rec = &in->rec; a bad one is skipped (*rec = NULL), or with strict the error is returned. */
mch_status mch_input_offer(mch_input *in, const mch_record **rec, mch_err *err);

/* A line of a file, as mch_lines_next gives it. */
typedef struct {
    char *s; /* NUL-terminated, valid until the next line is read; NULL at the end */
    size_t len;
    long no; /* 1-based line number */
} mch_input_line;

/* The next line of l that is not empty (an empty line is not a unit); ln->s NULL at the end. */
mch_status mch_input_next_line(mch_lines *l, mch_input_line *ln, mch_err *err);

/* 1 when s is line 1 of its file and its first tab-separated field is exactly name: a header
 * line (TSV pairs: "qid"; topics: "qid"; TSV docs: "docno"), not a unit. */
int mch_input_is_header(const char *s, long line, const char *name);

/* 0 when s[0..len) is valid UTF-8 and holds no NUL byte; otherwise writes why and returns 1. */
int mch_input_bad_text(const char *s, size_t len, char *why, size_t cap);

/* 1 when s is empty or only white space. */
int mch_input_blank(const char *s);

/* Splits s at tabs in place; the first max fields go to f. @return the number of fields. */
int mch_input_split_tabs(char *s, char **f, int max);

/* JSON fields (input_jsonl.c), shared with TREC's JSONL docs. Each returns 1, or 0 with why. */
/* One JSON object from s[0..len), white space around it allowed; NULL with why (MCH_INPUT_OOM
 * when an allocation failed). */
cJSON *mch_input_json_object(const char *s, size_t len, char *why, size_t why_cap);
/* An id field: a string, or an integer kept as its exact text (no fraction or exponent). */
int mch_input_json_id(const cJSON *o, const char *name, const char **out, char *why,
                      size_t why_cap);
/* A string field; an optional one may be missing or null (*out = NULL). */
int mch_input_json_str(const cJSON *o, const char *name, int optional, const char **out, char *why,
                       size_t why_cap);
/* An id under its mechir name or its ir_datasets name (alias: "query_id", "doc_id"); both
 * present is bad; optional: neither may be present (*out = NULL). */
int mch_input_json_id2(const cJSON *o, const char *name, const char *alias, int optional,
                       const char **out, char *why, size_t why_cap);
/* "{title} {text}" (ir_datasets' default_text()) into *buf (grown; *cap bytes), or text itself
 * when title is NULL. NULL when out of memory. */
const char *mch_input_join_title(char **buf, size_t *cap, const char *title, const char *text);

#endif
