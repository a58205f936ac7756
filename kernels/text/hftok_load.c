/* tokenizer.json and vocab.txt into the parts of a mch_tok (hftok_int.h). Every field is checked
 * before use; what the pipeline does not implement is refused with the JSON path of the field
 * ("normalizer.normalizers[1].type 'NFKC' is not supported"), never tokenized approximately. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#include "hftok_int.h"
#include "utf8.h"

#define TK_MAX_FILE_BYTES ((size_t)1 << 30)

mch_status tk_read_file(const char *path, char **data, size_t *len, mch_err *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    tk_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + got > TK_MAX_FILE_BYTES) {
            fclose(f);
            free(b.p);
            return mch_fail(err, MCH_ERR_FORMAT, "%s: larger than %zu bytes", path,
                            TK_MAX_FILE_BYTES);
        }
        if (tk_buf_put(&b, chunk, got)) {
            fclose(f);
            free(b.p);
            return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, b.n);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.p);
        return mch_fail(err, MCH_ERR_IO, "%s: read error", path);
    }
    if (!b.p && tk_buf_put(&b, "", 0))
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", path);
    *data = b.p;
    *len = b.n;
    return MCH_OK;
}

/* ---- JSON field access ------------------------------------------------------------------------
 */

typedef struct {
    const char *name; /* the file, for messages */
    mch_err *err;
} ctx;

static mch_status bad(ctx *c, const char *path, const char *what)
{
    return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s %s", c->name, path, what);
}

static mch_status nomem(ctx *c, const char *path)
{
    return mch_fail(c->err, MCH_ERR_NOMEM, "%s: out of memory reading %s", c->name, path);
}

static void join(char *out, size_t cap, const char *path, const char *key)
{
    snprintf(out, cap, "%s%s%s", path, *path ? "." : "", key);
}

/* A boolean member: absent or null gives def; anything but a boolean is refused. */
static mch_status get_bool(ctx *c, const cJSON *o, const char *path, const char *key, bool def,
                           bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return MCH_OK;
    char p[256];
    join(p, sizeof p, path, key);
    if (!cJSON_IsBool(v)) return bad(c, p, "is not true or false");
    *out = cJSON_IsTrue(v);
    return MCH_OK;
}

/* A string member or NULL (absent or null); anything else is refused. */
static mch_status get_str(ctx *c, const cJSON *o, const char *path, const char *key,
                          const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return MCH_OK;
    char p[256];
    join(p, sizeof p, path, key);
    if (!cJSON_IsString(v)) return bad(c, p, "is not a string");
    *out = v->valuestring;
    return MCH_OK;
}

/* An integer in [lo, hi]. */
static mch_status get_int(ctx *c, const cJSON *v, const char *path, double lo, double hi,
                          int64_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s is not an integer in [%.0f, %.0f]", c->name,
                        path, lo, hi);
    *out = (int64_t)v->valuedouble;
    return MCH_OK;
}

static mch_status unsupported(ctx *c, const char *path, const char *key, const char *value)
{
    return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s%s%s '%s' is not supported", c->name, path,
                    *path ? "." : "", key, value);
}

/* The "type" of a pipeline part, required. */
static mch_status get_type(ctx *c, const cJSON *o, const char *path, const char **type)
{
    if (!cJSON_IsObject(o)) return bad(c, path, "is not an object");
    mch_status st = get_str(c, o, path, "type", type);
    if (!st && !*type) {
        char p[256];
        join(p, sizeof p, path, "type");
        return bad(c, p, "is missing");
    }
    return st;
}

/* ---- normalizers ------------------------------------------------------------------------------
 */

static int b64_val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Standard base64 (padding optional) into out; 0, or -1 on a bad character or out of memory. */
static int b64_decode(const char *s, tk_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        int v = b64_val((unsigned char)*s);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            unsigned char byte = (unsigned char)(acc >> bits);
            if (tk_buf_put(out, &byte, 1)) return -1;
        }
    }
    while (*s == '=') s++;
    return *s ? -1 : 0;
}

static mch_status load_precompiled(ctx *c, const cJSON *o, const char *path, tk_norm *n)
{
    char p[256];
    join(p, sizeof p, path, "precompiled_charsmap");
    const char *b64;
    mch_status st = get_str(c, o, path, "precompiled_charsmap", &b64);
    if (st) return st;
    if (!b64) return bad(c, p, "is missing");
    tk_buf raw = {0};
    if (b64_decode(b64, &raw)) {
        free(raw.p);
        return bad(c, p, "is not base64");
    }
    st = tk_charsmap(n, raw.p, raw.n, c->name, p, c->err);
    free(raw.p);
    return st;
}

