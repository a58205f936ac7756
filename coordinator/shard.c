/* Shard inputs by pair id and the whole input's df table (see shard.h). Shard files go through a
 * buffer each; for a .zst input every full buffer becomes one zstd frame (the readers take
 * concatenated frames), so one compression context serves every shard. */
#include "shard.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "fsutil.h"
#include "input.h"
#include "meta.h"
#include "perturb.h"

enum { SHARD_BUF_BYTES = 256 << 10 };

typedef struct {
    mch_outfile of;
    char *buf; /* SHARD_BUF_BYTES */
    size_t n;
    long lines;
} shard_file;

typedef struct {
    shard_file *f; /* k of them */
    int k;
    ZSTD_CCtx *z; /* NULL: plain files */
    void *zbuf;
    size_t zcap;
} shard_set;

static int shard_flush(shard_set *s, shard_file *f)
{
    if (!f->n) return 0;
    if (!s->z) {
        if (fwrite(f->buf, 1, f->n, f->of.f) != f->n) return -1;
    } else {
        size_t r = ZSTD_compress2(s->z, s->zbuf, s->zcap, f->buf, f->n);
        if (ZSTD_isError(r) || fwrite(s->zbuf, 1, r, f->of.f) != r) return -1;
    }
    f->n = 0;
    return 0;
}

static int shard_put(shard_set *s, shard_file *f, const char *line, size_t len)
{
    f->lines++;
    while (len + 1 > SHARD_BUF_BYTES - f->n) {
        size_t take = SHARD_BUF_BYTES - f->n;
        memcpy(f->buf + f->n, line, take);
        f->n += take;
        line += take;
        len -= take;
        if (shard_flush(s, f)) return -1;
    }
    memcpy(f->buf + f->n, line, len);
    f->n += len;
    f->buf[f->n++] = '\n';
    return 0;
}

/* The i-th field (0-based) of a line split at tabs (tsv) or runs of spaces and tabs (ws). */
static int field(const char *line, int ws, int want, const char **start, size_t *len)
{
    const char *p = line;
    for (int i = 0;; i++) {
        if (ws)
            while (*p == ' ' || *p == '\t') p++;
        const char *e = p;
        while (*e && *e != '\t' && !(ws && *e == ' ')) e++;
        if (i == want) {
            *start = p;
            *len = (size_t)(e - p);
            return ws ? *len > 0 : 1;
        }
        if (!*e) return 0;
        p = e + 1;
    }
}

/* A JSONL id: a string, or an integer printed without decimals (as the reader does). */
static int json_id(const cJSON *o, const char *name, char *buf, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v)) return snprintf(buf, cap, "%s", v->valuestring) < (int)cap;
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || (double)(long long)d != d)
        return 0;
    snprintf(buf, cap, "%lld", (long long)d);
    return 1;
}

int mch_shard_of_line(mch_split_kind kind, const char *line, size_t len, long lineno, int k)
{
    if (len == 0) return -1;
    char qid[4096], docno[4096];
    int ok = 0;
    if (strlen(line) != len) {
        ok = 0; /* a NUL byte: a bad line for the reader */
    } else if (kind == MCH_SPLIT_JSONL) {
        cJSON *j = cJSON_ParseWithLength(line, len);
        ok = cJSON_IsObject(j) && json_id(j, "qid", qid, sizeof qid) &&
             json_id(j, "docno", docno, sizeof docno);
        cJSON_Delete(j);
    } else {
        const char *a, *b;
        size_t al, bl;
        int ws = kind == MCH_SPLIT_TREC;
        if (field(line, ws, 0, &a, &al) && field(line, ws, 2, &b, &bl) && al < sizeof qid &&
            bl < sizeof docno) {
            memcpy(qid, a, al), qid[al] = 0;
            memcpy(docno, b, bl), docno[bl] = 0;
            ok = 1;
        }
        if (kind == MCH_SPLIT_TSV && lineno == 1 && field(line, 0, 0, &a, &al) && al == 3 &&
            !memcmp(a, "qid", 3))
            return -1;
    }
    if (!ok) return (int)(lineno % k);
    uint64_t state = mch_pair_id(qid, docno);
    return (int)(mch_rng_next(&state) % (uint64_t)k);
}

/* Opens dir/shard-<i>/<base> for i < k into s (buffers and, for .zst, the compressor). On an
 * error the files opened so far stay open: *opened says how many. */
