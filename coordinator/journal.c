/* Resume journal (see journal.h). */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_MAGIC "MCHJOUR1"
#define RECORD_MAGIC 0x5243484du
#define MAX_PAYLOAD (256u << 20)

uint64_t mch_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

mch_status mch_journal_create(mch_journal *j, const char *path, const uint8_t *spec, size_t len,
                              mch_err *err)
{
    memset(j, 0, sizeof *j);
    if (len > MAX_PAYLOAD)
        return mch_fail(err, MCH_ERR_SHAPE, "%s: a job spec of %zu bytes (at most %u)", path, len,
                        MAX_PAYLOAD);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s%s", path, strerror(errno),
                        errno == EEXIST ? " (use --resume to continue that run)" : "");
    j->f = fdopen(fd, "wb");
    j->path = strdup(path);
    if (!j->f || !j->path) {
        if (j->f)
            fclose(j->f);
        else
            close(fd);
        free(j->path);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    unsigned char hdr[12], tail[8];
    memcpy(hdr, JOURNAL_MAGIC, 8);
    put_u32(hdr + 8, (uint32_t)len);
    put_u64(tail, mch_fnv1a64(spec, len));
    fwrite(hdr, 1, sizeof hdr, j->f);
    fwrite(spec, 1, len, j->f);
    fwrite(tail, 1, sizeof tail, j->f);
    j->end = sizeof hdr + len + sizeof tail;
    return mch_journal_sync(j, err);
}

static mch_status add_rec(mch_journal *j, uint64_t index, uint64_t off, uint32_t len, mch_err *err)
{
    if (j->n_recs == j->cap_recs) {
        size_t cap = j->cap_recs ? 2 * j->cap_recs : 1024;
        mch_journal_rec *r = realloc(j->recs, cap * sizeof *r);
        if (!r) return mch_fail(err, MCH_ERR_NOMEM, "out of memory reading the journal");
        j->recs = r;
        j->cap_recs = cap;
    }
    j->recs[j->n_recs++] = (mch_journal_rec){index, off, len};
    return MCH_OK;
}

mch_status mch_journal_open(mch_journal *j, const char *path, int append,
                            mch_journal_index_fn index_of, mch_err *err)
{
    memset(j, 0, sizeof *j);
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    mch_status rc = MCH_OK;
    unsigned char hdr[12], b8[8];
    uint8_t *buf = NULL;
    if (fread(hdr, 1, 12, f) != 12 || memcmp(hdr, JOURNAL_MAGIC, 8)) {
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: not a mechir journal", path);
        goto done;
    }
    uint32_t slen = get_u32(hdr + 8);
    if (slen > MAX_PAYLOAD || !(j->spec = malloc(slen ? slen : 1)) ||
        fread(j->spec, 1, slen, f) != slen || fread(b8, 1, 8, f) != 8 ||
        get_u64(b8) != mch_fnv1a64(j->spec, slen)) {
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: damaged header", path);
        goto done;
    }
    j->spec_len = slen;
    uint64_t off = 12 + (uint64_t)slen + 8;
    size_t cap = 0;
    for (;;) {
        unsigned char rh[8];
        size_t got = fread(rh, 1, 8, f);
        if (got == 0) break;
        if (got < 8) break; /* torn tail */
        uint32_t magic = get_u32(rh), len = get_u32(rh + 4);
        if (magic != RECORD_MAGIC || len > MAX_PAYLOAD) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: bad record header at offset %llu", path,
                          (unsigned long long)off);
            goto done;
        }
        if (len > cap) {
            uint8_t *nb = realloc(buf, len);
            if (!nb) {
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
                goto done;
            }
            buf = nb;
            cap = len;
        }
        if (fread(buf, 1, len, f) != len || fread(b8, 1, 8, f) != 8) break; /* torn tail */
        uint64_t index;
        if (get_u64(b8) != mch_fnv1a64(buf, len)) {
            /* A damaged last record is a torn write; anything after it means corruption. */
            if (fgetc(f) == EOF) break;
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: record at offset %llu fails its checksum", path,
                          (unsigned long long)off);
            goto done;
        }
        if (index_of(buf, len, &index) != 0) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: record at offset %llu does not decode", path,
                          (unsigned long long)off);
            goto done;
        }
        if ((rc = add_rec(j, index, off + 8, len, err))) goto done;
        off += 8 + (uint64_t)len + 8;
    }
    j->end = off;
    if (!(j->path = strdup(path))) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && append) {
        if (truncate(path, (off_t)off) != 0 || !(j->f = fopen(path, "ab")))
            rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    }
done:
    free(buf);
    fclose(f);
    if (rc) mch_journal_close(j);
    return rc;
}

mch_status mch_journal_append(mch_journal *j, const uint8_t *payload, size_t len, mch_err *err)
{
    if (len > MAX_PAYLOAD) /* a reader would take it for damage */
        return mch_fail(err, MCH_ERR_SHAPE, "%s: a record of %zu bytes (at most %u)", j->path, len,
                        MAX_PAYLOAD);
    unsigned char h[8], t[8];
    put_u32(h, RECORD_MAGIC);
    put_u32(h + 4, (uint32_t)len);
    put_u64(t, mch_fnv1a64(payload, len));
    if (fwrite(h, 1, 8, j->f) != 8 || fwrite(payload, 1, len, j->f) != len ||
        fwrite(t, 1, 8, j->f) != 8)
        return mch_fail(err, MCH_ERR_IO, "%s: write failed: %s", j->path, strerror(errno));
    j->end += 16 + len;
    return MCH_OK;
}

mch_status mch_journal_sync(mch_journal *j, mch_err *err)
{
    if (fflush(j->f) != 0 || fsync(fileno(j->f)) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", j->path, strerror(errno));
    return MCH_OK;
}

mch_status mch_journal_read(const mch_journal *j, FILE *f, const mch_journal_rec *r, uint8_t *buf,
                            mch_err *err)
{
    if (fseeko(f, (off_t)r->offset, SEEK_SET) != 0 || fread(buf, 1, r->length, f) != r->length)
        return mch_fail(err, MCH_ERR_IO, "%s: cannot read the record at offset %llu", j->path,
                        (unsigned long long)r->offset);
    return MCH_OK;
}

void mch_journal_close(mch_journal *j)
{
    if (j->f) fclose(j->f);
    free(j->path);
    free(j->spec);
    free(j->recs);
    memset(j, 0, sizeof *j);
}
