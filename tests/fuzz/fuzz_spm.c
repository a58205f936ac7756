/* libFuzzer target for the sentencepiece model reader (mch_tok_parse_spm: the ModelProto wire
 * bytes) and, on a model that loads, its encoder: a fixed text and a prefix of the input are
 * tokenized and encoded alone and as a pair; every id must be below mch_tok_size. The layout is
 * T5's for inputs of even size, XLM-R's for odd ones (no byte of the model is spent on it). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "hftok.h"

#define FUZZ_TEXT_MAX_BYTES 256

static const char FIXED_TEXT[] =
    "  Hello,  world! </s> The na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xe2\x96\x81x "
    "\xef\xbd\x81\xef\xbc\xa1 \xe2\x80\xa8 tab\there\r\n xxx \xf0\x9f\x91\x8d  ";

int mch_fuzz_status;

static void check_ids(const mch_tok *t, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < mch_tok_size(t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_tok *t = NULL;
    mch_err err = {0};
    int layout = size & 1 ? MCH_SPM_XLMR : MCH_SPM_T5;
    mch_status rc = mch_tok_parse_spm(&t, data, size, layout, "fuzz/spiece.model", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(t == NULL);
        return 0;
    }
    FUZZ_CHECK(mch_tok_size(t) > 0);
    FUZZ_CHECK(mch_tok_token(t, -1) == NULL && mch_tok_token(t, mch_tok_size(t)) == NULL);
    mch_ids ids = {0};
    rc = mch_tok_tokenize(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, &ids, &err);
    FUZZ_CHECK(rc == MCH_OK);
    check_ids(t, ids.ids, ids.n);
    size_t tlen = size < FUZZ_TEXT_MAX_BYTES ? size : FUZZ_TEXT_MAX_BYTES;
    ids.n = 0;
    rc = mch_tok_tokenize(t, (const char *)data, tlen, &ids, &err);
    if (rc == MCH_OK)
        check_ids(t, ids.ids, ids.n);
    else
        FUZZ_CHECK(rc == MCH_ERR_FORMAT); /* not UTF-8 */
    mch_ids_free(&ids);
    mch_tok_enc enc = {0};
    memset(&err, 0, sizeof err);
    rc = mch_tok_encode(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, FIXED_TEXT, 30, 24, 6, &enc, &err);
    FUZZ_CHECK(rc == MCH_OK && enc.n <= 24);
    check_ids(t, enc.ids, enc.n);
    mch_tok_enc_free(&enc);
    mch_tok_free(t);
    return 0;
}