static mch_status shards_open(shard_set *s, const char *dir, const char *base, int *opened,
                              mch_err *err)
{
    if (mch_ends_with(base, ".zst")) {
        s->z = ZSTD_createCCtx();
        s->zcap = ZSTD_compressBound(SHARD_BUF_BYTES);
        s->zbuf = malloc(s->zcap);
        if (!s->z || !s->zbuf) return MCH_ERR_NOMEM;
        ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel, 3);
    }
    for (*opened = 0; *opened < s->k; ++*opened) {
        int i = *opened;
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/shard-%d", dir, i);
        if (mch_mkdir_p(path)) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        snprintf(path, sizeof path, "%s/shard-%d/%s", dir, i, base);
        if (!(s->f[i].buf = malloc(SHARD_BUF_BYTES))) return MCH_ERR_NOMEM;
        if (mch_outfile_open(&s->f[i].of, path))
            return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    }
    return MCH_OK;
}

/* Reads src line by line into the shards. */
static mch_status shards_fill(shard_set *s, const char *src, mch_split_kind kind,
                              size_t max_line_bytes, mch_err *err)
{
    mch_lines *l = NULL;
    mch_status rc = mch_lines_open(&l, src, max_line_bytes, err);
    char *line;
    size_t len;
    long lineno;
    while (!rc && !(rc = mch_lines_next(l, &line, &len, &lineno, err)) && line) {
        if (lineno == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) line += 3, len -= 3;
        int i = mch_shard_of_line(kind, line, len, lineno, s->k);
        if (i >= 0 && shard_put(s, &s->f[i], line, len))
            rc = mch_fail(err, MCH_ERR_IO, "writing shard %d of %s: %s", i, src, strerror(errno));
    }
    mch_lines_close(l);
    return rc;
}

/* Flushes every shard and renames it into place; after a failure the later ones are removed
 * (the earlier ones are complete). */
static mch_status shards_commit(shard_set *s, const char *dir, const char *base, long *min_lines,
                                long *max_lines, mch_err *err)
{
    *min_lines = LONG_MAX, *max_lines = 0;
    for (int i = 0; i < s->k; i++) {
        shard_file *f = &s->f[i];
        int flushed = shard_flush(s, f) == 0;
        if (!flushed || mch_outfile_commit(&f->of)) {
            mch_status rc = mch_fail(err, MCH_ERR_IO, "writing %s/shard-%d/%s: %s", dir, i, base,
                                     strerror(errno));
            for (int j = flushed ? i + 1 : i; j < s->k; j++) mch_outfile_abort(&s->f[j].of);
            return rc;
        }
        if (f->lines < *min_lines) *min_lines = f->lines;
        if (f->lines > *max_lines) *max_lines = f->lines;
    }
    return MCH_OK;
}

mch_status mch_shard_split(const char *src, mch_split_kind kind, const char *dir, const char *base,
                           int k, size_t max_line_bytes, long *min_lines, long *max_lines,
                           mch_err *err)
{
    shard_set s = {calloc((size_t)k, sizeof *s.f), k, NULL, NULL, 0};
    int opened = 0;
    mch_status rc = s.f ? shards_open(&s, dir, base, &opened, err) : MCH_ERR_NOMEM;
    if (!rc) rc = shards_fill(&s, src, kind, max_line_bytes, err);
    if (!rc)
        rc = shards_commit(&s, dir, base, min_lines, max_lines, err);
    else
        for (int i = 0; i < opened; i++) mch_outfile_abort(&s.f[i].of);
    if (rc == MCH_ERR_NOMEM) mch_fail(err, rc, "out of memory splitting %s", src);
    for (int i = 0; s.f && i < k; i++) free(s.f[i].buf);
    free(s.f);
    ZSTD_freeCCtx(s.z);
    free(s.zbuf);
    return rc;
}

mch_status mch_shard_write_df(const char *model_dir, const mch_source_opts *src, const char *path,
                              mch_err *err)
{
    mch_model_meta *m = NULL;
    mch_pair_source *s = NULL;
    mch_err e = {0};
    mch_source_opts so = *src;
    so.write_df = path;
    mch_status rc = model_dir ? mch_model_meta_open(&m, model_dir, &e)
                              : mch_fail(&e, MCH_ERR_ARG, "the run options have no --model DIR");
    if (!rc) rc = mch_pair_source_open(&s, &so, m, &e);
    mch_pair_source_close(s);
    mch_model_meta_close(m);
    if (rc) return mch_fail(err, rc, "document frequencies for --shards: %s", e.msg);
    return MCH_OK;
}
