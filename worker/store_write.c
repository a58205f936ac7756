/* The activation cache's writer (docs/CACHE.md, "Writing and crashes"): one per rank and run
 * attempt, appending each chunk to <tag>.bin and only then its record to <tag>.idx with plain
 * pwrites, so a complete index record always points at a complete chunk; a failed write cuts
 * both files back to where they were. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "act_store.h"
#include "store_codec.h"
#include "store_internal.h"

#define TAG_MAX 64

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static mch_status make_dir(const char *path, mch_err *err)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return MCH_OK;
    return mch_fail(err, MCH_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
}

/* ---- writer ------------------------------------------------------------------------------ */

struct mch_store_writer {
    char *dir_path, *bin_path, *idx_path;
    int bin_fd, idx_fd;
    int dir_synced;              /* the files' directory entries were fsynced once */
    uint64_t bin_size, idx_size; /* where the next chunk and record go */
    mch_store_dtype dt;
    int broken; /* a failed write could not be cut back: refuse further puts */
    ZSTD_CCtx *cctx;
    unsigned char *planes; /* converted values as planes, numel * esz */
    size_t planes_cap;
    unsigned char *chunk; /* record + zstd frame */
    size_t chunk_cap;
    uint64_t raw_bytes, stored_bytes;
};

/* Opens (creating) one of the writer's files and returns where appending starts: after the
 * header, after the last complete record for an index. */
