/* Given pairs aligned and laid out (see align.h). Invariant of every built pair: baseline and
 * perturbed ids have the same length and token types and differ only inside the aligned span,
 * which lies inside the max_len window. */
#include "align.h"

#include <libstemmer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- alignment ---------------------------------------------------------------------------- */

static const char *const align_names[] = {"same",   "append", "prepend",
                                          "insert", "delete", "replace"};

const char *mch_align_name(mch_align_kind k)
{
    return (unsigned)k < sizeof align_names / sizeof align_names[0] ? align_names[k] : "?";
}

/* 1 when a token of a[0..la) is also in b[0..lb). */
static int spans_share(const int32_t *a, int la, const int32_t *b, int lb)
{
    for (int i = 0; i < la; i++)
        for (int j = 0; j < lb; j++)
            if (a[i] == b[j]) return 1;
    return 0;
}

int mch_align_docs(const int32_t *a, int na, const int32_t *b, int nb, int32_t filler, int max_span,
                   int32_t *out_a, int32_t *out_b, int *n, mch_alignment *al, char *why,
                   size_t why_cap)
{
    int shorter = na < nb ? na : nb, pre = 0, suf = 0;
    while (pre < shorter && a[pre] == b[pre]) pre++;
    while (suf < shorter - pre && a[na - 1 - suf] == b[nb - 1 - suf]) suf++;
    int la = na - pre - suf, lb = nb - pre - suf, span = la > lb ? la : lb;
    *al = (mch_alignment){MCH_ALIGN_REPLACE, pre, la, lb};
    if (!la && !lb)
        al->kind = MCH_ALIGN_SAME;
    else if (!la)
        al->kind = pre == na ? MCH_ALIGN_APPEND : pre == 0 ? MCH_ALIGN_PREPEND : MCH_ALIGN_INSERT;
    else if (!lb)
        al->kind = MCH_ALIGN_DELETE;
    if (al->kind == MCH_ALIGN_REPLACE && la != lb && spans_share(a + pre, la, b + pre, lb)) {
        snprintf(why, why_cap,
                 "the documents differ in more than one span (document tokens %d..%d of the "
                 "baseline and %d..%d of the perturbed one keep a token between changes)",
                 pre, pre + la - 1, pre, pre + lb - 1);
        return 0;
    }
    if (max_span > 0 && span > max_span) {
        snprintf(why, why_cap,
                 "the documents differ in %d tokens from document token %d, more than "
                 "--max-span %d",
                 span, pre, max_span);
        return 0;
    }
    memcpy(out_a, a, (size_t)pre * sizeof *a);
    memcpy(out_b, b, (size_t)pre * sizeof *b);
    for (int i = 0; i < span; i++) {
        out_a[pre + i] = i < la ? a[pre + i] : filler;
        out_b[pre + i] = i < lb ? b[pre + i] : filler;
    }
    memcpy(out_a + pre + span, a + na - suf, (size_t)suf * sizeof *a);
    memcpy(out_b + pre + span, b + nb - suf, (size_t)suf * sizeof *b);
    *n = pre + span + suf;
    return 1;
}

/* ---- the pair builder --------------------------------------------------------------------- */

#define WORD_BYTES 1024
#define TERM_WORDS 128

struct mch_given {
    const mch_tok *v;
    mch_perturb_opts o;
    int max_span, n_special;
    bool fold;
    int32_t filler_id;
    mch_perturber *pert; /* the query terms (mch_query_terms) */
    mch_strmap *own_stop, *qterms, *qstems;
    const mch_strmap *stop;
    struct sb_stemmer *stemmer;
    char *terms_buf;
    size_t terms_cap;
    /* per pair */
    mch_ids q, a, b;
    int32_t *da, *db; /* aligned documents (dcap) */
    size_t dcap;
    uint8_t *starts, *match;                         /* (dcap) word starts; term-occurrence marks */
    int32_t *ids_b, *ids_p, *types, *qids, *scratch; /* (max_len) */
    uint8_t *roles, *special, *troles;               /* (max_len) */
    /* the span's words */
    int n_tw;
    char tw[WORD_BYTES * 2];
    size_t tw_off[TERM_WORDS], tw_len[TERM_WORDS];
    char word[WORD_BYTES], stem[WORD_BYTES];
};

