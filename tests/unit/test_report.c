/* `mechir report` from a map built, packed and validated here: every string a map carries
 * (architecture, model path, perturbation, sites, provenance, stratum names) is escaped in every
 * HTML and SVG file; components.csv holds the ratio of means and the mean of ratios of a head
 * recomputed here from the pairs (two-pass), the normal-approximation interval at the map's level
 * with z computed independently, the bootstrap interval of the map, and head-pos rows. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmap.h"
#include "perturb.h"
#include "report.h"
#include "testutil.h"

#define L 2
#define NH 3
#define NPAIRS 24
#define TOK 6

typedef struct {
    mch_pair_result r;
    int32_t ids[TOK];
    uint8_t roles[TOK];
    float heads[L * NH], heads_scores[L * NH], blocks[3 * L * TOK], hp[TOK];
} fake_pair;

static fake_pair pairs[NPAIRS];
static uint64_t rs = 0x9e3779b97f4a7c15ULL;
static double rnd(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}

/* Pairs whose head effects are (patched - baseline) / (perturbed - baseline) of their scores. */
static void make_pairs(void)
{
    for (int i = 0; i < NPAIRS; i++) {
        fake_pair *p = &pairs[i];
        mch_pair_input *in = &p->r.pair;
        in->index = (uint64_t)i;
        in->pair_id = 7919ULL * (uint64_t)(i + 1);
        in->T = TOK;
        in->ids_baseline = in->ids_perturbed = in->token_types = p->ids;
        for (int t = 0; t < TOK; t++) p->roles[t] = (uint8_t)(t % MCH_ROLE_COUNT);
        in->roles = p->roles;
        in->relevance = i % 2;
        in->rank = 1 + i;
        in->qid = in->docno = in->term = (char *)"x";
        double base = rnd(), pert = base + 0.25 + rnd();
        p->r.score_baseline = base;
        p->r.score_perturbed = pert;
        p->r.n_heads = L * NH;
        p->r.heads = p->heads;
        p->r.heads_scores = p->heads_scores;
        for (int k = 0; k < L * NH; k++) {
            p->heads_scores[k] = (float)(base + (rnd() * 1.4 - 0.2) * (pert - base));
            p->heads[k] = (float)((p->heads_scores[k] - base) / (pert - base));
        }
        p->r.n_blocks = 3 * L * TOK;
        p->r.blocks = p->r.blocks_scores = p->blocks;
        for (int k = 0; k < 3 * L * TOK; k++) p->blocks[k] = (float)rnd();
        p->r.n_head_pos_z = p->r.n_head_pos_pattern = TOK;
        p->r.head_pos_z = p->r.head_pos_z_scores = p->hp;
        p->r.head_pos_pattern = p->r.head_pos_pattern_scores = p->hp;
        for (int k = 0; k < TOK; k++) p->hp[k] = (float)rnd();
    }
}

#define HOSTILE_ARCH "<script>alert(1)</script>"
#define HOSTILE_MODEL "\"><img src=x onerror=alert(2)>"
#define HOSTILE_PERT "tfc1<svg onload=alert(3)>"
#define HOSTILE_SITE "<iframe src=javascript:alert(4)>"
#define HOSTILE_BLAS "<script>alert(5)</script> OpenBLAS"
#define HOSTILE_STRATUM "relevance=<script>alert(6)</script>"

/* A map of every pair whose strings are markup, packed and unpacked (validated) as a .cmap from
 * another site would be. */
