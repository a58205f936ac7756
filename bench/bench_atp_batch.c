/* Batched attribution patching benchmark: one thread, AtP (heads and blocks sweeps) of 8 pairs
 * of T tokens run one at a time (mch_atp_run, a context for one pair) against the same 8 pairs
 * as one batch (mch_atp_run_batch, a context for 8), interleaved round by round so both see the
 * same load; medians of the time per pair, their ratio, and the largest difference between the
 * two paths' estimates (float rounding: the batched sgemm sees 8x the rows). The model is the
 * MiniLM-L6 cross-encoder shape with random weights (bench_model.h) or a model directory.
 * Usage: bench_atp_batch [--model DIR] [RUNS [T ...]] (default 9 runs, T = 64 96 128). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp.h"
#include "bench_model.h"
#include "ops.h"

enum { NPAIRS = 8 };

/* Pair i: [CLS] 16 query words [SEP] document words [SEP]; the perturbed document's last word
 * is the query's fourth (TFC1 by replacement). ids/types are (NPAIRS, 2, T). */
static void make_pairs(int T, int V, int32_t *ids, int32_t *types, mch_patch_pair *pairs)
{
    for (int i = 0; i < NPAIRS; i++) {
        int32_t *b = ids + (size_t)i * 2 * T, *p = b + T, *ty = types + (size_t)i * T;
        for (int t = 0; t < T; t++) {
            b[t] = 1000 + (int32_t)(mch_bench_rng_next() % (uint64_t)(V - 1000));
            ty[t] = t > 17;
        }
        b[0] = 101;
        b[17] = b[T - 1] = 102;
        memcpy(p, b, (size_t)T * sizeof *p);
        p[T - 2] = b[4];
        pairs[i] = (mch_patch_pair){T, b, p, ty, 0, NULL};
    }
}

static int bench_T(const mch_model *m, int T, int runs)
{
    const mch_config *c = &m->cfg;
    mch_err err = {0};
    mch_patch_opts o = {.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS, .min_delta = 1e-12};
    mch_atp *one = NULL, *batch = NULL;
    size_t nh = (size_t)c->L * c->NH, nb = 3 * (size_t)c->L * T, per = 2 * (nh + nb);
    int32_t *ids = malloc((size_t)NPAIRS * 3 * T * sizeof *ids);
    float *buf = calloc(2 * NPAIRS * per, sizeof *buf);
    double *t1 = malloc((size_t)runs * sizeof *t1), *tb = malloc((size_t)runs * sizeof *tb);
    mch_patch_pair pairs[NPAIRS];
    mch_patch_result res[2][NPAIRS];
    mch_err perr[NPAIRS];
    if (!ids || !buf || !t1 || !tb || mch_atp_create_batch(&one, m, &o, T, 1, &err) ||
        mch_atp_create_batch(&batch, m, &o, T, NPAIRS, &err)) {
        fprintf(stderr, "bench_atp_batch: %s\n", err.code ? err.msg : "out of memory");
        return 0;
    }
    make_pairs(T, c->V, ids, ids + (size_t)NPAIRS * 2 * T, pairs);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < NPAIRS; i++) {
            float *r = buf + (size_t)(k * NPAIRS + i) * per;
            res[k][i] = (mch_patch_result){0};
            res[k][i].heads = r, res[k][i].heads_scores = r + nh;
            res[k][i].blocks = r + 2 * nh, res[k][i].blocks_scores = r + 2 * nh + nb;
        }
    int ok = 1;
    for (int r = -1; ok && r < runs; r++) { /* one warm-up round */
        double a = mch_bench_now_s();
        for (int i = 0; ok && i < NPAIRS; i++)
            ok = mch_atp_run(one, &pairs[i], MCH_ATP_LINEAR, &res[0][i], &err) == MCH_OK;
        double b = mch_bench_now_s();
        ok = ok &&
             mch_atp_run_batch(batch, pairs, NPAIRS, MCH_ATP_LINEAR, res[1], perr, &err) == MCH_OK;
        for (int i = 0; ok && i < NPAIRS; i++)
            if (perr[i].code) ok = 0, err = perr[i];
        double e = mch_bench_now_s();
        if (r >= 0) t1[r] = (b - a) / NPAIRS, tb[r] = (e - b) / NPAIRS;
    }
    if (!ok) fprintf(stderr, "bench_atp_batch: %s\n", err.msg);
    if (ok) {
        double diff = 0, f1 = mch_bench_median(t1, runs), fb = mch_bench_median(tb, runs);
        for (int i = 0; i < NPAIRS; i++)
            for (size_t j = 0; j < nh + nb; j++) {
                const mch_patch_result *x = &res[0][i], *y = &res[1][i];
                float u = j < nh ? x->heads_scores[j] : x->blocks_scores[j - nh];
                float v = j < nh ? y->heads_scores[j] : y->blocks_scores[j - nh];
                diff = fmax(diff, fabs((double)u - v));
            }
        printf("  T %3d  one at a time %7.2f ms/pair  batched (%d) %7.2f ms/pair  speedup %.2fx  "
               "(largest estimate difference %.2g)\n",
               T, 1e3 * f1, NPAIRS, 1e3 * fb, f1 / fb, diff);
        printf("BENCH_ATP_BATCH seq=%d pairs=%d runs=%d one_ms=%.3f batched_ms=%.3f "
               "speedup=%.3f\n",
               T, NPAIRS, runs, 1e3 * f1, 1e3 * fb, f1 / fb);
    }
    free(ids);
    free(buf);
    free(t1);
    free(tb);
    mch_atp_free(one);
    mch_atp_free(batch);
    return ok;
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int a = 1;
    if (argc > 2 && !strcmp(argv[1], "--model")) model = argv[2], a = 3;
    int runs = argc > a ? atoi(argv[a]) : 9;
    if (runs < 1) {
        fprintf(stderr, "usage: bench_atp_batch [--model DIR] [RUNS [T ...]]\n");
        return 2;
    }
    mch_set_threads(1);
    char dir[4096];
    if (!model) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/mch-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "bench_atp_batch: mkdtemp %s: %s\n", dir, strerror(errno));
            return 1;
        }
        if (!mch_bench_write_model(dir, "bench_atp_batch")) return 1;
    }
    mch_err err = {0};
    mch_model *m = NULL;
    int ok = mch_model_open(&m, model ? model : dir, &err) == MCH_OK;
    if (!ok) fprintf(stderr, "bench_atp_batch: %s\n", err.msg);
    char blas[256];
    mch_blas_describe(blas, sizeof blas);
    if (ok)
        printf("mechir batched AtP benchmark, %s, 1 thread, %s\n",
               model ? model : "MiniLM-L6 shape", blas);
    int defaults[] = {64, 96, 128};
    int nT = argc > a + 1 ? argc - a - 1 : 3;
    for (int i = 0; ok && i < nT; i++) {
        int T = argc > a + 1 ? atoi(argv[a + 1 + i]) : defaults[i];
        if (T < 20 || T > m->cfg.max_tokens) {
            fprintf(stderr, "bench_atp_batch: T %d outside 20..%d\n", T, m->cfg.max_tokens);
            ok = 0;
            break;
        }
        ok = bench_T(m, T, runs);
    }
    mch_model_close(m);
    if (!model) mch_bench_remove_model(dir);
    return ok ? 0 : 1;
}
