/* Resume journal (see journal.h). */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_MAGIC "MCHJOUR" /* then the format digit */
#define RECORD_MAGIC 0x5243484du
#define MAX_PAYLOAD (256u << 20)
#define REC_TRAILER 8

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
    memcpy(hdr, JOURNAL_MAGIC, 7);
    hdr[7] = (unsigned char)('0' + MCH_JOURNAL_FORMAT);
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

/* Damage that is not a torn tail: the message names the record and how to drop it. */
static mch_status damaged(const char *path, uint64_t off, const char *what, mch_err *err)
{
    return mch_fail(err, MCH_ERR_FORMAT,
                    "%s: record at offset %" PRIu64 ": %s (a damaged journal: truncate -s %" PRIu64
                    " %s drops this and every later record, which a resume then recomputes)",
                    path, off, what, off, path);
}

/* The file header: magic with the format, the spec and its checksum, into j->spec. */
static mch_status read_header(mch_journal *j, FILE *f, const char *path, mch_err *err)
{
    unsigned char hdr[12], b8[8];
    if (fread(hdr, 1, 12, f) != 12 || memcmp(hdr, JOURNAL_MAGIC, 7))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a mechir journal", path);
    if (hdr[7] != '0' + MCH_JOURNAL_FORMAT) {
        char fmt[8];
        snprintf(fmt, sizeof fmt, hdr[7] >= '1' && hdr[7] <= '9' ? "%c" : "0x%02x", hdr[7]);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: journal format %s; this mechir writes %d (resume it with the mechir "
                        "that wrote it, or start the run afresh in another --out)",
                        path, fmt, MCH_JOURNAL_FORMAT);
    }
    uint32_t slen = get_u32(hdr + 8);
    if (slen > MAX_PAYLOAD || !(j->spec = malloc(slen ? slen : 1)) ||
        fread(j->spec, 1, slen, f) != slen || fread(b8, 1, 8, f) != 8 ||
        get_u64(b8) != mch_fnv1a64(j->spec, slen))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: damaged header", path);
    j->spec_len = slen;
    j->end = 12 + (uint64_t)slen + 8;
    return MCH_OK;
}

/* Reads every record from j->end on: both checksums, an incomplete last record as the torn tail
 * (j->torn_bytes), j->end after the last complete one. */
static mch_status read_records(mch_journal *j, FILE *f, const char *path, mch_err *err)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    mch_status rc = MCH_OK;
    uint64_t off = j->end;
    for (;;) {
        unsigned char rh[MCH_JOURNAL_REC_HEADER], b8[REC_TRAILER];
        size_t got = fread(rh, 1, sizeof rh, f);
        if (got < sizeof rh) {
            j->torn_bytes = got; /* 0 at a clean end */
            break;
        }
        uint32_t len = get_u32(rh + 4);
        uint64_t index = get_u64(rh + 8);
        if (get_u32(rh) != RECORD_MAGIC) {
            rc = damaged(path, off, "no record magic", err);
            break;
        }
        if (get_u64(rh + 16) != mch_fnv1a64(rh, 16)) {
            rc = damaged(path, off, "its header fails its checksum", err);
            break;
        }
        if (len > MAX_PAYLOAD) {
            char what[80];
            snprintf(what, sizeof what, "a payload of %" PRIu32 " bytes (at most %u)", len,
                     MAX_PAYLOAD);
            rc = damaged(path, off, what, err);
            break;
        }
        if (len > cap) {
            uint8_t *nb = realloc(buf, len);
            if (!nb) {
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            buf = nb;
            cap = len;
        }
        size_t body = fread(buf, 1, len, f);
        size_t tail = body == len ? fread(b8, 1, sizeof b8, f) : 0;
        if (body < len || tail < sizeof b8) { /* the file ends inside this record */
            j->torn_bytes = sizeof rh + body + tail;
            break;
        }
        if (get_u64(b8) != mch_fnv1a64(buf, len)) {
            rc = damaged(path, off, "its payload fails its checksum", err);
            break;
        }
        if ((rc = add_rec(j, index, off, len, err))) break;
        off += sizeof rh + (uint64_t)len + sizeof b8;
    }
    if (!rc && ferror(f)) rc = mch_fail(err, MCH_ERR_IO, "%s: read error", path);
    j->end = off;
    free(buf);
    return rc;
}

