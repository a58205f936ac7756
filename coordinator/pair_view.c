/* One pair's views (see pair_view.h): the pair found in the pairs file and checked, then each
 * figure drawn by one grid function from a row-major matrix of doubles, with the pieces every
 * figure of the report shares (svg.h). Every text that reaches SVG or HTML is escaped, tokens
 * included (a vocabulary is input too). */
#include "pair_view.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "jsonout.h"
#include "outdir.h"
#include "perturb.h"
#include "svg.h"

enum { MAX_T = 1 << 16, MAX_L = 1024 };
static const char *const sites[3] = {"resid_pre", "attn_out", "mlp_out"};
/* MechIR's plot_blocks subplot titles, in the sites' order. */
static const char *const site_titles[3] = {"Residual Stream", "Attn Output", "MLP Output"};

int mch_pair_id_norm(const char *s, char out[17])
{
    if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2)) s += 2;
    size_t n = strlen(s);
    if (n < 1 || n > 16) return -1;
    memset(out, '0', 16 - n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1;
        out[16 - n + i] = c;
    }
    out[16] = 0;
    return 0;
}

/* ---- the pair, read back --------------------------------------------------------------------- */

void mch_pair_rec_deinit(mch_pair_rec *r)
{
    free(r->qid), free(r->docno), free(r->term), free(r->skipped), free(r->error);
    free(r->ids_baseline), free(r->ids_perturbed), free(r->roles);
    free(r->heads), free(r->blocks);
    memset(r, 0, sizeof *r);
}

/* Where a failure is reported: "PATH:LINE: pair ID: ". */
typedef struct {
    const char *path;
    long line;
    const char *id;
} where;

#define BAD(w, ...) bad_field(w, err, __VA_ARGS__)
__attribute__((format(printf, 3, 4))) static mch_status bad_field(const where *w, mch_err *err,
                                                                  const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: pair %s: %s", w->path, w->line, w->id, msg);
}

/* A copy of the string member key, NULL when absent or null. */
static mch_status str_member(const cJSON *o, const char *key, char **out, const where *w,
                             mch_err *err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!x || cJSON_IsNull(x)) return MCH_OK;
    if (!cJSON_IsString(x)) return BAD(w, "\"%s\" is not a string", key);
    *out = strdup(x->valuestring);
    return *out ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
}

/* An array of n (n < 0: any count, set) token ids (0 <= id < 2^31) into a new array. */
static mch_status id_array(const cJSON *o, const char *key, int *n, int32_t **out, const where *w,
                           mch_err *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return BAD(w, "no \"%s\" array", key);
    int len = cJSON_GetArraySize(a);
    if (*n < 0 && (len < 1 || len > MAX_T))
        return BAD(w, "\"%s\" holds %d ids (1 to %d)", key, len, MAX_T);
    if (*n >= 0 && len != *n) return BAD(w, "\"%s\" holds %d ids, not %d", key, len, *n);
    *n = len;
    *out = malloc((size_t)len * sizeof **out);
    if (!*out) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > INT32_MAX ||
            x->valuedouble != floor(x->valuedouble))
            return BAD(w, "\"%s\"[%d] is not a token id", key, i);
        (*out)[i] = (int32_t)x->valuedouble;
    }
    return MCH_OK;
}

/* rows arrays of cols numbers (null: NAN; *rows < 0: any count >= 1, set) into out. */
static mch_status num_rows(const cJSON *a, const char *name, int *rows, int cols, double *out,
                           const where *w, mch_err *err)
{
    if (!cJSON_IsArray(a)) return BAD(w, "\"%s\" is not an array", name);
    int n = cJSON_GetArraySize(a);
    if (*rows < 0 && (n < 1 || n > MAX_L)) return BAD(w, "\"%s\" has %d rows", name, n);
    if (*rows >= 0 && n != *rows) return BAD(w, "\"%s\" has %d rows, not %d", name, n, *rows);
    *rows = n;
    int r = 0;
    for (const cJSON *row = a->child; row; row = row->next, r++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != cols)
            return BAD(w, "\"%s\"[%d] is not an array of %d numbers", name, r, cols);
        int c = 0;
        for (const cJSON *x = row->child; x; x = x->next, c++) {
            if (!cJSON_IsNumber(x) && !cJSON_IsNull(x))
                return BAD(w, "\"%s\"[%d][%d] is not a number", name, r, c);
            if (out) out[(size_t)r * cols + c] = cJSON_IsNull(x) ? NAN : x->valuedouble;
        }
    }
    return MCH_OK;
}

