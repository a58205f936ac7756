/* Streaming readers of IR inputs (TSV, JSONL, TREC run/topics/docs/qrels), plain or .zst.
 * Invariants: a file is never held whole in memory (lines are read through a fixed-size buffer,
 * only the current line and, in TREC mode, the needed queries and documents are kept), and every
 * unit read is counted once as produced or skipped. */
#include "input.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zstd.h>

#define PLAIN_BUF_BYTES ((size_t)256 * 1024)
#define ARENA_BLOCK_BYTES ((size_t)1 << 20)
#define REPORT_CAP_DEFAULT 1000
#define ID_SHOW 60 /* ids quoted in reasons are cut to this many bytes */

/* ---------------------------------------------------------------------------------------------
 * Lines of plain or zstd-compressed files */

struct mch_lines {
    FILE *f;
    char *path;
    ZSTD_DCtx *dctx; /* NULL for a plain file */
    ZSTD_inBuffer zin;
    char *zbuf; /* compressed bytes (zcap) */
    size_t zcap;
    size_t zret;  /* last ZSTD_decompressStream result: 0 when a frame just ended */
    int zpending; /* the output buffer was filled: the decoder may hold more output */
    char *buf;    /* file bytes, decompressed: [buf_pos, buf_len) not yet consumed */
    size_t buf_pos, buf_len, buf_cap;
    char *line; /* the current line, NUL-terminated */
    size_t line_len, line_cap;
    long lineno;
    int eof;
};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

mch_status mch_lines_open(mch_lines **out, const char *path, mch_err *err)
{
    *out = NULL;
    mch_lines *l = calloc(1, sizeof *l);
    if (!l) return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    l->path = strdup(path);
    int zst = ends_with(path, ".zst");
    l->buf_cap = zst ? ZSTD_DStreamOutSize() : PLAIN_BUF_BYTES;
    l->buf = malloc(l->buf_cap);
    if (zst) {
        l->zcap = ZSTD_DStreamInSize();
        l->zbuf = malloc(l->zcap);
        l->dctx = ZSTD_createDCtx();
    }
    if (!l->path || !l->buf || (zst && (!l->zbuf || !l->dctx))) {
        mch_lines_close(l);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    }
    l->f = fopen(path, "rb");
    if (!l->f) {
        int e = errno;
        mch_lines_close(l);
        return mch_fail(err, MCH_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    *out = l;
    return MCH_OK;
}

void mch_lines_close(mch_lines *l)
{
    if (!l) return;
    if (l->f) fclose(l->f);
    ZSTD_freeDCtx(l->dctx);
    free(l->zbuf);
    free(l->buf);
    free(l->line);
    free(l->path);
    free(l);
}

/* Refills l->buf with the next bytes of the file (decompressed); buf_len = 0 at the end. */
static mch_status lines_fill(mch_lines *l, mch_err *err)
{
    l->buf_pos = l->buf_len = 0;
    if (!l->dctx) {
        size_t n = fread(l->buf, 1, l->buf_cap, l->f);
        if (n == 0 && ferror(l->f))
            return mch_fail(err, MCH_ERR_IO, "%s: read error after line %ld", l->path, l->lineno);
        l->buf_len = n;
        return MCH_OK;
    }
    for (;;) {
        if (l->zin.pos == l->zin.size && !l->zpending) {
            size_t n = fread(l->zbuf, 1, l->zcap, l->f);
            if (n == 0) {
                if (ferror(l->f))
                    return mch_fail(err, MCH_ERR_IO, "%s: read error after line %ld", l->path,
                                    l->lineno);
                if (l->zret != 0)
                    return mch_fail(err, MCH_ERR_ZSTD, "%s: truncated zstd stream after line %ld",
                                    l->path, l->lineno);
                return MCH_OK;
            }
            l->zin.src = l->zbuf;
            l->zin.size = n;
            l->zin.pos = 0;
        }
        ZSTD_outBuffer zout = {l->buf, l->buf_cap, 0};
        size_t r = ZSTD_decompressStream(l->dctx, &zout, &l->zin);
        if (ZSTD_isError(r))
            return mch_fail(err, MCH_ERR_ZSTD, "%s: corrupt zstd stream after line %ld: %s",
                            l->path, l->lineno, ZSTD_getErrorName(r));
        l->zret = r;
        l->zpending = zout.pos == zout.size;
        if (zout.pos > 0) {
            l->buf_len = zout.pos;
            return MCH_OK;
        }
    }
}

static int lines_reserve(mch_lines *l, size_t need)
{
    if (need <= l->line_cap) return 1;
    size_t cap = l->line_cap ? l->line_cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return 0;
        cap *= 2;
    }
    char *p = realloc(l->line, cap);
    if (!p) return 0;
    l->line = p;
    l->line_cap = cap;
    return 1;
}

mch_status mch_lines_next(mch_lines *l, char **line, size_t *len, long *lineno, mch_err *err)
{
    *line = NULL;
    *len = 0;
    if (l->eof) return MCH_OK;
    l->line_len = 0;
    int got = 0, ended = 0; /* got: any byte of this line read; ended: its "\n" was seen */
    while (!ended) {
        if (l->buf_pos == l->buf_len) {
            mch_status st = lines_fill(l, err);
            if (st != MCH_OK) return st;
            if (l->buf_len == 0) {
                l->eof = 1;
                if (!got) return MCH_OK;
                break;
            }
        }
        const char *s = l->buf + l->buf_pos;
        size_t avail = l->buf_len - l->buf_pos;
        const char *nl = memchr(s, '\n', avail);
        size_t take = nl ? (size_t)(nl - s) : avail;
        if (l->line_len + take + 1 < take || !lines_reserve(l, l->line_len + take + 1))
            return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory reading line %ld", l->path,
                            l->lineno + 1);
        memcpy(l->line + l->line_len, s, take);
        l->line_len += take;
        l->buf_pos += take + (nl ? 1 : 0);
        got = 1;
        ended = nl != NULL;
    }
    if (ended && l->line_len > 0 && l->line[l->line_len - 1] == '\r') l->line_len--;
    l->line[l->line_len] = '\0';
    l->lineno++;
    if (l->lineno == 1 && l->line_len >= 3 && memcmp(l->line, "\xEF\xBB\xBF", 3) == 0) {
        memmove(l->line, l->line + 3, l->line_len - 3 + 1); /* a UTF-8 byte-order mark */
        l->line_len -= 3;
    }
    *line = l->line;
    *len = l->line_len;
    if (lineno) *lineno = l->lineno;
    return MCH_OK;
}

