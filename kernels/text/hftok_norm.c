/* Normalizers and pre-tokenizers of the tokenizer.json pipeline, as string stages: each reads
 * valid UTF-8 and appends valid UTF-8 (or word spans) to its output, as Hugging Face's
 * tokenizers 0.2x computes them (offsets are not tracked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "hftok_int.h"

/* ---- buffers and code points ------------------------------------------------------------------
 */

int tk_buf_put(tk_buf *b, const void *s, size_t len)
{
    if (b->cap - b->n <= len) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->n <= len) ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) return -1;
        b->p = np;
        b->cap = ncap;
    }
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

int tk_buf_cp(tk_buf *b, uint32_t c)
{
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)c, u);
    return tk_buf_put(b, u, (size_t)k);
}

int tk_words_add(tk_words *ws, const char *s, size_t len, bool at_start)
{
    if (len == 0) return 0; /* the library drops empty pieces */
    if (ws->n == ws->cap) {
        size_t ncap = ws->cap ? 2 * ws->cap : 64;
        tk_span *nw = realloc(ws->w, ncap * sizeof *nw);
        if (!nw) return -1;
        ws->w = nw;
        ws->cap = ncap;
    }
    size_t off = ws->text.n;
    if (tk_buf_put(&ws->text, s, len)) return -1;
    ws->w[ws->n++] = (tk_span){off, len, at_start};
    return 0;
}

void tk_words_free(tk_words *ws)
{
    free(ws->text.p);
    free(ws->w);
    memset(ws, 0, sizeof *ws);
}

uint32_t tk_next(const char *s, size_t *i)
{
    utf8proc_int32_t c = 0;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + *i, 4, &c);
    if (k < 1) { /* cannot happen on validated text; step one byte */
        *i += 1;
        return 0xFFFD;
    }
    *i += (size_t)k;
    return (uint32_t)c;
}

bool tk_is_whitespace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Length in bytes of the code point starting with byte b. */
static size_t cp_len(unsigned char b)
{
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

pcre2_code *tk_regex(const char *pattern, size_t len, char *why, size_t why_cap)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(why, why_cap, "%s at offset %zu", (const char *)msg, (size_t)eo);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* best effort: the interpreter is the fallback */
    return re;
}

/* Calls fn(user, start, end) for each match of re in s[0..len), left to right; an empty match
 * moves on by one character. 0, or the first non-zero return of fn, or -1 (out of memory). */