static mch_status read_maps(mch_pair_rec *r, const cJSON *o, const where *w, mch_err *err)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "blocks");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "heads");
    int L = -1;
    if (b) {
        if (!cJSON_IsObject(b)) return BAD(w, "\"blocks\" is not an object");
        const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(b, sites[0]);
        int n = cJSON_IsArray(s0) ? cJSON_GetArraySize(s0) : 0;
        if (n < 1 || n > MAX_L) return BAD(w, "\"blocks\".\"%s\" has %d rows", sites[0], n);
        r->blocks = malloc((size_t)3 * n * r->T * sizeof *r->blocks);
        if (!r->blocks) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        for (int s = 0; s < 3; s++) {
            char name[32];
            snprintf(name, sizeof name, "blocks.%s", sites[s]);
            mch_status rc = num_rows(cJSON_GetObjectItemCaseSensitive(b, sites[s]), name, &L, r->T,
                                     r->blocks + (size_t)s * n * r->T, w, err);
            if (rc) return rc;
        }
    }
    if (h) {
        const cJSON *h0 = cJSON_IsArray(h) ? h->child : NULL;
        int NH = cJSON_IsArray(h0) ? cJSON_GetArraySize(h0) : 0;
        if (NH < 1 || NH > MAX_L) return BAD(w, "\"heads\" is not an array of rows of heads");
        int rows = L;
        mch_status rc = num_rows(h, "heads", &rows, NH, NULL, w, err); /* the shape first */
        if (rc) return rc;
        r->heads = malloc((size_t)rows * NH * sizeof *r->heads);
        if (!r->heads) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        (void)num_rows(h, "heads", &rows, NH, r->heads, w, err);
        L = rows, r->NH = NH;
    }
    r->L = L < 0 ? 0 : L;
    return MCH_OK;
}

static mch_status read_pair(mch_pair_rec *r, const cJSON *o, const where *w, mch_err *err)
{
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(o, "position");
    r->position = cJSON_IsNumber(pos) ? (int)pos->valuedouble : -1;
    const cJSON *sb = cJSON_GetObjectItemCaseSensitive(o, "score_baseline");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "score_perturbed");
    r->score_baseline = cJSON_IsNumber(sb) ? sb->valuedouble : NAN;
    r->score_perturbed = cJSON_IsNumber(sp) ? sp->valuedouble : NAN;
    mch_status rc = str_member(o, "qid", &r->qid, w, err);
    if (!rc) rc = str_member(o, "docno", &r->docno, w, err);
    if (!rc) rc = str_member(o, "term", &r->term, w, err);
    if (!rc) rc = str_member(o, "skipped", &r->skipped, w, err);
    if (!rc) rc = str_member(o, "error", &r->error, w, err);
    if (rc) return rc;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "baseline_ids");
    if ((r->error || r->skipped) && (!ids || cJSON_GetArraySize(ids) == 0))
        return mch_fail(err, MCH_ERR_ARG,
                        "%s:%ld: pair %s has no tokens to show: %s in the run (%s)", w->path,
                        w->line, w->id, r->error ? "it failed" : "it was skipped",
                        r->error ? r->error : r->skipped);
    r->T = -1;
    rc = id_array(o, "baseline_ids", &r->T, &r->ids_baseline, w, err);
    if (!rc) rc = id_array(o, "perturbed_ids", &r->T, &r->ids_perturbed, w, err);
    if (rc) return rc;
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(o, "roles");
    if (!cJSON_IsArray(roles) || cJSON_GetArraySize(roles) != r->T)
        return BAD(w, "\"roles\" is not an array of %d role names", r->T);
    r->roles = malloc((size_t)r->T);
    if (!r->roles) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    int t = 0;
    for (const cJSON *x = roles->child; x; x = x->next, t++) {
        int k = 0;
        while (k < MCH_ROLE_COUNT &&
               !(cJSON_IsString(x) && !strcmp(x->valuestring, mch_role_name((mch_role)k))))
            k++;
        if (k == MCH_ROLE_COUNT) return BAD(w, "\"roles\"[%d] is not a token role", t);
        r->roles[t] = (uint8_t)k;
    }
    return read_maps(r, o, w, err);
}