/* ---------------------------------------------------------------------------------------------
 * An arena of strings and two open-addressing hash maps over it */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

typedef struct {
    arena_block *head;
} arena;

/* A NUL-terminated copy of s[0..len) that lives until arena_free; NULL when out of memory. */
static char *arena_copy(arena *a, const char *s, size_t len)
{
    size_t need = len + 1;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK_BYTES ? need : ARENA_BLOCK_BYTES;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        if (a->head && need > ARENA_BLOCK_BYTES) { /* keep filling the current block */
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

static void arena_free(arena *a)
{
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* String keys (ids, or "qid\0docno" pairs) with what is known about them. */
typedef struct {
    const char *key; /* NULL = empty slot */
    size_t len;
    uint64_t hash;
    const char *text; /* TREC: the query or document text, NULL until its table line is read */
    long line;        /* the line that gave text (TREC), or that first had the pair (TSV/JSONL) */
    uint32_t id;      /* insertion order */
} str_slot;

typedef struct {
    str_slot *s;
    size_t cap, n; /* cap is 0 or a power of two */
} strmap;

static str_slot *strmap_find(const strmap *m, const char *k, size_t len, uint64_t h)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        str_slot *e = &m->s[i];
        if (!e->key) return NULL;
        if (e->hash == h && e->len == len && memcmp(e->key, k, len) == 0) return e;
    }
}

/* Adds k (absent) with a copy in the arena; the returned slot is valid until the next add. */
static str_slot *strmap_add(strmap *m, arena *a, const char *k, size_t len, uint64_t h)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        str_slot *s = calloc(cap, sizeof *s);
        if (!s) return NULL;
        for (size_t j = 0; j < m->cap; j++) {
            if (!m->s[j].key) continue;
            size_t i = m->s[j].hash & (cap - 1);
            while (s[i].key) i = (i + 1) & (cap - 1);
            s[i] = m->s[j];
        }
        free(m->s);
        m->s = s;
        m->cap = cap;
    }
    const char *key = arena_copy(a, k, len);
    if (!key) return NULL;
    size_t mask = m->cap - 1, i = h & mask;
    while (m->s[i].key) i = (i + 1) & mask;
    str_slot *e = &m->s[i];
    *e = (str_slot){.key = key, .len = len, .hash = h, .id = (uint32_t)m->n};
    m->n++;
    return e;
}

