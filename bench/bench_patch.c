/* Patching benchmark: writes a random-weight MiniLM-L6-shaped cross-encoder, then measures pairs/s
 * of the heads and blocks sweeps with the optimised engine and with the naive one (one hooked
 * forward per patch), interleaved pair by pair in one run so both see the same machine, on one
 * thread. Prints the engine's counters, a FLOP model of both engines, and the peak RSS of one
 * 256-token blocks sweep measured in a fresh child process (this program re-executed). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "bench_model.h"
#include "encoder.h"
#include "model.h"
#include "patch.h"

enum { QUERY_SEGMENT = 12 }; /* [CLS] + 10 query tokens + [SEP], token type 0 */

typedef struct {
    const char *dir;
    int keep;
    int T, heads_pairs, blocks_naive_pairs, mem_T, scratch_mb;
    int do_heads, do_blocks, do_memory;
    int memory_child; /* internal: run one blocks sweep at mem_T and exit */
} bench_opts;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median of v (n), sorting a copy. */
static double median(const double *v, int n)
{
    double tmp[256];
    if (n < 1) return NAN;
    if (n > 256) n = 256;
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    return mch_bench_median(tmp, n);
}

/* ---- pairs ---- */

typedef struct {
    int T, n_diff, diff_pos[2];
    int32_t *ids_b, *ids_p, *types; /* (T) each */
} bench_pair;

/* [CLS] 10 query ids [SEP] (type 0), random document ids (type 1), [SEP]; the perturbed ids
 * differ from the baseline at n_diff (1 or 2) distinct document positions. */
static int make_pair(bench_pair *bp, int T, int n_diff, int V)
{
    bp->T = T;
    bp->n_diff = n_diff;
    bp->ids_b = malloc((size_t)T * sizeof(int32_t));
    bp->ids_p = malloc((size_t)T * sizeof(int32_t));
    bp->types = malloc((size_t)T * sizeof(int32_t));
    if (!bp->ids_b || !bp->ids_p || !bp->types) return 0;
    for (int t = 0; t < T; t++) {
        bp->ids_b[t] = N_SPECIAL + (int32_t)(mch_bench_rng_next() % (uint64_t)(V - N_SPECIAL));
        bp->types[t] = t < QUERY_SEGMENT ? 0 : 1;
    }
    bp->ids_b[0] = BENCH_ID_CLS;
    bp->ids_b[QUERY_SEGMENT - 1] = BENCH_ID_SEP;
    bp->ids_b[T - 1] = BENCH_ID_SEP;
    memcpy(bp->ids_p, bp->ids_b, (size_t)T * sizeof(int32_t));
    int span = T - 1 - QUERY_SEGMENT; /* document positions QUERY_SEGMENT .. T-2 */
    for (int k = 0; k < n_diff; k++) {
        int t;
        do t = QUERY_SEGMENT + (int)(mch_bench_rng_next() % (uint64_t)span);
        while (k == 1 && t == bp->diff_pos[0]);
        bp->diff_pos[k] = t;
        int32_t id;
        do id = N_SPECIAL + (int32_t)(mch_bench_rng_next() % (uint64_t)(V - N_SPECIAL));
        while (id == bp->ids_b[t]);
        bp->ids_p[t] = id;
    }
    return 1;
}

static void free_pair(bench_pair *bp)
{
    free(bp->ids_b);
    free(bp->ids_p);
    free(bp->types);
}

/* ---- FLOP model (mirrors kernels/patch.c; 2 M N K per matmul, attention's T^2 included) ---- */

typedef struct {
    double T, C, FF, NH, HS, L, labels;
} shape;

static double lin(double R, double in, double out)
{
    return 2 * R * in * out;
}

/* QK^T and PV of all heads for Rq query rows over T keys. */
static double att(const shape *s, double Rq)
{
    return 4 * Rq * s->T * s->C;
}

static double head_flops(const shape *s)
{
    return lin(1, s->C, s->C) + lin(1, s->C, s->labels);
}

static double full_layer(const shape *s)
{
    return 4 * lin(s->T, s->C, s->C) + 2 * lin(s->T, s->C, s->FF) + att(s, s->T);
}

static double forward_flops(const shape *s)
{
    return s->L * full_layer(s) + head_flops(s);
}