/* Whether line is the pair id: the writer's own prefix is compared without parsing; any other
 * line is parsed (so a file rewritten by another tool is read too). *o: the parsed line or NULL. */
static int line_is(const char *line, size_t len, const char *id, cJSON **o)
{
    static const char pre[] = "{\"pair_id\":\"";
    *o = NULL;
    if (len > sizeof pre + 16 && !memcmp(line, pre, sizeof pre - 1))
        return !memcmp(line + sizeof pre - 1, id, 16) && line[sizeof pre - 1 + 16] == '"';
    *o = mch_json_parse_exact(line, len);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(*o, "pair_id");
    char norm[17];
    return cJSON_IsString(p) && !mch_pair_id_norm(p->valuestring, norm) && !strcmp(norm, id);
}

mch_status mch_pair_find(mch_pair_rec *out, const char *path, const char *id, mch_err *err)
{
    memset(out, 0, sizeof *out);
    mch_lines *l = NULL;
    mch_status rc = mch_lines_open(&l, path, 0, err);
    char *line = NULL;
    size_t len = 0;
    long lineno = 0, pairs = 0;
    cJSON *o = NULL;
    while (!rc && !(rc = mch_lines_next(l, &line, &len, &lineno, err)) && line) {
        if (!len) continue;
        pairs++;
        if (line_is(line, len, id, &o)) break;
        cJSON_Delete(o);
        o = NULL;
    }
    where w = {path, lineno, id};
    if (!rc && !line)
        rc = mch_fail(err, MCH_ERR_ARG, "%s: no pair %s among its %ld pairs", path, id, pairs);
    if (!rc && !o) o = mch_json_parse_exact(line, len);
    if (!rc && !cJSON_IsObject(o)) rc = BAD(&w, "the line is not a JSON object");
    if (!rc) {
        snprintf(out->id, sizeof out->id, "%s", id);
        out->line = lineno;
        rc = read_pair(out, o, &w, err);
    }
    cJSON_Delete(o);
    mch_lines_close(l);
    if (rc) mch_pair_rec_deinit(out);
    return rc;
}

/* ---- heads and token types ------------------------------------------------------------------- */

int mch_pair_top_heads(const mch_pair_rec *r, int k, int *heads)
{
    if (!r->heads) return 0;
    int n = r->L * r->NH, got = 0;
    if (k > n) k = n;
    /* k passes of a selection: the heads are few (L * NH), k is small. */
    unsigned char *used = calloc((size_t)n, 1);
    if (!used) return 0;
    for (; got < k; got++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            double a = fabs(r->heads[i]);
            if (used[i] || isnan(a)) continue;
            if (best < 0 || a > fabs(r->heads[best])) best = i;
        }
        if (best < 0) break;
        used[best] = 1;
        heads[2 * got] = best / r->NH, heads[2 * got + 1] = best % r->NH;
    }
    free(used);
    return got;
}

static int query_role(uint8_t r)
{
    return r == MCH_ROLE_QUERY_TERM || r == MCH_ROLE_QUERY_OTHER;
}

static int doc_role(uint8_t r)
{
    return r == MCH_ROLE_INJECTED || r >= MCH_ROLE_DOC_TERM;
}

