/* The activation cache on disk (docs/CACHE.md): appending writers, a checking reader, the .npy
 * writer and the codec benchmark. Every size read from a file is checked against the file and
 * against MCH_STORE_MAX_RAW_BYTES before it is used to allocate, seek or index. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>
#define XXH_INLINE_ALL /* header-only: no library to link */
#include <xxhash.h>

#include "act_store.h"
#include "strmap.h"

#define HDR_BYTES 16
#define REC_BYTES MCH_STORE_RECORD_BYTES
#define REC_SUM_AT 176 /* the record's own XXH64 covers bytes [0, 176) */
#define FORMAT_VERSION 1
#define TAG_MAX 64

static const char IDX_MAGIC[8] = {'M', 'C', 'H', 'S', 'T', 'I', 'D', 'X'};
static const char BIN_MAGIC[8] = {'M', 'C', 'H', 'S', 'T', 'B', 'I', 'N'};
static const char REC_MAGIC[4] = {'M', 'C', 'H', 'R'};

/* ---- little-endian fields and the value conversions -------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaNs stay NaN (quieted, sign and top payload bits kept). */
static uint16_t f32_to_bf16(uint32_t x)
{
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Round to nearest even, with fp16 subnormals; beyond 65504 (after rounding) is inf. */
static uint16_t f32_to_f16(uint32_t x)
{
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        /* fp16 subnormal: value = man24 * 2^(exp-150) = (man24 >> (14 - e)) units of 2^-24 */
        int shift = 14 - e;
        if (shift > 24) return (uint16_t)sign;
        uint32_t m24 = man | 0x800000u;
        uint32_t m = m24 >> shift, rem = m24 & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (m & 1))) m++;
        return (uint16_t)(sign | m); /* m may carry into the smallest normal: still right */
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry may reach inf: right */
    return (uint16_t)h;
}

static uint32_t bf16_to_f32(uint16_t h)
{
    return (uint32_t)h << 16;
}

static uint32_t f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return sign | 0x7f800000u | (man << 13);
    if (exp) return sign | ((exp + 112) << 23) | (man << 13);
    if (!man) return sign;
    uint32_t k = 0; /* subnormal man * 2^-24: normalise */
    while (!(man & 0x400u)) {
        man <<= 1;
        k++;
    }
    return sign | ((113 - k) << 23) | ((man & 0x3ffu) << 13);
}

static size_t dtype_bytes(mch_store_dtype dt)
{
    return dt == MCH_STORE_F32 ? 4 : 2;
}

/* src (n floats) -> dst (n * esz bytes): converted, then as planes (byte b of value i at
 * b * n + i) or, without shuffle, value after value little-endian. */