/* (qid id, docno id) pairs of TREC mode. */
typedef struct {
    uint64_t key;
    long line; /* 0 = empty slot */
    int grade;
} pair_slot;

typedef struct {
    pair_slot *s;
    size_t cap, n;
} pairmap;

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 30; /* splitmix64 finaliser */
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static pair_slot *pairmap_find(const pairmap *m, uint64_t key)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (!m->s[i].line) return NULL;
        if (m->s[i].key == key) return &m->s[i];
    }
}

/* Adds key (absent) first seen at line (>= 1); 0 when out of memory. */
static int pairmap_add(pairmap *m, uint64_t key, long line, int grade)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        pair_slot *s = calloc(cap, sizeof *s);
        if (!s) return 0;
        for (size_t j = 0; j < m->cap; j++) {
            if (!m->s[j].line) continue;
            size_t i = hash_u64(m->s[j].key) & (cap - 1);
            while (s[i].line) i = (i + 1) & (cap - 1);
            s[i] = m->s[j];
        }
        free(m->s);
        m->s = s;
        m->cap = cap;
    }
    size_t mask = m->cap - 1, i = hash_u64(key) & mask;
    while (m->s[i].line) i = (i + 1) & mask;
    m->s[i] = (pair_slot){key, line, grade};
    m->n++;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Line checks shared by the readers */

/* 0 when s[0..len) is valid UTF-8 and holds no NUL byte; otherwise writes why and returns 1. */
static int bad_text(const char *s, size_t len, char *why, size_t cap)
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

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '\v' && *s != '\f')
            return 0;
    return 1;
}

/* Splits s at tabs in place; the first max fields go to f. @return the number of fields. */
static int split_tabs(char *s, char **f, int max)
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

/* Splits s at runs of spaces and tabs in place. @return the number of fields. */
static int split_ws(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) return n;
        if (n < max) f[n] = s;
        n++;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (!*s) return n;
        *s++ = '\0';
    }
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * The input */

typedef enum { KIND_TSV, KIND_JSONL, KIND_TREC } input_kind;

struct mch_input {
    input_kind kind;
    mch_input_opts o;
    mch_skip_report rep;
    mch_lines *lines;   /* the unit file, being read */
    char *path;         /* the unit file: TSV, JSONL, run, or qrels when no run */
    long entries_alloc; /* allocated length of rep.entries */
    mch_record rec;
    mch_status failed; /* a first error ends the input; later calls repeat it */
    char fail_msg[sizeof(((mch_err *)0)->msg)];
    arena ar;
    /* TSV/JSONL */
    strmap pairs; /* "qid\0docno" -> first line */
    char *key;    /* scratch for pair keys */
    size_t key_cap;
    cJSON *json; /* JSONL: the current line's object (its strings back rec) */
    char qid_num[32], docno_num[32];
    /* TREC */
    int has_run;
    char *topics, *docs, *qrels; /* paths */
    strmap qids, docnos;         /* needed ids; text = query or document once read */
    pairmap seen;                /* unit pairs already produced or skipped -> line */
    pairmap grades;              /* qrels with a run: pairs -> grade, line */
};

static void record_entry(mch_input *in, const char *file, long line, const char *reason,
                         mch_err *err, mch_status *st)
{
    mch_skip_report *r = &in->rep;
    if (r->n_entries >= r->cap) return;
    if (r->n_entries == in->entries_alloc) {
        long n = in->entries_alloc ? in->entries_alloc * 2 : 16;
        if (n > r->cap) n = r->cap;
        mch_skip *e = realloc(r->entries, (size_t)n * sizeof *e);
        if (!e) {
            *st = mch_fail(err, MCH_ERR_NOMEM, "out of memory recording a skip");
            return;
        }
        r->entries = e;
        in->entries_alloc = n;
    }
    mch_skip *e = &r->entries[r->n_entries++];
    e->file = file;
    e->line = line;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
}

/* Counts a skipped unit (table = 0) or a bad table line (table = 1), keeps the entry, and with
 * strict returns the "FILE:LINE: reason" error. */
