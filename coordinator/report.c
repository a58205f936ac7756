/* The report of a circuit map (see report.h): SVG heatmaps of the heads map (layers x heads) and
 * of the blocks-by-role map (one panel per component), every component's statistics as CSV and
 * JSON, the top components, and an index.html showing them together. Each file is written
 * atomically from the validated map alone. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "jsonout.h"
#include "perturb.h"

typedef struct {
    char kind[16];    /* head | block */
    char name[64];    /* "head 2.3" | "attn_out layer 1 doc_match" */
    int layer, index; /* head, or role */
    const char *component;
    double mean, std, lo, hi;
    unsigned long long n;
} component;

static void stat_of(const mch_stats *s, size_t i, component *c)
{
    c->n = s->n[i];
    c->mean = s->mean[i];
    c->std = mch_stats_std(s, i);
    double half = c->n >= 2 ? 1.96 * c->std / sqrt((double)c->n) : NAN;
    c->lo = c->mean - half;
    c->hi = c->mean + half;
}

/* Diverging colour for v in [-max, max]: blue - white - red. */
static void colour(double v, double max, char out[8])
{
    double t = max > 0 ? v / max : 0;
    if (t > 1) t = 1;
    if (t < -1) t = -1;
    int r, g, b;
    if (t >= 0) { /* white -> #b2182b */
        r = (int)lround(255 + t * (178 - 255));
        g = (int)lround(255 + t * (24 - 255));
        b = (int)lround(255 + t * (43 - 255));
    } else { /* white -> #2166ac */
        r = (int)lround(255 - t * (33 - 255));
        g = (int)lround(255 - t * (102 - 255));
        b = (int)lround(255 - t * (172 - 255));
    }
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            putc(*s, f);
    }
}

/* One heatmap panel at (x0, y0): rows x cols cells of stats s starting at cell base. */
static void panel(FILE *f, int x0, int y0, const char *title, const mch_stats *s, size_t base,
                  int rows, int cols, const char *const *col_names, const char *col_label,
                  double max, const char *what)
{
    const int cw = 56, ch = 28;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">", x0, y0 - 28);
    xml_text(f, title);
    fputs("</text>\n", f);
    for (int r = 0; r < rows; r++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%d</text>\n",
                x0 - 6, y0 + r * ch + ch / 2 + 4, r);
        for (int c = 0; c < cols; c++) {
            size_t i = base + (size_t)r * cols + c;
            char fill[8] = "#cccccc";
            if (s->n[i]) colour(s->mean[i], max, fill);
            fprintf(f,
                    "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                    "stroke=\"#ffffff\">",
                    x0 + c * cw, y0 + r * ch, cw, ch, fill);
            fprintf(f, "<title>layer %d %s ", r, col_label);
            if (col_names)
                xml_text(f, col_names[c]);
            else
                fprintf(f, "%d", c);
            fputs(": mean ", f);
            if (s->n[i])
                fprintf(f, "%.6g", s->mean[i]);
            else
                fputs("none", f);
            fprintf(f, " n %llu</title></rect>\n", (unsigned long long)s->n[i]);
            if (s->n[i])
                fprintf(f,
                        "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\" "
                        "pointer-events=\"none\">%.2f</text>\n",
                        x0 + c * cw + cw / 2, y0 + r * ch + ch / 2 + 3, s->mean[i]);
        }
    }
    for (int c = 0; c < cols; c++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">",
                x0 + c * cw + cw / 2, y0 + rows * ch + 14);
        if (col_names)
            xml_text(f, col_names[c]);
        else
            fprintf(f, "%d", c);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
            x0 + cols * cw / 2, y0 + rows * ch + 30, col_label);
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 %d %d)\">layer</text>\n",
            x0 - 26, y0 + rows * ch / 2, x0 - 26, y0 + rows * ch / 2);
    (void)what;
}

static void legend(FILE *f, int x, int y, double max)
{
    fputs("<defs><linearGradient id=\"div\" x1=\"0\" x2=\"1\"><stop offset=\"0\" "
          "stop-color=\"#2166ac\"/>"
          "<stop offset=\"0.5\" stop-color=\"#ffffff\"/><stop offset=\"1\" "
          "stop-color=\"#b2182b\"/></linearGradient></defs>\n",
          f);
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"200\" height=\"12\" fill=\"url(#div)\" "
            "stroke=\"#888888\"/>\n",
            x, y);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.3g</text>\n", x,
            y + 26, -max);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">0</text>\n",
            x + 100, y + 26);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.3g</text>\n",
            x + 200, y + 26, max);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">mean effect (grey: no pairs)</text>\n",
            x + 210, y + 10);
}

static double max_abs(const mch_stats *s)
{
    double m = 0;
    for (size_t i = 0; i < s->cells; i++)
        if (s->n[i] && fabs(s->mean[i]) > m) m = fabs(s->mean[i]);
    return m > 0 ? m : 1;
}

