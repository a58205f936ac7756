/* The models of the tokenizer.json pipeline, one word at a time: WordPiece (greedy longest match),
 * BPE (merges by rank, leftmost first, as tokenizers' Word::merge_all) and Unigram (the
 * library's forward Viterbi: on equal scores the piece that starts earliest wins; runs of unknown
 * characters fused into one unk). */
#include <stdlib.h>
#include <string.h>

#include "hftok_int.h"

int tk_ids_put(mch_ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t ncap = a->cap ? 2 * a->cap : 64;
        int32_t *nid = realloc(a->ids, ncap * sizeof *nid);
        if (!nid) return -1;
        a->ids = nid;
        a->cap = ncap;
    }
    a->ids[a->n++] = id;
    return 0;
}

static int32_t lookup(const mch_strmap *m, const char *s, size_t len)
{
    const int64_t *v = mch_strmap_get(m, s, len);
    return v ? (int32_t)*v : -1;
}

static size_t cp_next(const char *s, size_t i)
{
    unsigned char b = (unsigned char)s[i];
    return i + (b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4);
}

/* ---- WordPiece --------------------------------------------------------------------------------
 */

static int wordpiece(const tk_model *m, const char *w, size_t len, mch_ids *out)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; i = cp_next(w, i)) chars++;
    if (chars > m->max_chars) return tk_ids_put(out, m->unk);
    size_t n0 = out->n;
    char *key = malloc(m->prefix_len + len + 1);
    if (!key) return -1;
    memcpy(key, m->prefix, m->prefix_len);
    for (size_t start = 0; start < len;) {
        size_t plen = start ? m->prefix_len : 0;
        char *k = key + m->prefix_len - plen;
        int32_t id = -1;
        size_t end = len;
        while (end > start) {
            memcpy(key + m->prefix_len, w + start, end - start);
            id = lookup(m->vocab, k, plen + end - start);
            if (id >= 0) break;
            do end--; /* back to the previous character boundary */
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
        }
        if (id < 0) { /* an unmatched remainder: the whole word is unk */
            out->n = n0;
            free(key);
            return tk_ids_put(out, m->unk);
        }
        if (tk_ids_put(out, id)) {
            free(key);
            return -1;
        }
        start = end;
    }
    free(key);
    return 0;
}

/* ---- BPE --------------------------------------------------------------------------------------
 */

typedef struct {
    uint32_t rank, pos;
    int32_t id;
} merge_cand;

