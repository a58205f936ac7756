/* BERT uncased WordPiece tokenizer, identical to Hugging Face's BertTokenizer(Fast) for
 * bert-base-uncased. Text is validated as UTF-8 once, then walked code point by code point in a
 * single pass (clean, whitespace, CJK, lowercase, NFD minus Mn, punctuation split); each finished
 * word goes straight to WordPiece. Tokenizing never allocates except to grow a caller's mch_ids. */
#include "tokenizer.h"
#include "hftok_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* HF WordPiece max_input_chars_per_word: a longer word becomes [UNK]. */
#define MCH_WP_MAX_CHARS 100

struct mch_vocab {
    char *text;         /* every token, NUL-terminated, in id order */
    size_t *off;        /* (n + 1): token id starts at text + off[id]; off[n] is the end */
    int32_t n;          /* number of tokens */
    int32_t *slots;     /* (mask + 1) open-addressing table of ids, -1 = empty */
    size_t mask;        /* table size - 1 (a power of two minus one) */
    size_t max_len;     /* longest token in bytes, bounds the WordPiece search */
    int32_t special[5]; /* ids of SPECIALS[k], or -1 */
};

/* The special-token strings HF splits out of raw text before basic tokenization, matched with
 * their exact case. Indices are fixed: see the accessors below. */
enum { SP_PAD, SP_UNK, SP_CLS, SP_SEP, SP_MASK, SP_COUNT };
static const struct {
    const char *s;
    size_t len;
} SPECIALS[SP_COUNT] = {
    {"[PAD]", 5}, {"[UNK]", 5}, {"[CLS]", 5}, {"[SEP]", 5}, {"[MASK]", 6},
};

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), or len when all of s is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* Skip ASCII eight bytes at a time; most text is mostly ASCII. */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080)) break;
            i += 8;
        }
        if (i >= len) break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (len - i <= need) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return len;
}

/* Decodes the code point at s[*i] and advances *i; s must already be valid UTF-8. */
static uint32_t utf8_next(const unsigned char *s, size_t *i)
{
    uint32_t c = s[*i];
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    if (c < 0xE0) {
        c = ((c & 0x1F) << 6) | (s[*i + 1] & 0x3F);
        *i += 2;
    } else if (c < 0xF0) {
        c = ((c & 0x0F) << 12) | ((uint32_t)(s[*i + 1] & 0x3F) << 6) | (s[*i + 2] & 0x3F);
        *i += 3;
    } else {
        c = ((c & 0x07) << 18) | ((uint32_t)(s[*i + 1] & 0x3F) << 12) |
            ((uint32_t)(s[*i + 2] & 0x3F) << 6) | (s[*i + 3] & 0x3F);
        *i += 4;
    }
    return c;
}