/* The last layer when only [CLS] is read and every row differs: K, V for all rows, the rest
 * for [CLS]. */
static double last_all(const shape *s)
{
    return 2 * lin(s->T, s->C, s->C) + 2 * lin(1, s->C, s->C) + att(s, 1) +
           2 * lin(1, s->C, s->FF) + head_flops(s);
}

/* Layers l0 .. L-1 with every row differing. */
static double tail_all(const shape *s, int l0)
{
    double f = 0;
    for (int l = l0; l < (int)s->L - 1; l++) f += full_layer(s);
    return f + last_all(s);
}

/* Layers l0 .. L-1 when only one row of resid_pre at l0 differs. */
static double run_row(const shape *s, int l0)
{
    if (l0 == (int)s->L - 1)
        return 3 * lin(1, s->C, s->C) + att(s, 1) + lin(1, s->C, s->C) + 2 * lin(1, s->C, s->FF) +
               head_flops(s);
    return 3 * lin(1, s->C, s->C) + att(s, s->T) + lin(s->T, s->C, s->C) +
           2 * lin(s->T, s->C, s->FF) + tail_all(s, l0 + 1);
}

/* Optimised heads sweep of one pair, including its two full runs. */
static double heads_opt_flops(const shape *s)
{
    double f = 2 * forward_flops(s);
    for (int l = 0; l < (int)s->L; l++) {
        if (l < (int)s->L - 1)
            f += s->NH * (lin(s->T, s->HS, s->C) + 2 * lin(s->T, s->C, s->FF) + tail_all(s, l + 1));
        else
            f += s->NH * (lin(1, s->HS, s->C) + 2 * lin(1, s->C, s->FF) + head_flops(s));
    }
    return f;
}

/* Optimised blocks sweep of one pair whose inputs differ at n_diff token positions (the other
 * rows of resid_pre at layer 0 are identical and free). */
static double blocks_opt_flops(const shape *s, int n_diff)
{
    double f = 2 * forward_flops(s);
    int L = (int)s->L;
    for (int l = 0; l < L; l++) {
        double rows = l == 0 ? n_diff : s->T;
        f += rows * run_row(s, l); /* resid_pre */
        /* attn_out: the rest of the block on one row; mlp_out: LayerNorm only. Then the next
         * layers with one dirty row; in the last layer only a [CLS] patch costs anything. */
        double cont = l < L - 1 ? run_row(s, l + 1) : 0;
        f += s->T * (2 * lin(1, s->C, s->FF) + cont) + s->T * cont;
        if (l == L - 1) f += 2 * head_flops(s);
    }
    return f;
}

/* ---- one sweep ---- */

typedef struct {
    double wall_s, cpu_s;
    long patches, forwards_saved;
    double score_b, score_p;
} sweep_time;

static int run_one(mch_patcher *p, const bench_pair *bp, mch_patch_result *res, sweep_time *st)
{
    mch_err err = {0};
    mch_patch_pair pair = {bp->T, bp->ids_b, bp->ids_p, bp->types, 0, NULL};
    double w0 = mch_bench_now_s(), c0 = cpu_s();
    mch_status rc = mch_patch_run(p, &pair, res, &err);
    st->wall_s = mch_bench_now_s() - w0;
    st->cpu_s = cpu_s() - c0;
    if (rc) {
        fprintf(stderr, "bench_patch: mch_patch_run: %s\n", err.msg);
        return 0;
    }
    if (res->skipped) {
        fprintf(stderr, "bench_patch: the pair was skipped (%s); min_delta is 1e-30\n",
                res->skip_reason);
        return 0;
    }
    st->patches = res->patches;
    st->forwards_saved = res->forwards_saved;
    st->score_b = res->score_baseline;
    st->score_p = res->score_perturbed;
    return 1;
}

/* Largest |a - b| over n raw patched scores, and how many exceed 1e-5 + 1e-5 |b| (the tolerance
 * of the engine's own tests). */
static double max_diff(const float *a, const float *b, size_t n, long *over)
{
    double m = 0;
    *over = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
        if (d > 1e-5 + 1e-5 * fabs((double)b[i])) ++*over;
    }
    return m;
}

