/* sentencepiece models (spiece.model, sentencepiece.bpe.model) without tokenizer.json: the
 * ModelProto read straight from its protobuf wire bytes (only the fields below; every other
 * field skipped by its wire type), then encoded as sentencepiece 0.1.9x encodes a unigram model:
 * its normalizer (charsmap longest match, remove_extra_whitespaces, add_dummy_prefix,
 * escape_whitespaces) over the whole text and its optimized Viterbi (sums in double, stored as
 * float, as its code does; on equal scores the piece that starts earliest wins; a character no
 * piece covers is unk with the lowest score minus 10; runs of unk merged into one).
 *
 * ModelProto fields read (sentencepiece_model.proto):
 *   1 pieces (repeated): 1 piece (string), 2 score (float), 3 type (NORMAL 1, UNKNOWN 2,
 *     CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6; default NORMAL)
 *   2 trainer_spec: 3 model_type (UNIGRAM 1 only), 24 treat_whitespace_as_suffix (must be
 *     false), 35 byte_fallback (must be false)
 *   3 normalizer_spec: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4
 *     remove_extra_whitespaces, 5 escape_whitespaces (each default true) */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hftok_int.h"
#include "utf8.h"

#define SPM_MAX_PIECES 4000000
#define SPM_SENTINELS 100
static const char SPACE_SYMBOL[] = "\xe2\x96\x81"; /* U+2581, sentencepiece's kSpaceSymbol */

enum { PIECE_NORMAL = 1, PIECE_UNKNOWN, PIECE_CONTROL, PIECE_USER, PIECE_UNUSED, PIECE_BYTE };

/* ---- protobuf wire format ---------------------------------------------------------------------
 */

typedef struct {
    const unsigned char *p;
    size_t n, at; /* at: offset of p in the whole file, for messages */
} wire;

typedef struct {
    const char *name;
    mch_err *err;
} spm_ctx;

static mch_status wire_bad(spm_ctx *c, const char *field, size_t at, const char *what)
{
    return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s (byte %zu): %s", c->name, field, at, what);
}

/* A varint at w->p[*i]; -1 when truncated or longer than 10 bytes. */
static int wire_varint(const wire *w, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*i >= w->n) return -1;
        unsigned char b = w->p[(*i)++];
        if (shift == 63 && b > 1) return -1;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* One field of a message: its number, wire type, and value (a varint, 4 or 8 bytes as v, or a
 * length-delimited sub-range as sub). 1 when read, 0 at the end, -1 (with the message) when
 * malformed. */
typedef struct {
    uint32_t num, type;
    uint64_t v;
    wire sub;
    size_t at;
} wire_field;

static int wire_next(spm_ctx *c, const wire *w, size_t *i, const char *msg, wire_field *f,
                     mch_status *st)
{
    if (*i >= w->n) return 0;
    f->at = w->at + *i;
    uint64_t key;
    if (wire_varint(w, i, &key)) {
        *st = wire_bad(c, msg, f->at, "truncated field key");
        return -1;
    }
    f->num = (uint32_t)(key >> 3);
    f->type = (uint32_t)(key & 7);
    if (f->num == 0 || key >> 32) {
        *st = wire_bad(c, msg, f->at, "field number 0 or above 2^29");
        return -1;
    }
    switch (f->type) {
    case 0:
        if (wire_varint(w, i, &f->v)) {
            *st = wire_bad(c, msg, f->at, "truncated varint");
            return -1;
        }
        return 1;
    case 1:
    case 5: {
        size_t k = f->type == 1 ? 8 : 4;
        if (w->n - *i < k) {
            *st = wire_bad(c, msg, f->at, "truncated fixed-size value");
            return -1;
        }
        f->v = 0;
        for (size_t b = 0; b < k; b++) f->v |= (uint64_t)w->p[*i + b] << (8 * b);
        *i += k;
        return 1;
    }
    case 2: {
        uint64_t len;
        if (wire_varint(w, i, &len) || len > w->n - *i) {
            *st = wire_bad(c, msg, f->at, "length beyond the end of the message");
            return -1;
        }
        f->sub = (wire){w->p + *i, (size_t)len, w->at + *i};
        *i += (size_t)len;
        return 1;
    }
    default:
        *st = wire_bad(c, msg, f->at, "unsupported wire type (group)");
        return -1;
    }
}

/* Checks that f has the wire type a field number wants. */
static mch_status want_type(spm_ctx *c, const wire_field *f, uint32_t type, const char *field)
{
    if (f->type == type) return MCH_OK;
    char why[64];
    snprintf(why, sizeof why, "wire type %u, expected %u", f->type, type);
    return wire_bad(c, field, f->at, why);
}