static void encode_values(mch_store_dtype dt, int shuffle, const float *src, size_t n,
                          unsigned char *dst)
{
    if (dt == MCH_STORE_F32) {
        unsigned char *p0 = dst, *p1 = dst + n, *p2 = dst + 2 * n, *p3 = dst + 3 * n;
        for (size_t i = 0; i < n; i++) {
            uint32_t b = f32_bits(src[i]);
            if (shuffle) {
                p0[i] = (unsigned char)b;
                p1[i] = (unsigned char)(b >> 8);
                p2[i] = (unsigned char)(b >> 16);
                p3[i] = (unsigned char)(b >> 24);
            } else {
                put_u32(dst + 4 * i, b);
            }
        }
        return;
    }
    unsigned char *p0 = dst, *p1 = dst + n;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = f32_bits(src[i]);
        uint16_t h = dt == MCH_STORE_BF16 ? f32_to_bf16(b) : f32_to_f16(b);
        if (shuffle) {
            p0[i] = (unsigned char)h;
            p1[i] = (unsigned char)(h >> 8);
        } else {
            dst[2 * i] = (unsigned char)h;
            dst[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
}

/* The inverse of encode_values. */
static void decode_values(mch_store_dtype dt, int shuffle, const unsigned char *src, size_t n,
                          float *dst)
{
    if (dt == MCH_STORE_F32) {
        const unsigned char *p0 = src, *p1 = src + n, *p2 = src + 2 * n, *p3 = src + 3 * n;
        for (size_t i = 0; i < n; i++) {
            uint32_t b = shuffle ? (uint32_t)p0[i] | (uint32_t)p1[i] << 8 | (uint32_t)p2[i] << 16 |
                                       (uint32_t)p3[i] << 24
                                 : get_u32(src + 4 * i);
            dst[i] = bits_f32(b);
        }
        return;
    }
    const unsigned char *p0 = src, *p1 = src + n;
    for (size_t i = 0; i < n; i++) {
        uint16_t h =
            shuffle ? (uint16_t)(p0[i] | p1[i] << 8) : (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        dst[i] = bits_f32(dt == MCH_STORE_BF16 ? bf16_to_f32(h) : f16_to_f32(h));
    }
}

/* What decode(encode(x)) must give, bit for bit. */
static uint32_t stored_value(mch_store_dtype dt, uint32_t x)
{
    if (dt == MCH_STORE_BF16) return bf16_to_f32(f32_to_bf16(x));
    if (dt == MCH_STORE_F16) return f16_to_f32(f32_to_f16(x));
    return x;
}

int mch_store_dtype_parse(const char *s, mch_store_dtype *dt)
{
    if (!s) return 0;
    if (!strcmp(s, "f32") || !strcmp(s, "lossless"))
        *dt = MCH_STORE_F32;
    else if (!strcmp(s, "bf16"))
        *dt = MCH_STORE_BF16;
    else if (!strcmp(s, "fp16") || !strcmp(s, "f16"))
        *dt = MCH_STORE_F16;
    else
        return 0;
    return 1;
}

const char *mch_store_dtype_name(mch_store_dtype dt)
{
    return dt == MCH_STORE_F32 ? "f32" : dt == MCH_STORE_BF16 ? "bf16" : "fp16";
}

const char *mch_store_run_name(int run)
{
    return run == MCH_RUN_BASELINE ? "baseline" : "perturbed";
}

/* ---- records ----------------------------------------------------------------------------- */

/* shape -> element count; 0 when a dim is out of range or the float32 size exceeds
 * MCH_STORE_MAX_RAW_BYTES. */
static uint64_t shape_numel(int ndim, const int64_t *shape)
{
    uint64_t numel = 1, cap = MCH_STORE_MAX_RAW_BYTES / 4;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1 || (uint64_t)shape[d] > cap / numel) return 0;
        numel *= (uint64_t)shape[d];
    }
    return numel;
}

static int hook_ok(const char *hook, size_t len)
{
    if (len < 1 || len > MCH_STORE_HOOK_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (hook[i] < 0x21 || hook[i] > 0x7e) return 0;
    return 1;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static void record_encode(unsigned char *r, const mch_store_entry *e)
{
    size_t len = strlen(e->hook);
    memset(r, 0, REC_BYTES);
    memcpy(r, REC_MAGIC, 4);
    r[4] = (unsigned char)e->run;
    r[5] = (unsigned char)e->dtype;
    r[6] = (unsigned char)e->ndim;
    r[7] = (unsigned char)len;
    put_u64(r + 8, e->pair_id);
    for (int d = 0; d < MCH_STORE_MAX_DIMS; d++)
        put_u64(r + 16 + 8 * d, d < e->ndim ? (uint64_t)e->shape[d] : 0);
    put_u64(r + 48, e->offset);
    put_u64(r + 56, e->stored_bytes);
    put_u64(r + 64, e->raw_bytes);
    put_u64(r + 72, e->checksum);
    memcpy(r + 80, e->hook, len);
    put_u64(r + REC_SUM_AT, XXH64(r, REC_SUM_AT, 0));
}

/* Checks every field of record r and fills e (hook into hook_buf, MCH_STORE_HOOK_MAX + 1 bytes).
 * @return NULL, or what is wrong (written into why). */
static const char *record_decode(const unsigned char *r, mch_store_entry *e, char *hook_buf,
                                 char *why, size_t why_cap)
{
    uint64_t sum = get_u64(r + REC_SUM_AT), want = XXH64(r, REC_SUM_AT, 0);
    if (memcmp(r, REC_MAGIC, 4)) {
        snprintf(why, why_cap, "not a record (bad magic)");
        return why;
    }
    if (sum != want) {
        snprintf(why, why_cap, "record checksum %016llx, computed %016llx", (unsigned long long)sum,
                 (unsigned long long)want);
        return why;
    }
    memset(e, 0, sizeof *e);
    e->run = r[4];
    e->dtype = (mch_store_dtype)r[5];
    e->ndim = r[6];
    size_t len = r[7];
    if (e->run > 1 || r[5] > MCH_STORE_F16 || e->ndim < 1 || e->ndim > MCH_STORE_MAX_DIMS) {
        snprintf(why, why_cap, "run %u, dtype %u or ndim %u out of range", r[4], r[5], r[6]);
        return why;
    }
    memcpy(hook_buf, r + 80, MCH_STORE_HOOK_MAX);
    hook_buf[MCH_STORE_HOOK_MAX] = 0;
    int pad_ok = 1;
    for (size_t i = len; i < 96; i++) pad_ok &= r[80 + i] == 0;
    if (!hook_ok(hook_buf, len) || !pad_ok) {
        snprintf(why, why_cap, "hook name of %zu bytes is not printable and NUL-padded", len);
        return why;
    }
    e->hook = hook_buf;
    e->pair_id = get_u64(r + 8);
    for (int d = 0; d < MCH_STORE_MAX_DIMS; d++) {
        uint64_t v = get_u64(r + 16 + 8 * d);
        if ((d >= e->ndim && v) || v > (uint64_t)INT64_MAX) {
            snprintf(why, why_cap, "shape[%d] = %llu out of range", d, (unsigned long long)v);
            return why;
        }
        e->shape[d] = (int64_t)v;
    }
    e->offset = get_u64(r + 48);
    e->stored_bytes = get_u64(r + 56);
    e->raw_bytes = get_u64(r + 64);
    e->checksum = get_u64(r + 72);
    uint64_t numel = shape_numel(e->ndim, e->shape);
    if (!numel) {
        char sh[128];
        shape_str(sh, sizeof sh, e->ndim, e->shape);
        snprintf(why, why_cap, "shape %s is empty or above %llu bytes", sh,
                 (unsigned long long)MCH_STORE_MAX_RAW_BYTES);
        return why;
    }
    if (e->raw_bytes != numel * 4) {
        snprintf(why, why_cap, "raw_bytes %llu, but the shape holds %llu",
                 (unsigned long long)e->raw_bytes, (unsigned long long)(numel * 4));
        return why;
    }
    uint64_t bound = ZSTD_compressBound((size_t)(numel * dtype_bytes(e->dtype)));
    if (e->stored_bytes < 1 || e->stored_bytes > bound || e->offset < HDR_BYTES ||
        e->offset > UINT64_MAX - REC_BYTES - e->stored_bytes) {
        snprintf(why, why_cap, "chunk offset %llu or size %llu out of range (at most %llu)",
                 (unsigned long long)e->offset, (unsigned long long)e->stored_bytes,
                 (unsigned long long)bound);
        return why;
    }
    return NULL;
}

static void header_encode(unsigned char *h, const char *magic)
{
    memcpy(h, magic, 8);
    put_u32(h + 8, FORMAT_VERSION);
    put_u32(h + 12, REC_BYTES);
}

/* ---- file helpers ------------------------------------------------------------------------ */

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

/* @return bytes read (short only at end of file), or -1 with errno. */
static ssize_t pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, p + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

static char *path_join(const char *a, const char *b, const char *ext)
{
    size_t n = strlen(a) + 1 + strlen(b) + strlen(ext) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", a, b, ext);
    return p;
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
    unsigned char want[HDR_BYTES], got[HDR_BYTES];
    header_encode(want, magic);
    struct stat st;
    ssize_t k = fstat(fd, &st) == 0 ? pread_all(fd, got, HDR_BYTES, 0) : -1;
    if (k < 0) {
        mch_fail(err, MCH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        close(fd);
        return MCH_ERR_IO;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (k < HDR_BYTES) {
        /* new, or a writer died while writing the header: (re)write it */
        if (memcmp(got, want, (size_t)k)) {
            close(fd);
            return mch_fail(err, MCH_ERR_FORMAT, "%s: %lld bytes that are not a mechir cache file",
                            path, (long long)size);
        }
        if (pwrite_all(fd, want, HDR_BYTES, 0)) {
            mch_fail(err, MCH_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            return MCH_ERR_IO;
        }
        size = HDR_BYTES;
    } else if (memcmp(got, want, HDR_BYTES)) {
        close(fd);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: not a mechir cache %s file of version %d (header at offset 0)", path,
                        is_idx ? "index" : "data", FORMAT_VERSION);
    } else if (is_idx && (size - HDR_BYTES) % REC_BYTES) {
        size -= (size - HDR_BYTES) % REC_BYTES;
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
    char *dir = path_join(out_dir, "cache", "");
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
        w->bin_path = path_join(dir, tag, ".bin");
        w->idx_path = path_join(dir, tag, ".idx");
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
    if (!st) st = open_append(w->bin_path, BIN_MAGIC, 0, &w->bin_fd, &w->bin_size, err);
    if (!st) st = open_append(w->idx_path, IDX_MAGIC, 1, &w->idx_fd, &w->idx_size, err);
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
    if (!hook_ok(hook, hook_len))
        return mch_fail(err, MCH_ERR_ARG, "cache hook name '%s' must be 1..%d printable bytes",
                        hook ? hook : "(null)", MCH_STORE_HOOK_MAX);
    if (run != MCH_RUN_BASELINE && run != MCH_RUN_PERTURBED)
        return mch_fail(err, MCH_ERR_ARG, "cache put %s: run %d is not 0 or 1", hook, run);
    if (ndim < 1 || ndim > MCH_STORE_MAX_DIMS || !shape || !data)
        return mch_fail(err, MCH_ERR_SHAPE, "cache put %s: ndim %d not in 1..%d", hook, ndim,
                        MCH_STORE_MAX_DIMS);
    uint64_t numel = shape_numel(ndim, shape);
    if (!numel) {
        char sh[128];
        shape_str(sh, sizeof sh, ndim, shape);
        return mch_fail(
            err, MCH_ERR_SHAPE, "cache put %s pair %016llx: shape %s is empty or above %llu bytes",
            hook, (unsigned long long)pair_id, sh, (unsigned long long)MCH_STORE_MAX_RAW_BYTES);
    }
    size_t n = (size_t)numel, plane_bytes = n * dtype_bytes(w->dt);
    size_t bound = ZSTD_compressBound(plane_bytes);
    if (grow(&w->planes, &w->planes_cap, plane_bytes) ||
        grow(&w->chunk, &w->chunk_cap, REC_BYTES + bound))
        return mch_fail(err, MCH_ERR_NOMEM, "cache put %s: out of memory for %zu values", hook, n);
    encode_values(w->dt, 1, data, n, w->planes);
    size_t z = ZSTD_compress2(w->cctx, w->chunk + REC_BYTES, bound, w->planes, plane_bytes);
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
                         .checksum = XXH64(w->chunk + REC_BYTES, z, 0)};
    for (int d = 0; d < ndim; d++) e.shape[d] = shape[d];
    record_encode(w->chunk, &e);

    /* chunk first, then its record: a record on disk always points at a whole chunk */
    if (pwrite_all(w->bin_fd, w->chunk, REC_BYTES + z, w->bin_size)) {
        int e1 = errno;
        if (ftruncate(w->bin_fd, (off_t)w->bin_size)) w->broken = 1;
        return mch_fail(err, MCH_ERR_IO, "%s: writing %zu bytes at offset %llu: %s", w->bin_path,
                        REC_BYTES + z, (unsigned long long)w->bin_size, strerror(e1));
    }
    if (pwrite_all(w->idx_fd, w->chunk, REC_BYTES, w->idx_size)) {
        int e1 = errno;
        if (ftruncate(w->idx_fd, (off_t)w->idx_size) || ftruncate(w->bin_fd, (off_t)w->bin_size))
            w->broken = 1;
        return mch_fail(err, MCH_ERR_IO, "%s: writing a record at offset %llu: %s", w->idx_path,
                        (unsigned long long)w->idx_size, strerror(e1));
    }
    w->bin_size += REC_BYTES + z;
    w->idx_size += REC_BYTES;
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

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct {
    mch_store_entry e;
    size_t seq; /* read order, for last-wins */
} store_item;

struct mch_store {
    char **files; /* .bin paths, one per .idx, in name order */
    size_t nfiles;
    store_item *items;
    size_t n, cap;
    mch_strmap *hook_ids; /* hook name -> index in hooks */
    char **hooks;
    size_t nhooks, hooks_cap;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_key(uint64_t pa, const char *ha, int ra, uint64_t pb, const char *hb, int rb)
{
    if (pa != pb) return pa < pb ? -1 : 1;
    int c = strcmp(ha, hb);
    if (c) return c;
    return (ra > rb) - (ra < rb);
}

static int cmp_item(const void *a, const void *b)
{
    const store_item *x = a, *y = b;
    int c = cmp_key(x->e.pair_id, x->e.hook, x->e.run, y->e.pair_id, y->e.hook, y->e.run);
    if (c) return c;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The store's copy of a hook name. NULL when out of memory. */
static const char *intern_hook(mch_store *s, const char *hook)
{
    size_t len = strlen(hook);
    int added;
    int64_t *slot = mch_strmap_put(s->hook_ids, hook, len, &added);
    if (!slot) return NULL;
    if (!added) return s->hooks[*slot];
    if (s->nhooks == s->hooks_cap) {
        size_t cap = s->hooks_cap ? 2 * s->hooks_cap : 16;
        char **p = realloc(s->hooks, cap * sizeof *p);
        if (!p) return NULL;
        s->hooks = p;
        s->hooks_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, hook, len + 1);
    *slot = (int64_t)s->nhooks;
    s->hooks[s->nhooks++] = copy;
    return copy;
}

static mch_status read_index(mch_store *s, const char *path, int file, mch_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char hdr[HDR_BYTES], want[HDR_BYTES], r[REC_BYTES];
    header_encode(want, IDX_MAGIC);
    size_t k = fread(hdr, 1, HDR_BYTES, f);
    mch_status st = MCH_OK;
    if (k < HDR_BYTES) {
        /* empty, or a writer died while writing the header: nothing indexed yet */
        if (ferror(f))
            st = mch_fail(err, MCH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        else if (memcmp(hdr, want, k))
            st = mch_fail(err, MCH_ERR_FORMAT, "%s: %zu bytes that are not a mechir cache index",
                          path, k);
        fclose(f);
        return st;
    }
    if (memcmp(hdr, IDX_MAGIC, 8)) {
        fclose(f);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a mechir cache index (offset 0: bad magic)",
                        path);
    }
    if (memcmp(hdr, want, HDR_BYTES)) {
        fclose(f);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: index version %u with %u-byte records; this mechir reads version %d "
                        "with %d-byte records",
                        path, get_u32(hdr + 8), get_u32(hdr + 12), FORMAT_VERSION, REC_BYTES);
    }
    uint64_t off = HDR_BYTES;
    char hook[MCH_STORE_HOOK_MAX + 1], why[200];
    while ((k = fread(r, 1, REC_BYTES, f)) == REC_BYTES) {
        mch_store_entry e;
        if (record_decode(r, &e, hook, why, sizeof why)) {
            st = mch_fail(err, MCH_ERR_FORMAT, "%s: record at offset %llu: %s", path,
                          (unsigned long long)off, why);
            break;
        }
        e.file = file;
        e.hook = intern_hook(s, hook);
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 256;
            store_item *p = e.hook ? realloc(s->items, cap * sizeof *p) : NULL;
            if (p) {
                s->items = p;
                s->cap = cap;
            }
        }
        if (!e.hook || s->n == s->cap) {
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
            break;
        }
        s->items[s->n].e = e;
        s->items[s->n].seq = s->n;
        s->n++;
        off += REC_BYTES;
    }
    /* k in 1..REC_BYTES-1 here is a truncated last record: ignored */
    if (!st && ferror(f))
        st = mch_fail(err, MCH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    return st;
}

mch_status mch_store_open(mch_store **out, const char *out_dir, mch_err *err)
{
    *out = NULL;
    mch_store *s = calloc(1, sizeof *s);
    char *dir = path_join(out_dir, "cache", "");
    if (s) s->hook_ids = mch_strmap_create();
    if (!s || !dir || !s->hook_ids) {
        free(dir);
        mch_store_close(s);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening the cache");
    }
    mch_status st = MCH_OK;
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d)
        st = mch_fail(err, MCH_ERR_IO, "cannot open cache directory %s: %s", dir, strerror(errno));
    for (struct dirent *de; !st && (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 4 || strcmp(de->d_name + len - 4, ".idx")) continue;
        if (nnames == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                st = mch_fail(err, MCH_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            names = p;
        }
        names[nnames] = malloc(len + 1);
        if (!names[nnames]) {
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory listing %s", dir);
            break;
        }
        memcpy(names[nnames++], de->d_name, len + 1);
    }
    if (d) closedir(d);
    if (!st && nnames) {
        qsort(names, nnames, sizeof *names, cmp_str);
        s->files = calloc(nnames, sizeof *s->files);
        if (!s->files) st = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", dir);
    }
    for (size_t i = 0; !st && i < nnames; i++) {
        char *idx = path_join(dir, names[i], "");
        s->files[i] = idx ? strdup(idx) : NULL;
        if (!idx || !s->files[i]) {
            free(idx);
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", dir);
            break;
        }
        s->nfiles = i + 1;
        memcpy(s->files[i] + strlen(s->files[i]) - 4, ".bin", 4);
        st = read_index(s, idx, (int)i, err);
        free(idx);
    }
    for (size_t i = 0; i < nnames; i++) free(names[i]);
    free(names);
    free(dir);
    if (st) {
        mch_store_close(s);
        return st;
    }
    /* sort by key then read order, and keep the last of each key */
    if (s->n) qsort(s->items, s->n, sizeof *s->items, cmp_item);
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        const mch_store_entry *a = &s->items[i].e, *b = i + 1 < s->n ? &s->items[i + 1].e : NULL;
        if (b && !cmp_key(a->pair_id, a->hook, a->run, b->pair_id, b->hook, b->run)) continue;
        s->items[kept++] = s->items[i];
    }
    s->n = kept;
    *out = s;
    return MCH_OK;
}

size_t mch_store_count(const mch_store *s)
{
    return s->n;
}

const mch_store_entry *mch_store_entry_at(const mch_store *s, size_t i)
{
    return i < s->n ? &s->items[i].e : NULL;
}

size_t mch_store_file_count(const mch_store *s)
{
    return s->nfiles;
}

const char *mch_store_file_name(const mch_store *s, int file)
{
    return file >= 0 && (size_t)file < s->nfiles ? s->files[file] : NULL;
}

const mch_store_entry *mch_store_find(const mch_store *s, uint64_t pair_id, const char *hook,
                                      int run)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mch_store_entry *e = &s->items[mid].e;
        int c = cmp_key(e->pair_id, e->hook, e->run, pair_id, hook, run);
        if (!c) return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t mch_store_entry_numel(const mch_store_entry *e)
{
    return (size_t)shape_numel(e->ndim, e->shape);
}

mch_status mch_store_read(const mch_store *s, const mch_store_entry *e, float *out, mch_err *err)
{
    const char *path = mch_store_file_name(s, e->file);
    if (!path)
        return mch_fail(err, MCH_ERR_ARG, "cache entry names file %d of %zu", e->file, s->nfiles);
    if (!e->hook || !hook_ok(e->hook, strlen(e->hook)))
        return mch_fail(err, MCH_ERR_ARG, "%s: cache entry without a valid hook name", path);
    unsigned long long off = (unsigned long long)e->offset;
    char what[400];
    snprintf(what, sizeof what, "%s:%llu: chunk of pair %016llx %s %s", path, off,
             (unsigned long long)e->pair_id, e->hook, mch_store_run_name(e->run));
    uint64_t numel = shape_numel(e->ndim, e->shape);
    if (e->ndim < 1 || e->ndim > MCH_STORE_MAX_DIMS || !numel ||
        (unsigned)e->dtype > MCH_STORE_F16 || e->stored_bytes < 1 ||
        e->offset > UINT64_MAX - REC_BYTES - e->stored_bytes)
        return mch_fail(err, MCH_ERR_ARG, "%s: entry out of range", what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mch_fail(err, MCH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return mch_fail(err, MCH_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    uint64_t end = e->offset + REC_BYTES + e->stored_bytes, fsize = (uint64_t)st.st_size;
    if (end > fsize) {
        close(fd);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: runs to byte %llu, past the end of the file (%llu bytes)", what,
                        (unsigned long long)end, (unsigned long long)fsize);
    }
    size_t n = (size_t)numel, plane_bytes = n * dtype_bytes(e->dtype);
    size_t chunk_bytes = (size_t)(REC_BYTES + e->stored_bytes);
    unsigned char *chunk = malloc(chunk_bytes), *planes = malloc(plane_bytes);
    mch_status rc = MCH_OK;
    if (!chunk || !planes) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory for %zu + %zu bytes", what,
                      chunk_bytes, plane_bytes);
        goto done;
    }
    ssize_t k = pread_all(fd, chunk, chunk_bytes, e->offset);
    if (k < 0 || (size_t)k != chunk_bytes) {
        rc = k < 0 ? mch_fail(err, MCH_ERR_IO, "%s: %s", what, strerror(errno))
                   : mch_fail(err, MCH_ERR_FORMAT, "%s: file ended while reading it", what);
        goto done;
    }
    unsigned char rec[REC_BYTES];
    record_encode(rec, e);
    if (memcmp(rec, chunk, REC_BYTES)) {
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: the chunk header differs from its index record",
                      what);
        goto done;
    }
    const unsigned char *payload = chunk + REC_BYTES;
    uint64_t sum = XXH64(payload, (size_t)e->stored_bytes, 0);
    if (sum != e->checksum) {
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: checksum %016llx, expected %016llx (corrupted)",
                      what, (unsigned long long)sum, (unsigned long long)e->checksum);
        goto done;
    }
    unsigned long long fcs = ZSTD_getFrameContentSize(payload, (size_t)e->stored_bytes);
    size_t fbytes = ZSTD_findFrameCompressedSize(payload, (size_t)e->stored_bytes);
    if (fcs != plane_bytes || ZSTD_isError(fbytes) || fbytes != e->stored_bytes) {
        rc = mch_fail(err, MCH_ERR_FORMAT,
                      "%s: zstd frame of %llu content bytes in %llu, expected %zu in %llu", what,
                      fcs, ZSTD_isError(fbytes) ? 0ull : (unsigned long long)fbytes, plane_bytes,
                      (unsigned long long)e->stored_bytes);
        goto done;
    }
    size_t z = ZSTD_decompress(planes, plane_bytes, payload, (size_t)e->stored_bytes);
    if (ZSTD_isError(z) || z != plane_bytes) {
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: zstd: %s", what,
                      ZSTD_isError(z) ? ZSTD_getErrorName(z) : "short frame");
        goto done;
    }
    decode_values(e->dtype, 1, planes, n, out);
done:
    free(chunk);
    free(planes);
    close(fd);
    return rc;
}

void mch_store_close(mch_store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) free(s->files[i]);
    free(s->files);
    for (size_t i = 0; i < s->nhooks; i++) free(s->hooks[i]);
    free(s->hooks);
    mch_strmap_free(s->hook_ids);
    free(s->items);
    free(s);
}

/* ---- .npy -------------------------------------------------------------------------------- */

mch_status mch_npy_write(const char *path, const float *data, int ndim, const int64_t *shape,
                         mch_err *err)
{
    if (ndim < 0 || ndim > MCH_STORE_MAX_DIMS)
        return mch_fail(err, MCH_ERR_SHAPE, "%s: ndim %d not in 0..%d", path, ndim,
                        MCH_STORE_MAX_DIMS);
    uint64_t numel = 1;
    char dims[128] = "";
    size_t k = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && numel > (UINT64_MAX / 4) / (uint64_t)shape[d]))
            return mch_fail(err, MCH_ERR_SHAPE, "%s: shape[%d] = %lld out of range", path, d,
                            (long long)shape[d]);
        numel *= (uint64_t)shape[d];
        k +=
            (size_t)snprintf(dims + k, sizeof dims - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    }
    if (ndim == 1) snprintf(dims + k, sizeof dims - k, ",");
    /* magic(6) + version(2) + header_len(2) + header, padded with spaces to a multiple of 64 and
     * ended by '\n' */
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                     dims);
    size_t total = (10 + (size_t)h + 1 + 63) / 64 * 64, hlen = total - 10;
    memset(hdr + h, ' ', hlen - 1 - (size_t)h);
    hdr[hlen - 1] = '\n';
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hlen, (unsigned char)(hlen >> 8)};

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        mch_status st = mch_fail(err, MCH_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    int bad = fwrite(pre, 1, 10, f) != 10 || fwrite(hdr, 1, hlen, f) != hlen;
    unsigned char buf[4096 * 4];
    for (uint64_t i = 0; !bad && i < numel;) {
        size_t m = numel - i < 4096 ? (size_t)(numel - i) : 4096;
        for (size_t j = 0; j < m; j++) put_u32(buf + 4 * j, f32_bits(data[i + j]));
        bad = fwrite(buf, 4, m, f) != m;
        i += m;
    }
    if (!bad) bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e1 = errno;
    if (fclose(f) && !bad) {
        bad = 1;
        e1 = errno;
    }
    if (!bad && rename(tmp, path)) {
        bad = 1;
        e1 = errno;
    }
    mch_status st = MCH_OK;
    if (bad) {
        unlink(tmp);
        st = mch_fail(err, MCH_ERR_IO, "writing %s: %s", path, strerror(e1));
    }
    free(tmp);
    return st;
}