static int cmp_mean_desc(const void *a, const void *b)
{
    const component *x = a, *y = b;
    if (x->mean != y->mean) return x->mean < y->mean ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* What the files are written from. */
typedef struct {
    const mch_cmap *m;
    component *c; /* every component with pairs; sorted by mean before top.txt */
    size_t n;
    int top;
} report;

static void svg_begin(FILE *f, int w, int h)
{
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d "
            "%d\" font-family=\"sans-serif\">\n",
            w, h, w, h);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
}

static void heads_svg(FILE *f, const void *ctx)
{
    const mch_cmap *m = ((const report *)ctx)->m;
    const mch_job_spec *s = &m->spec;
    int L = (int)s->layers, NH = (int)s->heads;
    char title[160];
    snprintf(title, sizeof title, "heads: mean effect of patching hook_z (%s, %llu pairs)",
             s->perturbation, (unsigned long long)m->pairs_used);
    int w = 100 + NH * 56 + 40, h = 120 + L * 28 + 70;
    int tw = 80 + 9 * (int)strlen(title);
    if (w < tw) w = tw;
    double mx = max_abs(&m->heads.mor);
    svg_begin(f, w, h);
    panel(f, 60, 70, title, &m->heads.mor, 0, L, NH, NULL, "head", mx, "heads");
    legend(f, 60, 70 + L * 28 + 44, mx);
    fputs("</svg>\n", f);
}

static void blocks_svg(FILE *f, const void *ctx)
{
    const mch_cmap *m = ((const report *)ctx)->m;
    int L = (int)m->spec.layers, R = MCH_ROLE_COUNT;
    static const char *comp[3] = {"resid_pre", "attn_out", "mlp_out"};
    const char *roles[MCH_ROLE_COUNT];
    for (int r = 0; r < R; r++) roles[r] = mch_role_name((mch_role)r);
    int pw = R * 56 + 90;
    double mx = max_abs(&m->blocks.mor);
    svg_begin(f, 40 + 3 * pw, 120 + L * 28 + 80);
    if (m->blocks.cells && m->pairs_used)
        for (int c = 0; c < 3; c++) {
            char title[160];
            snprintf(title, sizeof title, "blocks.*.hook_%s by token role", comp[c]);
            panel(f, 60 + c * pw, 70, title, &m->blocks.mor, (size_t)c * L * R, L, R, roles, "role", mx,
                  comp[c]);
        }
    else
        fprintf(f, "<text x=\"20\" y=\"40\" font-size=\"14\">no blocks sweep in this map</text>\n");
    legend(f, 60, 70 + L * 28 + 44, mx);
    fputs("</svg>\n", f);
}

/* Every component (heads, then blocks by role) with its statistics. */
static component *components(const mch_cmap *m, size_t *n)
{
    const mch_job_spec *s = &m->spec;
    size_t L = s->layers, NH = s->heads, R = MCH_ROLE_COUNT, k = 0;
    component *c = calloc(L * NH + 3 * L * R + 1, sizeof *c);
    if (!c) return NULL;
    static const char *comp[3] = {"resid_pre", "attn_out", "mlp_out"};
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < NH; h++) {
            component *x = &c[k];
            snprintf(x->kind, sizeof x->kind, "head");
            snprintf(x->name, sizeof x->name, "head %zu.%zu", l, h);
            x->layer = (int)l, x->index = (int)h, x->component = "attn.hook_z";
            stat_of(&m->heads.mor, l * NH + h, x);
            if (x->n) k++;
        }
    for (size_t ci = 0; ci < 3 && m->blocks.cells; ci++)
        for (size_t l = 0; l < L; l++)
            for (size_t r = 0; r < R; r++) {
                component *x = &c[k];
                snprintf(x->kind, sizeof x->kind, "block");
                snprintf(x->name, sizeof x->name, "%s layer %zu %s", comp[ci], l,
                         mch_role_name((mch_role)r));
                x->layer = (int)l, x->index = (int)r, x->component = comp[ci];
                stat_of(&m->blocks.mor, (ci * L + l) * R + r, x);
                if (x->n) k++;
            }
    *n = k;
    return c;
}

static void num_or_empty(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.9g", v);
}

/* The head index, or the role name, of a component. */
static const char *place(const component *x, char buf[16])
{
    if (strcmp(x->kind, "head")) return mch_role_name((mch_role)x->index);
    snprintf(buf, 16, "%d", x->index);
    return buf;
}

/* kind,component,layer,head_or_role,mean,std,n,ci95_low,ci95_high */
static void csv_row(FILE *f, const component *x)
{
    char buf[16];
    fprintf(f, "%s,%s,%d,%s,", x->kind, x->component, x->layer, place(x, buf));
    const double v[4] = {x->mean, x->std, x->lo, x->hi};
    for (int k = 0; k < 4; k++) {
        num_or_empty(f, v[k]);
        if (k == 1) fprintf(f, ",%llu", x->n);
        putc(k == 3 ? '\n' : ',', f);
    }
}