mch_status mch_pair_types(const mch_pair_rec *r, const mch_tok *t, int32_t *types, mch_err *err)
{
    size_t T = (size_t)r->T, na = 0, nb = 0;
    size_t cap = T + (size_t)mch_tok_n_special(t, true) + 1;
    int32_t *a = malloc(cap * 3 * sizeof *a), *b = a + T, *ids = a + 2 * T;
    int32_t *ty = malloc(cap * sizeof *ty);
    if (!a || !ty) {
        free(a), free(ty);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < T; i++) {
        if (query_role(r->roles[i])) a[na++] = r->ids_baseline[i];
        if (doc_role(r->roles[i])) b[nb++] = r->ids_baseline[i];
    }
    size_t n = na ? mch_tok_assemble(t, a, na, b, nb, ids, ty, NULL)
                  : mch_tok_assemble(t, b, nb, NULL, 0, ids, ty, NULL);
    size_t i = 0;
    while (i < n && i < T && ids[i] == r->ids_baseline[i]) i++;
    mch_status rc = MCH_OK;
    if (i < n || n != T)
        rc = mch_fail(err, MCH_ERR_FORMAT,
                      "pair %s: the tokenizer lays out its query and document pieces as %zu ids, "
                      "position %zu id %d, where the run has %d ids, id %d: not the run's model?",
                      r->id, n, i, i < n ? (int)ids[i] : -1, r->T,
                      i < T ? (int)r->ids_baseline[i] : -1);
    else
        memcpy(types, ty, T * sizeof *types);
    free(a), free(ty);
    return rc;
}

/* ---- drawing --------------------------------------------------------------------------------- */

/* What the writers share: the view and the pair's labels. */
typedef struct {
    const mch_pair_view *v;
    const char **tok_b, **tok_p; /* (T) token strings of both runs */
    int label_chars;             /* the longest token, in characters */
    int differ;                  /* some position holds different ids */
} ctx;

/* A panel: rows x cols values (row-major), row 0 drawn at the bottom as in MechIR's plotly
 * heatmaps. Columns are labelled by col_b (and, below, by col_p where it is not NULL and differs:
 * the perturbed tokens); rows by row_labels. */
typedef struct panel {
    const char *id;    /* data-panel: "resid_pre", "baseline", ... */
    const char *title; /* above the panel */
    const double *v;
    int rows, cols;
    int cw, ch; /* cell size, px */
    double max; /* colour scale [-max, max] */
    const char *const *row_labels;
    const char *const *col_b, *const *col_p;
    const char *x_title, *y_title;
    /* The cell's hover text after "PANEL ": writes row r, column c of panel p. */
    void (*cell_text)(FILE *f, const ctx *x, const struct panel *p, int r, int c);
    int left;    /* width of the row labels' margin, px */
    int label_h; /* height of one row of column labels, px */
} panel;

static int utf8_chars(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* The height a panel takes at its grid's top left corner: title, grid, labels, axis title. */
static int panel_h(const panel *p, int two_label_rows)
{
    return 24 + p->rows * p->ch + 8 + p->label_h * (1 + two_label_rows) + 24;
}

static int panel_w(const panel *p)
{
    return p->left + p->cols * p->cw + 24;
}

/* A value as data-v: every digit a double needs to read back the same; "nan" when not finite. */
static void data_v(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " data-v=\"%.17g\"", v);
    else
        fputs(" data-v=\"nan\"", f);
}

