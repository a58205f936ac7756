/* Words of token ids (hftok.h): which pieces start a word, what each adds to its word's
 * spelling, and how an injected word is tokenized, for WordPiece ("##"), byte-level BPE ("Ġ")
 * and Metaspace ("▁") tokenizers alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hftok_int.h"

int32_t mch_tok_unk(const mch_tok *t)
{
    return t->model.unk;
}

bool mch_tok_uncased(const mch_tok *t)
{
    return t->has_norm && t->norm.kind == TN_BERT && t->norm.lowercase && t->norm.strip_accents;
}

/* The pre-tokenizer of kind `kind`, alone or inside a Sequence, or NULL. */
static const tk_pre *find_pre(const tk_pre *p, int kind)
{
    if (p->kind == kind) return p;
    for (size_t i = 0; p->kind == TP_SEQ && i < p->nitems; i++) {
        const tk_pre *q = find_pre(&p->items[i], kind);
        if (q) return q;
    }
    return NULL;
}

/* The byte GPT-2's byte-to-unicode table maps to code point c, or -1: printable Latin-1 bytes
 * map to themselves, the other 68 bytes in order to U+0100.. U+0143. */
static int byte_of(uint32_t c)
{
    static int16_t rest[68];
    static int ready;
    if (!ready) {
        int k = 0;
        for (int b = 0; b < 256; b++)
            if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)))
                rest[k++] = (int16_t)b;
        ready = 1;
    }
    if ((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255)) return (int)c;
    return c >= 256 && c < 256 + 68 ? rest[c - 256] : -1;
}

static bool is_space_byte(unsigned char b)
{
    return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f';
}

int mch_tok_piece(const mch_tok *t, int32_t id, char *buf, size_t cap, size_t *len)
{
    const char *s = mch_tok_token(t, id);
    if (!s || cap == 0) return -1;
    size_t n = strlen(s), o = 0;
    int kind = MCH_PIECE_GLUED;
    if (t->has_pre && find_pre(&t->pre, TP_BYTELEVEL)) {
        for (size_t i = 0; i < n;) {
            int b = byte_of(tk_next(s, &i));
            if (b < 0) { /* not a byte symbol: an added token, kept as it is */
                o = 0;
                if (n >= cap) return -1;
                memcpy(buf, s, n + 1);
                *len = n;
                return MCH_PIECE_START;
            }
            if (o == 0 && is_space_byte((unsigned char)b)) {
                kind = MCH_PIECE_START;
                continue;
            }
            if (o + 1 >= cap) return -1;
            buf[o++] = (char)b;
        }
        buf[o] = 0;
        *len = o;
        return kind;
    }
    const tk_pre *ms = t->has_pre ? find_pre(&t->pre, TP_METASPACE) : NULL;
    if (t->model.kind == TM_WORDPIECE && t->model.prefix_len &&
        !strncmp(s, t->model.prefix, t->model.prefix_len)) {
        s += t->model.prefix_len, n -= t->model.prefix_len;
        kind = MCH_PIECE_CONTINUE;
    } else if (t->model.kind == TM_WORDPIECE) {
        kind = MCH_PIECE_START;
    } else if (ms) {
        for (; n >= ms->repl_len && !memcmp(s, ms->repl, ms->repl_len); s += ms->repl_len)
            n -= ms->repl_len, kind = MCH_PIECE_START;
    }
    if (n >= cap) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    *len = n;
    return kind;
}

mch_status mch_tok_tokenize_word(const mch_tok *t, const char *word, size_t len, mch_ids *out,
                                 mch_err *err)
{
    const tk_pre *bl = t->has_pre ? find_pre(&t->pre, TP_BYTELEVEL) : NULL;
    if (!bl || bl->add_prefix_space) return mch_tok_tokenize(t, word, len, out, err);
    char *s = malloc(len + 2);
    if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    s[0] = ' ';
    memcpy(s + 1, word, len);
    s[len + 1] = 0;
    mch_status st = mch_tok_tokenize(t, s, len + 1, out, err);
    free(s);
    return st;
}

mch_status mch_tok_encode_to(const mch_tok *t, const char *a, const char *b, int max_first,
                             int max_len, int32_t *ids, int32_t *types, int *n, mch_err *err)
{
    mch_tok_enc e = {0};
    mch_status st =
        mch_tok_encode(t, a, strlen(a), b, b ? strlen(b) : 0, max_len, b ? max_first : 0, &e, err);
    if (!st) {
        memcpy(ids, e.ids, e.n * sizeof *ids);
        if (types) memcpy(types, e.types, e.n * sizeof *types);
        *n = (int)e.n;
    }
    mch_tok_enc_free(&e);
    return st;
}

mch_status mch_tok_encode_monot5(const mch_tok *t, const char *query, const char *doc, int max_len,
                                 mch_tok_enc *out, mch_err *err)
{
    if (max_len < 2)
        return mch_fail(err, MCH_ERR_ARG, "max_len %d cannot hold a token and </s> (at least 2)",
                        max_len);
    static const char p0[] = "Query: ", p1[] = " Document: ", p2[] = " Relevant:";
    size_t need = sizeof p0 + sizeof p1 + sizeof p2 + strlen(query) + strlen(doc);
    char *prompt = malloc(need);
    if (!prompt) return mch_fail(err, MCH_ERR_NOMEM, "out of memory for a %zu-byte prompt", need);
    int n = snprintf(prompt, need, "%s%s%s%s%s", p0, query, p1, doc, p2);
    /* The template appends </s>; cutting the single text keeps it last. */
    mch_status st = mch_tok_encode(t, prompt, (size_t)n, NULL, 0, max_len, 0, out, err);
    free(prompt);
    return st;
}