mch_status tk_charsmap(tk_norm *n, const char *raw, size_t len, const char *name, const char *field,
                       mch_err *err)
{
    uint32_t trie = 0;
    if (len >= 4)
        trie = (uint32_t)(unsigned char)raw[0] | (uint32_t)(unsigned char)raw[1] << 8 |
               (uint32_t)(unsigned char)raw[2] << 16 | (uint32_t)(unsigned char)raw[3] << 24;
    if (len < 4 || trie % 4 || trie > len - 4)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: %s: %zu bytes with a trie of %u bytes", name,
                        field, len, trie);
    n->nunits = trie / 4;
    n->units = malloc((n->nunits ? n->nunits : 1) * sizeof *n->units);
    n->pool_len = len - 4 - trie;
    n->pool = malloc(n->pool_len + 1);
    if (!n->units || !n->pool)
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory reading %s", name, field);
    for (size_t i = 0; i < n->nunits; i++) {
        const unsigned char *u = (const unsigned char *)raw + 4 + 4 * i;
        n->units[i] =
            (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    memcpy(n->pool, raw + 4 + trie, n->pool_len);
    n->pool[n->pool_len] = '\0';
    size_t at;
    if (!mch_utf8_valid(n->pool, n->pool_len, &at))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: %s: replacement strings are not UTF-8 (byte %zu)",
                        name, field, at);
    return MCH_OK;
}

static mch_status load_norm(ctx *c, const cJSON *o, const char *path, tk_norm *n, int depth)
{
    const char *type;
    mch_status st = get_type(c, o, path, &type);
    if (st) return st;
    if (depth > 8) return bad(c, path, "nests Sequence more than 8 deep");
    if (!strcmp(type, "BertNormalizer")) {
        n->kind = TN_BERT;
        bool strip_set;
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(o, "strip_accents");
        strip_set = sa && !cJSON_IsNull(sa);
        if ((st = get_bool(c, o, path, "clean_text", true, &n->clean)) ||
            (st = get_bool(c, o, path, "handle_chinese_chars", true, &n->cjk)) ||
            (st = get_bool(c, o, path, "lowercase", true, &n->lowercase)) ||
            (st = get_bool(c, o, path, "strip_accents", false, &n->strip_accents)))
            return st;
        if (!strip_set) n->strip_accents = n->lowercase;
        return MCH_OK;
    }
    if (!strcmp(type, "Precompiled")) {
        n->kind = TN_PRECOMPILED;
        return load_precompiled(c, o, path, n);
    }
    if (!strcmp(type, "Strip")) {
        n->kind = TN_STRIP;
        if ((st = get_bool(c, o, path, "strip_left", true, &n->left)) ||
            (st = get_bool(c, o, path, "strip_right", true, &n->right)))
            return st;
        return MCH_OK;
    }
    if (!strcmp(type, "Replace")) {
        n->kind = TN_REPLACE;
        char p[256];
        join(p, sizeof p, path, "pattern");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *content, *lit = NULL, *re = NULL;
        if ((st = get_str(c, o, path, "content", &content))) return st;
        if (!content) {
            join(p, sizeof p, path, "content");
            return bad(c, p, "is missing");
        }
        if (cJSON_IsObject(pat)) {
            if ((st = get_str(c, pat, p, "String", &lit)) ||
                (st = get_str(c, pat, p, "Regex", &re)))
                return st;
        }
        if (!lit == !re) return bad(c, p, "is not {\"String\": ...} or {\"Regex\": ...}");
        if (!(n->content = strdup(content))) return nomem(c, p);
        n->content_len = strlen(content);
        if (lit) {
            if (!(n->lit = strdup(lit))) return nomem(c, p);
            n->lit_len = strlen(lit);
            return MCH_OK;
        }
        char why[200];
        if (!(n->re = tk_regex(re, strlen(re), why, sizeof why)))
            return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s.Regex '%s': %s", c->name, p, re, why);
        return MCH_OK;
    }
    if (!strcmp(type, "Sequence")) {
        n->kind = TN_SEQ;
        char p[256];
        join(p, sizeof p, path, "normalizers");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(arr)) return bad(c, p, "is not an array");
        size_t k = (size_t)cJSON_GetArraySize(arr);
        if (!(n->items = calloc(k ? k : 1, sizeof *n->items))) return nomem(c, p);
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            char q[256];
            if (snprintf(q, sizeof q, "%s[%zu]", p, n->nitems) < 0) q[0] = 0;
            if ((st = load_norm(c, e, q, &n->items[n->nitems++], depth + 1))) return st;
        }
        return MCH_OK;
    }
    return unsupported(c, path, "type", type);
}