static mch_patcher *make_patcher(const mch_model *m, unsigned sweeps, int naive, int T,
                                 int scratch_mb)
{
    mch_patch_opts o = {0};
    o.sweeps = sweeps;
    o.min_delta = 1e-30;
    o.naive = naive;
    o.scratch_bytes = (size_t)scratch_mb << 20;
    mch_err err = {0};
    mch_patcher *p = NULL;
    if (mch_patcher_create(&p, m, &o, T, &err)) {
        fprintf(stderr, "bench_patch: mch_patcher_create: %s\n", err.msg);
        return NULL;
    }
    return p;
}

typedef struct {
    const char *name;
    unsigned sweep;
    int n_opt, n_naive;
    sweep_time opt[64], naive[64];
    double diff;
    long over;
    double flops_opt, flops_naive, flops_fwd;
} sweep_bench;

/* Runs s->n_opt optimised and s->n_naive naive pairs interleaved: opt 0, naive 0, opt 1,
 * naive 1, ...; pair i is the same pair for both engines. One untimed optimised warm-up first. */
static int bench_sweep(const mch_model *m, const bench_opts *o, sweep_bench *s)
{
    const mch_config *c = &m->cfg;
    int T = o->T;
    mch_patcher *po = make_patcher(m, s->sweep, 0, T, o->scratch_mb);
    mch_patcher *pn = make_patcher(m, s->sweep, 1, T, o->scratch_mb);
    size_t n_out =
        s->sweep == MCH_SWEEP_HEADS ? (size_t)c->L * c->NH : (size_t)MCH_BLOCK_COUNT * c->L * T;
    float *so = malloc(n_out * sizeof(float)), *sn = malloc(n_out * sizeof(float));
    float *eo = malloc(n_out * sizeof(float)), *en = malloc(n_out * sizeof(float));
    int ok = po && pn && so && sn && eo && en;
    if (!ok) fprintf(stderr, "bench_patch: out of memory\n");
    mch_patch_result ro = {0}, rn = {0};
    if (s->sweep == MCH_SWEEP_HEADS) {
        ro.heads_scores = so, ro.heads = eo;
        rn.heads_scores = sn, rn.heads = en;
    } else {
        ro.blocks_scores = so, ro.blocks = eo;
        rn.blocks_scores = sn, rn.blocks = en;
    }
    bench_pair warm;
    if (ok && (ok = make_pair(&warm, T, 1, c->V))) {
        sweep_time st;
        ok = run_one(po, &warm, &ro, &st);
        free_pair(&warm);
    }
    s->diff = 0;
    s->over = 0;
    int rounds = s->n_opt > s->n_naive ? s->n_opt : s->n_naive;
    for (int i = 0; ok && i < rounds; i++) {
        bench_pair bp;
        if (!(ok = make_pair(&bp, T, 1 + i % 2, c->V))) break;
        if (i < s->n_opt) {
            ok = run_one(po, &bp, &ro, &s->opt[i]);
            fprintf(stderr, "  %-6s pair %d (%d diff) optimised %8.3f s (cpu %.3f)\n", s->name, i,
                    bp.n_diff, s->opt[i].wall_s, s->opt[i].cpu_s);
        }
        if (ok && i < s->n_naive) {
            ok = run_one(pn, &bp, &rn, &s->naive[i]);
            fprintf(stderr, "  %-6s pair %d (%d diff) naive     %8.3f s (cpu %.3f)\n", s->name, i,
                    bp.n_diff, s->naive[i].wall_s, s->naive[i].cpu_s);
            if (ok && i < s->n_opt) {
                long over;
                double d = max_diff(so, sn, n_out, &over);
                if (d > s->diff) s->diff = d;
                s->over += over;
            }
        }
        free_pair(&bp);
    }
    shape sh = {T, c->C, c->FF, c->NH, c->HS, c->L, c->num_labels};
    s->flops_fwd = forward_flops(&sh);
    if (s->sweep == MCH_SWEEP_HEADS) {
        s->flops_opt = heads_opt_flops(&sh);
        s->flops_naive = (2 + sh.L * sh.NH) * s->flops_fwd;
    } else { /* pairs alternate 1 and 2 differing tokens */
        s->flops_opt = 0.5 * (blocks_opt_flops(&sh, 1) + blocks_opt_flops(&sh, 2));
        s->flops_naive = (2 + MCH_BLOCK_COUNT * sh.L * sh.T) * s->flops_fwd;
    }
    mch_patcher_free(po);
    mch_patcher_free(pn);
    free(so);
    free(sn);
    free(eo);
    free(en);
    return ok;
}