/* ---- benchmark --------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

mch_status mch_store_bench(const float *data, size_t n, mch_store_dtype dt, int shuffle,
                           int zstd_level, int repeats, mch_store_bench_result *res, mch_err *err)
{
    memset(res, 0, sizeof *res);
    if (!n || n > MCH_STORE_MAX_RAW_BYTES / 4 || repeats < 1 || (unsigned)dt > MCH_STORE_F16)
        return mch_fail(err, MCH_ERR_ARG, "bench: %zu values, %d repeats, dtype %d out of range", n,
                        repeats, (int)dt);
    size_t plane_bytes = n * dtype_bytes(dt), bound = ZSTD_compressBound(plane_bytes);
    unsigned char *planes = malloc(plane_bytes), *back = malloc(plane_bytes), *comp = malloc(bound);
    float *dec = malloc(n * sizeof *dec);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    mch_status st = MCH_OK;
    size_t z = 0;
    if (!planes || !back || !comp || !dec || !cctx || !dctx) {
        st = mch_fail(err, MCH_ERR_NOMEM, "bench: out of memory for %zu values", n);
        goto done;
    }
    double t0 = now_s();
    for (int r = 0; r < repeats && !st; r++) {
        encode_values(dt, shuffle, data, n, planes);
        z = ZSTD_compressCCtx(cctx, comp, bound, planes, plane_bytes, zstd_level);
        if (ZSTD_isError(z)) st = mch_fail(err, MCH_ERR_ZSTD, "bench: %s", ZSTD_getErrorName(z));
    }
    double t1 = now_s();
    for (int r = 0; r < repeats && !st; r++) {
        size_t u = ZSTD_decompressDCtx(dctx, back, plane_bytes, comp, z);
        if (ZSTD_isError(u) || u != plane_bytes)
            st = mch_fail(err, MCH_ERR_ZSTD, "bench: decompress: %s",
                          ZSTD_isError(u) ? ZSTD_getErrorName(u) : "short");
        else
            decode_values(dt, shuffle, back, n, dec);
    }
    double t2 = now_s();
    for (size_t i = 0; !st && i < n; i++) {
        uint32_t got = f32_bits(dec[i]), want = stored_value(dt, f32_bits(data[i]));
        if (got != want)
            st = mch_fail(err, MCH_ERR_FORMAT, "bench: value %zu decoded as %08x, expected %08x", i,
                          (unsigned)got, (unsigned)want);
    }
    if (!st) {
        res->raw_bytes = (uint64_t)n * 4;
        res->stored_bytes = z;
        res->encode_s = (t1 - t0) / repeats;
        res->decode_s = (t2 - t1) / repeats;
    }
done:
    free(planes);
    free(back);
    free(comp);
    free(dec);
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    return st;
}