/* ---- pre-tokenizers ---------------------------------------------------------------------------
 */

/* GPT-2's pattern with \s spelled as Oniguruma's Unicode \s (the library's regex engine): \t-\r,
 * U+0085 and the Z categories. */
#define TK_WS "\\t-\\r\\x{85}\\p{Z}"
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" TK_WS
                                   "\\p{L}\\p{N}]+|[" TK_WS "]+(?![^" TK_WS "])|[" TK_WS "]+";

static mch_status load_pre(ctx *c, const cJSON *o, const char *path, tk_pre *p, int depth)
{
    const char *type;
    mch_status st = get_type(c, o, path, &type);
    if (st) return st;
    if (depth > 8) return bad(c, path, "nests Sequence more than 8 deep");
    if (!strcmp(type, "BertPreTokenizer")) {
        p->kind = TP_BERT;
        return MCH_OK;
    }
    if (!strcmp(type, "WhitespaceSplit")) {
        p->kind = TP_WSPLIT;
        return MCH_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        p->kind = TP_BYTELEVEL;
        bool use_regex;
        if ((st = get_bool(c, o, path, "add_prefix_space", true, &p->add_prefix_space)) ||
            (st = get_bool(c, o, path, "use_regex", true, &use_regex)))
            return st;
        char why[200];
        if (use_regex &&
            !(p->re = tk_regex(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, why, sizeof why)))
            return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s: the GPT-2 pattern: %s", c->name, path,
                            why);
        return MCH_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        p->kind = TP_METASPACE;
        const char *repl, *scheme;
        char q[256];
        if ((st = get_str(c, o, path, "replacement", &repl)) ||
            (st = get_str(c, o, path, "prepend_scheme", &scheme)) ||
            (st = get_bool(c, o, path, "split", true, &p->split)))
            return st;
        join(q, sizeof q, path, "replacement");
        if (!repl) repl = "\xE2\x96\x81";
        size_t rl = strlen(repl);
        utf8proc_int32_t rc;
        if (rl == 0 || rl > 4 ||
            utf8proc_iterate((const utf8proc_uint8_t *)repl, (utf8proc_ssize_t)rl, &rc) !=
                (utf8proc_ssize_t)rl)
            return bad(c, q, "is not one character");
        memcpy(p->repl, repl, rl);
        p->repl_len = rl;
        if (scheme) {
            if (!strcmp(scheme, "always"))
                p->prepend = TP_PREPEND_ALWAYS;
            else if (!strcmp(scheme, "first"))
                p->prepend = TP_PREPEND_FIRST;
            else if (!strcmp(scheme, "never"))
                p->prepend = TP_PREPEND_NEVER;
            else
                return unsupported(c, path, "prepend_scheme", scheme);
        } else {
            bool aps;
            if ((st = get_bool(c, o, path, "add_prefix_space", true, &aps))) return st;
            p->prepend = aps ? TP_PREPEND_ALWAYS : TP_PREPEND_NEVER;
        }
        return MCH_OK;
    }
    if (!strcmp(type, "Sequence")) {
        p->kind = TP_SEQ;
        char q[256];
        join(q, sizeof q, path, "pretokenizers");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(arr)) return bad(c, q, "is not an array");
        size_t k = (size_t)cJSON_GetArraySize(arr);
        if (!(p->items = calloc(k ? k : 1, sizeof *p->items))) return nomem(c, q);
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            char r[256];
            if (snprintf(r, sizeof r, "%s[%zu]", q, p->nitems) < 0) r[0] = 0;
            if ((st = load_pre(c, e, r, &p->items[p->nitems++], depth + 1))) return st;
        }
        return MCH_OK;
    }
    return unsupported(c, path, "type", type);
}

/* ---- models -----------------------------------------------------------------------------------
 */

/* Records token (len bytes) as id in the tokenizer's id table and lookup map. */
/* The largest id a vocabulary may use: the id table is sized by the largest id (the largest real
 * vocabularies hold about 10^6 entries), so one stray id must not allocate gigabytes. */
#define TK_MAX_ID ((1 << 24) - 1)

