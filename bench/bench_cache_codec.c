/* Codec benchmark of the activation cache (docs/CACHE.md): re-encodes float32 activations with
 * plain zstd, byte-shuffled f32 (what the store writes losslessly), bf16 and fp16, at several
 * zstd levels, and prints ratio and encode/decode MB/s per hook kind, side by side in one run.
 * The activations come from a run's OUT/cache or are made here by the demo cross-encoder and
 * stored through the cache writer. Every decoded value is checked bit for bit. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "act_cache.h"
#include "act_store.h"
#include "encoder.h"
#include "model.h"
#include "store_codec.h"
#include "tokenizer.h"

#define PROG "bench_cache_codec"
enum { MAX_LEVELS = 8, DEMO_QUERY_LEN = 16, DEMO_LEN = 64 };

typedef struct {
    const char *out_dir; /* a run's OUT, or NULL for demo activations */
    const char *model, *pairs;
    int demo_pairs, limit, repeats;
    int levels[MAX_LEVELS], n_levels;
} bench_opts;

static const struct {
    const char *name;
    mch_store_dtype dt;
    int shuffle;
} SCHEMES[] = {
    {"zstd f32 (no shuffle)", MCH_STORE_F32, 0},   {"shuffled f32 (lossless)", MCH_STORE_F32, 1},
    {"zstd bf16 (no shuffle)", MCH_STORE_BF16, 0}, {"shuffled bf16", MCH_STORE_BF16, 1},
    {"shuffled fp16", MCH_STORE_F16, 1},
};
enum { N_SCHEMES = sizeof SCHEMES / sizeof SCHEMES[0] };

/* One scheme at one level over a hook kind: sizes, and the fastest pass of each direction. */
typedef struct {
    uint64_t stored;
    double enc_s, dec_s;
} result;

/* The f32 activations of one hook kind (blocks.*.attn.hook_pattern), entry after entry. */
typedef struct {
    char name[128];
    float *data; /* (n) */
    size_t n, cap;
    size_t *ends; /* (entries): where each entry's values end in data */
    size_t entries, ends_cap;
    uint64_t stored;                      /* bytes the cache stored for these entries */
    result res[2][N_SCHEMES][MAX_LEVELS]; /* [joined][scheme][level] */
} hook_kind;

/* Reused across measurements: zstd contexts and buffers for the largest frame and kind. */
typedef struct {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    unsigned char *planes, *comp;
    float *dec;
    size_t *frame_bytes;
} codec_bufs;

static double elapsed_s(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) {
        fprintf(stderr, PROG ": out of memory for %zu x %zu bytes\n", c, elem);
        return 0;
    }
    *p = q;
    *cap = c;
    return 1;
}

/* ---- collecting activations ------------------------------------------------------------ */

/* The hook name with its layer number replaced by '*' (blocks.3.x -> blocks.*.x). */
static void kind_name(char *buf, size_t cap, const char *hook)
{
    if (!strncmp(hook, "blocks.", 7)) {
        const char *p = hook + 7;
        while (*p >= '0' && *p <= '9') p++;
        if (p > hook + 7) {
            snprintf(buf, cap, "blocks.*%s", p);
            return;
        }
    }
    snprintf(buf, cap, "%s", hook);
}

/* The kind of hook among kinds (n), added when new; NULL when out of memory. */
static hook_kind *find_kind(hook_kind **kinds, size_t *n, size_t *cap, const char *hook)
{
    char name[128];
    kind_name(name, sizeof name, hook);
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*kinds)[i].name, name)) return &(*kinds)[i];
    if (!grow((void **)kinds, cap, *n + 1, sizeof **kinds)) return NULL;
    hook_kind *k = &(*kinds)[(*n)++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

/* Appends entry e of s to its kind k. */
static int add_entry(hook_kind *k, const mch_store *s, const mch_store_entry *e)
{
    size_t m = mch_store_entry_numel(e);
    if (!grow((void **)&k->data, &k->cap, k->n + m, sizeof *k->data) ||
        !grow((void **)&k->ends, &k->ends_cap, k->entries + 1, sizeof *k->ends))
        return 0;
    mch_err err = {0};
    if (mch_store_read(s, e, k->data + k->n, &err)) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 0;
    }
    k->n += m;
    k->ends[k->entries++] = k->n;
    k->stored += e->stored_bytes;
    return 1;
}

