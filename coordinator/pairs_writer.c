/* The per-pair output, plain or as one zstd frame per 64 lines (see pairs_writer.h). The zst
 * stream is a glibc fopencookie FILE * whose write callback feeds the compressor and ends a
 * frame at the newline of every MCH_PAIRS_LINES_PER_FRAME-th line; the compressed bytes go to
 * an mch_outfile (temp + rename), so a failed or interrupted reduction leaves no partial file. */
#define _GNU_SOURCE /* fopencookie */
#include "pairs_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <zstd.h>

#include "fsutil.h"

#define ZST_LEVEL 3                           /* zstd's default: ~24x on pairs.jsonl, fast */
#define ZST_STDIO_BUF_BYTES ((size_t)1 << 18) /* the cookie stream's buffer: fewer callbacks */

struct mch_pairs_writer {
    mch_pairs_format fmt;
    char *dir;
    mch_outfile file; /* the bytes on disk: JSON lines, or the compressed frames */
    FILE *lines;      /* what the caller writes to: file.f (jsonl) or the cookie stream */
    ZSTD_CCtx *cctx;
    char *obuf; /* compressed bytes before file.f (ocap) */
    size_t ocap;
    unsigned lines_in_frame;
    size_t frame_bytes; /* fed into the open frame */
    unsigned long long frames;
    mch_err err; /* the first failure inside the cookie stream */
};

int mch_pairs_format_parse(const char *s, mch_pairs_format *fmt)
{
    if (!strcmp(s, "zst"))
        *fmt = MCH_PAIRS_ZST;
    else if (!strcmp(s, "jsonl"))
        *fmt = MCH_PAIRS_JSONL;
    else
        return -1;
    return 0;
}

const char *mch_pairs_file_name(mch_pairs_format fmt)
{
    return fmt == MCH_PAIRS_JSONL ? "pairs.jsonl" : "pairs.jsonl.zst";
}

/* Compresses n bytes of src into the open frame (mode ZSTD_e_continue) or through its end
 * (ZSTD_e_end), writing what comes out. @return 0, or -1 after recording the failure in w->err. */
static int zst_feed(mch_pairs_writer *w, const char *src, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {src, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->obuf, w->ocap, 0};
        size_t r = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(r)) {
            if (!w->err.code)
                mch_fail(&w->err, MCH_ERR_ZSTD, "%s: zstd frame %llu: %s", w->file.path, w->frames,
                         ZSTD_getErrorName(r));
            return -1;
        }
        if (out.pos && fwrite(w->obuf, 1, out.pos, w->file.f) != out.pos) {
            if (!w->err.code)
                mch_fail(&w->err, MCH_ERR_IO, "%s: %s", w->file.tmp ? w->file.tmp : w->file.path,
                         strerror(errno));
            return -1;
        }
        if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0) break;
    }
    if (mode == ZSTD_e_end) {
        w->frames++;
        w->frame_bytes = 0;
        w->lines_in_frame = 0;
    } else {
        w->frame_bytes += n;
    }
    return 0;
}

/* The cookie stream's write: the bytes up to the newline that completes a frame's lines end
 * that frame; the rest goes on into the next. @return size, or 0 on failure (glibc's contract). */
static ssize_t zst_write(void *cookie, const char *buf, size_t size)
{
    mch_pairs_writer *w = cookie;
    if (w->err.code) return 0; /* after a failure or an abort, nothing more is written */
    const char *p = buf, *end = buf + size;
    while (p < end) {
        const char *cut = NULL, *q = p, *nl;
        while (q < end && (nl = memchr(q, '\n', (size_t)(end - q)))) {
            q = nl + 1;
            if (++w->lines_in_frame == MCH_PAIRS_LINES_PER_FRAME) {
                cut = q;
                break;
            }
        }
        const char *stop = cut ? cut : end;
        if (zst_feed(w, p, (size_t)(stop - p), cut ? ZSTD_e_end : ZSTD_e_continue)) return 0;
        p = stop;
    }
    return (ssize_t)size;
}