/* Min-heap on (rank, pos). */
static bool cand_less(merge_cand a, merge_cand b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(merge_cand *h, size_t *n, merge_cand c)
{
    size_t i = (*n)++;
    while (i > 0 && cand_less(c, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static merge_cand heap_pop(merge_cand *h, size_t *n)
{
    merge_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The merge of (a, b): 0 with rank and new id, or -1 when there is none. */
static int merge_of(const tk_model *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
{
    int32_t key[2] = {a, b};
    const int64_t *v = mch_strmap_get(m->merges, (const char *)key, sizeof key);
    if (!v) return -1;
    *rank = (uint32_t)((uint64_t)*v >> 32);
    *id = (int32_t)(*v & 0xFFFFFFFF);
    return 0;
}

static int bpe(const tk_model *m, const char *w, size_t len, mch_ids *out)
{
    if (m->ignore_merges) {
        int32_t id = lookup(m->vocab, w, len);
        if (id >= 0) return tk_ids_put(out, id);
    }
    /* Symbols as a linked list over arrays of at most len entries. */
    int32_t *sym = malloc(len * sizeof *sym);
    int64_t *prev = malloc(len * sizeof *prev), *next = malloc(len * sizeof *next);
    merge_cand *heap = malloc(2 * len * sizeof *heap + sizeof *heap);
    int rc = 0;
    if (!sym || !prev || !next || !heap) {
        rc = -1;
        goto done;
    }
    size_t n = 0;
    int32_t unk_pending = 0; /* an unk not yet added (fused with following unknown characters) */
    for (size_t i = 0; i < len;) {
        size_t e = cp_next(w, i);
        int32_t id = lookup(m->vocab, w + i, e - i);
        if (id >= 0) {
            if (unk_pending) sym[n++] = m->unk;
            unk_pending = 0;
            sym[n++] = id;
        } else if (m->unk >= 0) {
            if (unk_pending && !m->fuse_unk) sym[n++] = m->unk;
            unk_pending = 1;
        }
        i = e;
    }
    if (unk_pending) sym[n++] = m->unk;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int64_t)i - 1;
        next[i] = i + 1 < n ? (int64_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        merge_cand c = {0, (uint32_t)i, 0};
        if (!merge_of(m, sym[i], sym[i + 1], &c.rank, &c.id)) heap_push(heap, &hn, c);
    }
    while (hn) {
        merge_cand c = heap_pop(heap, &hn);
        size_t p = c.pos;
        if (sym[p] < 0 || next[p] < 0) continue; /* merged away, or now last */
        size_t q = (size_t)next[p];
        uint32_t r;
        int32_t id;
        if (merge_of(m, sym[p], sym[q], &r, &id) || id != c.id) continue; /* stale */
        sym[p] = id;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = (int64_t)p;
        merge_cand nc;
        if (prev[p] >= 0 && !merge_of(m, sym[prev[p]], sym[p], &nc.rank, &nc.id)) {
            nc.pos = (uint32_t)prev[p];
            heap_push(heap, &hn, nc);
        }
        if (next[p] >= 0 && !merge_of(m, sym[p], sym[next[p]], &nc.rank, &nc.id)) {
            nc.pos = (uint32_t)p;
            heap_push(heap, &hn, nc);
        }
    }
    for (size_t i = 0; i < n && !rc; i++)
        if (sym[i] >= 0) rc = tk_ids_put(out, sym[i]);
done:
    free(sym);
    free(prev);
    free(next);
    free(heap);
    return rc;
}

/* ---- Unigram ----------------------------------------------------------------------------------
 */

typedef struct {
    double score;
    size_t start; /* SIZE_MAX: not reached yet */
    int32_t id;
} best_node;

static int unigram(const tk_model *m, const char *w, size_t len, mch_ids *out)
{
    if (len == 0) return 0;
    best_node *best = malloc((len + 1) * sizeof *best);
    if (!best) return -1;
    for (size_t i = 0; i <= len; i++) best[i] = (best_node){0.0, SIZE_MAX, -1};
    best[0].start = 0;
    const double unk_score = m->min_score - 10.0; /* the library's kUnkPenalty */
    for (size_t s = 0; s < len; s = cp_next(w, s)) {
        double here = best[s].score;
        size_t one = cp_next(w, s);
        bool single = false;
        size_t lim = len - s < m->max_piece_bytes ? len - s : m->max_piece_bytes;
        for (size_t e = one; e <= s + lim; e = e < len ? cp_next(w, e) : e + 1) {
            int32_t id = lookup(m->vocab, w + s, e - s);
            if (id < 0) continue;
            double cand = m->scores[id] + here;
            if (best[e].start == SIZE_MAX || cand > best[e].score)
                best[e] = (best_node){cand, s, id};
            if (e == one) single = true;
        }
        if (!single) {
            double cand = unk_score + here;
            if (best[one].start == SIZE_MAX || cand > best[one].score)
                best[one] = (best_node){cand, s, m->unk};
        }
    }
    /* Back from the end: pieces in reverse; a run of unks becomes one token, looked up by its
     * text as the library does (an unknown text is unk). */
    size_t cnt = 0;
    for (size_t e = len; e > 0; e = best[e].start) cnt++;
    int32_t *rev = malloc(cnt * sizeof *rev);
    if (!rev) {
        free(best);
        return -1;
    }
    size_t k = 0;
    for (size_t e = len; e > 0;) {
        size_t s = best[e].start;
        if (best[e].id == m->unk && m->unk >= 0) {
            while (s > 0 && best[s].id == m->unk) s = best[s].start;
            int32_t id = lookup(m->vocab, w + s, e - s);
            rev[k++] = id >= 0 ? id : m->unk;
        } else {
            rev[k++] = best[e].id;
        }
        e = s;
    }
    int rc = 0;
    while (k > 0 && !rc) rc = tk_ids_put(out, rev[--k]);
    free(rev);
    free(best);
    return rc;
}

int tk_model_word(const tk_model *m, const char *w, size_t len, mch_ids *out)
{
    if (len == 0) return 0;
    switch (m->kind) {
    case TM_WORDPIECE:
        return wordpiece(m, w, len, out);
    case TM_BPE:
        return bpe(m, w, len, out);
    case TM_SPM:
        return tk_spm_word(m, w, len, out);
    default:
        return unigram(m, w, len, out);
    }
}

void tk_model_deinit(tk_model *m)
{
    if (!m) return;
    mch_strmap_free(m->vocab);
    mch_strmap_free(m->merges);
    free(m->scores);
    free(m->fscores);
    free(m->out_id);
    memset(m, 0, sizeof *m);
}
