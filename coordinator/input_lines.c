/* Lines of plain or zstd-compressed files (mch_lines_*), the reader under every input file and
 * --df/--stopwords. Invariant: a file is never held whole in memory; only a fixed-size buffer of
 * its (decompressed) bytes and the current line are. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "input_internal.h"

#define PLAIN_BUF_BYTES ((size_t)256 * 1024)
#define PLAIN_BUF_MIN ((size_t)4096)

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
    size_t max_line_bytes; /* a longer line is an error */
    long lineno;
    int eof;
};

mch_status mch_lines_open(mch_lines **out, const char *path, size_t max_line_bytes, mch_err *err)
{
    *out = NULL;
    mch_lines *l = calloc(1, sizeof *l);
    if (!l) return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    l->max_line_bytes = max_line_bytes ? max_line_bytes : MCH_LINE_BYTES_DEFAULT;
    if (l->max_line_bytes > SIZE_MAX / 4) l->max_line_bytes = SIZE_MAX / 4; /* no overflow below */
    l->path = strdup(path);
    if (!l->path) {
        mch_lines_close(l);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
    }
    l->f = fopen(path, "rb");
    if (!l->f) {
        int e = errno;
        mch_lines_close(l);
        return mch_fail(err, MCH_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    int zst = mch_ends_with(path, ".zst");
    l->buf_cap = zst ? ZSTD_DStreamOutSize() : PLAIN_BUF_BYTES;
    /* A small regular file gets a buffer of its size (a file that grows is still read whole, in
     * more refills). */
    struct stat sb;
    if (!zst && fstat(fileno(l->f), &sb) == 0 && S_ISREG(sb.st_mode) &&
        (uintmax_t)sb.st_size < PLAIN_BUF_BYTES - PLAIN_BUF_MIN)
        l->buf_cap = (size_t)sb.st_size + PLAIN_BUF_MIN;
    l->buf = malloc(l->buf_cap);
    if (zst) {
        l->zcap = ZSTD_DStreamInSize();
        l->zbuf = malloc(l->zcap);
        l->dctx = ZSTD_createDCtx();
    }
    if (!l->buf || (zst && (!l->zbuf || !l->dctx))) {
        mch_lines_close(l);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
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
            if (st != MCH_OK) {
                l->eof = 1; /* finished, as input.h promises */
                return st;
            }
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
        /* One byte more than the limit is allowed for a "\r" that the "\n" will drop. */
        if (take > l->max_line_bytes + 1 - l->line_len) {
            l->eof = 1;
            return mch_fail(err, MCH_ERR_FORMAT,
                            "%s:%ld: line longer than %zu bytes (--max-line-bytes)", l->path,
                            l->lineno + 1, l->max_line_bytes);
        }
        if (!lines_reserve(l, l->line_len + take + 1)) {
            l->eof = 1;
            return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory reading line %ld", l->path,
                            l->lineno + 1);
        }
        memcpy(l->line + l->line_len, s, take);
        l->line_len += take;
        l->buf_pos += take + (nl ? 1 : 0);
        got = 1;
        ended = nl != NULL;
    }
    if (ended && l->line_len > 0 && l->line[l->line_len - 1] == '\r') l->line_len--;
    if (l->line_len > l->max_line_bytes) {
        l->eof = 1;
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s:%ld: line longer than %zu bytes (--max-line-bytes)", l->path,
                        l->lineno + 1, l->max_line_bytes);
    }
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

mch_status mch_input_next_line(mch_lines *l, mch_input_line *ln, mch_err *err)
{
    mch_status st;
    do st = mch_lines_next(l, &ln->s, &ln->len, &ln->no, err);
    while (st == MCH_OK && ln->s && ln->len == 0);
    return st;
}