/* Reads up to limit (0: all) f32 entries of every hook kind from OUT/cache into *kinds. */
static int load_cache(const char *out_dir, int limit, hook_kind **kinds, size_t *nkinds)
{
    mch_err err = {0};
    mch_store *s = NULL;
    if (mch_store_open(&s, out_dir, &err)) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 0;
    }
    size_t cap = 0, lossy = 0;
    int ok = 1;
    for (size_t i = 0; ok && i < mch_store_count(s); i++) {
        const mch_store_entry *e = mch_store_entry_at(s, i);
        if (e->dtype != MCH_STORE_F32) { /* already rounded: would flatter every scheme */
            lossy++;
            continue;
        }
        hook_kind *k = find_kind(kinds, nkinds, &cap, e->hook);
        ok = k && ((limit && k->entries >= (size_t)limit) || add_entry(k, s, e));
    }
    if (lossy) fprintf(stderr, PROG ": %zu entries stored as bf16/fp16 left out\n", lossy);
    mch_store_close(s);
    return ok;
}

/* ---- measuring ------------------------------------------------------------------------- */

/* Frame f of k: one entry, or with joined every entry at once. */
static size_t frame_at(const hook_kind *k, int joined, size_t f, size_t *begin)
{
    if (joined) {
        *begin = 0;
        return k->n;
    }
    *begin = f ? k->ends[f - 1] : 0;
    return k->ends[f] - *begin;
}

static int bufs_init(codec_bufs *b, const hook_kind *kinds, size_t nkinds)
{
    size_t most = 0, comp = 0, frames = 1;
    for (size_t i = 0; i < nkinds; i++) {
        size_t bound = 0;
        for (size_t f = 0; f < kinds[i].entries; f++) {
            size_t begin, n = frame_at(&kinds[i], 0, f, &begin);
            bound += ZSTD_compressBound(n * 4);
        }
        if (kinds[i].n > most) most = kinds[i].n;
        if (bound > comp) comp = bound;
        if (kinds[i].entries > frames) frames = kinds[i].entries;
    }
    b->cctx = ZSTD_createCCtx();
    b->dctx = ZSTD_createDCtx();
    b->planes = malloc(most * 4);
    b->comp = malloc(comp > ZSTD_compressBound(most * 4) ? comp : ZSTD_compressBound(most * 4));
    b->dec = malloc(most * sizeof *b->dec);
    b->frame_bytes = malloc(frames * sizeof *b->frame_bytes);
    if (b->cctx && b->dctx && b->planes && b->comp && b->dec && b->frame_bytes) return 1;
    fprintf(stderr, PROG ": out of memory for frames of %zu values\n", most);
    return 0;
}

static void bufs_free(codec_bufs *b)
{
    ZSTD_freeCCtx(b->cctx);
    ZSTD_freeDCtx(b->dctx);
    free(b->planes);
    free(b->comp);
    free(b->dec);
    free(b->frame_bytes);
}

/* One pass: encodes every frame of k with scheme s at level into b->comp. @return the bytes of
 * all frames, or 0 after a message. */
static uint64_t encode_pass(codec_bufs *b, const hook_kind *k, int joined, int s, int level)
{
    size_t esz = mch_store_dtype_bytes(SCHEMES[s].dt), nframes = joined ? 1 : k->entries, off = 0;
    for (size_t f = 0; f < nframes; f++) {
        size_t begin, n = frame_at(k, joined, f, &begin);
        mch_store_encode_values(SCHEMES[s].dt, SCHEMES[s].shuffle, k->data + begin, n, b->planes);
        size_t z = ZSTD_compressCCtx(b->cctx, b->comp + off, ZSTD_compressBound(n * esz), b->planes,
                                     n * esz, level);
        if (ZSTD_isError(z)) {
            fprintf(stderr, PROG ": %s level %d: %s\n", k->name, level, ZSTD_getErrorName(z));
            return 0;
        }
        b->frame_bytes[f] = z;
        off += z;
    }
    return off;
}

/* One pass: decodes every frame encode_pass wrote; with check, compares each value with what
 * the scheme must give for the original, bit for bit. @return 1, or 0 after a message. */
