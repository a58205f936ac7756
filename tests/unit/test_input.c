/* Unit tests of the input readers (coordinator/input_*.c): each test writes small TSV, JSONL and
 * TREC files (and .zst copies made with ZSTD_compress) into a mkdtemp directory and checks the
 * exact records, every skip reason with its line, the units == produced + skipped invariant,
 * strict mode's "FILE:LINE: reason" error, and the line reader's edge cases (CRLF, no final
 * newline, lines over 1 MB, NUL bytes, corrupt and truncated zstd streams). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "input.h"
#include "testutil.h"

typedef struct {
    char dir[4096];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    if (tu_tmpdir_make(fx->dir, sizeof fx->dir, "mch_input")) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    int rc = tu_tmpdir_remove(fx->dir);
    free(fx);
    return rc;
}

/* Path of name in the fixture directory (a static buffer per slot, 8 slots in rotation). */
static const char *at(const fixture *fx, const char *name)
{
    static char paths[8][4400];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", fx->dir, name);
    return p;
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* s compressed at level 3 with a content checksum (as the zstd program writes); free it. */
static unsigned char *compress(const void *s, size_t len, size_t *zn)
{
    size_t cap = ZSTD_compressBound(len);
    unsigned char *z = malloc(cap);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_true(z && c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
    *zn = ZSTD_compress2(c, z, cap, s, len);
    assert_false(ZSTD_isError(*zn));
    ZSTD_freeCCtx(c);
    return z;
}

/* Writes s to path; when path ends in .zst, zstd-compressed. */
static void write_file(const char *path, const char *s, size_t len)
{
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".zst") != 0) {
        write_bytes(path, s, len);
        return;
    }
    size_t zn;
    unsigned char *z = compress(s, len, &zn);
    write_bytes(path, z, zn);
    free(z);
}

static void write_str(const char *path, const char *s)
{
    write_file(path, s, strlen(s));
}

/* A copy of a record. */
typedef struct {
    char *qid, *query, *docno, *text, *term, *file;
    int relevance, rank;
    long line;
} rec_copy;

typedef struct {
    rec_copy *r;
    long n;
    mch_status st; /* how the draining ended */
    mch_err err;
} drained;

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* Reads every record of in (up to the end or an error) and checks the counting invariant. */
static drained drain(mch_input *in)
{
    drained d = {0};
    long cap = 0;
    for (;;) {
        const mch_record *r;
        d.st = mch_input_next(in, &r, &d.err);
        if (d.st != MCH_OK || !r) break;
        if (d.n == cap) {
            cap = cap ? cap * 2 : 16;
            d.r = realloc(d.r, (size_t)cap * sizeof *d.r);
            assert_non_null(d.r);
        }
        d.r[d.n++] = (rec_copy){dup_or_null(r->qid),
                                dup_or_null(r->query),
                                dup_or_null(r->docno),
                                dup_or_null(r->text),
                                dup_or_null(r->term),
                                dup_or_null(r->file),
                                r->relevance,
                                r->rank,
                                r->line};
    }
    const mch_skip_report *rep = mch_input_report(in);
    assert_int_equal(rep->units, rep->produced + rep->skipped);
    assert_int_equal(rep->produced, d.n);
    return d;
}

static void drained_free(drained *d)
{
    for (long i = 0; i < d->n; i++) {
        rec_copy *r = &d->r[i];
        free(r->qid);
        free(r->query);
        free(r->docno);
        free(r->text);
        free(r->term);
        free(r->file);
    }
    free(d->r);
}

static void check_rec(const rec_copy *r, const char *qid, const char *query, const char *docno,
                      const char *text, const char *term, int relevance, int rank, long line)
{
    assert_string_equal(r->qid, qid);
    assert_string_equal(r->query, query);
    assert_string_equal(r->docno, docno);
    assert_string_equal(r->text, text);
    if (term)
        assert_string_equal(r->term, term);
    else
        assert_null(r->term);
    assert_int_equal(r->relevance, relevance);
    assert_int_equal(r->rank, rank);
    assert_int_equal(r->line, line);
}

/* Entry i of the report is file:line: reason. */
static void check_skip(const mch_input *in, long i, const char *file, long line, const char *reason)
{
    const mch_skip_report *rep = mch_input_report(in);
    assert_true(i < rep->n_entries);
    const mch_skip *e = &rep->entries[i];
    if (strcmp(e->file, file) != 0 || e->line != line || strcmp(e->reason, reason) != 0) {
        fprintf(stderr, "entry %ld: got %s:%ld: %s\n     want %s:%ld: %s\n", i, e->file, e->line,
                e->reason, file, line, reason);
        fail();
    }
}

/* ---- the line reader ---- */

static void read_all_lines(const char *path, long *n_out, char ***lines_out, size_t **lens_out)
{
    mch_lines *l;
    mch_err err = {0};
    assert_int_equal(mch_lines_open(&l, path, 0, &err), MCH_OK);
    long n = 0, cap = 0;
    char **lines = NULL;
    size_t *lens = NULL;
    for (;;) {
        char *s;
        size_t len;
        long no;
        assert_int_equal(mch_lines_next(l, &s, &len, &no, &err), MCH_OK);
        if (!s) break;
        assert_int_equal(no, n + 1);
        assert_int_equal(s[len], '\0');
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            lines = realloc(lines, (size_t)cap * sizeof *lines);
            lens = realloc(lens, (size_t)cap * sizeof *lens);
            assert_true(lines && lens);
        }
        lines[n] = malloc(len + 1);
        assert_non_null(lines[n]);
        memcpy(lines[n], s, len + 1);
        lens[n++] = len;
    }
    mch_lines_close(l);
    *n_out = n;
    *lines_out = lines;
    *lens_out = lens;
}

static void free_lines(long n, char **lines, size_t *lens)
{
    for (long i = 0; i < n; i++) free(lines[i]);
    free(lines);
    free(lens);
}

static void test_lines_crlf_no_final_newline_nul_bom(void **state)
{
    const fixture *fx = *state;
    static const char text[] = "\xEF\xBB\xBF"
                               "a\r\n\r\nb\x00"
                               "c\n\nlast\r";
    const char *names[] = {"l.txt", "l.txt.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_file(p, text, sizeof text - 1);
        long n;
        char **lines;
        size_t *lens;
        read_all_lines(p, &n, &lines, &lens);
        assert_int_equal(n, 5);
        assert_string_equal(lines[0], "a"); /* BOM and "\r\n" gone */
        assert_int_equal(lens[1], 0);
        assert_int_equal(lens[2], 3); /* "b\0c": the NUL byte is kept, strlen < len */
        assert_memory_equal(lines[2], "b\0c", 3);
        assert_int_equal(lens[3], 0);
        assert_string_equal(lines[4], "last\r"); /* no "\n": the "\r" is data */
        free_lines(n, lines, lens);
    }
}

