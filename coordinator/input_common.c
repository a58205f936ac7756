/* What the input readers share: the input object's life, the skip report (strict turns a skip
 * into the "FILE:LINE: reason" error), the record arena, duplicate (qid, docno) detection and
 * the line checks. Invariant: after a reader's first error the input is finished and every
 * later mch_input_next returns the same error. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "input_internal.h"

/* Blocks double from the first size to the last, so a small input costs a small block. */
#define ARENA_FIRST_BYTES ((size_t)4096)
#define ARENA_BLOCK_BYTES ((size_t)1 << 20)

/* ---------------------------------------------------------------------------------------------
 * Memory */

struct mch_input_arena_block {
    mch_input_arena_block *next;
    size_t used, cap;
    char data[];
};

char *mch_input_arena_copy(mch_input_arena *a, const char *s, size_t len)
{
    size_t need = len + 1;
    mch_input_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t grow = b ? b->cap * 2 : ARENA_FIRST_BYTES;
        if (grow > ARENA_BLOCK_BYTES) grow = ARENA_BLOCK_BYTES;
        size_t cap = need > grow ? need : grow;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        if (a->head && need > grow) { /* keep filling the current block */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    char *p = b->data + b->used;
    memcpy(p, s, len);
    p[len] = '\0';
    b->used += need;
    return p;
}

void mch_input_arena_free(mch_input_arena *a)
{
    for (mch_input_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

void *mch_input_grow(void *p, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 16;
    if (n > SIZE_MAX / elem) return NULL;
    void *q = realloc(p, n * elem);
    if (q) *cap = n;
    return q;
}

/* ---------------------------------------------------------------------------------------------
 * Line checks */

int mch_input_is_header(const char *s, long line, const char *name)
{
    size_t n = strlen(name);
    return line == 1 && strncmp(s, name, n) == 0 && (s[n] == '\t' || s[n] == '\0');
}

int mch_input_bad_text(const char *s, size_t len, char *why, size_t cap)
{
    const char *nul = memchr(s, '\0', len);
    if (nul) {
        snprintf(why, cap, "NUL byte at byte %zu", (size_t)(nul - s) + 1);
        return 1;
    }
    size_t i = 0;
    while (i < len) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        size_t left = len - i;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              left > 4 ? 4 : (utf8proc_ssize_t)left, &cp);
        if (k <= 0) {
            snprintf(why, cap, "invalid UTF-8 at byte %zu", i + 1);
            return 1;
        }
        i += (size_t)k;
    }
    return 0;
}

int mch_input_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '\v' && *s != '\f')
            return 0;
    return 1;
}

