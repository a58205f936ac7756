/* Forward-pass benchmark: writes a random-weight model in the MiniLM-L6 cross-encoder shape,
 * loads it as users do (mch_model_open), and measures one-thread forward throughput against
 * cblas_sgemm on the forward's dominant shape, interleaved run by run so both see the same load.
 * The figure of merit is useful GFLOP/s of the forward divided by sgemm GFLOP/s. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "bench_model.h"
#include "encoder.h"
#include "model.h"
#include "ops.h"

typedef struct {
    const char *dir;
    int keep, write_only;
    int B, T, runs, warmup, threads, breakdown;
} bench_opts;

/* ---- FLOP accounting ---- */

/* Useful FLOPs of one forward of B sequences of T tokens: 2 M N K for every matmul (Q, K, V, O,
 * FFN in and out, QK^T and PV per sequence and head, the pooler and the classifier). */
static double forward_flops(const mch_config *c, int B, int T)
{
    double N = (double)B * T, C = c->C, FF = c->FF, HS = c->HS;
    double per_layer = 4 * 2 * N * C * C                             /* Q, K, V, O */
                       + 2 * 2 * N * C * FF                          /* FFN in, out */
                       + (double)B * c->NH * 2 * (2.0 * T * T * HS); /* QK^T, PV */
    double head = 2.0 * B * C * C + 2.0 * B * C * c->num_labels;
    return c->L * per_layer + head;
}

/* ---- non-GEMM kernel breakdown ---- */

/* Times the elementwise kernels one forward runs, on the forward's shapes (N = B T rows), and
 * prints ms per forward. Inputs are refilled from a pristine copy before each call (the copy is
 * timed alone and subtracted) so every call sees pre-activation-like values. */
static void breakdown(const mch_config *c, int B, int T)
{
    int N = B * T, C = c->C, FF = c->FF, L = c->L, NH = c->NH;
    size_t nff = (size_t)N * FF, nc = (size_t)N * C, natt = (size_t)NH * T * T;
    float *src = malloc(nff * sizeof(float)), *ff = malloc(nff * sizeof(float));
    float *x = malloc(nc * sizeof(float)), *y = malloc(nc * sizeof(float));
    float *asrc = malloc(natt * sizeof(float)), *att = malloc(natt * sizeof(float));
    float *g = malloc((size_t)C * sizeof(float)), *bias = malloc((size_t)FF * sizeof(float));
    if (!src || !ff || !x || !y || !asrc || !att || !g || !bias) goto out;
    for (size_t i = 0; i < nff; i++) src[i] = mch_bench_rng_uniform(3.0f);
    for (size_t i = 0; i < natt; i++) asrc[i] = mch_bench_rng_uniform(4.0f);
    for (size_t i = 0; i < nc; i++) x[i] = mch_bench_rng_uniform(2.0f);
    for (int i = 0; i < C; i++) g[i] = 1.0f + mch_bench_rng_uniform(0.1f);
    for (int i = 0; i < FF; i++) bias[i] = mch_bench_rng_uniform(0.1f);
    double t0, t_copy = 1e30, t_acopy = 1e30, t_gelu = 1e30, t_soft = 1e30, t_ln = 1e30,
               t_add = 1e30, t_seed = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        t0 = mch_bench_now_s();
        for (int l = 0; l < L; l++) memcpy(ff, src, nff * sizeof(float));
        t_copy = fmin(t_copy, mch_bench_now_s() - t0);
        t0 = mch_bench_now_s();
        for (int l = 0; l < L; l++) {
            memcpy(ff, src, nff * sizeof(float));
            mch_gelu_erf_forward(ff, nff);
        }
        t_gelu = fmin(t_gelu, mch_bench_now_s() - t0);
        t0 = mch_bench_now_s();
        for (int l = 0; l < L * B; l++) memcpy(att, asrc, natt * sizeof(float));
        t_acopy = fmin(t_acopy, mch_bench_now_s() - t0);
        t0 = mch_bench_now_s();
        for (int l = 0; l < L * B; l++) {
            memcpy(att, asrc, natt * sizeof(float));
            mch_softmax_rows(att, NH * T, T, T);
        }
        t_soft = fmin(t_soft, mch_bench_now_s() - t0);
        t0 = mch_bench_now_s();
        for (int l = 0; l < 2 * L + 1; l++) mch_layernorm_forward(y, x, g, g, N, C, 1e-12f);
        t_ln = fmin(t_ln, mch_bench_now_s() - t0);
        t0 = mch_bench_now_s();
        for (int l = 0; l < 2 * L; l++) mch_add_inplace(y, x, nc);
        t_add = fmin(t_add, mch_bench_now_s() - t0);
        t0 = mch_bench_now_s();
        for (int l = 0; l < L; l++)
            for (int n = 0; n < N; n++) {
                for (int k = 0; k < 5; k++) memcpy(y + (size_t)n * C, g, (size_t)C * sizeof(float));
                memcpy(ff + (size_t)n * FF, bias, (size_t)FF * sizeof(float));
            }
        t_seed = fmin(t_seed, mch_bench_now_s() - t0);
    }
    printf("  non-GEMM kernels, ms per forward (best of 3):\n");
    printf("    gelu_erf   %8.1f ms  (%zu values x %d layers)\n", 1e3 * (t_gelu - t_copy), nff, L);
    printf("    softmax    %8.1f ms  (%d rows of %d x %d layers)\n", 1e3 * (t_soft - t_acopy),
           B * NH * T, T, L);
    printf("    layernorm  %8.1f ms  (%d rows of %d x %d)\n", 1e3 * t_ln, N, C, 2 * L + 1);
    printf("    residual   %8.1f ms  (%zu values x %d)\n", 1e3 * t_add, nc, 2 * L);
    printf("    bias seed  %8.1f ms  (6 linears x %d layers)\n", 1e3 * t_seed, L);