static void test_lines_empty_and_final_newline(void **state)
{
    const fixture *fx = *state;
    const char *names[] = {"e.txt", "e.txt.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_str(p, "");
        long n;
        char **lines;
        size_t *lens;
        read_all_lines(p, &n, &lines, &lens);
        assert_int_equal(n, 0);
        free_lines(n, lines, lens);
        write_str(p, "x\ny\n");
        read_all_lines(p, &n, &lines, &lens);
        assert_int_equal(n, 2);
        assert_string_equal(lines[1], "y");
        free_lines(n, lines, lens);
    }
}

/* Lines of 3 MB cross many read buffers (256 KB plain, 128 KB zstd) and arrive whole. */
static void test_lines_longer_than_buffers(void **state)
{
    const fixture *fx = *state;
    size_t big = (size_t)3 << 20;
    char *text = malloc(2 * big + 16);
    assert_non_null(text);
    size_t n = 0;
    for (size_t i = 0; i < big; i++) text[n++] = (char)('a' + i % 26);
    text[n++] = '\n';
    text[n++] = 'z';
    text[n++] = '\n';
    for (size_t i = 0; i < big; i++) text[n++] = (char)('A' + i % 26);
    const char *names[] = {"big.txt", "big.txt.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_file(p, text, n);
        long nl;
        char **lines;
        size_t *lens;
        read_all_lines(p, &nl, &lines, &lens);
        assert_int_equal(nl, 3);
        assert_int_equal(lens[0], big);
        assert_memory_equal(lines[0], text, big);
        assert_string_equal(lines[1], "z");
        assert_int_equal(lens[2], big);
        assert_memory_equal(lines[2], text + big + 3, big);
        free_lines(nl, lines, lens);
    }
    free(text);
}

/* A small file gets a buffer of its size at open; lines appended after the open (more than that
 * buffer holds) are still read, in more refills. */
static void test_lines_small_file_that_grows(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "grows.txt");
    write_file(p, "first\n", 6);
    mch_lines *l;
    mch_err err = {0};
    assert_int_equal(mch_lines_open(&l, p, 0, &err), MCH_OK);
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    long want = 20000; /* "line NNNNN\n": 11 bytes each, 220,000 in all */
    for (long i = 0; i < want; i++) fprintf(f, "line %05ld\n", i);
    assert_int_equal(fclose(f), 0);
    char *s, expect[32];
    size_t len;
    long no, n = 0;
    assert_int_equal(mch_lines_next(l, &s, &len, &no, &err), MCH_OK);
    assert_string_equal(s, "first");
    for (;;) {
        assert_int_equal(mch_lines_next(l, &s, &len, &no, &err), MCH_OK);
        if (!s) break;
        snprintf(expect, sizeof expect, "line %05ld", n);
        assert_string_equal(s, expect);
        assert_int_equal(no, n + 2);
        n++;
    }
    assert_int_equal(n, want);
    mch_lines_close(l);
}

/* Two zstd frames back to back read as one stream. */
static void test_lines_concatenated_frames(void **state)
{
    const fixture *fx = *state;
    char z[256];
    size_t a = ZSTD_compress(z, sizeof z, "one\ntw", 6, 1);
    assert_false(ZSTD_isError(a));
    size_t b = ZSTD_compress(z + a, sizeof z - a, "o\nthree\n", 8, 1);
    assert_false(ZSTD_isError(b));
    const char *p = at(fx, "cat.zst");
    write_bytes(p, z, a + b);
    long n;
    char **lines;
    size_t *lens;
    read_all_lines(p, &n, &lines, &lens);
    assert_int_equal(n, 3);
    assert_string_equal(lines[1], "two");
    assert_string_equal(lines[2], "three");
    free_lines(n, lines, lens);
}

static void test_lines_missing_file_is_io_error(void **state)
{
    const fixture *fx = *state;
    mch_lines *l = (mch_lines *)1;
    mch_err err = {0};
    const char *p = at(fx, "absent.tsv");
    assert_int_equal(mch_lines_open(&l, p, 0, &err), MCH_ERR_IO);
    assert_null(l);
    assert_non_null(strstr(err.msg, p));
    mch_input *in = (mch_input *)1;
    mch_err err2 = {0};
    assert_int_equal(mch_input_open_tsv(&in, p, NULL, &err2), MCH_ERR_IO);
    assert_null(in);
}

/* A TSV .zst whose compressed bytes were damaged, or cut short, fails with MCH_ERR_ZSTD naming
 * the file, after the records before the damage. */
static void test_corrupt_and_truncated_zst(void **state)
{
    const fixture *fx = *state;
    size_t len = 400000;
    char *text = malloc(len);
    assert_non_null(text);
    size_t n = 0;
    unsigned seed = 7;
    for (long i = 0; n + 200 < len; i++) {
        n += (size_t)sprintf(text + n, "q%ld\tquery %ld\td%ld\t", i, i, i);
        for (int j = 0; j < 60; j++) {
            seed = seed * 1103515245u + 12345u;
            text[n++] = (char)('a' + (seed >> 16) % 26);
        }
        text[n++] = '\n';
    }
    size_t zn;
    unsigned char *z = compress(text, n, &zn);
    for (int mode = 0; mode < 3; mode++) {
        const char *p = at(fx, "bad.tsv.zst");
        if (mode == 0) { /* damaged in the middle */
            unsigned char *c = malloc(zn);
            assert_non_null(c);
            memcpy(c, z, zn);
            for (size_t i = zn / 2; i < zn / 2 + 64; i++) c[i] ^= 0x5a;
            write_bytes(p, c, zn);
            free(c);
        } else if (mode == 1) { /* cut short */
            write_bytes(p, z, zn - 100);
        } else { /* not zstd at all */
            write_bytes(p, "q1\tq\td1\tt\n", 10);
        }
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_tsv(&in, p, NULL, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_ERR_ZSTD);
        assert_non_null(strstr(d.err.msg, p));
        assert_non_null(strstr(d.err.msg, mode == 1 ? "truncated" : "corrupt"));
        /* The error repeats; nothing more comes. */
        const mch_record *r;
        mch_err err2 = {0};
        assert_int_equal(mch_input_next(in, &r, &err2), MCH_ERR_ZSTD);
        assert_null(r);
        assert_string_equal(err2.msg, d.err.msg);
        drained_free(&d);
        mch_input_close(in);
        /* Under the readers, the line reader is finished after its error (input.h). */
        mch_lines *l;
        char *s;
        size_t sl;
        long no;
        mch_err e3 = {0}, e4 = {0};
        assert_int_equal(mch_lines_open(&l, p, 0, &e3), MCH_OK);
        mch_status st;
        while ((st = mch_lines_next(l, &s, &sl, &no, &e3)) == MCH_OK && s) continue;
        assert_int_equal(st, MCH_ERR_ZSTD);
        assert_int_equal(mch_lines_next(l, &s, &sl, &no, &e4), MCH_OK);
        assert_null(s);
        mch_lines_close(l);
    }
    free(z);
    free(text);
}

