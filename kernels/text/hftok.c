/* The tokenizer.json pipeline end to end (hftok.h): added tokens split out as the library's
 * AddedVocabulary does (leftmost-longest, lstrip/rstrip/single_word), then normalizer,
 * pre-tokenizer and model per segment, then the post-processor and only_second truncation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#include "hftok_int.h"
#include "utf8.h"

void mch_tok_free(mch_tok *t)
{
    if (!t) return;
    if (t->has_norm) tk_norm_deinit(&t->norm);
    if (t->has_pre) tk_pre_deinit(&t->pre);
    tk_model_deinit(&t->model);
    for (size_t i = 0; i < t->nadded; i++) free(t->added[i].s);
    free(t->added);
    tk_piece *lists[2] = {t->post.single, t->post.pair};
    size_t counts[2] = {t->post.nsingle, t->post.npair};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < counts[k]; i++) free(lists[k][i].ids);
        free(lists[k]);
    }
    free(t->tok_off);
    free(t->tok_text.p);
    mch_strmap_free(t->all);
    free(t);
}

static mch_status tok_new(mch_tok **t, mch_err *err)
{
    *t = calloc(1, sizeof **t);
    if (!*t || !((*t)->all = mch_strmap_create())) {
        free(*t);
        *t = NULL;
        return mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    }
    return MCH_OK;
}

mch_status mch_tok_parse_json(mch_tok **out, const char *json, size_t len, const char *name,
                              mch_err *err)
{
    if (!name) name = "tokenizer.json";
    if (!out || (!json && len)) return mch_fail(err, MCH_ERR_ARG, "%s: NULL argument", name);
    mch_tok *t;
    mch_status st = tok_new(&t, err);
    if (!st) st = tk_load_json(t, json ? json : "", len, name, err);
    if (st) {
        mch_tok_free(t);
        return st;
    }
    *out = t;
    return MCH_OK;
}

mch_status mch_tok_open_vocab_txt(mch_tok **out, const char *vocab_path, const char *config_path,
                                  mch_err *err)
{
    if (!out || !vocab_path) return mch_fail(err, MCH_ERR_ARG, "mch_tok_open_vocab_txt: NULL");
    mch_tok *t;
    mch_status st = tok_new(&t, err);
    if (!st) st = tk_load_vocab_txt(t, vocab_path, config_path, err);
    if (st) {
        mch_tok_free(t);
        return st;
    }
    *out = t;
    return MCH_OK;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

int mch_tok_file(const char *dir, char *path, size_t cap)
{
    static const char *const names[] = {"tokenizer.json", "vocab.json", "spiece.model",
                                        "sentencepiece.bpe.model", "vocab.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, cap, "%s/%s", dir, names[i]);
        if (file_exists(path)) return 0;
    }
    return -1;
}

mch_status mch_tok_open(mch_tok **out, const char *dir, mch_err *err)
{
    return mch_tok_open_dir(out, dir, err);
}

int32_t mch_tok_size(const mch_tok *t)
{
    return t ? t->nid : 0;
}

const char *mch_tok_token(const mch_tok *t, int32_t id)
{
    if (!t || id < 0 || id >= t->nid || t->tok_off[id] == SIZE_MAX) return NULL;
    return t->tok_text.p + t->tok_off[id];
}

int32_t mch_tok_lookup(const mch_tok *t, const char *s, size_t len)
{
    if (!t || (!s && len)) return -1;
    const int64_t *v = mch_strmap_get(t->all, s ? s : "", len);
    return v ? (int32_t)*v : -1;
}

/* ---- added tokens -----------------------------------------------------------------------------
 */