mch_status mch_journal_open(mch_journal *j, const char *path, int append, mch_err *err)
{
    memset(j, 0, sizeof *j);
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    mch_status rc = read_header(j, f, path, err);
    if (!rc) rc = read_records(j, f, path, err);
    fclose(f);
    if (!rc && !(j->path = strdup(path))) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && append) {
        if ((j->torn_bytes && truncate(path, (off_t)j->end) != 0) || !(j->f = fopen(path, "ab")))
            rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (rc) mch_journal_close(j);
    return rc;
}

mch_status mch_journal_append(mch_journal *j, uint64_t index, const uint8_t *payload, size_t len,
                              mch_err *err)
{
    if (len > MAX_PAYLOAD) /* a reader would take it for damage */
        return mch_fail(err, MCH_ERR_SHAPE, "%s: a record of %zu bytes (at most %u)", j->path, len,
                        MAX_PAYLOAD);
    unsigned char h[MCH_JOURNAL_REC_HEADER], t[REC_TRAILER];
    put_u32(h, RECORD_MAGIC);
    put_u32(h + 4, (uint32_t)len);
    put_u64(h + 8, index);
    put_u64(h + 16, mch_fnv1a64(h, 16));
    put_u64(t, mch_fnv1a64(payload, len));
    if (fwrite(h, 1, sizeof h, j->f) != sizeof h || fwrite(payload, 1, len, j->f) != len ||
        fwrite(t, 1, sizeof t, j->f) != sizeof t)
        return mch_fail(err, MCH_ERR_IO, "%s: write failed: %s", j->path, strerror(errno));
    j->end += sizeof h + len + sizeof t;
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
    if (fseeko(f, (off_t)(r->offset + MCH_JOURNAL_REC_HEADER), SEEK_SET) != 0 ||
        fread(buf, 1, r->length, f) != r->length)
        return mch_fail(err, MCH_ERR_IO, "%s: cannot read the record at offset %" PRIu64, j->path,
                        r->offset);
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

/* ---- what a record must be ---------------------------------------------------------------- */

int mch_journal_check_result(const mch_pair_result *r, const mch_job_spec *spec, uint32_t mode,
                             char *why, size_t why_len)
{
    if (mode == MCH_UNIT_SCORE &&
        (r->n_heads || r->n_blocks || r->n_head_pos_z || r->n_head_pos_pattern || r->n_qkv ||
         r->n_pattern || r->n_resid_mid || r->skip_reason))
        return snprintf(why, why_len, "a score-only result with maps or a skip"), 1;
    return mch_pair_result_check_rows(r, (int)spec->layers, (int)mch_spec_head_rows(spec),
                                      (int)spec->heads, (int)spec->n_head_pos, why, why_len);
}

mch_status mch_journal_load(const mch_journal *j, FILE *f, const mch_journal_rec *r,
                            const mch_journal_expect *x, uint8_t **buf, size_t *cap,
                            mch_pair_result *out, mch_err *err)
{
    memset(out, 0, sizeof *out);
    if (r->length > *cap) {
        uint8_t *nb = realloc(*buf, r->length);
        if (!nb) return mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", j->path);
        *buf = nb;
        *cap = r->length;
    }
    mch_status rc = mch_journal_read(j, f, r, *buf, err);
    if (rc) return rc;
    mch_err e = {0};
    char why[sizeof e.msg + 64];
    if (mch_pair_result_unpack(out, *buf, r->length, &e))
        snprintf(why, sizeof why, "%s", e.msg);
    else if (out->pair.index != r->index)
        snprintf(why, sizeof why, "pair #%" PRIu64 " in a record of pair #%" PRIu64,
                 out->pair.index, r->index);
    else if (r->index >= x->limit)
        snprintf(why, sizeof why, "pair #%" PRIu64 " is beyond the %" PRIu64 " expected pairs",
                 r->index, x->limit);
    else if (!mch_journal_check_result(out, x->spec, x->mode, why, sizeof why))
        return MCH_OK;
    mch_pair_result_deinit(out);
    return mch_fail(err, MCH_ERR_FORMAT, "%s: record at offset %" PRIu64 ": %s", j->path, r->offset,
                    why);
}