static int decode_pass(codec_bufs *b, const hook_kind *k, int joined, int s, int level, int check)
{
    mch_store_dtype dt = SCHEMES[s].dt;
    size_t esz = mch_store_dtype_bytes(dt), nframes = joined ? 1 : k->entries, off = 0;
    for (size_t f = 0; f < nframes; f++) {
        size_t begin, n = frame_at(k, joined, f, &begin);
        size_t u =
            ZSTD_decompressDCtx(b->dctx, b->planes, n * esz, b->comp + off, b->frame_bytes[f]);
        if (ZSTD_isError(u) || u != n * esz) {
            fprintf(stderr, PROG ": %s level %d: decompress: %s\n", k->name, level,
                    ZSTD_isError(u) ? ZSTD_getErrorName(u) : "short frame");
            return 0;
        }
        mch_store_decode_values(dt, SCHEMES[s].shuffle, b->planes, n, b->dec);
        off += b->frame_bytes[f];
        for (size_t i = 0; check && i < n; i++) {
            uint32_t x, got;
            memcpy(&x, &k->data[begin + i], 4);
            memcpy(&got, &b->dec[i], 4);
            if (got != mch_store_round_bits(dt, x)) {
                fprintf(stderr,
                        PROG ": %s, %s level %d: value %zu decoded as %08x, expected %08x\n",
                        k->name, SCHEMES[s].name, level, begin + i, (unsigned)got,
                        (unsigned)mch_store_round_bits(dt, x));
                return 0;
            }
        }
    }
    return 1;
}

/* Fills r with scheme s at level over k: repeats passes each way, the fastest kept, then one
 * checked decode. */
static int measure(codec_bufs *b, const hook_kind *k, int joined, int s, int level, int repeats,
                   result *r)
{
    r->enc_s = r->dec_s = 1e300;
    for (int i = 0; i < repeats; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r->stored = encode_pass(b, k, joined, s, level);
        if (!r->stored) return 0;
        double t = elapsed_s(&t0);
        if (t < r->enc_s) r->enc_s = t;
    }
    for (int i = 0; i < repeats; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (!decode_pass(b, k, joined, s, level, 0)) return 0;
        double t = elapsed_s(&t0);
        if (t < r->dec_s) r->dec_s = t;
    }
    return decode_pass(b, k, joined, s, level, 1);
}

/* ---- demo activations ------------------------------------------------------------------ */

static const mch_site DEMO_SITES[2] = {MCH_SITE_PATTERN, MCH_SITE_NORM_RESID_POST};

typedef struct {
    mch_model *m;
    mch_act_cache *ac;
    mch_hooks *hk;
    mch_workspace *ws;
    mch_store_writer *w;
} demo;

static mch_status demo_open(demo *d, const char *model, const char *out_dir, mch_err *err)
{
    mch_status st = mch_model_open(&d->m, model, err);
    if (!st) {
        d->ac = mch_act_cache_create(d->m);
        d->hk = mch_hooks_create(d->m->cfg.L);
        d->ws = mch_workspace_create(d->m, 2 * DEMO_LEN, DEMO_LEN);
        if (!d->ac || !d->hk || !d->ws)
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory for the model of %s", model);
    }
    if (!st) st = mch_act_cache_add(d->ac, "blocks.*.attn.hook_pattern", err);
    if (!st) st = mch_act_cache_add(d->ac, "blocks.*.hook_normalized_resid_post", err);
    if (!st) st = mch_act_cache_attach(d->ac, d->hk, err);
    if (!st) st = mch_store_writer_open(&d->w, out_dir, "rank-0-e0", MCH_STORE_F32, 3, err);
    return st;
}

/* Runs query with doc (baseline) and with other_doc (perturbed) as one batch and stores both
 * runs' cached activations under pair. */