/* ---- TSV ---- */

static void test_tsv_happy_path_exact_fields(void **state)
{
    const fixture *fx = *state;
    const char *names[] = {"p.tsv", "p.tsv.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_str(p, "qid\tquery\tdocno\ttext\tterm\n"
                     "q1\tred apple\td1\tAn apple a day.\n"
                     "q1\tred apple\td2\tBananas, caf\xC3\xA9.\tapple\r\n"
                     "\n"
                     "7\tx y\t8\tz\t\n"
                     "q2\tlast one\td9\tno newline");
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_tsv(&in, p, NULL, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_OK);
        assert_int_equal(d.n, 4);
        check_rec(&d.r[0], "q1", "red apple", "d1", "An apple a day.", NULL, -1, -1, 2);
        check_rec(&d.r[1], "q1", "red apple", "d2", "Bananas, caf\xC3\xA9.", "apple", -1, -1, 3);
        check_rec(&d.r[2], "7", "x y", "8", "z", NULL, -1, -1, 5); /* empty term = none */
        check_rec(&d.r[3], "q2", "last one", "d9", "no newline", NULL, -1, -1, 6);
        assert_string_equal(d.r[0].file, p);
        const mch_skip_report *rep = mch_input_report(in);
        assert_int_equal(rep->units, 4); /* the header and the empty line are not units */
        assert_int_equal(rep->skipped, 0);
        assert_int_equal(rep->table_skipped, 0);
        drained_free(&d);
        mch_input_close(in);
    }
}

static const char bad_tsv[] = "q1\tquery\td1\ttext\n"           /* 1 good */
                              "q1\tquery\td2\n"                 /* 2 three columns */
                              "q1\tquery\td3\ttext\tt\textra\n" /* 3 six columns */
                              "q1\tqu\xC3\x28ry\td4\ttext\n"    /* 4 bad UTF-8 at byte 6 */
                              "q1\tquery\td5\tte\0xt\n"         /* 5 NUL at byte 15 */
                              "q1\t \td6\ttext\n"               /* 6 empty query */
                              "q1\tquery\td7\t\n"               /* 7 empty text */
                              "q1\tquery\td1\tagain\n"          /* 8 duplicate of line 1 */
                              "\tquery\td8\ttext\n"             /* 9 empty qid */
                              "q1\tquery\t\ttext\n"             /* 10 empty docno */
                              "q1\tquery\td2\ttext\n"           /* 11 good (line 2 was bad) */
                              "q1\tquery\t\xED\xA0\x80\ttext\n" /* 12 surrogate at byte 10 */
                              "qid\tquery\td9\ttext\n";         /* 13 not line 1: a unit */

static void check_bad_tsv_entries(const mch_input *in, const char *p)
{
    check_skip(in, 0, p, 2, "expected 4 or 5 tab-separated columns, found 3");
    check_skip(in, 1, p, 3, "expected 4 or 5 tab-separated columns, found 6");
    check_skip(in, 2, p, 4, "invalid UTF-8 at byte 6");
    check_skip(in, 3, p, 5, "NUL byte at byte 15");
    check_skip(in, 4, p, 6, "empty query");
    check_skip(in, 5, p, 7, "empty text");
    check_skip(in, 6, p, 8, "duplicate (qid, docno) pair, first at line 1");
    check_skip(in, 7, p, 9, "empty qid");
    check_skip(in, 8, p, 10, "empty docno");
    check_skip(in, 9, p, 12, "invalid UTF-8 at byte 10");
}

static void test_tsv_bad_lines_skipped_with_reasons(void **state)
{
    const fixture *fx = *state;
    const char *names[] = {"b.tsv", "b.tsv.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_file(p, bad_tsv, sizeof bad_tsv - 1);
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_tsv(&in, p, NULL, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_OK);
        assert_int_equal(d.n, 3);
        check_rec(&d.r[0], "q1", "query", "d1", "text", NULL, -1, -1, 1);
        check_rec(&d.r[1], "q1", "query", "d2", "text", NULL, -1, -1, 11);
        check_rec(&d.r[2], "qid", "query", "d9", "text", NULL, -1, -1, 13);
        const mch_skip_report *rep = mch_input_report(in);
        assert_int_equal(rep->units, 13);
        assert_int_equal(rep->skipped, 10);
        assert_int_equal(rep->n_entries, 10);
        check_bad_tsv_entries(in, p);
        drained_free(&d);
        mch_input_close(in);
    }
}

static void test_tsv_strict_first_bad_line_is_error(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "s.tsv");
    write_file(p, bad_tsv, sizeof bad_tsv - 1);
    mch_input *in;
    mch_err err = {0};
    mch_input_opts o = {.strict = 1};
    assert_int_equal(mch_input_open_tsv(&in, p, &o, &err), MCH_OK);
    drained d = drain(in);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.st, MCH_ERR_FORMAT);
    char want[4600];
    snprintf(want, sizeof want, "%s:2: expected 4 or 5 tab-separated columns, found 3", p);
    assert_string_equal(d.err.msg, want);
    const mch_record *r;
    mch_err err2 = {0};
    assert_int_equal(mch_input_next(in, &r, &err2), MCH_ERR_FORMAT);
    assert_string_equal(err2.msg, want);
    drained_free(&d);
    mch_input_close(in);
}

/* The rules `mechir score` sets: exactly 4 columns (a term column, even an empty one, makes a bad
 * line) and a repeated (qid, docno) pair is a unit like any other; all else as without them. */
