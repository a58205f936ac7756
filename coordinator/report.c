/* The report of a circuit map (see report.h). The components and their estimates are computed
 * once from the map; each file is then written by one function of them into a directory that
 * replaces the old one whole. Every text that reaches HTML or SVG goes through esc(), whether or
 * not it comes from the map, so no string of a map (architecture, paths, perturbation, sites,
 * provenance, strata) can inject markup. */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmap.h"
#include "jsonout.h"
#include "outdir.h"
#include "perturb.h"
#include "svg.h"

/* ---- text ----------------------------------------------------------------------------------- */

/* Text for HTML or SVG, escaped (svg.h). */
static void esc(FILE *f, const char *s)
{
    mch_svg_esc(f, s);
}

/* v with 6 significant digits, or "none" when not finite. */
static void num6(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("none", f);
}

/* The method's name as the JSON and HTML outputs give it (a spec spells exact ""). */
static const char *method_name(const mch_job_spec *s)
{
    return s->method && *s->method ? s->method : "exact";
}

/* ---- components ------------------------------------------------------------------------------ */

typedef enum { K_HEAD, K_BLOCK, K_HEAD_POS, K_QKV, K_PATTERN } kind;
static const char *const kind_names[] = {"head", "block", "head_pos", "qkv", "pattern"};
static const char *const qkv_names[3] = {"attn.hook_q", "attn.hook_k", "attn.hook_v"};
static const char *const block_names[3] = {"resid_pre", "attn_out", "mlp_out"};

/* One component (a cell of a map) and both of its estimates. */
typedef struct {
    kind kind;
    const char *component;      /* attn.hook_z, resid_pre, attn_out, mlp_out, resid_mid,
                                 * attn.hook_pattern, attn.hook_q, attn.hook_k, attn.hook_v */
    int layer, head, role;      /* head -1 for blocks, role -1 for heads */
    double rom, rom_lo, rom_hi; /* ratio of means, bootstrap percentile interval (NAN: none) */
    double num, den;            /* Σ(patched − baseline), Σ(perturbed − baseline) */
    double mean, std, mor_lo, mor_hi; /* mean of ratios, mean ± z·std/√n (NAN when n < 2) */
    unsigned long long n;
} component;

/* How intervals are computed: the map's level, z = Φ⁻¹((1 + level) / 2), B + 1 doubles. */
typedef struct {
    double level, z;
    double *scratch;
} est_ctx;

