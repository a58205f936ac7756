/* The backward pass: each backward op against central finite differences of a double-precision
 * forward written here (independent of the float kernels); the whole pass against the golden
 * slopes of an independent float64 autograd reference (tests/data/patching/atp; the AtP estimate
 * maps built from the gradients are test_atp's), and against float finite differences of the
 * real forward at every hook site of every architecture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "encoder_backward.h"
#include "ops_backward.h"
#include "testutil.h"

/* ---- finite differences in double --------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;

/* Uniform in [-a, a), rounded to float so the float kernels see exactly the double inputs. */
static double urand(double a)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(float)(a * (2.0 * (double)(rng_state >> 11) / 9007199254740992.0 - 1.0));
}

static void fill(double *xd, float *xf, int n, double a)
{
    for (int i = 0; i < n; i++) {
        xd[i] = urand(a);
        if (xf) xf[i] = (float)xd[i];
    }
}

/* A scalar loss of the inputs x: sum of r * forward(x) over the op's outputs. */
typedef double (*loss_fn)(const double *x, const void *ctx);

/* grad (n) = central differences of f at x, step 1e-6 (x is restored). */
static void fd_grad(loss_fn f, const void *ctx, double *x, int n, double *grad)
{
    const double h = 1e-6;
    for (int i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double fp = f(x, ctx);
        x[i] = x0 - h;
        double fm = f(x, ctx);
        x[i] = x0;
        grad[i] = (fp - fm) / (2 * h);
    }
}

/* Checks got[i * stride] - base[i] against want[i] (base NULL: 0), |diff| <= 2e-5 + 1e-4 |want|;
 * returns the number of mismatches, printing the first few with the op's name. */
static int check_grad(const char *what, const float *got, int stride, const float *base,
                      const double *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double g = (double)got[(size_t)i * stride] - (base ? base[i] : 0.0);
        if (!tu_close(g, want[i], 2e-5, 1e-4)) {
            if (bad++ < 3)
                fprintf(stderr, "MISMATCH %s[%d]: got %.9g want %.9g\n", what, i, g, want[i]);
        }
    }
    return bad;
}

/* linear: out = x W^T + b, x (N, C), W (OC, C). */
typedef struct {
    int N, C, OC;
    const double *w, *b, *r;
} lin_ctx;

static double lin_loss(const double *x, const void *vc)
{
    const lin_ctx *c = vc;
    double s = 0;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double y = c->b[o];
            for (int i = 0; i < c->C; i++) y += x[n * c->C + i] * c->w[o * c->C + i];
            s += c->r[n * c->OC + o] * y;
        }
    return s;
}

static void test_linear_backward_matches_finite_differences(void **st)
{
    (void)st;
    enum { N = 3, C = 5, OC = 4, LDI = 7, LDO = 6 };
    double x[N * C], w[OC * C], b[OC], r[N * OC], want[N * C];
    float wf[OC * C], rf[N * LDO] = {0}, dinp[N * LDI], base[N * C];
    fill(x, NULL, N * C, 1);
    fill(w, wf, OC * C, 1);
    fill(b, NULL, OC, 1);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            r[n * OC + o] = urand(1);
            rf[n * LDO + o] = (float)r[n * OC + o];
        }
    lin_ctx c = {N, C, OC, w, b, r};
    fd_grad(lin_loss, &c, x, N * C, want);
    /* dinp is accumulated onto: start from non-zero values, row stride LDI. */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < LDI; i++) dinp[n * LDI + i] = (float)(0.25 * (n + i));
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) base[n * C + i] = dinp[n * LDI + i];
    mch_linear_backward(dinp, LDI, rf, LDO, wf, N, C, OC);
    int bad = 0;
    for (int n = 0; n < N; n++)
        bad += check_grad("linear", dinp + n * LDI, 1, base + n * C, want + n * C, C);
    /* the padding columns of the stride are not touched */
    for (int n = 0; n < N; n++)
        for (int i = C; i < LDI; i++) assert_true(dinp[n * LDI + i] == (float)(0.25 * (n + i)));
    assert_int_equal(bad, 0);
}

/* LayerNorm over C, gain g and bias b. */
typedef struct {
    int N, C;
    double eps;
    const double *g, *b, *r;
} ln_ctx;

