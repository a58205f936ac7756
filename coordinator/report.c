/* `mechir report`: what a circuit map shows a person. SVG heatmaps of the heads map (layers x
 * heads) and of the blocks-by-role map (one panel per component), with a diverging colour scale
 * centred on 0, labelled axes, a legend, and each cell's value and n in its <title>; every
 * component with mean, std, n and 95% confidence interval as CSV and JSON; the top components;
 * and an index.html showing them together. `--format json` prints the circuit.json form. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "fsutil.h"
#include "cmap.h"
#include "jsonout.h"

static void report_usage(FILE *f)
{
    fprintf(f, "usage: mechir report MAP.cmap -o DIR [--top K]\n"
               "       mechir report MAP.cmap --format json\n"
               "\n"
               "Writes DIR/heads.svg and DIR/blocks.svg (heatmaps, diverging colours centred on\n"
               "0; hover a cell for its value and n), DIR/components.csv and .json (every\n"
               "component: mean, std, n, 95%% confidence interval), DIR/top.txt (the K largest\n"
               "mean effects, default 10) and DIR/index.html. --format json prints the map as\n"
               "circuit.json to stdout (any map, merged or not).\n");
}

typedef struct {
    char kind[16];    /* head | block */
    char name[64];    /* "head 2.3" | "attn_out layer 1 doc_match" */
    int layer, index; /* head, or role */
    const char *component;
    double mean, std, lo, hi;
    unsigned long long n;
} component;

