/* Fault injection, SQLite's habit (src/test_malloc.c): the n-th allocation fails, for n = 1, 2, ...
 * until the operation succeeds, in model loading, the input readers, the pair source, map decoding
 * and merge (the library call and `mechir merge` run in-process). Every failing run must return an
 * error status with a message, leave no allocation of its own live, and leave the output directory
 * as it was; a run that succeeds although an allocation failed (a failure the code absorbed) must
 * give the same result, byte for byte by digest, as a run without failures. Each operation runs
 * twice over: one-shot (only the n-th allocation fails) and persistent (the n-th and every later
 * one fail, so the error paths are themselves short of memory).
 *
 * How: this executable is linked with -Wl,--wrap=malloc,--wrap=calloc,... (tests/CMakeLists.txt),
 * so every call to those functions from the project's static libraries and from this file goes to
 * the __wrap_ functions below, which count calls, fail the armed one, and keep every live block in
 * a table stamped with the operation that made it: the leak check works in the release build too
 * (LeakSanitizer checks again under MCH_SANITIZE). Shared libraries are not wrapped; those that
 * take an allocator get the counting one: cJSON (cJSON_InitHooks), protobuf-c (its unpack and
 * free_unpacked are wrapped to pass the allocator when the caller passes NULL) and zstd (contexts
 * made with ZSTD_create*_advanced). Not covered: allocations inside glibc (fopen's FILE, getline,
 * open_memstream), OpenBLAS, utf8proc, libstemmer and OpenSSL. The counters are not thread-safe:
 * every operation here runs on one thread.
 *
 * MCH_FI_VERBOSE=1 prints every injected failure's status and message; MCH_FI_TEST=test_merge
 * runs one test (a cmocka filter). */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <protobuf-c/protobuf-c.h>
#include <zstd.h>

#include "cli.h"
#include "cmap.h"
#include "input.h"
#include "merge.h"
#include "meta.h"
#include "model.h"
#include "pairs_source.h"
#include "testutil.h"

/* ---- the counting allocator --------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **p, size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t max);

static struct {
    long calls;     /* allocation calls since armed */
    long fail_at;   /* 0: disarmed (nothing counted); n: the n-th call fails */
    int persistent; /* and every call after it */
    long injected;  /* failures injected since armed */
    unsigned op;    /* the operation running, stamped on its blocks */
} fi;

/* Live blocks by address: linear probing with backward-shift deletion. */
#define FI_BITS 18
#define FI_SLOTS (1u << FI_BITS)
typedef struct {
    void *p;
    size_t bytes;
    unsigned op;
} fi_slot;
static fi_slot fi_tab[FI_SLOTS];
static size_t fi_live;

static size_t fi_home(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL) >> (64 - FI_BITS));
}

static size_t fi_find(const void *p)
{
    size_t i = fi_home(p);
    while (fi_tab[i].p && fi_tab[i].p != p) i = (i + 1) & (FI_SLOTS - 1);
    return i;
}

static void fi_track(void *p, size_t bytes, unsigned op)
{
    if (fi_live >= FI_SLOTS / 2) {
        fprintf(stderr, "test_alloc_fail: more than %u live blocks; raise FI_BITS\n", FI_SLOTS / 2);
        abort();
    }
    fi_tab[fi_find(p)] = (fi_slot){p, bytes, op};
    fi_live++;
}

