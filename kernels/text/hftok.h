/* Hugging Face fast tokenizers (tokenizer.json), identical ids: added tokens split out of the raw
 * text (non-normalized ones) and of each normalized segment (normalized ones), then normalizer ->
 * pre-tokenizer -> model per word, then the post-processor's special tokens and type ids.
 * Supported pipelines (anything else is refused naming its JSON path):
 *   normalizer   BertNormalizer, Precompiled (sentencepiece charsmap), Strip, Replace, Sequence
 *   pre-tok      BertPreTokenizer, ByteLevel (GPT-2 regex, PCRE2), Metaspace, WhitespaceSplit,
 *                Sequence
 *   model        WordPiece, BPE (merges as "a b" or ["a", "b"]), Unigram (Viterbi, fused unk)
 *   post         TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, null
 * Without tokenizer.json a directory's vocab.txt is read as BertTokenizer would read it, with
 * do_lower_case / strip_accents / tokenize_chinese_chars from tokenizer_config.json. */
#ifndef MCH_HFTOK_H
#define MCH_HFTOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mch_err.h"
#include "tokenizer.h"

typedef struct mch_tok mch_tok;

/* DIR/tokenizer.json when it exists, else DIR/vocab.txt (+ DIR/tokenizer_config.json when it
 * exists). *out is set only on success; free with mch_tok_free. */
mch_status mch_tok_open(mch_tok **out, const char *dir, mch_err *err);

/* A tokenizer.json text; name is used in messages ("DIR/tokenizer.json: model.type ..."). */
mch_status mch_tok_parse_json(mch_tok **out, const char *json, size_t len, const char *name,
                              mch_err *err);

/* vocab.txt at vocab_path as BertTokenizer reads it; config_path (may be NULL) is a
 * tokenizer_config.json whose do_lower_case (default true), strip_accents (default: as
 * do_lower_case) and tokenize_chinese_chars (default true) are honoured. */
mch_status mch_tok_open_vocab_txt(mch_tok **out, const char *vocab_path, const char *config_path,
                                  mch_err *err);

void mch_tok_free(mch_tok *t); /* accepts NULL */

/* Number of ids (one past the largest id of the vocabulary and the added tokens). */
int32_t mch_tok_size(const mch_tok *t);
/* The token string of an id, or NULL (out of range, or an id no token has). */
const char *mch_tok_token(const mch_tok *t, int32_t id);
/* The id of a token (vocabulary or added token, exact bytes), or -1. */
int32_t mch_tok_lookup(const mch_tok *t, const char *s, size_t len);

/* Appends the ids of text (valid UTF-8; no post-processor tokens) to out. */
mch_status mch_tok_tokenize(const mch_tok *t, const char *text, size_t len, mch_ids *out,
                            mch_err *err);

/* A model input: ids and their token types, owned by the caller (init with {0}). */
typedef struct {
    int32_t *ids, *types;
    size_t n, cap;
} mch_tok_enc;
void mch_tok_enc_free(mch_tok_enc *e); /* accepts NULL */

/* a (alen bytes) alone (b NULL) or the pair (a, b) with the post-processor's special tokens,
 * into out (replacing what it held). max_len > 0 bounds the whole:
 * - max_first == 0: the library's only_second truncation. The single text, or the pair's second
 *   text, loses tokens at its end; when the second text cannot absorb the excess (it would lose
 *   all its tokens or more), MCH_ERR_ARG names the lengths, as the library refuses.
 * - max_first > 0: as mechir score cuts a pair (mch_encode_pair): the first text is cut to
 *   max_first tokens and further when the pair could not hold it, then the second so the whole
 *   fits; never refused unless max_len cannot hold the special tokens. */
mch_status mch_tok_encode(const mch_tok *t, const char *a, size_t alen, const char *b, size_t blen,
                          int max_len, int max_first, mch_tok_enc *out, mch_err *err);

/* ---- model inputs built by hand (perturbations) ------------------------------------------- */

/* The post-processor's special tokens around a single text (pair false) or a pair. */
int mch_tok_n_special(const mch_tok *t, bool pair);

/* a (na ids) alone (b NULL) or the pair (a, b) laid out with the post-processor's special tokens
 * into ids and types (room for na + nb + mch_tok_n_special), special[i] set to 1 on a special
 * token and 0 on a text token (special may be NULL). Returns the count written. */
size_t mch_tok_assemble(const mch_tok *t, const int32_t *a, size_t na, const int32_t *b, size_t nb,
                        int32_t *ids, int32_t *types, uint8_t *special);

/* mch_tok_encode of NUL-terminated texts into caller arrays of max_len entries (types may be
 * NULL), *n set to the count: a pair (b not NULL) cut as mechir score cuts it (max_first), a single
 * text cut at its end. */