static void ln_ref(double *y, const double *x, const ln_ctx *c)
{
    for (int n = 0; n < c->N; n++) {
        const double *xr = x + n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += xr[i];
        m /= c->C;
        for (int i = 0; i < c->C; i++) v += (xr[i] - m) * (xr[i] - m);
        double rs = 1 / sqrt(v / c->C + c->eps);
        for (int i = 0; i < c->C; i++) y[n * c->C + i] = (xr[i] - m) * rs * c->g[i] + c->b[i];
    }
}

static double ln_loss(const double *x, const void *vc)
{
    const ln_ctx *c = vc;
    double y[64 * 64], s = 0;
    ln_ref(y, x, c);
    for (int i = 0; i < c->N * c->C; i++) s += c->r[i] * y[i];
    return s;
}

static void test_layernorm_backward_matches_finite_differences(void **st)
{
    (void)st;
    int shapes[][2] = {{3, 7}, {2, 33}, {1, 64}};
    int checked = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int N = shapes[k][0], C = shapes[k][1];
        double x[64 * 64], g[64], b[64], r[64 * 64], want[64 * 64];
        float xf[64 * 64], gf[64], rf[64 * 64], dinp[64 * 64], base[64 * 64];
        fill(x, xf, N * C, 2);
        for (int i = 0; i < N * C; i++) x[i] += 0.5, xf[i] = (float)x[i]; /* non-zero mean */
        fill(g, gf, C, 1.5);
        fill(b, NULL, C, 1);
        fill(r, rf, N * C, 1);
        fill((double[64 * 64]){0}, base, N * C, 1);
        memcpy(dinp, base, sizeof(float) * N * C);
        ln_ctx c = {N, C, 1e-5, g, b, r};
        fd_grad(ln_loss, &c, x, N * C, want);
        mch_layernorm_backward(dinp, rf, xf, gf, N, C, 1e-5f);
        assert_int_equal(check_grad("layernorm", dinp, 1, base, want, N * C), 0);
        checked++;
    }
    assert_int_equal(checked, 3);
}

/* Elementwise activations: loss = sum r f(x). */
typedef struct {
    double (*f)(double);
    const double *r;
    int n;
} ew_ctx;

static double ew_loss(const double *x, const void *vc)
{
    const ew_ctx *c = vc;
    double s = 0;
    for (int i = 0; i < c->n; i++) s += c->r[i] * c->f(x[i]);
    return s;
}