static mch_status skip_line(mch_input *in, int table, const char *file, long line, mch_err *err,
                            const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static mch_status skip_line(mch_input *in, int table, const char *file, long line, mch_err *err,
                            const char *fmt, ...)
{
    char reason[sizeof(((mch_skip *)0)->reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (table)
        in->rep.table_skipped++;
    else
        in->rep.skipped++;
    mch_status st = MCH_OK;
    record_entry(in, file, line, reason, err, &st);
    if (st != MCH_OK) return st;
    if (in->o.strict) return mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: %s", file, line, reason);
    return MCH_OK;
}

static mch_status input_create(mch_input **out, input_kind kind, const char *path,
                               const mch_input_opts *o, mch_err *err)
{
    *out = NULL;
    if (o && (o->top_k < 0 || o->report_cap < 0))
        return mch_fail(err, MCH_ERR_ARG, "input options: top_k %d and report_cap %ld must be >= 0",
                        o->top_k, o->report_cap);
    mch_input *in = calloc(1, sizeof *in);
    if (!in) return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    in->kind = kind;
    if (o) in->o = *o;
    if (in->o.report_cap == 0) in->o.report_cap = REPORT_CAP_DEFAULT;
    in->rep.cap = in->o.report_cap;
    in->path = strdup(path);
    if (!in->path) {
        free(in);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    }
    *out = in;
    return MCH_OK;
}

void mch_input_close(mch_input *in)
{
    if (!in) return;
    mch_lines_close(in->lines);
    cJSON_Delete(in->json);
    free(in->rep.entries);
    free(in->path);
    free(in->topics);
    free(in->docs);
    free(in->qrels);
    free(in->key);
    free(in->pairs.s);
    free(in->qids.s);
    free(in->docnos.s);
    free(in->seen.s);
    free(in->grades.s);
    arena_free(&in->ar);
    free(in);
}

const mch_skip_report *mch_input_report(const mch_input *in)
{
    return &in->rep;
}

void mch_skip_report_print(const mch_skip_report *r, FILE *f)
{
    fprintf(f, "units %ld, produced %ld, skipped %ld, bad table lines %ld\n", r->units, r->produced,
            r->skipped, r->table_skipped);
    for (long i = 0; i < r->n_entries; i++)
        fprintf(f, "%s:%ld: %s\n", r->entries[i].file, r->entries[i].line, r->entries[i].reason);
    long more = r->skipped + r->table_skipped - r->n_entries;
    if (more > 0) fprintf(f, "... and %ld more\n", more);
}

/* TSV/JSONL: *first = the line where (qid, docno) was seen before, or 0 (and it is recorded). */
static mch_status pair_seen(mch_input *in, const char *qid, const char *docno, long line,
                            long *first, mch_err *err)
{
    *first = 0;
    size_t lq = strlen(qid), ld = strlen(docno), n = lq + 1 + ld;
    if (n > in->key_cap) {
        char *k = realloc(in->key, n);
        if (!k) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        in->key = k;
        in->key_cap = n;
    }
    memcpy(in->key, qid, lq);
    in->key[lq] = '\0';
    memcpy(in->key + lq + 1, docno, ld);
    uint64_t h = hash_bytes(in->key, n);
    str_slot *e = strmap_find(&in->pairs, in->key, n, h);
    if (e) {
        *first = e->line;
        return MCH_OK;
    }
    e = strmap_add(&in->pairs, &in->ar, in->key, n, h);
    if (!e) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    e->line = line;
    return MCH_OK;
}

/* Common checks of a TSV/JSONL unit whose fields are set in in->rec: non-empty, not a repeat.
 * *ok = 1 when it is to be produced. */
static mch_status check_unit(mch_input *in, long line, int *ok, mch_err *err)
{
    const mch_record *r = &in->rec;
    const char *what = !*r->qid          ? "empty qid"
                       : blank(r->query) ? "empty query"
                       : !*r->docno      ? "empty docno"
                       : blank(r->text)  ? "empty text"
                                         : NULL;
    *ok = 0;
    if (what) return skip_line(in, 0, in->path, line, err, "%s", what);
    long first = 0;
    mch_status st = pair_seen(in, r->qid, r->docno, line, &first, err);
    if (st != MCH_OK) return st;
    if (first)
        return skip_line(in, 0, in->path, line, err,
                         "duplicate (qid, docno) pair, first at line %ld", first);
    *ok = 1;
    return MCH_OK;
}

static mch_status next_tsv(mch_input *in, const mch_record **rec, mch_err *err)
{
    for (;;) {
        char *s;
        size_t len;
        long line;
        mch_status st = mch_lines_next(in->lines, &s, &len, &line, err);
        if (st != MCH_OK) return st;
        if (!s) return MCH_OK;
        if (len == 0) continue;
        if (line == 1 && strncmp(s, "qid", 3) == 0 && (s[3] == '\t' || s[3] == '\0')) continue;
        in->rep.units++;
        char why[160];
        if (bad_text(s, len, why, sizeof why)) {
            if ((st = skip_line(in, 0, in->path, line, err, "%s", why)) != MCH_OK) return st;
            continue;
        }
        char *f[5];
        int n = split_tabs(s, f, 5);
        if (n != 4 && n != 5) {
            st = skip_line(in, 0, in->path, line, err,
                           "expected 4 or 5 tab-separated columns, found %d", n);
            if (st != MCH_OK) return st;
            continue;
        }
        in->rec = (mch_record){.qid = f[0],
                               .query = f[1],
                               .docno = f[2],
                               .text = f[3],
                               .term = n == 5 && *f[4] ? f[4] : NULL,
                               .relevance = -1,
                               .rank = -1,
                               .file = in->path,
                               .line = line};
        int ok;
        if ((st = check_unit(in, line, &ok, err)) != MCH_OK) return st;
        if (!ok) continue;
        in->rep.produced++;
        *rec = &in->rec;
        return MCH_OK;
    }
}

/* An id field: a string or an integer (printed without decimals into num). */
static int json_id(const cJSON *o, const char *name, char *num, size_t cap, const char **out,
                   char *why, size_t why_cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        snprintf(why, why_cap, "missing \"%s\"", name);
        return 0;
    }
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 1;
    }
    double d = v->valuedouble;
    if (cJSON_IsNumber(v) && d >= -9007199254740992.0 && d <= 9007199254740992.0 &&
        (double)(long long)d == d) {
        snprintf(num, cap, "%lld", (long long)d);
        *out = num;
        return 1;
    }
    snprintf(why, why_cap, "\"%s\" is not a string or an integer", name);
    return 0;
}

/* A string field; optional ones may be missing or null (*out = NULL). */
static int json_str(const cJSON *o, const char *name, int optional, const char **out, char *why,
                    size_t why_cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (optional) return 1;
        snprintf(why, why_cap, "missing \"%s\"", name);
        return 0;
    }
    if (!cJSON_IsString(v)) {
        snprintf(why, why_cap, "\"%s\" is not a string", name);
        return 0;
    }
    *out = v->valuestring;
    return 1;
}

