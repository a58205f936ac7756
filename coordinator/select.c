/* The pairs a run with --select patches (see select.h): the scores journal read once in pair
 * order, one sort by (group, Δ descending, pair id, index), the first K of each group. */
#include "select.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "journal.h"
#include "msg.h"

/* One scored pair. */
typedef struct {
    double delta;
    uint64_t pair_id, index;
    int32_t grade; /* -1: none (or every pair without per grade) */
} candidate;

void mch_selection_deinit(mch_selection *sel)
{
    if (!sel) return;
    free(sel->indices);
    free(sel->pair_ids);
    free(sel->deltas);
    free(sel->groups);
    memset(sel, 0, sizeof *sel);
}

/* Groups by grade ascending, no grade last; then Δ descending, pair id, index ascending. */
static int cmp_candidate(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->grade != y->grade) {
        if (x->grade < 0 || y->grade < 0) return x->grade < 0 ? 1 : -1;
        return x->grade < y->grade ? -1 : 1;
    }
    if (x->delta != y->delta) return x->delta > y->delta ? -1 : 1;
    if (x->pair_id != y->pair_id) return x->pair_id < y->pair_id ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_by_index(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_rec(const void *a, const void *b)
{
    const mch_journal_rec *x = a, *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Reads every pair's scores from the journal j (records sorted, each checked by
 * mch_journal_load as a score unit's result of spec) into c (n_pairs), counting the failed ones
 * (left out: *n_ok is how many c holds). */
static mch_status read_scores(const mch_journal *j, FILE *f, const mch_job_spec *spec,
                              uint64_t n_pairs, int per_grade, candidate *c, size_t *n_ok,
                              uint64_t *failed, mch_err *err)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t next = 0;
    mch_journal_expect x = {spec, MCH_UNIT_SCORE, n_pairs};
    mch_status rc = MCH_OK;
    *n_ok = 0;
    *failed = 0;
    for (size_t i = 0; !rc && i < j->n_recs; i++) {
        const mch_journal_rec *r = &j->recs[i];
        mch_pair_result pr;
        if ((rc = mch_journal_load(j, f, r, &x, &buf, &cap, &pr, err))) break;
        if (i && r->index == j->recs[i - 1].index) { /* scored again after a crash */
            mch_pair_result_deinit(&pr);
            continue;
        }
        if (r->index != next++) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: pair #%llu is not scored", j->path,
                          (unsigned long long)(next - 1));
        } else if (pr.error) {
            ++*failed;
        } else {
            c[(*n_ok)++] =
                (candidate){pr.score_perturbed - pr.score_baseline, pr.pair.pair_id, pr.pair.index,
                            per_grade && pr.pair.relevance >= 0 ? pr.pair.relevance : -1};
        }
        mch_pair_result_deinit(&pr);
    }
    if (!rc && next != n_pairs)
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: %llu pairs scored, %llu expected", j->path,
                      (unsigned long long)next, (unsigned long long)n_pairs);
    free(buf);
    return rc;
}

/* Keeps the first k of each group of the sorted c[0..n) in c (moved to the front), filling
 * sel's groups; @return how many were kept. */
static size_t take_groups(candidate *c, size_t n, uint64_t k, mch_selection *sel)
{
    size_t kept = 0;
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && c[end].grade == c[i].grade) end++;
        mch_select_group *g = &sel->groups[sel->n_groups++];
        g->grade = c[i].grade;
        g->scored = end - i;
        g->selected = g->scored < k ? g->scored : k;
        g->threshold = c[i + g->selected - 1].delta;
        for (size_t t = 0; t < g->selected; t++) c[kept++] = c[i + t];
        i = end;
    }
    return kept;
}