static double gelu_erf_ref(double x)
{
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}
static double gelu_tanh_ref(double x)
{
    return 0.5 * x * (1 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
}
static double relu_ref(double x)
{
    return x > 0 ? x : 0;
}

typedef void (*ew_backward)(float *, const float *, const float *, size_t);

/* n values in [-6, 6) plus a few far out (clamped exp/erf) and, for ReLU, none near 0; the
 * backward runs in place (dinp == dout), over more than one chunk. */
static void check_elementwise(const char *name, double (*f)(double), ew_backward bw)
{
    enum { n = 600 };
    static double x[n], r[n], want[n];
    static float xf[n], d[n];
    fill(x, NULL, n, 6);
    double far[] = {-30, -12, -9, 9, 12, 30};
    for (int i = 0; i < 6; i++) x[i] = far[i];
    for (int i = 0; i < n; i++) {
        if (f == relu_ref && fabs(x[i]) < 1e-3) x[i] = 0.5;
        xf[i] = (float)x[i];
    }
    fill(r, d, n, 1);
    ew_ctx c = {f, r, n};
    fd_grad(ew_loss, &c, x, n, want);
    bw(d, d, xf, n);
    assert_int_equal(check_grad(name, d, 1, NULL, want, n), 0);
}

static void test_activation_backwards_match_finite_differences(void **st)
{
    (void)st;
    check_elementwise("gelu_erf", gelu_erf_ref, mch_gelu_erf_backward);
    check_elementwise("gelu_tanh", gelu_tanh_ref, mch_gelu_tanh_backward);
    check_elementwise("relu", relu_ref, mch_relu_backward);
    check_elementwise("tanh", tanh, mch_tanh_backward);
}

/* Attention of one sequence: z = softmax(scale q k^T) v per head; x = [q | k | v], each (T, C). */
typedef struct {
    int T, NH, HS;
    const double *r; /* (T, C) */
} att_ctx;

static void att_ref(double *z, double *att, const double *x, const att_ctx *c)
{
    int T = c->T, C = c->NH * c->HS;
    const double *q = x, *k = x + T * C, *v = x + 2 * T * C;
    double scale = 1 / sqrt((double)c->HS);
    for (int h = 0; h < c->NH; h++)
        for (int i = 0; i < T; i++) {
            double *a = att + (h * T + i) * T, mx = -INFINITY, sum = 0;
            for (int j = 0; j < T; j++) {
                double s = 0;
                for (int d = 0; d < c->HS; d++)
                    s += q[i * C + h * c->HS + d] * k[j * C + h * c->HS + d];
                a[j] = s * scale;
                mx = a[j] > mx ? a[j] : mx;
            }
            for (int j = 0; j < T; j++) sum += a[j] = exp(a[j] - mx);
            for (int j = 0; j < T; j++) a[j] /= sum;
            for (int d = 0; d < c->HS; d++) {
                double s = 0;
                for (int j = 0; j < T; j++) s += a[j] * v[j * C + h * c->HS + d];
                z[i * C + h * c->HS + d] = s;
            }
        }
}

static double att_loss(const double *x, const void *vc)
{
    const att_ctx *c = vc;
    double z[8 * 12], att[3 * 8 * 8], s = 0;
    att_ref(z, att, x, c);
    for (int i = 0; i < c->T * c->NH * c->HS; i++) s += c->r[i] * z[i];
    return s;
}

/* Loss as a function of the pattern (NH, T, T) with v fixed: z = att v. */
typedef struct {
    const att_ctx *a;
    const double *v;
} pat_ctx;

static double pat_loss(const double *att, const void *vc)
{
    const pat_ctx *p = vc;
    const att_ctx *c = p->a;
    int T = c->T, C = c->NH * c->HS;
    double s = 0;
    for (int h = 0; h < c->NH; h++)
        for (int i = 0; i < T; i++)
            for (int d = 0; d < c->HS; d++) {
                double z = 0;
                for (int j = 0; j < T; j++)
                    z += att[(h * T + i) * T + j] * p->v[j * C + h * c->HS + d];
                s += c->r[i * C + h * c->HS + d] * z;
            }
    return s;
}

static void test_attention_backward_matches_finite_differences(void **st)
{
    (void)st;
    enum { T = 7, NH = 3, HS = 4, C = NH * HS, LD = C + 3 };
    double x[3 * T * C], r[T * C], want[3 * T * C], att[NH * T * T], wpat[NH * T * T];
    float in[3][T * LD], dz[T * LD], attf[NH * T * T], d[3][T * LD], base[3][T * C];
    float dpat[NH * T * T], dpre[T * T];
    fill(x, NULL, 3 * T * C, 1.5);
    fill(r, NULL, T * C, 1);
    for (int m = 0; m < 3; m++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < LD; i++) {
                in[m][t * LD + i] = i < C ? (float)x[m * T * C + t * C + i] : NAN;
                dz[t * LD + i] = i < C ? (float)r[t * C + i] : NAN;
                d[m][t * LD + i] = (float)(0.1 * (m + t - i)); /* accumulated onto */
                if (i < C) base[m][t * C + i] = d[m][t * LD + i];
            }
    att_ctx c = {T, NH, HS, r};
    double z[T * C];
    att_ref(z, att, x, &c);
    for (int i = 0; i < NH * T * T; i++) attf[i] = (float)att[i];
    fd_grad(att_loss, &c, x, 3 * T * C, want);
    pat_ctx pc = {&c, x + 2 * T * C};
    fd_grad(pat_loss, &pc, att, NH * T * T, wpat);
    mch_attention_backward(d[0], d[1], d[2], dpat, dpre, dz, in[0], in[1], in[2], attf, T, NH, HS,
                           LD);
    int bad = 0;
    const char *names[] = {"attention dq", "attention dk", "attention dv"};
    for (int m = 0; m < 3; m++)
        for (int t = 0; t < T; t++) {
            bad += check_grad(names[m], d[m] + t * LD, 1, base[m] + t * C, want + m * T * C + t * C,
                              C);
            for (int i = C; i < LD; i++)
                assert_true(d[m][t * LD + i] == (float)(0.1 * (m + t - i)));
        }
    bad += check_grad("attention dpattern", dpat, 1, NULL, wpat, NH * T * T);
    assert_int_equal(bad, 0);
}

/* Softmax rows: loss = sum r softmax(x). */
typedef struct {
    int R, T;
    const double *r;
} sm_ctx;

static void softmax_ref(double *y, const double *x, int R, int T)
{
    for (int i = 0; i < R; i++) {
        double sum = 0;
        for (int j = 0; j < T; j++) sum += exp(x[i * T + j]);
        for (int j = 0; j < T; j++) y[i * T + j] = exp(x[i * T + j]) / sum;
    }
}

static double sm_loss(const double *x, const void *vc)
{
    const sm_ctx *c = vc;
    double y[64], s = 0;
    softmax_ref(y, x, c->R, c->T);
    for (int i = 0; i < c->R * c->T; i++) s += c->r[i] * y[i];
    return s;
}

static void test_softmax_backward_matches_finite_differences(void **st)
{
    (void)st;
    enum { R = 4, T = 9 };
    double x[R * T], r[R * T], want[R * T], pd[R * T];
    float p[R * T], d[R * T];
    fill(x, NULL, R * T, 3);
    fill(r, d, R * T, 1);
    softmax_ref(pd, x, R, T);
    for (int i = 0; i < R * T; i++) p[i] = (float)pd[i];
    sm_ctx c = {R, T, r};
    fd_grad(sm_loss, &c, x, R * T, want);
    mch_softmax_backward(d, d, p, R, T, T); /* in place */
    assert_int_equal(check_grad("softmax", d, 1, NULL, want, R * T), 0);
}

/* Pooling and the dot product: loss = q . pool(x), x (T, C). */
typedef struct {
    int T, C, mean;
    const double *q;
} pool_ctx;

static double pool_loss(const double *x, const void *vc)
{
    const pool_ctx *c = vc;
    double s = 0;
    for (int i = 0; i < c->C; i++) {
        double e = 0;
        if (c->mean) {
            for (int t = 0; t < c->T; t++) e += x[t * c->C + i];
            e /= c->T;
        } else {
            e = x[i];
        }
        s += c->q[i] * e;
    }
    return s;
}

static void test_pooling_and_dot_backwards_match_finite_differences(void **st)
{
    (void)st;
    enum { T = 5, C = 6 };
    for (int mean = 0; mean < 2; mean++) {
        double x[T * C], q[C], want[T * C];
        float qf[C], demb[C], dx[T * C], base[T * C];
        fill(x, NULL, T * C, 1);
        fill(q, qf, C, 1);
        fill((double[T *C]){0}, base, T * C, 1);
        memcpy(dx, base, sizeof dx);
        pool_ctx c = {T, C, mean, q};
        fd_grad(pool_loss, &c, x, T * C, want);
        for (int i = 0; i < C; i++) demb[i] = 0.5f; /* accumulated onto */
        mch_dot_backward(demb, qf, 2.0f, C);        /* d(2 s) = 2 q */
        for (int i = 0; i < C; i++) demb[i] = (demb[i] - 0.5f) / 2.0f;
        if (mean)
            mch_mean_pool_backward(dx, demb, T, C);
        else
            mch_cls_pool_backward(dx, demb, C);
        assert_int_equal(check_grad(mean ? "mean pool" : "cls pool", dx, 1, base, want, T * C), 0);
    }
}

/* The embeddings' LayerNorm over E then ELECTRA's projection E -> C, chained from the two ops. */
typedef struct {
    ln_ctx ln;
    lin_ctx lin;
} emb_ctx;

static double emb_loss(const double *x, const void *vc)
{
    const emb_ctx *c = vc;
    double y[4 * 16];
    ln_ref(y, x, &c->ln);
    return lin_loss(y, &c->lin);
}

static void test_embedding_layernorm_and_projection_backward(void **st)
{
    (void)st;
    enum { N = 4, E = 16, C = 24 };
    double x[N * E], g[E], b[E], w[C * E], pb[C], r[N * C], want[N * E];
    float xf[N * E], gf[E], wf[C * E], rf[N * C], dy[N * E] = {0}, dx[N * E] = {0};
    fill(x, xf, N * E, 2);
    fill(g, gf, E, 1.5);
    fill(b, NULL, E, 1);
    fill(w, wf, C * E, 0.5);
    fill(pb, NULL, C, 1);
    fill(r, rf, N * C, 1);
    emb_ctx c = {{N, E, 1e-12, g, b, NULL}, {N, E, C, w, pb, r}};
    fd_grad(emb_loss, &c, x, N * E, want);
    mch_linear_backward(dy, E, rf, C, wf, N, E, C);
    mch_layernorm_backward(dx, dy, xf, gf, N, E, 1e-12f);
    assert_int_equal(check_grad("embeddings", dx, 1, NULL, want, N * E), 0);
}

/* ---- the whole pass ----------------------------------------------------------------------- */

#define MAXT 128
/* Our own, stricter check of every estimated change (estimate - score_baseline, each side with
 * its own baseline) beside the fixture's tolerance on the scores: the float32 pass reproduces
 * the float64 changes to within about 0.5 of this bound here (4x margin for other BLAS kernels). */
#define CHG_ATOL 1e-6
#define CHG_RTOL 2e-3
#define DEMO MCH_TEST_DATA "/../../examples/demo-ce"
#define DOT MCH_TEST_DATA "/models/distilbert-dot-tiny"

/* A hook that copies a site's activation of every layer into buf (L, floats). */
typedef struct {
    const mch_config *cfg;
    mch_site site;
    float *buf;
    size_t plane;
} grab_ctx;

static int grab(void *user, const mch_act_view *v)
{
    grab_ctx *g = user;
    memcpy(g->buf + (size_t)v->layer * g->plane, v->data,
           mch_site_floats(g->cfg, g->site, v->T) * sizeof(float));
    return 0;
}

/* A hook that sets the component's activation to a_b + x d, d = a_p - a_b, or to a + x d for
 * the whole site (row and head -1). */
typedef struct {
    const float *a, *d;
    double x;
    int row, head; /* -1: all */
    size_t n;      /* floats of the site */
} shift_ctx;

static int shift(void *user, const mch_act_view *v)
{
    shift_ctx *s = user;
    if (s->row < 0 && s->head < 0) {
        for (size_t i = 0; i < s->n; i++) v->data[i] = (float)(s->a[i] + s->x * s->d[i]);
        return 0;
    }
    for (int t = 0; t < v->T; t++) {
        if (s->row >= 0 && t != s->row) continue;
        int c0 = s->head < 0 ? 0 : s->head * v->HS, c1 = s->head < 0 ? v->C : c0 + v->HS;
        for (int c = c0; c < c1; c++) {
            size_t i = (size_t)t * v->C + c;
            v->data[i] = (float)(s->a[i] + s->x * s->d[i]);
        }
    }
    return 0;
}

/* Token ids of a fixture case (at most MAXT). */
static int ids_of(const cJSON *c, const char *key, int32_t *out)
{
    int n = tu_ids(c, key, out, MAXT);
    assert_true(n > 0);
    return n;
}

/* The score of ids with opts' hooks: the logit, or the dot product with q (bi-encoder). */
static float score_of(const mch_model *m, mch_workspace *ws, const int32_t *ids,
                      const int32_t *types, int T, const mch_hooks *hooks, mch_pooling pool,
                      const float *q)
{
    mch_err err = {0};
    mch_batch bt = {1, T, ids, types, &T};
    mch_forward_opts o = {hooks, 0, NULL, pool};
    float s = 0, emb[512];
    mch_forward_out out = {q ? NULL : &s, NULL, q ? emb : NULL};
    if (mch_forward(m, ws, &bt, &o, &out, &err)) fail_msg("forward: %s", err.msg);
    if (!q) return s;
    double dot = 0;
    for (int i = 0; i < m->cfg.C; i++) dot += (double)q[i] * emb[i];
    return (float)dot;
}

/* Five-point difference of the score along the shift's direction, step e. */
static double fd5(const mch_model *m, mch_workspace *ws, mch_hooks *h, shift_ctx *s, double e,
                  const int32_t *ids, const int32_t *types, int T, mch_pooling pool, const float *q)
{
    double f[4], xs[4] = {e, -e, 2 * e, -2 * e};
    for (int i = 0; i < 4; i++) {
        s->x = xs[i];
        f[i] = score_of(m, ws, ids, types, T, h, pool, q);
    }
    return (8 * (f[0] - f[1]) - (f[2] - f[3])) / (12 * e);
}

static const char *block_names[3] = {"resid_pre", "attn_out", "mlp_out"};

/* The gradient against the golden fixtures' finite_difference components (tests/data/patching/
 * atp; the whole estimate maps are kernels/atp.c's, checked in test_atp): per case the
 * baseline's backward and the perturbed run's activations by hooks give each component's slope
 * sum (a_p - a_b) g, compared with the golden float64 slope and, for the cross-encoder, with a
 * float32 finite difference of the real forward. */
static void run_slope_fixture(const char *model_dir, const char *fixture)
{
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, model_dir, &err), MCH_OK);
    const mch_config *cfg = &m->cfg;
    int L = cfg->L, HS = cfg->HS, C = cfg->C, bi = cfg->head == MCH_HEAD_NONE;
    cJSON *g = tu_read_json(fixture);
    assert_non_null(g);
    mch_backward *bw = NULL;
    assert_int_equal(mch_backward_create(&bw, m, MAXT, MCH_POOL_CLS, &err), MCH_OK);
    mch_workspace *ws = mch_workspace_create(m, MAXT, MAXT);
    mch_hooks *hooks = mch_hooks_create(L);
    assert_non_null(ws);
    assert_non_null(hooks);
    size_t plane = (size_t)MAXT * C;
    float *ap = malloc(4 * (size_t)L * plane * sizeof(float));
    mch_site sites[4] = {MCH_SITE_Z, MCH_SITE_RESID_PRE, MCH_SITE_ATTN_OUT, MCH_SITE_MLP_OUT};
    grab_ctx gc[4];
    for (int s = 0; s < 4; s++) {
        gc[s] = (grab_ctx){cfg, sites[s], ap + (size_t)s * L * plane, plane};
        for (int l = 0; l < L; l++)
            assert_int_equal(mch_hooks_add(hooks, sites[s], l, grab, &gc[s], &err), MCH_OK);
    }
    long bad = 0, slopes = 0, fd_checked = 0;
    int ci = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
    {
        int32_t base[MAXT], pert[MAXT], types[MAXT], qids[MAXT];
        int T = ids_of(c, "ids_baseline", base);
        assert_int_equal(ids_of(c, "ids_perturbed", pert), T);
        assert_int_equal(ids_of(c, "token_types", types), T);
        float q[512], sb = 0;
        if (bi) {
            int Tq = ids_of(c, "query_ids", qids);
            mch_batch bt = {1, Tq, qids, NULL, &Tq};
            mch_forward_opts o = {NULL, 0, NULL, MCH_POOL_CLS};
            mch_forward_out out = {NULL, NULL, q};
            assert_int_equal(mch_forward(m, ws, &bt, &o, &out, &err), MCH_OK);
        }
        const int32_t *ty = bi ? NULL : types;
        if (mch_backward_run(bw, T, base, ty, bi ? q : NULL, &sb, &err))
            fail_msg("backward: %s", err.msg);
        assert_int_equal(mch_backward_tokens(bw), T);
        score_of(m, ws, pert, ty, T, hooks, MCH_POOL_CLS, bi ? q : NULL);
        assert_true(
            tu_close(sb, cJSON_GetObjectItem(c, "score_baseline")->valuedouble, 1e-5, 1e-5));
        const cJSON *fd;
        cJSON_ArrayForEach(fd, cJSON_GetObjectItem(c, "finite_difference"))
        {
            const char *comp = cJSON_GetObjectItem(fd, "component")->valuestring;
            char site[32];
            int l = 0, h = -1, t = -1, k = 0;
            if (sscanf(comp, "head %d.%d", &l, &h) == 2) {
                k = 0;
            } else {
                assert_int_equal(sscanf(comp, "%31s %d %d", site, &l, &t), 3);
                for (k = 1; k <= 3 && strcmp(site, block_names[k - 1]); k++) continue;
                assert_true(k <= 3);
            }
            mch_site st = sites[k];
            const float *ab = mch_backward_activation(bw, st, l),
                        *gg = mch_backward_grad(bw, st, l), *pa = gc[k].buf + l * plane;
            static float d[MAXT * 512];
            double slope = 0;
            for (size_t i = 0; i < (size_t)T * C; i++) {
                d[i] = pa[i] - ab[i];
                int ti = (int)(i / C), hi = (int)(i % C) / HS;
                if ((t < 0 || ti == t) && (h < 0 || hi == h)) slope += (double)d[i] * gg[i];
            }
            double want_slope = cJSON_GetObjectItem(fd, "slope")->valuedouble;
            if (!tu_close(slope, want_slope, CHG_ATOL, CHG_RTOL)) {
                fprintf(stderr, "MISMATCH case %d %s slope: got %.9g want %.9g\n", ci, comp, slope,
                        want_slope);
                bad++;
            }
            slopes++;
            if (bi) continue; /* float32 rounding of scores near 30 leaves too few digits */
            shift_ctx sc = {ab, d, 0, t, h, 0};
            mch_hooks *one = mch_hooks_create(L);
            assert_int_equal(mch_hooks_add(one, st, l, shift, &sc, &err), MCH_OK);
            double f = fd5(m, ws, one, &sc, 0.03, base, ty, T, MCH_POOL_CLS, NULL);
            mch_hooks_free(one);
            printf("case %d %-16s slope %.6f  float fd %.6f  golden %.6f\n", ci, comp, slope, f,
                   want_slope);
            if (!tu_close(f, slope, 5e-5, 2e-3)) bad++; /* float rounding / e, and e^4 */
            fd_checked++;
        }
        ci++;
    }
    printf("%s: %d cases, %ld slopes against golden ones, %ld float finite differences\n", fixture,
           ci, slopes, fd_checked);
    assert_true(ci > 0);
    assert_true(slopes > 0);
    if (!bi) assert_true(fd_checked > 0);
    assert_int_equal(bad, 0);
    free(ap);
    mch_hooks_free(hooks);
    mch_workspace_free(ws);
    mch_backward_free(bw);
    cJSON_Delete(g);
    mch_model_close(m);
}

