/* Internals of the tokenizer.json pipeline (hftok*.c only): the parts of a loaded tokenizer and
 * the string stages between them. Every stage reads valid UTF-8 and writes valid UTF-8. */
#ifndef MCH_HFTOK_INT_H
#define MCH_HFTOK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "hftok.h"
#include "strmap.h"

/* A growable byte string; functions return 0, or -1 when out of memory. */
typedef struct {
    char *p;
    size_t n, cap;
} tk_buf;
int tk_buf_put(tk_buf *b, const void *s, size_t len);
int tk_buf_cp(tk_buf *b, uint32_t c); /* appends c as UTF-8 */

/* Words of a pre-tokenized segment: spans of text; at_start marks a word that begins where the
 * original text begins (Metaspace's "first" prepend scheme). */
typedef struct {
    size_t off, len;
    bool at_start;
} tk_span;
typedef struct {
    tk_buf text;
    tk_span *w;
    size_t n, cap;
} tk_words;
int tk_words_add(tk_words *ws, const char *s, size_t len, bool at_start);
void tk_words_free(tk_words *ws);

/* Code points (valid UTF-8 assumed). */
uint32_t tk_next(const char *s, size_t *i);
bool tk_is_whitespace(uint32_t c); /* Rust char::is_whitespace (White_Space) */
/* BERT's _is_chinese_char: CJK ideographs (tokenizer.c). */
bool mch_is_cjk(uint32_t c);

/* TN_SPM: sentencepiece's own normalizer over the whole text (spm_model.c): the charsmap's longest
 * rule, remove_extra_whitespaces, add_dummy_prefix, escape_whitespaces. */
enum { TN_BERT, TN_PRECOMPILED, TN_STRIP, TN_REPLACE, TN_SEQ, TN_SPM };
typedef struct tk_norm {
    int kind;
    bool clean, cjk, strip_accents, lowercase; /* BertNormalizer */
    uint32_t *units;                           /* Precompiled: the double array */
    size_t nunits;
    char *pool; /* Precompiled: NUL-separated replacements */
    size_t pool_len;
    bool left, right; /* Strip */
    pcre2_code *re;   /* Replace: a regex, or lit (a string) */
    char *lit, *content;
    size_t lit_len, content_len;
    struct tk_norm *items; /* Sequence */
    size_t nitems;
    bool dummy_prefix, extra_ws, escape_ws; /* TN_SPM (units/pool: its charsmap) */
} tk_norm;

enum { TP_BERT, TP_BYTELEVEL, TP_METASPACE, TP_WSPLIT, TP_SEQ };
enum { TP_PREPEND_NEVER, TP_PREPEND_FIRST, TP_PREPEND_ALWAYS };
typedef struct tk_pre {
    int kind;
    bool add_prefix_space; /* ByteLevel */
    pcre2_code *re;        /* ByteLevel with use_regex */
    char repl[8];          /* Metaspace replacement, UTF-8 */
    size_t repl_len;
    int prepend;
    bool split;
    struct tk_pre *items; /* Sequence */
    size_t nitems;
} tk_pre;

/* TM_SPM: sentencepiece's unigram Viterbi in float (spm_model.c), pieces -> output ids. */
enum { TM_WORDPIECE, TM_BPE, TM_UNIGRAM, TM_SPM };
typedef struct {
    int kind;
    mch_strmap *vocab; /* token -> id */
    int32_t unk;       /* -1: none */
    /* WordPiece */
    char prefix[32];
    size_t prefix_len, max_chars;
    /* BPE: (id_a, id_b) as 8 bytes -> rank << 32 | new id */
    mch_strmap *merges;
    bool fuse_unk, ignore_merges;
    /* Unigram: score of each id (ntok entries), the lowest score, the longest piece */
    double *scores;
    double min_score;
    size_t max_piece_bytes;
    /* TM_SPM: vocab maps a piece to its sentencepiece id; score and output id of each such id */
    float *fscores, fmin;
    int32_t *out_id, sp_unk;
} tk_model;

