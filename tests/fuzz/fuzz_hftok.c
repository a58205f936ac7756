/* libFuzzer target for the tokenizer.json reader (mch_tok_parse_json) and, on a tokenizer that
 * loads, the pipeline behind it: a fixed text and a prefix of the input itself are tokenized,
 * and encoded alone and as a pair with both truncations; every id handed out must be below
 * mch_tok_size, every encoding within its max_len. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "hftok.h"

/* Text of the input that is also tokenized: enough for several words, short enough to stay fast. */
#define FUZZ_TEXT_MAX_BYTES 256

static const char FIXED_TEXT[] =
    "Hello, [CLS] <s> world! </s> The na\xc3\xafve caf\xc3\xa9-owner's  unaffable <mask> ##ing "
    "\xe4\xb8\xad\xe6\x96\x87 \xe2\x96\x81x \xef\xbd\x81 \xe2\x80\xa8 tab\there\r\n <unk> "
    "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd xxx   end. ";

int mch_fuzz_status;

static void check_ids(const mch_tok *t, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < mch_tok_size(t));
}

static void encode(const mch_tok *t, const char *a, size_t alen, const char *b, size_t blen,
                   int max_len, int max_first)
{
    mch_tok_enc enc = {0};
    mch_err err = {0};
    mch_status rc = mch_tok_encode(t, a, alen, b, blen, max_len, max_first, &enc, &err);
    if (rc == MCH_OK) {
        check_ids(t, enc.ids, enc.n);
        if (max_len > 0) FUZZ_CHECK(enc.n <= (size_t)max_len);
    } else {
        /* refusals: a pair that only_second cannot cut (ARG), text that is not UTF-8 */
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(enc.n == 0);
    }
    mch_tok_enc_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status rc = mch_tok_parse_json(&t, (const char *)data, size, "fuzz/tokenizer.json", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(t == NULL);
        return 0;
    }
    FUZZ_CHECK(mch_tok_size(t) >= 0);
    for (int32_t id = 0; id < mch_tok_size(t) && id < 64; id++) {
        const char *s = mch_tok_token(t, id);
        if (s) FUZZ_CHECK(mch_tok_lookup(t, s, strlen(s)) >= 0);
    }
    FUZZ_CHECK(mch_tok_token(t, -1) == NULL && mch_tok_token(t, mch_tok_size(t)) == NULL);
    size_t tlen = size < FUZZ_TEXT_MAX_BYTES ? size : FUZZ_TEXT_MAX_BYTES;
    const char *in = (const char *)data;
    mch_ids ids = {0};
    rc = mch_tok_tokenize(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, &ids, &err);
    FUZZ_CHECK(rc == MCH_OK);
    check_ids(t, ids.ids, ids.n);
    mch_ids_free(&ids);
    encode(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, NULL, 0, 0, 0);
    encode(t, in, tlen, NULL, 0, 16, 0);
    encode(t, in, tlen, FIXED_TEXT, sizeof FIXED_TEXT - 1, 24, 0);
    encode(t, FIXED_TEXT, 20, in, tlen, 48, 0);
    encode(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, in, tlen, 24, 5);
    mch_tok_free(t);
    return 0;
}