/* Per-pair medians of wall and CPU seconds, and the median patches and forwards_saved. */
static void summarise(const sweep_time *t, int n, double *wall, double *cpu, long *patches,
                      long *saved)
{
    double w[64], c[64], p[64], s[64];
    for (int i = 0; i < n; i++) {
        w[i] = t[i].wall_s;
        c[i] = t[i].cpu_s;
        p[i] = (double)t[i].patches;
        s[i] = (double)t[i].forwards_saved;
    }
    *wall = median(w, n);
    *cpu = median(c, n);
    *patches = (long)median(p, n);
    *saved = (long)median(s, n);
}

static void report_sweep(const sweep_bench *s, double target, char *kv, size_t kv_len)
{
    double wo, co, wn, cn;
    long po, so, pn, sn;
    summarise(s->opt, s->n_opt, &wo, &co, &po, &so);
    summarise(s->naive, s->n_naive, &wn, &cn, &pn, &sn);
    double ratio = wn / wo, ratio_cpu = cn / co, model = s->flops_naive / s->flops_opt;
    printf("  %s sweep (%d optimised, %d naive pairs; per-pair medians)\n", s->name, s->n_opt,
           s->n_naive);
    printf("    optimised  %8.3f s a pair  %8.3f pairs/s  (cpu %.3f s)  %6.1f GFLOP/s modelled\n",
           wo, 1 / wo, co, s->flops_opt / wo * 1e-9);
    printf("    naive      %8.3f s a pair  %8.3f pairs/s  (cpu %.3f s)  %6.1f GFLOP/s modelled\n",
           wn, 1 / wn, cn, s->flops_naive / wn * 1e-9);
    printf("    ratio      %.2fx optimised/naive pairs/s (cpu time %.2fx); target >= %.1fx: %s\n",
           ratio, ratio_cpu, target, ratio >= target ? "met" : "MISSED");
    printf("    counters   optimised patches %ld forwards_saved %ld; naive patches %ld "
           "forwards_saved %ld\n",
           po, so, pn, sn);
    printf("    FLOP model optimised %.1f GFLOP = %.1f forward-equivalents, naive %.1f GFLOP = "
           "%.1f (%.0f patches + 2 full runs); expected ratio %.2fx\n",
           s->flops_opt * 1e-9, s->flops_opt / s->flops_fwd, s->flops_naive * 1e-9,
           s->flops_naive / s->flops_fwd, s->flops_naive / s->flops_fwd - 2, model);
    printf("    agreement  max |optimised - naive| patched score %.3g (%ld values beyond "
           "1e-5 + 1e-5|naive|)\n",
           s->diff, s->over);
    snprintf(kv, kv_len,
             " %s_opt_s=%.4f %s_naive_s=%.4f %s_opt_pairs_per_s=%.4f %s_naive_pairs_per_s=%.5f "
             "%s_ratio=%.3f %s_ratio_cpu=%.3f %s_model_ratio=%.3f %s_patches=%ld "
             "%s_forwards_saved=%ld",
             s->name, wo, s->name, wn, s->name, 1 / wo, s->name, 1 / wn, s->name, ratio, s->name,
             ratio_cpu, s->name, model, s->name, po, s->name, so);
}

/* ---- the memory child ---- */

/* One optimised blocks sweep at mem_T tokens in this process; prints its wall time. */
static int memory_child(const bench_opts *o)
{
    openblas_set_num_threads(1);
    mch_err err = {0};
    mch_model *m = NULL;
    if (mch_model_open(&m, o->dir, &err)) {
        fprintf(stderr, "bench_patch: %s\n", err.msg);
        return 1;
    }
    int T = o->mem_T;
    mch_patcher *p = make_patcher(m, MCH_SWEEP_BLOCKS, 0, T, o->scratch_mb);
    float *blocks = malloc((size_t)MCH_BLOCK_COUNT * m->cfg.L * T * sizeof(float));
    bench_pair bp;
    int ok = p && blocks && make_pair(&bp, T, 1, m->cfg.V);
    mch_patch_result res = {0};
    res.blocks = blocks;
    sweep_time st = {0};
    if (ok) {
        ok = run_one(p, &bp, &res, &st);
        free_pair(&bp);
    }
    if (ok) printf("%.4f %ld %ld\n", st.wall_s, st.patches, st.forwards_saved);
    mch_patcher_free(p);
    free(blocks);
    mch_model_close(m);
    return ok ? 0 : 1;
}