static mch_status add_token(ctx *c, mch_tok *t, const char *tok, size_t len, int32_t id,
                            const char *path)
{
    if (id < 0 || id > TK_MAX_ID)
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s: id %d is above the largest supported (%d)",
                        c->name, path, id, TK_MAX_ID);
    if (id >= t->ntok) {
        size_t ncap = t->ntok ? (size_t)t->ntok : 1024;
        while (ncap <= (size_t)id) ncap *= 2;
        size_t *no = realloc(t->tok_off, ncap * sizeof *no);
        if (!no) return nomem(c, path);
        for (size_t i = (size_t)t->ntok; i < ncap; i++) no[i] = SIZE_MAX;
        t->tok_off = no;
        t->ntok = (int32_t)ncap;
    }
    if (id + 1 > t->nid) t->nid = id + 1;
    if (t->tok_off[id] == SIZE_MAX) {
        t->tok_off[id] = t->tok_text.n;
        if (tk_buf_put(&t->tok_text, tok, len) || tk_buf_put(&t->tok_text, "", 1))
            return nomem(c, path);
        t->tok_text.n++; /* keep the NUL that ends the token */
    }
    int added;
    int64_t *slot = mch_strmap_put(t->all, tok, len, &added);
    if (!slot) return nomem(c, path);
    if (added) *slot = id;
    return MCH_OK;
}

mch_status tk_add_token(mch_tok *t, const char *tok, size_t len, int32_t id, const char *name,
                        mch_err *err)
{
    ctx c = {name, err};
    return add_token(&c, t, tok, len, id, "the vocabulary");
}

static mch_status vocab_entry(ctx *c, mch_tok *t, tk_model *m, const char *tok, int64_t id,
                              const char *path)
{
    int added;
    int64_t *slot = mch_strmap_put(m->vocab, tok, strlen(tok), &added);
    if (!slot) return nomem(c, path);
    if (!added)
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s: token '%.64s' appears twice", c->name,
                        path, tok);
    *slot = id;
    return add_token(c, t, tok, strlen(tok), (int32_t)id, path);
}

/* WordPiece and BPE: "vocab" is an object token -> id. */
static mch_status load_vocab_object(ctx *c, mch_tok *t, tk_model *m, const cJSON *o)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vocab");
    if (!cJSON_IsObject(v)) return bad(c, "model.vocab", "is not an object");
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        char p[128];
        snprintf(p, sizeof p, "model.vocab['%.60s']", e->string);
        int64_t id = 0;
        mch_status st = get_int(c, e, p, 0, INT32_MAX - 1, &id);
        if (!st) st = vocab_entry(c, t, m, e->string, id, p);
        if (st) return st;
    }
    return MCH_OK;
}

/* The id of an optional token named by key (a string member), or -1 when null/absent. */
static mch_status token_member(ctx *c, const tk_model *m, const cJSON *o, const char *key,
                               int32_t *id)
{
    const char *s;
    char p[128];
    snprintf(p, sizeof p, "model.%s", key);
    mch_status st = get_str(c, o, "model", key, &s);
    *id = -1;
    if (st || !s) return st;
    const int64_t *v = mch_strmap_get(m->vocab, s, strlen(s));
    if (!v)
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s '%.64s' is not in model.vocab", c->name, p,
                        s);
    *id = (int32_t)*v;
    return MCH_OK;
}

/* An option that must be off (null, false or ""), since the pipeline does not implement it. */
static mch_status must_be_off(ctx *c, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsString(v) && !*v->valuestring))
        return MCH_OK;
    char p[128];
    snprintf(p, sizeof p, "model.%s", key);
    char *txt = cJSON_PrintUnformatted(v);
    mch_status st = mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s %s is not supported", c->name, p,
                             txt ? txt : "(value)");
    free(txt);
    return st;
}

static mch_status load_merges(ctx *c, tk_model *m, const cJSON *o)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "merges");
    if (!cJSON_IsArray(arr)) return bad(c, "model.merges", "is not an array");
    if (!(m->merges = mch_strmap_create())) return nomem(c, "model.merges");
    uint32_t rank = 0;
    const cJSON *e;
    tk_buf both = {0};
    mch_status st = MCH_OK;
    cJSON_ArrayForEach(e, arr)
    {
        char p[64];
        snprintf(p, sizeof p, "model.merges[%u]", rank);
        const char *a = NULL, *b = NULL;
        size_t alen = 0;
        if (cJSON_IsString(e)) { /* "a b", as files before tokenizers 0.20 write them */
            const char *sp = strchr(e->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = e->valuestring;
                alen = (size_t)(sp - a);
                b = sp + 1;
            }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            alen = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring;
        }
        if (!a) {
            st = bad(c, p, "is not \"a b\" or [\"a\", \"b\"]");
            break;
        }
        const int64_t *ia = mch_strmap_get(m->vocab, a, alen);
        const int64_t *ib = mch_strmap_get(m->vocab, b, strlen(b));
        both.n = 0;
        if (tk_buf_put(&both, a, alen) || tk_buf_put(&both, b, strlen(b))) {
            st = nomem(c, p);
            break;
        }
        const int64_t *inew = mch_strmap_get(m->vocab, both.p, both.n);
        if (!ia || !ib || !inew) {
            const char *which = !ia ? a : !ib ? b : both.p;
            int wl = !ia ? (int)alen : (int)strlen(which);
            st = mch_fail(c->err, MCH_ERR_FORMAT,
                          "%s: %s references '%.*s', which is not in model.vocab", c->name, p,
                          wl > 64 ? 64 : wl, which);
            break;
        }
        int32_t key[2] = {(int32_t)*ia, (int32_t)*ib};
        int added;
        int64_t *slot = mch_strmap_put(m->merges, (const char *)key, sizeof key, &added);
        if (!slot) {
            st = nomem(c, p);
            break;
        }
        *slot = (int64_t)((uint64_t)rank << 32 | (uint32_t)*inew); /* a later duplicate wins */
        rank++;
    }
    free(both.p);
    return st;
}

