/* Activation cache. One entry per cached hook point; sequences of a forward arrive in order
 * 0, 1, ..., so an entry appends them and restarts when sequence 0 comes again. */
#include "act_cache.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    mch_site site;
    int layer;
    float *data;
    size_t used, cap; /* floats */
    size_t *off;      /* (max_seqs + 1) float offset of each sequence */
    int *T;           /* (max_seqs) */
    int nseq, max_seqs;
} entry;

struct mch_act_cache {
    const mch_model *m;
    entry *e;
    int n, cap;
    int overflow; /* an allocation failed during a forward */
};

mch_act_cache *mch_act_cache_create(const mch_model *m)
{
    mch_act_cache *c = calloc(1, sizeof *c);
    if (c) c->m = m;
    return c;
}

void mch_act_cache_free(mch_act_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].data);
        free(c->e[i].off);
        free(c->e[i].T);
    }
    free(c->e);
    free(c);
}

static mch_status add_point(mch_act_cache *c, mch_site site, int layer, mch_err *err)
{
    for (int i = 0; i < c->n; i++)
        if (c->e[i].site == site && c->e[i].layer == layer) return MCH_OK;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        entry *e = realloc(c->e, (size_t)cap * sizeof *e);
        if (!e) return mch_fail(err, MCH_ERR_NOMEM, "out of memory adding a cached hook");
        c->e = e;
        c->cap = cap;
    }
    c->e[c->n++] = (entry){.site = site, .layer = layer};
    return MCH_OK;
}

mch_status mch_act_cache_add(mch_act_cache *c, const char *name, mch_err *err)
{
    mch_hook_point *pts = NULL;
    size_t n = 0;
    char *const names[1] = {(char *)name};
    mch_status rc = mch_hooks_expand(names, 1, c->m->cfg.L, &pts, &n, err);
    for (size_t i = 0; i < n && rc == MCH_OK; i++)
        rc = add_point(c, pts[i].site, pts[i].layer, err);
    free(pts);
    return rc;
}

static int store(void *user, const mch_act_view *v)
{
    entry *e = user;
    size_t n = mch_act_view_floats(v);
    if (v->seq == 0) {
        e->used = 0;
        e->nseq = 0;
    }
    if (v->seq != e->nseq) return 1; /* sequences must arrive in order */
    if (e->nseq + 1 > e->max_seqs) {
        int ms = e->max_seqs ? 2 * e->max_seqs : 16;
        size_t *off = realloc(e->off, (size_t)(ms + 1) * sizeof *off);
        if (!off) return 1;
        e->off = off;
        int *T = realloc(e->T, (size_t)ms * sizeof *T);
        if (!T) return 1;
        e->T = T;
        e->max_seqs = ms;
    }
    if (e->used + n > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap < e->used + n) cap *= 2;
        float *d = realloc(e->data, cap * sizeof *d);
        if (!d) return 1;
        e->data = d;
        e->cap = cap;
    }
    memcpy(e->data + e->used, v->data, n * sizeof(float));
    e->off[e->nseq] = e->used;
    e->T[e->nseq] = v->T;
    e->used += n;
    e->nseq++;
    return 0;
}

mch_status mch_act_cache_attach(mch_act_cache *c, mch_hooks *h, mch_err *err)
{
    for (int i = 0; i < c->n; i++) {
        mch_status rc = mch_hooks_add(h, c->e[i].site, c->e[i].layer, store, &c->e[i], err);
        if (rc) return rc;
    }
    return MCH_OK;
}

const float *mch_act_cache_get(const mch_act_cache *c, mch_site site, int layer, int seq, int *T)
{
    for (int i = 0; i < c->n; i++) {
        const entry *e = &c->e[i];
        if (e->site != site || e->layer != layer) continue;
        if (seq < 0 || seq >= e->nseq) return NULL;
        if (T) *T = e->T[seq];
        return e->data + e->off[seq];
    }
    return NULL;
}
