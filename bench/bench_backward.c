/* Backward-pass benchmark: on a random-weight model in the MiniLM-L6 cross-encoder shape (loaded
 * with mch_model_open), one thread, the time of one forward (mch_forward, the score) against one
 * forward that keeps the activations plus the backward to every hook site (mch_backward_run),
 * interleaved run by run so both see the same load; medians, their ratio, and the FLOP model's.
 * Usage: bench_backward [RUNS [T ...]] (default 20 runs, T = 96 128). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_model.h"
#include "encoder_backward.h"
#include "ops.h"

/* FLOPs of one sequence's forward (2 M N K per matmul) and of its backward: the input gradient
 * of every linear layer (as many FLOPs as its forward), the recomputed FFN input layer, and four
 * (T, T) x (T, HS) products a head where the forward has two. */
static void flop_model(const mch_config *c, int T, double *fwd, double *bwd)
{
    double N = T, C = c->C, FF = c->FF, HS = c->HS;
    double lin = 4 * 2 * N * C * C + 2 * 2 * N * C * FF, att = c->NH * 2 * (2.0 * T * T * HS);
    *fwd = c->L * (lin + att) + 2.0 * C * C;
    *bwd = c->L * (lin + 2 * N * C * FF + 2 * att) + 2.0 * C * C;
}

static int bench_T(const mch_model *m, int T, int runs)
{
    mch_err err = {0};
    mch_workspace *ws = mch_workspace_create(m, T, T);
    mch_backward *bw = NULL;
    int32_t *ids = malloc((size_t)T * sizeof *ids), *types = calloc((size_t)T, sizeof *types);
    double *tf = malloc((size_t)runs * sizeof *tf), *tb = malloc((size_t)runs * sizeof *tb);
    if (!ws || !ids || !types || !tf || !tb || mch_backward_create(&bw, m, T, MCH_POOL_CLS, &err)) {
        fprintf(stderr, "bench_backward: %s\n", err.code ? err.msg : "out of memory");
        return 0;
    }
    for (int t = 0; t < T; t++) {
        ids[t] = N_SPECIAL + (int32_t)(mch_bench_rng_next() % (uint64_t)(SHAPE_V - N_SPECIAL));
        types[t] = t > 11;
    }
    ids[0] = BENCH_ID_CLS;
    ids[11] = ids[T - 1] = BENCH_ID_SEP;
    mch_batch bt = {1, T, ids, types, &T};
    mch_forward_opts o = {NULL, 0, NULL, MCH_POOL_CLS};
    float s1 = 0, s2 = 0;
    mch_forward_out out = {&s1, NULL, NULL};
    int ok = 1;
    for (int r = -2; ok && r < runs; r++) { /* two warm-up rounds */
        double t0 = mch_bench_now_s();
        ok = mch_forward(m, ws, &bt, &o, &out, &err) == MCH_OK;
        double t1 = mch_bench_now_s();
        ok = ok && mch_backward_run(bw, T, ids, types, NULL, &s2, &err) == MCH_OK;
        double t2 = mch_bench_now_s();
        if (r >= 0) tf[r] = t1 - t0, tb[r] = t2 - t1;
    }
    if (!ok) fprintf(stderr, "bench_backward: %s\n", err.msg);
    if (ok) {
        double f = mch_bench_median(tf, runs), b = mch_bench_median(tb, runs), ff, fb;
        flop_model(&m->cfg, T, &ff, &fb);
        printf("  T %3d  forward %7.2f ms  forward+backward %7.2f ms  ratio %.2f  (FLOP model "
               "%.2f; scores %.6g %.6g)\n",
               T, 1e3 * f, 1e3 * b, b / f, (ff + fb) / ff, s1, s2);
        printf("BENCH_BACKWARD seq=%d runs=%d forward_ms=%.3f fwd_bwd_ms=%.3f ratio=%.3f "
               "flop_ratio=%.3f\n",
               T, runs, 1e3 * f, 1e3 * b, b / f, (ff + fb) / ff);
    }
    free(ids);
    free(types);
    free(tf);
    free(tb);
    mch_backward_free(bw);
    mch_workspace_free(ws);
    return ok;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    if (runs < 1) {
        fprintf(stderr, "usage: bench_backward [RUNS [T ...]]\n");
        return 2;
    }
    mch_set_threads(1);
    char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mch-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_backward: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (!mch_bench_write_model(dir, "bench_backward")) return 1;
    mch_err err = {0};
    mch_model *m = NULL;
    int ok = mch_model_open(&m, dir, &err) == MCH_OK;
    if (!ok) fprintf(stderr, "bench_backward: %s\n", err.msg);
    char blas[256];
    mch_blas_describe(blas, sizeof blas);
    if (ok) printf("mechir backward benchmark, MiniLM-L6 shape, 1 thread, %s\n", blas);
    int defaults[] = {96, 128};
    int nT = argc > 2 ? argc - 2 : 2;
    for (int i = 0; ok && i < nT; i++) {
        int T = argc > 2 ? atoi(argv[i + 2]) : defaults[i];
        if (T < 13 || T > SHAPE_MAXPOS) {
            fprintf(stderr, "bench_backward: T %d outside 13..%d\n", T, SHAPE_MAXPOS);
            ok = 0;
            break;
        }
        ok = bench_T(m, T, runs);
    }
    mch_model_close(m);
    mch_bench_remove_model(dir);
    return ok ? 0 : 1;
}
