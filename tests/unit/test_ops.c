/* Unit tests of the tensor kernels (kernels/ops.c): the vectorised exp, erf, tanh GELU and
 * softmax against libm in double over dense sweeps with asserted error bounds, LayerNorm against
 * a double reference, and the invariant that an element's result does not depend on its
 * position in the array (vector body and padded tail give the same bits). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops.h"

/* Points of each sweep. The bounds were measured with these sweeps (docs/PERFORMANCE.md) and
 * carry a margin of about 1.5x; the libm figures are the float libm path the kernels replaced. */
#define SWEEP_POINTS 1000001
#define ERF_MAX_ABS_ERR 1.75e-7      /* measured 1.17e-7; libm erff: 4.9e-8 */
#define EXP_MAX_REL_ERR 1.5e-7       /* measured 8.2e-8 (8.4e-8 clang -march=native) */
#define GELU_ERF_MAX_ABS_ERR 7.5e-7  /* measured 5.1e-7; with libm erff: 4.5e-7 */
#define GELU_ERF_MAX_REL_ERR 2.5e-7  /* x > 0; measured 1.5e-7; with libm erff: 1.2e-7 */
#define GELU_TANH_MAX_ABS_ERR 7.5e-7 /* measured 4.3e-7; with libm tanhf: 4.3e-7 */

typedef struct {
    double max_err;
    double at;
    double got, want;
} sweep_result;

static void track(sweep_result *r, double err, double x, double got, double want)
{
    if (err > r->max_err || isnan(err)) {
        r->max_err = isnan(err) ? INFINITY : err;
        r->at = x;
        r->got = got;
        r->want = want;
    }
}

static void report(const char *what, const sweep_result *r, double bound)
{
    printf("  %-28s max error %.3g at x = %.9g (got %.9g, libm %.9g); bound %.3g\n", what,
           r->max_err, r->at, r->got, r->want, bound);
}

/* n points evenly spaced over [lo, hi], as floats. */
static float *sweep(double lo, double hi, size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * (double)i / (double)(n - 1));
    return x;
}

static double gelu_erf_ref(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double gelu_tanh_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

static void test_erf_abs_error_within_bound_over_dense_sweep(void **state)
{
    (void)state;
    float *x = sweep(-10, 10, SWEEP_POINTS), *y = malloc(SWEEP_POINTS * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, SWEEP_POINTS * sizeof *y);
    mch_erf_forward(y, SWEEP_POINTS);
    sweep_result r = {0};
    for (size_t i = 0; i < SWEEP_POINTS; i++) {
        double want = erf((double)x[i]);
        track(&r, fabs(y[i] - want), x[i], y[i], want);
    }
    report("erf [-10, 10]", &r, ERF_MAX_ABS_ERR);
    assert_true(r.max_err <= ERF_MAX_ABS_ERR);
    free(x);
    free(y);
}

static void test_erf_is_odd_and_saturates(void **state)
{
    (void)state;
    float v[6] = {0.0f, 0.3f, -0.3f, 4.0f, 1e30f, -INFINITY};
    mch_erf_forward(v, 6);
    assert_true(v[0] == 0.0f);
    assert_true(v[1] == -v[2]);
    assert_true(v[3] == 1.0f);
    assert_true(v[4] == 1.0f);
    assert_true(v[5] == -1.0f);
}

static void test_exp_rel_error_within_bound_over_dense_sweep(void **state)
{
    (void)state;
    /* The whole finite, normal range of expf. */
    float *x = sweep(-87.3, 88.7, SWEEP_POINTS), *y = malloc(SWEEP_POINTS * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, SWEEP_POINTS * sizeof *y);
    mch_exp_forward(y, SWEEP_POINTS);
    sweep_result r = {0};
    for (size_t i = 0; i < SWEEP_POINTS; i++) {
        double want = exp((double)x[i]);
        track(&r, fabs(y[i] - want) / want, x[i], y[i], want);
    }
    report("exp [-87.3, 88.7] (relative)", &r, EXP_MAX_REL_ERR);
    assert_true(r.max_err <= EXP_MAX_REL_ERR);
    free(x);
    free(y);
}

static void test_exp_limits(void **state)
{
    (void)state;
    float v[5] = {0.0f, -100.0f, -INFINITY, 89.0f, 1.0f};
    mch_exp_forward(v, 5);
    assert_true(v[0] == 1.0f);
    assert_true(v[1] == 0.0f);
    assert_true(v[2] == 0.0f);
    assert_true(isinf(v[3]) && v[3] > 0);
    assert_true(fabs(v[4] - 2.71828182845904524) <= 1e-6);
}

static void test_nan_stays_nan(void **state)
{
    (void)state;
    void (*fns[])(float *, size_t) = {mch_gelu_erf_forward, mch_gelu_tanh_forward, mch_exp_forward,
                                      mch_erf_forward};
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        float v[3] = {1.0f, NAN, -1.0f};
        fns[f](v, 3);
        if (!isnan(v[1]) || isnan(v[0]) || isnan(v[2]))
            fail_msg("kernel %zu: NaN in gave %g, neighbours %g %g", f, (double)v[1], (double)v[0],
                     (double)v[2]);
    }
}