static void components_csv(FILE *f, const void *ctx)
{
    const report *r = ctx;
    fputs("kind,component,layer,head_or_role,mean,std,n,ci95_low,ci95_high\n", f);
    for (size_t i = 0; i < r->n; i++) csv_row(f, &r->c[i]);
}

static void json_row(FILE *f, const component *x)
{
    char buf[16];
    fprintf(f, "{\"kind\":\"%s\",\"component\":\"%s\",\"layer\":%d,", x->kind, x->component,
            x->layer);
    fprintf(f, strcmp(x->kind, "head") ? "\"role\":\"%s\"" : "\"head\":%s", place(x, buf));
    fputs(",\"mean\":", f);
    mch_json_number(f, x->mean);
    fputs(",\"std\":", f);
    mch_json_number(f, x->std);
    fprintf(f, ",\"n\":%llu,\"ci95\":[", x->n);
    mch_json_number(f, x->lo);
    putc(',', f);
    mch_json_number(f, x->hi);
    fputs("]}", f);
}

static void components_json(FILE *f, const void *ctx)
{
    const report *r = ctx;
    fputs("[", f);
    for (size_t i = 0; i < r->n; i++) {
        fputs(i ? ",\n" : "\n", f);
        json_row(f, &r->c[i]);
    }
    fputs("\n]\n", f);
}

static void top_txt(FILE *f, const void *ctx)
{
    const report *r = ctx;
    fprintf(f, "top %d components by mean effect (95%% CI = mean +- 1.96 std / sqrt(n))\n", r->top);
    for (size_t i = 0; i < r->n && (int)i < r->top; i++)
        fprintf(f, "%2zu. %-32s %+.4f  [%+.4f, %+.4f]  n %llu\n", i + 1, r->c[i].name, r->c[i].mean,
                r->c[i].lo, r->c[i].hi, r->c[i].n);
}

static void index_html(FILE *f, const void *ctx)
{
    const report *r = ctx;
    const mch_cmap *m = r->m;
    const mch_job_spec *s = &m->spec;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mechir circuit map</title>\n"
          "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>\n",
          f);
    fputs("<h1>Circuit map</h1>\n<p>model <code>", f);
    xml_text(f, s->model_path);
    fprintf(f, "</code> (%s, %u layers, %u heads), perturbation <b>", s->architecture, s->layers,
            s->heads);
    xml_text(f, s->perturbation);
    fprintf(f, "</b>; pairs: %llu total, %llu used, %llu skipped, %llu failed; sites:",
            (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
            (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed);
    for (size_t i = 0; i < m->n_sites; i++) {
        fputs(" ", f);
        xml_text(f, *m->sites[i] ? m->sites[i] : "(unnamed)");
    }
    fputs(".</p>\n<h2>Heads</h2>\n<img src=\"heads.svg\" alt=\"heads heatmap\">\n"
          "<h2>Blocks by token role</h2>\n<img src=\"blocks.svg\" alt=\"blocks heatmap\">\n",
          f);
    fprintf(f,
            "<h2>Top %d components</h2>\n<table><tr><th>component</th><th>mean</th><th>95%% "
            "CI</th><th>n</th></tr>\n",
            r->top);
    for (size_t i = 0; i < r->n && (int)i < r->top; i++)
        fprintf(f,
                "<tr><td style=\"text-align:left\">%s</td><td>%+.4f</td><td>[%+.4f, "
                "%+.4f]</td><td>%llu</td></tr>\n",
                r->c[i].name, r->c[i].mean, r->c[i].lo, r->c[i].hi, r->c[i].n);
    fputs("</table>\n<p>Data: <a href=\"components.csv\">components.csv</a>, "
          "<a href=\"components.json\">components.json</a>.</p>\n</body></html>\n",
          f);
}

mch_status mch_report_write(const mch_cmap *m, const char *dir, int top, mch_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", dir, strerror(errno));
    report r = {m, NULL, 0, top};
    if (!(r.c = components(m, &r.n))) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    static const struct {
        const char *name;
        void (*fn)(FILE *, const void *);
    } files[] = {{"heads.svg", heads_svg},
                 {"blocks.svg", blocks_svg},
                 {"components.csv", components_csv},
                 {"components.json", components_json},
                 {"top.txt", top_txt},
                 {"index.html", index_html}};
    mch_status rc = MCH_OK;
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !rc; i++) {
        if (files[i].fn == top_txt) qsort(r.c, r.n, sizeof *r.c, cmp_mean_desc);
        rc = mch_write_file_with(dir, files[i].name, files[i].fn, &r, err);
    }
    free(r.c);
    return rc;
}