/* Writes c as UTF-8 to out (room for 4 bytes); @return the number of bytes. */
static size_t utf8_put(char *out, uint32_t c)
{
    unsigned char *o = (unsigned char *)out;
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Length in bytes of the longest prefix of s (at most max bytes) that ends on a code point
 * boundary; used to quote tokens in messages without cutting a character. */
static int utf8_clip(const char *s, size_t len, size_t max)
{
    if (len <= max) return (int)len;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return (int)k;
}

/* ---- vocabulary ---------------------------------------------------------------------------- */

static uint64_t hash_bytes(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}
#define HASH_SEED UINT64_C(0xcbf29ce484222325)

/* Id of the token pre + s (pre is "" or "##"), or -1. */
static int32_t vocab_find(const mch_vocab *v, const char *pre, size_t plen, const char *s,
                          size_t len)
{
    uint64_t h = hash_bytes(hash_bytes(HASH_SEED, pre, plen), s, len);
    for (size_t at = (size_t)h & v->mask;; at = (at + 1) & v->mask) {
        int32_t id = v->slots[at];
        if (id < 0) return -1;
        const char *t = v->text + v->off[id];
        size_t tlen = v->off[id + 1] - v->off[id] - 1;
        if (tlen == plen + len && memcmp(t, pre, plen) == 0 && memcmp(t + plen, s, len) == 0)
            return id;
    }
}

void mch_vocab_free(mch_vocab *v)
{
    if (!v) return;
    free(v->text);
    free(v->off);
    free(v->slots);
    free(v);
}

mch_status mch_vocab_parse(mch_vocab **out, const char *data, size_t len, const char *name,
                           mch_err *err)
{
    if (!name) name = "vocab";
    if (!out || (!data && len)) return mch_fail(err, MCH_ERR_ARG, "%s: NULL argument", name);
    if (len == 0) return mch_fail(err, MCH_ERR_FORMAT, "%s: empty vocabulary file", name);

    /* Lines end at "\n", "\r\n" or a lone "\r" (Python's universal newlines, as HF's
     * load_vocab reads them); a last line without an ending still counts. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n'))) lines++;
    }
    if (data[len - 1] != '\n' && data[len - 1] != '\r') lines++;
    if (lines > (size_t)INT32_MAX - 1)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: %zu lines, more than %d tokens", name, lines,
                        INT32_MAX - 1);

    size_t cap = 16;
    while (cap < 2 * lines) cap *= 2;
    mch_vocab *v = calloc(1, sizeof *v);
    if (!v) return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name);
    v->text = malloc(len + 1);
    v->off = malloc((lines + 1) * sizeof *v->off);
    v->slots = malloc(cap * sizeof *v->slots);
    if (!v->text || !v->off || !v->slots) {
        mch_vocab_free(v);
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory for %zu tokens", name, lines);
    }
    memset(v->slots, 0xFF, cap * sizeof *v->slots); /* every slot -1 */
    v->mask = cap - 1;

    size_t pos = 0, used = 0;
    for (size_t id = 0; id < lines; id++) {
        size_t end = pos;
        while (end < len && data[end] != '\n' && data[end] != '\r') end++;
        const char *tok = data + pos;
        size_t tlen = end - pos;
        size_t line = id + 1;
        size_t bad = utf8_invalid_at((const unsigned char *)tok, tlen);
        if (bad < tlen) {
            mch_vocab_free(v);
            return mch_fail(err, MCH_ERR_FORMAT, "%s:%zu: invalid UTF-8 at byte %zu of the line",
                            name, line, bad);
        }
        const char *nul = memchr(tok, '\0', tlen);
        if (nul) {
            mch_vocab_free(v);
            return mch_fail(err, MCH_ERR_FORMAT, "%s:%zu: NUL byte at byte %zu of the line", name,
                            line, (size_t)(nul - tok));
        }
        int32_t first = vocab_find(v, "", 0, tok, tlen);
        if (first >= 0) {
            int q = utf8_clip(tok, tlen, 64);
            mch_vocab_free(v);
            return mch_fail(err, MCH_ERR_FORMAT,
                            "%s:%zu: duplicate token '%.*s%s' (first at line %d)", name, line, q,
                            tok, (size_t)q < tlen ? "..." : "", first + 1);
        }
        v->off[id] = used;
        memcpy(v->text + used, tok, tlen);
        used += tlen;
        v->text[used++] = '\0';
        if (tlen > v->max_len) v->max_len = tlen;
        uint64_t h = hash_bytes(HASH_SEED, tok, tlen);
        size_t at = (size_t)h & v->mask;
        while (v->slots[at] >= 0) at = (at + 1) & v->mask;
        v->slots[at] = (int32_t)id;
        v->off[id + 1] = used; /* vocab_find reads off[id + 1] for the newest token */

        pos = end + 1;
        if (end + 1 < len && data[end] == '\r' && data[end + 1] == '\n') pos++;
    }
    v->n = (int32_t)lines;

    for (int k = 0; k < SP_COUNT; k++)
        v->special[k] = vocab_find(v, "", 0, SPECIALS[k].s, SPECIALS[k].len);
    static const int required[] = {SP_CLS, SP_SEP, SP_UNK};
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
        int k = required[r];
        if (v->special[k] < 0) {
            mch_vocab_free(v);
            return mch_fail(err, MCH_ERR_FORMAT, "%s: no %s token in %zu lines", name,
                            SPECIALS[k].s, lines);
        }
    }
    *out = v;
    return MCH_OK;
}

mch_status mch_vocab_open(mch_vocab **out, const char *path, mch_err *err)
{
    if (!out || !path) return mch_fail(err, MCH_ERR_ARG, "mch_vocab_open: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            size_t ncap = cap ? 2 * cap : 1 << 18;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory reading %zu bytes", path,
                                len);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return mch_fail(err, MCH_ERR_IO, "%s: read error: %s", path, strerror(e));
    }
    fclose(f);
    mch_status st = mch_vocab_parse(out, buf, len, path, err);
    free(buf);
    return st;
}

int32_t mch_vocab_size(const mch_vocab *v)
{
    return v ? v->n : 0;
}