static void test_demo_slopes_match_golden_and_finite_differences(void **st)
{
    (void)st;
    run_slope_fixture(DEMO, MCH_TEST_DATA "/patching/atp/demo-atp.json");
}

static void test_biencoder_slopes_match_golden(void **st)
{
    (void)st;
    run_slope_fixture(DOT, MCH_TEST_DATA "/patching/atp/distilbert-dot-atp.json");
}

/* Every hook site of every layer of each architecture (BERT erf and tanh GELU, DistilBERT,
 * ELECTRA with its projection and 2 labels, the bi-encoder with CLS and mean pooling): the
 * directional derivative sum(d g) along a random d over the whole site against a five-point
 * float finite difference of the real forward. */
static void check_all_sites(const char *dir, mch_pooling pool)
{
    mch_err err = {0};
    mch_model *m = NULL;
    assert_int_equal(mch_model_open(&m, dir, &err), MCH_OK);
    const mch_config *cfg = &m->cfg;
    int bi = cfg->head == MCH_HEAD_NONE, T = 11, checked = 0, strong = 0;
    double worst = 0;
    int32_t ids[16], types[16];
    for (int t = 0; t < T; t++) {
        ids[t] = t == 0 ? 101 : t == T - 1 ? 102 : 1000 + (int32_t)((urand(1) + 1) * 5000);
        types[t] = cfg->type_vocab > 1 && t > 4;
    }
    float q[512];
    for (int i = 0; i < cfg->C; i++) q[i] = (float)urand(1);
    mch_backward *bw = NULL;
    assert_int_equal(mch_backward_create(&bw, m, 16, pool, &err), MCH_OK);
    mch_workspace *ws = mch_workspace_create(m, 16, 16);
    float sb = 0;
    assert_int_equal(mch_backward_run(bw, T, ids, types, bi ? q : NULL, &sb, &err), MCH_OK);
    assert_true(sb == score_of(m, ws, ids, types, T, NULL, pool, bi ? q : NULL));
    /* The finer sites (hook_attn_scores, hook_result, mlp.hook_pre/post) have no gradient. */
    for (int s = MCH_SITE_ATTN_SCORES; s < MCH_SITE_COUNT; s++)
        assert_null(mch_backward_grad(bw, (mch_site)s, 0));
    for (int s = 0; s < MCH_SITE_ATTN_SCORES; s++)
        for (int l = 0; l < cfg->L; l++) {
            if (s == MCH_SITE_FULL_EMBED && l > 0) continue;
            const float *a = mch_backward_activation(bw, (mch_site)s, l);
            const float *gg = mch_backward_grad(bw, (mch_site)s, l);
            assert_non_null(a);
            assert_non_null(gg);
            size_t n = mch_site_floats(cfg, (mch_site)s, T);
            float d[4 * 16 * 16 * 4 + 16 * 64];
            double slope = 0, mag = 0;
            for (size_t i = 0; i < n; i++) {
                d[i] = (float)urand(1);
                slope += (double)d[i] * gg[i];
                mag += fabs((double)d[i] * gg[i]);
            }
            shift_ctx sc = {a, d, 0, -1, -1, n};
            mch_hooks *one = mch_hooks_create(cfg->L);
            assert_int_equal(mch_hooks_add(one, (mch_site)s, l, shift, &sc, &err), MCH_OK);
            double f = fd5(m, ws, one, &sc, 1e-2, ids, types, T, pool, bi ? q : NULL);
            mch_hooks_free(one);
            char name[64];
            /* float rounding of the score, divided by the step, plus a part of the slope */
            double tol = 3e-5 * (fabs(sb) + 0.1) + 1e-3 * mag;
            if (fabs(f - slope) > tol)
                fail_msg("%s %s: slope %.7g, float finite difference %.7g (tolerance %.3g)", dir,
                         mch_hook_name((mch_site)s, l, name, sizeof name), slope, f, tol);
            worst = fmax(worst, fabs(f - slope) / tol);
            strong += fabs(slope) > 10 * tol;
            checked++;
        }
    printf("%s: %d hook points checked (%d with |slope| > 10 tolerances), score %.6g, worst "
           "error %.2f tolerances\n",
           dir, checked, strong, sb, worst);
    assert_true(checked >= MCH_SITE_ATTN_SCORES);
    mch_workspace_free(ws);
    mch_backward_free(bw);
    mch_model_close(m);
}