/* Applies n to s[0..len) into out (appended). 0, or -1 when out of memory. */
int tk_norm_apply(const tk_norm *n, const char *s, size_t len, tk_buf *out);
void tk_norm_deinit(tk_norm *n);
/* Splits a normalized segment into words appended to out. 0, or -1 when out of memory. */
int tk_pre_apply(const tk_pre *p, const char *s, size_t len, bool at_start, tk_words *out);
void tk_pre_deinit(tk_pre *p);
/* Ids of one word appended to out; tokens maps ids to strings (for BPE's byte symbols). 0, or -1
 * when out of memory. */
/* Appends id to a; 0, or -1 when out of memory. */
int tk_ids_put(mch_ids *a, int32_t id);
int tk_model_word(const tk_model *m, const char *w, size_t len, mch_ids *out);
void tk_model_deinit(tk_model *m);

/* The GPT-2 split pattern compiled for UTF-8 with Unicode properties; NULL on failure. */
pcre2_code *tk_regex(const char *pattern, size_t len, char *why, size_t why_cap);

/* An added token as tokenizer.json lists it; s is normalized when normalized is set and the
 * tokenizer has a normalizer (it is matched in normalized text then). */
typedef struct {
    char *s;
    size_t len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized;
} tk_added;

/* One item of a post-processor template: a sequence (A = 0, B = 1) or special ids. */
typedef struct {
    bool is_seq;
    int seq;
    int32_t *ids;
    size_t nids;
    int32_t type;
} tk_piece;
typedef struct {
    bool set; /* false: no post-processor (A, or A B with types 0 and 1) */
    tk_piece *single, *pair;
    size_t nsingle, npair;
} tk_post;

struct mch_tok {
    bool has_norm, has_pre;
    tk_norm norm;
    tk_pre pre;
    tk_model model;
    tk_added *added;
    size_t nadded;
    tk_post post;
    /* id -> token: tok_off[id] into tok_text (SIZE_MAX: no token); ntok is the table's room,
     * nid one past the largest id */
    size_t *tok_off;
    tk_buf tok_text;
    int32_t ntok, nid;
    mch_strmap *all; /* every token (vocabulary and added) -> id */
};

/* Whole file into *data (NUL-terminated, free() it). */
mch_status tk_read_file(const char *path, char **data, size_t *len, mch_err *err);
/* Fill a zeroed t (t->all created) from tokenizer.json text or a vocab.txt. */
mch_status tk_load_json(mch_tok *t, const char *json, size_t len, const char *name, mch_err *err);
mch_status tk_load_vocab_txt(mch_tok *t, const char *vocab_path, const char *config_path,
                             mch_err *err);

/* A new empty tokenizer (t->all created), or MCH_ERR_NOMEM. */
mch_status tk_new(mch_tok **t, mch_err *err);
/* Records token (len bytes) as id in t's id table and lookup map (name: for messages). */
mch_status tk_add_token(mch_tok *t, const char *tok, size_t len, int32_t id, const char *name,
                        mch_err *err);
/* A sentencepiece charsmap blob (uint32 trie size, darts units, NUL-separated replacements) into
 * n->units / n->pool; the message names name and field. */
mch_status tk_charsmap(tk_norm *n, const char *raw, size_t len, const char *name, const char *field,
                       mch_err *err);
/* The value and length of the longest charsmap rule that is a prefix of s[0..len), or -1. */
int64_t tk_darts_longest(const tk_norm *n, const char *s, size_t len, size_t *mlen);
/* TN_SPM and TM_SPM (spm_model.c). */
int tk_spm_normalize(const tk_norm *n, const char *s, size_t len, tk_buf *out);
int tk_spm_word(const tk_model *m, const char *w, size_t len, mch_ids *out);
/* A ModelProto into a zeroed t (t->all created) with T5's or XLM-R's ids and template. */
mch_status tk_load_spm(mch_tok *t, const char *data, size_t len, int layout, const char *name,
                       mch_err *err);
/* vocab.json + merges.txt (+ tokenizer_config.json) as RobertaTokenizer reads them. */
mch_status tk_load_bpe_files(mch_tok *t, const char *vocab_path, const char *merges_path,
                             const char *config_path, mch_err *err);

#endif