static void test_gelu_erf_error_within_bound_over_dense_sweep(void **state)
{
    (void)state;
    float *x = sweep(-10, 10, SWEEP_POINTS), *y = malloc(SWEEP_POINTS * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, SWEEP_POINTS * sizeof *y);
    mch_gelu_erf_forward(y, SWEEP_POINTS);
    sweep_result ra = {0}, rr = {0};
    for (size_t i = 0; i < SWEEP_POINTS; i++) {
        double want = gelu_erf_ref((double)x[i]), err = fabs(y[i] - want);
        track(&ra, err, x[i], y[i], want);
        if (x[i] > 0) track(&rr, err / want, x[i], y[i], want);
    }
    report("gelu_erf [-10, 10]", &ra, GELU_ERF_MAX_ABS_ERR);
    report("gelu_erf x > 0 (relative)", &rr, GELU_ERF_MAX_REL_ERR);
    assert_true(ra.max_err <= GELU_ERF_MAX_ABS_ERR);
    assert_true(rr.max_err <= GELU_ERF_MAX_REL_ERR);
    free(x);
    free(y);
}

static void test_gelu_tanh_error_within_bound_over_dense_sweep(void **state)
{
    (void)state;
    float *x = sweep(-10, 10, SWEEP_POINTS), *y = malloc(SWEEP_POINTS * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, SWEEP_POINTS * sizeof *y);
    mch_gelu_tanh_forward(y, SWEEP_POINTS);
    sweep_result r = {0};
    for (size_t i = 0; i < SWEEP_POINTS; i++) {
        double want = gelu_tanh_ref((double)x[i]);
        track(&r, fabs(y[i] - want), x[i], y[i], want);
    }
    report("gelu_tanh [-10, 10]", &r, GELU_TANH_MAX_ABS_ERR);
    assert_true(r.max_err <= GELU_TANH_MAX_ABS_ERR);
    free(x);
    free(y);
}

/* Every element gives the same bits whether it falls in the vector body or the padded tail. */
static void test_elementwise_result_does_not_depend_on_position(void **state)
{
    (void)state;
    enum { N = 67 };
    float base[N];
    for (int i = 0; i < N; i++) base[i] = -6.0f + 0.173f * (float)i;
    void (*fns[])(float *, size_t) = {mch_gelu_erf_forward, mch_gelu_tanh_forward, mch_exp_forward,
                                      mch_erf_forward};
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        float all[N];
        memcpy(all, base, sizeof all);
        fns[f](all, N);
        for (int i = 0; i < N; i++) {
            for (int len = 1; len <= 3 && i + len <= N; len++) {
                float part[3];
                memcpy(part, base + i, (size_t)len * sizeof *part);
                fns[f](part, (size_t)len);
                if (memcmp(&part[0], &all[i], sizeof(float)) != 0)
                    fail_msg("kernel %zu element %d: %.9g alone, %.9g in the array", f, i,
                             (double)part[0], (double)all[i]);
            }
        }
    }
}