typedef int (*tk_match_fn)(void *user, size_t start, size_t end);
static int each_match(const pcre2_code *re, const char *s, size_t len, tk_match_fn fn, void *user)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return -1;
    size_t at = 0;
    int rc = 0;
    while (at <= len && !rc) {
        int m = pcre2_match(re, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (m < 0) break; /* no match (or a match limit, which these patterns never reach) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], e = ov[1];
        rc = fn(user, a, e);
        at = e > a ? e : (e < len ? e + cp_len((unsigned char)s[e]) : len + 1);
    }
    pcre2_match_data_free(md);
    return rc;
}

/* ---- normalizers ------------------------------------------------------------------------------
 */

static bool is_other(uint32_t c)
{
    int cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO ||
           cat == UTF8PROC_CATEGORY_CN;
}

/* BertNormalizer: clean_text (drop NUL, U+FFFD and C* but \t \n \r; then every White_Space
 * character and \t \n \r -> ' '), spaces around CJK ideographs, NFD minus Mn, lowercase (per
 * character: U+0130 -> "i" U+0307, the only multi-character lowercase). */
static int norm_bert(const tk_norm *n, const char *s, size_t len, tk_buf *out)
{
    tk_buf a = {0};
    int rc = 0;
    for (size_t i = 0; i < len && !rc;) {
        uint32_t c = tk_next(s, &i);
        if (n->clean) {
            bool ctl = c != '\t' && c != '\n' && c != '\r' && is_other(c);
            if (c == 0 || c == 0xFFFD || ctl) continue;
            if (tk_is_whitespace(c)) c = ' ';
        }
        if (n->cjk && mch_is_cjk(c)) {
            rc = tk_buf_cp(&a, ' ') || tk_buf_cp(&a, c) || tk_buf_cp(&a, ' ');
        } else {
            rc = tk_buf_cp(&a, c);
        }
    }
    if (!rc && a.n && n->strip_accents) {
        utf8proc_uint8_t *d = NULL;
        utf8proc_ssize_t dn = utf8proc_map((const utf8proc_uint8_t *)a.p, (utf8proc_ssize_t)a.n, &d,
                                           UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
        if (dn < 0) {
            rc = -1;
        } else {
            a.n = 0;
            for (size_t i = 0; i < (size_t)dn && !rc;) {
                uint32_t c = tk_next((const char *)d, &i);
                if (utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN) continue;
                rc = tk_buf_cp(&a, c);
            }
        }
        free(d);
    }
    for (size_t i = 0; i < a.n && !rc;) {
        uint32_t c = tk_next(a.p, &i);
        if (!n->lowercase) {
            rc = tk_buf_cp(out, c);
        } else if (c == 0x130) {
            rc = tk_buf_put(out, "i\xCC\x87", 3);
        } else {
            rc = tk_buf_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
    }
    free(a.p);
    return rc;
}

/* sentencepiece's double array (darts-clone): the keys that are prefixes of s[0..len), shortest
 * first; with longest false the first one's value, else the longest one's (its length in *mlen).
 * -1 when none. Every index is checked against the array's size. */
static int64_t darts_walk(const tk_norm *n, const char *s, size_t len, bool longest, size_t *mlen)
{
    const uint32_t *u = n->units;
    int64_t found = -1;
    if (n->nunits == 0) return -1;
#define DA_OFFSET(x) (((x) >> 10) << (((x) & (1u << 9)) >> 6))
    size_t pos = DA_OFFSET(u[0]);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) break;
        pos ^= c;
        if (pos >= n->nunits) break;
        uint32_t unit = u[pos];
        if ((unit & ((1u << 31) | 0xFFu)) != c) break;
        pos ^= DA_OFFSET(unit);
        if ((unit >> 8) & 1) {
            if (pos >= n->nunits) break;
            found = (int64_t)(u[pos] & ((1u << 31) - 1));
            if (mlen) *mlen = i + 1;
            if (!longest) return found;
        }
    }
#undef DA_OFFSET
    return found;
}

static int64_t darts_first(const tk_norm *n, const char *s, size_t len)
{
    return darts_walk(n, s, len, false, NULL);
}

int64_t tk_darts_longest(const tk_norm *n, const char *s, size_t len, size_t *mlen)
{
    return darts_walk(n, s, len, true, mlen);
}

/* The charsmap replacement for chunk (the shortest matching rule, which may cover only part of
 * chunk: the whole chunk is replaced anyway, as spm_precompiled does), or 0 when none. */
static int precompiled_put(const tk_norm *n, const char *s, size_t len, tk_buf *out, int *done)
{
    int64_t v = darts_first(n, s, len);
    *done = 0;
    if (v < 0 || (size_t)v >= n->pool_len) return 0;
    *done = 1;
    return tk_buf_put(out, n->pool + v, strlen(n->pool + v));
}

/* Precompiled: per extended grapheme cluster, the cluster's replacement when it is under 6 bytes
 * and a rule matches, otherwise each character's replacement or the character itself. */
static int norm_precompiled(const tk_norm *n, const char *s, size_t len, tk_buf *out)
{
    size_t g = 0;
    int rc = 0;
    utf8proc_int32_t state = 0;
    while (g < len && !rc) {
        size_t e = g;
        uint32_t prev = tk_next(s, &e);
        while (e < len) {
            size_t k = e;
            uint32_t c = tk_next(s, &k);
            if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)c,
                                                 &state))
                break;
            prev = c;
            e = k;
        }
        state = 0;
        int done = 0;
        if (e - g < 6) rc = precompiled_put(n, s + g, e - g, out, &done);
        for (size_t i = g; i < e && !done && !rc;) {
            size_t j = i + cp_len((unsigned char)s[i]);
            int one = 0;
            rc = precompiled_put(n, s + i, j - i, out, &one);
            if (!one && !rc) rc = tk_buf_put(out, s + i, j - i);
            i = j;
        }
        g = e;
    }
    return rc;
}

static int norm_strip(const tk_norm *n, const char *s, size_t len, tk_buf *out)
{
    size_t a = 0, e = len;
    if (n->left) {
        while (a < e) {
            size_t k = a;
            if (!tk_is_whitespace(tk_next(s, &k))) break;
            a = k;
        }
    }
    if (n->right) {
        while (e > a) {
            size_t k = e - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            size_t j = k;
            if (!tk_is_whitespace(tk_next(s, &j))) break;
            e = k;
        }
    }
    return tk_buf_put(out, s + a, e - a);
}

