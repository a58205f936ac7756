/* MonoT5 forward benchmark: builds a random-weight t5-small-shaped T5ForConditionalGeneration in
 * memory (safetensors bytes parsed by mch_st_parse, loaded by mch_t5_from_parts as a checkpoint
 * would be), and times one-thread forwards (encoder over T tokens + one decoder step + logits) at
 * several lengths against (a) the forward's own sgemm calls alone (the GEMM floor) and (b) one
 * large sgemm (M 4096 N 1536 K 384, bench_forward's yardstick), interleaved run by run. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "bench_model.h"
#include "t5.h"

/* t5-small (and MonoT5-small): t5 v1.0, relu, tied embeddings. */
static const mch_t5_config t5_small = {.C = 512,
                                       .HS = 64,
                                       .NH = 8,
                                       .FF = 2048,
                                       .L = 6,
                                       .LD = 6,
                                       .V = 32128,
                                       .n_buckets = 32,
                                       .max_distance = 128,
                                       .eps = 1e-6f,
                                       .act = MCH_T5_ACT_RELU,
                                       .gated = 0,
                                       .tied = 1,
                                       .decoder_start = 0,
                                       .pad_id = 0,
                                       .eos_id = 1,
                                       .feed_forward_proj = "relu"};

/* ---- the checkpoint, in memory ---- */

typedef struct {
    char *hdr;
    size_t n, cap;
    size_t data_bytes; /* running end of the data section */
} header_buf;

static int hdr_put(header_buf *h, const char *s)
{
    size_t len = strlen(s);
    if (h->n + len + 1 > h->cap) {
        size_t cap = (h->n + len + 1) * 2;
        char *p = realloc(h->hdr, cap);
        if (!p) return 1;
        h->hdr = p;
        h->cap = cap;
    }
    memcpy(h->hdr + h->n, s, len + 1);
    h->n += len;
    return 0;
}

static int add_tensor(void *ctx, const char *name, int64_t d0, int64_t d1)
{
    header_buf *h = ctx;
    char entry[256];
    size_t bytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * sizeof(float);
    if (d1)
        snprintf(entry, sizeof entry,
                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                 h->n > 1 ? "," : "", name, (long long)d0, (long long)d1, h->data_bytes,
                 h->data_bytes + bytes);
    else
        snprintf(entry, sizeof entry,
                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                 h->n > 1 ? "," : "", name, (long long)d0, h->data_bytes, h->data_bytes + bytes);
    h->data_bytes += bytes;
    return hdr_put(h, entry);
}

/* Fills the data section tensor by tensor (header order = load order = data order). */
typedef struct {
    float *data;
    size_t off;
} filler;

static int fill_tensor(void *ctx, const char *name, int64_t d0, int64_t d1)
{
    filler *f = ctx;
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    float *w = f->data + f->off;
    size_t len = strlen(name);
    if (len > 17 && !strcmp(name + len - 17, "layer_norm.weight"))
        for (size_t i = 0; i < n; i++) w[i] = 1.0f + mch_bench_rng_uniform(0.1f);
    else if (strstr(name, "relative_attention_bias") || !strcmp(name, "shared.weight"))
        for (size_t i = 0; i < n; i++) w[i] = mch_bench_rng_uniform(1.0f);
    else /* a linear layer (out, in): uniform with variance 1 / in */
        for (size_t i = 0; i < n; i++) w[i] = mch_bench_rng_uniform(sqrtf(3.0f / (float)d1));
    f->off += n;
    return 0;
}

/* Builds the safetensors bytes of a random-weight model of cfg into *bytes (free() it). */
static mch_status build_checkpoint(const mch_t5_config *cfg, unsigned char **bytes, size_t *len,
                                   mch_err *err)
{
    header_buf h = {0};
    mch_status rc = MCH_OK;
    if (hdr_put(&h, "{")) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if ((rc = mch_t5_tensors(cfg, add_tensor, &h, err))) goto out;
    /* Pad with spaces so the data section starts 8-byte aligned (F32 used in place). */
    while ((h.n + 1) % 8 != 0)
        if (hdr_put(&h, " ")) break;
    if (hdr_put(&h, "}")) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        goto out;
    }
    *len = 8 + h.n + h.data_bytes;
    if (!(*bytes = malloc(*len))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu bytes", *len);
        goto out;
    }
    for (int i = 0; i < 8; i++) (*bytes)[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    memcpy(*bytes + 8, h.hdr, h.n);
    filler f = {(float *)(*bytes + 8 + h.n), 0};
    rc = mch_t5_tensors(cfg, fill_tensor, &f, err);
out:
    free(h.hdr);
    return rc;
}