/* ---- the model --------------------------------------------------------------------------------
 */

typedef struct {
    const char *s;
    size_t len;
    float score;
    int type;
} spm_piece;

typedef struct {
    spm_piece *pieces;
    size_t n, cap;
    uint64_t model_type;
    bool suffix, byte_fallback;
    wire charsmap;
    bool has_charsmap, dummy_prefix, extra_ws, escape_ws;
} spm_proto;

static mch_status read_piece(spm_ctx *c, spm_proto *m, const wire *w)
{
    char field[64];
    snprintf(field, sizeof field, "pieces[%zu]", m->n);
    if (m->n == SPM_MAX_PIECES) return wire_bad(c, field, w->at, "too many pieces");
    if (m->n == m->cap) {
        size_t ncap = m->cap ? 2 * m->cap : 1024;
        spm_piece *np = realloc(m->pieces, ncap * sizeof *np);
        if (!np) return mch_fail(c->err, MCH_ERR_NOMEM, "%s: out of memory", c->name);
        m->pieces = np;
        m->cap = ncap;
    }
    spm_piece *p = &m->pieces[m->n];
    *p = (spm_piece){NULL, 0, 0.0f, PIECE_NORMAL};
    size_t i = 0;
    wire_field f;
    mch_status st = MCH_OK;
    int r;
    while ((r = wire_next(c, w, &i, field, &f, &st)) == 1) {
        char sub[96];
        if (f.num == 1) {
            snprintf(sub, sizeof sub, "%s.piece", field);
            if ((st = want_type(c, &f, 2, sub))) return st;
            p->s = (const char *)f.sub.p;
            p->len = f.sub.n;
        } else if (f.num == 2) {
            snprintf(sub, sizeof sub, "%s.score", field);
            if ((st = want_type(c, &f, 5, sub))) return st;
            uint32_t bits = (uint32_t)f.v;
            memcpy(&p->score, &bits, sizeof bits);
        } else if (f.num == 3) {
            snprintf(sub, sizeof sub, "%s.type", field);
            if ((st = want_type(c, &f, 0, sub))) return st;
            if (f.v < PIECE_NORMAL || f.v > PIECE_BYTE)
                return wire_bad(c, sub, f.at, "not a piece type (1-6)");
            p->type = (int)f.v;
        }
    }
    if (r < 0) return st;
    size_t bad;
    if (!p->s || p->len == 0) return wire_bad(c, field, w->at, "piece is missing or empty");
    if (!mch_utf8_valid(p->s, p->len, &bad) || memchr(p->s, 0, p->len))
        return wire_bad(c, field, w->at, "piece is not UTF-8 without NUL");
    if (p->score != p->score) return wire_bad(c, field, w->at, "score is NaN");
    m->n++;
    return MCH_OK;
}

static mch_status read_trainer(spm_ctx *c, spm_proto *m, const wire *w)
{
    size_t i = 0;
    wire_field f;
    mch_status st = MCH_OK;
    int r;
    while ((r = wire_next(c, w, &i, "trainer_spec", &f, &st)) == 1) {
        const char *field = f.num == 3    ? "trainer_spec.model_type"
                            : f.num == 24 ? "trainer_spec.treat_whitespace_as_suffix"
                            : f.num == 35 ? "trainer_spec.byte_fallback"
                                          : NULL;
        if (!field) continue;
        if ((st = want_type(c, &f, 0, field))) return st;
        if (f.num == 3) m->model_type = f.v;
        if (f.num == 24) m->suffix = f.v != 0;
        if (f.num == 35) m->byte_fallback = f.v != 0;
    }
    return r < 0 ? st : MCH_OK;
}

static mch_status read_normalizer(spm_ctx *c, spm_proto *m, const wire *w)
{
    size_t i = 0;
    wire_field f;
    mch_status st = MCH_OK;
    int r;
    while ((r = wire_next(c, w, &i, "normalizer_spec", &f, &st)) == 1) {
        if (f.num == 2) {
            if ((st = want_type(c, &f, 2, "normalizer_spec.precompiled_charsmap"))) return st;
            m->charsmap = f.sub;
            m->has_charsmap = f.sub.n > 0;
        } else if (f.num >= 3 && f.num <= 5) {
            static const char *const NAMES[] = {"normalizer_spec.add_dummy_prefix",
                                                "normalizer_spec.remove_extra_whitespaces",
                                                "normalizer_spec.escape_whitespaces"};
            if ((st = want_type(c, &f, 0, NAMES[f.num - 3]))) return st;
            bool *flag = f.num == 3 ? &m->dummy_prefix : f.num == 4 ? &m->extra_ws : &m->escape_ws;
            *flag = f.v != 0;
        }
    }
    return r < 0 ? st : MCH_OK;
}