typedef struct {
    const tk_norm *n;
    const char *s;
    size_t done;
    tk_buf *out;
} replace_ctx;

static int replace_one(void *user, size_t start, size_t end)
{
    replace_ctx *r = user;
    if (end == start) return 0; /* an empty match replaces nothing */
    if (tk_buf_put(r->out, r->s + r->done, start - r->done) ||
        tk_buf_put(r->out, r->n->content, r->n->content_len))
        return -1;
    r->done = end;
    return 0;
}

static int norm_replace(const tk_norm *n, const char *s, size_t len, tk_buf *out)
{
    replace_ctx r = {n, s, 0, out};
    if (n->re) {
        if (each_match(n->re, s, len, replace_one, &r)) return -1;
    } else if (n->lit_len) {
        for (size_t i = 0; i + n->lit_len <= len;) {
            if (memcmp(s + i, n->lit, n->lit_len) == 0) {
                if (replace_one(&r, i, i + n->lit_len)) return -1;
                i += n->lit_len;
            } else {
                i++;
            }
        }
    }
    return tk_buf_put(out, s + r.done, len - r.done);
}

int tk_norm_apply(const tk_norm *n, const char *s, size_t len, tk_buf *out)
{
    switch (n->kind) {
    case TN_BERT:
        return norm_bert(n, s, len, out);
    case TN_PRECOMPILED:
        return norm_precompiled(n, s, len, out);
    case TN_STRIP:
        return norm_strip(n, s, len, out);
    case TN_REPLACE:
        return norm_replace(n, s, len, out);
    case TN_SPM:
        return tk_spm_normalize(n, s, len, out);
    default:
        break;
    }
    /* Sequence: each stage reads the previous one's output. */
    tk_buf a = {0}, b = {0};
    int rc = tk_buf_put(&a, s, len);
    for (size_t i = 0; i < n->nitems && !rc; i++) {
        b.n = 0;
        rc = tk_norm_apply(&n->items[i], a.p, a.n, &b);
        tk_buf t = a;
        a = b;
        b = t;
    }
    if (!rc) rc = tk_buf_put(out, a.p, a.n);
    free(a.p);
    free(b.p);
    return rc;
}

void tk_norm_deinit(tk_norm *n)
{
    if (!n) return;
    free(n->units);
    free(n->pool);
    pcre2_code_free(n->re);
    free(n->lit);
    free(n->content);
    for (size_t i = 0; i < n->nitems; i++) tk_norm_deinit(&n->items[i]);
    free(n->items);
    memset(n, 0, sizeof *n);
}

/* ---- pre-tokenizers ---------------------------------------------------------------------------
 */

static bool is_bert_punct(uint32_t c)
{
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    int cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_PC || cat == UTF8PROC_CATEGORY_PD ||
           cat == UTF8PROC_CATEGORY_PS || cat == UTF8PROC_CATEGORY_PE ||
           cat == UTF8PROC_CATEGORY_PI || cat == UTF8PROC_CATEGORY_PF ||
           cat == UTF8PROC_CATEGORY_PO;
}

/* Whitespace removed; with punct, every punctuation character a word of its own. */
static int pre_split(const char *s, size_t len, bool at_start, bool punct, tk_words *out)
{
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        size_t k = i;
        uint32_t c = tk_next(s, &k);
        bool ws = tk_is_whitespace(c), p = punct && !ws && is_bert_punct(c);
        if (ws || p) {
            if (tk_words_add(out, s + w, i - w, at_start && w == 0)) return -1;
            if (p && tk_words_add(out, s + i, k - i, at_start && i == 0)) return -1;
            w = k;
        }
        i = k;
    }
    return tk_words_add(out, s + w, len - w, at_start && w == 0);
}

/* GPT-2's byte -> printable character table: bytes that print as themselves keep their value,
 * the others take 256, 257, ... in byte order. */
static uint32_t byte_char(unsigned char b)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        uint32_t next = 256;
        for (int i = 0; i < 256; i++) {
            bool keep = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174);
            table[i] = keep ? (uint32_t)i : next++;
        }
        ready = 1; /* written with the same values by any racing thread */
    }
    return table[b];
}

static int bytelevel_word(tk_words *out, const char *s, size_t len, bool at_start)
{
    tk_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < len && !rc; i++) rc = tk_buf_cp(&b, byte_char((unsigned char)s[i]));
    if (!rc) rc = tk_words_add(out, b.p, b.n, at_start);
    free(b.p);
    return rc;
}