static void hostile_map(mch_cmap *m)
{
    static uint32_t hp[2] = {1, 2};
    static char *sweeps[3] = {"heads", "blocks", "head-pos"};
    mch_job_spec s = {0};
    s.model_path = HOSTILE_MODEL;
    s.model_sha256 = "abc";
    s.arch = "bert";
    s.architecture = HOSTILE_ARCH;
    s.layers = L, s.heads = NH;
    s.vocab_hash = "v";
    s.perturbation = HOSTILE_PERT;
    s.n_sweeps = 3, s.sweeps = sweeps;
    s.n_head_pos = 1, s.head_pos = hp;
    s.max_len = 64;
    s.position = "end", s.filler = "a", s.pooling = "cls";
    s.direction = "any", s.select = "";
    s.software_version = "<b>v</b>";
    s.bootstrap = 40, s.ci_level = 0.9, s.seed = 3;
    mch_cmap_acc a;
    mch_cmap built;
    mch_err err = {0};
    assert_int_equal(mch_cmap_acc_init(&a, &s, &err), MCH_OK);
    for (int i = 0; i < NPAIRS; i++)
        assert_int_equal(mch_cmap_acc_add(&a, &pairs[i].r, &err), MCH_OK);
    const char *sites[1] = {HOSTILE_SITE}, *prov[1] = {HOSTILE_BLAS};
    assert_int_equal(mch_cmap_acc_finish(&a, &s, sites, prov, 1, &built, &err), MCH_OK);
    mch_cmap_acc_deinit(&a);
    assert_true(built.n_strata > 0);
    free(built.strata[0].name);
    built.strata[0].name = strdup(HOSTILE_STRATUM);
    uint8_t *b;
    size_t n;
    assert_int_equal(mch_cmap_pack(&built, &b, &n, &err), MCH_OK);
    mch_cmap_deinit(&built);
    if (mch_cmap_unpack(m, b, n, "hostile", &err)) fail_msg("%s", err.msg);
    free(b);
}

static char *slurp(const char *path)
{
    char *s = tu_read_file(path, NULL);
    if (!s) fail_msg("cannot read %s", path);
    return s;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* Removes dir and the files in it. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name), unlink(path);
    if (d) closedir(d);
    rmdir(dir);
}

static void test_map_strings_are_escaped_in_html_and_svg(void **st)
{
    (void)st;
    mch_cmap m;
    hostile_map(&m);
    char dir[] = "/tmp/mch_report_XXXXXX";
    assert_non_null(mkdtemp(dir));
    mch_err err = {0};
    assert_int_equal(mch_report_write(&m, dir, 10, &err), MCH_OK);
    static const char *const markup[] = {"<script", "<img", "<iframe", "<svg onload", "<b>"};
    DIR *d = opendir(dir);
    struct dirent *e;
    int checked = 0;
    char path[512];
    while ((e = readdir(d))) {
        if (!ends_with(e->d_name, ".html") && !ends_with(e->d_name, ".svg")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *s = slurp(path);
        for (size_t k = 0; k < sizeof markup / sizeof markup[0]; k++)
            if (strstr(s, markup[k]))
                fail_msg("%s holds '%s' from the map unescaped: ...%.60s", e->d_name, markup[k],
                         strstr(s, markup[k]));
        free(s);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 3);
    /* The strings are shown, escaped. */
    snprintf(path, sizeof path, "%s/index.html", dir);
    char *html = slurp(path);
    static const char *const shown[] = {"&lt;script&gt;alert(1)&lt;/script&gt;",
                                        "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;",
                                        "tfc1&lt;svg onload=alert(3)&gt;",
                                        "&lt;iframe src=javascript:alert(4)&gt;",
                                        "&lt;script&gt;alert(5)&lt;/script&gt; OpenBLAS",
                                        "relevance=&lt;script&gt;alert(6)"};
    for (size_t k = 0; k < sizeof shown / sizeof shown[0]; k++)
        if (!strstr(html, shown[k])) fail_msg("index.html does not show '%s'", shown[k]);
    free(html);
    remove_dir(dir);
    mch_cmap_deinit(&m);
}

/* The fields of a CSV line (no quoting in components.csv) into f[0..n). */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

/* Inverse of the standard normal CDF by bisection on erfc (independent of report.c). */
static double z_of(double level)
{
    double lo = 0, hi = 10, p = (1 + level) / 2;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static void assert_close(const char *what, double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want) + 1e-12))
        fail_msg("%s: report %.17g, recomputed %.17g", what, got, want);
}

