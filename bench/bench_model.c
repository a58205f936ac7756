/* Random-weight MiniLM-L6-shaped model directory for the benchmarks (see bench_model.h). */
#include "bench_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

double mch_bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mch_bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t mch_bench_rng_next(void)
{
    /* xorshift64*: plenty for weights and token ids. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

float mch_bench_rng_uniform(float a)
{
    return a * (2.0f * (float)(mch_bench_rng_next() >> 40) / (float)(1u << 24) - 1.0f);
}

/* ---- writing the model directory ---- */

typedef struct {
    char name[96];
    int ndim;
    long d0, d1;
    int kind; /* 0 weight (uniform, std 0.02 as BERT's init), 1 ones, 2 zeros */
} tensor_spec;

static int add_spec(tensor_spec *s, int n, const char *name, long d0, long d1, int kind)
{
    snprintf(s[n].name, sizeof s[n].name, "%s", name);
    s[n].ndim = d1 ? 2 : 1;
    s[n].d0 = d0;
    s[n].d1 = d1;
    s[n].kind = kind;
    return n + 1;
}

/* Every tensor of BertForSequenceClassification with HF names; returns the count. */
static int plan_tensors(tensor_spec *s)
{
    int n = 0;
    char name[96];
    n = add_spec(s, n, "bert.embeddings.word_embeddings.weight", SHAPE_V, SHAPE_C, 0);
    n = add_spec(s, n, "bert.embeddings.position_embeddings.weight", SHAPE_MAXPOS, SHAPE_C, 0);
    n = add_spec(s, n, "bert.embeddings.token_type_embeddings.weight", SHAPE_TYPES, SHAPE_C, 0);
    n = add_spec(s, n, "bert.embeddings.LayerNorm.weight", SHAPE_C, 0, 1);
    n = add_spec(s, n, "bert.embeddings.LayerNorm.bias", SHAPE_C, 0, 2);
    static const struct {
        const char *suffix;
        int out, in; /* 0: C, 1: FF; in < 0 for a vector */
        int kind;
    } layer[] = {
        {"attention.self.query.weight", 0, 0, 0},
        {"attention.self.query.bias", 0, -1, 0},
        {"attention.self.key.weight", 0, 0, 0},
        {"attention.self.key.bias", 0, -1, 0},
        {"attention.self.value.weight", 0, 0, 0},
        {"attention.self.value.bias", 0, -1, 0},
        {"attention.output.dense.weight", 0, 0, 0},
        {"attention.output.dense.bias", 0, -1, 0},
        {"attention.output.LayerNorm.weight", 0, -1, 1},
        {"attention.output.LayerNorm.bias", 0, -1, 2},
        {"intermediate.dense.weight", 1, 0, 0},
        {"intermediate.dense.bias", 1, -1, 0},
        {"output.dense.weight", 0, 1, 0},
        {"output.dense.bias", 0, -1, 0},
        {"output.LayerNorm.weight", 0, -1, 1},
        {"output.LayerNorm.bias", 0, -1, 2},
    };
    for (int l = 0; l < SHAPE_L; l++)
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
            snprintf(name, sizeof name, "bert.encoder.layer.%d.%s", l, layer[i].suffix);
            long d0 = layer[i].out ? SHAPE_FF : SHAPE_C;
            long d1 = layer[i].in < 0 ? 0 : layer[i].in ? SHAPE_FF : SHAPE_C;
            n = add_spec(s, n, name, d0, d1, layer[i].kind);
        }
    n = add_spec(s, n, "bert.pooler.dense.weight", SHAPE_C, SHAPE_C, 0);
    n = add_spec(s, n, "bert.pooler.dense.bias", SHAPE_C, 0, 0);
    n = add_spec(s, n, "classifier.weight", SHAPE_LABELS, SHAPE_C, 0);
    n = add_spec(s, n, "classifier.bias", SHAPE_LABELS, 0, 0);
    return n;
}

static int write_text(const char *prog, const char *dir, const char *file, const char *text)
{
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 0;
    }
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok) fprintf(stderr, "%s: writing %s failed\n", prog, path);
    return ok;
}