static void test_softmax_rows_match_double_reference(void **state)
{
    (void)state;
    int lengths[] = {1, 3, 7, 16, 37, 128, 131};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        int T = lengths[k], R = 5, ld = T + 3;
        float *a = malloc((size_t)R * ld * sizeof *a);
        double *ref = malloc((size_t)T * sizeof *ref);
        assert_non_null(a);
        assert_non_null(ref);
        for (int i = 0; i < R * ld; i++) a[i] = (float)(10.0 * sin(0.37 * i + k));
        for (int r = 0; r < R; r++) a[(size_t)r * ld + T + 1] = 1234.5f; /* past the row */
        float *orig = malloc((size_t)R * ld * sizeof *orig);
        assert_non_null(orig);
        memcpy(orig, a, (size_t)R * ld * sizeof *orig);
        mch_softmax_rows(a, R, T, ld);
        for (int r = 0; r < R; r++) {
            const float *x = orig + (size_t)r * ld;
            double mx = x[0], s = 0;
            for (int t = 1; t < T; t++) mx = x[t] > mx ? x[t] : mx;
            for (int t = 0; t < T; t++) s += (ref[t] = exp((double)x[t] - mx));
            for (int t = 0; t < T; t++) {
                double want = ref[t] / s, got = a[(size_t)r * ld + t];
                if (fabs(got - want) > 1e-7 + 1e-6 * want)
                    fail_msg("softmax T %d row %d col %d: got %.9g want %.9g", T, r, t, got, want);
            }
            for (int t = T; t < ld; t++) assert_true(a[(size_t)r * ld + t] == x[t]);
        }
        free(a);
        free(ref);
        free(orig);
    }
}

static void test_layernorm_matches_double_reference_in_place(void **state)
{
    (void)state;
    int widths[] = {1, 5, 37, 384};
    for (size_t k = 0; k < sizeof widths / sizeof widths[0]; k++) {
        int N = 3, C = widths[k];
        float *x = malloc((size_t)N * C * sizeof *x), *y = malloc((size_t)N * C * sizeof *y);
        float *g = malloc((size_t)C * sizeof *g), *b = malloc((size_t)C * sizeof *b);
        assert_true(x && y && g && b);
        for (int i = 0; i < N * C; i++) x[i] = (float)(3.0 + 2.0 * cos(1.3 * i));
        for (int c = 0; c < C; c++) {
            g[c] = (float)(1.0 + 0.1 * sin(c));
            b[c] = (float)(0.05 * c);
        }
        memcpy(y, x, (size_t)N * C * sizeof *y);
        mch_layernorm_forward(y, y, g, b, N, C, 1e-12f);
        for (int n = 0; n < N; n++) {
            const float *r = x + (size_t)n * C;
            double mean = 0, var = 0;
            for (int c = 0; c < C; c++) mean += r[c];
            mean /= C;
            for (int c = 0; c < C; c++) var += (r[c] - mean) * (r[c] - mean);
            double rstd = 1.0 / sqrt(var / C + 1e-12);
            for (int c = 0; c < C; c++) {
                double want = (r[c] - mean) * rstd * g[c] + b[c];
                double got = y[(size_t)n * C + c];
                if (fabs(got - want) > 1e-5 + 1e-5 * fabs(want))
                    fail_msg("layernorm C %d row %d col %d: got %.9g want %.9g", C, n, c, got,
                             want);
            }
        }
        free(x);
        free(y);
        free(g);
        free(b);
    }
}

static void test_add_inplace_adds_every_element(void **state)
{
    (void)state;
    enum { N = 53 };
    float out[N], a[N];
    for (int i = 0; i < N; i++) {
        out[i] = (float)i;
        a[i] = 0.5f * (float)i;
    }
    mch_add_inplace(out, a, N);
    for (int i = 0; i < N; i++) assert_true(out[i] == 1.5f * (float)i);
}

static void test_add_forward_sums_every_element(void **state)
{
    (void)state;
    enum { N = 53 };
    float out[N], a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = 0.25f * (float)i;
        out[i] = -1.0f;
    }
    mch_add_forward(out, a, b, N);
    for (int i = 0; i < N; i++) assert_true(out[i] == 1.25f * (float)i);
    mch_add_forward(a, a, b, N); /* out may be a */
    for (int i = 0; i < N; i++) assert_true(a[i] == 1.25f * (float)i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erf_abs_error_within_bound_over_dense_sweep),
        cmocka_unit_test(test_erf_is_odd_and_saturates),
        cmocka_unit_test(test_exp_rel_error_within_bound_over_dense_sweep),
        cmocka_unit_test(test_exp_limits),
        cmocka_unit_test(test_nan_stays_nan),
        cmocka_unit_test(test_gelu_erf_error_within_bound_over_dense_sweep),
        cmocka_unit_test(test_gelu_tanh_error_within_bound_over_dense_sweep),
        cmocka_unit_test(test_elementwise_result_does_not_depend_on_position),
        cmocka_unit_test(test_softmax_rows_match_double_reference),
        cmocka_unit_test(test_layernorm_matches_double_reference_in_place),
        cmocka_unit_test(test_add_inplace_adds_every_element),
        cmocka_unit_test(test_add_forward_sums_every_element),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
