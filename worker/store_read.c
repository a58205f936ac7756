/* The activation cache's reader (docs/CACHE.md, "What the reader checks"): loads every index
 * under OUT/cache into memory, last record of a key wins, and reads one chunk at a time.
 * Nothing from disk is trusted: every record passes mch_store_record_decode, every chunk is
 * bounds-checked against its file before anything is allocated, then compared with its record
 * and its checksum before zstd sees it. */
#include <dirent.h>
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
#include "strmap.h"

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

/* Opens a cache file for reading only if it is a regular file: O_NONBLOCK, so that opening a
 * FIFO named like one does not wait for a writer, then fstat. *fd, or an error naming path. */
static mch_status open_regular(const char *path, int *fd, mch_err *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0) return mch_fail(err, MCH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int bad = fstat(*fd, &st) ? errno : 0;
    if (bad || !S_ISREG(st.st_mode)) {
        close(*fd);
        *fd = -1;
        return bad ? mch_fail(err, MCH_ERR_IO, "cannot stat %s: %s", path, strerror(bad))
                   : mch_fail(err, MCH_ERR_FORMAT, "%s: not a regular file", path);
    }
    return MCH_OK;
}

static mch_status read_index(mch_store *s, const char *path, int file, mch_err *err)
{
    int fd;
    mch_status ost = open_regular(path, &fd, err);
    if (ost) return ost;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return mch_fail(err, MCH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    unsigned char hdr[STORE_HDR_BYTES], want[STORE_HDR_BYTES], r[STORE_REC_BYTES];
    mch_store_header_encode(want, mch_store_idx_magic);
    size_t k = fread(hdr, 1, STORE_HDR_BYTES, f);
    mch_status st = MCH_OK;
    if (k < STORE_HDR_BYTES) {
        /* empty, or a writer died while writing the header: nothing indexed yet */
        if (ferror(f))
            st = mch_fail(err, MCH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        else if (memcmp(hdr, want, k))
            st = mch_fail(err, MCH_ERR_FORMAT, "%s: %zu bytes that are not a mechir cache index",
                          path, k);
        fclose(f);
        return st;
    }
    if (memcmp(hdr, mch_store_idx_magic, 8)) {
        fclose(f);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a mechir cache index (offset 0: bad magic)",
                        path);
    }
    if (memcmp(hdr, want, STORE_HDR_BYTES)) {
        fclose(f);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: index version %u with %u-byte records; this mechir reads version %d "
                        "with %d-byte records",
                        path, store_get_u32(hdr + 8), store_get_u32(hdr + 12), STORE_FORMAT_VERSION,
                        STORE_REC_BYTES);
    }
    uint64_t off = STORE_HDR_BYTES;
    char hook[MCH_STORE_HOOK_MAX + 1], why[200];
    while ((k = fread(r, 1, STORE_REC_BYTES, f)) == STORE_REC_BYTES) {
        mch_store_entry e;
        if (mch_store_record_decode(r, &e, hook, why, sizeof why)) {
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
        off += STORE_REC_BYTES;
    }
    /* k in 1..STORE_REC_BYTES-1 here is a truncated last record: ignored */
    if (!st && ferror(f))
        st = mch_fail(err, MCH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    return st;
}

/* The names of dir's *.idx files (not starting with '.'), sorted. The caller frees the *n names
 * and *names, also after an error. */
static mch_status list_indexes(const char *dir, char ***names, size_t *n, mch_err *err)
{
    mch_status st = MCH_OK;
    size_t cap = 0;
    DIR *d = opendir(dir);
    if (!d)
        st = mch_fail(err, MCH_ERR_IO, "cannot open cache directory %s: %s", dir, strerror(errno));
    for (struct dirent *de; !st && (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 4 || strcmp(de->d_name + len - 4, ".idx")) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(*names, cap * sizeof *p);
            if (!p) {
                st = mch_fail(err, MCH_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            *names = p;
        }
        (*names)[*n] = malloc(len + 1);
        if (!(*names)[*n]) {
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory listing %s", dir);
            break;
        }
        memcpy((*names)[(*n)++], de->d_name, len + 1);
    }
    if (d) closedir(d);
    if (!st && *n) qsort(*names, *n, sizeof **names, cmp_str);
    return st;
}

/* Reads dir/names[i] for every i, in order; file i's .bin is dir/names[i] ending in .bin. */
static mch_status read_indexes(mch_store *s, const char *dir, char **names, size_t n, mch_err *err)
{
    if (!n) return MCH_OK;
    s->files = calloc(n, sizeof *s->files);
    if (!s->files) return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", dir);
    mch_status st = MCH_OK;
    for (size_t i = 0; !st && i < n; i++) {
        char *idx = mch_store_path_join(dir, names[i], "");
        s->files[i] = idx ? strdup(idx) : NULL;
        if (!idx || !s->files[i]) {
            free(idx);
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", dir);
        }
        s->nfiles = i + 1;
        memcpy(s->files[i] + strlen(s->files[i]) - 4, ".bin", 4);
        st = read_index(s, idx, (int)i, err);
        free(idx);
    }
    return st;
}

/* Sorts the entries by key, then read order, and keeps the last of each key. */
static void keep_last(mch_store *s)
{
    if (s->n) qsort(s->items, s->n, sizeof *s->items, cmp_item);
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        const mch_store_entry *a = &s->items[i].e, *b = i + 1 < s->n ? &s->items[i + 1].e : NULL;
        if (b && !cmp_key(a->pair_id, a->hook, a->run, b->pair_id, b->hook, b->run)) continue;
        s->items[kept++] = s->items[i];
    }
    s->n = kept;
}

mch_status mch_store_open(mch_store **out, const char *out_dir, mch_err *err)
{
    *out = NULL;
    mch_store *s = calloc(1, sizeof *s);
    char *dir = mch_store_path_join(out_dir, "cache", "");
    if (s) s->hook_ids = mch_strmap_create();
    if (!s || !dir || !s->hook_ids) {
        free(dir);
        mch_store_close(s);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory opening the cache");
    }
    char **names = NULL;
    size_t nnames = 0;
    mch_status st = list_indexes(dir, &names, &nnames, err);
    if (!st) st = read_indexes(s, dir, names, nnames, err);
    for (size_t i = 0; i < nnames; i++) free(names[i]);
    free(names);
    free(dir);
    if (st) {
        mch_store_close(s);
        return st;
    }
    keep_last(s);
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
    return (size_t)mch_store_shape_numel(e->ndim, e->shape);
}

/* Checks chunk (its header record, then stored_bytes of zstd frame) against e and decodes it
 * into out. planes: scratch of plane_bytes, the frame's content size. what names the chunk. */
static mch_status decode_chunk(const mch_store_entry *e, const unsigned char *chunk,
                               unsigned char *planes, size_t plane_bytes, float *out,
                               const char *what, mch_err *err)
{
    unsigned char rec[STORE_REC_BYTES];
    mch_store_record_encode(rec, e);
    if (memcmp(rec, chunk, STORE_REC_BYTES))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: the chunk header differs from its index record",
                        what);
    const unsigned char *payload = chunk + STORE_REC_BYTES;
    uint64_t sum = mch_store_checksum(payload, (size_t)e->stored_bytes);
    if (sum != e->checksum)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: checksum %016llx, expected %016llx (corrupted)",
                        what, (unsigned long long)sum, (unsigned long long)e->checksum);
    unsigned long long fcs = ZSTD_getFrameContentSize(payload, (size_t)e->stored_bytes);
    size_t fbytes = ZSTD_findFrameCompressedSize(payload, (size_t)e->stored_bytes);
    if (fcs != plane_bytes || ZSTD_isError(fbytes) || fbytes != e->stored_bytes)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: zstd frame of %llu content bytes in %llu, expected %zu in %llu", what,
                        fcs, ZSTD_isError(fbytes) ? 0ull : (unsigned long long)fbytes, plane_bytes,
                        (unsigned long long)e->stored_bytes);
    size_t z = ZSTD_decompress(planes, plane_bytes, payload, (size_t)e->stored_bytes);
    if (ZSTD_isError(z) || z != plane_bytes)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: zstd: %s", what,
                        ZSTD_isError(z) ? ZSTD_getErrorName(z) : "short frame");
    mch_store_decode_values(e->dtype, 1, planes, plane_bytes / mch_store_dtype_bytes(e->dtype),
                            out);
    return MCH_OK;
}

