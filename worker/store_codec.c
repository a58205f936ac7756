/* What the activation cache's writer and reader share (docs/CACHE.md): the value codec
 * (float32 <-> bf16/fp16, byte planes), the record and header layouts with their XXH64
 * checksums, and the checks every record read from disk passes before any of its fields is
 * used. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>
#define XXH_INLINE_ALL /* header-only: no library to link */
#include <xxhash.h>

#include "store_codec.h"
#include "store_internal.h"

const char mch_store_idx_magic[8] = {'M', 'C', 'H', 'S', 'T', 'I', 'D', 'X'};
const char mch_store_bin_magic[8] = {'M', 'C', 'H', 'S', 'T', 'B', 'I', 'N'};
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

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A float's bits and back (C11 allows reading the other member of a union). */
typedef union {
    float f;
    uint32_t u;
} f32_word;

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

size_t mch_store_dtype_bytes(mch_store_dtype dt)
{
    return dt == MCH_STORE_F32 ? 4 : 2;
}

void mch_store_encode_values(mch_store_dtype dt, int shuffle, const float *src, size_t n,
                             unsigned char *dst)
{
    if (dt == MCH_STORE_F32) {
        unsigned char *p0 = dst, *p1 = dst + n, *p2 = dst + 2 * n, *p3 = dst + 3 * n;
        for (size_t i = 0; i < n; i++) {
            uint32_t b = (f32_word){.f = src[i]}.u;
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
        uint32_t b = (f32_word){.f = src[i]}.u;
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

void mch_store_decode_values(mch_store_dtype dt, int shuffle, const unsigned char *src, size_t n,
                             float *dst)
{
    if (dt == MCH_STORE_F32) {
        const unsigned char *p0 = src, *p1 = src + n, *p2 = src + 2 * n, *p3 = src + 3 * n;
        for (size_t i = 0; i < n; i++) {
            uint32_t b = shuffle ? (uint32_t)p0[i] | (uint32_t)p1[i] << 8 | (uint32_t)p2[i] << 16 |
                                       (uint32_t)p3[i] << 24
                                 : store_get_u32(src + 4 * i);
            dst[i] = (f32_word){.u = b}.f;
        }
        return;
    }
    const unsigned char *p0 = src, *p1 = src + n;
    for (size_t i = 0; i < n; i++) {
        uint16_t h =
            shuffle ? (uint16_t)(p0[i] | p1[i] << 8) : (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        dst[i] = (f32_word){.u = dt == MCH_STORE_BF16 ? bf16_to_f32(h) : f16_to_f32(h)}.f;
    }
}

uint32_t mch_store_round_bits(mch_store_dtype dt, uint32_t x)
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

uint64_t mch_store_checksum(const void *p, size_t n)
{
    return XXH64(p, n, 0);
}

uint64_t mch_store_shape_numel(int ndim, const int64_t *shape)
{
    uint64_t numel = 1, cap = MCH_STORE_MAX_RAW_BYTES / 4;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1 || (uint64_t)shape[d] > cap / numel) return 0;
        numel *= (uint64_t)shape[d];
    }
    return numel;
}

int mch_store_hook_ok(const char *hook, size_t len)
{
    if (len < 1 || len > MCH_STORE_HOOK_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (hook[i] < 0x21 || hook[i] > 0x7e) return 0;
    return 1;
}

void mch_store_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

void mch_store_record_encode(unsigned char *r, const mch_store_entry *e)
{
    size_t len = strlen(e->hook);
    memset(r, 0, STORE_REC_BYTES);
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
    put_u64(r + STORE_REC_SUM_AT, mch_store_checksum(r, STORE_REC_SUM_AT));
}

const char *mch_store_record_decode(const unsigned char *r, mch_store_entry *e, char *hook_buf,
                                    char *why, size_t why_cap)
{
    uint64_t sum = get_u64(r + STORE_REC_SUM_AT), want = mch_store_checksum(r, STORE_REC_SUM_AT);
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
    if (!mch_store_hook_ok(hook_buf, len) || !pad_ok) {
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
    uint64_t numel = mch_store_shape_numel(e->ndim, e->shape);
    if (!numel) {
        char sh[128];
        mch_store_shape_str(sh, sizeof sh, e->ndim, e->shape);
        snprintf(why, why_cap, "shape %s is empty or above %llu bytes", sh,
                 (unsigned long long)MCH_STORE_MAX_RAW_BYTES);
        return why;
    }
    if (e->raw_bytes != numel * 4) {
        snprintf(why, why_cap, "raw_bytes %llu, but the shape holds %llu",
                 (unsigned long long)e->raw_bytes, (unsigned long long)(numel * 4));
        return why;
    }
    uint64_t bound = ZSTD_compressBound((size_t)(numel * mch_store_dtype_bytes(e->dtype)));
    if (e->stored_bytes < 1 || e->stored_bytes > bound || e->offset < STORE_HDR_BYTES ||
        e->offset > UINT64_MAX - STORE_REC_BYTES - e->stored_bytes) {
        snprintf(why, why_cap, "chunk offset %llu or size %llu out of range (at most %llu)",
                 (unsigned long long)e->offset, (unsigned long long)e->stored_bytes,
                 (unsigned long long)bound);
        return why;
    }
    return NULL;
}

void mch_store_header_encode(unsigned char *h, const char *magic)
{
    memcpy(h, magic, 8);
    put_u32(h + 8, STORE_FORMAT_VERSION);
    put_u32(h + 12, STORE_REC_BYTES);
}

/* ---- file helpers ------------------------------------------------------------------------ */

ssize_t mch_store_pread_all(int fd, void *buf, size_t n, uint64_t off)
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

char *mch_store_path_join(const char *a, const char *b, const char *ext)
{
    size_t n = strlen(a) + 1 + strlen(b) + strlen(ext) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", a, b, ext);
    return p;
}