out:
    free(src);
    free(ff);
    free(x);
    free(y);
    free(asrc);
    free(att);
    free(g);
    free(bias);
}

/* ---- the forward's matmuls alone ---- */

enum { G_QKVO, G_QK, G_PV, G_FF1, G_FF2, G_CLASSES };
static const char *const gemm_class_name[G_CLASSES] = {
    "Q, K, V, O  N x C x C", "QK^T        T x T x HS", "PV          T x HS x T",
    "FFN in      N x I x C", "FFN out     N x C x I"};

/* Runs exactly the sgemm calls of one forward (same shapes, strides, beta and weights; bias
 * seeding, softmax, GELU, LayerNorm left out), reps times, and returns the best total in
 * seconds: the time a forward would take if everything outside sgemm were free. cls_s (G_CLASSES)
 * receives that rep's seconds per class of call. */
static double gemm_floor(const mch_model *m, int B, int T, int reps, double *cls_s)
{
    const mch_config *c = &m->cfg;
    int N = B * T, C = c->C, FF = c->FF, HS = c->HS, NH = c->NH;
    float *x = malloc((size_t)N * C * sizeof(float)), *y = malloc((size_t)N * C * sizeof(float));
    float *ff = malloc((size_t)N * FF * sizeof(float));
    float *att = malloc((size_t)NH * T * T * sizeof(float));
    double best = 1e30;
    if (!x || !y || !ff || !att) goto out;
    for (size_t i = 0; i < (size_t)N * C; i++) x[i] = y[i] = mch_bench_rng_uniform(1.0f);
    for (size_t i = 0; i < (size_t)N * FF; i++) ff[i] = mch_bench_rng_uniform(1.0f);
    for (int rep = 0; rep < reps; rep++) {
        double cls[G_CLASSES] = {0}, t0 = mch_bench_now_s(), t1;
        for (int l = 0; l < c->L; l++) {
            const mch_layer_weights *w = &m->layers[l];
            const float *sq[4] = {w->q_w, w->k_w, w->v_w, w->o_w};
            t1 = mch_bench_now_s();
            for (int k = 0; k < 4; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, C, 1.0f, x, C, sq[k], C,
                            1.0f, y, C);
            cls[G_QKVO] += mch_bench_now_s() - t1;
            for (int b = 0; b < B; b++) {
                const float *xb = x + (size_t)b * T * C;
                t1 = mch_bench_now_s();
                for (int h = 0; h < NH; h++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 0.17f,
                                xb + h * HS, C, xb + h * HS, C, 0.0f, att + (size_t)h * T * T, T);
                cls[G_QK] += mch_bench_now_s() - t1;
                t1 = mch_bench_now_s();
                for (int h = 0; h < NH; h++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f,
                                att + (size_t)h * T * T, T, xb + h * HS, C, 0.0f,
                                y + (size_t)b * T * C + h * HS, C);
                cls[G_PV] += mch_bench_now_s() - t1;
            }
            t1 = mch_bench_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, FF, C, 1.0f, x, C, w->ff1_w, C,
                        1.0f, ff, FF);
            cls[G_FF1] += mch_bench_now_s() - t1;
            t1 = mch_bench_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, FF, 1.0f, ff, FF, w->ff2_w,
                        FF, 1.0f, y, C);
            cls[G_FF2] += mch_bench_now_s() - t1;
            /* Keep the activations bounded: beta = 1 accumulates across layers and reps. */
            memcpy(y, x, (size_t)N * C * sizeof(float));
        }
        double total = mch_bench_now_s() - t0;
        if (total < best) {
            best = total;
            memcpy(cls_s, cls, sizeof cls);
        }
    }