static void stat_of(const Mechir__Stats *s, size_t i, component *c)
{
    c->n = s->n[i];
    c->mean = s->mean[i];
    c->std = c->n >= 2 ? sqrt(s->m2[i] / (double)(c->n - 1)) : NAN;
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
static void panel(FILE *f, int x0, int y0, const char *title, const Mechir__Stats *s, size_t base,
                  int rows, int cols, char **col_names, const char *col_label, double max,
                  const char *what)
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

static double max_abs(const Mechir__Stats *s)
{
    double m = 0;
    for (size_t i = 0; i < s->n_mean; i++)
        if (s->n[i] && fabs(s->mean[i]) > m) m = fabs(s->mean[i]);
    return m > 0 ? m : 1;
}

static int cmp_mean_desc(const void *a, const void *b)
{
    const component *x = a, *y = b;
    if (x->mean != y->mean) return x->mean < y->mean ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int write_svgs(const char *dir, const Mechir__CircuitMap *m, mch_err *err)
{
    const Mechir__JobSpec *s = m->spec;
    int L = (int)s->layers, NH = (int)s->heads, R = (int)m->n_roles;
    char path[4096];
    snprintf(path, sizeof path, "%s/heads.svg", dir);
    mch_outfile o;
    if (mch_outfile_open(&o, path) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    char title[160];
    snprintf(title, sizeof title, "heads: mean effect of patching hook_z (%s, %llu pairs)",
             s->perturbation, (unsigned long long)m->pairs_used);
    int w = 100 + NH * 56 + 40, h = 120 + L * 28 + 70;
    int tw = 80 + 9 * (int)strlen(title);
    if (w < tw) w = tw;
    double mx = max_abs(m->heads);
    fprintf(o.f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d "
            "%d\" font-family=\"sans-serif\">\n",
            w, h, w, h);
    fprintf(o.f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    panel(o.f, 60, 70, title, m->heads, 0, L, NH, NULL, "head", mx, "heads");
    legend(o.f, 60, 70 + L * 28 + 44, mx);
    fputs("</svg>\n", o.f);
    if (mch_outfile_commit(&o) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));

    snprintf(path, sizeof path, "%s/blocks.svg", dir);
    if (mch_outfile_open(&o, path) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    static const char *comp[3] = {"resid_pre", "attn_out", "mlp_out"};
    int pw = R * 56 + 90;
    w = 40 + 3 * pw;
    h = 120 + L * 28 + 80;
    mx = max_abs(m->blocks_by_role);
    fprintf(o.f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d "
            "%d\" font-family=\"sans-serif\">\n",
            w, h, w, h);
    fprintf(o.f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    if (m->blocks_by_role->n_n && m->pairs_used)
        for (int c = 0; c < 3; c++) {
            snprintf(title, sizeof title, "blocks.*.hook_%s by token role", comp[c]);
            panel(o.f, 60 + c * pw, 70, title, m->blocks_by_role, (size_t)c * L * R, L, R, m->roles,
                  "role", mx, comp[c]);
        }
    else
        fprintf(o.f,
                "<text x=\"20\" y=\"40\" font-size=\"14\">no blocks sweep in this map</text>\n");
    legend(o.f, 60, 70 + L * 28 + 44, mx);
    fputs("</svg>\n", o.f);
    if (mch_outfile_commit(&o) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    return MCH_OK;
}

/* Every component (heads, then blocks by role) with its statistics. */
static component *components(const Mechir__CircuitMap *m, size_t *n)
{
    const Mechir__JobSpec *s = m->spec;
    size_t L = s->layers, NH = s->heads, R = m->n_roles, k = 0;
    component *c = calloc(L * NH + 3 * L * R + 1, sizeof *c);
    if (!c) return NULL;
    static const char *comp[3] = {"resid_pre", "attn_out", "mlp_out"};
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < NH; h++) {
            component *x = &c[k];
            snprintf(x->kind, sizeof x->kind, "head");
            snprintf(x->name, sizeof x->name, "head %zu.%zu", l, h);
            x->layer = (int)l, x->index = (int)h, x->component = "attn.hook_z";
            stat_of(m->heads, l * NH + h, x);
            if (x->n) k++;
        }
    for (size_t ci = 0; ci < 3 && m->blocks_by_role->n_n; ci++)
        for (size_t l = 0; l < L; l++)
            for (size_t r = 0; r < R; r++) {
                component *x = &c[k];
                snprintf(x->kind, sizeof x->kind, "block");
                snprintf(x->name, sizeof x->name, "%s layer %zu %s", comp[ci], l, m->roles[r]);
                x->layer = (int)l, x->index = (int)r, x->component = comp[ci];
                stat_of(m->blocks_by_role, (ci * L + l) * R + r, x);
                if (x->n) k++;
            }
    *n = k;
    return c;
}

static void num_or_empty(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.9g", v);
}

static mch_status write_tables(const char *dir, const Mechir__CircuitMap *m, int top, mch_err *err)
{
    size_t n;
    component *c = components(m, &n);
    if (!c) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    char path[4096];
    mch_outfile o;
    mch_status rc = MCH_OK;
    snprintf(path, sizeof path, "%s/components.csv", dir);
    if (mch_outfile_open(&o, path) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    fputs("kind,component,layer,head_or_role,mean,std,n,ci95_low,ci95_high\n", o.f);
    for (size_t i = 0; i < n; i++) {
        const component *x = &c[i];
        fprintf(o.f, "%s,%s,%d,", x->kind, x->component, x->layer);
        if (!strcmp(x->kind, "head"))
            fprintf(o.f, "%d,", x->index);
        else
            fprintf(o.f, "%s,", m->roles[x->index]);
        num_or_empty(o.f, x->mean);
        putc(',', o.f);
        num_or_empty(o.f, x->std);
        fprintf(o.f, ",%llu,", x->n);
        num_or_empty(o.f, x->lo);
        putc(',', o.f);
        num_or_empty(o.f, x->hi);
        putc('\n', o.f);
    }
    if (mch_outfile_commit(&o) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/components.json", dir);
    if (mch_outfile_open(&o, path) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    fputs("[", o.f);
    for (size_t i = 0; i < n; i++) {
        const component *x = &c[i];
        fprintf(o.f, "%s\n{\"kind\":\"%s\",\"component\":\"%s\",\"layer\":%d,", i ? "," : "",
                x->kind, x->component, x->layer);
        if (!strcmp(x->kind, "head"))
            fprintf(o.f, "\"head\":%d", x->index);
        else
            fprintf(o.f, "\"role\":\"%s\"", m->roles[x->index]);
        fputs(",\"mean\":", o.f);
        mch_json_number(o.f, x->mean);
        fputs(",\"std\":", o.f);
        mch_json_number(o.f, x->std);
        fprintf(o.f, ",\"n\":%llu,\"ci95\":[", x->n);
        mch_json_number(o.f, x->lo);
        putc(',', o.f);
        mch_json_number(o.f, x->hi);
        fputs("]}", o.f);
    }
    fputs("\n]\n", o.f);
    if (mch_outfile_commit(&o) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    qsort(c, n, sizeof *c, cmp_mean_desc);
    snprintf(path, sizeof path, "%s/top.txt", dir);
    if (mch_outfile_open(&o, path) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    fprintf(o.f, "top %d components by mean effect (95%% CI = mean +- 1.96 std / sqrt(n))\n", top);
    for (size_t i = 0; i < n && (int)i < top; i++)
        fprintf(o.f, "%2zu. %-32s %+.4f  [%+.4f, %+.4f]  n %llu\n", i + 1, c[i].name, c[i].mean,
                c[i].lo, c[i].hi, c[i].n);
    if (mch_outfile_commit(&o) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/index.html", dir);
    if (mch_outfile_open(&o, path) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    const Mechir__JobSpec *s = m->spec;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mechir circuit map</title>\n"
          "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>\n",
          o.f);
    fputs("<h1>Circuit map</h1>\n<p>model <code>", o.f);
    xml_text(o.f, s->model_path);
    fprintf(o.f, "</code> (%s, %u layers, %u heads), perturbation <b>", s->architecture, s->layers,
            s->heads);
    xml_text(o.f, s->perturbation);
    fprintf(o.f, "</b>; pairs: %llu total, %llu used, %llu skipped, %llu failed; sites:",
            (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
            (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed);
    for (size_t i = 0; i < m->n_sites; i++) {
        fputs(" ", o.f);
        xml_text(o.f, *m->sites[i] ? m->sites[i] : "(unnamed)");
    }
    fputs(".</p>\n<h2>Heads</h2>\n<img src=\"heads.svg\" alt=\"heads heatmap\">\n"
          "<h2>Blocks by token role</h2>\n<img src=\"blocks.svg\" alt=\"blocks heatmap\">\n",
          o.f);
    fprintf(o.f,
            "<h2>Top %d components</h2>\n<table><tr><th>component</th><th>mean</th><th>95%% "
            "CI</th><th>n</th></tr>\n",
            top);
    for (size_t i = 0; i < n && (int)i < top; i++)
        fprintf(o.f,
                "<tr><td style=\"text-align:left\">%s</td><td>%+.4f</td><td>[%+.4f, "
                "%+.4f]</td><td>%llu</td></tr>\n",
                c[i].name, c[i].mean, c[i].lo, c[i].hi, c[i].n);
    fputs("</table>\n<p>Data: <a href=\"components.csv\">components.csv</a>, "
          "<a href=\"components.json\">components.json</a>.</p>\n</body></html>\n",
          o.f);
    if (mch_outfile_commit(&o) != 0)
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
done:
    free(c);
    return rc;
}

int mch_cmd_report(int argc, char **argv)
{
    const char *map = NULL, *out = NULL, *format = NULL;
    int top = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            report_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--format") ||
            !strcmp(a, "--top")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mechir report: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--format"))
                format = v;
            else if (!strcmp(a, "--top")) {
                if (!mch_cli_int("--top", v, 1, 100000, &top)) return 2;
            } else
                out = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mechir report: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!map) {
            map = a;
        } else {
            fprintf(stderr, "mechir report: one map at a time ('%s' is extra)\n", a);
            return 2;
        }
    }
    if (format && strcmp(format, "json")) {
        fprintf(stderr, "mechir report: --format takes json, got '%s'\n", format);
        return 2;
    }
    if (!map || (!out && !format)) {
        fprintf(stderr, "mechir report: give a map and -o DIR or --format json (see --help)\n");
        return 2;
    }
    mch_err err = {0};
    Mechir__CircuitMap *m = NULL;
    if (mch_cmap_load(&m, map, &err)) {
        fprintf(stderr, "mechir report: %s\n", err.msg);
        return 1;
    }
    int status = 0;
    if (format) {
        mch_cmap_write_json(m, stdout);
        if (fflush(stdout) != 0) status = 1;
    }
    if (out) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "mechir report: %s: %s\n", out, strerror(errno));
            status = 1;
        } else if (write_svgs(out, m, &err) || write_tables(out, m, top, &err)) {
            fprintf(stderr, "mechir report: %s\n", err.msg);
            status = 1;
        } else {
            fprintf(stderr,
                    "mechir report: %s/index.html, heads.svg, blocks.svg, components.csv, "
                    "components.json, top.txt\n",
                    out);
        }
    }
    mechir__circuit_map__free_unpacked(m, NULL);
    return status;
}