static mch_status load_unigram(ctx *c, mch_tok *t, tk_model *m, const cJSON *o)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vocab");
    if (!cJSON_IsArray(v)) return bad(c, "model.vocab", "is not an array");
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0 || n > INT32_MAX - 1) return bad(c, "model.vocab", "is empty or too large");
    if (!(m->scores = malloc(n * sizeof *m->scores))) return nomem(c, "model.vocab");
    m->min_score = INFINITY;
    size_t id = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        char p[64];
        snprintf(p, sizeof p, "model.vocab[%zu]", id);
        const cJSON *piece = cJSON_GetArrayItem(e, 0), *score = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(piece) ||
            !cJSON_IsNumber(score))
            return bad(c, p, "is not [piece, score]");
        mch_status st = vocab_entry(c, t, m, piece->valuestring, (int64_t)id, p);
        if (st) return st;
        m->scores[id] = score->valuedouble;
        if (score->valuedouble < m->min_score) m->min_score = score->valuedouble;
        size_t pl = strlen(piece->valuestring);
        if (pl > m->max_piece_bytes) m->max_piece_bytes = pl;
        id++;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "unk_id");
    int64_t unk = 0;
    if (!u || cJSON_IsNull(u))
        return bad(c, "model.unk_id",
                   "is null (text with an unknown character could not be "
                   "tokenized)");
    mch_status st = get_int(c, u, "model.unk_id", 0, (double)n - 1, &unk);
    if (st) return st;
    m->unk = (int32_t)unk;
    m->fuse_unk = true;
    return must_be_off(c, o, "byte_fallback");
}

static mch_status load_model(ctx *c, mch_tok *t, const cJSON *o)
{
    tk_model *m = &t->model;
    const char *type;
    mch_status st = get_type(c, o, "model", &type);
    if (st) return st;
    if (!(m->vocab = mch_strmap_create())) return nomem(c, "model.vocab");
    if (!strcmp(type, "WordPiece")) {
        m->kind = TM_WORDPIECE;
        const char *prefix;
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(o, "max_input_chars_per_word");
        int64_t max_chars = 100;
        if ((st = load_vocab_object(c, t, m, o)) ||
            (st = token_member(c, m, o, "unk_token", &m->unk)) ||
            (st = get_str(c, o, "model", "continuing_subword_prefix", &prefix)) ||
            (mc && (st = get_int(c, mc, "model.max_input_chars_per_word", 0, 1e9, &max_chars))))
            return st;
        if (m->unk < 0) return bad(c, "model.unk_token", "is missing");
        if (!prefix) prefix = "##";
        if (strlen(prefix) >= sizeof m->prefix)
            return bad(c, "model.continuing_subword_prefix", "is longer than 31 bytes");
        strcpy(m->prefix, prefix);
        m->prefix_len = strlen(prefix);
        m->max_chars = (size_t)max_chars;
        return MCH_OK;
    }
    if (!strcmp(type, "BPE")) {
        m->kind = TM_BPE;
        if ((st = load_vocab_object(c, t, m, o)) ||
            (st = token_member(c, m, o, "unk_token", &m->unk)) ||
            (st = must_be_off(c, o, "continuing_subword_prefix")) ||
            (st = must_be_off(c, o, "end_of_word_suffix")) || (st = must_be_off(c, o, "dropout")) ||
            (st = must_be_off(c, o, "byte_fallback")) ||
            (st = get_bool(c, o, "model", "fuse_unk", false, &m->fuse_unk)) ||
            (st = get_bool(c, o, "model", "ignore_merges", false, &m->ignore_merges)))
            return st;
        return load_merges(c, m, o);
    }
    if (!strcmp(type, "Unigram")) {
        m->kind = TM_UNIGRAM;
        return load_unigram(c, t, m, o);
    }
    return unsupported(c, "model", "type", type);
}