void mch_given_free(mch_given *g)
{
    if (!g) return;
    mch_perturber_free(g->pert);
    mch_strmap_free(g->own_stop);
    mch_strmap_free(g->qterms);
    mch_strmap_free(g->qstems);
    if (g->stemmer) sb_stemmer_delete(g->stemmer);
    free(g->terms_buf);
    mch_ids_free(&g->q);
    mch_ids_free(&g->a);
    mch_ids_free(&g->b);
    void *bufs[] = {g->da,    g->db,   g->starts,  g->match, g->ids_b,   g->ids_p,
                    g->types, g->qids, g->scratch, g->roles, g->special, g->troles};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(g);
}

mch_status mch_given_create(mch_given **out, const mch_tok *t, const mch_perturb_opts *o,
                            int max_span, mch_err *err)
{
    *out = NULL;
    mch_given *g = calloc(1, sizeof *g);
    if (!g) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    g->v = t;
    g->o = *o;
    g->o.kind = MCH_PERTURB_INJECT; /* the perturber is asked for query terms only */
    g->o.pos = MCH_POS_END;
    if (!g->o.filler) g->o.filler = "a";
    if (g->o.max_query_len <= 0) g->o.max_query_len = 64;
    g->max_span = max_span;
    g->n_special = mch_tok_n_special(t, !o->bi);
    g->fold = !mch_tok_uncased(t);
    size_t T = (size_t)(o->max_len > 0 ? o->max_len : 1);
    /* the perturber checks max_len and the filler as for built pairs */
    mch_status rc = mch_perturber_create(&g->pert, t, &g->o, err);
    if (!rc) g->n_special = mch_perturber_n_special(g->pert); /* a MonoT5's prompt included */
    g->stop = o->stopwords;
    if (!rc && !g->stop && !(g->stop = g->own_stop = mch_stopwords_default()))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && o->stem && !(g->stemmer = sb_stemmer_new("english", "UTF_8")))
        rc = mch_fail(err, MCH_ERR_UNSUPPORTED, "the Snowball English stemmer is unavailable");
    if (!rc &&
        !((g->qterms = mch_strmap_create()) && (g->qstems = mch_strmap_create()) &&
          (g->ids_b = malloc(T * 4)) && (g->ids_p = malloc(T * 4)) && (g->types = malloc(T * 4)) &&
          (g->qids = malloc(T * 4)) && (g->scratch = malloc(T * 4)) && (g->roles = malloc(T)) &&
          (g->special = malloc(T)) && (g->troles = malloc(T))))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) {
        mch_ids f = {0};
        rc = mch_tok_tokenize_word(t, g->o.filler, strlen(g->o.filler), &f, err);
        if (!rc) g->filler_id = f.ids[0]; /* one token: mch_perturber_create checked it */
        mch_ids_free(&f);
    }
    if (rc) {
        mch_given_free(g);
        return rc;
    }
    *out = g;
    return MCH_OK;
}

/* ---- words and roles ---------------------------------------------------------------------- */

static bool wordish(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80;
}

/* starts[i] = 1 when piece ids[i] begins a word: a word-start piece, an unknown id, or a glued
 * piece that does not touch the piece before it letter to letter (a bare word-start mark before
 * it takes it in). */
static void mark_word_starts(const mch_tok *v, const int32_t *ids, int n, uint8_t *starts)
{
    char prev[256], cur[256];
    size_t pl = 0, cl;
    for (int i = 0; i < n; i++) {
        int k = mch_tok_piece(v, ids[i], cur, sizeof cur, &cl);
        if (k < 0) cl = 0;
        bool joins =
            i > 0 &&
            (k == MCH_PIECE_CONTINUE ||
             (k == MCH_PIECE_GLUED && (!pl || (cl && wordish((unsigned char)prev[pl - 1]) &&
                                               wordish((unsigned char)cur[0])))));
        starts[i] = !joins;
        memcpy(prev, cur, cl + 1);
        pl = cl;
    }
}

/* The end of the word that starts at i (starts as mark_word_starts gives them). */
static int next_start(const uint8_t *starts, int i, int n)
{
    for (i++; i < n && !starts[i]; i++) continue;
    return i;
}

/* Spells pieces ids[i..j) into buf as the perturber spells words (mch_word_spell). */
static int spell_word(const mch_given *g, const int32_t *ids, int i, int j, char *buf, size_t cap,
                      size_t *len)
{
    return mch_word_spell(g->v, g->fold, ids, i, j, buf, cap, len);
}

