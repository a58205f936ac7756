/* safetensors reader: mmap, then validate the JSON header (cJSON) before exposing any pointer.
 * Invariant: every mch_st_tensor handed out satisfies offset + nbytes <= data section size,
 * nbytes == numel * dtype size, and no two tensors' byte ranges overlap. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MCH_ST_MAX_HEADER_BYTES ((uint64_t)100 << 20)

static const struct {
    const char *name;
    mch_dtype dt;
    size_t size;
} dtype_table[] = {
    {"F32", MCH_DT_F32, 4},   {"F16", MCH_DT_F16, 2},         {"BF16", MCH_DT_BF16, 2},
    {"F64", MCH_DT_F64, 8},   {"I64", MCH_DT_I64, 8},         {"I32", MCH_DT_I32, 4},
    {"I16", MCH_DT_I16, 2},   {"I8", MCH_DT_I8, 1},           {"U8", MCH_DT_U8, 1},
    {"BOOL", MCH_DT_BOOL, 1}, {"F8_E4M3", MCH_DT_F8_E4M3, 1}, {"F8_E5M2", MCH_DT_F8_E5M2, 1},
};

const char *mch_dtype_name(mch_dtype dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].dt == dt) return dtype_table[i].name;
    return "?";
}

size_t mch_dtype_size(mch_dtype dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].dt == dt) return dtype_table[i].size;
    return 0;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void mch_to_f32(float *out, const void *data, mch_dtype dt, size_t n)
{
    const unsigned char *p = data;
    if (dt == MCH_DT_F32) {
        memcpy(out, data, n * sizeof(float));
    } else if (dt == MCH_DT_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = f16_to_f32(h);
        }
    } else if (dt == MCH_DT_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | (p[2 * i + 1] << 8)) << 16;
            memcpy(&out[i], &bits, sizeof bits);
        }
    }
}

mch_status mch_st_check_finite(const mch_safetensors *st, size_t *n_values, mch_err *err)
{
    enum { CHUNK = 1024 };
    float buf[CHUNK];
    size_t checked = 0;
    for (size_t i = 0; i < st->n; i++) {
        const mch_st_tensor *t = &st->tensors[i];
        int f64 = t->dtype == MCH_DT_F64;
        if (!f64 && t->dtype != MCH_DT_F32 && t->dtype != MCH_DT_F16 && t->dtype != MCH_DT_BF16)
            continue;
        const unsigned char *data = t->data;
        size_t width = mch_dtype_size(t->dtype);
        for (size_t at = 0; at < t->numel; at += CHUNK) {
            size_t n = t->numel - at < CHUNK ? t->numel - at : CHUNK;
            if (!f64) mch_to_f32(buf, data + at * width, t->dtype, n);
            for (size_t j = 0; j < n; j++) {
                double v = 0;
                if (f64)
                    memcpy(&v, data + (at + j) * width, sizeof v);
                else
                    v = buf[j];
                if (!isfinite(v))
                    return mch_fail(err, MCH_ERR_FORMAT,
                                    "%s: tensor '%s' (%s) holds %s at element %zu (of %zu)",
                                    st->path ? st->path : "safetensors", t->name,
                                    mch_dtype_name(t->dtype),
                                    isnan(v) ? "NaN"
                                    : v > 0  ? "inf"
                                             : "-inf",
                                    at + j, t->numel);
            }
        }
        checked += t->numel;
    }
    if (n_values) *n_values = checked;
    return MCH_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const mch_st_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

static int cmp_by_name(const void *a, const void *b)
{
    const mch_st_tensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* Reads a JSON number that must be a whole number in [0, 2^53]. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static void st_free_fields(mch_safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->path);
}

static mch_status parse_tensor(mch_st_tensor *t, const cJSON *item, uint64_t data_len,
                               const char *name, mch_err *err)
{
    const char *tn = item->string;
    if (!cJSON_IsObject(item))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", name,
                        tn);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: tensor '%s': missing or non-string 'dtype'", name,
                        tn);
    size_t esize = 0;
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(dt->valuestring, dtype_table[i].name) == 0) {
            t->dtype = dtype_table[i].dt;
            esize = dtype_table[i].size;
        }
    if (!esize)
        return mch_fail(err, MCH_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%.32s'", name,
                        tn, dt->valuestring);
    if (!cJSON_IsArray(shape))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: tensor '%s': missing or non-array 'shape'", name,
                        tn);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > MCH_ST_MAX_DIMS)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: tensor '%s': %d dimensions > %d", name, tn, ndim,
                        MCH_ST_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        uint64_t v;
        if (!json_uint(cJSON_GetArrayItem(shape, d), &v))
            return mch_fail(err, MCH_ERR_FORMAT,
                            "%s: tensor '%s': shape[%d] is not a non-negative integer", name, tn,
                            d);
        t->shape[d] = (int64_t)v;
        if (v && numel > UINT64_MAX / v) overflow = 1;
        numel *= v;
    }
    if (overflow || numel > UINT64_MAX / esize)
        return mch_fail(err, MCH_ERR_SHAPE, "%s: tensor '%s': shape overflows", name, tn);
    uint64_t b, e;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &b) || !json_uint(cJSON_GetArrayItem(offs, 1), &e))
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: tensor '%s': 'data_offsets' must be [begin, end] integers", name, tn);
    if (b > e || e > data_len)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of "
                        "%llu bytes",
                        name, tn, (unsigned long long)b, (unsigned long long)e,
                        (unsigned long long)data_len);
    if (e - b != numel * esize)
        return mch_fail(err, MCH_ERR_SHAPE,
                        "%s: tensor '%s': shape holds %llu bytes of %s but data_offsets span %llu",
                        name, tn, (unsigned long long)(numel * esize), dt->valuestring,
                        (unsigned long long)(e - b));
    t->numel = (size_t)numel;
    t->offset = (size_t)b;
    t->nbytes = (size_t)(e - b);
    return MCH_OK;
}

mch_status mch_st_parse(mch_safetensors **out, const void *bytes, size_t len, const char *name,
                        mch_err *err)
{
    const unsigned char *p = bytes;
    if (len < 8)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: file of %zu bytes is too short for a safetensors header", name, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > MCH_ST_MAX_HEADER_BYTES || hlen > len - 8)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: header length %llu is beyond the file size %zu",
                        name, (unsigned long long)hlen, len);
    cJSON *root = mch_json_parse_exact((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: header (%llu bytes) is not a JSON object", name,
                        (unsigned long long)hlen);
    }
    mch_safetensors *st = calloc(1, sizeof *st);
    int count = cJSON_GetArraySize(root);
    if (!st || !(st->tensors = calloc(count ? (size_t)count : 1, sizeof *st->tensors))) {
        free(st);
        cJSON_Delete(root);
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory reading the header", name);
    }
    st->data_start = 8 + (size_t)hlen;
    uint64_t data_len = len - st->data_start;
    mch_status rc = MCH_OK;
    for (const cJSON *item = root->child; item && rc == MCH_OK; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        mch_st_tensor *t = &st->tensors[st->n];
        rc = parse_tensor(t, item, data_len, name, err);
        if (rc != MCH_OK) break;
        if (!(t->name = strdup(item->string))) {
            rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name);
            break;
        }
        t->data = p + st->data_start + t->offset;
        st->n++;
    }
    cJSON_Delete(root);
    if (rc == MCH_OK && st->n > 1) {
        qsort(st->tensors, st->n, sizeof *st->tensors, cmp_by_offset);
        for (size_t i = 1; i < st->n && rc == MCH_OK; i++) {
            const mch_st_tensor *a = &st->tensors[i - 1], *b = &st->tensors[i];
            if (b->offset < a->offset + a->nbytes)
                rc = mch_fail(err, MCH_ERR_FORMAT,
                              "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", name,
                              a->name, a->offset, a->offset + a->nbytes, b->name, b->offset,
                              b->offset + b->nbytes);
        }
        qsort(st->tensors, st->n, sizeof *st->tensors, cmp_by_name);
        for (size_t i = 1; i < st->n && rc == MCH_OK; i++)
            if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
                rc = mch_fail(err, MCH_ERR_FORMAT, "%s: tensor '%s' appears twice", name,
                              st->tensors[i].name);
    }
    if (rc != MCH_OK) {
        st_free_fields(st);
        free(st);
        return rc;
    }
    *out = st;
    return MCH_OK;
}

mch_status mch_st_open(mch_safetensors **out, const char *path, mch_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mch_fail(err, MCH_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: file of %zu bytes is too short for a safetensors header", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return mch_fail(err, MCH_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    mch_safetensors *st = NULL;
    mch_status rc = mch_st_parse(&st, map, len, path, err);
    if (rc == MCH_OK && !(st->path = strdup(path))) {
        mch_st_close(st);
        st = NULL;
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", path);
    }
    if (rc != MCH_OK) {
        munmap(map, len);
        return rc;
    }
    st->map = map;
    st->map_len = len;
    *out = st;
    return MCH_OK;
}

void mch_st_close(mch_safetensors *st)
{
    if (!st) return;
    if (st->map) munmap(st->map, st->map_len);
    st_free_fields(st);
    free(st);
}

const mch_st_tensor *mch_st_find(const mch_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