/* ---- added tokens and post-processors ---------------------------------------------------------
 */

static mch_status load_added(ctx *c, mch_tok *t, const cJSON *root)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!arr || cJSON_IsNull(arr)) return MCH_OK;
    if (!cJSON_IsArray(arr)) return bad(c, "added_tokens", "is not an array");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (!(t->added = calloc(n ? n : 1, sizeof *t->added))) return nomem(c, "added_tokens");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char p[64];
        snprintf(p, sizeof p, "added_tokens[%zu]", t->nadded);
        tk_added *a = &t->added[t->nadded];
        const char *content;
        int64_t id = 0;
        mch_status st;
        if (!cJSON_IsObject(e)) return bad(c, p, "is not an object");
        char q[96];
        join(q, sizeof q, p, "id");
        if ((st = get_str(c, e, p, "content", &content)) ||
            (st =
                 get_int(c, cJSON_GetObjectItemCaseSensitive(e, "id"), q, 0, INT32_MAX - 1, &id)) ||
            (st = get_bool(c, e, p, "single_word", false, &a->single_word)) ||
            (st = get_bool(c, e, p, "lstrip", false, &a->lstrip)) ||
            (st = get_bool(c, e, p, "rstrip", false, &a->rstrip)) ||
            (st = get_bool(c, e, p, "normalized", true, &a->normalized)))
            return st;
        if (!content || !*content) {
            join(q, sizeof q, p, "content");
            return bad(c, q, "is missing or empty");
        }
        if (!(a->s = strdup(content))) return nomem(c, p);
        a->len = strlen(content);
        a->id = (int32_t)id;
        t->nadded++;
        if ((st = add_token(c, t, a->s, a->len, a->id, p))) return st;
    }
    return MCH_OK;
}

static mch_status post_piece(ctx *c, tk_piece *pc, bool seq, int which, const int32_t *ids,
                             size_t nids, int32_t type, const char *path)
{
    pc->is_seq = seq;
    pc->seq = which;
    pc->type = type;
    pc->nids = nids;
    if (nids) {
        if (!(pc->ids = malloc(nids * sizeof *pc->ids))) return nomem(c, path);
        memcpy(pc->ids, ids, nids * sizeof *ids);
    }
    return MCH_OK;
}

/* A [token, id] pair of RobertaProcessing / BertProcessing. */
static mch_status token_pair(ctx *c, const cJSON *o, const char *key, int32_t *id)
{
    char p[64];
    snprintf(p, sizeof p, "post_processor.%s", key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    int64_t x = 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 ||
        !cJSON_IsString(cJSON_GetArrayItem(v, 0)))
        return bad(c, p, "is not [token, id]");
    mch_status st = get_int(c, cJSON_GetArrayItem(v, 1), p, 0, INT32_MAX - 1, &x);
    *id = (int32_t)x;
    return st;
}

static mch_status template_list(ctx *c, const cJSON *o, const char *key, const cJSON *specials,
                                int32_t nid, tk_piece **out, size_t *n)
{
    char p[64];
    snprintf(p, sizeof p, "post_processor.%s", key);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(arr)) return bad(c, p, "is not an array");
    size_t k = (size_t)cJSON_GetArraySize(arr);
    if (!(*out = calloc(k ? k : 1, sizeof **out))) return nomem(c, p);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char q[96];
        snprintf(q, sizeof q, "%s[%zu]", p, *n);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        const cJSON *inner = s ? s : sp;
        const char *id;
        int64_t type = 0;
        mch_status st;
        if (!cJSON_IsObject(inner)) return bad(c, q, "is not a Sequence or a SpecialToken");
        const cJSON *tid = cJSON_GetObjectItemCaseSensitive(inner, "type_id");
        if ((st = get_str(c, inner, q, "id", &id)) ||
            (tid && (st = get_int(c, tid, q, 0, 1 << 20, &type))))
            return st;
        if (!id) return bad(c, q, "has no id");
        if (s) {
            if (strcmp(id, "A") && strcmp(id, "B")) return unsupported(c, q, "Sequence.id", id);
            st = post_piece(c, &(*out)[*n], true, id[0] - 'A', NULL, 0, (int32_t)type, q);
        } else {
            const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, id);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
            if (!cJSON_IsArray(ids))
                return mch_fail(c->err, MCH_ERR_FORMAT,
                                "%s: %s: special token '%.64s' is not in post_processor."
                                "special_tokens",
                                c->name, q, id);
            int32_t v[16];
            size_t nv = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, ids)
            {
                int64_t y = 0;
                if (nv == 16) return bad(c, q, "special token has more than 16 ids");
                if ((st = get_int(c, x, "post_processor.special_tokens.ids", 0, INT32_MAX - 1, &y)))
                    return st;
                v[nv++] = (int32_t)y;
            }
            st = post_piece(c, &(*out)[*n], false, 0, v, nv, (int32_t)type, q);
        }
        if (st) return st;
        ++*n;
    }
    /* Each sequence exactly once (B only in pair): truncation counts every other piece as
     * special tokens, and ids must come from the vocabulary. */
    int uses[2] = {0, 0};
    for (size_t i = 0; i < *n; i++) {
        const tk_piece *pc = &(*out)[i];
        if (pc->is_seq) uses[pc->seq]++;
        for (size_t j = 0; j < pc->nids; j++)
            if (pc->ids[j] >= nid)
                return mch_fail(
                    c->err, MCH_ERR_FORMAT,
                    "%s: %s[%zu]: special token id %d is not in the vocabulary (%d ids)", c->name,
                    p, i, pc->ids[j], nid);
    }
    bool pair = !strcmp(key, "pair");
    if (uses[0] != 1 || uses[1] != (pair ? 1 : 0))
        return mch_fail(
            c->err, MCH_ERR_FORMAT, "%s: %s uses $A %d and $B %d times; %s", c->name, p, uses[0],
            uses[1], pair ? "a pair template holds each once" : "a single template holds $A once");
    return MCH_OK;
}

