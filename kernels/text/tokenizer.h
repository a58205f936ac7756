/* BERT uncased WordPiece tokenizer, identical to Hugging Face's BertTokenizer(do_lower_case=True):
 * vocab.txt reader, basic tokenization (control chars dropped, whitespace normalised, CJK split,
 * lowercase, NFD accent stripping, punctuation split), greedy longest-match WordPiece with "##",
 * words over 100 characters -> [UNK], special-token strings in the text -> their ids.
 * Input text must be valid UTF-8; anything else is refused with MCH_ERR_FORMAT. */
#ifndef MCH_TOKENIZER_H
#define MCH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "mch_err.h"

typedef struct mch_vocab mch_vocab;

/* Reads a vocab.txt (one token per line, id = line number from 0; "\n" or "\r\n" endings).
 * Refuses (MCH_ERR_FORMAT, message naming the file and line) an empty file, invalid UTF-8, a
 * duplicate token, or a vocab without [CLS], [SEP] or [UNK]. *out is set only on success;
 * free it with mch_vocab_free. */
mch_status mch_vocab_open(mch_vocab **out, const char *path, mch_err *err);

/* The same from bytes in memory; name is used in messages (the fuzz target calls this). */
mch_status mch_vocab_parse(mch_vocab **out, const char *data, size_t len, const char *name,
                           mch_err *err);

void mch_vocab_free(mch_vocab *v); /* accepts NULL */

int32_t mch_vocab_size(const mch_vocab *v);
/* Id of the token (exact bytes), or -1. */
int32_t mch_vocab_lookup(const mch_vocab *v, const char *tok, size_t len);
/* The token string of an id (NUL-terminated), or NULL when out of range. */
const char *mch_vocab_token(const mch_vocab *v, int32_t id);
/* Ids of the special tokens; pad and mask are -1 when absent. */
int32_t mch_vocab_cls(const mch_vocab *v);
int32_t mch_vocab_sep(const mch_vocab *v);
int32_t mch_vocab_unk(const mch_vocab *v);
int32_t mch_vocab_pad(const mch_vocab *v);
int32_t mch_vocab_mask(const mch_vocab *v);

/* A growable array of token ids owned by the caller (init with {0}; free with mch_ids_free). */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} mch_ids;
void mch_ids_free(mch_ids *a);

/* Appends the WordPiece ids of text (no [CLS]/[SEP] added) to out. */
mch_status mch_tokenize(const mch_vocab *v, const char *text, size_t len, mch_ids *out,
                        mch_err *err);

/* Calls fn once per word of the basic step (after lowercasing, accent stripping and punctuation
 * split; special-token strings are passed as they are), in order; word is NUL-terminated UTF-8
 * valid only during the call. A non-zero return from fn stops the walk and is returned. */
typedef int (*mch_word_fn)(void *user, const char *word, size_t len);
mch_status mch_basic_words(const char *text, size_t len, mch_word_fn fn, void *user, mch_err *err);

/* [CLS] q [SEP] d [SEP] with token types 0 up to and including the first [SEP], then 1.
 * The query is cut to max_query_len tokens (and further if the pair could not hold it), then the
 * document so the pair has at most max_len tokens; an empty document gives [CLS] q [SEP] [SEP].
 * ids and types must hold max_len entries; *n receives the length. max_len must be >= 3. */
mch_status mch_encode_pair(const mch_vocab *v, const char *query, const char *doc,
                           int max_query_len, int max_len, int32_t *ids, int32_t *types, int *n,
                           mch_err *err);

/* [CLS] text [SEP], text cut so the whole has at most max_len (>= 2) tokens. */
mch_status mch_encode_single(const mch_vocab *v, const char *text, int max_len, int32_t *ids,
                             int *n, mch_err *err);

#endif