static void test_every_site_of_every_architecture_matches_finite_differences(void **st)
{
    (void)st;
    check_all_sites(MCH_TEST_DATA "/models/bert-ce-tiny", MCH_POOL_CLS);
    check_all_sites(MCH_TEST_DATA "/models/bert-ce-tiny-gelu-tanh", MCH_POOL_CLS);
    check_all_sites(MCH_TEST_DATA "/models/distilbert-ce-tiny", MCH_POOL_CLS);
    check_all_sites(MCH_TEST_DATA "/models/electra-ce-tiny", MCH_POOL_CLS);
    check_all_sites(DOT, MCH_POOL_CLS);
    check_all_sites(DOT, MCH_POOL_MEAN);
}

static void test_backward_refuses_bad_runs(void **st)
{
    (void)st;
    mch_err err = {0};
    mch_model *m = NULL, *dot = NULL;
    assert_int_equal(mch_model_open(&m, MCH_TEST_DATA "/models/bert-ce-tiny", &err), MCH_OK);
    assert_int_equal(mch_model_open(&dot, DOT, &err), MCH_OK);
    mch_backward *bw = NULL, *bb = NULL;
    assert_int_equal(mch_backward_create(&bw, m, 0, MCH_POOL_CLS, &err), MCH_ERR_ARG);
    err = (mch_err){0};
    assert_int_equal(mch_backward_create(&bw, m, 513, MCH_POOL_CLS, &err), MCH_ERR_ARG);
    assert_int_equal(mch_backward_create(&bw, m, 8, MCH_POOL_CLS, &err), MCH_OK);
    int32_t ids[9] = {101, 2000, 2001, 102, 2002, 102, 7, 8, 9};
    float s = 0;
    assert_null(mch_backward_grad(bw, MCH_SITE_Z, 0)); /* before a run */
    err = (mch_err){0};
    assert_int_equal(mch_backward_run(bw, 9, ids, NULL, NULL, &s, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "9 tokens"));
    err = (mch_err){0};
    assert_int_equal(mch_backward_run(bw, 6, ids, NULL, NULL, &s, &err), MCH_OK);
    assert_non_null(mch_backward_grad(bw, MCH_SITE_Z, 1));
    assert_null(mch_backward_grad(bw, MCH_SITE_Z, 2));
    ids[2] = 40000; /* outside the vocabulary: refused by the forward, no gradient left */
    err = (mch_err){0};
    assert_int_equal(mch_backward_run(bw, 6, ids, NULL, NULL, &s, &err), MCH_ERR_ARG);
    assert_null(mch_backward_grad(bw, MCH_SITE_Z, 1));
    assert_int_equal(mch_backward_tokens(bw), 0);
    err = (mch_err){0};
    assert_int_equal(mch_backward_create(&bb, dot, 8, MCH_POOL_CLS, &err), MCH_OK);
    ids[2] = 2001;
    err = (mch_err){0};
    assert_int_equal(mch_backward_run(bb, 6, ids, NULL, NULL, &s, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "query"));
    mch_backward_free(bb);
    mch_backward_free(bw);
    mch_backward_free(NULL);
    mch_model_close(dot);
    mch_model_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_backward_matches_finite_differences),
        cmocka_unit_test(test_layernorm_backward_matches_finite_differences),
        cmocka_unit_test(test_activation_backwards_match_finite_differences),
        cmocka_unit_test(test_softmax_backward_matches_finite_differences),
        cmocka_unit_test(test_attention_backward_matches_finite_differences),
        cmocka_unit_test(test_pooling_and_dot_backwards_match_finite_differences),
        cmocka_unit_test(test_embedding_layernorm_and_projection_backward),
        cmocka_unit_test(test_demo_slopes_match_golden_and_finite_differences),
        cmocka_unit_test(test_biencoder_slopes_match_golden),
        cmocka_unit_test(test_every_site_of_every_architecture_matches_finite_differences),
        cmocka_unit_test(test_backward_refuses_bad_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