static mch_status open_append(const char *path, const char *magic, int is_idx, int *fd_out,
                              uint64_t *size_out, mch_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return mch_fail(err, MCH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char want[STORE_HDR_BYTES], got[STORE_HDR_BYTES];
    mch_store_header_encode(want, magic);
    struct stat st;
    ssize_t k = fstat(fd, &st) == 0 ? mch_store_pread_all(fd, got, STORE_HDR_BYTES, 0) : -1;
    if (k < 0) {
        mch_fail(err, MCH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return MCH_ERR_IO;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (k < STORE_HDR_BYTES) {
        /* new, or a writer died while writing the header: (re)write it */
        if (memcmp(got, want, (size_t)k)) {
            close(fd);
            return mch_fail(err, MCH_ERR_FORMAT, "%s: %lld bytes that are not a mechir cache file",
                            path, (long long)size);
        }
        if (pwrite_all(fd, want, STORE_HDR_BYTES, 0)) {
            mch_fail(err, MCH_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            return MCH_ERR_IO;
        }
        size = STORE_HDR_BYTES;
    } else if (memcmp(got, want, STORE_HDR_BYTES)) {
        close(fd);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: not a mechir cache %s file of version %d (header at offset 0)", path,
                        is_idx ? "index" : "data", STORE_FORMAT_VERSION);
    } else if (is_idx && (size - STORE_HDR_BYTES) % STORE_REC_BYTES) {
        size -= (size - STORE_HDR_BYTES) % STORE_REC_BYTES;
        if (ftruncate(fd, (off_t)size)) {
            mch_fail(err, MCH_ERR_IO, "cannot cut %s to %llu bytes: %s", path,
                     (unsigned long long)size, strerror(errno));
            close(fd);
            return MCH_ERR_IO;
        }
    }
    *fd_out = fd;
    *size_out = size;
    return MCH_OK;
}

static int tag_ok(const char *tag)
{
    size_t n = strlen(tag);
    if (n < 1 || n > TAG_MAX || tag[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = tag[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

mch_status mch_store_writer_open(mch_store_writer **out, const char *out_dir, const char *tag,
                                 mch_store_dtype dt, int zstd_level, mch_err *err)
{
    *out = NULL;
    if (!out_dir || !*out_dir || !tag || !tag_ok(tag))
        return mch_fail(err, MCH_ERR_ARG,
                        "cache tag '%s' must be 1..%d of [A-Za-z0-9._-], not starting with '.'",
                        tag ? tag : "(null)", TAG_MAX);
    if ((unsigned)dt > MCH_STORE_F16)
        return mch_fail(err, MCH_ERR_ARG, "cache dtype %d unknown", (int)dt);
    if (zstd_level < ZSTD_minCLevel() || zstd_level > ZSTD_maxCLevel())
        return mch_fail(err, MCH_ERR_ARG, "zstd level %d not in %d..%d", zstd_level,
                        ZSTD_minCLevel(), ZSTD_maxCLevel());
    mch_store_writer *w = calloc(1, sizeof *w);
    char *dir = mch_store_path_join(out_dir, "cache", "");
    if (!w || !dir) {
        free(w);
        free(dir);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening the cache writer");
    }
    w->bin_fd = w->idx_fd = -1;
    w->dt = dt;
    w->dir_path = dir;
    mch_status st = make_dir(out_dir, err);
    if (!st) st = make_dir(dir, err);
    if (!st) {
        w->bin_path = mch_store_path_join(dir, tag, ".bin");
        w->idx_path = mch_store_path_join(dir, tag, ".idx");
        w->cctx = ZSTD_createCCtx();
        if (!w->bin_path || !w->idx_path || !w->cctx)
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening the cache writer");
    }
    if (!st) {
        size_t z = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, zstd_level);
        if (!ZSTD_isError(z)) z = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 0);
        if (ZSTD_isError(z))
            st = mch_fail(err, MCH_ERR_ZSTD, "zstd level %d: %s", zstd_level, ZSTD_getErrorName(z));
    }
    if (!st) st = open_append(w->bin_path, mch_store_bin_magic, 0, &w->bin_fd, &w->bin_size, err);
    if (!st) st = open_append(w->idx_path, mch_store_idx_magic, 1, &w->idx_fd, &w->idx_size, err);
    if (st) {
        mch_store_writer_close(w);
        return st;
    }
    *out = w;
    return MCH_OK;
}

static int grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    unsigned char *p = realloc(*buf, need);
    if (!p) return -1;
    *buf = p;
    *cap = need;
    return 0;
}

mch_status mch_store_put(mch_store_writer *w, uint64_t pair_id, const char *hook, int run, int ndim,
                         const int64_t *shape, const float *data, mch_err *err)
{
    if (w->broken)
        return mch_fail(err, MCH_ERR_IO, "%s: an earlier write failed and could not be undone",
                        w->bin_path);
    size_t hook_len = hook ? strlen(hook) : 0;
    if (!mch_store_hook_ok(hook, hook_len))
        return mch_fail(err, MCH_ERR_ARG, "cache hook name '%s' must be 1..%d printable bytes",
                        hook ? hook : "(null)", MCH_STORE_HOOK_MAX);
    if (run != MCH_RUN_BASELINE && run != MCH_RUN_PERTURBED)
        return mch_fail(err, MCH_ERR_ARG, "cache put %s: run %d is not 0 or 1", hook, run);
    if (ndim < 1 || ndim > MCH_STORE_MAX_DIMS || !shape || !data)
        return mch_fail(err, MCH_ERR_SHAPE, "cache put %s: ndim %d not in 1..%d", hook, ndim,
                        MCH_STORE_MAX_DIMS);
    uint64_t numel = mch_store_shape_numel(ndim, shape);
    if (!numel) {
        char sh[128];
        mch_store_shape_str(sh, sizeof sh, ndim, shape);
        return mch_fail(
            err, MCH_ERR_SHAPE, "cache put %s pair %016llx: shape %s is empty or above %llu bytes",
            hook, (unsigned long long)pair_id, sh, (unsigned long long)MCH_STORE_MAX_RAW_BYTES);
    }
    size_t n = (size_t)numel, plane_bytes = n * mch_store_dtype_bytes(w->dt);
    size_t bound = ZSTD_compressBound(plane_bytes);
    if (grow(&w->planes, &w->planes_cap, plane_bytes) ||
        grow(&w->chunk, &w->chunk_cap, STORE_REC_BYTES + bound))
        return mch_fail(err, MCH_ERR_NOMEM, "cache put %s: out of memory for %zu values", hook, n);
    mch_store_encode_values(w->dt, 1, data, n, w->planes);
    size_t z = ZSTD_compress2(w->cctx, w->chunk + STORE_REC_BYTES, bound, w->planes, plane_bytes);
    if (ZSTD_isError(z)) {
        ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
        return mch_fail(err, MCH_ERR_ZSTD, "cache put %s pair %016llx: zstd: %s", hook,
                        (unsigned long long)pair_id, ZSTD_getErrorName(z));
    }
    mch_store_entry e = {.pair_id = pair_id,
                         .hook = hook,
                         .run = run,
                         .ndim = ndim,
                         .dtype = w->dt,
                         .offset = w->bin_size,
                         .stored_bytes = z,
                         .raw_bytes = numel * 4,
                         .checksum = mch_store_checksum(w->chunk + STORE_REC_BYTES, z)};
    for (int d = 0; d < ndim; d++) e.shape[d] = shape[d];
    mch_store_record_encode(w->chunk, &e);

    /* chunk first, then its record: a record on disk always points at a whole chunk */
    if (pwrite_all(w->bin_fd, w->chunk, STORE_REC_BYTES + z, w->bin_size)) {
        int e1 = errno;
        if (ftruncate(w->bin_fd, (off_t)w->bin_size)) w->broken = 1;
        return mch_fail(err, MCH_ERR_IO, "%s: writing %zu bytes at offset %llu: %s", w->bin_path,
                        STORE_REC_BYTES + z, (unsigned long long)w->bin_size, strerror(e1));
    }
    if (pwrite_all(w->idx_fd, w->chunk, STORE_REC_BYTES, w->idx_size)) {
        int e1 = errno;
        if (ftruncate(w->idx_fd, (off_t)w->idx_size) || ftruncate(w->bin_fd, (off_t)w->bin_size))
            w->broken = 1;
        return mch_fail(err, MCH_ERR_IO, "%s: writing a record at offset %llu: %s", w->idx_path,
                        (unsigned long long)w->idx_size, strerror(e1));
    }
    w->bin_size += STORE_REC_BYTES + z;
    w->idx_size += STORE_REC_BYTES;
    w->raw_bytes += numel * 4;
    w->stored_bytes += z;
    return MCH_OK;
}

mch_status mch_store_writer_sync(mch_store_writer *w, mch_err *err)
{
    if (fsync(w->bin_fd))
        return mch_fail(err, MCH_ERR_IO, "fsync %s: %s", w->bin_path, strerror(errno));
    if (fsync(w->idx_fd))
        return mch_fail(err, MCH_ERR_IO, "fsync %s: %s", w->idx_path, strerror(errno));
    if (!w->dir_synced) {
        /* new files' names are durable only once their directory is synced; some file systems
         * refuse fsync on a directory, which changes nothing for the data, so that is ignored */
        int fd = open(w->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        w->dir_synced = 1;
    }
    return MCH_OK;
}

void mch_store_writer_close(mch_store_writer *w)
{
    if (!w) return;
    if (w->bin_fd >= 0) close(w->bin_fd);
    if (w->idx_fd >= 0) close(w->idx_fd);
    ZSTD_freeCCtx(w->cctx);
    free(w->planes);
    free(w->chunk);
    free(w->dir_path);
    free(w->bin_path);
    free(w->idx_path);
    free(w);
}

void mch_store_writer_stats(const mch_store_writer *w, uint64_t *raw_bytes, uint64_t *stored_bytes)
{
    if (raw_bytes) *raw_bytes = w->raw_bytes;
    if (stored_bytes) *stored_bytes = w->stored_bytes;
}