mch_status mch_tok_encode_to(const mch_tok *t, const char *a, const char *b, int max_first,
                             int max_len, int32_t *ids, int32_t *types, int *n, mch_err *err);

/* A MonoT5's input (pygaggle's): "Query: {query} Document: {doc} Relevant:" as one text with the
 * post-processor's tokens (</s> last), cut to max_len (>= 2) tokens keeping </s> last, so a long
 * document cuts off the end of the prompt. Into out (replacing what it held). */
mch_status mch_tok_encode_monot5(const mch_tok *t, const char *query, const char *doc, int max_len,
                                 mch_tok_enc *out, mch_err *err);

/* The tokenizer's unknown token id, or -1 when it has none (byte-level BPE). */
int32_t mch_tok_unk(const mch_tok *t);

/* Whether every text is lowercased and stripped of accents before the model sees it (the BERT
 * normalizer uncased, as bert-base-uncased): then a word spelled from pieces is already in the
 * form mch_basic_words gives. */
bool mch_tok_uncased(const mch_tok *t);

/* Where a token stands in its word. */
typedef enum {
    MCH_PIECE_START,    /* begins a word: WordPiece without "##", BPE "Ġ…", Metaspace "▁…" */
    MCH_PIECE_CONTINUE, /* continues the word before it: WordPiece "##…" */
    MCH_PIECE_GLUED     /* no word-start mark (BPE, Unigram): part of the word before it when the
                           two touch with letters or digits, else a word of its own ("," "'s") */
} mch_piece_kind;

/* The text a token adds to its word (without "##", the "Ġ"/"▁" mark or the spaces it stands for;
 * byte-level symbols decoded to their bytes) into buf (NUL-terminated, *len bytes) and its kind.
 * Returns -1 for an id no token has or a text longer than cap - 1 bytes, else the kind. */
int mch_tok_piece(const mch_tok *t, int32_t id, char *buf, size_t cap, size_t *len);

/* Appends the ids of word as it reads after other words of a text (a byte-level BPE without
 * add_prefix_space sees " word"), so that injected words carry their word-start mark. */
mch_status mch_tok_tokenize_word(const mch_tok *t, const char *word, size_t len, mch_ids *out,
                                 mch_err *err);

/* The first file mch_tok_open reads in dir (mch_tok_open_dir's order: tokenizer.json,
 * vocab.json, spiece.model, sentencepiece.bpe.model, vocab.txt) into path; -1 when none exists.
 * What a job spec hashes as the model's vocabulary. */
int mch_tok_file(const char *dir, char *path, size_t cap);

/* ---- the files older than tokenizer.json (hftok_files.c, spm_model.c) ---------------------- */

/* DIR's tokenizer files, the first found of: tokenizer.json; vocab.json + merges.txt
 * (RobertaTokenizer); spiece.model (T5Tokenizer); sentencepiece.bpe.model
 * (XLMRobertaTokenizer); vocab.txt (BertTokenizer). tokenizer_config.json is read with the last
 * three when it exists. *out is set only on success. */
mch_status mch_tok_open_dir(mch_tok **out, const char *dir, mch_err *err);

/* vocab.json + merges.txt as RobertaTokenizer reads them: ByteLevel (add_prefix_space from
 * config_path, default false), BPE, <s> A </s> / <s> A </s></s> B </s> (cls_token, sep_token),
 * added tokens from added_tokens_decoder or else <s> <pad> </s> <unk> and <mask> (lstrip).
 * config_path may be NULL. */
mch_status mch_tok_open_bpe_files(mch_tok **out, const char *vocab_path, const char *merges_path,
                                  const char *config_path, mch_err *err);

/* A sentencepiece unigram model (ModelProto bytes), encoded as sentencepiece encodes (its
 * normalizer, its Viterbi; special-token strings in the text are plain text) with the ids and
 * special tokens of the slow transformers tokenizer:
 *   MCH_SPM_T5    ids = the model's ids, A </s> / A </s> B </s>, <extra_id_0..99> after the
 *                 pieces (<extra_id_N> = pieces + 99 - N);
 *   MCH_SPM_XLMR  fairseq ids: <s> 0 <pad> 1 </s> 2 <unk> 3, piece i -> i + 1, <mask> last;
 *                 <s> A </s> / <s> A </s></s> B </s>.
 * A malformed or unsupported model is refused naming name and the field. */
enum { MCH_SPM_T5 = 1, MCH_SPM_XLMR = 2 };
mch_status mch_tok_parse_spm(mch_tok **out, const void *data, size_t len, int layout,
                             const char *name, mch_err *err);
mch_status mch_tok_open_spm(mch_tok **out, const char *path, int layout, mch_err *err);

#endif