/* Draws p with its title at (x0, y0); the grid starts at (x0 + left, y0 + 24). */
static void draw(FILE *f, const ctx *x, const panel *p, int x0, int y0, int two_label_rows)
{
    int gx = x0 + p->left, gy = y0 + 24, font = p->cw < 12 ? (p->cw < 6 ? 5 : p->cw - 2) : 10;
    fprintf(f, "<g class=\"panel\" data-panel=\"%s\">\n", p->id);
    mch_svg_text(f, gx, y0 + 14, 12, " font-weight=\"bold\"", p->title);
    for (int r = 0; r < p->rows; r++) {
        int y = gy + (p->rows - 1 - r) * p->ch;
        char attrs[80];
        snprintf(attrs, sizeof attrs, " class=\"ylab\" data-r=\"%d\" text-anchor=\"end\"", r);
        mch_svg_text(f, gx - 4, y + p->ch / 2 + font / 2 - 1, p->ch < 12 ? font : 10, attrs,
                     p->row_labels[r]);
        for (int c = 0; c < p->cols; c++) {
            double v = p->v[(size_t)r * p->cols + c];
            char fill[8] = "#cccccc";
            if (isfinite(v)) mch_svg_colour(v, p->max, fill);
            fprintf(f,
                    "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                    "fill=\"%s\" data-r=\"%d\" data-c=\"%d\"",
                    gx + c * p->cw, y, p->cw, p->ch, fill, r, c);
            data_v(f, v);
            fputs("><title>", f);
            mch_svg_esc(f, p->id);
            putc(' ', f);
            p->cell_text(f, x, p, r, c);
            fprintf(f, isfinite(v) ? ": %.6g</title></rect>\n" : ": none</title></rect>\n", v);
        }
    }
    int ly = gy + p->rows * p->ch + 4;
    for (int c = 0; c < p->cols; c++) {
        int cx = gx + c * p->cw + p->cw / 2 + font / 2 - 1;
        for (int k = 0; k < 1 + (p->col_p != NULL); k++) {
            const char *s = k ? p->col_p[c] : p->col_b[c];
            if (k && x->v->rec->ids_baseline[c] == x->v->rec->ids_perturbed[c]) continue;
            int y = ly + k * p->label_h;
            char attrs[160];
            snprintf(attrs, sizeof attrs,
                     " class=\"xlab\" data-c=\"%d\" data-run=\"%s\" text-anchor=\"end\" "
                     "transform=\"rotate(-90 %d %d)\"%s",
                     c, k ? "perturbed" : "baseline", cx, y, k ? " fill=\"#b2182b\"" : "");
            mch_svg_text(f, cx, y, font, attrs, s);
        }
    }
    int bottom = ly + p->label_h * (1 + two_label_rows);
    mch_svg_text(f, gx + p->cols * p->cw / 2, bottom + 14, 11, " text-anchor=\"middle\"",
                 p->x_title);
    int ym = gy + p->rows * p->ch / 2;
    char attrs[96];
    snprintf(attrs, sizeof attrs, " text-anchor=\"middle\" transform=\"rotate(-90 %d %d)\"",
             x0 + 12, ym);
    mch_svg_text(f, x0 + 12, ym, 11, attrs, p->y_title);
    fputs("</g>\n", f);
}

/* The largest |value| of n, at least floor. */
static double abs_max(const double *v, size_t n, double floor)
{
    double m = floor;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]) && fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

/* The figure's first line: which pair. */
static void pair_line(FILE *f, const mch_pair_rec *r, const char *what)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s: pair %s (qid %s, docno %s, term '%s'), score %.6g -> %.6g", what,
             r->id, r->qid ? r->qid : "?", r->docno ? r->docno : "?", r->term ? r->term : "",
             r->score_baseline, r->score_perturbed);
    mch_svg_text(f, 20, 22, 14, " font-weight=\"bold\"", buf);
}

/* ---- blocks.svg ------------------------------------------------------------------------------ */

static void token_text(FILE *f, const ctx *x, int t)
{
    const mch_pair_rec *r = x->v->rec;
    fprintf(f, "position %d '", t);
    mch_svg_esc(f, x->tok_b[t]);
    if (r->ids_baseline[t] != r->ids_perturbed[t]) {
        fputs("' -> '", f);
        mch_svg_esc(f, x->tok_p[t]);
    }
    fputs("' (", f);
    mch_svg_esc(f, mch_role_name((mch_role)r->roles[t]));
    putc(')', f);
}

static void block_cell(FILE *f, const ctx *x, const panel *p, int r, int c)
{
    (void)p;
    fprintf(f, "layer %d ", r);
    token_text(f, x, c);
}