int mch_input_split_tabs(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        if (n < max) f[n] = s;
        n++;
        char *tab = strchr(s, '\t');
        if (!tab) return n;
        *tab = '\0';
        s = tab + 1;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The skip report */

static mch_status record_entry(mch_input *in, const char *file, long line, const char *reason,
                               mch_err *err)
{
    mch_skip_report *r = &in->rep;
    if (r->n_entries >= r->cap) return MCH_OK;
    if (r->n_entries == in->entries_alloc) {
        long n = in->entries_alloc ? in->entries_alloc * 2 : 16;
        if (n > r->cap) n = r->cap;
        mch_skip *e = realloc(r->entries, (size_t)n * sizeof *e);
        if (!e) return mch_fail(err, MCH_ERR_NOMEM, "out of memory recording a skip");
        r->entries = e;
        in->entries_alloc = n;
    }
    mch_skip *e = &r->entries[r->n_entries++];
    e->file = file;
    e->line = line;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    return MCH_OK;
}

mch_status mch_input_skip(mch_input *in, int table, const char *file, long line, mch_err *err,
                          const char *fmt, ...)
{
    char reason[sizeof(((mch_skip *)0)->reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!strcmp(reason, MCH_INPUT_OOM))
        return mch_fail(err, MCH_ERR_NOMEM, "%s:%ld: %s", file, line, reason);
    if (table)
        in->rep.table_skipped++;
    else
        in->rep.skipped++;
    mch_status st = record_entry(in, file, line, reason, err);
    if (st != MCH_OK) return st;
    if (in->o.strict) return mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: %s", file, line, reason);
    return MCH_OK;
}

const mch_skip_report *mch_input_report(const mch_input *in)
{
    return &in->rep;
}

void mch_skip_print(const mch_skip *e, long n, long total, long max, const char *what, FILE *f)
{
    long shown = max >= 0 && max < n ? max : n;
    for (long i = 0; i < shown; i++) fprintf(f, "%s:%ld: %s\n", e[i].file, e[i].line, e[i].reason);
    if (total > shown)
        fprintf(f, "... and %ld more%s%s\n", total - shown, what ? " " : "", what ? what : "");
}

void mch_skip_report_print(const mch_skip_report *r, FILE *f)
{
    fprintf(f, "units %ld, produced %ld, skipped %ld, bad table lines %ld\n", r->units, r->produced,
            r->skipped, r->table_skipped);
    mch_skip_print(r->entries, r->n_entries, r->skipped + r->table_skipped, -1, NULL, f);
}

/* ---------------------------------------------------------------------------------------------
 * Units of pairs files (TSV, JSONL) */

/* *first = the line where (qid, docno[, pair key]) was seen before, or 0 (and it is
 * recorded). */
static mch_status pair_seen(mch_input *in, const mch_record *r, long line, long *first,
                            mch_err *err)
{
    const char *qid = r->qid, *docno = r->docno, *pk = r->pair_key ? r->pair_key : "";
    size_t lq = strlen(qid), ld = strlen(docno), lk = strlen(pk);
    size_t n = lq + 1 + ld + (in->o.given ? 1 + lk : 0);
    if (n > in->key_cap) {
        char *k = realloc(in->key, n);
        if (!k) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        in->key = k;
        in->key_cap = n;
    }
    memcpy(in->key, qid, lq);
    in->key[lq] = '\0';
    memcpy(in->key + lq + 1, docno, ld);
    if (in->o.given) {
        in->key[lq + 1 + ld] = '\0';
        memcpy(in->key + lq + 2 + ld, pk, lk);
    }
    int added;
    int64_t *v = mch_strmap_put(in->pairs, in->key, n, &added);
    if (!v) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (added) *v = line;
    *first = added ? 0 : (long)*v;
    return MCH_OK;
}

mch_status mch_input_offer(mch_input *in, const mch_record **rec, mch_err *err)
{
    mch_record *r = &in->rec;
    int given = in->o.given; /* ids may be empty; the perturbed document may not */
    const char *what = !given && !*r->qid                       ? "empty qid"
                       : mch_input_blank(r->query)              ? "empty query"
                       : !given && !*r->docno                   ? "empty docno"
                       : mch_input_blank(r->text)               ? "empty text"
                       : given && mch_input_blank(r->perturbed) ? "empty perturbed"
                                                                : NULL;
    *rec = NULL;
    if (what) return mch_input_skip(in, 0, in->path, r->line, err, "%s", what);
    if (r->pair_key && !*r->pair_key) r->pair_key = NULL;
    if (given && !*r->qid && !*r->docno && !r->pair_key) {
        snprintf(in->line_key, sizeof in->line_key, "%ld", r->line);
        r->pair_key = in->line_key;
    }
    if (in->pairs) {
        long first = 0;
        mch_status st = pair_seen(in, r, r->line, &first, err);
        if (st != MCH_OK) return st;
        if (first)
            return mch_input_skip(in, 0, in->path, r->line, err, "duplicate %s, first at line %ld",
                                  given ? "(qid, docno, pair_id) pair" : "(qid, docno) pair",
                                  first);
    }
    in->rep.produced++;
    *rec = r;
    return MCH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The input */

mch_status mch_input_create(mch_input **out, const char *path, const mch_input_opts *o,
                            mch_status (*next)(mch_input *, const mch_record **, mch_err *),
                            mch_err *err)
{
    *out = NULL;
    if (o && (o->top_k < 0 || o->report_cap < 0))
        return mch_fail(err, MCH_ERR_ARG, "input options: top_k %d and report_cap %ld must be >= 0",
                        o->top_k, o->report_cap);
    mch_input *in = calloc(1, sizeof *in);
    if (!in) return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    in->next = next;
    if (o) in->o = *o;
    if (in->o.report_cap == 0) in->o.report_cap = MCH_INPUT_REPORT_CAP;
    in->rep.cap = in->o.report_cap;
    in->path = strdup(path);
    if (!in->path) {
        free(in);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    }
    *out = in;
    return MCH_OK;
}

mch_status mch_input_open_lines(mch_input **out, const char *path, const mch_input_opts *o,
                                mch_status (*next)(mch_input *, const mch_record **, mch_err *),
                                mch_err *err)
{
    mch_status st = mch_input_create(out, path, o, next, err);
    if (st == MCH_OK && !(*out)->o.allow_duplicates && !((*out)->pairs = mch_strmap_create()))
        st = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    if (st == MCH_OK) st = mch_lines_open(&(*out)->lines, path, (*out)->o.max_line_bytes, err);
    if (st != MCH_OK) {
        mch_input_close(*out);
        *out = NULL;
    }
    return st;
}

void mch_input_close(mch_input *in)
{
    if (!in) return;
    mch_lines_close(in->lines);
    free(in->path);
    free(in->rep.entries);
    mch_input_arena_free(&in->ar);
    /* TSV/JSONL */
    mch_strmap_free(in->pairs);
    free(in->key);
    cJSON_Delete(in->json);
    free(in->joined[0]);
    free(in->joined[1]);
    /* TREC */
    free(in->topics);
    free(in->docs);
    free(in->qrels);
    mch_strmap_free(in->qids.index);
    free(in->qids.v);
    mch_strmap_free(in->docnos.index);
    free(in->docnos.v);
    mch_strmap_free(in->seen);
    mch_strmap_free(in->grades);
    free(in->grade);
    free(in);
}

mch_status mch_input_next(mch_input *in, const mch_record **rec, mch_err *err)
{
    *rec = NULL;
    if (in->failed != MCH_OK) return mch_fail(err, in->failed, "%s", in->fail_msg);
    mch_err local = {0};
    mch_status st = in->next(in, rec, &local);
    if (st != MCH_OK) {
        *rec = NULL;
        in->failed = st;
        snprintf(in->fail_msg, sizeof in->fail_msg, "%s", local.msg);
        mch_fail(err, st, "%s", local.msg);
    }
    return st;
}

mch_status mch_input_need_regular(const char *path, const char *why, mch_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return mch_fail(err, MCH_ERR_ARG,
                        "%s: not a regular file; %s reads it twice (save it to a file first)", path,
                        why);
    return MCH_OK;
}