/* ---- FLOPs and the GEMM floor ---- */

/* Useful FLOPs of one forward over T tokens: 2 M N K for every matmul. */
static double forward_flops(const mch_t5_config *c, int T)
{
    double C = c->C, IN = (double)c->NH * c->HS, FF = c->FF, n_ff_in = c->gated ? 2 : 1;
    double enc = 4 * 2.0 * T * C * IN                /* Q, K, V, O */
                 + 2 * 2.0 * T * (double)T * IN      /* QK^T, PV over all heads */
                 + (n_ff_in + 1) * 2.0 * T * C * FF; /* FFN */
    double dec = 2 * 2.0 * C * IN                    /* self V, O (one position) */
                 + 2 * 2.0 * C * IN                  /* cross Q, O */
                 + 2 * 2.0 * T * C * IN              /* cross K, V over the encoder */
                 + 2 * 2.0 * T * IN                  /* cross scores, PV */
                 + (n_ff_in + 1) * 2.0 * C * FF;
    return c->L * enc + c->LD * dec + 2.0 * C * c->V;
}

#define SGEMM_NT(M, N, K, A, lda, B, ldb, Cm, ldc)                                                 \
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, Cm,  \
                ldc)

/* The forward's sgemm calls alone (same shapes, strides and weights; no norm, softmax, bias,
 * activation or residual), best of reps, in seconds. */