static void test_tsv_four_columns_and_allow_duplicates(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "f.tsv");
    write_file(p, bad_tsv, sizeof bad_tsv - 1);
    mch_input_opts o = {.four_columns = 1, .allow_duplicates = 1};
    mch_input *in;
    mch_err err = {0};
    assert_int_equal(mch_input_open_tsv(&in, p, &o, &err), MCH_OK);
    drained d = drain(in);
    assert_int_equal(d.st, MCH_OK);
    assert_int_equal(d.n, 4);
    check_rec(&d.r[0], "q1", "query", "d1", "text", NULL, -1, -1, 1);
    check_rec(&d.r[1], "q1", "query", "d1", "again", NULL, -1, -1, 8);
    check_rec(&d.r[2], "q1", "query", "d2", "text", NULL, -1, -1, 11);
    check_rec(&d.r[3], "qid", "query", "d9", "text", NULL, -1, -1, 13);
    assert_int_equal(mch_input_report(in)->units, 13);
    assert_int_equal(mch_input_report(in)->skipped, 9);
    check_skip(in, 0, p, 2, "expected 4 tab-separated columns (qid, query, docno, text), found 3");
    check_skip(in, 1, p, 3, "expected 4 tab-separated columns (qid, query, docno, text), found 6");
    check_skip(in, 2, p, 4, "invalid UTF-8 at byte 6");
    check_skip(in, 3, p, 5, "NUL byte at byte 15");
    check_skip(in, 4, p, 6, "empty query");
    check_skip(in, 5, p, 7, "empty text");
    check_skip(in, 6, p, 9, "empty qid");
    check_skip(in, 7, p, 10, "empty docno");
    check_skip(in, 8, p, 12, "invalid UTF-8 at byte 10");
    drained_free(&d);
    mch_input_close(in);

    p = at(fx, "t.tsv");
    write_str(p, "qid\tquery\tdocno\ttext\tterm\n"
                 "q1\tquery\td1\ttext\tapple\n"
                 "q1\tquery\td2\ttext\t\n");
    assert_int_equal(mch_input_open_tsv(&in, p, &o, &err), MCH_OK);
    d = drain(in);
    assert_int_equal(d.st, MCH_OK);
    assert_int_equal(d.n, 0);
    assert_int_equal(mch_input_report(in)->units, 2); /* the header is not a unit */
    check_skip(in, 0, p, 2, "expected 4 tab-separated columns (qid, query, docno, text), found 5");
    check_skip(in, 1, p, 3, "expected 4 tab-separated columns (qid, query, docno, text), found 5");
    drained_free(&d);
    mch_input_close(in);
}

/* A document of 1.5 MB in a TSV line, plain and .zst, arrives whole. */
static void test_tsv_long_document(void **state)
{
    const fixture *fx = *state;
    size_t big = 1536 * 1024;
    char *s = malloc(big + 64);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "q\tquery\td\t");
    size_t text_at = n;
    for (size_t i = 0; i < big; i++) s[n++] = i % 7 == 6 ? ' ' : (char)('a' + i % 26);
    n += (size_t)sprintf(s + n, "\r\nq\tquery\te\tshort\r\n");
    const char *names[] = {"long.tsv", "long.tsv.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_file(p, s, n);
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_tsv(&in, p, NULL, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_OK);
        assert_int_equal(d.n, 2);
        assert_int_equal(strlen(d.r[0].text), big);
        assert_memory_equal(d.r[0].text, s + text_at, big);
        assert_string_equal(d.r[1].text, "short");
        drained_free(&d);
        mch_input_close(in);
    }
    free(s);
}

/* ---- JSONL ---- */

static void test_jsonl_happy_path_exact_fields(void **state)
{
    const fixture *fx = *state;
    const char *names[] = {"p.jsonl", "p.jsonl.zst"};
    for (int k = 0; k < 2; k++) {
        const char *p = at(fx, names[k]);
        write_str(p, "{\"qid\": \"q1\", \"query\": \"red apple\", \"docno\": \"d1\", \"text\": "
                     "\"An \\\"apple\\\"\\tday \\u00e9\"}\n"
                     "{\"qid\": 12, \"query\": \"q\", \"docno\": -3, \"text\": \"t\", \"term\": "
                     "\"apple\", \"relevance\": 2, \"rank\": 1}\r\n"
                     "\n"
                     "  {\"text\": \"t\", \"docno\": \"d\", \"query\": \"q\", \"qid\": \"q3\", "
                     "\"term\": null, \"relevance\": null, \"extra\": [1, 2]}  ");
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_jsonl(&in, p, NULL, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_OK);
        assert_int_equal(d.n, 3);
        check_rec(&d.r[0], "q1", "red apple", "d1", "An \"apple\"\tday \xC3\xA9", NULL, -1, -1, 1);
        check_rec(&d.r[1], "12", "q", "-3", "t", "apple", 2, 1, 2);
        check_rec(&d.r[2], "q3", "q", "d", "t", NULL, -1, -1, 4);
        assert_int_equal(mch_input_report(in)->units, 3);
        drained_free(&d);
        mch_input_close(in);
    }
}

static void test_jsonl_bad_lines_skipped_with_reasons(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "b.jsonl");
    write_str(p, "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d\",\"text\":\"t\"}\n" /* 1 */
                 "[1, 2]\n"                                                         /* 2 */
                 "{\"qid\":\"q\",\"query\":\"a\",\n"                                /* 3 */
                 "{\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\"}\n"              /* 4 */
                 "{\"qid\":1.5,\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\"}\n"  /* 5 */
                 "{\"qid\":\"q\",\"query\":7,\"docno\":\"d2\",\"text\":\"t\"}\n"    /* 6 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"\"}\n" /* 7 */
                 "{\"qid\":\"q\",\"query\":\"\",\"docno\":\"d2\",\"text\":\"t\"}\n" /* 8 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d\",\"text\":\"u\"}\n" /* 9 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\","
                 "\"rank\":\"1\"}\n" /* 10 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\","
                 "\"term\":3}\n"                                                        /* 11 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"\xFF\"}\n" /* 12 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\"} x\n"  /* 13 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\","
                 "\"relevance\":1e10}\n"                                             /* 14 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d2\",\"text\":\"t\"}"); /* 15 */
    mch_input *in;
    mch_err err = {0};
    assert_int_equal(mch_input_open_jsonl(&in, p, NULL, &err), MCH_OK);
    drained d = drain(in);
    assert_int_equal(d.st, MCH_OK);
    assert_int_equal(d.n, 2);
    check_rec(&d.r[0], "q", "a", "d", "t", NULL, -1, -1, 1);
    check_rec(&d.r[1], "q", "a", "d2", "t", NULL, -1, -1, 15);
    const mch_skip_report *rep = mch_input_report(in);
    assert_int_equal(rep->units, 15);
    assert_int_equal(rep->skipped, 13);
    check_skip(in, 0, p, 2, "not a JSON object");
    check_skip(in, 1, p, 3, "invalid JSON at byte 23");
    check_skip(in, 2, p, 4, "missing \"qid\" (or \"query_id\")");
    check_skip(in, 3, p, 5, "\"qid\" is not a string or an integer");
    check_skip(in, 4, p, 6, "\"query\" is not a string");
    check_skip(in, 5, p, 7, "empty text");
    check_skip(in, 6, p, 8, "empty query");
    check_skip(in, 7, p, 9, "duplicate (qid, docno) pair, first at line 1");
    check_skip(in, 8, p, 10, "\"rank\" is not an integer");
    check_skip(in, 9, p, 11, "\"term\" is not a string");
    check_skip(in, 10, p, 12, "invalid UTF-8 at byte 45");
    check_skip(in, 11, p, 13, "invalid JSON at byte 49: text after the object");
    check_skip(in, 12, p, 14, "\"relevance\" is not an integer");
    drained_free(&d);
    mch_input_close(in);
}