static void blocks_svg(FILE *f, const void *arg)
{
    const ctx *x = arg;
    const mch_pair_rec *r = x->v->rec;
    int L = r->L, T = r->T;
    if (!r->blocks) {
        mch_svg_begin(f, 640, 70);
        pair_line(f, r, "blocks");
        mch_svg_text(f, 20, 50, 12, "",
                     r->skipped ? "the pair was skipped: no maps"
                     : r->error ? "the pair failed in the run: no maps"
                                : "no blocks sweep in this run");
        fputs("</svg>\n", f);
        return;
    }
    char layer_txt[MAX_L][12];
    const char *layers[MAX_L];
    for (int l = 0; l < L; l++)
        snprintf(layer_txt[l], sizeof layer_txt[l], "%d", l), layers[l] = layer_txt[l];
    double max = abs_max(r->blocks, (size_t)3 * L * T, 1);
    panel p[3];
    char titles[3][64];
    for (int s = 0; s < 3; s++) {
        snprintf(titles[s], sizeof titles[s], "%s (blocks.L.hook_%s)", site_titles[s], sites[s]);
        p[s] = (panel){sites[s],
                       titles[s],
                       r->blocks + (size_t)s * L * T,
                       L,
                       T,
                       16,
                       18,
                       max,
                       layers,
                       x->tok_b,
                       x->tok_p,
                       "Position",
                       "Layer",
                       block_cell,
                       56,
                       6 * x->label_chars + 8};
    }
    int h1 = panel_h(&p[0], x->differ), w = panel_w(&p[0]) + 20;
    if (w < 900) w = 900;
    mch_svg_begin(f, w, 36 + 3 * h1 + 50);
    pair_line(f, r, "blocks");
    for (int s = 0; s < 3; s++) draw(f, x, &p[s], 20, 36 + s * h1, x->differ);
    mch_svg_legend(f, 20 + 56, 36 + 3 * h1 + 10, max,
                   "effect (patched - baseline) / (perturbed - baseline) (grey: none)");
    fputs("</svg>\n", f);
}

/* ---- attention_L.H.svg ----------------------------------------------------------------------- */

typedef struct {
    const ctx *x;
    int k; /* which head of the view */
} head_ctx;

static const char *const attn_runs[3] = {"baseline", "perturbed", "difference"};

/* "query 3 'what' key 5 'is'": the panel's own run's tokens. */
static void attn_cell(FILE *f, const ctx *x, const panel *p, int r, int c)
{
    (void)x;
    fprintf(f, "query %d '", r);
    mch_svg_esc(f, p->row_labels[r]);
    fprintf(f, "' key %d '", c);
    mch_svg_esc(f, p->col_b[c]);
    putc('\'', f);
}

/* The cell size of a T x T pattern: 14 px for short pairs, down to 4 px for 512 tokens. */
static int attn_cell_px(int T)
{
    return T <= 48 ? 14 : T <= 96 ? 10 : T <= 200 ? 6 : 4;
}

static void attention_svg(FILE *f, const void *arg)
{
    const head_ctx *hc = arg;
    const ctx *x = hc->x;
    const mch_pair_view *v = x->v;
    const mch_pair_rec *r = v->rec;
    size_t T = (size_t)r->T, TT = T * T;
    int l = v->heads[2 * hc->k], h = v->heads[2 * hc->k + 1];
    double *m = malloc(3 * TT * sizeof *m);
    if (!m) { /* the figure then says so; the file is still whole SVG */
        mch_svg_begin(f, 400, 60);
        mch_svg_text(f, 20, 36, 12, "", "out of memory for this figure");
        fputs("</svg>\n", f);
        return;
    }
    for (size_t i = 0; i < TT; i++) {
        m[i] = v->pat_baseline[hc->k * TT + i];
        m[TT + i] = v->pat_perturbed[hc->k * TT + i];
        m[2 * TT + i] = m[TT + i] - m[i];
    }
    /* Both runs on one scale (their largest weight), so that they compare; the difference on
     * its own. */
    double pmax = abs_max(m, 2 * TT, 1e-6), dmax = abs_max(m + 2 * TT, TT, 1e-6);
    int cw = attn_cell_px(r->T), left = 6 * x->label_chars + 40;
    panel p[3];
    char titles[3][96];
    const char *const *labels[3] = {x->tok_b, x->tok_p, x->tok_b};
    for (int k = 0; k < 3; k++) {
        snprintf(titles[k], sizeof titles[k], "%s: blocks.%d.attn.hook_pattern head %d%s",
                 k < 2 ? attn_runs[k] : "perturbed - baseline", l, h,
                 k == 2 ? " (its own scale)" : "");
        p[k] = (panel){attn_runs[k],
                       titles[k],
                       m + k * TT,
                       r->T,
                       r->T,
                       cw,
                       cw,
                       k < 2 ? pmax : dmax,
                       labels[k],
                       labels[k],
                       NULL,
                       "Source (key)",
                       "Destination (query)",
                       attn_cell,
                       left,
                       6 * x->label_chars + 8};
    }
    int pw = panel_w(&p[0]), ph = panel_h(&p[0], 0);
    mch_svg_begin(f, 20 + 3 * pw, 36 + ph + 50);
    char what[64];
    snprintf(what, sizeof what, "attention of head %d.%d", l, h);
    pair_line(f, r, what);
    for (int k = 0; k < 3; k++) draw(f, x, &p[k], 20 + k * pw, 36, 0);
    mch_svg_legend(f, 20 + left, 36 + ph + 10, pmax,
                   "attention weight (baseline and perturbed, one scale)");
    mch_svg_legend(f, 20 + 2 * pw + left, 36 + ph + 10, dmax, "perturbed - baseline");
    fputs("</svg>\n", f);
    free(m);
}