out:
    free(x);
    free(y);
    free(ff);
    free(att);
    return best;
}

/* Useful FLOPs of each class of gemm_floor's calls in one forward. */
static void gemm_class_flops(const mch_config *c, int B, int T, double *f)
{
    double N = (double)B * T, C = c->C, FF = c->FF, HS = c->HS, L = c->L;
    f[G_QKVO] = L * 4 * 2 * N * C * C;
    f[G_QK] = f[G_PV] = L * B * c->NH * 2.0 * T * T * HS;
    f[G_FF1] = f[G_FF2] = L * 2 * N * C * FF;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_forward [--dir DIR] [--keep] [--write-only] [--batch B] [--seq T]\n"
               "                     [--runs N] [--warmup N] [--threads N] [--no-breakdown]\n"
               "\n"
               "Writes a random-weight MiniLM-L6-shaped BertForSequenceClassification to DIR\n"
               "(default: a fresh directory under $TMPDIR, removed at exit unless --keep), loads\n"
               "it with mch_model_open and prints forward tokens/s, forward GFLOP/s, sgemm\n"
               "GFLOP/s (M 4096, N 1536, K 384, NoTrans x Trans) and their ratio, measured\n"
               "interleaved; the medians of N runs after the warm-up. Then, unless\n"
               "--no-breakdown: the forward's sgemm calls alone by shape, and the elementwise\n"
               "kernels alone. --write-only stops after writing the model (and keeps it).\n"
               "Defaults: batch 32, seq 128, runs 9, warmup 2, threads 1. The last line of\n"
               "stdout is machine-readable (BENCH_FORWARD key=value ...).\n");
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "bench_forward: %s takes an integer in %d..%d, got '%s'\n", flag, lo, hi,
                s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--keep"))
            o->keep = 1;
        else if (!strcmp(a, "--write-only"))
            o->write_only = o->keep = 1;
        else if (!strcmp(a, "--no-breakdown"))
            o->breakdown = 0;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!v) {
            fprintf(stderr, "bench_forward: unknown or incomplete option '%s'\n", a);
            return 0;
        } else {
            i++;
            if (!strcmp(a, "--dir"))
                o->dir = v;
            else if (!strcmp(a, "--batch"))
                ok = parse_int(a, v, 1, 4096, &o->B);
            else if (!strcmp(a, "--seq"))
                ok = parse_int(a, v, 2, SHAPE_MAXPOS, &o->T);
            else if (!strcmp(a, "--runs"))
                ok = parse_int(a, v, 1, 1000, &o->runs);
            else if (!strcmp(a, "--warmup"))
                ok = parse_int(a, v, 0, 1000, &o->warmup);
            else if (!strcmp(a, "--threads"))
                ok = parse_int(a, v, 1, 1024, &o->threads);
            else {
                fprintf(stderr, "bench_forward: unknown option '%s'\n", a);
                return 0;
            }
        }
        if (!ok) return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    bench_opts o = {NULL, 0, 0, 32, 128, 9, 2, 1, 1};
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    openblas_set_num_threads(o.threads);

    char tmpl[4096];
    const char *dir = o.dir;
    int made_dir = 0;
    if (!dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/mch-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "bench_forward: mkdtemp %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
        dir = tmpl;
        made_dir = 1;
    } else if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_forward: mkdir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    double t0 = mch_bench_now_s();
    if (!mch_bench_write_model(dir, "bench_forward")) return 1;
    fprintf(stderr, "bench_forward: wrote %s in %.1f s\n", dir, mch_bench_now_s() - t0);
    if (o.write_only) {
        printf("%s\n", dir);
        return 0;
    }

    mch_err err = {0};
    mch_model *m = NULL;
    if (mch_model_open(&m, dir, &err)) {
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        return 1;
    }
    const mch_config *c = &m->cfg;
    int B = o.B, T = o.T, N = B * T;
    mch_workspace *ws = mch_workspace_create(m, N, T);
    int32_t *ids = malloc((size_t)N * sizeof *ids), *types = malloc((size_t)N * sizeof *types);
    int *lens = malloc((size_t)B * sizeof *lens);
    float *scores = malloc((size_t)B * sizeof *scores);
    /* sgemm operands as nn.Linear: A (M, K) activations, W (N, K) weight, C (M, N). */
    const int GM = 4096, GN = 1536, GK = 384;
    float *ga = malloc((size_t)GM * GK * sizeof(float)),
          *gw = malloc((size_t)GN * GK * sizeof(float));
    float *gc = malloc((size_t)GM * GN * sizeof(float));
    double *t_fwd = malloc((size_t)o.runs * sizeof(double));
    double *t_gemm = malloc((size_t)o.runs * sizeof(double));
    if (!ws || !ids || !types || !lens || !scores || !ga || !gw || !gc || !t_fwd || !t_gemm) {
        fprintf(stderr, "bench_forward: out of memory\n");
        return 1;
    }
    /* [CLS] query [SEP] document [SEP] with random word ids, query 16 tokens. */
    for (int b = 0; b < B; b++) {
        lens[b] = T;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            ids[i] = N_SPECIAL + (int32_t)(mch_bench_rng_next() % (uint64_t)(c->V - N_SPECIAL));
            types[i] = t > 17 ? 1 : 0;
        }
        ids[(size_t)b * T] = 2;
        if (T > 18) ids[(size_t)b * T + 17] = 3;
        ids[(size_t)b * T + T - 1] = 3;
    }
    for (size_t i = 0; i < (size_t)GM * GK; i++) ga[i] = mch_bench_rng_uniform(1.0f);
    for (size_t i = 0; i < (size_t)GN * GK; i++) gw[i] = mch_bench_rng_uniform(0.0346f);

    mch_batch bt = {B, T, ids, types, lens};
    mch_forward_out out = {scores, NULL, NULL};
    double flops = forward_flops(c, B, T);
    double gemm_flops = 2.0 * GM * GN * GK;
    /* Repeat the sgemm so a sample lasts about as long as a forward's big matmuls. */
    int gemm_reps = (int)(flops / gemm_flops / 2);
    if (gemm_reps < 1) gemm_reps = 1;

    for (int r = -o.warmup; r < o.runs; r++) {
        t0 = mch_bench_now_s();
        if (mch_forward(m, ws, &bt, NULL, &out, &err)) {
            fprintf(stderr, "bench_forward: %s\n", err.msg);
            return 1;
        }
        double tf = mch_bench_now_s() - t0;
        for (int b = 0; b < B; b++)
            if (!isfinite(scores[b])) {
                fprintf(stderr, "bench_forward: score %d is %g, not finite\n", b,
                        (double)scores[b]);
                return 1;
            }
        t0 = mch_bench_now_s();
        for (int k = 0; k < gemm_reps; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, GM, GN, GK, 1.0f, ga, GK, gw, GK,
                        0.0f, gc, GN);
        double tg = (mch_bench_now_s() - t0) / gemm_reps;
        if (r >= 0) {
            t_fwd[r] = tf;
            t_gemm[r] = tg;
        }
        fprintf(stderr, "  %s %2d: forward %.3f s (%.1f GFLOP/s)   sgemm %.4f s (%.1f GFLOP/s)\n",
                r < 0 ? "warm-up" : "run    ", r < 0 ? r + o.warmup + 1 : r + 1, tf,
                flops / tf * 1e-9, tg, gemm_flops / tg * 1e-9);
    }
    /* Each run's forward and sgemm ran back to back, so their ratio shares the machine's state. */
    double *paired = malloc((size_t)o.runs * sizeof(double));
    if (!paired) {
        fprintf(stderr, "bench_forward: out of memory\n");
        return 1;
    }
    for (int r = 0; r < o.runs; r++) paired[r] = (flops / t_fwd[r]) / (gemm_flops / t_gemm[r]);
    double ratio_paired = mch_bench_median(paired, o.runs);
    free(paired);
    double tf_min = t_fwd[0], tg_min = t_gemm[0];
    for (int r = 1; r < o.runs; r++) {
        tf_min = fmin(tf_min, t_fwd[r]);
        tg_min = fmin(tg_min, t_gemm[r]);
    }
    double tf = mch_bench_median(t_fwd, o.runs), tg = mch_bench_median(t_gemm, o.runs);
    double fwd_gflops = flops / tf * 1e-9, gemm_gflops = gemm_flops / tg * 1e-9;
    double ratio = fwd_gflops / gemm_gflops;
    double tokens_s = N / tf;

    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    printf("mechir forward benchmark  %s\n", date);
    printf("  BLAS         %s (core %s), %d thread(s)\n", openblas_get_config(),
           openblas_get_corename(), o.threads);
    printf("  model        %s  BertForSequenceClassification C %d L %d NH %d FF %d V %d, "
           "%.1f MB F32\n",
           dir, c->C, c->L, c->NH, c->FF, c->V, m->weight_bytes / 1e6);
    printf("  batch        %d x %d tokens = %d tokens, %.2f GFLOP a forward\n", B, T, N,
           flops * 1e-9);
    printf("  runs         %d after %d warm-up, forward and sgemm interleaved; medians (best)\n",
           o.runs, o.warmup);
    printf("  forward      %.3f s (%.3f)  %.0f tokens/s  %.1f GFLOP/s useful\n", tf, tf_min,
           tokens_s, fwd_gflops);
    printf("  sgemm        %.4f s (%.4f)  %.1f GFLOP/s  (M %d N %d K %d, RowMajor NoTrans/Trans)\n",
           tg, tg_min, gemm_gflops, GM, GN, GK);
    printf("  ratio        %.3f forward/sgemm (target >= 0.70: %s)\n", ratio,
           ratio >= 0.70 ? "met" : "MISSED");
    printf("               median of per-run ratios %.3f, best/best %.3f\n", ratio_paired,
           (flops / tf_min) / (gemm_flops / tg_min));
    if (o.breakdown) {
        double cls_s[G_CLASSES], cls_f[G_CLASSES];
        double tfl = gemm_floor(m, B, T, 3, cls_s);
        gemm_class_flops(c, B, T, cls_f);
        printf("  GEMM floor   %.3f s: the forward's sgemm calls alone (best of 3), %.1f GFLOP/s\n"
               "               useful; with free non-GEMM work the best/best ratio would be %.3f;\n"
               "               the best forward spends %.0f ms outside these calls\n",
               tfl, flops / tfl * 1e-9, (flops / tfl) / (gemm_flops / tg_min),
               1e3 * (tf_min - tfl));
        for (int k = 0; k < G_CLASSES; k++)
            printf("    %-22s %7.1f ms  %6.1f GFLOP/s\n", gemm_class_name[k], 1e3 * cls_s[k],
                   cls_f[k] / cls_s[k] * 1e-9);
        breakdown(c, B, T);
    }
    printf("BENCH_FORWARD date=%s threads=%d batch=%d seq=%d runs=%d tokens_per_s=%.1f "
           "forward_s=%.4f forward_gflops=%.2f sgemm_gflops=%.2f ratio=%.4f ratio_paired=%.4f\n",
           date, o.threads, B, T, o.runs, tokens_s, tf, fwd_gflops, gemm_gflops, ratio,
           ratio_paired);

    free(ids);
    free(types);
    free(lens);
    free(scores);
    free(ga);
    free(gw);
    free(gc);
    free(t_fwd);
    free(t_gemm);
    mch_workspace_free(ws);
    mch_model_close(m);
    if (made_dir && !o.keep) mch_bench_remove_model(dir);
    return 0;
}