/* ---- the report ---- */

static void test_report_cap_and_print(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "r.tsv");
    write_str(p, "a\n"
                 "q\tquery\td\ttext\n"
                 "b\n"
                 "c\n"
                 "d\n");
    mch_input *in;
    mch_err err = {0};
    mch_input_opts o = {.report_cap = 2};
    assert_int_equal(mch_input_open_tsv(&in, p, &o, &err), MCH_OK);
    drained d = drain(in);
    assert_int_equal(d.n, 1);
    const mch_skip_report *rep = mch_input_report(in);
    assert_int_equal(rep->skipped, 4);
    assert_int_equal(rep->n_entries, 2);
    char buf[8192];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    mch_skip_report_print(rep, f);
    fclose(f);
    char want[8192];
    snprintf(want, sizeof want,
             "units 5, produced 1, skipped 4, bad table lines 0\n"
             "%s:1: expected 4 or 5 tab-separated columns, found 1\n"
             "%s:3: expected 4 or 5 tab-separated columns, found 1\n"
             "... and 2 more\n",
             p, p);
    assert_string_equal(buf, want);
    drained_free(&d);
    mch_input_close(in);
}

static void test_bad_options_refused(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "o.tsv");
    write_str(p, "q\tquery\td\ttext\n");
    mch_input *in = (mch_input *)1;
    mch_err err = {0};
    mch_input_opts o = {.top_k = -1};
    assert_int_equal(mch_input_open_tsv(&in, p, &o, &err), MCH_ERR_ARG);
    assert_null(in);
    mch_err err2 = {0};
    assert_int_equal(mch_input_open_trec(&in, NULL, p, p, NULL, NULL, &err2), MCH_ERR_ARG);
    assert_null(in);
}

/* ---- TREC ---- */

static const char topics_tsv[] = "qid\tquery\n"
                                 "q1\tred apple\n"
                                 "q2\tgreen pear\n"
                                 "q1\tduplicate wins not\n" /* 4 duplicate qid */
                                 "q3\n"                     /* 5 bad columns */
                                 "q4\t  \n"                 /* 6 empty query */
                                 "qx\tunused topic\n";

static const char docs_tsv[] = "docno\ttext\n"
                               "d1\tapples are red\n"
                               "d2\tpears are green\n"
                               "d3\tbananas\n"
                               "d1\tsecond d1\n" /* 5 duplicate docno */
                               "d9\t\xC3\n"      /* 6 invalid UTF-8 */
                               "d8\tunused\n";

static const char run_txt[] = "q1 Q0 d1 1 9.5 bm25\n"
                              "q1\tQ0\td2  2 8.0 bm25\n"
                              "q1 Q0 d7 3 7.0 bm25\n" /* 3 docno not in docs */
                              "q1 Q0 d3 4 6.0 bm25\n" /* 4 beyond top_k 3 */
                              "q2 Q0 d2 1 5.0 bm25\n"
                              "q2 Q0 d2 2 4.0 bm25\n"   /* 6 duplicate pair */
                              "q3 Q0 d1 1 3.0 bm25\n"   /* 7 qid not in topics */
                              "q2 Q0 d3 abc 2.0 bm25\n" /* 8 bad rank */
                              "q2 Q0 d3 3 2.0\n"        /* 9 five columns */
                              "q2 Q0 d3 3 2.0 bm25\n";

static const char qrels_txt[] = "q1 0 d1 2\n"
                                "q1 0 d2 0\n"
                                "q2 0 d3 1\n"
                                "q2 0 d3 3\n" /* 4 duplicate pair */
                                "q2 0 d2\n"   /* 5 bad columns */
                                "q9 0 d9 1\n";