/* Φ⁻¹(p) by bisection on erfc: exact to a double's last bits, and simple enough to trust. */
static double normal_quantile(double p)
{
    double lo = -40, hi = 40;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static void fill(component *c, const mch_est *e, size_t i, const est_ctx *x)
{
    size_t r0 = i * ((size_t)e->B + 1);
    c->n = e->mor.n[i];
    c->rom = c->n ? mch_est_ratio(e, i, 0) : NAN;
    if (!c->n || !e->B || mch_est_interval(e, i, x->level, x->scratch, &c->rom_lo, &c->rom_hi))
        c->rom_lo = c->rom_hi = NAN;
    c->num = mch_xsum_value(e->num[r0]);
    c->den = mch_xsum_value(e->den[r0]);
    c->mean = c->n ? e->mor.mean[i] : NAN;
    c->std = mch_stats_std(&e->mor, i);
    double half = c->n >= 2 ? x->z * c->std / sqrt((double)c->n) : NAN;
    c->mor_lo = c->mean - half;
    c->mor_hi = c->mean + half;
}

/* The heads' hooks: an encoder's (every model), a MonoT5's decoder self- and cross-attention. */
static const char *const head_sites[3] = {"attn.hook_z", "decoder.attn.hook_z",
                                          "decoder.cross_attn.hook_z"};
static const char *const head_labels[3] = {"head", "decoder head", "cross-attention head"};

/* "head 1.2", "attn_out layer 1 doc_match", "head-pos hook_z head 1.1 doc_match", "hook_q head
 * 1.2", "pattern head 1.2"; a MonoT5's decoder heads "decoder head 0.3", "cross-attention head
 * 0.3". */
static void comp_name(const component *c, char *buf, size_t len)
{
    if (c->kind == K_HEAD) {
        int part = c->component == head_sites[1] ? 1 : c->component == head_sites[2] ? 2 : 0;
        snprintf(buf, len, "%s %d.%d", head_labels[part], c->layer, c->head);
    } else if (c->kind == K_QKV)
        snprintf(buf, len, "%s head %d.%d", c->component + 5, c->layer, c->head);
    else if (c->kind == K_PATTERN)
        snprintf(buf, len, "pattern head %d.%d", c->layer, c->head);
    else if (c->kind == K_BLOCK)
        snprintf(buf, len, "%s layer %d %s", c->component, c->layer,
                 mch_role_name((mch_role)c->role));
    else
        snprintf(buf, len, "head-pos %s head %d.%d %s",
                 strcmp(c->component, "attn.hook_z") ? "hook_pattern" : "hook_z", c->layer, c->head,
                 mch_role_name((mch_role)c->role));
}

/* The components with pairs of a set of maps, in the map's order, and ranked. */
typedef struct {
    component *c;           /* (n) */
    const component **rank; /* (n) by ratio of means, largest first, NAN last */
    size_t n;
} comp_set;

static void set_add(comp_set *s, kind k, const char *comp, const mch_est *e, size_t i, int layer,
                    int head, int role, const est_ctx *x)
{
    if (!e->mor.n[i]) return;
    component *c = &s->c[s->n++];
    c->kind = k, c->component = comp;
    c->layer = layer, c->head = head, c->role = role;
    fill(c, e, i, x);
}

/* By ratio of means, largest first, NAN last; ties in the map's order. */
static int cmp_rom(const void *a, const void *b)
{
    const component *x = *(const component *const *)a, *y = *(const component *const *)b;
    int nx = isnan(x->rom), ny = isnan(y->rom);
    if (nx != ny) return nx - ny;
    if (!nx && x->rom != y->rom) return x->rom > y->rom ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The finer sweeps' maps of a set: qkv (3, L, NH), pattern (L, NH), resid-mid (L, R). */
typedef struct {
    const mch_est *qkv, *pattern, *rmid;
} finer_maps;

/* Heads (L, NH), blocks (3, L, R), head-pos z and pattern (K, R) and the finer maps of spec; hpz,
 * hpp and fm may be NULL (strata, verified). */
static mch_status set_build(comp_set *s, const mch_job_spec *spec, const mch_est *heads,
                            const mch_est *blocks, const mch_est *hpz, const mch_est *hpp,
                            const finer_maps *fm, const est_ctx *x, mch_err *err)
{
    size_t NH = spec->heads, L = spec->layers, R = MCH_ROLE_COUNT;
    size_t cap = heads->cells + blocks->cells + (hpz ? hpz->cells + hpp->cells : 0) +
                 (fm ? fm->qkv->cells + fm->pattern->cells + fm->rmid->cells : 0) + 1;
    memset(s, 0, sizeof *s);
    s->c = calloc(cap, sizeof *s->c);
    s->rank = calloc(cap, sizeof *s->rank);
    if (!s->c || !s->rank) {
        free(s->c), free(s->rank);
        memset(s, 0, sizeof *s);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu components", cap);
    }
    for (size_t i = 0; i < heads->cells; i++) { /* a MonoT5's rows L.. are its decoder's */
        int layer, part = mch_spec_head_part(spec, i / NH, &layer);
        set_add(s, K_HEAD, head_sites[part], heads, i, layer, (int)(i % NH), -1, x);
    }
    for (size_t i = 0; i < blocks->cells; i++)
        set_add(s, K_BLOCK, block_names[i / (L * R)], blocks, i, (int)(i / R % L), -1, (int)(i % R),
                x);
    const mch_est *hp[2] = {hpz, hpp};
    static const char *const hp_names[2] = {"attn.hook_z", "attn.hook_pattern"};
    for (int z = 0; z < 2 && hpz; z++)
        for (size_t i = 0; i < hp[z]->cells && i / R < spec->n_head_pos; i++)
            set_add(s, K_HEAD_POS, hp_names[z], hp[z], i, (int)spec->head_pos[2 * (i / R)],
                    (int)spec->head_pos[2 * (i / R) + 1], (int)(i % R), x);
    for (size_t i = 0; fm && i < fm->qkv->cells; i++)
        set_add(s, K_QKV, qkv_names[i / (L * NH)], fm->qkv, i, (int)(i / NH % L), (int)(i % NH), -1,
                x);
    for (size_t i = 0; fm && i < fm->pattern->cells; i++)
        set_add(s, K_PATTERN, "attn.hook_pattern", fm->pattern, i, (int)(i / NH), (int)(i % NH), -1,
                x);
    for (size_t i = 0; fm && i < fm->rmid->cells; i++)
        set_add(s, K_BLOCK, "resid_mid", fm->rmid, i, (int)(i / R), -1, (int)(i % R), x);
    for (size_t i = 0; i < s->n; i++) s->rank[i] = &s->c[i];
    qsort(s->rank, s->n, sizeof *s->rank, cmp_rom);
    return MCH_OK;
}

static void set_free(comp_set *s)
{
    free(s->c);
    free(s->rank);
}

/* What the files are written from. */
typedef struct {
    const mch_cmap *m;
    est_ctx x;
    comp_set all;       /* heads, blocks, head-pos */
    comp_set *strata;   /* (m->n_strata) heads and blocks of each stratum */
    comp_set vex, vest; /* verified cells: exact and estimated, the same cells in map order */
    int top;
} report;

/* ---- SVG heatmaps ---------------------------------------------------------------------------- */

enum {
    CW = 56,
    CH = 28,
    LEFT = 80,
    PANEL_TOP = 36,
    PANEL_BOTTOM = 48,
    LEGEND = 50,
    ROW_TITLE = 34
};
typedef enum { ROM, MOR } estimate;

/* A heatmap panel: rows x cols cells of e from cell base. Rows are layers, or the heads of
 * row_heads ((rows, 2) layer, head); columns are heads, or token roles. */
typedef struct {
    const mch_est *e;
    size_t base;
    int rows, cols, col_roles;
    const uint32_t *row_heads;
    char title[160]; /* may hold a string of the map */
    char prefix[96]; /* of every cell's title: "", "attn_out ", "relevance=1 " */
} panel;

/* A row of panels on one colour scale (one legend), per_line panels a line. */
typedef struct {
    char title[320]; /* may hold a string of the map */
    estimate k;
    const panel *p;
    int np, per_line;
} fig_row;

static double value(const mch_est *e, size_t i, estimate k)
{
    if (!e->mor.n[i]) return NAN;
    return k == ROM ? mch_est_ratio(e, i, 0) : e->mor.mean[i];
}

/* Diverging colour for v in [-max, max]: blue - white - red (svg.h). */
static void colour(double v, double max, char out[8])
{
    mch_svg_colour(v, max, out);
}

static int panel_w(const panel *p)
{
    return LEFT + p->cols * CW + 30;
}

static int panel_h(const panel *p)
{
    return PANEL_TOP + p->rows * CH + PANEL_BOTTOM;
}

static int row_lines(const fig_row *r)
{
    return (r->np + r->per_line - 1) / r->per_line;
}

static int row_h(const fig_row *r)
{
    int h = 0; /* the tallest panel's (a MonoT5's encoder and decoder may differ in layers) */
    for (int j = 0; j < r->np; j++)
        if (panel_h(&r->p[j]) > h) h = panel_h(&r->p[j]);
    return ROW_TITLE + row_lines(r) * h + LEGEND;
}

static int row_w(const fig_row *r)
{
    int n = r->np < r->per_line ? r->np : r->per_line, w = r->np ? n * panel_w(&r->p[0]) : 0;
    int tw = 20 + 7 * (int)strlen(r->title);
    return w > tw ? w : tw;
}

static void text_at(FILE *f, int x, int y, int size, const char *attrs, const char *s)
{
    mch_svg_text(f, x, y, size, attrs, s);
}

/* A cell's <title>: "PREFIXlayer 1 head 0: ratio of means 0.2231 [0.1923, 0.2505] n 199" or
 * "...: mean of ratios 0.21 std 0.05 n 199". */
static void cell_title(FILE *f, const panel *p, int r, int c, size_t i, estimate k,
                       const est_ctx *x)
{
    const mch_est *e = p->e;
    fputs("<title>", f);
    esc(f, p->prefix);
    if (p->row_heads)
        fprintf(f, "head %u.%u ", p->row_heads[2 * r], p->row_heads[2 * r + 1]);
    else
        fprintf(f, "layer %d ", r);
    if (p->col_roles) {
        fputs("role ", f);
        esc(f, mch_role_name((mch_role)c));
    } else {
        fprintf(f, "head %d", c);
    }
    double lo, hi;
    if (k == ROM) {
        fputs(": ratio of means ", f);
        num6(f, value(e, i, ROM));
        if (e->mor.n[i] && e->B && !mch_est_interval(e, i, x->level, x->scratch, &lo, &hi)) {
            fputs(" [", f);
            num6(f, lo);
            fputs(", ", f);
            num6(f, hi);
            putc(']', f);
        }
    } else {
        fputs(": mean of ratios ", f);
        num6(f, value(e, i, MOR));
        fputs(" std ", f);
        num6(f, mch_stats_std(&e->mor, i));
    }
    fprintf(f, " n %llu</title>", (unsigned long long)e->mor.n[i]);
}

/* One panel with its grid's top left corner at (x0, y0). */
static void draw_panel(FILE *f, const panel *p, int x0, int y0, estimate k, double max,
                       const est_ctx *x)
{
    char buf[32];
    text_at(f, x0 - LEFT + 20, y0 - 12, 12, " font-weight=\"bold\"", p->title);
    for (int r = 0; r < p->rows; r++) {
        if (p->row_heads)
            snprintf(buf, sizeof buf, "%u.%u", p->row_heads[2 * r], p->row_heads[2 * r + 1]);
        else
            snprintf(buf, sizeof buf, "%d", r);
        text_at(f, x0 - 6, y0 + r * CH + CH / 2 + 4, 11, " text-anchor=\"end\"", buf);
        for (int c = 0; c < p->cols; c++) {
            size_t i = p->base + (size_t)r * p->cols + c;
            double v = value(p->e, i, k);
            char fill[8] = "#cccccc";
            if (isfinite(v)) colour(v, max, fill);
            fprintf(f,
                    "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                    "fill=\"%s\" stroke=\"#ffffff\">",
                    x0 + c * CW, y0 + r * CH, CW, CH, fill);
            cell_title(f, p, r, c, i, k, x);
            fputs("</rect>\n", f);
            if (isfinite(v))
                fprintf(f,
                        "<text x=\"%d\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\" "
                        "pointer-events=\"none\">%.2f</text>\n",
                        x0 + c * CW + CW / 2, y0 + r * CH + CH / 2 + 3, v);
        }
    }
    for (int c = 0; c < p->cols; c++) {
        if (p->col_roles)
            snprintf(buf, sizeof buf, "%s", mch_role_name((mch_role)c));
        else
            snprintf(buf, sizeof buf, "%d", c);
        text_at(f, x0 + c * CW + CW / 2, y0 + p->rows * CH + 14, p->col_roles ? 9 : 10,
                " text-anchor=\"middle\"", buf);
    }
    text_at(f, x0 + p->cols * CW / 2, y0 + p->rows * CH + 32, 11, " text-anchor=\"middle\"",
            p->col_roles ? "token role" : "head");
    int ym = y0 + p->rows * CH / 2;
    char attrs[96];
    snprintf(attrs, sizeof attrs, " text-anchor=\"middle\" transform=\"rotate(-90 %d %d)\"",
             x0 - 50, ym);
    text_at(f, x0 - 50, ym, 11, attrs, p->row_heads ? "head" : "layer");
}

static void legend(FILE *f, int x, int y, double max, estimate k)
{
    mch_svg_legend(f, x, y, max,
                   k == ROM ? "ratio of means (grey: no pairs)"
                            : "mean of ratios (grey: no pairs)");
}

/* The largest |value| of a row's cells (1 when none), its colour scale's end. */
static double row_max(const fig_row *r)
{
    double m = 0;
    for (int j = 0; j < r->np; j++) {
        const panel *p = &r->p[j];
        for (size_t i = p->base; i < p->base + (size_t)p->rows * p->cols; i++) {
            double v = value(p->e, i, r->k);
            if (isfinite(v) && fabs(v) > m) m = fabs(v);
        }
    }
    return m > 0 ? m : 1;
}

/* An SVG of rows of panels, or of the message none when there is no row. */
static void figure(FILE *f, const fig_row *rows, int nr, const char *none, const est_ctx *x)
{
    int w = 420, h = 60;
    if (nr) w = 0, h = 10;
    for (int i = 0; i < nr; i++) {
        int tw = 40 + 8 * (int)strlen(rows[i].title); /* the bold 14 px title fits */
        if (row_w(&rows[i]) > w) w = row_w(&rows[i]);
        if (tw > w) w = tw;
        h += row_h(&rows[i]);
    }
    mch_svg_begin(f, w, h);
    if (!nr) text_at(f, 20, 36, 14, "", none);
    int y = 0;
    for (int i = 0; i < nr; i++) {
        const fig_row *r = &rows[i];
        double max = row_max(r);
        text_at(f, 20, y + 24, 14, " font-weight=\"bold\"", r->title);
        int yp = y + ROW_TITLE;
        for (int j = 0; j < r->np; j++) {
            int line = j / r->per_line, col = j % r->per_line;
            draw_panel(f, &r->p[j], col * panel_w(&r->p[j]) + LEFT,
                       yp + line * panel_h(&r->p[j]) + PANEL_TOP, r->k, max, x);
        }
        legend(f, LEFT, y + row_h(r) - LEGEND + 8, max, r->k);
        y += row_h(r);
    }
    fputs("</svg>\n", f);
}

/* The titles of a figure's two rows: the ratio of means (with the interval used) and the mean
 * of ratios, of what (e.g. "heads (blocks.L.attn.hook_z)"). */
static void row_titles(const report *rep, const char *what, fig_row rows[2])
{
    const mch_cmap *m = rep->m;
    char ci[64] = "no bootstrap: no interval";
    if (m->spec.bootstrap)
        snprintf(ci, sizeof ci, "%g%% bootstrap interval in each cell's title", 100 * rep->x.level);
    snprintf(rows[0].title, sizeof rows[0].title,
             "%s: ratio of means Σ(patched − baseline) / Σ(perturbed − baseline); %s (%s, %llu "
             "pairs)",
             what, ci, m->spec.perturbation, (unsigned long long)m->pairs_used);
    snprintf(rows[1].title, sizeof rows[1].title,
             "%s: mean of ratios (the mean of the pairs' effects); std and n in each cell's title",
             what);
    rows[0].k = ROM, rows[1].k = MOR;
}

/* The panels of heads map e into p[0..3): one for an encoder; a MonoT5's encoder, decoder
 * self-attention and cross-attention heads. @return how many. */
static int head_panels(const mch_job_spec *s, const mch_est *e, const char *prefix, panel p[3])
{
    static const char *const titles[3][2] = {{"blocks.L.attn.hook_z", "encoder.L.attn.hook_z"},
                                             {"", "decoder.L.attn.hook_z"},
                                             {"", "decoder.L.cross_attn.hook_z"}};
    int t5 = s->decoder_layers > 0, n = t5 ? 3 : 1;
    size_t base = 0;
    for (int i = 0; i < n; i++) {
        int rows = i ? (int)s->decoder_layers : (int)s->layers;
        p[i] = (panel){e, base, rows, (int)s->heads, 0, NULL, "", ""};
        snprintf(p[i].title, sizeof p[i].title, "%s%s", prefix, titles[i][t5]);
        snprintf(p[i].prefix, sizeof p[i].prefix, "%s%s", *prefix ? prefix : "",
                 i == 1   ? "decoder "
                 : i == 2 ? "cross-attention "
                          : "");
        base += (size_t)rows * s->heads;
    }
    return n;
}

/* hook_z of each head (a MonoT5: encoder, decoder and cross-attention), then (with those sweeps)
 * hook_q, hook_k, hook_v and the whole pattern. */
static void heads_svg(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    const mch_cmap *m = rep->m;
    int L = (int)m->spec.layers, NH = (int)m->spec.heads, np = 0;
    panel p[6];
    const char *what = m->spec.decoder_layers ? "heads (encoder, decoder, cross-attention)"
                                              : "heads (blocks.L.attn.hook_z)";
    if (m->heads.cells) np = head_panels(&m->spec, &m->heads, "", p);
    for (int j = 0; j < 3 && m->qkv.cells; j++) {
        p[np] = (panel){&m->qkv, (size_t)j * L * NH, L, NH, 0, NULL, "", ""};
        snprintf(p[np].title, sizeof p[np].title, "blocks.L.%s", qkv_names[j]);
        snprintf(p[np].prefix, sizeof p[np].prefix, "%s ", qkv_names[j] + 5);
        np++;
    }
    if (m->pattern.cells)
        p[np++] = (panel){&m->pattern, 0, L, NH, 0, NULL, "blocks.L.attn.hook_pattern", "pattern "};
    if (m->qkv.cells || m->pattern.cells)
        what = "heads (hook_z, hook_q, hook_k, hook_v, hook_pattern)";
    fig_row rows[2];
    row_titles(rep, what, rows);
    for (int i = 0; i < 2; i++) rows[i].p = p, rows[i].np = np, rows[i].per_line = np < 3 ? np : 3;
    figure(f, rows, np ? 2 : 0, "no heads sweep in this map", &rep->x);
}

static void blocks_svg(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    const mch_cmap *m = rep->m;
    int L = (int)m->spec.layers, np = 0;
    panel p[4];
    for (int c = 0; c < 3 && m->blocks.cells; c++, np++) {
        p[np] =
            (panel){&m->blocks, (size_t)c * L * MCH_ROLE_COUNT, L, MCH_ROLE_COUNT, 1, NULL, "", ""};
        snprintf(p[np].title, sizeof p[np].title, "blocks.L.hook_%s", block_names[c]);
        snprintf(p[np].prefix, sizeof p[np].prefix, "%s ", block_names[c]);
    }
    if (m->rmid.cells) /* the resid-mid sweep, beside the blocks */
        p[np++] = (panel){&m->rmid,    0, L, MCH_ROLE_COUNT, 1, NULL, "blocks.L.hook_resid_mid",
                          "resid_mid "};
    fig_row rows[2];
    row_titles(rep, "blocks by token role", rows);
    for (int i = 0; i < 2; i++) rows[i].p = p, rows[i].np = np, rows[i].per_line = np;
    figure(f, rows, np ? 2 : 0, "no blocks sweep in this map", &rep->x);
}

static void head_pos_svg(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    const mch_cmap *m = rep->m;
    int K = (int)m->spec.n_head_pos, np = 0;
    panel p[2];
    const mch_est *e[2] = {&m->hpz, &m->hpp};
    static const char *const hook[2] = {"hook_z", "hook_pattern"};
    for (int z = 0; z < 2; z++) {
        if (!e[z]->cells || !K) continue;
        p[np] = (panel){e[z], 0, K, MCH_ROLE_COUNT, 1, m->spec.head_pos, "", ""};
        snprintf(p[np].title, sizeof p[np].title, "blocks.L.attn.%s by token role", hook[z]);
        snprintf(p[np].prefix, sizeof p[np].prefix, "%s ", hook[z]);
        np++;
    }
    fig_row rows[2];
    row_titles(rep, "head-pos", rows);
    for (int i = 0; i < 2; i++) rows[i].p = p, rows[i].np = np, rows[i].per_line = 2;
    figure(f, rows, np ? 2 : 0, "no head-pos sweep in this map", &rep->x);
}

static void strata_svg(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    const mch_cmap *m = rep->m;
    size_t ns = m->heads.cells ? m->n_strata : 0, per = m->spec.decoder_layers ? 3 : 1;
    panel *p = calloc(per * ns + 1, sizeof *p);
    if (!p) ns = 0; /* the file then says there is nothing to show */
    for (size_t i = 0; i < ns; i++) {
        const mch_cmap_stratum *s = &m->strata[i];
        char prefix[96];
        snprintf(prefix, sizeof prefix, "%s ", s->name);
        head_panels(&m->spec, &s->heads, per > 1 ? prefix : "", p + per * i);
        if (per == 1) /* an encoder's panel is titled by the stratum alone */
            snprintf(p[i].title, sizeof p[i].title, "%s (%llu pair%s)", s->name,
                     (unsigned long long)s->pairs, s->pairs == 1 ? "" : "s");
        snprintf(p[per * i].prefix, sizeof p[per * i].prefix, "%s", prefix);
    }
    fig_row rows[2];
    row_titles(rep, "heads by stratum", rows);
    for (int i = 0; i < 2; i++)
        rows[i].p = p, rows[i].np = (int)(per * ns), rows[i].per_line = per > 1 ? 3 : 4;
    figure(f, rows, ns ? 2 : 0, "no strata of heads in this map", &rep->x);
    free(p);
}

/* ---- tables ---------------------------------------------------------------------------------- */

static void num_or_empty(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
}

#define CSV_HEADER                                                                                 \
    "kind,component,layer,head,role,ratio_of_means,rom_ci_low,rom_ci_high,mean_of_ratios,std,n,"   \
    "mor_ci_low,mor_ci_high,sum_patched_minus_baseline,sum_perturbed_minus_baseline\n"

/* The columns naming a component in both CSV files: kind, component, layer, head, role. */
static void csv_key(FILE *f, const component *c)
{
    fprintf(f, "%s,%s,%d,", kind_names[c->kind], c->component, c->layer);
    if (c->head >= 0) fprintf(f, "%d", c->head);
    putc(',', f);
    if (c->role >= 0) fputs(mch_role_name((mch_role)c->role), f);
}

static void components_csv(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    fputs(CSV_HEADER, f);
    for (size_t i = 0; i < rep->all.n; i++) {
        const component *c = &rep->all.c[i];
        csv_key(f, c);
        const double v[10] = {c->rom, c->rom_lo, c->rom_hi, c->mean, c->std,
                              NAN,    c->mor_lo, c->mor_hi, c->num,  c->den};
        for (int k = 0; k < 10; k++) {
            putc(',', f);
            if (k == 5)
                fprintf(f, "%llu", c->n);
            else
                num_or_empty(f, v[k]);
        }
        putc('\n', f);
    }
}

static void components_json(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    fprintf(f, "{\"format\":\"mechir-components/1\",\"method\":");
    mch_json_string(f, method_name(&rep->m->spec));
    fputs(",\"level\":", f);
    mch_json_double(f, rep->x.level);
    fprintf(f, ",\"bootstrap\":%lu,\"z\":", (unsigned long)rep->m->spec.bootstrap);
    mch_json_double(f, rep->x.z);
    fputs(",\"rom_ci\":\"Poisson bootstrap percentile interval of the ratio of means (null "
          "without bootstrap)\",\"mor_ci\":\"normal approximation mean +- z std / sqrt(n) of the "
          "mean of ratios (null when n < 2)\",\"components\":[",
          f);
    static const char *const keys[10] = {"ratio_of_means",
                                         "rom_ci_low",
                                         "rom_ci_high",
                                         "mean_of_ratios",
                                         "std",
                                         "n",
                                         "mor_ci_low",
                                         "mor_ci_high",
                                         "sum_patched_minus_baseline",
                                         "sum_perturbed_minus_baseline"};
    for (size_t i = 0; i < rep->all.n; i++) {
        const component *c = &rep->all.c[i];
        fprintf(f,
                "%s{\"kind\":\"%s\",\"component\":\"%s\",\"layer\":%d,\"head\":", i ? ",\n" : "\n",
                kind_names[c->kind], c->component, c->layer);
        if (c->head >= 0)
            fprintf(f, "%d", c->head);
        else
            fputs("null", f);
        fputs(",\"role\":", f);
        if (c->role >= 0)
            mch_json_string(f, mch_role_name((mch_role)c->role));
        else
            fputs("null", f);
        const double v[10] = {c->rom, c->rom_lo, c->rom_hi, c->mean, c->std,
                              NAN,    c->mor_lo, c->mor_hi, c->num,  c->den};
        for (int k = 0; k < 10; k++) {
            fprintf(f, ",\"%s\":", keys[k]);
            if (k == 5)
                fprintf(f, "%llu", c->n);
            else
                mch_json_double(f, v[k]);
        }
        putc('}', f);
    }
    fputs("\n]}\n", f);
}

/* "[+0.1923, +0.2505]" or "" when there is no interval. */
static const char *interval(double lo, double hi, char buf[48])
{
    if (isfinite(lo) && isfinite(hi))
        snprintf(buf, 48, "[%+.4f, %+.4f]", lo, hi);
    else
        buf[0] = 0;
    return buf;
}

/* How the patched scores of the map were found, for index.html. */
static const char *patching_text(const mch_job_spec *s)
{
    switch (mch_method_of(s->method)) {
    case MCH_JOB_ATP:
        return "atp: attribution patching, every patched score estimated to first order from one "
               "backward pass a pair (docs/ATP.md)";
    case MCH_JOB_ATP_QK:
        return "atp-qk: attribution patching with the QK fix (heads: the perturbed attention "
               "pattern, not its linearisation; docs/ATP.md)";
    default:
        return "exact: one patched run per component";
    }
}

/* The sentence on both estimates and their intervals. */
static void method_text(const report *rep, char *buf, size_t len)
{
    const mch_job_spec *s = &rep->m->spec;
    char rom[96] = "no bootstrap, no interval";
    if (s->bootstrap)
        snprintf(rom, sizeof rom, "%g%% Poisson bootstrap percentile interval, %lu replicates",
                 100 * rep->x.level, (unsigned long)s->bootstrap);
    snprintf(buf, len,
             "ratio of means sum(patched - baseline) / sum(perturbed - baseline) (%s); mean of "
             "ratios (the mean of the pairs' effects) with mean +- %.4g std / sqrt(n) (%g%% normal "
             "approximation)",
             rom, rep->x.z, 100 * rep->x.level);
}

/* ---- verified estimates ---------------------------------------------------------------------- */

enum { AGREE_TOP = 10 };

/* Agreement of the verified cells' estimated and exact mean effects: Spearman's correlation
 * across the cells (NAN when undefined) and the overlap of the k = min(AGREE_TOP, cells) largest
 * |mean| of each. */
typedef struct {
    double rho;
    int overlap, k;
} agreement;

static int cmp_abs_desc(const void *a, const void *b)
{
    double x = fabs((*(const component *const *)a)->mean);
    double y = fabs((*(const component *const *)b)->mean);
    if (x != y) return x > y ? -1 : 1;
    return *(const component *const *)a < *(const component *const *)b ? -1 : 1;
}

static agreement agree(const report *rep)
{
    agreement g = {NAN, 0, 0};
    size_t n = rep->vex.n;
    double *buf = calloc(4 * n + 1, sizeof *buf);
    const component **ra = malloc((2 * n + 1) * sizeof *ra), **rb = ra + n;
    if (!buf || !ra) {
        free(buf), free(ra);
        return g;
    }
    for (size_t i = 0; i < n; i++) {
        buf[i] = rep->vest.c[i].mean, buf[n + i] = rep->vex.c[i].mean;
        ra[i] = &rep->vest.c[i], rb[i] = &rep->vex.c[i];
    }
    if (mch_spearman(buf, buf + n, n, buf + 2 * n, &g.rho)) g.rho = NAN;
    if (n) qsort(ra, n, sizeof *ra, cmp_abs_desc), qsort(rb, n, sizeof *rb, cmp_abs_desc);
    g.k = n < AGREE_TOP ? (int)n : AGREE_TOP;
    for (int i = 0; i < g.k; i++) /* the same cell: the same index in both sets */
        for (int j = 0; j < g.k; j++) g.overlap += ra[i] - rep->vest.c == rb[j] - rep->vex.c;
    free(buf);
    free(ra);
    return g;
}

/* The summary sentence of the verification (buf). */
static void verified_text(const report *rep, char *buf, size_t len)
{
    const mch_cmap *m = rep->m;
    const mch_stats *v = &m->vrank;
    agreement g = agree(rep);
    unsigned long long np = v->cells ? (unsigned long long)v->n[0] : 0;
    snprintf(buf, len,
             "--verify-top %lu: %zu cells verified in at least one pair; per-pair Spearman "
             "correlation of estimated and exact effects %.4f (std %.4f, %llu pairs); across "
             "the verified cells' mean effects Spearman %.4f, top-%d overlap by |mean| %d/%d",
             (unsigned long)m->spec.verify_top, rep->vex.n, np ? v->mean[0] : NAN,
             v->cells ? mch_stats_std(v, 0) : NAN, np, g.rho, g.k, g.overlap, g.k);
}

#define VERIFIED_HEADER                                                                            \
    "kind,component,layer,head,role,n,estimate_mean_of_ratios,exact_mean_of_ratios,"               \
    "estimate_ratio_of_means,exact_ratio_of_means\n"

/* Every verified cell: its pairs, estimated and exact effects (header only without
 * --verify-top). */
static void verified_csv(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    fputs(VERIFIED_HEADER, f);
    for (size_t i = 0; i < rep->vex.n; i++) {
        const component *x = &rep->vex.c[i], *e = &rep->vest.c[i];
        csv_key(f, x);
        fprintf(f, ",%llu,", x->n);
        num_or_empty(f, e->mean);
        putc(',', f);
        num_or_empty(f, x->mean);
        putc(',', f);
        num_or_empty(f, e->rom);
        putc(',', f);
        num_or_empty(f, x->rom);
        putc('\n', f);
    }
}

static void top_txt(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    char method[400], name[80], a[48], b[48];
    method_text(rep, method, sizeof method);
    fprintf(f, "top %d of %zu components by ratio of means\n%s\n", rep->top, rep->all.n, method);
    for (size_t i = 0; i < rep->all.n && (int)i < rep->top; i++) {
        const component *c = rep->all.rank[i];
        comp_name(c, name, sizeof name);
        fprintf(f, "%2zu. %-40s %+.4f %-20s  mean of ratios %+.4f %-20s  n %llu\n", i + 1, name,
                c->rom, interval(c->rom_lo, c->rom_hi, a), c->mean,
                interval(c->mor_lo, c->mor_hi, b), c->n);
    }
    if (rep->m->spec.verify_top) {
        char v[600];
        verified_text(rep, v, sizeof v);
        fprintf(f, "%s\n", v);
    }
}

/* An HTML table cell holding text t; left: aligned left. */
static void td(FILE *f, const char *t, int left)
{
    fputs(left ? "<td class=\"l\">" : "<td>", f);
    esc(f, t);
    fputs("</td>", f);
}

/* v as %+.4f (signed: 1) or %.4f, empty when not finite. */
static void td_num(FILE *f, double v, int sign)
{
    char buf[32] = "";
    if (isfinite(v)) snprintf(buf, sizeof buf, sign ? "%+.4f" : "%.4f", v);
    td(f, buf, 0);
}

/* A header row: th holds the names separated by '|'. */
static void tr_head(FILE *f, const char *th)
{
    fputs("<tr>", f);
    for (const char *p = th; *p;) {
        const char *e = strchr(p, '|');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        fprintf(f, "<th>%.*s</th>", (int)n, p);
        p += n + (e != NULL);
    }
    fputs("</tr>\n", f);
}

static void kv_row(FILE *f, const char *key, const char *value)
{
    fprintf(f, "<tr><th class=\"l\">%s</th>", key);
    td(f, value, 1);
    fputs("</tr>\n", f);
}

static void header_html(FILE *f, const report *rep)
{
    const mch_cmap *m = rep->m;
    const mch_job_spec *s = &m->spec;
    char buf[1200], method[400];
    fputs("<table>\n", f);
    kv_row(f, "model", s->model_path);
    snprintf(buf, sizeof buf, "%s (%s), %u layers, %u heads, hidden size %u", s->architecture,
             s->arch, s->layers, s->heads, s->hidden);
    kv_row(f, "architecture", buf);
    snprintf(buf, sizeof buf, "%s, position %s, direction %s", s->perturbation, s->position,
             *s->direction ? s->direction : "any");
    kv_row(f, "perturbation", buf);
    size_t o = 0;
    for (size_t i = 0; i < s->n_sweeps && o < sizeof buf; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? ", " : "", s->sweeps[i]);
    if (!s->n_sweeps) snprintf(buf, sizeof buf, "none");
    kv_row(f, "sweeps", buf);
    kv_row(f, "method", patching_text(s));
    snprintf(buf, sizeof buf, "%llu total, %llu used, %llu skipped, %llu failed",
             (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
             (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed);
    kv_row(f, "pairs", buf);
    snprintf(buf, sizeof buf,
             "%llu pairs moved with the axiom, %llu against (pairs not failed; skipped pairs "
             "included)",
             (unsigned long long)m->pairs_with, (unsigned long long)m->pairs_against);
    kv_row(f, "score change", buf);
    method_text(rep, method, sizeof method);
    kv_row(f, "estimates", method);
    kv_row(f, "software", s->software_version);
    fputs("</table>\n<h3>Provenance</h3>\n<table>\n", f);
    tr_head(f, "site|BLAS");
    for (size_t i = 0; i < m->n_provenance; i++) {
        const char *p = m->provenance[i], *tab = strchr(p, '\t');
        snprintf(buf, sizeof buf, "%.*s", tab ? (int)(tab - p) : (int)strlen(p), p);
        fputs("<tr>", f);
        td(f, *buf ? buf : "(unnamed)", 1);
        td(f, tab ? tab + 1 : "", 1);
        fputs("</tr>\n", f);
    }
    for (size_t i = 0; i < m->n_sites && !m->n_provenance; i++) {
        fputs("<tr>", f);
        td(f, *m->sites[i] ? m->sites[i] : "(unnamed)", 1);
        td(f, "", 1);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* A figure embedded as an object (so the cells' titles show on hover). */
static void figure_html(FILE *f, const char *h2, const char *file, const char *note)
{
    fprintf(f, "<h2>%s</h2>\n<p>%s</p>\n<object type=\"image/svg+xml\" data=\"%s\">%s</object>\n",
            h2, note, file, file);
}

enum { STRATUM_TOP = 5 };

/* One table per kind of stratum (the text before '='; the map holds them in that order). */
static void strata_html(FILE *f, const report *rep)
{
    const mch_cmap *m = rep->m;
    char name[80], a[48], buf[200];
    if (!m->n_strata) fputs("<p>No strata in this map.</p>\n", f);
    for (size_t i = 0; i < m->n_strata; i++) {
        const mch_cmap_stratum *s = &m->strata[i];
        const char *eq = strchr(s->name, '=');
        size_t kl = eq ? (size_t)(eq - s->name) : strlen(s->name);
        const char *prev = i ? m->strata[i - 1].name : NULL;
        const char *peq = prev ? strchr(prev, '=') : NULL;
        size_t pl = prev ? (peq ? (size_t)(peq - prev) : strlen(prev)) : 0;
        if (!prev || pl != kl || strncmp(prev, s->name, kl)) {
            if (prev) fputs("</table>\n", f);
            snprintf(buf, sizeof buf, "%.*s", (int)kl, s->name);
            fputs("<h3>", f);
            esc(f, buf);
            fputs("</h3>\n<table>\n", f);
            fprintf(f,
                    "<tr><th>stratum</th><th>pairs</th><th colspan=\"4\">top %d components by "
                    "ratio of means (interval, n)</th></tr>\n",
                    STRATUM_TOP);
        }
        const comp_set *cs = &rep->strata[i];
        size_t nt = cs->n < STRATUM_TOP ? cs->n : STRATUM_TOP;
        fprintf(f, "<tr><td class=\"l\" rowspan=\"%zu\">", nt ? nt : 1);
        esc(f, s->name);
        fprintf(f, "</td><td rowspan=\"%zu\">%llu</td>", nt ? nt : 1, (unsigned long long)s->pairs);
        if (!nt) fputs("<td colspan=\"4\">no components with pairs</td></tr>\n", f);
        for (size_t j = 0; j < nt; j++) {
            const component *c = cs->rank[j];
            comp_name(c, name, sizeof name);
            if (j) fputs("<tr>", f);
            td(f, name, 1);
            td_num(f, c->rom, 1);
            td(f, interval(c->rom_lo, c->rom_hi, a), 0);
            snprintf(buf, sizeof buf, "%llu", c->n);
            td(f, buf, 0);
            fputs("</tr>\n", f);
        }
    }
    if (m->n_strata) fputs("</table>\n", f);
}

static void top_html(FILE *f, const report *rep)
{
    char name[80], a[48], buf[32];
    fprintf(f, "<h2>Top %d components by ratio of means</h2>\n<table>\n", rep->top);
    tr_head(f, "#|component|ratio of means|interval|mean of ratios|std|interval (normal)|n");
    for (size_t i = 0; i < rep->all.n && (int)i < rep->top; i++) {
        const component *c = rep->all.rank[i];
        comp_name(c, name, sizeof name);
        snprintf(buf, sizeof buf, "%zu", i + 1);
        fputs("<tr>", f);
        td(f, buf, 0);
        td(f, name, 1);
        td_num(f, c->rom, 1);
        td(f, interval(c->rom_lo, c->rom_hi, a), 0);
        td_num(f, c->mean, 1);
        td_num(f, c->std, 0);
        td(f, interval(c->mor_lo, c->mor_hi, a), 0);
        snprintf(buf, sizeof buf, "%llu", c->n);
        td(f, buf, 0);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* The verified cells side by side, by |exact mean| largest first (the top rep->top). */
static void verified_html(FILE *f, const report *rep)
{
    if (!rep->m->spec.verify_top) return;
    char buf[600], name[80];
    verified_text(rep, buf, sizeof buf);
    fputs("<h2>Estimates verified by exact patching</h2>\n<p>", f);
    esc(f, buf);
    fputs(". Each cell: the pairs in which it was verified (its n), the mean of their estimated "
          "and exact effects. Every cell: <a href=\"verified.csv\">verified.csv</a>.</p>\n"
          "<table>\n",
          f);
    tr_head(f, "#|component|n|estimate|exact|estimate - exact");
    const component **r = malloc((rep->vex.n + 1) * sizeof *r);
    for (size_t i = 0; r && i < rep->vex.n; i++) r[i] = &rep->vex.c[i];
    if (r && rep->vex.n) qsort(r, rep->vex.n, sizeof *r, cmp_abs_desc);
    for (size_t i = 0; r && i < rep->vex.n && (int)i < rep->top; i++) {
        const component *x = r[i], *e = &rep->vest.c[x - rep->vex.c];
        comp_name(x, name, sizeof name);
        snprintf(buf, sizeof buf, "%zu", i + 1);
        fputs("<tr>", f);
        td(f, buf, 0);
        td(f, name, 1);
        snprintf(buf, sizeof buf, "%llu", x->n);
        td(f, buf, 0);
        td_num(f, e->mean, 1);
        td_num(f, x->mean, 1);
        td_num(f, e->mean - x->mean, 1);
        fputs("</tr>\n", f);
    }
    free(r);
    fputs("</table>\n", f);
}

static void index_html(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mechir circuit map</title>\n"
          "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
          "margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
          ".l{text-align:left}</style></head><body>\n<h1>Circuit map</h1>\n",
          f);
    header_html(f, rep);
    const char *rows = "First row: the ratio of means (hover a cell for its value, interval and "
                       "n); second row: the mean of ratios (value, std and n).";
    figure_html(f, "Heads", "heads.svg", rows);
    figure_html(f, "Blocks by token role", "blocks.svg", rows);
    figure_html(f, "Head-pos: listed heads by token role", "head_pos.svg", rows);
    fputs("<h2>Strata</h2>\n", f);
    strata_html(f, rep);
    figure_html(f, "Heads by stratum", "strata.svg", rows);
    top_html(f, rep);
    verified_html(f, rep);
    fputs("<p>Every component: <a href=\"components.csv\">components.csv</a>, "
          "<a href=\"components.json\">components.json</a>; the map itself: "
          "<code>mechir report MAP --format json</code>.</p>\n</body></html>\n",
          f);
}

/* ---- files ----------------------------------------------------------------------------------- */

mch_status mch_report_write(const mch_cmap *m, const char *dir, int top, mch_err *err)
{
    static const struct {
        const char *name;
        void (*fn)(FILE *, const void *);
    } files[] = {{"heads.svg", heads_svg},
                 {"blocks.svg", blocks_svg},
                 {"head_pos.svg", head_pos_svg},
                 {"strata.svg", strata_svg},
                 {"components.csv", components_csv},
                 {"components.json", components_json},
                 {"top.txt", top_txt},
                 {"verified.csv", verified_csv},
                 {"index.html", index_html}};
    enum { N_FILES = sizeof files / sizeof files[0] };
    const char *names[N_FILES];
    for (size_t i = 0; i < N_FILES; i++) names[i] = files[i].name;
    report r = {.m = m, .top = top};
    double lv = m->spec.ci_level;
    r.x.level = lv > 0 && lv < 1 ? lv : MCH_CI_DEFAULT;
    r.x.z = normal_quantile((1 + r.x.level) / 2);
    r.x.scratch = malloc(((size_t)m->spec.bootstrap + 1) * sizeof *r.x.scratch);
    r.strata = calloc(m->n_strata + 1, sizeof *r.strata);
    mch_status rc = r.x.scratch && r.strata
                        ? MCH_OK
                        : mch_fail(err, MCH_ERR_NOMEM, "out of memory for the report");
    finer_maps fm = {&m->qkv, &m->pattern, &m->rmid};
    if (!rc)
        rc = set_build(&r.all, &m->spec, &m->heads, &m->blocks, &m->hpz, &m->hpp, &fm, &r.x, err);
    if (!rc) rc = set_build(&r.vex, &m->spec, &m->vheads, &m->vblocks, NULL, NULL, NULL, &r.x, err);
    if (!rc)
        rc = set_build(&r.vest, &m->spec, &m->vheads_est, &m->vblocks_est, NULL, NULL, NULL, &r.x,
                       err);
    for (size_t i = 0; !rc && i < m->n_strata; i++)
        rc = set_build(&r.strata[i], &m->spec, &m->strata[i].heads, &m->strata[i].blocks, NULL,
                       NULL, NULL, &r.x, err);
    /* The files go into a temp directory that replaces dir as a whole (common/outdir.h). */
    mch_outdir od = {0};
    if (!rc) rc = mch_outdir_open(&od, dir, names, N_FILES, err);
    for (size_t i = 0; i < N_FILES && !rc; i++)
        rc = mch_outdir_write(&od, files[i].name, files[i].fn, &r, err);
    if (!rc) rc = mch_outdir_commit(&od, err);
    mch_outdir_abort(&od);
    set_free(&r.all);
    set_free(&r.vex);
    set_free(&r.vest);
    for (size_t i = 0; r.strata && i < m->n_strata; i++) set_free(&r.strata[i]);
    free(r.strata);
    free(r.x.scratch);
    return rc;
}