static mch_status demo_pair(demo *d, uint64_t pair, const char *query, const char *doc,
                            const char *other_doc, mch_err *err)
{
    const mch_config *c = &d->m->cfg;
    int32_t ids[2][DEMO_LEN], types[2][DEMO_LEN];
    int lens[2];
    mch_status st = mch_tok_encode_to(d->m->tok, query, doc, DEMO_QUERY_LEN, DEMO_LEN, ids[0],
                                      types[0], &lens[0], err);
    if (!st)
        st = mch_tok_encode_to(d->m->tok, query, other_doc, DEMO_QUERY_LEN, DEMO_LEN, ids[1],
                               types[1], &lens[1], err);
    mch_batch bt = {2, DEMO_LEN, &ids[0][0], &types[0][0], lens};
    mch_forward_opts fo = {d->hk, 0, NULL, MCH_POOL_CLS};
    float scores[2];
    mch_forward_out out = {scores, NULL, NULL};
    if (!st) st = mch_forward(d->m, d->ws, &bt, &fo, &out, err);
    for (int run = 0; !st && run < 2; run++)
        for (int l = 0; !st && l < c->L; l++)
            for (int k = 0; !st && k < 2; k++) {
                int T, pattern = DEMO_SITES[k] == MCH_SITE_PATTERN;
                char name[96];
                mch_hook_name(DEMO_SITES[k], l, name, sizeof name);
                const float *a = mch_act_cache_get(d->ac, DEMO_SITES[k], l, run, &T);
                int64_t shape[3] = {c->NH, T, T};
                if (!pattern) shape[0] = T, shape[1] = c->C;
                st = a ? mch_store_put(d->w, pair, name, run, pattern ? 3 : 2, shape, a, err)
                       : mch_fail(err, MCH_ERR_ARG, "%s was not cached", name);
            }
    return st;
}

/* Splits a TSV line into its first 4 fields (the last without its line end). @return 1, or 0
 * when it has fewer. */
static int split_tsv(char *line, char *field[4])
{
    field[0] = line;
    for (int k = 1; k < 4; k++) {
        field[k] = strchr(field[k - 1], '\t');
        if (!field[k]) return 0;
        *field[k]++ = 0;
    }
    field[3][strcspn(field[3], "\r\n")] = 0;
    return 1;
}

/* Writes the demo activations of o->demo_pairs pairs to out_dir/cache (see usage). */
static int demo_write(const bench_opts *o, const char *out_dir)
{
    mch_err err = {0};
    demo d = {0};
    FILE *f = NULL;
    mch_status st = demo_open(&d, o->model, out_dir, &err);
    if (!st && !(f = fopen(o->pairs, "r")))
        st = mch_fail(&err, MCH_ERR_IO, "cannot open %s: %s", o->pairs, strerror(errno));
    char *line = NULL, *prev_doc = NULL, *field[4];
    size_t cap = 0;
    int done = 0;
    for (int lineno = 1; !st && done < o->demo_pairs && getline(&line, &cap, f) > 0; lineno++) {
        if (!split_tsv(line, field)) {
            st = mch_fail(&err, MCH_ERR_FORMAT, "%s:%d: not qid, query, docno, text", o->pairs,
                          lineno);
            break;
        }
        if (prev_doc)
            st = demo_pair(&d, 0x1000 + (uint64_t)done++, field[1], field[3], prev_doc, &err);
        free(prev_doc);
        prev_doc = strdup(field[3]);
        if (!prev_doc && !st) st = mch_fail(&err, MCH_ERR_NOMEM, "out of memory");
    }
    if (!st && done < o->demo_pairs)
        st = mch_fail(&err, MCH_ERR_FORMAT, "%s holds %d pairs, %d asked for", o->pairs, done,
                      o->demo_pairs);
    if (st) fprintf(stderr, PROG ": %s\n", err.msg);
    free(line);
    free(prev_doc);
    if (f) fclose(f);
    mch_store_writer_close(d.w); /* no sync: read back at once, then removed */
    mch_workspace_free(d.ws);
    mch_hooks_free(d.hk);
    mch_act_cache_free(d.ac);
    mch_model_close(d.m);
    return !st;
}

/* Removes what demo_write left in dir, and dir. */
static void demo_remove(const char *dir)
{
    static const char *const parts[] = {"/cache/rank-0-e0.bin", "/cache/rank-0-e0.idx", "/cache",
                                        ""};
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", dir, parts[i]);
        if (unlink(p) && errno == EISDIR) rmdir(p);
    }
}

/* ---- report ---------------------------------------------------------------------------- */

/* "a / b / c" of v(level) for every level into buf. */
static void per_level(char *buf, size_t cap, const bench_opts *o, const char *fmt,
                      const result *res, double raw_mb, int what)
{
    size_t k = 0;
    buf[0] = 0;
    for (int l = 0; l < o->n_levels && k < cap; l++) {
        const result *r = &res[l];
        double v = what == 0   ? raw_mb * 1e6 / (double)r->stored
                   : what == 1 ? raw_mb / r->enc_s
                               : raw_mb / r->dec_s;
        k += (size_t)snprintf(buf + k, cap - k, l ? " / " : "");
        if (k < cap) k += (size_t)snprintf(buf + k, cap - k, fmt, v);
    }
}