static void test_trec_run_join_topk_qrels(void **state)
{
    const fixture *fx = *state;
    for (int zst = 0; zst < 2; zst++) {
        const char *run = at(fx, zst ? "run.txt.zst" : "run.txt");
        const char *topics = at(fx, "topics.tsv");
        const char *docs = at(fx, zst ? "docs.tsv.zst" : "docs.tsv");
        const char *qrels = at(fx, "qrels.txt");
        write_file(run, run_txt, sizeof run_txt - 1);
        write_file(topics, topics_tsv, sizeof topics_tsv - 1);
        write_file(docs, docs_tsv, sizeof docs_tsv - 1);
        write_file(qrels, qrels_txt, sizeof qrels_txt - 1);
        mch_input *in;
        mch_err err = {0};
        mch_input_opts o = {.top_k = 3};
        assert_int_equal(mch_input_open_trec(&in, run, topics, docs, qrels, &o, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_OK);
        assert_int_equal(d.n, 4);
        check_rec(&d.r[0], "q1", "red apple", "d1", "apples are red", NULL, 2, 1, 1);
        check_rec(&d.r[1], "q1", "red apple", "d2", "pears are green", NULL, 0, 2, 2);
        check_rec(&d.r[2], "q2", "green pear", "d2", "pears are green", NULL, -1, 1, 5);
        check_rec(&d.r[3], "q2", "green pear", "d3", "bananas", NULL, 1, 3, 10);
        assert_string_equal(d.r[0].file, run);
        const mch_skip_report *rep = mch_input_report(in);
        assert_int_equal(rep->units, 9); /* line 4 is beyond top_k: not a unit */
        assert_int_equal(rep->skipped, 5);
        assert_int_equal(rep->table_skipped, 7);
        /* Tables first (read when opening), then the units in order. */
        check_skip(in, 0, topics, 4, "duplicate qid 'q1', first at line 2");
        check_skip(in, 1, topics, 5, "expected 2 tab-separated columns (qid, query), found 1");
        check_skip(in, 2, topics, 6, "empty query");
        check_skip(in, 3, docs, 5, "duplicate docno 'd1', first at line 2");
        check_skip(in, 4, docs, 6, "invalid UTF-8 at byte 4");
        check_skip(in, 5, qrels, 4, "duplicate (qid, docno) pair, first at line 3");
        /* qrels line 5 is bad too, but read after the duplicate */
        char want[4600];
        snprintf(want, sizeof want, "docno 'd7' not in docs %s", docs);
        check_skip(in, 7, run, 3, want);
        check_skip(in, 8, run, 6, "duplicate (qid, docno) pair, first at line 5");
        snprintf(want, sizeof want, "qid 'q3' not in topics %s", topics);
        check_skip(in, 9, run, 7, want);
        check_skip(in, 10, run, 8, "rank 'abc' is not an integer");
        check_skip(in, 11, run, 9,
                   "expected 6 whitespace-separated columns (qid Q0 docno rank score tag), "
                   "found 5");
        check_skip(in, 6, qrels, 5,
                   "expected 4 whitespace-separated columns (qid iter docno grade), found 3");
        drained_free(&d);
        mch_input_close(in);
    }
}

/* Without qrels every relevance is unknown; top_k 0 keeps every rank. */
static void test_trec_run_without_qrels(void **state)
{
    const fixture *fx = *state;
    const char *run = at(fx, "run.txt"), *topics = at(fx, "topics.tsv");
    const char *docs = at(fx, "docs.tsv");
    write_file(run, run_txt, sizeof run_txt - 1);
    write_file(topics, topics_tsv, sizeof topics_tsv - 1);
    write_file(docs, docs_tsv, sizeof docs_tsv - 1);
    mch_input *in;
    mch_err err = {0};
    assert_int_equal(mch_input_open_trec(&in, run, topics, docs, NULL, NULL, &err), MCH_OK);
    drained d = drain(in);
    assert_int_equal(d.st, MCH_OK);
    assert_int_equal(d.n, 5);
    check_rec(&d.r[2], "q1", "red apple", "d3", "bananas", NULL, -1, 4, 4);
    for (long i = 0; i < d.n; i++) assert_int_equal(d.r[i].relevance, -1);
    assert_int_equal(mch_input_report(in)->units, 10);
    assert_int_equal(mch_input_report(in)->table_skipped, 5);
    drained_free(&d);
    mch_input_close(in);
}

/* Without a run the units are the qrels lines with grade > 0. */
static void test_trec_qrels_only_and_jsonl_docs(void **state)
{
    const fixture *fx = *state;
    const char *topics = at(fx, "topics.tsv"), *qrels = at(fx, "qrels.txt");
    write_file(topics, topics_tsv, sizeof topics_tsv - 1);
    write_str(qrels, "q1 0 d1 2\n"
                     "q1 0 d2 0\n"  /* not relevant: not a unit */
                     "q2 0 42 1\n"  /* integer docno in the JSONL docs */
                     "q2 0 d3 -1\n" /* not a unit */
                     "q2 0 d1 x\n"  /* bad grade */
                     "q1 0 d1 1\n"  /* duplicate */
                     "q2 0 d4 1\n"  /* docno not in docs */
                     "q2 0 d5 3\n");
    const char *names[] = {"docs.jsonl", "docs.jsonl.zst"};
    for (int k = 0; k < 2; k++) {
        const char *docs = at(fx, names[k]);
        write_str(docs, "{\"docno\": \"d1\", \"text\": \"apples\"}\n"
                        "{\"docno\": 42, \"text\": \"forty two\"}\n"
                        "{\"docno\": \"d5\", \"text\": \"\"}\n"
                        "not json\n"
                        "{\"docno\": \"d5\", \"text\": \"five\"}\n"
                        "{\"docno\": \"d1\", \"text\": \"again\"}\n");
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_trec(&in, NULL, topics, docs, qrels, NULL, &err), MCH_OK);
        drained d = drain(in);
        assert_int_equal(d.st, MCH_OK);
        assert_int_equal(d.n, 3);
        check_rec(&d.r[0], "q1", "red apple", "d1", "apples", NULL, 2, -1, 1);
        check_rec(&d.r[1], "q2", "green pear", "42", "forty two", NULL, 1, -1, 3);
        check_rec(&d.r[2], "q2", "green pear", "d5", "five", NULL, 3, -1, 8);
        assert_string_equal(d.r[0].file, qrels);
        const mch_skip_report *rep = mch_input_report(in);
        assert_int_equal(rep->units, 6);
        assert_int_equal(rep->skipped, 3);
        assert_int_equal(rep->table_skipped, 3 + 3); /* topics 3, docs 3 */
        check_skip(in, 3, docs, 3, "empty text");
        check_skip(in, 4, docs, 4, "invalid JSON at byte 1");
        check_skip(in, 5, docs, 6, "duplicate docno 'd1', first at line 1");
        check_skip(in, 6, qrels, 5, "grade 'x' is not an integer");
        check_skip(in, 7, qrels, 6, "duplicate (qid, docno) pair, first at line 1");
        char want[4600];
        snprintf(want, sizeof want, "docno 'd4' not in docs %s", docs);
        check_skip(in, 8, qrels, 7, want);
        drained_free(&d);
        mch_input_close(in);
    }
}