static mch_status read_model(spm_ctx *c, spm_proto *m, const char *data, size_t len)
{
    wire w = {(const unsigned char *)data, len, 0};
    size_t i = 0;
    wire_field f;
    mch_status st = MCH_OK;
    int r;
    m->model_type = 1; /* the proto's defaults */
    m->dummy_prefix = m->extra_ws = m->escape_ws = true;
    while ((r = wire_next(c, &w, &i, "ModelProto", &f, &st)) == 1) {
        if (f.num < 1 || f.num > 3) continue;
        static const char *const NAMES[] = {"pieces", "trainer_spec", "normalizer_spec"};
        if ((st = want_type(c, &f, 2, NAMES[f.num - 1]))) return st;
        st = f.num == 1   ? read_piece(c, m, &f.sub)
             : f.num == 2 ? read_trainer(c, m, &f.sub)
                          : read_normalizer(c, m, &f.sub);
        if (st) return st;
    }
    if (r < 0) return st;
    if (m->model_type != 1) {
        char why[96];
        snprintf(why, sizeof why, "%llu is not supported (only UNIGRAM, 1)",
                 (unsigned long long)m->model_type);
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: trainer_spec.model_type %s", c->name, why);
    }
    if (m->suffix)
        return mch_fail(c->err, MCH_ERR_FORMAT,
                        "%s: trainer_spec.treat_whitespace_as_suffix true is not supported",
                        c->name);
    if (m->byte_fallback)
        return mch_fail(c->err, MCH_ERR_FORMAT,
                        "%s: trainer_spec.byte_fallback true is not supported", c->name);
    if (m->n == 0) return mch_fail(c->err, MCH_ERR_FORMAT, "%s: pieces: none", c->name);
    return MCH_OK;
}

/* ---- building the tokenizer -------------------------------------------------------------------
 */

static mch_status nomem(spm_ctx *c)
{
    return mch_fail(c->err, MCH_ERR_NOMEM, "%s: out of memory", c->name);
}

/* Post-processor pieces: ids[] with 0 = sequence A, 1 = sequence B, else -(token id) - 1. */
static mch_status template(spm_ctx *c, const int32_t *items, size_t n, tk_piece **out, size_t *nout)
{
    if (!(*out = calloc(n, sizeof **out))) return nomem(c);
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        tk_piece *p = &(*out)[i];
        if (items[i] >= 0) {
            p->is_seq = true;
            p->seq = items[i];
            continue;
        }
        if (!(p->ids = malloc(sizeof *p->ids))) return nomem(c);
        p->ids[0] = -items[i] - 1;
        p->nids = 1;
    }
    return MCH_OK;
}