static void print_rows(const bench_opts *o, const char *name, size_t entries, double raw_mb,
                       const result res[N_SCHEMES][MAX_LEVELS])
{
    for (int s = 0; s < N_SCHEMES; s++) {
        char ratio[96], enc[96], dec[96];
        per_level(ratio, sizeof ratio, o, "%.2f", res[s], raw_mb, 0);
        per_level(enc, sizeof enc, o, "%.0f", res[s], raw_mb, 1);
        per_level(dec, sizeof dec, o, "%.0f", res[s], raw_mb, 2);
        printf("| %s | %zu | %.2f | %s | %s | %s | %s |\n", name, entries, raw_mb, SCHEMES[s].name,
               ratio, enc, dec);
    }
}

/* One table: every kind, then all of them (sizes and seconds added up). */
static void print_table(const bench_opts *o, const hook_kind *kinds, size_t nkinds, int joined)
{
    char lv[64] = "";
    for (int l = 0, k = 0; l < o->n_levels; l++)
        k += snprintf(lv + k, sizeof lv - (size_t)k, l ? " / %d" : "%d", o->levels[l]);
    printf("\n%s\n\n", joined ? "one zstd frame per hook kind (its entries joined):"
                              : "one zstd frame per entry (as the cache writer stores them):");
    printf("| hook | entries | MB | encoding | ratio (level %s) | encode MB/s | decode MB/s |\n",
           lv);
    printf("|---|---|---|---|---|---|---|\n");
    result all[N_SCHEMES][MAX_LEVELS] = {{{0}}};
    size_t entries = 0;
    double raw_mb = 0;
    for (size_t i = 0; i < nkinds; i++) {
        const hook_kind *k = &kinds[i];
        print_rows(o, k->name, k->entries, (double)k->n * 4 / 1e6, k->res[joined]);
        entries += k->entries;
        raw_mb += (double)k->n * 4 / 1e6;
        for (int s = 0; s < N_SCHEMES; s++)
            for (int l = 0; l < o->n_levels; l++) {
                all[s][l].stored += k->res[joined][s][l].stored;
                all[s][l].enc_s += k->res[joined][s][l].enc_s;
                all[s][l].dec_s += k->res[joined][s][l].dec_s;
            }
    }
    if (nkinds > 1) print_rows(o, "all", entries, raw_mb, all);
}

static int run(const bench_opts *o, hook_kind *kinds, size_t nkinds, const char *source)
{
    codec_bufs b = {0};
    int ok = bufs_init(&b, kinds, nkinds);
    for (size_t i = 0; ok && i < nkinds; i++)
        for (int joined = 0; ok && joined < 2; joined++)
            for (int s = 0; ok && s < N_SCHEMES; s++)
                for (int l = 0; ok && l < o->n_levels; l++)
                    ok = measure(&b, &kinds[i], joined, s, o->levels[l], o->repeats,
                                 &kinds[i].res[joined][s][l]);
    bufs_free(&b);
    if (!ok) return 0;
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %z", localtime(&now));
    uint64_t raw = 0, stored = 0;
    for (size_t i = 0; i < nkinds; i++) raw += (uint64_t)kinds[i].n * 4, stored += kinds[i].stored;
    printf("mechir cache codec benchmark  %s  zstd %s, one thread, best of %d passes\n", date,
           ZSTD_versionString(), o->repeats);
    printf("activations: %s\n", source);
    printf("as the cache stored them: %.2f MB float32 -> %.2f MB, ratio %.2f\n", (double)raw / 1e6,
           (double)stored / 1e6, stored ? (double)raw / (double)stored : 0.0);
    printf("MB are float32 bytes (in to encode, out of decode); every decoded value checked\n");
    print_table(o, kinds, nkinds, 0);
    print_table(o, kinds, nkinds, 1);
    return 1;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [OUT] [--levels L,...] [--limit N] [--repeats N]\n"
            "       " PROG " --demo-pairs N [--model DIR] [--pairs FILE] [options]\n"
            "\n"
            "Re-encodes float32 activations with plain zstd, shuffled f32 (the cache's lossless\n"
            "format), bf16 and fp16 (shuffled and not), at each zstd level (default 1,3,9), and\n"
            "prints ratio and encode/decode MB/s per hook kind: once with one frame per entry (as\n"
            "the cache writer stores them), once with each kind's entries joined in one frame.\n"
            "Timings are the fastest of --repeats passes (default 3), one thread.\n"
            "\n"
            "  OUT            a run's output directory: its f32 entries under OUT/cache (entries\n"
            "                 stored as bf16/fp16 are left out); --limit: entries per hook kind\n"
            "  --demo-pairs N (without OUT; default 24) the model (default examples/demo-ce)\n"
            "                 runs on N pairs from a qid/query/docno/text TSV (default\n"
            "                 examples/debian-demo-pairs.tsv): baseline a line's query with its\n"
            "                 document, perturbed with the previous line's; hook_pattern and\n"
            "                 hook_normalized_resid_post of every layer, both runs, <= %d tokens,\n"
            "                 stored through the cache writer (f32, level 3) in a temporary OUT\n",
            DEMO_LEN);
}