mch_status mch_store_read(const mch_store *s, const mch_store_entry *e, float *out, mch_err *err)
{
    const char *path = mch_store_file_name(s, e->file);
    if (!path)
        return mch_fail(err, MCH_ERR_ARG, "cache entry names file %d of %zu", e->file, s->nfiles);
    if (!e->hook || !mch_store_hook_ok(e->hook, strlen(e->hook)))
        return mch_fail(err, MCH_ERR_ARG, "%s: cache entry without a valid hook name", path);
    unsigned long long off = (unsigned long long)e->offset;
    char what[400];
    snprintf(what, sizeof what, "%s:%llu: chunk of pair %016llx %s %s", path, off,
             (unsigned long long)e->pair_id, e->hook, mch_store_run_name(e->run));
    uint64_t numel = mch_store_shape_numel(e->ndim, e->shape);
    if (e->ndim < 1 || e->ndim > MCH_STORE_MAX_DIMS || !numel ||
        (unsigned)e->dtype > MCH_STORE_F16 || e->stored_bytes < 1 ||
        e->offset > UINT64_MAX - STORE_REC_BYTES - e->stored_bytes)
        return mch_fail(err, MCH_ERR_ARG, "%s: entry out of range", what);
    int fd;
    mch_status ost = open_regular(path, &fd, err);
    if (ost) return ost;
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return mch_fail(err, MCH_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    uint64_t end = e->offset + STORE_REC_BYTES + e->stored_bytes, fsize = (uint64_t)st.st_size;
    if (end > fsize) {
        close(fd);
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: runs to byte %llu, past the end of the file (%llu bytes)", what,
                        (unsigned long long)end, (unsigned long long)fsize);
    }
    size_t plane_bytes = (size_t)numel * mch_store_dtype_bytes(e->dtype);
    size_t chunk_bytes = (size_t)(STORE_REC_BYTES + e->stored_bytes);
    unsigned char *chunk = malloc(chunk_bytes), *planes = malloc(plane_bytes);
    ssize_t k = chunk && planes ? mch_store_pread_all(fd, chunk, chunk_bytes, e->offset) : 0;
    mch_status rc;
    if (!chunk || !planes)
        rc = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory for %zu + %zu bytes", what,
                      chunk_bytes, plane_bytes);
    else if (k < 0)
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", what, strerror(errno));
    else if ((size_t)k != chunk_bytes)
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: file ended while reading it", what);
    else
        rc = decode_chunk(e, chunk, planes, plane_bytes, out, what, err);
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