static mch_status build(spm_ctx *c, mch_tok *t, const spm_proto *pm, int layout)
{
    tk_model *m = &t->model;
    size_t n = pm->n;
    m->kind = TM_SPM;
    m->sp_unk = -1;
    m->fmin = FLT_MAX;
    if (!(m->vocab = mch_strmap_create()) || !(m->fscores = malloc(n * sizeof *m->fscores)) ||
        !(m->out_id = malloc(n * sizeof *m->out_id)))
        return nomem(c);
    for (size_t i = 0; i < n; i++) {
        const spm_piece *p = &pm->pieces[i];
        char field[64];
        snprintf(field, sizeof field, "pieces[%zu]", i);
        if (p->type == PIECE_USER || p->type == PIECE_BYTE)
            return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s.type %s is not supported", c->name,
                            field, p->type == PIECE_USER ? "USER_DEFINED" : "BYTE");
        if (p->type == PIECE_UNKNOWN) {
            if (m->sp_unk >= 0)
                return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s.type: a second UNKNOWN piece",
                                c->name, field);
            m->sp_unk = (int32_t)i;
        }
        int added;
        int64_t *slot = mch_strmap_put(t->all, p->s, p->len, &added);
        if (!slot) return nomem(c);
        if (!added)
            return mch_fail(c->err, MCH_ERR_FORMAT, "%s: %s.piece '%.*s' appears twice", c->name,
                            field, (int)(p->len < 64 ? p->len : 64), p->s);
        m->fscores[i] = p->score;
        m->out_id[i] = layout == MCH_SPM_T5 ? (int32_t)i : (int32_t)i + 1;
        if (p->type == PIECE_NORMAL) {
            if (!(slot = mch_strmap_put(m->vocab, p->s, p->len, &added))) return nomem(c);
            *slot = (int64_t)i;
            if (p->score < m->fmin) m->fmin = p->score;
            if (p->len > m->max_piece_bytes) m->max_piece_bytes = p->len;
        }
    }
    mch_strmap_free(t->all); /* the table below refills it with the output ids */
    if (!(t->all = mch_strmap_create())) return nomem(c);
    if (m->sp_unk < 0)
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: pieces: no piece of type UNKNOWN", c->name);
    if (m->fmin == FLT_MAX)
        return mch_fail(c->err, MCH_ERR_FORMAT, "%s: pieces: no piece of type NORMAL", c->name);
    mch_status st = MCH_OK;
    if (layout == MCH_SPM_XLMR) {
        if (m->sp_unk != 0)
            return mch_fail(c->err, MCH_ERR_FORMAT,
                            "%s: pieces[%d] is the UNKNOWN piece; XLM-R's fairseq ids need it at 0",
                            c->name, m->sp_unk);
        static const char *const FAIRSEQ[] = {"<s>", "<pad>", "</s>", "<unk>"};
        for (int32_t k = 0; k < 4 && !st; k++)
            st = tk_add_token(t, FAIRSEQ[k], strlen(FAIRSEQ[k]), k, c->name, c->err);
        m->out_id[m->sp_unk] = 3;
    }
    for (size_t i = 0; i < n && !st; i++) {
        if (m->out_id[i] < (layout == MCH_SPM_XLMR ? 4 : 0)) continue;
        st = tk_add_token(t, pm->pieces[i].s, pm->pieces[i].len, m->out_id[i], c->name, c->err);
    }
    m->unk = m->out_id[m->sp_unk];
    if (layout == MCH_SPM_XLMR) {
        if (!st) st = tk_add_token(t, "<mask>", 6, (int32_t)n + 1, c->name, c->err);
        static const int32_t SINGLE[] = {-1, 0, -3}, PAIR[] = {-1, 0, -3, -3, 1, -3};
        if (!st) st = template(c, SINGLE, 3, &t->post.single, &t->post.nsingle);
        if (!st) st = template(c, PAIR, 6, &t->post.pair, &t->post.npair);
    } else {
        for (int k = 0; k < SPM_SENTINELS && !st; k++) {
            char s[32];
            snprintf(s, sizeof s, "<extra_id_%d>", SPM_SENTINELS - 1 - k);
            st = tk_add_token(t, s, strlen(s), (int32_t)n + k, c->name, c->err);
        }
        int32_t eos = mch_tok_lookup(t, "</s>", 4);
        if (!st && eos < 0)
            return mch_fail(c->err, MCH_ERR_FORMAT, "%s: pieces: no '</s>' (T5's eos)", c->name);
        int32_t e = -eos - 1;
        const int32_t single[] = {0, e}, pair[] = {0, e, 1, e};
        if (!st) st = template(c, single, 2, &t->post.single, &t->post.nsingle);
        if (!st) st = template(c, pair, 4, &t->post.pair, &t->post.npair);
    }
    if (st) return st;
    t->post.set = true;
    t->has_norm = true;
    tk_norm *no = &t->norm;
    no->kind = TN_SPM;
    no->dummy_prefix = pm->dummy_prefix;
    no->extra_ws = pm->extra_ws;
    no->escape_ws = pm->escape_ws;
    if (pm->has_charsmap)
        return tk_charsmap(no, (const char *)pm->charsmap.p, pm->charsmap.n, c->name,
                           "normalizer_spec.precompiled_charsmap", c->err);
    return MCH_OK;
}

mch_status tk_load_spm(mch_tok *t, const char *data, size_t len, int layout, const char *name,
                       mch_err *err)
{
    spm_ctx c = {name, err};
    spm_proto pm = {0};
    mch_status st = read_model(&c, &pm, data, len);
    if (!st) st = build(&c, t, &pm, layout);
    free(pm.pieces);
    return st;
}

/* ---- encoding ---------------------------------------------------------------------------------
 */

static size_t char_len(const char *s, size_t i, size_t len)
{
    unsigned char b = (unsigned char)s[i];
    size_t k = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    return k < len - i ? k : len - i;
}