/* An optional integer field (-1 when missing or null). */
static int json_int(const cJSON *o, const char *name, int *out, char *why, size_t why_cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return 1;
    double d = v->valuedouble;
    if (cJSON_IsNumber(v) && d >= INT_MIN && d <= INT_MAX && (double)(int)d == d) {
        *out = (int)d;
        return 1;
    }
    snprintf(why, why_cap, "\"%s\" is not an integer", name);
    return 0;
}

/* Parses one JSON object from s[0..len); NULL with why on error. */
static cJSON *json_object(const char *s, size_t len, char *why, size_t why_cap)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!o) {
        size_t at = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
        snprintf(why, why_cap, "invalid JSON at byte %zu", at + 1);
        return NULL;
    }
    while (end < s + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
    if (end < s + len) {
        snprintf(why, why_cap, "invalid JSON at byte %zu: text after the object",
                 (size_t)(end - s) + 1);
        cJSON_Delete(o);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        snprintf(why, why_cap, "not a JSON object");
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static mch_status next_jsonl(mch_input *in, const mch_record **rec, mch_err *err)
{
    for (;;) {
        cJSON_Delete(in->json);
        in->json = NULL;
        char *s;
        size_t len;
        long line;
        mch_status st = mch_lines_next(in->lines, &s, &len, &line, err);
        if (st != MCH_OK) return st;
        if (!s) return MCH_OK;
        if (len == 0) continue;
        in->rep.units++;
        char why[160];
        mch_record r = {.relevance = -1, .rank = -1, .file = in->path, .line = line};
        int good = !bad_text(s, len, why, sizeof why) &&
                   (in->json = json_object(s, len, why, sizeof why)) != NULL;
        const cJSON *o = in->json;
        good =
            good && json_id(o, "qid", in->qid_num, sizeof in->qid_num, &r.qid, why, sizeof why) &&
            json_str(o, "query", 0, &r.query, why, sizeof why) &&
            json_id(o, "docno", in->docno_num, sizeof in->docno_num, &r.docno, why, sizeof why) &&
            json_str(o, "text", 0, &r.text, why, sizeof why) &&
            json_str(o, "term", 1, &r.term, why, sizeof why) &&
            json_int(o, "relevance", &r.relevance, why, sizeof why) &&
            json_int(o, "rank", &r.rank, why, sizeof why);
        if (!good) {
            if ((st = skip_line(in, 0, in->path, line, err, "%s", why)) != MCH_OK) return st;
            continue;
        }
        if (r.term && !*r.term) r.term = NULL;
        in->rec = r;
        int ok;
        if ((st = check_unit(in, line, &ok, err)) != MCH_OK) return st;
        if (!ok) continue;
        in->rep.produced++;
        *rec = &in->rec;
        return MCH_OK;
    }
}

/* A line-based input (TSV or JSONL) of one file. */
static mch_status open_lines_input(mch_input **out, input_kind kind, const char *path,
                                   const mch_input_opts *o, mch_err *err)
{
    mch_status st = input_create(out, kind, path, o, err);
    if (st == MCH_OK) st = mch_lines_open(&(*out)->lines, path, err);
    if (st != MCH_OK) {
        mch_input_close(*out);
        *out = NULL;
    }
    return st;
}

mch_status mch_input_open_tsv(mch_input **out, const char *path, const mch_input_opts *o,
                              mch_err *err)
{
    return open_lines_input(out, KIND_TSV, path, o, err);
}

mch_status mch_input_open_jsonl(mch_input **out, const char *path, const mch_input_opts *o,
                                mch_err *err)
{
    return open_lines_input(out, KIND_JSONL, path, o, err);
}

/* ---------------------------------------------------------------------------------------------
 * TREC */

typedef struct {
    char *qid, *docno;
    int num; /* run: rank; qrels: grade */
} trec_unit;

/* Parses a run line (`qid Q0 docno rank score tag`) or a qrels line (`qid iter docno grade`)
 * in place. @return 1, or 0 with why. */
static int parse_trec(char *s, size_t len, int run, trec_unit *u, char *why, size_t cap)
{
    if (bad_text(s, len, why, cap)) return 0;
    char *f[6];
    int want = run ? 6 : 4, n = split_ws(s, f, 6);
    if (n != want) {
        snprintf(why, cap, "expected %d whitespace-separated columns (%s), found %d", want,
                 run ? "qid Q0 docno rank score tag" : "qid iter docno grade", n);
        return 0;
    }
    u->qid = f[0];
    u->docno = f[2];
    if (!parse_int(f[3], &u->num)) {
        snprintf(why, cap, "%s '%.*s' is not an integer", run ? "rank" : "grade", ID_SHOW, f[3]);
        return 0;
    }
    if (run && u->num < 0) {
        snprintf(why, cap, "rank %d is negative", u->num);
        return 0;
    }
    return 1;
}

/* 1 when a well-formed unit line is a unit at all: run ranks beyond top_k and qrels lines that
 * do not mark a relevant document (grade <= 0) are filtered out, not skipped. */
static int trec_wanted(const mch_input *in, const trec_unit *u)
{
    if (in->has_run) return in->o.top_k == 0 || u->num <= in->o.top_k;
    return u->num > 0;
}

static str_slot *need(strmap *m, arena *a, const char *id, mch_err *err)
{
    size_t len = strlen(id);
    uint64_t h = hash_bytes(id, len);
    str_slot *e = strmap_find(m, id, len, h);
    if (!e && !(e = strmap_add(m, a, id, len, h))) mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    return e;
}

static str_slot *lookup(const strmap *m, const char *id)
{
    size_t len = strlen(id);
    return strmap_find(m, id, len, hash_bytes(id, len));
}

/* Pass 1 over the run (or qrels): the qids and docnos that units need. */
static mch_status trec_collect(mch_input *in, mch_err *err)
{
    mch_lines *l;
    mch_status st = mch_lines_open(&l, in->path, err);
    for (; st == MCH_OK;) {
        char *s, why[160];
        size_t len;
        long line;
        if ((st = mch_lines_next(l, &s, &len, &line, err)) != MCH_OK || !s) break;
        if (len == 0) continue;
        trec_unit u;
        if (!parse_trec(s, len, in->has_run, &u, why, sizeof why)) {
            if (in->o.strict) st = mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: %s", in->path, line, why);
            continue; /* reported by the second pass */
        }
        if (!trec_wanted(in, &u)) continue;
        if (!need(&in->qids, &in->ar, u.qid, err) || !need(&in->docnos, &in->ar, u.docno, err))
            st = MCH_ERR_NOMEM;
    }
    mch_lines_close(l);
    return st;
}

/* Reads a table of `id<TAB>text` lines (topics, or TSV docs), or JSONL {"docno","text"} docs,
 * keeping the text of the ids in m. */
static mch_status trec_table(mch_input *in, const char *path, int is_docs, strmap *m, mch_err *err)
{
    const char *id_name = is_docs ? "docno" : "qid", *text_name = is_docs ? "text" : "query";
    int jsonl = is_docs && (ends_with(path, ".jsonl") || ends_with(path, ".jsonl.zst"));
    mch_lines *l;
    mch_status st = mch_lines_open(&l, path, err);
    while (st == MCH_OK) {
        char *s, why[160];
        size_t len;
        long line;
        if ((st = mch_lines_next(l, &s, &len, &line, err)) != MCH_OK || !s) break;
        if (len == 0) continue;
        size_t idn = strlen(id_name);
        if (!jsonl && line == 1 && strncmp(s, id_name, idn) == 0 &&
            (s[idn] == '\t' || s[idn] == '\0'))
            continue; /* a header */
        const char *id = NULL, *text = NULL;
        char num[32];
        cJSON *o = NULL;
        int good = !bad_text(s, len, why, sizeof why);
        if (good && jsonl) {
            good = (o = json_object(s, len, why, sizeof why)) != NULL &&
                   json_id(o, "docno", num, sizeof num, &id, why, sizeof why) &&
                   json_str(o, "text", 0, &text, why, sizeof why);
        } else if (good) {
            char *f[2];
            int n = split_tabs(s, f, 2);
            good = n == 2;
            if (good) {
                id = f[0];
                text = f[1];
            } else {
                snprintf(why, sizeof why, "expected 2 tab-separated columns (%s, %s), found %d",
                         id_name, text_name, n);
            }
        }
        if (good && (!*id || blank(text))) {
            snprintf(why, sizeof why, "empty %s", !*id ? id_name : text_name);
            good = 0;
        }
        str_slot *e = good ? lookup(m, id) : NULL;
        if (!good) {
            st = skip_line(in, 1, path, line, err, "%s", why);
        } else if (e && e->text) {
            st = skip_line(in, 1, path, line, err, "duplicate %s '%.*s', first at line %ld",
                           id_name, ID_SHOW, id, e->line);
        } else if (e) {
            if (!(e->text = arena_copy(&in->ar, text, strlen(text))))
                st = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
            e->line = line;
        }
        cJSON_Delete(o);
    }
    mch_lines_close(l);
    return st;
}

static uint64_t pair_key(const str_slot *q, const str_slot *d)
{
    return (uint64_t)q->id << 32 | d->id;
}

/* Qrels with a run: the grades of the pairs whose qid and docno the run needs. */
static mch_status trec_grades(mch_input *in, mch_err *err)
{
    mch_lines *l;
    mch_status st = mch_lines_open(&l, in->qrels, err);
    while (st == MCH_OK) {
        char *s, why[160];
        size_t len;
        long line;
        if ((st = mch_lines_next(l, &s, &len, &line, err)) != MCH_OK || !s) break;
        if (len == 0) continue;
        trec_unit u;
        if (!parse_trec(s, len, 0, &u, why, sizeof why)) {
            st = skip_line(in, 1, in->qrels, line, err, "%s", why);
            continue;
        }
        const str_slot *q = lookup(&in->qids, u.qid), *d = lookup(&in->docnos, u.docno);
        if (!q || !d) continue;
        uint64_t key = pair_key(q, d);
        const pair_slot *p = pairmap_find(&in->grades, key);
        if (p)
            st = skip_line(in, 1, in->qrels, line, err,
                           "duplicate (qid, docno) pair, first at line %ld", p->line);
        else if (!pairmap_add(&in->grades, key, line, u.num))
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", in->qrels);
    }
    mch_lines_close(l);
    return st;
}

static char *dup_or_null(const char *s, int *nomem)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *nomem = 1;
    return d;
}

mch_status mch_input_open_trec(mch_input **out, const char *run, const char *topics,
                               const char *docs, const char *qrels, const mch_input_opts *o,
                               mch_err *err)
{
    *out = NULL;
    if (!topics || !docs || (!run && !qrels))
        return mch_fail(err, MCH_ERR_ARG,
                        "TREC input needs topics, docs, and a run or qrels (topics %s, docs %s, "
                        "run %s, qrels %s)",
                        topics ? topics : "missing", docs ? docs : "missing", run ? run : "missing",
                        qrels ? qrels : "missing");
    mch_input *in;
    mch_status st = input_create(&in, KIND_TREC, run ? run : qrels, o, err);
    if (st != MCH_OK) return st;
    int nomem = 0;
    in->has_run = run != NULL;
    in->topics = dup_or_null(topics, &nomem);
    in->docs = dup_or_null(docs, &nomem);
    in->qrels = dup_or_null(qrels, &nomem);
    if (nomem) st = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", in->path);
    if (st == MCH_OK) st = trec_collect(in, err);
    if (st == MCH_OK) st = trec_table(in, in->topics, 0, &in->qids, err);
    if (st == MCH_OK) st = trec_table(in, in->docs, 1, &in->docnos, err);
    if (st == MCH_OK && run && qrels) st = trec_grades(in, err);
    if (st == MCH_OK) st = mch_lines_open(&in->lines, in->path, err);
    if (st != MCH_OK) {
        mch_input_close(in);
        return st;
    }
    *out = in;
    return MCH_OK;
}

/* Pass 2 over the run (or qrels): units in input order. */
static mch_status next_trec(mch_input *in, const mch_record **rec, mch_err *err)
{
    for (;;) {
        char *s, why[160];
        size_t len;
        long line;
        mch_status st = mch_lines_next(in->lines, &s, &len, &line, err);
        if (st != MCH_OK) return st;
        if (!s) return MCH_OK;
        if (len == 0) continue;
        trec_unit u;
        if (!parse_trec(s, len, in->has_run, &u, why, sizeof why)) {
            in->rep.units++;
            if ((st = skip_line(in, 0, in->path, line, err, "%s", why)) != MCH_OK) return st;
            continue;
        }
        if (!trec_wanted(in, &u)) continue;
        in->rep.units++;
        const str_slot *q = lookup(&in->qids, u.qid), *d = lookup(&in->docnos, u.docno);
        if (!q || !d) /* only when the file changed since the first pass */
            return mch_fail(err, MCH_ERR_IO, "%s:%ld: file changed while being read", in->path,
                            line);
        uint64_t key = pair_key(q, d);
        const pair_slot *p = pairmap_find(&in->seen, key);
        if (p) {
            st = skip_line(in, 0, in->path, line, err,
                           "duplicate (qid, docno) pair, first at line %ld", p->line);
        } else if (!pairmap_add(&in->seen, key, line, 0)) {
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", in->path);
        } else if (!q->text) {
            st = skip_line(in, 0, in->path, line, err, "qid '%.*s' not in topics %s", ID_SHOW,
                           u.qid, in->topics);
        } else if (!d->text) {
            st = skip_line(in, 0, in->path, line, err, "docno '%.*s' not in docs %s", ID_SHOW,
                           u.docno, in->docs);
        } else {
            int relevance = -1;
            if (!in->has_run) {
                relevance = u.num;
            } else if (in->qrels) {
                const pair_slot *g = pairmap_find(&in->grades, key);
                if (g) relevance = g->grade;
            }
            in->rec = (mch_record){.qid = q->key,
                                   .query = q->text,
                                   .docno = d->key,
                                   .text = d->text,
                                   .term = NULL,
                                   .relevance = relevance,
                                   .rank = in->has_run ? u.num : -1,
                                   .file = in->path,
                                   .line = line};
            in->rep.produced++;
            *rec = &in->rec;
            return MCH_OK;
        }
        if (st != MCH_OK) return st;
    }
}

mch_status mch_input_next(mch_input *in, const mch_record **rec, mch_err *err)
{
    *rec = NULL;
    if (in->failed != MCH_OK) return mch_fail(err, in->failed, "%s", in->fail_msg);
    mch_err local = {0};
    mch_status st = in->kind == KIND_TSV     ? next_tsv(in, rec, &local)
                    : in->kind == KIND_JSONL ? next_jsonl(in, rec, &local)
                                             : next_trec(in, rec, &local);
    if (st != MCH_OK) {
        *rec = NULL;
        in->failed = st;
        snprintf(in->fail_msg, sizeof in->fail_msg, "%s", local.msg);
        mch_fail(err, st, "%s", local.msg);
    }
    return st;
}