static int zst_close(void *cookie)
{
    (void)cookie;
    return 0;
}

static void writer_free(mch_pairs_writer *w)
{
    ZSTD_freeCCtx(w->cctx);
    free(w->obuf);
    free(w->dir);
    free(w);
}

mch_status mch_pairs_writer_open(mch_pairs_writer **out, const char *dir, mch_pairs_format fmt,
                                 mch_err *err)
{
    *out = NULL;
    mch_pairs_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    w->fmt = fmt;
    char *path = mch_path_join(dir, mch_pairs_file_name(fmt));
    if (!path) {
        writer_free(w);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    mch_status rc = MCH_OK;
    if (fmt == MCH_PAIRS_ZST) {
        w->ocap = ZSTD_CStreamOutSize();
        w->obuf = malloc(w->ocap);
        w->cctx = ZSTD_createCCtx();
        if (!w->obuf || !w->cctx) {
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", path);
        } else {
            size_t a = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, ZST_LEVEL);
            size_t b = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
            if (ZSTD_isError(a) || ZSTD_isError(b))
                rc = mch_fail(err, MCH_ERR_ZSTD, "%s: %s", path,
                              ZSTD_getErrorName(ZSTD_isError(a) ? a : b));
        }
    }
    if (!rc && mch_outfile_open(&w->file, path) != 0)
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    if (!rc && fmt == MCH_PAIRS_ZST) {
        cookie_io_functions_t io = {NULL, zst_write, NULL, zst_close};
        w->lines = fopencookie(w, "w", io);
        if (!w->lines || setvbuf(w->lines, NULL, _IOFBF, ZST_STDIO_BUF_BYTES) != 0) {
            rc = mch_fail(err, MCH_ERR_NOMEM, "%s: cannot open a compressing stream: %s", path,
                          strerror(errno));
            if (w->lines) fclose(w->lines);
            w->lines = NULL;
        }
    } else if (!rc) {
        w->lines = w->file.f;
    }
    free(path);
    if (rc) {
        if (w->file.f) mch_outfile_abort(&w->file);
        writer_free(w);
        return rc;
    }
    *out = w;
    return MCH_OK;
}

FILE *mch_pairs_writer_file(mch_pairs_writer *w)
{
    return w->lines;
}

mch_status mch_pairs_writer_commit(mch_pairs_writer *w, mch_err *err)
{
    char *path = mch_path_join(w->dir, mch_pairs_file_name(w->fmt));
    char *other = mch_path_join(
        w->dir, mch_pairs_file_name(w->fmt == MCH_PAIRS_ZST ? MCH_PAIRS_JSONL : MCH_PAIRS_ZST));
    mch_status rc = path && other ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (w->fmt == MCH_PAIRS_ZST) {
        /* The stdio buffer through the callback, then the last (or the only, empty) frame. */
        int bad = fflush(w->lines) != 0 || ferror(w->lines);
        bad |= fclose(w->lines) != 0;
        w->lines = NULL;
        if (!bad && (w->frame_bytes || !w->frames)) bad = zst_feed(w, NULL, 0, ZSTD_e_end);
        if (!rc && w->err.code)
            rc = mch_fail(err, w->err.code, "%s", w->err.msg);
        else if (!rc && bad)
            rc = mch_fail(err, MCH_ERR_IO, "%s: write failed", path);
    }
    if (rc) {
        mch_outfile_abort(&w->file);
    } else if (mch_outfile_commit(&w->file) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (unlink(other) != 0 && errno != ENOENT) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: cannot remove the other format's output: %s", other,
                      strerror(errno));
    }
    free(path);
    free(other);
    writer_free(w);
    return rc;
}

void mch_pairs_writer_abort(mch_pairs_writer *w)
{
    if (!w) return;
    if (w->fmt == MCH_PAIRS_ZST && w->lines) {
        w->err.code = MCH_ERR_IO; /* the flush in fclose writes nothing more */
        fclose(w->lines);
    }
    mch_outfile_abort(&w->file);
    writer_free(w);
}