/* BERT's and RoBERTa's fixed layouts as templates: cls A sep / cls A sep [sep] B sep. */
static mch_status fixed_template(ctx *c, mch_tok *t, int32_t cls, int32_t sep, bool double_sep,
                                 int32_t btype)
{
    tk_post *pp = &t->post;
    pp->single = calloc(3, sizeof *pp->single);
    pp->pair = calloc(6, sizeof *pp->pair);
    if (!pp->single || !pp->pair) return nomem(c, "post_processor");
    mch_status st = MCH_OK;
    tk_piece *s = pp->single, *p = pp->pair;
    st = st ? st : post_piece(c, &s[0], false, 0, &cls, 1, 0, "post_processor");
    st = st ? st : post_piece(c, &s[1], true, 0, NULL, 0, 0, "post_processor");
    st = st ? st : post_piece(c, &s[2], false, 0, &sep, 1, 0, "post_processor");
    pp->nsingle = 3;
    st = st ? st : post_piece(c, &p[pp->npair++], false, 0, &cls, 1, 0, "post_processor");
    st = st ? st : post_piece(c, &p[pp->npair++], true, 0, NULL, 0, 0, "post_processor");
    st = st ? st : post_piece(c, &p[pp->npair++], false, 0, &sep, 1, 0, "post_processor");
    if (double_sep) st = st ? st : post_piece(c, &p[pp->npair++], false, 0, &sep, 1, btype, "");
    st = st ? st : post_piece(c, &p[pp->npair++], true, 1, NULL, 0, btype, "post_processor");
    st = st ? st : post_piece(c, &p[pp->npair++], false, 0, &sep, 1, btype, "post_processor");
    return st;
}

static mch_status load_post(ctx *c, mch_tok *t, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) return MCH_OK;
    const char *type;
    mch_status st = get_type(c, o, "post_processor", &type);
    if (st) return st;
    if (!strcmp(type, "ByteLevel")) return MCH_OK;
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        if ((st = template_list(c, o, "single", sp, t->nid, &t->post.single, &t->post.nsingle)) ||
            (st = template_list(c, o, "pair", sp, t->nid, &t->post.pair, &t->post.npair)))
            return st;
        t->post.set = true;
        return MCH_OK;
    }
    bool roberta = !strcmp(type, "RobertaProcessing");
    if (roberta || !strcmp(type, "BertProcessing")) {
        int32_t cls, sep;
        if ((st = token_pair(c, o, "cls", &cls)) || (st = token_pair(c, o, "sep", &sep))) return st;
        if (cls >= t->nid || sep >= t->nid)
            return mch_fail(c->err, MCH_ERR_FORMAT,
                            "%s: post_processor: cls id %d or sep id %d is not in the vocabulary "
                            "(%d ids)",
                            c->name, cls, sep, t->nid);
        t->post.set = true;
        return fixed_template(c, t, cls, sep, roberta, roberta ? 0 : 1);
    }
    return unsupported(c, "post_processor", "type", type);
}