/* The stem of w into g->stem (or w itself without stemming). */
static const char *stem_word(mch_given *g, const char *w, size_t len, size_t *sl)
{
    const sb_symbol *s =
        g->stemmer ? sb_stemmer_stem(g->stemmer, (const sb_symbol *)w, (int)len) : NULL;
    if (!s) {
        *sl = len;
        return w;
    }
    *sl = (size_t)sb_stemmer_length(g->stemmer);
    if (*sl >= sizeof g->stem) *sl = sizeof g->stem - 1;
    memcpy(g->stem, s, *sl);
    g->stem[*sl] = 0;
    return g->stem;
}

/* The query's terms (mch_query_terms) into g->qterms and, with stemming, their stems. */
static mch_status query_terms(mch_given *g, const char *query, mch_err *err)
{
    size_t need = 4 * strlen(query) + 64;
    if (need > g->terms_cap) {
        char *b = realloc(g->terms_buf, need);
        if (!b) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        g->terms_buf = b;
        g->terms_cap = need;
    }
    int n = mch_query_terms(g->pert, query, g->terms_buf, g->terms_cap, err);
    if (n < 0) return err->code;
    mch_strmap_clear(g->qterms);
    mch_strmap_clear(g->qstems);
    const char *w = g->terms_buf;
    for (int i = 0; i < n; i++, w += strlen(w) + 1) {
        size_t sl;
        const char *s = stem_word(g, w, strlen(w), &sl);
        if (!mch_strmap_put(g->qterms, w, strlen(w), NULL) ||
            (g->stemmer && !mch_strmap_put(g->qstems, s, sl, NULL)))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    return MCH_OK;
}

/* Keeps the spellings of the words of span pieces ids[0..n) (none when one cannot be spelled). */
static void span_words(mch_given *g, const int32_t *ids, int n)
{
    size_t off = 0, wl;
    g->n_tw = 0;
    if (n > (int)g->dcap) return;
    mark_word_starts(g->v, ids, n, g->starts);
    g->starts[0] = 1;
    for (int i = 0; i < n;) {
        int j = next_start(g->starts, i, n);
        if (g->n_tw == TERM_WORDS || !spell_word(g, ids, i, j, g->tw + off, WORD_BYTES, &wl) ||
            off + wl + 1 > sizeof g->tw - WORD_BYTES) {
            g->n_tw = 0;
            return;
        }
        g->tw_off[g->n_tw] = off;
        g->tw_len[g->n_tw++] = wl;
        off += wl + 1;
        i = j;
    }
}

/* 1 when the word w (wl bytes) is the span's k-th word: the same spelling or stem. */
static int is_span_word(mch_given *g, const char *w, size_t wl, int k)
{
    const char *t = g->tw + g->tw_off[k];
    size_t tl = g->tw_len[k];
    if (wl == tl && !memcmp(w, t, wl)) return 1;
    if (!g->stemmer) return 0;
    char ws[WORD_BYTES];
    size_t sl, tsl;
    const char *wst = stem_word(g, w, wl, &sl);
    memcpy(ws, wst, sl);
    const char *ts = stem_word(g, t, tl, &tsl);
    return sl == tsl && !memcmp(ws, ts, sl);
}

/* Roles of pieces ids[0..n) outside [skip0, skip1) (a query: skip0 = skip1 = n): every piece of
 * a run of words spelling the span's words in order gets role_term; the others role_match when
 * match is set and their word is a query term, else role_other. Uses g->starts, g->match. */
static void region_roles(mch_given *g, const int32_t *ids, int n, int skip0, int skip1,
                         uint8_t *roles, uint8_t role_term, int match, uint8_t role_match,
                         uint8_t role_other)
{
    mark_word_starts(g->v, ids, n, g->starts);
    if (skip1 < n) g->starts[skip1] = 1; /* the span cuts words */
    if (skip0 < n) g->starts[skip0] = 1;
    memset(g->match, 0, (size_t)n);
    for (int i = 0; g->n_tw && i < n; i = next_start(g->starts, i, n)) {
        int e = i, k = 0;
        for (; k < g->n_tw && e < n && (e < skip0 || e >= skip1); k++) {
            int j = next_start(g->starts, e, n);
            size_t wl;
            if (!spell_word(g, ids, e, j, g->word, sizeof g->word, &wl) ||
                !is_span_word(g, g->word, wl, k))
                break;
            e = j;
        }
        if (k == g->n_tw) memset(g->match + i, 1, (size_t)(e - i));
    }
    for (int i = 0; i < n;) {
        int j = next_start(g->starts, i, n);
        size_t wl, sl;
        int m = 0;
        if (match && spell_word(g, ids, i, j, g->word, sizeof g->word, &wl) &&
            !mch_strmap_get(g->stop, g->word, wl)) {
            const char *s = stem_word(g, g->word, wl, &sl);
            m = mch_strmap_get(g->qterms, g->word, wl) ||
                (g->stemmer && mch_strmap_get(g->qstems, s, sl));
        }
        for (int k = i; k < j; k++)
            if (k < skip0 || k >= skip1)
                roles[k] = g->match[k] ? role_term : m ? role_match : role_other;
        i = j;
    }
}

/* ---- building a pair ---------------------------------------------------------------------- */

static mch_status grow_docs(mch_given *g, size_t n, mch_err *err)
{
    if (n <= g->dcap) return MCH_OK;
    int32_t *da = realloc(g->da, n * sizeof *da);
    if (da) g->da = da;
    int32_t *db = da ? realloc(g->db, n * sizeof *db) : NULL;
    if (db) g->db = db;
    uint8_t *st = db ? realloc(g->starts, n) : NULL;
    if (st) g->starts = st;
    uint8_t *m = st ? realloc(g->match, n) : NULL;
    if (!m) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    g->match = m;
    g->dcap = n;
    return MCH_OK;
}

/* The pair id of (qid, docno[, pair_key]) (see align.h). */
static mch_status given_pair_id(const char *qid, const char *docno, const char *key, uint64_t *id,
                                mch_err *err)
{
    if (!key || !*key) {
        *id = mch_pair_id(qid, docno);
        return MCH_OK;
    }
    size_t dl = strlen(docno), kl = strlen(key);
    char *s = malloc(dl + kl + 2);
    if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    memcpy(s, docno, dl);
    s[dl] = 0x1f;
    memcpy(s + dl + 1, key, kl + 1);
    *id = mch_pair_id(qid, s);
    free(s);
    return MCH_OK;
}

/* The span's words as text into out->term, one space between words, cut to fit. */
static void span_text(const mch_given *g, mch_pair *out)
{
    size_t at = 0, cap = sizeof out->term;
    for (int k = 0; k < g->n_tw; k++) {
        size_t wl = g->tw_len[k] + (k > 0);
        if (at + wl >= cap) break;
        if (k) out->term[at++] = ' ';
        memcpy(out->term + at, g->tw + g->tw_off[k], g->tw_len[k]);
        at += g->tw_len[k];
    }
    out->term[at] = 0;
}

mch_status mch_given_build(mch_given *g, const char *qid, const char *query, const char *docno,
                           const char *pair_key, const char *baseline, const char *perturbed,
                           mch_pair *out, mch_alignment *al, mch_err *err)
{
    memset(out, 0, sizeof *out);
    memset(al, 0, sizeof *al);
    const mch_tok *v = g->v;
    mch_status rc = given_pair_id(qid, docno, pair_key, &out->pair_id, err);
    if (rc) return rc;
    g->q.n = g->a.n = g->b.n = 0;
    if ((rc = mch_tok_tokenize(v, query, strlen(query), &g->q, err)) ||
        (rc = mch_tok_tokenize(v, baseline, strlen(baseline), &g->a, err)) ||
        (rc = mch_tok_tokenize(v, perturbed, strlen(perturbed), &g->b, err)) ||
        (rc = grow_docs(g, g->a.n + g->b.n + g->q.n + 1, err)) || (rc = query_terms(g, query, err)))
        return rc;
    int nd_all;
    if (!mch_align_docs(g->a.ids, (int)g->a.n, g->b.ids, (int)g->b.n, g->filler_id, g->max_span,
                        g->da, g->db, &nd_all, al, out->skip, sizeof out->skip))
        return MCH_OK;
    int span = al->n_baseline > al->n_perturbed ? al->n_baseline : al->n_perturbed;
    if (al->kind == MCH_ALIGN_SAME) {
        snprintf(out->skip, sizeof out->skip,
                 "the baseline and perturbed documents have the same tokens");
        return MCH_OK;
    }
    if (g->o.monot5) {
        int split_b = 0, split_p = 0;
        if ((rc = mch_monot5_prompt_splits(g->pert, query, baseline, &split_b, err)) ||
            (rc = mch_monot5_prompt_splits(g->pert, query, perturbed, &split_p, err)))
            return rc;
        if (!split_b || !split_p) {
            snprintf(out->skip, sizeof out->skip,
                     "the %s prompt's tokens do not split where the query and the document meet "
                     "the prompt's words",
                     split_b ? "perturbed" : "baseline");
            return MCH_OK;
        }
    }
    int max_len = g->o.max_len, ns = g->n_special, bi = g->o.bi;
    int nq = (int)g->q.n < g->o.max_query_len ? (int)g->q.n : g->o.max_query_len;
    if (bi && nq > max_len - ns) nq = max_len - ns;
    int room = bi ? max_len - ns : max_len - ns - nq;
    if (al->position + span > room) {
        snprintf(out->skip, sizeof out->skip,
                 "the documents differ at document tokens %d..%d, beyond the %d the max_len %d "
                 "window holds",
                 al->position, al->position + span - 1, room < 0 ? 0 : room, max_len);
        return MCH_OK;
    }
    int nd = nd_all < room ? nd_all : room, s0 = al->position, s1 = al->position + span;
    if (!memcmp(g->da + s0, g->db + s0, (size_t)span * sizeof *g->da)) {
        snprintf(out->skip, sizeof out->skip,
                 "the inputs are the same once aligned: the filler '%.40s' is what the "
                 "documents differ by",
                 g->o.filler);
        return MCH_OK;
    }
    /* the span's words: the perturbed side's, or the baseline's for a deletion */
    if (al->n_perturbed)
        span_words(g, g->b.ids + s0, al->n_perturbed);
    else
        span_words(g, g->a.ids + s0, al->n_baseline);
    span_text(g, out);
    /* roles of the text tokens in template order: the query's (cross-encoder), the document's */
    uint8_t *text_roles = g->troles;
    int base = bi ? 0 : nq;
    if (!bi)
        region_roles(g, g->q.ids, nq, nq, nq, text_roles, MCH_ROLE_QUERY_TERM, 0,
                     MCH_ROLE_QUERY_OTHER, MCH_ROLE_QUERY_OTHER);
    region_roles(g, g->da, nd, s0, s1, text_roles + base, MCH_ROLE_DOC_TERM, 1, MCH_ROLE_DOC_MATCH,
                 MCH_ROLE_DOC_OTHER);
    memset(text_roles + base + s0, MCH_ROLE_INJECTED, (size_t)(s1 - s0));
    const int32_t *qa = bi ? NULL : g->q.ids;
    int T, t5 = g->o.monot5; /* a MonoT5: "Query:" q "Document:" d "Relevant:" </s> */
    if (t5) {
        T = mch_monot5_assemble(g->pert, g->q.ids, nq, g->da, nd, g->ids_b, g->special);
        mch_monot5_assemble(g->pert, g->q.ids, nq, g->db, nd, g->ids_p, NULL);
        memset(g->types, 0, (size_t)T * sizeof *g->types);
    } else {
        T = (int)mch_tok_assemble(v, bi ? g->da : qa, (size_t)(bi ? nd : nq), bi ? NULL : g->da,
                                  (size_t)nd, g->ids_b, g->types, g->special);
        mch_tok_assemble(v, bi ? g->db : qa, (size_t)(bi ? nd : nq), bi ? NULL : g->db, (size_t)nd,
                         g->ids_p, g->scratch, NULL);
    }
    for (int t = 0, r = 0; t < T; t++)
        g->roles[t] = !g->special[t]  ? text_roles[r++]
                      : t == 0 && !t5 ? MCH_ROLE_CLS
                                      : MCH_ROLE_SEP;
    out->T = T;
    out->position = s0;
    out->n_term = span;
    out->ids_baseline = g->ids_b;
    out->ids_perturbed = g->ids_p;
    out->token_types = g->types;
    out->roles = g->roles;
    if (bi) {
        out->Tq =
            (int)mch_tok_assemble(v, g->q.ids, (size_t)nq, NULL, 0, g->qids, g->scratch, NULL);
        out->query_ids = g->qids;
    }
    return MCH_OK;
}