static double gemm_floor(const mch_t5 *m, int T, int reps)
{
    const mch_t5_config *c = &m->cfg;
    int C = c->C, NH = c->NH, HS = c->HS, IN = NH * HS, FF = c->FF;
    size_t big = (size_t)T * (FF > IN ? (FF > C ? FF : C) : (IN > C ? IN : C));
    float *a = malloc(big * sizeof(float)), *b = malloc(big * sizeof(float));
    float *att = malloc((size_t)T * T * sizeof(float)), *lg = malloc((size_t)c->V * sizeof(float));
    double best = 1e30;
    if (!a || !b || !att || !lg) goto out;
    for (size_t i = 0; i < big; i++) a[i] = b[i] = mch_bench_rng_uniform(1.0f);
    for (int rep = 0; rep < reps; rep++) {
        double t0 = mch_bench_now_s();
        for (int l = 0; l < c->L; l++) {
            const mch_t5_block *w = &m->enc[l];
            SGEMM_NT(T, IN, C, a, C, w->q, C, b, IN);
            SGEMM_NT(T, IN, C, a, C, w->k, C, b, IN);
            SGEMM_NT(T, IN, C, a, C, w->v, C, b, IN);
            for (int h = 0; h < NH; h++) {
                SGEMM_NT(T, T, HS, a + h * HS, IN, b + h * HS, IN, att, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, att, T,
                            b + h * HS, IN, 0.0f, a + h * HS, IN);
            }
            SGEMM_NT(T, C, IN, a, IN, w->o, IN, b, C);
            SGEMM_NT(T, FF, C, a, C, w->wi, C, b, FF);
            if (w->wi1) SGEMM_NT(T, FF, C, a, C, w->wi1, C, b, FF);
            SGEMM_NT(T, C, FF, b, FF, w->wo, FF, a, C);
        }
        for (int l = 0; l < c->LD; l++) {
            const mch_t5_block *w = &m->dec[l];
            SGEMM_NT(1, IN, C, a, C, w->v, C, b, IN);
            SGEMM_NT(1, C, IN, b, IN, w->o, IN, a, C);
            SGEMM_NT(1, IN, C, a, C, w->cq, C, b, IN);
            SGEMM_NT(T, IN, C, a, C, w->ck, C, b, IN);
            SGEMM_NT(T, IN, C, a, C, w->cv, C, b, IN);
            for (int h = 0; h < NH; h++) {
                SGEMM_NT(1, T, HS, a + h * HS, IN, b + h * HS, IN, att, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, HS, T, 1.0f, att, T,
                            b + h * HS, IN, 0.0f, a + h * HS, IN);
            }
            SGEMM_NT(1, C, IN, a, IN, w->co, IN, b, C);
            SGEMM_NT(1, FF, C, a, C, w->wi, C, b, FF);
            if (w->wi1) SGEMM_NT(1, FF, C, a, C, w->wi1, C, b, FF);
            SGEMM_NT(1, C, FF, b, FF, w->wo, FF, a, C);
        }
        SGEMM_NT(1, c->V, C, a, C, m->lm_head, C, lg, c->V);
        double t = mch_bench_now_s() - t0;
        if (t < best) best = t;
        /* Keep the operands bounded: outputs feed the next rep. */
        for (size_t i = 0; i < big; i++) a[i] = b[i] = 0.01f * (float)(i % 7);
    }
out:
    free(a);
    free(b);
    free(att);
    free(lg);
    return best;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_t5 [--runs N] [--warmup N] [--threads N] [--seq T]...\n"
            "\n"
            "Builds a random-weight t5-small-shaped MonoT5 (d_model 512, d_kv 64, 8 heads,\n"
            "d_ff 2048, 6 + 6 layers, vocab 32128, relu, tied) in memory and prints, for each\n"
            "length (default 128 256 512): the median forward time of one pair (encoder + one\n"
            "decoder step + logits), its useful GFLOP/s, the same sgemm calls alone, and one\n"
            "M 4096 N 1536 K 384 sgemm, the three run back to back in every run. Defaults: runs\n"
            "7, warmup 2, threads 1. One machine-readable BENCH_T5 line per length.\n");
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "bench_t5: %s takes an integer in %d..%d, got '%s'\n", flag, lo, hi, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv)
{
    int runs = 7, warmup = 2, threads = 1, seqs[16], n_seq = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            ok = 0;
        } else if (!strcmp(a, "--runs")) {
            ok = parse_int(a, v, 1, 1000, &runs);
        } else if (!strcmp(a, "--warmup")) {
            ok = parse_int(a, v, 0, 1000, &warmup);
        } else if (!strcmp(a, "--threads")) {
            ok = parse_int(a, v, 1, 1024, &threads);
        } else if (!strcmp(a, "--seq") && n_seq < 16) {
            ok = parse_int(a, v, 2, 4096, &seqs[n_seq++]);
        } else {
            ok = 0;
        }
        if (!ok) {
            usage(stderr);
            return 2;
        }
    }
    if (!n_seq) {
        seqs[0] = 128;
        seqs[1] = 256;
        seqs[2] = 512;
        n_seq = 3;
    }
    openblas_set_num_threads(threads);

    mch_err err = {0};
    unsigned char *bytes = NULL;
    size_t len = 0;
    double t0 = mch_bench_now_s();
    mch_safetensors *st = NULL;
    mch_t5 *m = NULL;
    if (build_checkpoint(&t5_small, &bytes, &len, &err) ||
        mch_st_parse(&st, bytes, len, "t5-small-random", &err) ||
        mch_t5_from_parts(&m, &t5_small, st, "t5-small-random", &err)) {
        fprintf(stderr, "bench_t5: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "bench_t5: built %.1f MB of weights in %.1f s\n", len / 1e6,
            mch_bench_now_s() - t0);
    const mch_t5_config *c = &m->cfg;
    int T_max = 0;
    for (int s = 0; s < n_seq; s++) T_max = seqs[s] > T_max ? seqs[s] : T_max;
    mch_t5_ws *ws = mch_t5_workspace_create(m, T_max);
    int32_t *ids = malloc((size_t)T_max * sizeof *ids);
    const int GM = 4096, GN = 1536, GK = 384;
    float *ga = malloc((size_t)GM * GK * sizeof(float)),
          *gw = malloc((size_t)GN * GK * sizeof(float));
    float *gc = malloc((size_t)GM * GN * sizeof(float));
    double *tf = malloc(5 * (size_t)runs * sizeof(double));
    double *tl = tf + runs, *tg = tl + runs, *q_floor = tg + runs, *q_sgemm = q_floor + runs;
    if (!ws || !ids || !ga || !gw || !gc || !tf) {
        fprintf(stderr, "bench_t5: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)GM * GK; i++) ga[i] = mch_bench_rng_uniform(1.0f);
    for (size_t i = 0; i < (size_t)GN * GK; i++) gw[i] = mch_bench_rng_uniform(0.0346f);
    /* Random word pieces, </s> last. */
    for (int t = 0; t < T_max; t++) ids[t] = 3 + (int32_t)(mch_bench_rng_next() % 32000u);

    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    printf("mechir MonoT5 forward benchmark  %s\n", date);
    printf("  BLAS     %s (core %s), %d thread(s)\n", openblas_get_config(),
           openblas_get_corename(), threads);
    printf("  model    t5-small shape, random: C %d HS %d NH %d FF %d L %d + %d V %d, relu, "
           "tied, %.1f MB F32\n",
           c->C, c->HS, c->NH, c->FF, c->L, c->LD, c->V, len / 1e6);
    printf(
        "  runs     %d after %d warm-up, one pair a forward; medians; the ratios are medians of\n"
        "           per-run ratios (fwd/floor: floor time / forward time)\n",
        runs, warmup);
    printf("  %5s %10s %9s %9s %11s %9s %9s %9s %9s\n", "T", "forward", "tokens/s", "GFLOP/s",
           "GEMM floor", "GFLOP/s", "fwd/floor", "sgemm", "fwd/sgemm");
    for (int s = 0; s < n_seq; s++) {
        int T = seqs[s];
        int32_t last = ids[T - 1];
        ids[T - 1] = 1;
        double flops = forward_flops(c, T), gflops_ref = 2.0 * GM * GN * GK;
        /* Each run: a forward, its sgemm calls alone, one large sgemm, back to back, so the
         * per-run ratios share the machine's state (the machine is shared). */
        for (int r = -warmup; r < runs; r++) {
            double a = mch_bench_now_s();
            if (mch_t5_forward(m, ws, ids, T, c->decoder_start, NULL, &err)) {
                fprintf(stderr, "bench_t5: %s\n", err.msg);
                return 1;
            }
            double f = mch_bench_now_s() - a;
            const float *lg = mch_t5_logits(ws);
            if (!isfinite(lg[0]) || !isfinite(lg[c->V - 1])) {
                fprintf(stderr, "bench_t5: logits not finite at T %d\n", T);
                return 1;
            }
            double fl = gemm_floor(m, T, 1);
            a = mch_bench_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, GM, GN, GK, 1.0f, ga, GK, gw, GK,
                        0.0f, gc, GN);
            double g = mch_bench_now_s() - a;
            if (r >= 0) {
                tf[r] = f;
                tl[r] = fl;
                tg[r] = g;
                q_floor[r] = fl / f;
                q_sgemm[r] = (flops / f) / (gflops_ref / g);
            }
        }
        double f = mch_bench_median(tf, runs), fl = mch_bench_median(tl, runs),
               g = mch_bench_median(tg, runs);
        double rq_floor = mch_bench_median(q_floor, runs),
               rq_sgemm = mch_bench_median(q_sgemm, runs);
        double fwd_gf = flops / f * 1e-9, floor_gf = flops / fl * 1e-9,
               ref_gf = gflops_ref / g * 1e-9;
        printf("  %5d %8.1f ms %9.0f %9.1f %8.1f ms %9.1f %9.3f %9.1f %9.3f\n", T, 1e3 * f, T / f,
               fwd_gf, 1e3 * fl, floor_gf, rq_floor, ref_gf, rq_sgemm);
        printf("BENCH_T5 date=%s threads=%d seq=%d runs=%d forward_ms=%.2f gflop=%.3f "
               "forward_gflops=%.2f floor_ms=%.2f floor_gflops=%.2f sgemm_gflops=%.2f "
               "ratio_floor=%.4f ratio_sgemm=%.4f\n",
               date, threads, T, runs, 1e3 * f, flops * 1e-9, fwd_gf, 1e3 * fl, floor_gf, ref_gf,
               rq_floor, rq_sgemm);
        fflush(stdout);
        ids[T - 1] = last;
    }
    free(ids);
    free(ga);
    free(gw);
    free(gc);
    free(tf);
    mch_t5_workspace_free(ws);
    mch_t5_close(m);
    free(bytes);
    return 0;
}