/* Re-executes this program as a memory child and returns its peak RSS (KiB, ru_maxrss). */
static int measure_memory(const bench_opts *o, long *maxrss_kib, double *wall_s, long *patches,
                          long *saved)
{
    char T[16], mb[16];
    snprintf(T, sizeof T, "%d", o->mem_T);
    snprintf(mb, sizeof mb, "%d", o->scratch_mb);
    int fd[2];
    if (pipe(fd)) return 0;
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl("/proc/self/exe", "bench_patch", "--memory-child", "--dir", o->dir, "--mem-seq", T,
              "--scratch-mb", mb, (char *)NULL);
        fprintf(stderr, "bench_patch: exec /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    char line[256] = {0};
    FILE *f = fdopen(fd[0], "r");
    int got = f && fgets(line, sizeof line, f) != NULL;
    if (f) fclose(f);
    int status;
    struct rusage ru;
    /* The only child this process ever has, so RUSAGE_CHILDREN's maximum is its own. */
    if (waitpid(pid, &status, 0) != pid || getrusage(RUSAGE_CHILDREN, &ru)) return 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) || !got) {
        fprintf(stderr, "bench_patch: the memory child failed (status %d)\n", status);
        return 0;
    }
    *maxrss_kib = ru.ru_maxrss;
    return sscanf(line, "%lf %ld %ld", wall_s, patches, saved) == 3;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_patch [--dir DIR] [--keep] [--seq T] [--heads-pairs N]\n"
            "                   [--blocks-naive-pairs N] [--mem-seq T] [--scratch-mb N]\n"
            "                   [--no-heads] [--no-blocks] [--no-memory]\n"
            "\n"
            "Writes a random-weight MiniLM-L6-shaped cross-encoder to DIR (default: a fresh\n"
            "directory under $TMPDIR, removed at exit unless --keep) and, on one thread, times\n"
            "the heads and blocks sweeps of pairs of T tokens (default 128), the optimised engine\n"
            "and the naive one (one hooked forward per patch) interleaved pair by pair: heads\n"
            "N pairs of each (default 8), blocks N naive pairs (default 1) between N + 1\n"
            "optimised ones. Then one optimised blocks sweep of --mem-seq tokens (default 256)\n"
            "in a re-executed child, whose peak RSS (ru_maxrss) is compared with 512 MiB.\n"
            "--scratch-mb is the patcher's scratch budget (default 256, as mechir). The last\n"
            "line of stdout is machine-readable (BENCH_PATCH key=value ...).\n");
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "bench_patch: %s takes an integer in %d..%d, got '%s'\n", flag, lo, hi, s);
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
        else if (!strcmp(a, "--no-heads"))
            o->do_heads = 0;
        else if (!strcmp(a, "--no-blocks"))
            o->do_blocks = 0;
        else if (!strcmp(a, "--no-memory"))
            o->do_memory = 0;
        else if (!strcmp(a, "--memory-child"))
            o->memory_child = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!v) {
            fprintf(stderr, "bench_patch: unknown or incomplete option '%s'\n", a);
            return 0;
        } else {
            i++;
            if (!strcmp(a, "--dir"))
                o->dir = v;
            else if (!strcmp(a, "--seq"))
                ok = parse_int(a, v, QUERY_SEGMENT + 4, SHAPE_MAXPOS, &o->T);
            else if (!strcmp(a, "--mem-seq"))
                ok = parse_int(a, v, QUERY_SEGMENT + 4, SHAPE_MAXPOS, &o->mem_T);
            else if (!strcmp(a, "--heads-pairs"))
                ok = parse_int(a, v, 1, 64, &o->heads_pairs);
            else if (!strcmp(a, "--blocks-naive-pairs"))
                ok = parse_int(a, v, 0, 63, &o->blocks_naive_pairs);
            else if (!strcmp(a, "--scratch-mb"))
                ok = parse_int(a, v, 1, 1 << 20, &o->scratch_mb);
            else {
                fprintf(stderr, "bench_patch: unknown option '%s'\n", a);
                return 0;
            }
        }
        if (!ok) return 0;
    }
    if (o->memory_child && !o->dir) {
        fprintf(stderr, "bench_patch: --memory-child needs --dir\n");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    bench_opts o = {NULL, 0, 128, 8, 1, 256, 256, 1, 1, 1, 0};
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    if (o.memory_child) return memory_child(&o);
    openblas_set_num_threads(1);

    char tmpl[4096];
    const char *dir = o.dir;
    int made_dir = 0;
    if (!dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/mch-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "bench_patch: mkdtemp %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
        dir = o.dir = tmpl;
        made_dir = 1;
    } else if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_patch: mkdir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    double t0 = mch_bench_now_s();
    if (!mch_bench_write_model(dir, "bench_patch")) return 1;
    fprintf(stderr, "bench_patch: wrote %s in %.1f s\n", dir, mch_bench_now_s() - t0);

    mch_err err = {0};
    mch_model *m = NULL;
    if (mch_model_open(&m, dir, &err)) {
        fprintf(stderr, "bench_patch: %s\n", err.msg);
        return 1;
    }
    const mch_config *c = &m->cfg;
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    static sweep_bench heads = {.name = "heads", .sweep = MCH_SWEEP_HEADS};
    static sweep_bench blocks = {.name = "blocks", .sweep = MCH_SWEEP_BLOCKS};
    heads.n_opt = heads.n_naive = o.heads_pairs;
    blocks.n_naive = o.blocks_naive_pairs;
    blocks.n_opt = o.blocks_naive_pairs + 1;
    int ok = 1;
    if (o.do_heads) ok = bench_sweep(m, &o, &heads);
    if (ok && o.do_blocks) ok = bench_sweep(m, &o, &blocks);
    long rss_kib = 0, mem_patches = 0, mem_saved = 0;
    double mem_s = 0;
    if (ok && o.do_memory) ok = measure_memory(&o, &rss_kib, &mem_s, &mem_patches, &mem_saved);
    if (!ok) return 1;

    printf("mechir patching benchmark  %s\n", date);
    printf("  BLAS         %s (core %s), 1 thread\n", openblas_get_config(),
           openblas_get_corename());
    printf("  model        BertForSequenceClassification C %d L %d NH %d FF %d, %.1f MB F32, "
           "random weights\n",
           c->C, c->L, c->NH, c->FF, m->weight_bytes / 1e6);
    printf("  pairs        %d tokens ([CLS] 10 query [SEP] type 0, document type 1), baseline and "
           "perturbed differ at 1 or 2 document positions; min_delta 1e-30; scratch %d MiB\n",
           o.T, o.scratch_mb);
    char kv[2][768] = {"", ""};
    if (o.do_heads) report_sweep(&heads, 2.0, kv[0], sizeof kv[0]);
    if (o.do_blocks && blocks.n_naive) report_sweep(&blocks, 2.5, kv[1], sizeof kv[1]);
    char kvm[256] = "";
    if (o.do_memory) {
        double mib = rss_kib / 1024.0;
        printf("  memory       one optimised blocks sweep of %d tokens, scratch %d MiB, fresh "
               "process: peak RSS %.1f MiB (limit 512 MiB: %s); %.1f s, %ld patches, %ld "
               "forwards_saved\n",
               o.mem_T, o.scratch_mb, mib, mib < 512 ? "met" : "OVER", mem_s, mem_patches,
               mem_saved);
        snprintf(kvm, sizeof kvm, " mem_seq=%d mem_peak_rss_kib=%ld mem_blocks_s=%.3f", o.mem_T,
                 rss_kib, mem_s);
    }
    printf("BENCH_PATCH date=%s seq=%d%s%s%s\n", date, o.T, kv[0], kv[1], kvm);
    mch_model_close(m);
    if (made_dir && !o.keep) mch_bench_remove_model(dir);
    return 0;
}