/* Strict: a bad table line fails the open; a bad run line fails the open too (first pass). */
static void test_trec_strict(void **state)
{
    const fixture *fx = *state;
    const char *run = at(fx, "run.txt"), *topics = at(fx, "topics.tsv");
    const char *docs = at(fx, "docs.tsv");
    write_str(run, "q1 Q0 d1 1 9.5 bm25\n"
                   "q1 Q0 d2 2 8.0 bm25\n");
    write_file(topics, topics_tsv, sizeof topics_tsv - 1);
    write_str(docs, "d1\ta\nd2\tb\n");
    mch_input *in = (mch_input *)1;
    mch_err err = {0};
    mch_input_opts o = {.strict = 1};
    assert_int_equal(mch_input_open_trec(&in, run, topics, docs, NULL, &o, &err), MCH_ERR_FORMAT);
    assert_null(in);
    char want[4600];
    snprintf(want, sizeof want, "%s:4: duplicate qid 'q1', first at line 2", topics);
    assert_string_equal(err.msg, want);

    write_str(topics, "q1\tred\n");
    write_str(run, "q1 Q0 d1 1 9.5 bm25\n"
                   "q1 Q0 d2 x 8.0 bm25\n");
    mch_err err2 = {0};
    assert_int_equal(mch_input_open_trec(&in, run, topics, docs, NULL, &o, &err2), MCH_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:2: rank 'x' is not an integer", run);
    assert_string_equal(err2.msg, want);

    /* A join failure is found while reading units. */
    write_str(run, "q1 Q0 d1 1 9.5 bm25\n"
                   "q1 Q0 d3 2 8.0 bm25\n");
    mch_err err3 = {0};
    assert_int_equal(mch_input_open_trec(&in, run, topics, docs, NULL, &o, &err3), MCH_OK);
    drained d = drain(in);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.st, MCH_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:2: docno 'd3' not in docs %s", run, docs);
    assert_string_equal(d.err.msg, want);
    drained_free(&d);
    mch_input_close(in);
}

static void test_trec_missing_table_file(void **state)
{
    const fixture *fx = *state;
    const char *run = at(fx, "run.txt"), *topics = at(fx, "topics.tsv");
    write_str(run, "q1 Q0 d1 1 9.5 bm25\n");
    write_str(topics, "q1\tred\n");
    mch_input *in = (mch_input *)1;
    mch_err err = {0};
    const char *docs = at(fx, "nope.tsv");
    assert_int_equal(mch_input_open_trec(&in, run, topics, docs, NULL, NULL, &err), MCH_ERR_IO);
    assert_null(in);
    assert_non_null(strstr(err.msg, docs));
}

/* The real Debian descriptions collection (tests/data/debian, copied from the project's shared
 * data): 58,230 topics, docs and qrels; a BM25 top-20 run of 2,000 queries (39,995 lines, as its
 * README and `zstd -dc | wc -l` say). Every unit is produced, none skipped. */
static void test_real_collection(void **state)
{
    (void)state;
    const char *dir = MCH_TEST_DATA "/debian";
    const long want_units[2] = {58230, 39995};
    char run[4200], topics[4200], docs[4200], qrels[4200];
    snprintf(run, sizeof run, "%s/bm25-top20.run.zst", dir);
    snprintf(topics, sizeof topics, "%s/topics.tsv.zst", dir);
    snprintf(docs, sizeof docs, "%s/docs.tsv.zst", dir);
    snprintf(qrels, sizeof qrels, "%s/qrels.txt.zst", dir);
    for (int with_run = 0; with_run < 2; with_run++) {
        mch_input *in;
        mch_err err = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(
            mch_input_open_trec(&in, with_run ? run : NULL, topics, docs, qrels, NULL, &err),
            MCH_OK);
        long n = 0;
        const mch_record *r;
        mch_status st;
        while ((st = mch_input_next(in, &r, &err)) == MCH_OK && r) n++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_int_equal(st, MCH_OK);
        const mch_skip_report *rep = mch_input_report(in);
        assert_int_equal(rep->units, rep->produced + rep->skipped);
        assert_int_equal(rep->produced, n);
        assert_int_equal(rep->units, want_units[with_run]);
        assert_int_equal(rep->skipped, 0);
        fprintf(stderr, "%s: ", with_run ? "run" : "qrels");
        mch_skip_report_print(rep, stderr);
        fprintf(stderr, "  %.3f s\n",
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        mch_input_close(in);
    }
}

/* ---- ir_datasets names, titles, given pairs ---- */

/* The next record of in (failing when there is none). */
static const mch_record *next_rec(mch_input *in)
{
    const mch_record *r = NULL;
    mch_err err = {0};
    assert_int_equal(mch_input_next(in, &r, &err), MCH_OK);
    assert_non_null(r);
    return r;
}

static void assert_end(mch_input *in)
{
    const mch_record *r = NULL;
    mch_err err = {0};
    assert_int_equal(mch_input_next(in, &r, &err), MCH_OK);
    assert_null(r);
    const mch_skip_report *rep = mch_input_report(in);
    assert_int_equal(rep->units, rep->produced + rep->skipped);
}

static void test_jsonl_ir_datasets_names_and_title(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "ird.jsonl");
    write_str(p, "{\"query_id\":\"q1\",\"query\":\"red apple\",\"doc_id\":\"d1\",\"title\":"
                 "\"Apples\",\"text\":\"An apple a day.\"}\n" /* 1 */
                 "{\"query_id\":7,\"query\":\"q\",\"doc_id\":\"d2\",\"text\":\"t\",\"title\":"
                 "null}\n" /* 2 */
                 "{\"qid\":\"q\",\"query_id\":\"q\",\"query\":\"a\",\"docno\":\"d3\",\"text\":"
                 "\"t\"}\n"                                             /* 3 */
                 "{\"query\":\"a\",\"doc_id\":\"d4\",\"text\":\"t\"}\n" /* 4 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d5\",\"text\":\"t\",\"perturbed\":"
                 "\"t x\"}\n" /* 5 */
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d6\",\"text\":\"t\",\"title\":\"\"}\n"
                 "{\"qid\":\"q\",\"query\":\"a\",\"docno\":\"d7\",\"text\":\"t\",\"title\":3}\n");
    mch_input *in;
    mch_err err = {0};
    assert_int_equal(mch_input_open_jsonl(&in, p, NULL, &err), MCH_OK);
    const mch_record *r = next_rec(in);
    assert_string_equal(r->qid, "q1");
    assert_string_equal(r->docno, "d1");
    assert_string_equal(r->text, "Apples An apple a day."); /* f"{title} {text}" */
    assert_null(r->perturbed);
    r = next_rec(in);
    assert_string_equal(r->qid, "7");
    assert_string_equal(r->text, "t"); /* a null title: the text alone */
    r = next_rec(in);
    assert_string_equal(r->docno, "d6");
    assert_string_equal(r->text, " t"); /* an empty title, as ir_datasets joins it */
    assert_int_equal(r->line, 6);
    assert_end(in);
    check_skip(in, 0, p, 3, "both \"qid\" and \"query_id\"");
    check_skip(in, 1, p, 4, "missing \"qid\" (or \"query_id\")");
    check_skip(in, 2, p, 5, "has \"perturbed\": given pairs need --perturb given");
    check_skip(in, 3, p, 7, "\"title\" is not a string");
    assert_int_equal(mch_input_report(in)->skipped, 4);
    mch_input_close(in);
}

static void test_given_pairs_jsonl_and_tsv(void **state)
{
    const fixture *fx = *state;
    const char *p = at(fx, "given.jsonl");
    write_str(p, "{\"qid\":\"q1\",\"query\":\"a\",\"docno\":\"d1\",\"text\":\"t\",\"perturbed\":"
                 "\"t x\"}\n" /* 1 */
                 "{\"qid\":\"q1\",\"query\":\"a\",\"docno\":\"d1\",\"text\":\"t\",\"perturbed\":"
                 "\"x t\",\"pair_id\":\"p2\"}\n" /* 2 */
                 "{\"qid\":\"q1\",\"query\":\"a\",\"docno\":\"d1\",\"text\":\"t\",\"perturbed\":"
                 "\"x t\",\"pair_id\":\"p2\"}\n"                            /* 3 */
                 "{\"query\":\"a\",\"text\":\"t\",\"perturbed\":\"t y\"}\n" /* 4 */
                 "{\"query\":\"a\",\"text\":\"t\"}\n"                       /* 5 */
                 "{\"query\":\"a\",\"text\":\"t\",\"perturbed\":\"  \"}\n"  /* 6 */
                 "{\"query\":\"a\",\"title\":\"T\",\"text\":\"t\",\"perturbed\":\"t z\","
                 "\"pair_id\":9}\n"                                     /* 7 */
                 "{\"query\":\"a\",\"text\":\"t\",\"perturbed\":7}\n"); /* 8 */
    mch_input_opts o = {.given = 1};
    mch_input *in;
    mch_err err = {0};
    assert_int_equal(mch_input_open_jsonl(&in, p, &o, &err), MCH_OK);
    const mch_record *r = next_rec(in);
    assert_string_equal(r->text, "t");
    assert_string_equal(r->perturbed, "t x");
    assert_null(r->pair_key);
    r = next_rec(in);
    assert_string_equal(r->perturbed, "x t");
    assert_string_equal(r->pair_key, "p2");
    r = next_rec(in);
    assert_string_equal(r->qid, "");
    assert_string_equal(r->docno, "");
    assert_string_equal(r->pair_key, "4"); /* neither ids nor a key: the line */
    r = next_rec(in);
    assert_string_equal(r->text, "T t");
    assert_string_equal(r->perturbed, "T t z");
    assert_string_equal(r->pair_key, "9");
    assert_end(in);
    check_skip(in, 0, p, 3, "duplicate (qid, docno, pair_id) pair, first at line 2");
    check_skip(in, 1, p, 5, "missing \"perturbed\"");
    check_skip(in, 2, p, 6, "empty perturbed");
    check_skip(in, 3, p, 8, "\"perturbed\" is not a string");
    mch_input_close(in);

    const char *t = at(fx, "given.tsv");
    write_str(t, "qid\tquery\tdocno\ttext\tperturbed\n"
                 "q1\ta\td1\tt\tt x\n"
                 "q1\ta\td1\tt\tx t\tk\n"
                 "q1\ta\td1\tt\n"
                 "q1\ta\td2\tt\t\n"
                 "q1\ta\td1\tt\ty t\tk\n");
    assert_int_equal(mch_input_open_tsv(&in, t, &o, &err), MCH_OK);
    r = next_rec(in);
    assert_string_equal(r->text, "t");
    assert_string_equal(r->perturbed, "t x");
    assert_null(r->pair_key);
    assert_null(r->term);
    r = next_rec(in);
    assert_string_equal(r->perturbed, "x t");
    assert_string_equal(r->pair_key, "k");
    assert_end(in);
    check_skip(in, 0, t, 4,
               "expected 5 or 6 tab-separated columns (qid, query, docno, text, perturbed[, "
               "pair_id]), found 4");
    check_skip(in, 1, t, 5, "empty perturbed");
    check_skip(in, 2, t, 6, "duplicate (qid, docno, pair_id) pair, first at line 3");
    mch_input_close(in);
}

static void test_trec_ir_datasets_docs_and_topics(void **state)
{
    const fixture *fx = *state;
    const char *topics = at(fx, "topics.jsonl"), *qrels = at(fx, "qrels.txt");
    write_str(topics, "{\"query_id\":\"q1\",\"text\":\"red apple\"}\n"
                      "{\"qid\":\"q2\",\"query\":\"green pear\"}\n"
                      "{\"query_id\":\"q3\",\"query\":\"x\",\"text\":\"y\"}\n");
    write_str(qrels, "q1 0 d1 1\nq1 0 d2 1\nq2 0 d3 2\nq3 0 d1 1\n");
    const char *names[] = {"docs.tsv", "docs.jsonl"};
    const char *bodies[] = {"docno\ttitle\ttext\n"
                            "d1\tApples\tAn apple.\n"
                            "d2\tpears\n"
                            "d3\tA\tB\tC\n",
                            "{\"doc_id\":\"d1\",\"title\":\"Apples\",\"text\":\"An apple.\"}\n"
                            "{\"docno\":\"d2\",\"text\":\"pears\"}\n"
                            "{\"doc_id\":\"d3\",\"docno\":\"d3\",\"text\":\"C\"}\n"};
    const char *bad3[] = {"expected 2 or 3 tab-separated columns (docno, [title, ]text), found 4",
                          "both \"docno\" and \"doc_id\""};
    for (int k = 0; k < 2; k++) {
        const char *docs = at(fx, names[k]);
        write_str(docs, bodies[k]);
        mch_input *in;
        mch_err err = {0};
        assert_int_equal(mch_input_open_trec(&in, NULL, topics, docs, qrels, NULL, &err), MCH_OK);
        const mch_record *r = next_rec(in);
        assert_string_equal(r->qid, "q1");
        assert_string_equal(r->query, "red apple");
        assert_string_equal(r->text, "Apples An apple.");
        r = next_rec(in);
        assert_string_equal(r->docno, "d2");
        assert_string_equal(r->text, "pears");
        assert_end(in);
        const mch_skip_report *rep = mch_input_report(in);
        assert_int_equal(rep->table_skipped, 2);
        check_skip(in, 0, topics, 3, "both \"query\" and \"text\"");
        check_skip(in, 1, docs, k == 0 ? 4 : 3, bad3[k]);
        mch_input_close(in);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_lines_crlf_no_final_newline_nul_bom),
        T(test_lines_empty_and_final_newline),
        T(test_lines_longer_than_buffers),
        T(test_lines_small_file_that_grows),
        T(test_lines_concatenated_frames),
        T(test_lines_missing_file_is_io_error),
        T(test_corrupt_and_truncated_zst),
        T(test_tsv_happy_path_exact_fields),
        T(test_tsv_bad_lines_skipped_with_reasons),
        T(test_tsv_strict_first_bad_line_is_error),
        T(test_tsv_four_columns_and_allow_duplicates),
        T(test_tsv_long_document),
        T(test_jsonl_happy_path_exact_fields),
        T(test_jsonl_bad_lines_skipped_with_reasons),
        T(test_report_cap_and_print),
        T(test_bad_options_refused),
        T(test_trec_run_join_topk_qrels),
        T(test_trec_run_without_qrels),
        T(test_trec_qrels_only_and_jsonl_docs),
        T(test_trec_strict),
        T(test_trec_missing_table_file),
        T(test_real_collection),
        T(test_jsonl_ir_datasets_names_and_title),
        T(test_given_pairs_jsonl_and_tsv),
        T(test_trec_ir_datasets_docs_and_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