static bool is_word_char(uint32_t c)
{
    if (c == '_') return true;
    int cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

/* The code point that ends before byte e. */
static uint32_t cp_before(const char *s, size_t e)
{
    size_t k = e - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return tk_next(s, &k);
}

/* The longest added token of the wanted kind at s[i..len), or -1. */
static int match_added(const mch_tok *t, bool normalized, const char *s, size_t i, size_t len)
{
    int best = -1;
    for (size_t k = 0; k < t->nadded; k++) {
        const tk_added *a = &t->added[k];
        /* an added token normalized to nothing ("  " under Strip) matches nowhere: an empty
         * match would not move the scan on (found by fuzz_hftok) */
        if (a->normalized != normalized || a->len == 0 || a->len > len - i) continue;
        if (best >= 0 && a->len <= t->added[best].len) continue;
        if (memcmp(s + i, a->s, a->len) == 0) best = (int)k;
    }
    return best;
}

/* A piece of a text: an added token's id, or text [off, off + len). */
typedef struct {
    int32_t id; /* -1: text */
    size_t off, len;
} seg;
typedef struct {
    seg *v;
    size_t n, cap;
} segs;

static int segs_add(segs *g, int32_t id, size_t off, size_t len)
{
    if (id < 0 && len == 0) return 0;
    if (g->n == g->cap) {
        size_t ncap = g->cap ? 2 * g->cap : 16;
        seg *nv = realloc(g->v, ncap * sizeof *nv);
        if (!nv) return -1;
        g->v = nv;
        g->cap = ncap;
    }
    g->v[g->n++] = (seg){id, off, len};
    return 0;
}

/* Splits s[0..len) around the added tokens of one kind (the library's split_with_indices). */
static int split_added(const mch_tok *t, bool normalized, const char *s, size_t len, segs *out)
{
    size_t done = 0; /* text before this is taken */
    for (size_t i = 0; i < len;) {
        int k = t->nadded ? match_added(t, normalized, s, i, len) : -1;
        if (k < 0) {
            i += 1;
            while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
            continue;
        }
        const tk_added *a = &t->added[k];
        size_t start = i, stop = i + a->len;
        if (a->single_word) {
            bool left_ok = start == 0 || !is_word_char(cp_before(s, start));
            size_t j = stop;
            bool right_ok = stop == len || !is_word_char(tk_next(s, &j));
            if (!left_ok || !right_ok) { /* not a match; the scan goes on after it */
                i = stop;
                continue;
            }
        }
        if (a->lstrip) {
            while (start > done && tk_is_whitespace(cp_before(s, start))) {
                start--;
                while (start > done && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
            }
        }
        if (a->rstrip) {
            for (size_t j = stop; j < len;) {
                if (!tk_is_whitespace(tk_next(s, &j))) break;
                stop = j;
            }
        }
        if (segs_add(out, -1, done, start - done) || segs_add(out, a->id, start, stop - start))
            return -1;
        done = i = stop;
    }
    return segs_add(out, -1, done, len - done);
}

/* ---- the pipeline -----------------------------------------------------------------------------
 */

/* Normalized text of one raw segment through the pre-tokenizer and the model. */
static int encode_normalized(const mch_tok *t, const char *s, size_t len, bool at_start,
                             mch_ids *out)
{
    segs g = {0};
    int rc = split_added(t, true, s, len, &g);
    tk_words ws = {0};
    for (size_t i = 0; i < g.n && !rc; i++) {
        const seg *e = &g.v[i];
        if (e->id >= 0) {
            rc = tk_ids_put(out, e->id);
            continue;
        }
        ws.n = ws.text.n = 0;
        bool first = at_start && e->off == 0;
        if (t->has_pre)
            rc = tk_pre_apply(&t->pre, s + e->off, e->len, first, &ws);
        else
            rc = tk_words_add(&ws, s + e->off, e->len, first);
        for (size_t w = 0; w < ws.n && !rc; w++)
            rc = tk_model_word(&t->model, ws.text.p + ws.w[w].off, ws.w[w].len, out);
    }
    tk_words_free(&ws);
    free(g.v);
    return rc;
}

static int encode_text(const mch_tok *t, const char *s, size_t len, mch_ids *out)
{
    segs g = {0};
    int rc = split_added(t, false, s, len, &g);
    tk_buf nb = {0};
    for (size_t i = 0; i < g.n && !rc; i++) {
        const seg *e = &g.v[i];
        if (e->id >= 0) {
            rc = tk_ids_put(out, e->id);
            continue;
        }
        if (!t->has_norm) {
            rc = encode_normalized(t, s + e->off, e->len, e->off == 0, out);
            continue;
        }
        nb.n = 0;
        rc = tk_norm_apply(&t->norm, s + e->off, e->len, &nb);
        if (!rc) rc = encode_normalized(t, nb.p ? nb.p : "", nb.n, e->off == 0, out);
    }
    free(nb.p);
    free(g.v);
    return rc;
}

mch_status mch_tok_tokenize(const mch_tok *t, const char *text, size_t len, mch_ids *out,
                            mch_err *err)
{
    if (!t || !out || (!text && len)) return mch_fail(err, MCH_ERR_ARG, "mch_tok_tokenize: NULL");
    size_t bad;
    if (len && !mch_utf8_valid(text, len, &bad))
        return mch_fail(err, MCH_ERR_FORMAT, "text: invalid UTF-8 at byte %zu (0x%02x)", bad,
                        (unsigned char)text[bad]);
    size_t n0 = out->n;
    if (len && encode_text(t, text, len, out)) {
        out->n = n0;
        return mch_fail(err, MCH_ERR_NOMEM, "text: out of memory tokenizing %zu bytes", len);
    }
    return MCH_OK;
}

/* ---- post-processing --------------------------------------------------------------------------
 */

void mch_tok_enc_free(mch_tok_enc *e)
{
    if (!e) return;
    free(e->ids);
    free(e->types);
    memset(e, 0, sizeof *e);
}

static size_t added_count(const tk_piece *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += p[i].nids;
    return k;
}

int mch_tok_n_special(const mch_tok *t, bool pair)
{
    if (!t->post.set) return 0;
    return (int)(pair ? added_count(t->post.pair, t->post.npair)
                      : added_count(t->post.single, t->post.nsingle));
}

size_t mch_tok_assemble(const mch_tok *t, const int32_t *a, size_t na, const int32_t *b, size_t nb,
                        int32_t *ids, int32_t *types, uint8_t *special)
{
    size_t n = 0;
    const int32_t *seq[2] = {a, b};
    size_t len[2] = {na, b ? nb : 0};
    if (!t->post.set) {
        for (int k = 0; k < (b ? 2 : 1); k++)
            for (size_t i = 0; i < len[k]; i++, n++) {
                ids[n] = seq[k][i], types[n] = k;
                if (special) special[n] = 0;
            }
        return n;
    }
    const tk_piece *tpl = b ? t->post.pair : t->post.single;
    size_t ntpl = b ? t->post.npair : t->post.nsingle;
    for (size_t p = 0; p < ntpl; p++) {
        const tk_piece *pc = &tpl[p];
        size_t m = pc->is_seq ? len[pc->seq] : pc->nids;
        const int32_t *src = pc->is_seq ? seq[pc->seq] : pc->ids;
        for (size_t i = 0; i < m; i++, n++) {
            ids[n] = src[i], types[n] = pc->type;
            if (special) special[n] = !pc->is_seq;
        }
    }
    return n;
}

mch_status mch_tok_encode(const mch_tok *t, const char *a, size_t alen, const char *b, size_t blen,
                          int max_len, int max_first, mch_tok_enc *out, mch_err *err)
{
    if (!t || !a || !out) return mch_fail(err, MCH_ERR_ARG, "mch_tok_encode: NULL argument");
    out->n = 0;
    mch_ids seq[2] = {{0}, {0}};
    mch_status st = mch_tok_tokenize(t, a, alen, &seq[0], err);
    if (!st && b) st = mch_tok_tokenize(t, b, blen, &seq[1], err);
    if (st) goto done;
    const tk_piece *tpl = b ? t->post.pair : t->post.single;
    size_t ntpl = b ? t->post.npair : t->post.nsingle;
    size_t added = t->post.set ? added_count(tpl, ntpl) : 0;
    if (max_len > 0) {
        size_t max = (size_t)max_len, total = seq[0].n + seq[1].n + added;
        if (max < added) {
            st = mch_fail(err, MCH_ERR_ARG, "max_len %d cannot hold the %zu special tokens",
                          max_len, added);
            goto done;
        }
        if (b && max_first > 0) {
            size_t room = max - added;
            if (seq[0].n > (size_t)max_first) seq[0].n = (size_t)max_first;
            if (seq[0].n > room) seq[0].n = room;
            if (seq[1].n > room - seq[0].n) seq[1].n = room - seq[0].n;
        } else if (total > max) {
            size_t rm = total - max;
            mch_ids *cut = b ? &seq[1] : &seq[0];
            if (b && cut->n <= rm) {
                st = mch_fail(err, MCH_ERR_ARG,
                              "pair: the first text has %zu tokens, the second %zu: with %zu "
                              "special tokens they cannot fit max_len %d by cutting the second",
                              seq[0].n, seq[1].n, added, max_len);
                goto done;
            }
            cut->n -= rm < cut->n ? rm : cut->n;
        }
    }
    size_t need = seq[0].n + seq[1].n + added;
    if (need > out->cap) {
        int32_t *ni = realloc(out->ids, need * sizeof *ni);
        if (ni) out->ids = ni;
        int32_t *nt = realloc(out->types, need * sizeof *nt);
        if (nt) out->types = nt;
        if (!ni || !nt) {
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu token ids", need);
            goto done;
        }
        out->cap = need;
    }
    static const int32_t none[1] = {0}; /* an empty second text is still a pair */
    const int32_t *second = b ? (seq[1].ids ? seq[1].ids : none) : NULL;
    out->n =
        mch_tok_assemble(t, seq[0].ids, seq[0].n, second, seq[1].n, out->ids, out->types, NULL);
done:
    mch_ids_free(&seq[0]);
    mch_ids_free(&seq[1]);
    if (st) out->n = 0;
    return st;
}