/* ---- index.html ------------------------------------------------------------------------------ */

static void row_kv(FILE *f, const char *k, const char *val)
{
    fprintf(f, "<tr><th class=\"l\">%s</th><td class=\"l\">", k);
    mch_svg_esc(f, val ? val : "");
    fputs("</td></tr>\n", f);
}

static void index_html(FILE *f, const void *arg)
{
    const ctx *x = arg;
    const mch_pair_view *v = x->v;
    const mch_pair_rec *r = v->rec;
    char buf[160];
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mechir pair ", f);
    fputs(r->id, f);
    fputs("</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
          "collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:"
          "right}.l{text-align:left}.d{color:#b2182b}</style></head><body>\n<h1>Pair ",
          f);
    fputs(r->id, f);
    fputs("</h1>\n<table>\n", f);
    snprintf(buf, sizeof buf, "%s:%ld", v->pairs_path, r->line);
    row_kv(f, "pairs file", buf);
    row_kv(f, "model (tokens)", v->model_dir);
    row_kv(f, "qid", r->qid);
    row_kv(f, "docno", r->docno);
    row_kv(f, "term", r->term);
    snprintf(buf, sizeof buf, "%d", r->position);
    row_kv(f, "position", buf);
    snprintf(buf, sizeof buf, "baseline %.9g, perturbed %.9g", r->score_baseline,
             r->score_perturbed);
    row_kv(f, "score", buf);
    if (r->skipped) row_kv(f, "skipped", r->skipped);
    if (r->error) row_kv(f, "error", r->error);
    fputs("</table>\n<h2>Blocks by position</h2>\n<p>The effect (patched - baseline) / "
          "(perturbed - baseline) of patching one position of one site with the perturbed run's "
          "activation, as MechIR's plot_blocks; hover a cell for its value.</p>\n"
          "<object type=\"image/svg+xml\" data=\"blocks.svg\">blocks.svg</object>\n",
          f);
    fputs("<h2>Attention patterns</h2>\n", f);
    if (!v->pat_baseline || !v->n_heads) {
        fputs("<p>", f);
        mch_svg_esc(f, v->why_no_patterns ? v->why_no_patterns : "none asked for");
        fputs("</p>\n", f);
    }
    for (int k = 0; v->pat_baseline && k < v->n_heads; k++) {
        int l = v->heads[2 * k], h = v->heads[2 * k + 1];
        fprintf(f, "<h3>Head %d.%d", l, h);
        if (r->heads && l < r->L && h < r->NH)
            fprintf(f, " (effect %.6g)", r->heads[(size_t)l * r->NH + h]);
        fprintf(f,
                "</h3>\n<object type=\"image/svg+xml\" data=\"attention_%d.%d.svg\">"
                "attention_%d.%d.svg</object>\n",
                l, h, l, h);
    }
    if (r->heads) {
        fputs("<h2>Head effects of this pair</h2>\n<table>\n<tr><th>layer</th>", f);
        for (int h = 0; h < r->NH; h++) fprintf(f, "<th>head %d</th>", h);
        fputs("</tr>\n", f);
        for (int l = 0; l < r->L; l++) {
            fprintf(f, "<tr><th>%d</th>", l);
            for (int h = 0; h < r->NH; h++)
                fprintf(f, "<td>%+.4f</td>", r->heads[(size_t)l * r->NH + h]);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    fputs("<h2>Tokens</h2>\n<table>\n<tr><th>position</th><th>role</th><th class=\"l\">baseline"
          "</th><th class=\"l\">perturbed</th></tr>\n",
          f);
    for (int t = 0; t < r->T; t++) {
        int d = r->ids_baseline[t] != r->ids_perturbed[t];
        fprintf(f, "<tr%s><td>%d</td><td class=\"l\">%s</td><td class=\"l\">",
                d ? " class=\"d\"" : "", t, mch_role_name((mch_role)r->roles[t]));
        mch_svg_esc(f, x->tok_b[t]);
        fputs("</td><td class=\"l\">", f);
        mch_svg_esc(f, x->tok_p[t]);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n</body></html>\n", f);
}

/* ---- files ----------------------------------------------------------------------------------- */

/* The token strings of ids (T) into out; an id the tokenizer has no token for fails. */
static mch_status tokens(const mch_pair_view *v, const int32_t *ids, const char *run,
                         const char **out, int *chars, mch_err *err)
{
    for (int t = 0; t < v->rec->T; t++) {
        out[t] = mch_tok_token(v->tok, ids[t]);
        if (!out[t])
            return mch_fail(err, MCH_ERR_FORMAT,
                            "pair %s: %s id %d at position %d is not in %s's vocabulary (%d "
                            "tokens): not the run's model?",
                            v->rec->id, run, (int)ids[t], t, v->model_dir,
                            (int)mch_tok_size(v->tok));
        int n = utf8_chars(out[t]);
        if (n > *chars) *chars = n;
    }
    return MCH_OK;
}

mch_status mch_pair_view_write(const mch_pair_view *v, const char *dir, mch_err *err)
{
    const mch_pair_rec *r = v->rec;
    if (r->L > MAX_L) return mch_fail(err, MCH_ERR_SHAPE, "pair %s: %d layers", r->id, r->L);
    size_t n_names = 2 + (size_t)v->L * v->NH;
    ctx x = {v, calloc((size_t)r->T * 2, sizeof(char *)), NULL, 1, 0};
    char **names = calloc(n_names, sizeof *names);
    head_ctx *hc = calloc((size_t)v->n_heads + 1, sizeof *hc);
    mch_status rc = x.tok_b && names && hc ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) {
        x.tok_p = x.tok_b + r->T;
        rc = tokens(v, r->ids_baseline, "baseline", x.tok_b, &x.label_chars, err);
    }
    if (!rc) rc = tokens(v, r->ids_perturbed, "perturbed", x.tok_p, &x.label_chars, err);
    for (int t = 0; !rc && t < r->T; t++) x.differ |= r->ids_baseline[t] != r->ids_perturbed[t];
    /* Every file a view of this model may hold, so a view of other heads can replace this one. */
    for (size_t i = 0; !rc && i < n_names; i++) {
        char buf[64];
        if (i < 2)
            snprintf(buf, sizeof buf, "%s", i ? "blocks.svg" : "index.html");
        else
            snprintf(buf, sizeof buf, "attention_%zu.%zu.svg", (i - 2) / v->NH, (i - 2) % v->NH);
        if (!(names[i] = strdup(buf))) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    mch_outdir od = {0};
    if (!rc) rc = mch_outdir_open(&od, dir, (const char *const *)names, n_names, err);
    if (!rc) rc = mch_outdir_write(&od, "blocks.svg", blocks_svg, &x, err);
    for (int k = 0; !rc && v->pat_baseline && k < v->n_heads; k++) {
        char name[48];
        snprintf(name, sizeof name, "attention_%d.%d.svg", v->heads[2 * k], v->heads[2 * k + 1]);
        hc[k] = (head_ctx){&x, k};
        rc = mch_outdir_write(&od, name, attention_svg, &hc[k], err);
    }
    if (!rc) rc = mch_outdir_write(&od, "index.html", index_html, &x, err);
    if (!rc) rc = mch_outdir_commit(&od, err);
    mch_outdir_abort(&od);
    for (size_t i = 0; names && i < n_names; i++) free(names[i]);
    free(names);
    free(hc);
    free(x.tok_b);
    return rc;
}
