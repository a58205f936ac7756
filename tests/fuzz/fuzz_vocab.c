/* libFuzzer target for the vocab.txt decoder (mch_vocab_parse) and, on a vocabulary that parses,
 * the tokenizer that walks it: a fixed text and a prefix of the input itself are tokenized and
 * encoded, and every id handed out must be a valid id of this vocabulary. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "tokenizer.h"

/* Text of the input that is also tokenized: enough for several words, short enough to stay fast. */
#define FUZZ_TEXT_MAX_BYTES 256

static const char FIXED_TEXT[] =
    "Hello, [CLS] world! The naïve café-owner's unaffable [MASK] ##ing 中文字 "
    "\xc3\x85ngstr\xc3\xb6m \xe2\x80\xa8 tab\there [SEP] [UNK] [PAD]x \xef\xbf\xbd end.";

static void check_ids(const mch_vocab *v, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < mch_vocab_size(v));
}

/* Looks a token up by id and back by its string: ids are unique, so the round trip is exact. */
static void check_roundtrip(const mch_vocab *v, int32_t id)
{
    if (id < 0) return;
    const char *tok = mch_vocab_token(v, id);
    FUZZ_CHECK(tok != NULL);
    FUZZ_CHECK(mch_vocab_lookup(v, tok, strlen(tok)) == id);
}

static void tokenize_text(const mch_vocab *v, const char *text, size_t len)
{
    mch_ids ids = {0};
    mch_err err = {0};
    mch_status rc = mch_tokenize(v, text, len, &ids, &err);
    if (rc == MCH_OK)
        check_ids(v, ids.ids, ids.n);
    else
        fuzz_check_failure(rc, &err);
    mch_ids_free(&ids);
}

/* Encodes text (NUL-terminated) as a single input and as a pair with the fixed text. */
static void encode_text(const mch_vocab *v, const char *text)
{
    int32_t ids[24], types[24];
    int n = -1;
    mch_err err = {0};
    mch_status rc = mch_encode_single(v, text, 16, ids, &n, &err);
    if (rc == MCH_OK) {
        FUZZ_CHECK(n >= 2 && n <= 16);
        FUZZ_CHECK(ids[0] == mch_vocab_cls(v) && ids[n - 1] == mch_vocab_sep(v));
        check_ids(v, ids, (size_t)n);
    } else {
        fuzz_check_failure(rc, &err);
    }
    memset(&err, 0, sizeof err);
    rc = mch_encode_pair(v, text, FIXED_TEXT, 5, 24, ids, types, &n, &err);
    if (rc == MCH_OK) {
        FUZZ_CHECK(n >= 3 && n <= 24);
        FUZZ_CHECK(ids[0] == mch_vocab_cls(v) && ids[n - 1] == mch_vocab_sep(v));
        check_ids(v, ids, (size_t)n);
        for (int i = 0; i < n; i++) FUZZ_CHECK(types[i] == 0 || types[i] == 1);
    } else {
        fuzz_check_failure(rc, &err);
    }
}

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_vocab *v = NULL;
    mch_err err = {0};
    mch_status rc = mch_vocab_parse(&v, (const char *)data, size, "fuzz/vocab.txt", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(v == NULL);
        return 0;
    }
    int32_t n = mch_vocab_size(v);
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(mch_vocab_cls(v) >= 0 && mch_vocab_sep(v) >= 0 && mch_vocab_unk(v) >= 0);
    FUZZ_CHECK(strcmp(mch_vocab_token(v, mch_vocab_cls(v)), "[CLS]") == 0);
    FUZZ_CHECK(strcmp(mch_vocab_token(v, mch_vocab_sep(v)), "[SEP]") == 0);
    FUZZ_CHECK(strcmp(mch_vocab_token(v, mch_vocab_unk(v)), "[UNK]") == 0);
    FUZZ_CHECK(mch_vocab_token(v, -1) == NULL && mch_vocab_token(v, n) == NULL);
    check_roundtrip(v, 0);
    check_roundtrip(v, n / 2);
    check_roundtrip(v, n - 1);
    check_roundtrip(v, mch_vocab_pad(v));
    check_roundtrip(v, mch_vocab_mask(v));

    tokenize_text(v, FIXED_TEXT, sizeof FIXED_TEXT - 1);
    size_t tlen = size < FUZZ_TEXT_MAX_BYTES ? size : FUZZ_TEXT_MAX_BYTES;
    tokenize_text(v, (const char *)data, tlen);

    char text[FUZZ_TEXT_MAX_BYTES + 1];
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    encode_text(v, text);

    mch_vocab_free(v);
    return 0;
}