static void test_components_csv_holds_both_estimates(void **st)
{
    (void)st;
    mch_cmap m;
    hostile_map(&m);
    char dir[] = "/tmp/mch_report_XXXXXX";
    assert_non_null(mkdtemp(dir));
    mch_err err = {0};
    assert_int_equal(mch_report_write(&m, dir, 5, &err), MCH_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/components.csv", dir);
    char *csv = slurp(path);
    const char *want_hdr = "kind,component,layer,head,role,ratio_of_means,rom_ci_low,rom_ci_high,"
                           "mean_of_ratios,std,n,mor_ci_low,mor_ci_high,sum_patched_minus_baseline,"
                           "sum_perturbed_minus_baseline\n";
    assert_int_equal(strncmp(csv, want_hdr, strlen(want_hdr)), 0);
    int heads = 0, blocks = 0, head_pos = 0, found = 0;
    double z = z_of(0.9), scratch[64];
    for (char *line = strtok(csv + strlen(want_hdr), "\n"); line; line = strtok(NULL, "\n")) {
        char *f[16] = {0};
        assert_int_equal(split_csv(line, f, 16), 15);
        heads += !strcmp(f[0], "head");
        blocks += !strcmp(f[0], "block");
        head_pos += !strcmp(f[0], "head_pos");
        if (strcmp(f[0], "head") || strcmp(f[2], "1") || strcmp(f[3], "2")) continue;
        found++;
        /* head 1.2 recomputed from the pairs, two-pass */
        size_t c = 1 * NH + 2;
        double num = 0, den = 0, mean = 0, m2 = 0;
        for (int i = 0; i < NPAIRS; i++) {
            num += (double)pairs[i].heads_scores[c] - pairs[i].r.score_baseline;
            den += pairs[i].r.score_perturbed - pairs[i].r.score_baseline;
            mean += pairs[i].heads[c] / (double)NPAIRS;
        }
        for (int i = 0; i < NPAIRS; i++) m2 += pow(pairs[i].heads[c] - mean, 2);
        double sd = sqrt(m2 / (NPAIRS - 1)), half = z * sd / sqrt((double)NPAIRS);
        assert_close("ratio_of_means", strtod(f[5], NULL), num / den, 1e-9);
        assert_close("mean_of_ratios", strtod(f[8], NULL), mean, 1e-12);
        assert_close("std", strtod(f[9], NULL), sd, 1e-9);
        assert_int_equal(strtoul(f[10], NULL, 10), NPAIRS);
        assert_close("mor_ci_low", strtod(f[11], NULL), mean - half, 1e-9);
        assert_close("mor_ci_high", strtod(f[12], NULL), mean + half, 1e-9);
        assert_close("sum_patched_minus_baseline", strtod(f[13], NULL), num, 1e-9);
        assert_close("sum_perturbed_minus_baseline", strtod(f[14], NULL), den, 1e-9);
        double lo, hi;
        assert_int_equal(mch_est_interval(&m.heads, c, 0.9, scratch, &lo, &hi), 0);
        assert_true(lo < hi);
        assert_close("rom_ci_low", strtod(f[6], NULL), lo, 1e-15);
        assert_close("rom_ci_high", strtod(f[7], NULL), hi, 1e-15);
    }
    assert_int_equal(found, 1);
    assert_int_equal(heads, L * NH);
    assert_true(blocks > 0 && blocks <= 3 * L * MCH_ROLE_COUNT);
    assert_true(head_pos > 0 && head_pos <= 2 * MCH_ROLE_COUNT);
    free(csv);
    remove_dir(dir);
    mch_cmap_deinit(&m);
}

int main(void)
{
    make_pairs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_strings_are_escaped_in_html_and_svg),
        cmocka_unit_test(test_components_csv_holds_both_estimates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