/* Removes p from the table; 1 when it was there (its stamp in *op). */
static int fi_untrack(const void *p, unsigned *op)
{
    size_t i = fi_find(p);
    if (!fi_tab[i].p) return 0;
    if (op) *op = fi_tab[i].op;
    for (size_t j = i;;) {
        j = (j + 1) & (FI_SLOTS - 1);
        if (!fi_tab[j].p) break;
        size_t k = fi_home(fi_tab[j].p);
        /* j's entry may move to i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
        fi_tab[i] = fi_tab[j];
        i = j;
    }
    fi_tab[i].p = NULL;
    fi_live--;
    return 1;
}

/* Fails the test from inside an operation: disarmed first, so cmocka's own cleanup can allocate.
 */
#define FI_FAIL(...)                                                                               \
    do {                                                                                           \
        fi.fail_at = 0;                                                                            \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static int fi_fail_now(void)
{
    if (!fi.fail_at) return 0;
    long c = ++fi.calls;
    if (c == fi.fail_at || (fi.persistent && c > fi.fail_at)) {
        fi.injected++;
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    if (fi_fail_now()) return NULL;
    void *p = __real_malloc(n);
    if (p) fi_track(p, n, fi.op);
    return p;
}

void *__wrap_calloc(size_t k, size_t n)
{
    if (fi_fail_now()) return NULL;
    void *p = __real_calloc(k, n);
    if (p) fi_track(p, k * n, fi.op);
    return p;
}

/* mch_alloc_large's large blocks. */
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    if (fi_fail_now()) return ENOMEM;
    int rc = __real_posix_memalign(p, align, n);
    if (!rc) fi_track(*p, n, fi.op);
    return rc;
}

/* A block keeps the stamp of the operation that made it (a caller's buffer grown by an operation
 * is still the caller's); blocks made outside the wrappers (getline's) stay untracked. */
void *__wrap_realloc(void *p, size_t n)
{
    if (p && n == 0) {
        __wrap_free(p);
        return NULL;
    }
    if (fi_fail_now()) return NULL;
    size_t i = p ? fi_find(p) : 0;
    int tracked = p && fi_tab[i].p;
    unsigned op = tracked ? fi_tab[i].op : fi.op;
    void *q = __real_realloc(p, n);
    if (!q) return NULL;
    if (tracked) fi_untrack(p, NULL);
    if (tracked || !p) fi_track(q, n, op);
    return q;
}

void __wrap_free(void *p)
{
    if (p) fi_untrack(p, NULL);
    __real_free(p);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *__wrap_strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = __wrap_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* protobuf-c and zstd allocate through the wrappers when given these. */
static void *fi_pb_alloc(void *data, size_t n)
{
    (void)data;
    return __wrap_malloc(n);
}
static void fi_pb_free(void *data, void *p)
{
    (void)data;
    __wrap_free(p);
}
static ProtobufCAllocator fi_pb = {fi_pb_alloc, fi_pb_free, NULL};
static const ZSTD_customMem fi_zmem = {fi_pb_alloc, fi_pb_free, NULL};

ProtobufCMessage *__real_protobuf_c_message_unpack(const ProtobufCMessageDescriptor *d,
                                                   ProtobufCAllocator *a, size_t len,
                                                   const uint8_t *data);
void __real_protobuf_c_message_free_unpacked(ProtobufCMessage *m, ProtobufCAllocator *a);
ProtobufCMessage *__wrap_protobuf_c_message_unpack(const ProtobufCMessageDescriptor *d,
                                                   ProtobufCAllocator *a, size_t len,
                                                   const uint8_t *data);
void __wrap_protobuf_c_message_free_unpacked(ProtobufCMessage *m, ProtobufCAllocator *a);
ZSTD_DCtx *__wrap_ZSTD_createDCtx(void);
ZSTD_CCtx *__wrap_ZSTD_createCCtx(void);

ProtobufCMessage *__wrap_protobuf_c_message_unpack(const ProtobufCMessageDescriptor *d,
                                                   ProtobufCAllocator *a, size_t len,
                                                   const uint8_t *data)
{
    return __real_protobuf_c_message_unpack(d, a ? a : &fi_pb, len, data);
}

void __wrap_protobuf_c_message_free_unpacked(ProtobufCMessage *m, ProtobufCAllocator *a)
{
    __real_protobuf_c_message_free_unpacked(m, a ? a : &fi_pb);
}

ZSTD_DCtx *__wrap_ZSTD_createDCtx(void)
{
    return ZSTD_createDCtx_advanced(fi_zmem);
}

ZSTD_CCtx *__wrap_ZSTD_createCCtx(void)
{
    return ZSTD_createCCtx_advanced(fi_zmem);
}

/* ---- digests of results (FNV-1a; computing one never allocates) ---------------------------- */

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void fnv_s(uint64_t *h, const char *s)
{
    fnv(h, s ? s : "\x01(null)", s ? strlen(s) + 1 : 8);
}

static void fnv_i(uint64_t *h, long long v)
{
    fnv(h, &v, sizeof v);
}

static void fnv_floats(uint64_t *h, const float *x, size_t n)
{
    fnv_i(h, x ? (long long)n : -1);
    if (x) fnv(h, x, n * sizeof *x);
}

static void digest_report(uint64_t *h, const mch_skip_report *r)
{
    fnv_i(h, r->units), fnv_i(h, r->produced), fnv_i(h, r->skipped), fnv_i(h, r->table_skipped);
    for (long i = 0; i < r->n_entries; i++)
        fnv_s(h, r->entries[i].file), fnv_i(h, r->entries[i].line), fnv_s(h, r->entries[i].reason);
}

static void digest_record(uint64_t *h, const mch_record *r)
{
    fnv_s(h, r->qid), fnv_s(h, r->query), fnv_s(h, r->docno), fnv_s(h, r->text);
    fnv_s(h, r->term), fnv_i(h, r->relevance), fnv_i(h, r->rank), fnv_s(h, r->file);
    fnv_i(h, r->line);
}

/* Every file of dir, with its bytes. */
static void digest_dir(uint64_t *h, const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 2);
    for (int i = 0; i < n; i++) {
        char path[4400], buf[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        fnv_s(h, names[i]->d_name);
        int fd = open(path, O_RDONLY);
        ssize_t k;
        struct stat sb;
        if (fd >= 0 && !fstat(fd, &sb) && S_ISREG(sb.st_mode))
            while ((k = read(fd, buf, sizeof buf)) > 0) fnv(h, buf, (size_t)k);
        if (fd >= 0) close(fd);
        free(names[i]);
    }
    free(names);
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* An operation: runs to completion and frees what it made (on success too), leaving a digest of
 * its result in *digest; a failure returns its status with err set. out_dir, when set, is a
 * directory the operation writes into: after a failure it must hold what it held before, but for
 * whole, an output committed before the failure (`--write-df` of a pair source that fails while
 * reading), which must then be the clean run's bytes. */
typedef struct fi_case fi_case;
struct fi_case {
    const char *name;
    mch_status (*run)(const fi_case *c, uint64_t *digest, mch_err *err);
    const char *a, *b, *c, *d; /* the operation's paths or arguments */
    const void *ctx;
    const char *out_dir;
    const char *whole; /* a file in out_dir a run may leave, only whole: as the clean run's */
};

static int verbose;

static void fi_arm(long fail_at, int persistent)
{
    fi.calls = fi.injected = 0;
    fi.persistent = persistent;
    fi.op++;
    fi.fail_at = fail_at;
}

/* Blocks of the current operation still live, with a line for the first few. */
static long fi_leaks(const char *name, long n)
{
    long leaks = 0;
    for (size_t i = 0; i < FI_SLOTS; i++)
        if (fi_tab[i].p && fi_tab[i].op == fi.op && leaks++ < 3)
            fprintf(stderr, "LEAK %s (allocation %ld failed): %zu bytes at %p\n", name, n,
                    fi_tab[i].bytes, fi_tab[i].p);
    return leaks;
}

static uint64_t dir_state(const char *dir)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    if (dir) digest_dir(&h, dir);
    return h;
}

/* The digest of c->whole's bytes (0: absent), which is then removed. */
static uint64_t take_whole(const fi_case *c)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    char buf[4096];
    ssize_t k;
    int fd = c->whole ? open(c->whole, O_RDONLY) : -1;
    if (fd < 0) return 0;
    while ((k = read(fd, buf, sizeof buf)) > 0) fnv(&h, buf, (size_t)k);
    close(fd);
    unlink(c->whole);
    return h;
}

/* Runs c with the n-th allocation failing for n = 1, 2, ... until a run reaches its end with no
 * failure injected; asserts the properties above and that at least one run failed. */
static void fi_exhaust(const fi_case *c, int persistent)
{
    mch_err err = {0};
    uint64_t want = 0, got;
    uint64_t dir_before = dir_state(c->out_dir);
    fi_arm(LONG_MAX, 0);
    mch_status rc = c->run(c, &want, &err);
    long total = fi.calls;
    fi.fail_at = 0;
    if (rc) fail_msg("%s without faults: %s", c->name, err.msg);
    uint64_t whole = take_whole(c);
    assert_true(!c->whole || whole != 0);
    assert_int_equal(fi_leaks(c->name, 0), 0);
    assert_true(dir_state(c->out_dir) == dir_before);
    long failed = 0, absorbed = 0, by_code[MCH_ERR_UNSUPPORTED + 1] = {0};
    for (long n = 1;; n++) {
        memset(&err, 0, sizeof err);
        got = 0;
        fi_arm(n, persistent);
        rc = c->run(c, &got, &err);
        long injected = fi.injected;
        fi.fail_at = 0;
        if (fi_leaks(c->name, n)) fail_msg("%s leaks when allocation %ld fails", c->name, n);
        uint64_t left = take_whole(c);
        if (rc == MCH_OK ? left != whole : left && left != whole)
            fail_msg("%s: %s is not the clean run's when allocation %ld fails", c->name, c->whole,
                     n);
        if (dir_state(c->out_dir) != dir_before)
            fail_msg("%s leaves files behind when allocation %ld fails (status %d)", c->name, n,
                     (int)rc);
        if (!injected) {
            if (rc) fail_msg("%s fails with no allocation failing: %s", c->name, err.msg);
            assert_true(got == want);
            assert_true(n > total); /* every allocation of the clean run was failed once */
            break;
        }
        if (rc == MCH_OK) {
            if (got != want)
                fail_msg("%s succeeds with a different result when allocation %ld fails", c->name,
                         n);
            absorbed++;
            continue;
        }
        if (err.code != rc || !err.msg[0])
            fail_msg("%s: allocation %ld failed: status %d with err code %d and message '%s'",
                     c->name, n, (int)rc, (int)err.code, err.msg);
        if (rc > 0 && rc <= MCH_ERR_UNSUPPORTED) by_code[rc]++;
        if (verbose) printf("  %s #%ld: %s: %s\n", c->name, n, mch_status_name(rc), err.msg);
        failed++;
    }
    assert_true(failed > 0);
    printf("%-34s %-10s %5ld allocations: %5ld failed cleanly (%ld out of memory, %ld other), "
           "%ld absorbed\n",
           c->name, persistent ? "persistent" : "one-shot", total, failed, by_code[MCH_ERR_NOMEM],
           failed - by_code[MCH_ERR_NOMEM], absorbed);
}

static void fi_exhaust_both(const fi_case *c)
{
    fi_exhaust(c, 0);
    fi_exhaust(c, 1);
}

/* ---- the operations ----------------------------------------------------------------------- */

static char dir[2048];

static const char *at(const char *name)
{
    static char paths[32][4400]; /* enough for one test's paths */
    static int k;
    k = (k + 1) % 32;
    snprintf(paths[k], sizeof paths[k], "%s/%s", dir, name);
    return paths[k];
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_str(const char *name, const char *s)
{
    write_bytes(at(name), s, strlen(s));
}

/* name, zstd-compressed (level 3). */
static void write_zst(const char *name, const char *s)
{
    size_t cap = ZSTD_compressBound(strlen(s));
    void *z = malloc(cap);
    assert_non_null(z);
    size_t n = ZSTD_compress(z, cap, s, strlen(s), 3);
    assert_false(ZSTD_isError(n));
    write_bytes(at(name), z, n);
    free(z);
}

static mch_status op_model(const fi_case *c, uint64_t *h, mch_err *err)
{
    mch_model *m = NULL;
    mch_status rc = mch_model_open(&m, c->a, err);
    if (rc) return rc;
    const mch_config *g = &m->cfg;
    size_t C = (size_t)g->C, E = (size_t)g->E, FF = (size_t)g->FF;
    fnv_i(h, g->C), fnv_i(h, g->L), fnv_i(h, g->NH), fnv_i(h, g->FF), fnv_i(h, g->E);
    fnv_i(h, g->V), fnv_i(h, g->max_pos), fnv_i(h, g->type_vocab), fnv_i(h, g->num_labels);
    fnv_s(h, m->dir);
    fnv_floats(h, m->wte, (size_t)g->V * E);
    fnv_floats(h, m->wpe, (size_t)g->max_pos * E);
    fnv_floats(h, m->wtt, (size_t)g->type_vocab * E);
    fnv_floats(h, m->emb_ln_g, E), fnv_floats(h, m->emb_ln_b, E);
    fnv_floats(h, m->proj_w, C * E), fnv_floats(h, m->proj_b, C);
    for (int l = 0; l < g->L; l++) {
        const mch_layer_weights *w = &m->layers[l];
        fnv_floats(h, w->q_w, C * C), fnv_floats(h, w->q_b, C);
        fnv_floats(h, w->k_w, C * C), fnv_floats(h, w->k_b, C);
        fnv_floats(h, w->v_w, C * C), fnv_floats(h, w->v_b, C);
        fnv_floats(h, w->o_w, C * C), fnv_floats(h, w->o_b, C);
        fnv_floats(h, w->ln1_g, C), fnv_floats(h, w->ln1_b, C);
        fnv_floats(h, w->ff1_w, FF * C), fnv_floats(h, w->ff1_b, FF);
        fnv_floats(h, w->ff2_w, C * FF), fnv_floats(h, w->ff2_b, C);
        fnv_floats(h, w->ln2_g, C), fnv_floats(h, w->ln2_b, C);
    }
    fnv_floats(h, m->head_w, C * C), fnv_floats(h, m->head_b, C);
    fnv_floats(h, m->cls_w, (size_t)g->num_labels * C), fnv_floats(h, m->cls_b, g->num_labels);
    fnv_i(h, mch_tok_size(m->tok));
    for (int32_t i = 0; i < mch_tok_size(m->tok); i++) fnv_s(h, mch_tok_token(m->tok, i));
    mch_model_close(m);
    return MCH_OK;
}

static mch_status op_model_meta(const fi_case *c, uint64_t *h, mch_err *err)
{
    mch_model_meta *m = NULL;
    mch_status rc = mch_model_meta_open(&m, c->a, err);
    if (rc) return rc;
    fnv_i(h, m->cfg.V), fnv_i(h, m->cfg.C), fnv_i(h, mch_tok_size(m->tok));
    for (int32_t i = 0; i < mch_tok_size(m->tok); i++) fnv_s(h, mch_tok_token(m->tok, i));
    mch_model_meta_close(m);
    return MCH_OK;
}

/* Opens a reader of kind c->d ("tsv", "jsonl", "trec": run, topics, docs, and qrels in ctx)
 * and reads every record. */
static mch_status op_reader(const fi_case *c, uint64_t *h, mch_err *err)
{
    mch_input *in = NULL;
    mch_input_opts o = {.report_cap = 1000};
    mch_status rc;
    if (!strcmp(c->d, "tsv"))
        rc = mch_input_open_tsv(&in, c->a, &o, err);
    else if (!strcmp(c->d, "jsonl"))
        rc = mch_input_open_jsonl(&in, c->a, &o, err);
    else
        rc = mch_input_open_trec(&in, c->a, c->b, c->c, c->ctx, &o, err);
    const mch_record *r;
    while (!rc && !(rc = mch_input_next(in, &r, err)) && r) digest_record(h, r);
    if (!rc) digest_report(h, mch_input_report(in));
    mch_input_close(in);
    return rc;
}

static mch_status op_lines(const fi_case *c, uint64_t *h, mch_err *err)
{
    mch_lines *l = NULL;
    mch_status rc = mch_lines_open(&l, c->a, 0, err);
    char *line;
    size_t len;
    long no;
    while (!rc && !(rc = mch_lines_next(l, &line, &len, &no, err)) && line) {
        fnv(h, line, len);
        fnv_i(h, no);
    }
    mch_lines_close(l);
    return rc;
}

/* The pair source over c->ctx's options (model meta loaded once, outside the faults). */
typedef struct {
    mch_source_opts o;
    const mch_model_meta *meta;
} source_ctx;

static mch_status op_source(const fi_case *c, uint64_t *h, mch_err *err)
{
    const source_ctx *x = c->ctx;
    mch_pair_source *s = NULL;
    mch_status rc = mch_pair_source_open(&s, &x->o, x->meta, err);
    const mch_pair *p;
    const mch_record *r;
    while (!rc && !(rc = mch_pair_source_next(s, &p, &r, err)) && p) {
        digest_record(h, r);
        fnv_i(h, (long long)p->pair_id), fnv_s(h, p->term), fnv_i(h, p->position);
        fnv_i(h, p->n_term), fnv_i(h, p->T), fnv_i(h, p->Tq), fnv_s(h, p->skip);
        fnv(h, p->ids_baseline, (size_t)p->T * sizeof *p->ids_baseline);
        fnv(h, p->ids_perturbed, (size_t)p->T * sizeof *p->ids_perturbed);
        fnv(h, p->token_types, (size_t)p->T * sizeof *p->token_types);
        fnv(h, p->roles, (size_t)p->T * sizeof *p->roles);
        if (p->Tq) fnv(h, p->query_ids, (size_t)p->Tq * sizeof *p->query_ids);
    }
    if (!rc) {
        digest_report(h, mch_pair_source_report(s));
        fnv_i(h, mch_pair_source_perturb_skips(s));
    }
    mch_pair_source_close(s);
    return rc;
}

/* A map's bytes, packed again. */
static mch_status digest_map(uint64_t *h, const mch_cmap *m, mch_err *err)
{
    uint8_t *b = NULL;
    size_t n = 0;
    mch_status rc = mch_cmap_pack(m, &b, &n, err);
    if (!rc) fnv(h, b, n);
    free(b);
    return rc;
}

typedef struct {
    const uint8_t *bytes;
    size_t len;
} bytes_ctx;

static mch_status op_unpack(const fi_case *c, uint64_t *h, mch_err *err)
{
    const bytes_ctx *x = c->ctx;
    mch_cmap m;
    mch_status rc = mch_cmap_unpack(&m, x->bytes, x->len, c->a, err);
    if (rc) return rc;
    rc = digest_map(h, &m, err);
    mch_cmap_deinit(&m);
    return rc;
}

static mch_status op_load(const fi_case *c, uint64_t *h, mch_err *err)
{
    mch_cmap m;
    mch_status rc = mch_cmap_load(&m, c->a, err);
    if (rc) return rc;
    rc = digest_map(h, &m, err);
    mch_cmap_deinit(&m);
    return rc;
}

static mch_status op_merge(const fi_case *c, uint64_t *h, mch_err *err)
{
    mch_cmap *const *maps = c->ctx;
    mch_cmap_input in[2] = {{maps[0], "a.cmap"}, {maps[1], "b.cmap"}};
    mch_cmap out;
    mch_status rc = mch_cmap_merge(in, 2, &out, err);
    if (rc) return rc;
    rc = digest_map(h, &out, err);
    mch_cmap_deinit(&out);
    return rc;
}

/* The output is digested and removed, so the directory is back as it was. */
static mch_status op_merge_files(const fi_case *c, uint64_t *h, mch_err *err)
{
    const char *inputs[2] = {c->a, c->b};
    mch_merge_opts o = {inputs, 2, c->c};
    mch_merge_summary s;
    mch_status rc = mch_merge_files(&o, &s, err);
    if (rc) return rc;
    digest_dir(h, c->out_dir);
    fnv_i(h, (long long)s.pairs_total), fnv_i(h, (long long)s.pairs_used);
    fnv_i(h, (long long)s.n_sites);
    unlink(c->c);
    return MCH_OK;
}

/* `mechir merge A B -o OUT` in-process, stderr caught in a file outside out_dir: exit 0 (its info
 * line is not digested), or exit 1 with one "mechir merge: ..." line (which becomes err's
 * message). */
static mch_status op_cmd_merge(const fi_case *c, uint64_t *h, mch_err *err)
{
    char *argv[] = {"merge", (char *)c->a, (char *)c->b, "-o", (char *)c->c, NULL};
    long n = fi.fail_at;
    fflush(stderr);
    int saved = dup(2), fd = open(c->d, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0 || dup2(fd, 2) < 0) FI_FAIL("cannot redirect stderr to %s", c->d);
    close(fd);
    int status = mch_cmd_merge(5, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char line[600] = "", more[600];
    FILE *f = fopen(c->d, "r"); /* glibc's FILE: not a wrapped allocation */
    if (!f) FI_FAIL("cannot read %s", c->d);
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    int lines = line[0] ? 1 + (fgets(more, sizeof more, f) != NULL) : 0;
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    if (status == 0) {
        digest_dir(h, c->out_dir);
        unlink(c->c);
        return MCH_OK;
    }
    if (status != 1 || lines != 1 || strncmp(line, "mechir merge: ", 14) != 0)
        FI_FAIL("mechir merge exits %d with %d line(s) on stderr, the first '%s' (allocation %ld "
                "failed; want exit 1 and one line 'mechir merge: ...')",
                status, lines, line, n);
    /* The message the user saw, as a status (MCH_ERR_NOMEM when it says so). */
    return mch_fail(err, strstr(line, "out of memory") ? MCH_ERR_NOMEM : MCH_ERR_IO, "%s",
                    line + 14);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static const char tsv[] = "qid\tquery\tdocno\ttext\n"
                          "q1\tblack bear attacks\td1\tthe black bear lives in the forest\n"
                          "q1\tblack bear attacks\td2\tattacks by bears are rare in summer\n"
                          "q2\tsolar power\td3\tsolar panels turn light into power\n"
                          "q2\tsolar power\n" /* bad: 2 columns */
                          "q2\tsolar power\td4\twind and solar power grow fast\tsolar\n";

static const char jsonl[] =
    "{\"qid\": \"q1\", \"query\": \"black bear\", \"docno\": \"d1\", \"text\": \"a bear\"}\n"
    "{\"qid\": 9007199254740993, \"query\": \"solar power\", \"docno\": 7, \"text\": \"solar "
    "panels\", \"relevance\": 1, \"rank\": 2}\n"
    "not json\n"
    "{\"qid\": \"q3\", \"query\": \"wind\", \"docno\": \"d3\", \"text\": \"wind farms\", "
    "\"term\": \"wind\"}\n";

static const char run_txt[] = "q1 Q0 d1 1 3.5 bm25\n"
                              "q1 Q0 d2 2 2.5 bm25\n"
                              "q2 Q0 d3 1 1.5 bm25\n"
                              "q9 Q0 d1 1 1.0 bm25\n"; /* skipped: q9 not in topics */
static const char topics_tsv[] = "q1\tblack bear attacks\nq2\tsolar power\n";
static const char docs_tsv[] = "d1\tthe black bear lives in the forest\n"
                               "d2\tattacks by bears are rare in summer\n"
                               "d3\tsolar panels turn light into power\n";
static const char docs_jsonl[] =
    "{\"docno\": \"d1\", \"text\": \"the black bear lives in the forest\"}\n"
    "{\"docno\": \"d2\", \"text\": \"attacks by bears are rare in summer\"}\n"
    "{\"docno\": \"d3\", \"text\": \"solar panels turn light into power\"}\n";
static const char qrels_txt[] = "q1 0 d1 2\nq1 0 d2 0\nq2 0 d3 1\n";

static void test_model_loading(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) /* minutes a model under ASan: the one that converts weights */
    static const char *models[] = {"bert-ce-tiny-bf16"};
#else
    static const char *models[] = {"bert-ce-tiny", "bert-ce-tiny-bf16", "distilbert-dot-tiny",
                                   "electra-ce-tiny"};
#endif
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char path[4400], name[128];
        snprintf(path, sizeof path, "%s/models/%s", MCH_TEST_DATA, models[i]);
        snprintf(name, sizeof name, "mch_model_open %s", models[i]);
        fi_exhaust_both(&(fi_case){.name = name, .run = op_model, .a = path});
        snprintf(name, sizeof name, "mch_model_meta_open %s", models[i]);
        fi_exhaust_both(&(fi_case){.name = name, .run = op_model_meta, .a = path});
    }
}

static void test_input_readers(void **state)
{
    (void)state;
    write_str("in.tsv", tsv);
    write_zst("in.tsv.zst", tsv);
    write_str("in.jsonl", jsonl);
    write_zst("in.jsonl.zst", jsonl);
    write_str("run.txt", run_txt);
    write_str("topics.tsv", topics_tsv);
    write_str("docs.tsv", docs_tsv);
    write_zst("docs.jsonl.zst", docs_jsonl);
    write_str("qrels.txt", qrels_txt);
    const fi_case cases[] = {
        {.name = "tsv reader", .run = op_reader, .a = at("in.tsv"), .d = "tsv"},
        {.name = "tsv reader (.zst)", .run = op_reader, .a = at("in.tsv.zst"), .d = "tsv"},
        {.name = "jsonl reader", .run = op_reader, .a = at("in.jsonl"), .d = "jsonl"},
        {.name = "jsonl reader (.zst)", .run = op_reader, .a = at("in.jsonl.zst"), .d = "jsonl"},
        {.name = "trec reader",
         .run = op_reader,
         .a = at("run.txt"),
         .b = at("topics.tsv"),
         .c = at("docs.tsv"),
         .d = "trec",
         .ctx = at("qrels.txt")},
        {.name = "trec reader (docs .jsonl.zst)",
         .run = op_reader,
         .a = at("run.txt"),
         .b = at("topics.tsv"),
         .c = at("docs.jsonl.zst"),
         .d = "trec",
         .ctx = at("qrels.txt")},
        {.name = "line reader", .run = op_lines, .a = at("in.tsv")},
        {.name = "line reader (.zst)", .run = op_lines, .a = at("in.tsv.zst")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) fi_exhaust_both(&cases[i]);
}

static void test_pair_source(void **state)
{
    (void)state;
    write_str("pairs.tsv", tsv);
    write_str("run.txt", run_txt);
    write_str("topics.tsv", topics_tsv);
    write_zst("docs.jsonl.zst", docs_jsonl);
    write_str("qrels.txt", qrels_txt);
    char model[4400];
    snprintf(model, sizeof model, "%s/models/bert-ce-tiny", MCH_TEST_DATA);
    mch_model_meta *meta = NULL;
    mch_err err = {0};
    if (mch_model_meta_open(&meta, model, &err)) fail_msg("%s", err.msg);
    source_ctx tfc1 = {.o = {.input = at("pairs.tsv"), .perturb = "tfc1", .max_query_len = 16},
                       .meta = meta};
    char df_dir[3000];
    snprintf(df_dir, sizeof df_dir, "%s/df", dir);
    assert_int_equal(mkdir(df_dir, 0700), 0);
    source_ctx tdc = {.o = {.input = at("pairs.tsv"),
                            .perturb = "tdc",
                            .max_query_len = 16,
                            .write_df = at("df/df.tsv")},
                      .meta = meta};
    source_ctx trec = {.o = {.run = at("run.txt"),
                             .topics = at("topics.tsv"),
                             .docs = at("docs.jsonl.zst"),
                             .qrels = at("qrels.txt"),
                             .perturb = "lnc1",
                             .write_df = at("df/df.tsv"),
                             .max_query_len = 16},
                       .meta = meta};
    const fi_case cases[] = {
        {.name = "pair source tsv tfc1", .run = op_source, .ctx = &tfc1},
        {.name = "pair source tsv tdc (df pass)",
         .run = op_source,
         .ctx = &tdc,
         .out_dir = df_dir,
         .whole = tdc.o.write_df},
        {.name = "pair source trec lnc1 (df pass)",
         .run = op_source,
         .ctx = &trec,
         .out_dir = df_dir,
         .whole = trec.o.write_df},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) fi_exhaust_both(&cases[i]);
    mch_model_meta_close(meta);
}

static uint8_t *read_fixture(const char *name, size_t *len)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/../fuzz/corpus/cmap/%s", MCH_TEST_DATA, name);
    uint8_t *b = (uint8_t *)tu_read_file(path, len);
    if (!b) fail_msg("cannot read %s", path);
    return b;
}

static void test_map_decoding(void **state)
{
    (void)state;
    static const char *names[] = {"good-demo-40.cmap", "good-merged-2-sites.cmap"};
    for (size_t i = 0; i < 2; i++) {
        bytes_ctx x;
        uint8_t *b = read_fixture(names[i], &x.len);
        x.bytes = b;
        char name[128], path[4400];
        snprintf(name, sizeof name, "mch_cmap_unpack %s", names[i]);
        fi_exhaust_both(&(fi_case){.name = name, .run = op_unpack, .a = names[i], .ctx = &x});
        write_bytes(strcpy(path, at(names[i])), b, x.len);
        snprintf(name, sizeof name, "mch_cmap_load %s", names[i]);
        fi_exhaust_both(&(fi_case){.name = name, .run = op_load, .a = path});
        free(b);
    }
}

/* Two maps of disjoint pairs for merging: the demo map twice, with pair ids 2, 4, 6, ... and 3, 5,
 * 7, ... and another site in the second. */
static void make_merge_inputs(mch_cmap *a, mch_cmap *b)
{
    size_t len;
    uint8_t *bytes = read_fixture("good-demo-40.cmap", &len);
    mch_err err = {0};
    if (mch_cmap_unpack(a, bytes, len, "a", &err) || mch_cmap_unpack(b, bytes, len, "b", &err))
        fail_msg("%s", err.msg);
    free(bytes);
    assert_true(a->n_pair_ids > 0 && a->n_sites == 1);
    for (size_t i = 0; i < a->n_pair_ids; i++)
        a->pair_ids[i] = 2 * i + 2, b->pair_ids[i] = 2 * i + 3;
    free(b->sites[0]);
    b->sites[0] = strdup("zz-second-site");
    assert_non_null(b->sites[0]);
}

static void test_merge(void **state)
{
    (void)state;
    mch_cmap a, b;
    make_merge_inputs(&a, &b);
    mch_cmap *maps[2] = {&a, &b};
    fi_exhaust_both(&(fi_case){.name = "mch_cmap_merge", .run = op_merge, .ctx = maps});

    /* The files: the output directory holds only the inputs before and after a failure. */
    char out_dir[3000], pa[4000], pb[4000], out[4000], log[4000];
    snprintf(out_dir, sizeof out_dir, "%s/merge", dir);
    assert_int_equal(mkdir(out_dir, 0700), 0);
    snprintf(pa, sizeof pa, "%s/a.cmap", out_dir);
    snprintf(pb, sizeof pb, "%s/b.cmap", out_dir);
    snprintf(out, sizeof out, "%s/merged.cmap", out_dir);
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    uint8_t *bytes;
    size_t len;
    mch_err err = {0};
    if (mch_cmap_pack(&a, &bytes, &len, &err)) fail_msg("%s", err.msg);
    write_bytes(pa, bytes, len);
    free(bytes);
    if (mch_cmap_pack(&b, &bytes, &len, &err)) fail_msg("%s", err.msg);
    write_bytes(pb, bytes, len);
    free(bytes);
    fi_exhaust_both(&(fi_case){.name = "mch_merge_files",
                               .run = op_merge_files,
                               .a = pa,
                               .b = pb,
                               .c = out,
                               .out_dir = out_dir});
    fi_exhaust_both(&(fi_case){.name = "mechir merge (in-process)",
                               .run = op_cmd_merge,
                               .a = pa,
                               .b = pb,
                               .c = out,
                               .d = log,
                               .out_dir = out_dir});
    mch_cmap_deinit(&a);
    mch_cmap_deinit(&b);
}

static int setup(void **state)
{
    (void)state;
    return tu_tmpdir_make(dir, sizeof dir, "mch_alloc_fail");
}

static int teardown(void **state)
{
    (void)state;
    char sub[3000];
    snprintf(sub, sizeof sub, "%s/merge", dir);
    tu_tmpdir_remove(sub);
    snprintf(sub, sizeof sub, "%s/df", dir);
    tu_tmpdir_remove(sub);
    return tu_tmpdir_remove(dir);
}

int main(void)
{
    verbose = getenv("MCH_FI_VERBOSE") && atoi(getenv("MCH_FI_VERBOSE"));
    if (getenv("MCH_FI_TEST")) cmocka_set_test_filter(getenv("MCH_FI_TEST"));
    cJSON_InitHooks(&(cJSON_Hooks){__wrap_malloc, __wrap_free});
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_loading), cmocka_unit_test(test_input_readers),
        cmocka_unit_test(test_pair_source),   cmocka_unit_test(test_map_decoding),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