/* sentencepiece's NormalizePrefix: the longest charsmap rule at s (its replacement up to NUL),
 * else the character itself. *used: input bytes consumed. */
static const char *norm_prefix(const tk_norm *n, const char *s, size_t len, size_t *used,
                               size_t *olen)
{
    size_t ml = 0;
    int64_t v = n->nunits ? tk_darts_longest(n, s, len, &ml) : -1;
    if (v >= 0 && (size_t)v < n->pool_len) {
        *used = ml;
        *olen = strlen(n->pool + v);
        return n->pool + v;
    }
    *used = *olen = char_len(s, 0, len);
    return s;
}

int tk_spm_normalize(const tk_norm *n, const char *s, size_t len, tk_buf *out)
{
    size_t n0 = out->n, used, olen;
    if (n->extra_ws) { /* leading white space */
        while (len) {
            const char *r = norm_prefix(n, s, len, &used, &olen);
            if (olen != 1 || r[0] != ' ') break;
            s += used;
            len -= used;
        }
    }
    if (len == 0) return 0;
    const char *space = n->escape_ws ? SPACE_SYMBOL : " ";
    size_t space_len = strlen(space);
    if (n->dummy_prefix && tk_buf_put(out, space, space_len)) return -1;
    bool prev_space = n->extra_ws;
    while (len) {
        const char *r = norm_prefix(n, s, len, &used, &olen);
        if (prev_space)
            while (olen && r[0] == ' ') r++, olen--;
        if (olen) {
            for (size_t k = 0; k < olen; k++) {
                int rc = r[k] == ' ' && n->escape_ws ? tk_buf_put(out, SPACE_SYMBOL, 3)
                                                     : tk_buf_put(out, r + k, 1);
                if (rc) return -1;
            }
            prev_space = r[olen - 1] == ' ';
        }
        s += used;
        len -= used;
        prev_space = prev_space && n->extra_ws;
    }
    if (n->extra_ws) /* trailing white space */
        while (out->n - n0 >= space_len && !memcmp(out->p + out->n - space_len, space, space_len))
            out->p[out->n -= space_len] = '\0';
    return 0;
}

typedef struct {
    float score;
    size_t start; /* SIZE_MAX: not reached */
    int32_t id;
} spm_node;

int tk_spm_word(const tk_model *m, const char *w, size_t len, mch_ids *out)
{
    if (len == 0) return 0;
    spm_node *best = malloc((len + 1) * sizeof *best);
    if (!best) return -1;
    for (size_t i = 0; i <= len; i++) best[i] = (spm_node){0.0f, SIZE_MAX, -1};
    const float unk_score = m->fmin - 10.0f; /* kUnkPenalty */
    for (size_t s = 0; s < len;) {
        float here = best[s].score;
        size_t mblen = char_len(w, s, len);
        bool single = false;
        size_t lim = len - s < m->max_piece_bytes ? len - s : m->max_piece_bytes;
        for (size_t e = s + mblen; e <= s + lim;) {
            const int64_t *v = mch_strmap_get(m->vocab, w + s, e - s);
            if (v) {
                /* sentencepiece's score is a double there (its ternary with a double literal),
                 * the sum too, compared with the float it stores: ties break as it breaks them */
                double cand = (double)m->fscores[*v] + (double)here;
                if (best[e].start == SIZE_MAX || cand > (double)best[e].score)
                    best[e] = (spm_node){(float)cand, s, (int32_t)*v};
                if (e - s == mblen) single = true;
            }
            if (e == len) break;
            e += char_len(w, e, len);
        }
        if (!single) {
            float cand = unk_score + here;
            spm_node *tn = &best[s + mblen];
            if (tn->start == SIZE_MAX || cand > tn->score) *tn = (spm_node){cand, s, m->sp_unk};
        }
        s += mblen;
    }
    /* Back from the end, appended in reverse and then turned round; a run of unk is one. */
    size_t n0 = out->n;
    int rc = 0;
    bool prev_unk = false;
    for (size_t e = len; e > 0 && !rc; e = best[e].start) {
        int32_t id = best[e].id;
        if (id == m->sp_unk && prev_unk) continue;
        prev_unk = id == m->sp_unk;
        rc = tk_ids_put(out, m->out_id[id]);
    }
    for (size_t i = n0, j = out->n; !rc && i + 1 < j; i++, j--) {
        int32_t x = out->ids[i];
        out->ids[i] = out->ids[j - 1];
        out->ids[j - 1] = x;
    }
    free(best);
    return rc;
}