mch_status mch_select_top_delta(const char *path, const mch_job_spec *spec, uint64_t n_pairs,
                                uint64_t k, int per_grade, mch_selection *sel, mch_err *err)
{
    memset(sel, 0, sizeof *sel);
    sel->k = k;
    sel->per_grade = per_grade;
    sel->pairs_scored = n_pairs;
    if (k < 1) return mch_fail(err, MCH_ERR_ARG, "top-delta needs K >= 1");
    mch_journal j = {0};
    FILE *f = NULL;
    candidate *c = NULL;
    size_t n_ok = 0;
    mch_status rc = mch_journal_open(&j, path, 0, err);
    if (!rc && j.n_recs) qsort(j.recs, j.n_recs, sizeof *j.recs, cmp_rec);
    if (!rc && !(f = fopen(path, "rb")))
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    if (!rc && !(c = malloc((n_pairs + 1) * sizeof *c)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory selecting among %llu pairs",
                      (unsigned long long)n_pairs);
    if (!rc) rc = read_scores(&j, f, spec, n_pairs, per_grade, c, &n_ok, &sel->pairs_failed, err);
    if (!rc) {
        qsort(c, n_ok, sizeof *c, cmp_candidate);
        size_t groups = 0;
        for (size_t i = 0; i < n_ok; i++) groups += !i || c[i].grade != c[i - 1].grade;
        if (!(sel->groups = calloc(groups + 1, sizeof *sel->groups)))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    if (!rc) {
        sel->n = take_groups(c, n_ok, k, sel);
        qsort(c, sel->n, sizeof *c, cmp_by_index);
        sel->indices = malloc((sel->n + 1) * sizeof *sel->indices);
        sel->pair_ids = malloc((sel->n + 1) * sizeof *sel->pair_ids);
        sel->deltas = malloc((sel->n + 1) * sizeof *sel->deltas);
        if (!sel->indices || !sel->pair_ids || !sel->deltas)
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !rc && i < sel->n; i++) {
            sel->indices[i] = c[i].index;
            sel->pair_ids[i] = c[i].pair_id;
            sel->deltas[i] = c[i].delta;
        }
    }
    free(c);
    if (f) fclose(f);
    if (j.path) mch_journal_close(&j);
    if (rc) mch_selection_deinit(sel);
    return rc;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

/* A double exactly (17 significant digits), as JSON. */
static void exact(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void selection_json(FILE *f, const mch_selection *s, int lists)
{
    fprintf(f,
            "{\"format\":\"mechir-selection/1\",\"select\":\"top-delta\",\"k\":%llu,\"per_grade\":%"
            "s,\"delta\":\"score_perturbed - score_baseline, largest first; ties by pair id, then "
            "index\",\"pairs_scored\":%llu,\"pairs_failed\":%llu,\"pairs_selected\":%llu,"
            "\"groups\":[",
            (unsigned long long)s->k, s->per_grade ? "true" : "false",
            (unsigned long long)s->pairs_scored, (unsigned long long)s->pairs_failed,
            (unsigned long long)s->n);
    for (size_t i = 0; i < s->n_groups; i++) {
        const mch_select_group *g = &s->groups[i];
        fputs(i ? ",{\"relevance\":" : "{\"relevance\":", f);
        if (g->grade >= 0)
            fprintf(f, "%d", (int)g->grade);
        else
            fputs("null", f);
        fprintf(f,
                ",\"scored\":%llu,\"selected\":%llu,\"threshold\":", (unsigned long long)g->scored,
                (unsigned long long)g->selected);
        exact(f, g->threshold);
        putc('}', f);
    }
    putc(']', f);
    if (lists) {
        fputs(",\"pairs\":[", f);
        for (size_t i = 0; i < s->n; i++) {
            fprintf(f, "%s{\"pair_id\":\"%016llx\",\"index\":%llu,\"delta\":", i ? "," : "",
                    (unsigned long long)s->pair_ids[i], (unsigned long long)s->indices[i]);
            exact(f, s->deltas[i]);
            putc('}', f);
        }
        putc(']', f);
    }
    putc('}', f);
}

char *mch_selection_json(const mch_selection *sel, int lists)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    selection_json(f, sel, lists);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void write_selection(FILE *f, const void *ctx)
{
    selection_json(f, ctx, 1);
    putc('\n', f);
}

mch_status mch_selection_write(const char *out, const mch_selection *sel, mch_err *err)
{
    return mch_write_file_with(out, "selection.json", write_selection, sel, err);
}