typedef struct {
    const char *s;
    size_t done;
    bool at_start;
    tk_words *out;
} split_ctx;

/* The gap before a match and the match, each a word (the library's Isolated behaviour). */
static int split_one(void *user, size_t start, size_t end)
{
    split_ctx *c = user;
    if (end == start) return 0;
    if (bytelevel_word(c->out, c->s + c->done, start - c->done, c->at_start && c->done == 0) ||
        bytelevel_word(c->out, c->s + start, end - start, c->at_start && start == 0))
        return -1;
    c->done = end;
    return 0;
}

static int pre_bytelevel(const tk_pre *p, const char *s, size_t len, bool at_start, tk_words *out)
{
    tk_buf b = {0};
    int rc = 0;
    if (p->add_prefix_space && (len == 0 || s[0] != ' ')) rc = tk_buf_put(&b, " ", 1);
    if (!rc) rc = tk_buf_put(&b, s, len);
    if (!rc && p->re) {
        split_ctx c = {b.p, 0, at_start, out};
        rc = each_match(p->re, b.p, b.n, split_one, &c);
        if (!rc) rc = bytelevel_word(out, b.p + c.done, b.n - c.done, at_start && c.done == 0);
    } else if (!rc) {
        rc = bytelevel_word(out, b.p, b.n, at_start);
    }
    free(b.p);
    return rc;
}

/* Metaspace: ' ' -> replacement, the replacement prepended (always, or only at the start of the
 * text: "first"), then split before each replacement (MergedWithNext). */
static int pre_metaspace(const tk_pre *p, const char *s, size_t len, bool at_start, tk_words *out)
{
    tk_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < len && !rc; i++)
        rc = s[i] == ' ' ? tk_buf_put(&b, p->repl, p->repl_len) : tk_buf_put(&b, s + i, 1);
    if (rc) {
        free(b.p);
        return -1;
    }
    bool starts = b.n >= p->repl_len && memcmp(b.p, p->repl, p->repl_len) == 0;
    bool add = !starts &&
               (p->prepend == TP_PREPEND_ALWAYS || (p->prepend == TP_PREPEND_FIRST && at_start));
    tk_buf c = {0};
    if (add) rc = tk_buf_put(&c, p->repl, p->repl_len);
    if (!rc) rc = tk_buf_put(&c, b.p, b.n);
    free(b.p);
    if (!rc && !p->split) {
        rc = tk_words_add(out, c.p, c.n, at_start);
    } else if (!rc) {
        size_t w = 0;
        for (size_t i = 0; i < c.n && !rc;) {
            if (i + p->repl_len <= c.n && memcmp(c.p + i, p->repl, p->repl_len) == 0) {
                if (i > w) rc = tk_words_add(out, c.p + w, i - w, at_start && w == 0);
                w = i;
                i += p->repl_len;
            } else {
                i++;
            }
        }
        if (!rc) rc = tk_words_add(out, c.p + w, c.n - w, at_start && w == 0);
    }
    free(c.p);
    return rc;
}

int tk_pre_apply(const tk_pre *p, const char *s, size_t len, bool at_start, tk_words *out)
{
    switch (p->kind) {
    case TP_BERT:
        return pre_split(s, len, at_start, true, out);
    case TP_WSPLIT:
        return pre_split(s, len, at_start, false, out);
    case TP_BYTELEVEL:
        return pre_bytelevel(p, s, len, at_start, out);
    case TP_METASPACE:
        return pre_metaspace(p, s, len, at_start, out);
    default:
        break;
    }
    /* Sequence: each stage splits every word of the previous one. */
    tk_words a = {0}, b = {0};
    int rc = tk_words_add(&a, s, len, at_start);
    for (size_t i = 0; i < p->nitems && !rc; i++) {
        b.n = b.text.n = 0;
        for (size_t k = 0; k < a.n && !rc; k++)
            rc = tk_pre_apply(&p->items[i], a.text.p + a.w[k].off, a.w[k].len, a.w[k].at_start, &b);
        tk_words t = a;
        a = b;
        b = t;
    }
    for (size_t k = 0; k < a.n && !rc; k++)
        rc = tk_words_add(out, a.text.p + a.w[k].off, a.w[k].len, a.w[k].at_start);
    tk_words_free(&a);
    tk_words_free(&b);
    return rc;
}

void tk_pre_deinit(tk_pre *p)
{
    if (!p) return;
    pcre2_code_free(p->re);
    for (size_t i = 0; i < p->nitems; i++) tk_pre_deinit(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof *p);
}