int32_t mch_vocab_lookup(const mch_vocab *v, const char *tok, size_t len)
{
    if (!v || (!tok && len)) return -1;
    return vocab_find(v, "", 0, tok ? tok : "", len);
}

const char *mch_vocab_token(const mch_vocab *v, int32_t id)
{
    if (!v || id < 0 || id >= v->n) return NULL;
    return v->text + v->off[id];
}

int32_t mch_vocab_cls(const mch_vocab *v)
{
    return v ? v->special[SP_CLS] : -1;
}

int32_t mch_vocab_sep(const mch_vocab *v)
{
    return v ? v->special[SP_SEP] : -1;
}

int32_t mch_vocab_unk(const mch_vocab *v)
{
    return v ? v->special[SP_UNK] : -1;
}

int32_t mch_vocab_pad(const mch_vocab *v)
{
    return v ? v->special[SP_PAD] : -1;
}

int32_t mch_vocab_mask(const mch_vocab *v)
{
    return v ? v->special[SP_MASK] : -1;
}

void mch_ids_free(mch_ids *a)
{
    if (!a) return;
    free(a->ids);
    a->ids = NULL;
    a->n = a->cap = 0;
}

/* ---- basic tokenizer ------------------------------------------------------------------------ */

/* HF _is_chinese_char: CJK Unified Ideographs and extensions, compatibility ideographs. Kana and
 * Hangul are not in it. */
