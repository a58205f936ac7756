/* Text scoring over the encoder. A batch of n pairs is n sequences (cross-encoder) or 2n
 * sequences (bi-encoder: queries then documents), padded to max_len in one id matrix. */
#include "score.h"

#include <stdlib.h>
#include <string.h>

#define MCH_SCORE_TOKENS 4096

struct mch_scorer {
    const mch_model *m;
    mch_score_opts o;
    int bi; /* bi-encoder: two sequences a pair */
    mch_workspace *ws;
    int token_budget;     /* tokens a forward */
    int32_t *ids, *types; /* (2 * batch, max_len) */
    int *lens;            /* (2 * batch) */
    float *emb;           /* (2 * batch, C) */
};

mch_status mch_scorer_create(mch_scorer **out, const mch_model *m, const mch_score_opts *opts,
                             mch_err *err)
{
    const mch_config *c = &m->cfg;
    if (!m->tok && !m->t5) return mch_fail(err, MCH_ERR_ARG, "%s: model has no tokenizer", m->dir);
    mch_scorer *s = calloc(1, sizeof *s);
    if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    s->m = m;
    s->o = *opts;
    if (s->o.max_len <= 0) s->o.max_len = c->max_tokens;
    if (s->o.max_query_len <= 0) s->o.max_query_len = 64;
    if (s->o.batch_size <= 0) s->o.batch_size = 32;
    s->bi = c->head == MCH_HEAD_NONE;
    int min_len = s->bi ? 2 : 3;
    if (s->o.max_len < min_len || s->o.max_len > c->max_tokens) {
        free(s);
        return mch_fail(err, MCH_ERR_ARG, "max_len %d outside %d..%d (the model's longest input)",
                        opts->max_len, min_len, c->max_tokens);
    }
    if (m->t5) { /* MonoT5: one forward a pair through kernels/t5.h, nothing to size here */
        *out = s;
        return MCH_OK;
    }
    size_t seqs = (size_t)s->o.batch_size * (s->bi ? 2 : 1), T = (size_t)s->o.max_len;
    /* A forward takes as many whole sequences as fit MCH_SCORE_TOKENS tokens, so the
     * activations stay small whatever max_len is. */
    s->token_budget = (int)(seqs * T < MCH_SCORE_TOKENS ? seqs * T : MCH_SCORE_TOKENS);
    if (s->token_budget < (int)T) s->token_budget = (int)T;
    s->ws = mch_workspace_create(m, s->token_budget, (int)T);
    s->ids = calloc(seqs * T, sizeof *s->ids);
    s->types = calloc(seqs * T, sizeof *s->types);
    s->lens = calloc(seqs, sizeof *s->lens);
    s->emb = calloc(seqs * (size_t)c->C, sizeof *s->emb);
    if (!s->ws || !s->ids || !s->types || !s->lens || !s->emb) {
        mch_scorer_free(s);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory for a batch of %d x %d tokens",
                        opts->batch_size, opts->max_len);
    }
    *out = s;
    return MCH_OK;
}

void mch_scorer_free(mch_scorer *s)
{
    if (!s) return;
    mch_workspace_free(s->ws);
    free(s->ids);
    free(s->types);
    free(s->lens);
    free(s->emb);
    free(s);
}

int mch_scorer_batch_size(const mch_scorer *s)
{
    return s->o.batch_size;
}

mch_status mch_scorer_run(mch_scorer *s, const char *const *queries, const char *const *docs, int n,
                          float *scores, mch_err *err)
{
    const mch_model *m = s->m;
    int T = s->o.max_len, C = m->cfg.C;
    mch_status rc;
    if (n < 1 || n > s->o.batch_size)
        return mch_fail(err, MCH_ERR_ARG, "%d pairs; the batch holds 1..%d", n, s->o.batch_size);
    if (m->t5) {
        for (int i = 0; i < n; i++) {
            mch_monot5_result r;
            if ((rc = mch_monot5_score(m->t5, queries[i], docs[i], T, &r, err))) return rc;
            scores[i] = r.score;
        }
        return MCH_OK;
    }
    int seqs = s->bi ? 2 * n : n;
    for (int i = 0; i < seqs; i++) {
        int32_t *ids = s->ids + (size_t)i * T;
        rc = s->bi ? mch_tok_encode_to(m->tok, i < n ? queries[i] : docs[i - n], NULL, 0, T, ids,
                                       NULL, &s->lens[i], err)
                   : mch_tok_encode_to(m->tok, queries[i], docs[i], s->o.max_query_len, T, ids,
                                       s->types + (size_t)i * T, &s->lens[i], err);
        if (rc) return rc;
    }
    for (int i0 = 0; i0 < seqs;) {
        int i1 = i0, tokens = 0;
        while (i1 < seqs && tokens + s->lens[i1] <= s->token_budget) tokens += s->lens[i1++];
        mch_batch bt = {i1 - i0, T, s->ids + (size_t)i0 * T,
                        s->bi ? NULL : s->types + (size_t)i0 * T, s->lens + i0};
        mch_forward_opts o = {NULL, 0, NULL, s->o.pooling};
        mch_forward_out out = {NULL, NULL, NULL};
        if (s->bi)
            out.emb = s->emb + (size_t)i0 * C;
        else
            out.scores = scores + i0;
        if ((rc = mch_forward(m, s->ws, &bt, &o, &out, err))) return rc;
        i0 = i1;
    }
    if (!s->bi) return MCH_OK;
    for (int i = 0; i < n; i++) {
        const float *q = s->emb + (size_t)i * C, *d = s->emb + (size_t)(n + i) * C;
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)q[c] * d[c];
        scores[i] = (float)dot;
    }
    return MCH_OK;
}