static int write_config(const char *prog, const char *dir)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\n  \"model_type\": \"bert\",\n"
             "  \"architectures\": [\"BertForSequenceClassification\"],\n"
             "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_attention_heads\": %d,\n  \"intermediate_size\": %d,\n"
             "  \"max_position_embeddings\": %d,\n  \"type_vocab_size\": %d,\n"
             "  \"hidden_act\": \"gelu\",\n  \"layer_norm_eps\": 1e-12,\n"
             "  \"position_embedding_type\": \"absolute\",\n"
             "  \"id2label\": {\"0\": \"LABEL_0\"},\n  \"num_labels\": %d\n}\n",
             SHAPE_V, SHAPE_C, SHAPE_L, SHAPE_NH, SHAPE_FF, SHAPE_MAXPOS, SHAPE_TYPES,
             SHAPE_LABELS);
    return write_text(prog, dir, "config.json", json);
}

/* [PAD] [UNK] [CLS] [SEP] [MASK], then filler words "w5" .. "w30521" (lowercase, no
 * punctuation, so each is one basic-tokenizer word and one WordPiece). */
static int write_vocab(const char *prog, const char *dir)
{
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 0;
    }
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", f);
    for (int i = N_SPECIAL; i < SHAPE_V; i++) fprintf(f, "w%d\n", i);
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: writing %s failed\n", prog, path);
        return 0;
    }
    return 1;
}

/* model.safetensors: u64 header length, JSON header padded with spaces so the data section
 * starts 8-byte aligned, then the F32 tensors back to back in header order. */
static int write_safetensors(const char *prog, const char *dir)
{
    enum { MAX_TENSORS = 16 * SHAPE_L + 16 };
    tensor_spec specs[MAX_TENSORS];
    int n = plan_tensors(specs);
    size_t cap = 256 + (size_t)n * 192, len = 0, off = 0;
    char *hdr = malloc(cap);
    if (!hdr) return 0;
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)specs[i].d0 * (specs[i].ndim == 2 ? (size_t)specs[i].d1 : 1);
        size_t bytes = numel * sizeof(float);
        if (specs[i].ndim == 2)
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%ld,%ld],"
                                    "\"data_offsets\":[%zu,%zu]}",
                                    specs[i].name, specs[i].d0, specs[i].d1, off, off + bytes);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%ld],"
                                    "\"data_offsets\":[%zu,%zu]}",
                                    specs[i].name, specs[i].d0, off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while ((8 + len) % 8) hdr[len++] = ' ';

    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        free(hdr);
        return 0;
    }
    unsigned char le[8];
    for (int b = 0; b < 8; b++) le[b] = (unsigned char)((uint64_t)len >> (8 * b));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    free(hdr);
    /* Uniform on [-a, a) has std a / sqrt 3; a = 0.0346 gives BERT's 0.02. */
    float buf[4096];
    for (int i = 0; ok && i < n; i++) {
        size_t numel = (size_t)specs[i].d0 * (specs[i].ndim == 2 ? (size_t)specs[i].d1 : 1);
        while (ok && numel) {
            size_t k = numel < 4096 ? numel : 4096;
            for (size_t j = 0; j < k; j++)
                buf[j] = specs[i].kind == 1   ? 1.0f
                         : specs[i].kind == 2 ? 0.0f
                                              : mch_bench_rng_uniform(0.0346f);
            ok = fwrite(buf, sizeof(float), k, f) == k;
            numel -= k;
        }
    }
    ok &= fclose(f) == 0;
    if (!ok) fprintf(stderr, "%s: writing %s failed\n", prog, path);
    return ok;
}

void mch_bench_remove_model(const char *dir)
{
    static const char *const files[] = {"config.json", "vocab.txt", "model.safetensors"};
    char path[4096 + 64];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int mch_bench_write_model(const char *dir, const char *prog)
{
    return write_config(prog, dir) && write_vocab(prog, dir) && write_safetensors(prog, dir);
}