/* The int in s, in lo..hi, or a message and 0. */
static int int_arg(const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end != s && !*end && v >= lo && v <= hi) {
        *out = (int)v;
        return 1;
    }
    fprintf(stderr, PROG ": %s takes an integer in %d..%d, got '%s'\n", opt, lo, hi, s);
    return 0;
}

static int levels_arg(const char *s, bench_opts *o)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    o->n_levels = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_levels == MAX_LEVELS) {
            fprintf(stderr, PROG ": at most %d levels\n", MAX_LEVELS);
            return 0;
        }
        if (!int_arg("--levels", t, 1, ZSTD_maxCLevel(), &o->levels[o->n_levels++])) return 0;
    }
    return o->n_levels > 0;
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (a[0] != '-' && !o->out_dir) {
            o->out_dir = a;
            continue;
        } else if (!v) {
            fprintf(stderr, PROG ": unknown or incomplete argument '%s'\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "--levels"))
            ok = levels_arg(v, o);
        else if (!strcmp(a, "--limit"))
            ok = int_arg(a, v, 1, 1 << 30, &o->limit);
        else if (!strcmp(a, "--repeats"))
            ok = int_arg(a, v, 1, 1000, &o->repeats);
        else if (!strcmp(a, "--demo-pairs"))
            ok = int_arg(a, v, 1, 1000000, &o->demo_pairs);
        else if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--pairs"))
            o->pairs = v;
        else {
            fprintf(stderr, PROG ": unknown option '%s'\n", a);
            return 0;
        }
        if (!ok) return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    bench_opts o = {.model = MCH_EXAMPLES "/demo-ce",
                    .pairs = MCH_EXAMPLES "/debian-demo-pairs.tsv",
                    .demo_pairs = 24,
                    .repeats = 3,
                    .levels = {1, 3, 9},
                    .n_levels = 3};
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    char tmp[4096] = "", source[4400];
    const char *out_dir = o.out_dir;
    int ok = 1;
    if (out_dir) {
        snprintf(source, sizeof source, "%s/cache", out_dir);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/mch-codec-XXXXXX", t && *t ? t : "/tmp");
        ok = mkdtemp(tmp) != NULL;
        if (!ok) fprintf(stderr, PROG ": mkdtemp %s: %s\n", tmp, strerror(errno));
        ok = ok && demo_write(&o, tmp);
        out_dir = tmp;
        snprintf(source, sizeof source,
                 "%s on %d pairs of %s (<= %d tokens, %d of query), hook_pattern and "
                 "hook_normalized_resid_post of every layer, both runs",
                 o.model, o.demo_pairs, o.pairs, DEMO_LEN, DEMO_QUERY_LEN);
    }
    hook_kind *kinds = NULL;
    size_t nkinds = 0;
    ok = ok && load_cache(out_dir, o.limit, &kinds, &nkinds);
    if (ok && !nkinds) fprintf(stderr, PROG ": no f32 entries in %s/cache\n", out_dir);
    ok = ok && nkinds && run(&o, kinds, nkinds, source);
    for (size_t i = 0; i < nkinds; i++) {
        free(kinds[i].data);
        free(kinds[i].ends);
    }
    free(kinds);
    if (*tmp) demo_remove(tmp);
    return ok ? 0 : 1;
}