bool mch_is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* HF _is_punctuation for ASCII: 33-47, 58-64, 91-96, 123-126 (includes $, +, <, ^, `, |, ~). */
static bool is_ascii_punct(uint32_t c)
{
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
}

static bool is_punct_cat(int cat)
{
    return cat == UTF8PROC_CATEGORY_PC || cat == UTF8PROC_CATEGORY_PD ||
           cat == UTF8PROC_CATEGORY_PS || cat == UTF8PROC_CATEGORY_PE ||
           cat == UTF8PROC_CATEGORY_PI || cat == UTF8PROC_CATEGORY_PF ||
           cat == UTF8PROC_CATEGORY_PO;
}

/* The word being built: kept code points (lowercased, decomposed, marks dropped) in canonical
 * order. count may pass limit: the word is then too long for WordPiece and the rest is not
 * stored. run is where the trailing run of non-starters begins, for canonical reordering. */
typedef struct {
    uint32_t *cp;
    size_t n, cap; /* stored, room */
    size_t count;  /* characters seen in this word */
    size_t limit;  /* store at most this many, or grow without bound when growable */
    size_t run;    /* cp[run..n) all have a non-zero combining class */
    bool growable; /* cp is heap memory that push may grow */
} mch_word;

/* What a walk does with a finished word (special < 0) or a special token (special = SP_*).
 * Returns 0 to go on, anything else to stop the walk with that value. */
typedef int (*word_fn)(void *ctx, const mch_word *w, int special);

typedef struct {
    word_fn fn;
    void *ctx;
    unsigned specials; /* bit k set: SPECIALS[k] is split out of the text */
    mch_word w;
    bool nomem; /* a growable word could not grow */
} walker;

/* Appends c (combining class ccc) to the word. NFD puts each run of non-starters in stable
 * ccc order; Mn marks are dropped afterwards, and dropping commutes with the stable sort, so
 * only kept non-starters (a few Mc viramas and musical marks) are sorted here. */
static int word_push(walker *k, uint32_t c, int ccc)
{
    mch_word *w = &k->w;
    w->count++;
    if (w->n == w->cap) {
        if (!w->growable || w->n >= w->limit) return 0;
        size_t ncap = w->cap ? 2 * w->cap : 64;
        uint32_t *ncp = realloc(w->cp, ncap * sizeof *ncp);
        if (!ncp) {
            k->nomem = true;
            return 1;
        }
        w->cp = ncp;
        w->cap = ncap;
    }
    if (w->n >= w->limit) return 0;
    size_t j = w->n++;
    if (ccc == 0) {
        w->cp[j] = c;
        w->run = w->n;
        return 0;
    }
    while (j > w->run &&
           utf8proc_get_property((utf8proc_int32_t)w->cp[j - 1])->combining_class > ccc) {
        w->cp[j] = w->cp[j - 1];
        j--;
    }
    w->cp[j] = c;
    return 0;
}

static int word_flush(walker *k)
{
    mch_word *w = &k->w;
    if (w->count == 0) return 0;
    int rc = k->fn(k->ctx, w, -1);
    w->n = w->count = w->run = 0;
    return rc;
}

/* A punctuation character is a word of its own. */
static int word_single(walker *k, uint32_t c)
{
    int rc = word_flush(k);
    if (!rc) rc = word_push(k, c, 0);
    if (!rc) rc = word_flush(k);
    return rc;
}

/* Feeds one code point that survived cleaning into the word: lowercases it, decomposes it
 * (NFD), drops Mn marks, splits on punctuation. Lowercasing is per character, as HF does it: the
 * slow tokenizer lowercases text one character at a time (re.sub with "(.+?)") before
 * BasicTokenizer, the fast one uses char::to_lowercase, so Greek final sigma is never produced
 * (ΟΔΟΣ -> οδοσ). Python maps U+0130 to "i" + U+0307, which stripping turns into "i": that is
 * utf8proc's simple mapping, so no special case is needed. */
static int feed_letter(walker *k, uint32_t c)
{
    if (c < 0x80) {
        if (is_ascii_punct(c)) return word_single(k, c);
        if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        return word_push(k, c, 0);
    }
    utf8proc_int32_t d[8];
    int boundclass = 0;
    utf8proc_int32_t lc = utf8proc_tolower((utf8proc_int32_t)c);
    utf8proc_ssize_t nd = utf8proc_decompose_char(lc, d, 8, UTF8PROC_DECOMPOSE, &boundclass);
    if (nd < 1 || nd > 8) { /* cannot happen for a valid code point; keep it as it is */
        d[0] = lc;
        nd = 1;
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++) {
        uint32_t e = (uint32_t)d[i];
        int rc;
        if (e < 0x80) {
            rc = is_ascii_punct(e) ? word_single(k, e) : word_push(k, e, 0);
        } else {
            const utf8proc_property_t *p = utf8proc_get_property(d[i]);
            if (p->category == UTF8PROC_CATEGORY_MN) {
                if (p->combining_class == 0) k->w.run = k->w.n; /* a starter, then dropped */
                continue;
            }
            rc =
                is_punct_cat(p->category) ? word_single(k, e) : word_push(k, e, p->combining_class);
        }
        if (rc) return rc;
    }
    return 0;
}

/* Index of the special token at the start of s, or -1. */
static int match_special(const char *s, size_t len, unsigned specials)
{
    for (int k = 0; k < SP_COUNT; k++) {
        if ((specials & (1u << k)) && len >= SPECIALS[k].len &&
            memcmp(s, SPECIALS[k].s, SPECIALS[k].len) == 0)
            return k;
    }
    return -1;
}

/* Runs HF's BasicTokenizer over valid UTF-8 text: special tokens split out first; then
 * _clean_text (drop U+0000, U+FFFD and category C* except \t \n \r), whitespace (\t \n \r, Zs,
 * and U+2028/U+2029 which Python's str.split also splits on), CJK ideographs as words, and per
 * character lowercase + NFD + Mn removal + punctuation split. @return as the word function. */
static int walk(walker *k, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    int rc = 0;
    while (i < len && !rc) {
        uint32_t c = s[i];
        if (c == '[' && k->specials) {
            int sp = match_special(text + i, len - i, k->specials);
            if (sp >= 0) {
                rc = word_flush(k);
                if (!rc) rc = k->fn(k->ctx, NULL, sp);
                i += SPECIALS[sp].len;
                continue;
            }
        }
        if (c < 0x80) {
            i++;
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                rc = word_flush(k);
            else if (c < 0x20 || c == 0x7F)
                continue; /* Cc, U+0000 included */
            else
                rc = feed_letter(k, c);
            continue;
        }
        c = utf8_next(s, &i);
        if (c == 0xFFFD) continue;
        int cat = utf8proc_category((utf8proc_int32_t)c);
        if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
            cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO ||
            cat == UTF8PROC_CATEGORY_CN)
            continue;
        if (cat == UTF8PROC_CATEGORY_ZS || c == 0x2028 || c == 0x2029) {
            rc = word_flush(k);
        } else if (mch_is_cjk(c)) {
            rc = word_flush(k);
            if (!rc) rc = feed_letter(k, c);
            if (!rc) rc = word_flush(k);
        } else {
            rc = feed_letter(k, c);
        }
    }
    if (!rc) rc = word_flush(k);
    return rc;
}

/* ---- WordPiece and id sinks ------------------------------------------------------------------ */

/* Where ids go: appended to a growable mch_ids, or into a fixed array of at most limit. */
typedef struct {
    const mch_vocab *v;
    mch_ids *grow;
    int32_t *dst;
    size_t n, limit;
    bool nomem;
} id_sink;

static int sink_put(id_sink *o, int32_t id)
{
    if (o->grow) {
        mch_ids *a = o->grow;
        if (a->n == a->cap) {
            size_t ncap = a->cap ? 2 * a->cap : 64;
            int32_t *nids = realloc(a->ids, ncap * sizeof *nids);
            if (!nids) {
                o->nomem = true;
                return 1;
            }
            a->ids = nids;
            a->cap = ncap;
        }
        a->ids[a->n++] = id;
        return 0;
    }
    if (o->n >= o->limit) return 1;
    o->dst[o->n++] = id;
    return o->n >= o->limit; /* full: stop the walk */
}

/* Greedy longest-match-first WordPiece of one word, as HF: continuation pieces carry "##", a
 * word of more than 100 characters or with an unmatched remainder is one [UNK]. Candidate
 * pieces longer than the longest vocab token are skipped without a lookup. */
static int wordpiece(void *ctx, const mch_word *w, int special)
{
    id_sink *o = ctx;
    const mch_vocab *v = o->v;
    if (special >= 0) return sink_put(o, v->special[special]);
    if (w->count > MCH_WP_MAX_CHARS) return sink_put(o, v->special[SP_UNK]);

    char buf[4 * MCH_WP_MAX_CHARS];
    size_t off[MCH_WP_MAX_CHARS + 1];
    size_t n = w->n, used = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = used;
        used += utf8_put(buf + used, w->cp[i]);
    }
    off[n] = used;

    int32_t pieces[MCH_WP_MAX_CHARS];
    size_t np = 0, start = 0;
    while (start < n) {
        size_t plen = start > 0 ? 2 : 0;
        size_t end = n;
        while (end > start && off[end] - off[start] + plen > v->max_len) end--;
        int32_t id = -1;
        for (; end > start; end--) {
            id = vocab_find(v, "##", plen, buf + off[start], off[end] - off[start]);
            if (id >= 0) break;
        }
        if (id < 0) return sink_put(o, v->special[SP_UNK]);
        pieces[np++] = id;
        start = end;
    }
    for (size_t i = 0; i < np; i++) {
        int rc = sink_put(o, pieces[i]);
        if (rc) return rc;
    }
    return 0;
}

/* Special tokens present in the vocab are split out of text; an absent [PAD] or [MASK] is
 * ordinary text. */
static unsigned vocab_specials(const mch_vocab *v)
{
    unsigned m = 0;
    for (int k = 0; k < SP_COUNT; k++)
        if (v->special[k] >= 0) m |= 1u << k;
    return m;
}

/* WordPiece ids of valid UTF-8 text into o, using a word buffer on the stack (the walk never
 * stores more than 100 characters of a word: a longer one is [UNK] anyway). */
static void tokenize_into(const mch_vocab *v, const char *text, size_t len, id_sink *o)
{
    uint32_t cp[MCH_WP_MAX_CHARS];
    walker k = {.fn = wordpiece, .ctx = o, .specials = vocab_specials(v)};
    k.w.cp = cp;
    k.w.cap = k.w.limit = MCH_WP_MAX_CHARS;
    walk(&k, text, len);
}

static mch_status check_utf8(const char *what, const char *text, size_t len, mch_err *err)
{
    size_t bad = utf8_invalid_at((const unsigned char *)text, len);
    if (bad < len)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu (0x%02x)", what, bad,
                        (unsigned char)text[bad]);
    return MCH_OK;
}

mch_status mch_tokenize(const mch_vocab *v, const char *text, size_t len, mch_ids *out,
                        mch_err *err)
{
    if (!v || !out || (!text && len))
        return mch_fail(err, MCH_ERR_ARG, "mch_tokenize: NULL argument");
    if (!text) return MCH_OK;
    mch_status st = check_utf8("text", text, len, err);
    if (st) return st;
    size_t n0 = out->n;
    id_sink o = {.v = v, .grow = out};
    tokenize_into(v, text, len, &o);
    if (o.nomem) {
        out->n = n0;
        return mch_fail(err, MCH_ERR_NOMEM, "text: out of memory for %zu token ids", out->cap);
    }
    return MCH_OK;
}

/* ---- basic words ----------------------------------------------------------------------------- */

typedef struct {
    mch_word_fn fn;
    void *user;
    char *buf;
    size_t cap;
    bool nomem;
} words_ctx;

static int words_emit(void *ctx, const mch_word *w, int special)
{
    words_ctx *c = ctx;
    if (special >= 0) return c->fn(c->user, SPECIALS[special].s, SPECIALS[special].len);
    size_t need = 4 * w->n + 1;
    if (need > c->cap) {
        size_t ncap = c->cap ? c->cap : 256;
        while (ncap < need) ncap *= 2;
        char *nb = realloc(c->buf, ncap);
        if (!nb) {
            c->nomem = true;
            return 1;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    size_t used = 0;
    for (size_t i = 0; i < w->n; i++) used += utf8_put(c->buf + used, w->cp[i]);
    c->buf[used] = '\0';
    return c->fn(c->user, c->buf, used);
}

mch_status mch_basic_words(const char *text, size_t len, mch_word_fn fn, void *user, mch_err *err)
{
    if (!fn || (!text && len)) return mch_fail(err, MCH_ERR_ARG, "mch_basic_words: NULL argument");
    if (!text) return MCH_OK;
    mch_status st = check_utf8("text", text, len, err);
    if (st) return st;
    words_ctx c = {.fn = fn, .user = user};
    walker k = {.fn = words_emit, .ctx = &c, .specials = (1u << SP_COUNT) - 1};
    k.w.growable = true;
    k.w.limit = SIZE_MAX;
    int rc = walk(&k, text, len);
    free(k.w.cp);
    free(c.buf);
    if (k.nomem || c.nomem)
        return mch_fail(err, MCH_ERR_NOMEM, "text: out of memory splitting %zu bytes into words",
                        len);
    return (mch_status)rc;
}

/* ---- model inputs ---------------------------------------------------------------------------- */

/* Up to limit ids of text into dst; @return how many. text was validated. */
static size_t tokenize_capped(const mch_vocab *v, const char *text, int32_t *dst, size_t limit)
{
    if (limit == 0) return 0;
    id_sink o = {.v = v, .dst = dst, .limit = limit};
    tokenize_into(v, text, strlen(text), &o);
    return o.n;
}

mch_status mch_encode_pair(const mch_vocab *v, const char *query, const char *doc,
                           int max_query_len, int max_len, int32_t *ids, int32_t *types, int *n,
                           mch_err *err)
{
    if (n) *n = 0;
    if (!v || !query || !doc || !ids || !types || !n)
        return mch_fail(err, MCH_ERR_ARG, "mch_encode_pair: NULL argument");
    if (max_len < 3 || max_query_len < 0)
        return mch_fail(err, MCH_ERR_ARG,
                        "mch_encode_pair: max_len %d (need >= 3), max_query_len %d (need >= 0)",
                        max_len, max_query_len);
    mch_status st = check_utf8("query", query, strlen(query), err);
    if (!st) st = check_utf8("document", doc, strlen(doc), err);
    if (st) return st;

    size_t room = (size_t)max_len - 3;
    size_t qcap = (size_t)max_query_len < room ? (size_t)max_query_len : room;
    ids[0] = v->special[SP_CLS];
    size_t q = tokenize_capped(v, query, ids + 1, qcap);
    ids[q + 1] = v->special[SP_SEP];
    size_t d = tokenize_capped(v, doc, ids + q + 2, room - q);
    ids[q + d + 2] = v->special[SP_SEP];
    size_t total = q + d + 3;
    for (size_t i = 0; i < total; i++) types[i] = i <= q + 1 ? 0 : 1;
    *n = (int)total;
    return MCH_OK;
}

mch_status mch_encode_single(const mch_vocab *v, const char *text, int max_len, int32_t *ids,
                             int *n, mch_err *err)
{
    if (n) *n = 0;
    if (!v || !text || !ids || !n)
        return mch_fail(err, MCH_ERR_ARG, "mch_encode_single: NULL argument");
    if (max_len < 2)
        return mch_fail(err, MCH_ERR_ARG, "mch_encode_single: max_len %d (need >= 2)", max_len);
    mch_status st = check_utf8("text", text, strlen(text), err);
    if (st) return st;
    ids[0] = v->special[SP_CLS];
    size_t t = tokenize_capped(v, text, ids + 1, (size_t)max_len - 2);
    ids[t + 1] = v->special[SP_SEP];
    *n = (int)(t + 2);
    return MCH_OK;
}
