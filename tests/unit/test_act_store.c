/* The activation cache on disk: lossless round trips keep every bit, bf16/fp16 round to nearest
 * even within their bounds, several writers and last-wins, damage reported with file and offset,
 * truncated and hostile indexes, the .npy writer. (Ratios and speeds: bench/bench_cache_codec.) */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "act_store.h"
#include "npy.h"
#include "testutil.h"

#define REC MCH_STORE_RECORD_BYTES

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rnd01(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}
static double rnd_normal(void)
{
    double u = rnd01() + 1e-300, v = rnd01();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static char *make_dir(void)
{
    char *d = strdup("/tmp/mch_store_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        remove_tree(p);
    }
    closedir(d);
    rmdir(path);
}

static void cache_path(char *buf, size_t cap, const char *dir, const char *tag, const char *ext)
{
    snprintf(buf, cap, "%s/cache/%s%s", dir, tag, ext);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

static void write_bytes(const char *path, const void *p, size_t n, const char *mode)
{
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

/* Deterministic test values of (pair, hook, run). */
static void fill(float *x, size_t n, uint64_t pair, const char *hook, int run)
{
    uint64_t s = pair * 31 + strlen(hook) * 7 + (uint64_t)run;
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)((s + i * 2654435761u) % 1000) / 997.0);
}

static mch_store_writer *open_writer(const char *dir, const char *tag, mch_store_dtype dt)
{
    mch_err err = {0};
    mch_store_writer *w = NULL;
    assert_int_equal(mch_store_writer_open(&w, dir, tag, dt, 3, &err), MCH_OK);
    return w;
}

static mch_store *open_store(const char *dir)
{
    mch_err err = {0};
    mch_store *s = NULL;
    mch_status st = mch_store_open(&s, dir, &err);
    if (st) fprintf(stderr, "open: %s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    return s;
}

/* ---- conversions and round trips --------------------------------------------------------- */

static void test_dtype_names_parse(void **state)
{
    (void)state;
    mch_store_dtype dt = MCH_STORE_BF16;
    assert_int_equal(mch_store_dtype_parse("lossless", &dt), 1);
    assert_int_equal(dt, MCH_STORE_F32);
    assert_int_equal(mch_store_dtype_parse("f32", &dt), 1);
    assert_int_equal(dt, MCH_STORE_F32);
    assert_int_equal(mch_store_dtype_parse("bf16", &dt), 1);
    assert_int_equal(dt, MCH_STORE_BF16);
    assert_int_equal(mch_store_dtype_parse("fp16", &dt), 1);
    assert_int_equal(dt, MCH_STORE_F16);
    assert_int_equal(mch_store_dtype_parse("f64", &dt), 0);
    assert_int_equal(mch_store_dtype_parse(NULL, &dt), 0);
    assert_int_equal(dt, MCH_STORE_F16); /* untouched */
    assert_string_equal(mch_store_dtype_name(MCH_STORE_F16), "fp16");
}

/* Stores x (n values) as dt under one pair/hook and reads it back into y. */
static void store_and_read(mch_store_dtype dt, const float *x, float *y, int ndim,
                           const int64_t *shape)
{
    char *dir = make_dir();
    mch_err err = {0};
    mch_store_writer *w = open_writer(dir, "rank-0-e0", dt);
    assert_int_equal(mch_store_put(w, 42, "blocks.0.attn.hook_pattern", 1, ndim, shape, x, &err),
                     MCH_OK);
    assert_int_equal(mch_store_writer_sync(w, &err), MCH_OK);
    mch_store_writer_close(w);
    mch_store *s = open_store(dir);
    assert_int_equal(mch_store_count(s), 1);
    const mch_store_entry *e = mch_store_find(s, 42, "blocks.0.attn.hook_pattern", 1);
    assert_non_null(e);
    assert_int_equal(e->dtype, dt);
    assert_int_equal(e->ndim, ndim);
    for (int d = 0; d < ndim; d++) assert_int_equal(e->shape[d], shape[d]);
    mch_status st = mch_store_read(s, e, y, &err);
    if (st) fprintf(stderr, "read: %s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    mch_store_close(s);
    remove_tree(dir);
    free(dir);
}

static void test_lossless_roundtrip_preserves_every_bit(void **state)
{
    (void)state;
    enum { N = 4 * 33 * 17 };
    static const uint32_t special[] = {
        0x00000000, 0x80000000,                                     /* +0, -0 */
        0x00000001, 0x807fffff, 0x00400000,                         /* subnormals */
        0x7f800000, 0xff800000,                                     /* inf */
        0x7fc00000, 0xffc12345, 0x7f800001, 0x7fbfffff, 0xff800f00, /* quiet and signalling NaNs */
        0x7f7fffff, 0x00800000, 0x3f800000,
    };
    uint32_t *x = malloc(N * 4), *y = malloc(N * 4);
    size_t ns = sizeof special / sizeof special[0];
    for (size_t i = 0; i < N; i++)
        x[i] = i < ns ? special[i] : i % 3 ? (uint32_t)rnd() : bits((float)rnd_normal());
    int64_t shape[3] = {4, 33, 17};
    store_and_read(MCH_STORE_F32, (const float *)x, (float *)y, 3, shape);
    for (size_t i = 0; i < N; i++)
        if (x[i] != y[i]) fail_msg("value %zu: stored %08x, read %08x", i, x[i], y[i]);
    int64_t shape4[4] = {2, 3, 5, 7}, shape1[1] = {1};
    store_and_read(MCH_STORE_F32, (const float *)x, (float *)y, 4, shape4);
    assert_memory_equal(x, y, 210 * 4);
    store_and_read(MCH_STORE_F32, (const float *)x + 1, (float *)y, 1, shape1);
    assert_int_equal(x[1], y[0]);
    free(x);
    free(y);
}

/* Independent reference: the representable neighbours lo/hi of |x| on a grid of step 2^(e-p+1),
 * pick the nearest, ties to even. Only for finite x in the normal range of the target. */
static double round_to_grid(double x, int p_bits, double max_finite, int min_exp)
{
    double a = fabs(x);
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    e--;          /* a in [2^e, 2^(e+1)) */
    if (e < min_exp) e = min_exp;
    double step = ldexp(1.0, e - (p_bits - 1));
    double lo = floor(a / step) * step, hi = lo + step;
    double r = (a - lo < hi - a) ? lo : (a - lo > hi - a) ? hi : fmod(lo / step, 2) == 0 ? lo : hi;
    if (r > max_finite) r = INFINITY;
    return copysign(r, x);
}

static void test_bf16_rounds_to_nearest_even_within_2_pow_minus_8(void **state)
{
    (void)state;
    enum { N = 60000 };
    float *x = malloc(N * 4), *y = malloc(N * 4);
    for (size_t i = 0; i < N; i++) {
        double mag = ldexp(1.0 + rnd01(), (int)(rnd() % 252) - 125); /* 2^-125 .. 2^127 */
        x[i] = (float)(rnd() & 1 ? -mag : mag);
    }
    x[0] = -0.0f;
    x[1] = INFINITY;
    x[2] = from_bits(0xffc12345); /* NaN */
    x[3] = from_bits(0x7f800001); /* signalling NaN, low payload only */
    x[4] = 3.4e38f;               /* above the largest bf16 after rounding: inf */
    x[5] = from_bits(0x3f808000); /* a tie: 1 + 2^-8 -> 1 (even) */
    x[6] = from_bits(0x3f818000); /* a tie: -> 1 + 2^-6 (even) */
    x[7] = 1e-40f;                /* subnormal */
    int64_t shape[2] = {N / 100, 100};
    store_and_read(MCH_STORE_BF16, x, y, 2, shape);
    assert_int_equal(bits(y[0]), 0x80000000);
    assert_true(isinf(y[1]) && y[1] > 0);
    assert_true(isnan(y[2]) && signbit(y[2]));
    assert_true(isnan(y[3]));
    assert_true(isinf(y[4]));
    assert_int_equal(bits(y[5]), 0x3f800000);
    assert_int_equal(bits(y[6]), 0x3f820000);
    double worst = 0;
    for (size_t i = 8; i < N; i++) {
        double want = round_to_grid(x[i], 8, 0x1.fep127, -126);
        if ((double)y[i] != want)
            fail_msg("bf16 of %.9g (%08x): got %.9g, nearest-even is %.9g", (double)x[i],
                     bits(x[i]), (double)y[i], want);
        if (fabs(x[i]) >= 0x1p-126 && isfinite(y[i])) {
            double rel = fabs((double)y[i] - x[i]) / fabs(x[i]);
            if (rel > worst) worst = rel;
        }
    }
    printf("bf16: worst relative error %.3g (bound 2^-8 = %.3g)\n", worst, 0x1p-8);
    assert_true(worst <= 0x1p-8);
    free(x);
    free(y);
}

static void test_fp16_rounds_to_nearest_even_within_2_pow_minus_11(void **state)
{
    (void)state;
    enum { N = 60000, NH = 65536 };
    float *x = malloc((N + NH) * 4), *y = malloc((N + NH) * 4);
    for (size_t i = 0; i < N; i++) {
        double mag = ldexp(1.0 + rnd01(), (int)(rnd() % 50) - 32); /* 2^-32 .. 2^17 */
        x[i] = (float)(rnd() & 1 ? -mag : mag);
    }
    x[0] = 65519.0f;   /* below the overflow threshold 65520: 65504 */
    x[1] = 65520.0f;   /* the threshold: inf */
    x[2] = -1e10f;     /* -inf */
    x[3] = 0x1p-25f;   /* half the smallest subnormal, a tie: 0 */
    x[4] = 0x1.8p-24f; /* 1.5 units of 2^-24: tie -> 2 units (even) */
    x[5] = from_bits(0x7f800001);
    /* every fp16 value, as float32, must come back exactly */
    for (uint32_t h = 0; h < NH; h++) {
        int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        double v = e == 31 ? (m ? NAN : INFINITY) : e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        x[N + h] = (float)(s ? -v : v);
    }
    int64_t shape[1] = {N + NH};
    store_and_read(MCH_STORE_F16, x, y, 1, shape);
    assert_true(y[0] == 65504.0f);
    assert_true(isinf(y[1]));
    assert_true(isinf(y[2]) && y[2] < 0);
    assert_true(y[3] == 0.0f);
    assert_true(y[4] == 0x1p-23f);
    assert_true(isnan(y[5]));
    for (uint32_t h = 0; h < NH; h++) {
        float a = x[N + h], b = y[N + h];
        if (isnan(a) ? !isnan(b) : bits(a) != bits(b))
            fail_msg("fp16 value %04x (%.9g) read back as %.9g", h, (double)a, (double)b);
    }
    double worst = 0, worst_sub = 0;
    for (size_t i = 6; i < N; i++) {
        double want = round_to_grid(x[i], 11, 65504.0, -14);
#ifdef __FLT16_MAX__
        assert_true((double)(float)(_Float16)x[i] == want); /* the compiler's conversion agrees */
#endif
        if ((double)y[i] != want)
            fail_msg("fp16 of %.9g: got %.9g, nearest-even is %.9g", (double)x[i], (double)y[i],
                     want);
        double ax = fabs(x[i]), d = fabs((double)y[i] - x[i]);
        if (ax >= 0x1p-14 && ax <= 65504) worst = fmax(worst, d / ax);
        if (ax < 0x1p-14) worst_sub = fmax(worst_sub, d);
    }
    printf("fp16: worst relative error %.3g in [2^-14, 65504] (bound 2^-11 = %.3g); worst absolute "
           "error below 2^-14: %.3g (bound 2^-25 = %.3g)\n",
           worst, 0x1p-11, worst_sub, 0x1p-25);
    assert_true(worst <= 0x1p-11);
    assert_true(worst_sub <= 0x1p-25);
    free(x);
    free(y);
}

/* ---- several writers, find, last wins ------------------------------------------------------ */

static const char *HOOKS[2] = {"blocks.0.attn.hook_pattern", "blocks.1.hook_normalized_resid_post"};
static const int64_t SHAPES[2][3] = {{4, 6, 6}, {6, 8, 0}};

static void test_several_writers_and_pairs_are_all_found(void **state)
{
    (void)state;
    char *dir = make_dir();
    mch_err err = {0};
    float x[144], y[144];
    uint64_t raw_total = 0;
    for (int r = 0; r < 3; r++) {
        char tag[32];
        snprintf(tag, sizeof tag, "rank-%d-e0", r);
        mch_store_writer *w = open_writer(dir, tag, MCH_STORE_F32);
        for (uint64_t j = 0; j < 5; j++) {
            uint64_t pair = 0xabcdef0000000000ull + (uint64_t)r * 100 + j;
            for (int h = 0; h < 2; h++)
                for (int run = 0; run < 2; run++) {
                    size_t n = h ? 48 : 144;
                    fill(x, n, pair, HOOKS[h], run);
                    assert_int_equal(
                        mch_store_put(w, pair, HOOKS[h], run, h ? 2 : 3, SHAPES[h], x, &err),
                        MCH_OK);
                }
        }
        uint64_t raw, stored;
        mch_store_writer_stats(w, &raw, &stored);
        assert_int_equal(raw, 5 * 2 * (144 + 48) * 4);
        assert_true(stored > 0 && stored < raw);
        raw_total += raw;
        mch_store_writer_close(w);
    }
    mch_store *s = open_store(dir);
    assert_int_equal(mch_store_count(s), 60);
    assert_int_equal(mch_store_file_count(s), 3);
    assert_non_null(strstr(mch_store_file_name(s, 2), "/cache/rank-2-e0.bin"));
    uint64_t raw_seen = 0;
    for (size_t i = 0; i < 60; i++) {
        const mch_store_entry *e = mch_store_entry_at(s, i),
                              *p = i ? mch_store_entry_at(s, i - 1) : 0;
        if (p)
            assert_true(p->pair_id < e->pair_id ||
                        (p->pair_id == e->pair_id && strcmp(p->hook, e->hook) <= 0));
        raw_seen += e->raw_bytes;
        int h = strcmp(e->hook, HOOKS[0]) != 0;
        size_t n = mch_store_entry_numel(e);
        assert_int_equal(n, h ? 48 : 144);
        assert_ptr_equal(mch_store_find(s, e->pair_id, e->hook, e->run), e);
        assert_int_equal(mch_store_read(s, e, y, &err), MCH_OK);
        fill(x, n, e->pair_id, e->hook, e->run);
        assert_memory_equal(x, y, n * 4);
        assert_int_equal(e->file, (int)((e->pair_id & 0xffff) / 100));
    }
    assert_int_equal(raw_seen, raw_total);
    assert_null(mch_store_find(s, 0xabcdef0000000000ull + 5, HOOKS[0], 0));
    assert_null(mch_store_find(s, 0xabcdef0000000000ull, "blocks.0.attn.hook_z", 0));
    assert_null(mch_store_entry_at(s, 60));
    mch_store_close(s);
    remove_tree(dir);
    free(dir);
}

static float read_one(const mch_store *s, uint64_t pair, const char *hook, int run)
{
    mch_err err = {0};
    const mch_store_entry *e = mch_store_find(s, pair, hook, run);
    assert_non_null(e);
    float v;
    assert_int_equal(mch_store_read(s, e, &v, &err), MCH_OK);
    return v;
}

static void put_one(mch_store_writer *w, uint64_t pair, const char *hook, int run, float v)
{
    mch_err err = {0};
    int64_t shape[1] = {1};
    assert_int_equal(mch_store_put(w, pair, hook, run, 1, shape, &v, &err), MCH_OK);
}

static void test_last_entry_read_wins_and_reopen_appends(void **state)
{
    (void)state;
    char *dir = make_dir();
    const char *h = "blocks.2.attn.hook_pattern";
    mch_store_writer *w = open_writer(dir, "a", MCH_STORE_F32);
    put_one(w, 7, h, 0, 1.0f);
    put_one(w, 7, h, 1, 10.0f);
    mch_store_writer_close(w);
    w = open_writer(dir, "a", MCH_STORE_BF16); /* same tag again: appends */
    put_one(w, 7, h, 0, 2.0f);
    mch_store_writer_close(w);
    mch_store *s = open_store(dir);
    assert_int_equal(mch_store_count(s), 2);
    assert_true(read_one(s, 7, h, 0) == 2.0f);
    assert_int_equal(mch_store_find(s, 7, h, 0)->dtype, MCH_STORE_BF16);
    assert_true(read_one(s, 7, h, 1) == 10.0f);
    mch_store_close(s);

    w = open_writer(dir, "b", MCH_STORE_F32); /* read after "a": wins */
    put_one(w, 7, h, 0, 3.0f);
    put_one(w, 8, h, 0, 4.0f);
    mch_store_writer_close(w);
    s = open_store(dir);
    assert_int_equal(mch_store_count(s), 3);
    assert_true(read_one(s, 7, h, 0) == 3.0f);
    assert_true(read_one(s, 8, h, 0) == 4.0f);
    assert_int_equal(mch_store_find(s, 7, h, 0)->file, 1);
    mch_store_close(s);
    remove_tree(dir);
    free(dir);
}

/* ---- damage ------------------------------------------------------------------------------ */

/* Writes pairs 1..3 of HOOKS[0] (run 0) under tag "r0" and returns the .bin and .idx paths. */
static char *three_entries(char *bin, char *idx, size_t cap)
{
    char *dir = make_dir();
    mch_store_writer *w = open_writer(dir, "r0", MCH_STORE_F32);
    float x[144];
    mch_err err = {0};
    for (uint64_t p = 1; p <= 3; p++) {
        fill(x, 144, p, HOOKS[0], 0);
        assert_int_equal(mch_store_put(w, p, HOOKS[0], 0, 3, SHAPES[0], x, &err), MCH_OK);
    }
    mch_store_writer_close(w);
    cache_path(bin, cap, dir, "r0", ".bin");
    cache_path(idx, cap, dir, "r0", ".idx");
    return dir;
}

static void expect_read_error(const mch_store *s, uint64_t pair, const char *bin, uint64_t off,
                              const char *why)
{
    const mch_store_entry *e = mch_store_find(s, pair, HOOKS[0], 0);
    assert_non_null(e);
    float y[144];
    mch_err err = {0};
    assert_int_equal(mch_store_read(s, e, y, &err), MCH_ERR_FORMAT);
    char where[600];
    snprintf(where, sizeof where, "%s:%llu", bin, (unsigned long long)off);
    if (!strstr(err.msg, where) || !strstr(err.msg, why))
        fail_msg("error '%s' should name '%s' and say '%s'", err.msg, where, why);
    printf("damaged chunk reported: %s\n", err.msg);
}

static void test_flipped_byte_is_reported_with_file_and_offset(void **state)
{
    (void)state;
    char bin[512], idx[512];
    char *dir = three_entries(bin, idx, sizeof bin);
    mch_store *s = open_store(dir);
    const mch_store_entry *e2 = mch_store_find(s, 2, HOOKS[0], 0);
    uint64_t off2 = e2->offset, stored2 = e2->stored_bytes;
    const mch_store_entry *e3 = mch_store_find(s, 3, HOOKS[0], 0);
    uint64_t off3 = e3->offset;
    mch_store_close(s);

    flip_byte(bin, (long)(off2 + REC + stored2 / 2)); /* payload of pair 2 */
    flip_byte(bin, (long)(off3 + 20));                /* chunk header of pair 3 (its shape) */
    s = open_store(dir);                              /* the index is intact */
    expect_read_error(s, 2, bin, off2, "checksum");
    expect_read_error(s, 3, bin, off3, "differs from its index record");
    float y[144], x[144];
    mch_err err = {0};
    assert_int_equal(mch_store_read(s, mch_store_find(s, 1, HOOKS[0], 0), y, &err), MCH_OK);
    fill(x, 144, 1, HOOKS[0], 0);
    assert_memory_equal(x, y, sizeof x);
    mch_store_close(s);

    assert_int_equal(truncate(bin, (off_t)(off3 + 10)), 0); /* pair 3 cut short */
    s = open_store(dir);
    expect_read_error(s, 3, bin, off3, "past the end of the file");
    mch_store_close(s);
    remove_tree(dir);
    free(dir);
}

static void test_truncated_index_tail_is_ignored_and_cut_on_reopen(void **state)
{
    (void)state;
    char bin[512], idx[512];
    char *dir = three_entries(bin, idx, sizeof bin);
    long size = file_size(idx);
    assert_int_equal(size, 16 + 3 * REC);
    assert_int_equal(truncate(idx, size - 100), 0);
    mch_store *s = open_store(dir);
    assert_int_equal(mch_store_count(s), 2);
    assert_null(mch_store_find(s, 3, HOOKS[0], 0));
    mch_store_close(s);

    /* a writer reopening the tag cuts the half record and appends whole ones after it */
    mch_store_writer *w = open_writer(dir, "r0", MCH_STORE_F32);
    put_one(w, 9, HOOKS[0], 1, 5.0f);
    mch_store_writer_close(w);
    assert_int_equal(file_size(idx), 16 + 3 * REC);
    s = open_store(dir);
    assert_int_equal(mch_store_count(s), 3);
    assert_true(read_one(s, 9, HOOKS[0], 1) == 5.0f);
    float y[144];
    mch_err err = {0};
    assert_int_equal(mch_store_read(s, mch_store_find(s, 2, HOOKS[0], 0), y, &err), MCH_OK);
    mch_store_close(s);

    /* a header cut short by a killed writer: nothing indexed, not an error */
    assert_int_equal(truncate(idx, 7), 0);
    s = open_store(dir);
    assert_int_equal(mch_store_count(s), 0);
    mch_store_close(s);
    remove_tree(dir);
    free(dir);
}

static void expect_open_error(const char *dir, const char *what)
{
    mch_err err = {0};
    mch_store *s = (mch_store *)&err; /* must be reset to NULL */
    assert_int_equal(mch_store_open(&s, dir, &err), MCH_ERR_FORMAT);
    assert_null(s);
    if (!strstr(err.msg, what)) fail_msg("error '%s' should say '%s'", err.msg, what);
    printf("refused: %s\n", err.msg);
}

/* A record with a valid checksum, so the field checks behind it are what refuses it. */
static void reseal(unsigned char *r)
{
    uint64_t h = XXH64(r, 176, 0);
    for (int i = 0; i < 8; i++) r[176 + i] = (unsigned char)(h >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void test_garbage_and_hostile_indexes_are_refused(void **state)
{
    (void)state;
    char bin[512], idx[512], junk[600];
    char *dir = three_entries(bin, idx, sizeof bin);
    size_t len;
    unsigned char *good = (unsigned char *)tu_read_file(idx, &len);
    assert_int_equal(len, 16 + 3 * REC);
    unsigned char *m = malloc(len);

    /* random bytes */
    cache_path(junk, sizeof junk, dir, "junk", ".idx");
    for (size_t i = 0; i < 1000; i++) m[i % len] = (unsigned char)rnd();
    write_bytes(junk, m, len, "wb");
    expect_open_error(dir, "junk.idx");
    unlink(junk);

    /* a flipped byte inside the second record */
    memcpy(m, good, len);
    m[16 + REC + 30] ^= 1;
    write_bytes(idx, m, len, "wb");
    expect_open_error(dir, "record at offset 200: record checksum");

    /* a newer version */
    memcpy(m, good, len);
    m[8] = 2;
    write_bytes(idx, m, len, "wb");
    expect_open_error(dir, "version 2");

    /* hostile fields behind valid checksums */
    struct {
        int at;
        uint64_t v;
        int width;
        const char *why;
    } cases[] = {
        {6, 7, 1, "ndim 7"},
        {4, 2, 1, "run 2"},
        {5, 9, 1, "dtype 9"},
        {16, (uint64_t)1 << 40, 8, "above"}, /* shape[0] * others > 4 GiB */
        {16, 0, 8, "empty"},                 /* a zero dim */
        {40, 3, 8, "shape[3] = 3"},          /* a dim past ndim */
        {16, UINT64_MAX, 8, "out of range"}, /* negative as int64 */
        {56, UINT64_MAX - 100, 8, "size"},   /* stored_bytes wraps the offset */
        {56, 0, 8, "size"},                  /* empty payload */
        {48, 3, 8, "offset 3"},              /* chunk inside the header */
        {64, 12, 8, "raw_bytes 12"},         /* disagrees with the shape */
        {7, 200, 1, "hook name"},            /* hook length past its field */
        {80, ' ', 1, "hook name"},           /* unprintable hook byte */
        {0, 'X', 1, "bad magic"},            /* record magic */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(m, good, len);
        unsigned char *r = m + 16 + REC; /* second record, at offset 200 */
        if (cases[c].width == 8)
            put_le64(r + cases[c].at, cases[c].v);
        else
            r[cases[c].at] = (unsigned char)cases[c].v;
        reseal(r);
        write_bytes(idx, m, len, "wb");
        expect_open_error(dir, cases[c].why);
        expect_open_error(dir, "offset 200");
    }

    /* sizes that pass the index checks but not the file's: found at read time */
    memcpy(m, good, len);
    unsigned char *r = m + 16 + REC;
    put_le64(r + 48, (uint64_t)1 << 40); /* chunk far past the end */
    reseal(r);
    write_bytes(idx, m, len, "wb");
    mch_store *s = open_store(dir);
    expect_read_error(s, 2, bin, (uint64_t)1 << 40, "past the end");
    mch_store_close(s);
    memcpy(m, good, len);
    memcpy(r + 48, good + 16 + 48, 8); /* record 2 pointing at chunk 1 */
    reseal(r);
    write_bytes(idx, m, len, "wb");
    s = open_store(dir);
    expect_read_error(s, 2, bin, 16, "differs from its index record");
    mch_store_close(s);

    /* a short file that is not a header prefix */
    write_bytes(idx, "MCHXXXX", 7, "wb");
    expect_open_error(dir, "not a mechir cache index");

    /* random mutations (resealed or not) never crash the reader, and what opens reads cleanly or
     * fails with a message */
    size_t opened = 0, read_ok = 0, read_bad = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(m, good, len);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) m[16 + rnd() % (len - 16)] = (unsigned char)rnd();
        if (it % 2)
            for (int k = 0; k < 3; k++) reseal(m + 16 + k * REC);
        size_t cut = it % 7 == 0 ? len - rnd() % 300 : len;
        write_bytes(idx, m, cut, "wb");
        mch_err err = {0};
        mch_store *t = NULL;
        if (mch_store_open(&t, dir, &err)) {
            assert_null(t);
            assert_true(err.msg[0] != 0);
            continue;
        }
        opened++;
        for (size_t i = 0; i < mch_store_count(t); i++) {
            const mch_store_entry *e = mch_store_entry_at(t, i);
            size_t n = mch_store_entry_numel(e);
            float *y = malloc(n * 4);
            mch_err e2 = {0};
            if (mch_store_read(t, e, y, &e2) == MCH_OK)
                read_ok++;
            else
                read_bad++, assert_true(e2.msg[0] != 0);
            free(y);
        }
        mch_store_close(t);
    }
    printf("mutated indexes: %zu of 400 opened; %zu entries read, %zu refused at read\n", opened,
           read_ok, read_bad);
    free(m);
    free(good);
    remove_tree(dir);
    free(dir);
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    char *dir = make_dir();
    mch_err err = {0};
    mch_store_writer *w = (mch_store_writer *)&err;
    const char *tags[] = {"", ".hidden", "a/b", "../x", "rank 1"};
    for (size_t i = 0; i < 5; i++) {
        err.code = MCH_OK;
        err.msg[0] = 0;
        assert_int_equal(mch_store_writer_open(&w, dir, tags[i], MCH_STORE_F32, 3, &err),
                         MCH_ERR_ARG);
        assert_null(w);
    }
    err = (mch_err){0};
    assert_int_equal(mch_store_writer_open(&w, dir, "r", MCH_STORE_F32, 99, &err), MCH_ERR_ARG);
    w = open_writer(dir, "r", MCH_STORE_F32);
    float x[4] = {1, 2, 3, 4};
    int64_t ok[1] = {4}, zero[2] = {2, 0}, big[2] = {(int64_t)1 << 31, 2},
            five[5] = {1, 1, 1, 1, 4};
    char long_hook[120];
    memset(long_hook, 'a', 119);
    long_hook[119] = 0;
    struct {
        const char *hook;
        int run, ndim;
        const int64_t *shape;
        mch_status want;
    } bad[] = {
        {"blocks.0.attn.hook_z", 2, 1, ok, MCH_ERR_ARG},
        {"has space", 0, 1, ok, MCH_ERR_ARG},
        {long_hook, 0, 1, ok, MCH_ERR_ARG},
        {"", 0, 1, ok, MCH_ERR_ARG},
        {"blocks.0.attn.hook_z", 0, 0, ok, MCH_ERR_SHAPE},
        {"blocks.0.attn.hook_z", 0, 5, five, MCH_ERR_SHAPE},
        {"blocks.0.attn.hook_z", 0, 2, zero, MCH_ERR_SHAPE},
        {"blocks.0.attn.hook_z", 0, 2, big, MCH_ERR_SHAPE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (mch_err){0};
        assert_int_equal(
            mch_store_put(w, 1, bad[i].hook, bad[i].run, bad[i].ndim, bad[i].shape, x, &err),
            bad[i].want);
    }
    put_one(w, 1, "blocks.0.attn.hook_z", 0, 1.0f); /* still usable */
    mch_store_writer_close(w);
    mch_store_writer_close(NULL);
    mch_store_close(NULL);

    /* a .bin that is not ours is not appended to */
    char bin[600];
    cache_path(bin, sizeof bin, dir, "x", ".bin");
    write_bytes(bin, "hello, world, not a cache", 25, "wb");
    err = (mch_err){0};
    assert_int_equal(mch_store_writer_open(&w, dir, "x", MCH_STORE_F32, 3, &err), MCH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "x.bin"));
    assert_null(w);

    /* no cache directory */
    char other[600];
    snprintf(other, sizeof other, "%s/none", dir);
    mch_store *s = NULL;
    err = (mch_err){0};
    assert_int_equal(mch_store_open(&s, other, &err), MCH_ERR_IO);
    assert_non_null(strstr(err.msg, "none/cache"));
    remove_tree(dir);
    free(dir);
}

/* ---- .npy -------------------------------------------------------------------------------- */

static void check_npy(const char *path, int ndim, const int64_t *shape, const char *shape_txt,
                      const float *data, size_t n)
{
    size_t len;
    unsigned char *b = (unsigned char *)tu_read_file(path, &len);
    assert_non_null(b);
    assert_memory_equal(b, "\x93NUMPY", 6);
    assert_int_equal(b[6], 1);
    assert_int_equal(b[7], 0);
    size_t hlen = b[8] | (size_t)b[9] << 8;
    assert_int_equal((10 + hlen) % 16, 0);
    assert_int_equal((10 + hlen) % 64, 0);
    assert_true(10 + hlen <= len);
    char want[256];
    snprintf(want, sizeof want, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
             shape_txt);
    assert_memory_equal(b + 10, want, strlen(want));
    for (size_t i = 10 + strlen(want); i < 10 + hlen - 1; i++) assert_int_equal(b[i], ' ');
    assert_int_equal(b[10 + hlen - 1], '\n');
    assert_int_equal(len, 10 + hlen + n * 4);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = b + 10 + hlen + 4 * i;
        uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        assert_int_equal(u, bits(data[i]));
    }
    (void)ndim;
    (void)shape;
    free(b);
}

static void test_npy_header_and_data_are_exact(void **state)
{
    (void)state;
    char *dir = make_dir(), path[600];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)rnd_normal();
    x[3] = -0.0f;
    mch_err err = {0};
    int64_t s3[3] = {2, 3, 4}, s1[1] = {24}, s4[4] = {1, 2, 12, 1};
    assert_int_equal(mch_npy_write(path, x, 3, s3, &err), MCH_OK);
    check_npy(path, 3, s3, "(2, 3, 4)", x, 24);
    assert_int_equal(mch_npy_write(path, x, 1, s1, &err), MCH_OK); /* replaces it */
    check_npy(path, 1, s1, "(24,)", x, 24);
    assert_int_equal(mch_npy_write(path, x, 4, s4, &err), MCH_OK);
    check_npy(path, 4, s4, "(1, 2, 12, 1)", x, 24);
    assert_int_equal(mch_npy_write(path, x, 0, NULL, &err), MCH_OK);
    check_npy(path, 0, NULL, "()", x, 1);
    /* no temp file left behind */
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.npy", dir);
    assert_int_equal(mch_npy_write(bad, x, 1, s1, &err), MCH_ERR_IO);
    assert_non_null(strstr(err.msg, "no/such/dir"));
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_names_parse),
        cmocka_unit_test(test_lossless_roundtrip_preserves_every_bit),
        cmocka_unit_test(test_bf16_rounds_to_nearest_even_within_2_pow_minus_8),
        cmocka_unit_test(test_fp16_rounds_to_nearest_even_within_2_pow_minus_11),
        cmocka_unit_test(test_several_writers_and_pairs_are_all_found),
        cmocka_unit_test(test_last_entry_read_wins_and_reopen_appends),
        cmocka_unit_test(test_flipped_byte_is_reported_with_file_and_offset),
        cmocka_unit_test(test_truncated_index_tail_is_ignored_and_cut_on_reopen),
        cmocka_unit_test(test_garbage_and_hostile_indexes_are_refused),
        cmocka_unit_test(test_bad_arguments_are_refused),
        cmocka_unit_test(test_npy_header_and_data_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