/* Normalized added tokens are matched in normalized text, so their content is normalized too. */
static mch_status normalize_added(ctx *c, mch_tok *t)
{
    if (!t->has_norm) return MCH_OK;
    for (size_t i = 0; i < t->nadded; i++) {
        tk_added *a = &t->added[i];
        if (!a->normalized) continue;
        tk_buf b = {0};
        if (tk_norm_apply(&t->norm, a->s, a->len, &b) || tk_buf_put(&b, "", 0)) {
            free(b.p);
            return nomem(c, "added_tokens");
        }
        free(a->s);
        a->s = b.p;
        a->len = b.n;
    }
    return MCH_OK;
}

mch_status tk_load_json(mch_tok *t, const char *json, size_t len, const char *name, mch_err *err)
{
    ctx c = {name, err};
    size_t at;
    if (!mch_utf8_valid(json, len, &at))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", name, at);
    cJSON *root = mch_json_parse_exact(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a JSON object", name);
    }
    char why[200];
    mch_status st = MCH_OK;
    if (mch_json_check(root, json, len, &at, why, sizeof why))
        st = mch_fail(err, MCH_ERR_FORMAT, "%s: byte %zu: %s", name, at, why);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!st && !m) st = bad(&c, "model", "is missing");
    if (!st && n && !cJSON_IsNull(n)) {
        t->has_norm = true;
        st = load_norm(&c, n, "normalizer", &t->norm, 0);
    }
    if (!st && p && !cJSON_IsNull(p)) {
        t->has_pre = true;
        st = load_pre(&c, p, "pre_tokenizer", &t->pre, 0);
    }
    if (!st) st = load_model(&c, t, m);
    if (!st) st = load_added(&c, t, root);
    if (!st) st = load_post(&c, t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (!st) st = normalize_added(&c, t);
    cJSON_Delete(root);
    return st;
}

/* ---- vocab.txt --------------------------------------------------------------------------------
 */

static mch_status config_flags(const char *path, bool *lower, bool *strip, bool *strip_set,
                               bool *cjk, mch_err *err)
{
    char *data;
    size_t len;
    mch_status st = tk_read_file(path, &data, &len, err);
    if (st) return st;
    ctx c = {path, err};
    cJSON *root = mch_json_parse_exact(data, len);
    free(data);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(root, "strip_accents");
    *strip_set = sa && !cJSON_IsNull(sa);
    st = get_bool(&c, root, "", "do_lower_case", true, lower);
    if (!st) st = get_bool(&c, root, "", "strip_accents", false, strip);
    if (!st) st = get_bool(&c, root, "", "tokenize_chinese_chars", true, cjk);
    cJSON_Delete(root);
    return st;
}

mch_status tk_load_vocab_txt(mch_tok *t, const char *vocab_path, const char *config_path,
                             mch_err *err)
{
    bool lower = true, strip = false, strip_set = false, cjk = true;
    mch_status st = MCH_OK;
    if (config_path) st = config_flags(config_path, &lower, &strip, &strip_set, &cjk, err);
    mch_vocab *v = NULL;
    if (!st) st = mch_vocab_open(&v, vocab_path, err);
    if (st) return st;
    ctx c = {vocab_path, err};
    tk_model *m = &t->model;
    m->kind = TM_WORDPIECE;
    m->unk = mch_vocab_unk(v);
    strcpy(m->prefix, "##");
    m->prefix_len = 2;
    m->max_chars = 100;
    if (!(m->vocab = mch_strmap_create())) st = nomem(&c, "the vocabulary");
    for (int32_t id = 0; !st && id < mch_vocab_size(v); id++)
        st = vocab_entry(&c, t, m, mch_vocab_token(v, id), id, "vocab");
    t->has_norm = t->has_pre = true;
    t->norm = (tk_norm){.kind = TN_BERT,
                        .clean = true,
                        .cjk = cjk,
                        .lowercase = lower,
                        .strip_accents = strip_set ? strip : lower};
    t->pre.kind = TP_BERT;
    /* BertTokenizer's special tokens, matched in the raw text. */
    static const char *const SPECIAL[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    if (!st && !(t->added = calloc(5, sizeof *t->added))) st = nomem(&c, "the special tokens");
    for (size_t k = 0; !st && k < 5; k++) {
        int32_t id = mch_vocab_lookup(v, SPECIAL[k], strlen(SPECIAL[k]));
        if (id < 0) continue;
        tk_added *a = &t->added[t->nadded];
        if (!(a->s = strdup(SPECIAL[k]))) st = nomem(&c, "the special tokens");
        a->len = strlen(SPECIAL[k]);
        a->id = id;
        t->nadded++;
    }
    if (!st) st = fixed_template(&c, t, mch_vocab_cls(v), mch_vocab_sep(v), false, 1);
    t->post.set = true;
    mch_vocab_free(v);
    return st;
}
