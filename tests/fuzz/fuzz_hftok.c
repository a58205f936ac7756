/* libFuzzer target for the tokenizer.json reader (mch_tok_parse_json) and, on a tokenizer that
 * loads, the pipeline behind it: a fixed text and a prefix of the input itself are tokenized,
 * and encoded alone and as a pair with both truncations; every id handed out must be below
 * mch_tok_size, every encoding within its max_len. The perturber then builds a pair on that
 * tokenizer (the words of its pieces, its post-processor's layout, and with odd-sized inputs the
 * MonoT5 prompt): within max_len, the two inputs equal except where the term went; and given
 * (pre-perturbed) pairs of the input's text, aligned on that layout, with the same checks. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "align.h"
#include "fuzz_check.h"
#include "hftok.h"
#include "perturb.h"

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

/* A pair's invariants: within max_len, ids in range, the inputs equal outside the injected
 * positions, n_term of them. */
static void check_pair(const mch_tok *t, const mch_pair *pr, int max_len)
{
    FUZZ_CHECK(pr->T >= 1 && pr->T <= max_len && pr->n_term >= 1);
    int injected = 0;
    for (int i = 0; i < pr->T; i++) {
        FUZZ_CHECK(pr->roles[i] < MCH_ROLE_COUNT);
        FUZZ_CHECK(pr->ids_perturbed[i] >= 0 && pr->ids_perturbed[i] < mch_tok_size(t));
        FUZZ_CHECK(pr->ids_baseline[i] >= 0 && pr->ids_baseline[i] < mch_tok_size(t));
        if (pr->roles[i] == MCH_ROLE_INJECTED)
            injected++;
        else
            FUZZ_CHECK(pr->ids_baseline[i] == pr->ids_perturbed[i]);
    }
    FUZZ_CHECK(injected == pr->n_term);
}

/* Given pairs (kernels/text/align.h) of the input's text against the fixed text and against
 * itself with a word appended, both ways round. */
static void given(const mch_tok *t, const mch_perturb_opts *o, const char *doc)
{
    mch_given *g = NULL;
    mch_err err = {0};
    if (mch_given_create(&g, t, o, 0, &err) != MCH_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return;
    }
    char longer[FUZZ_TEXT_MAX_BYTES + 64];
    snprintf(longer, sizeof longer, "%s compression", doc);
    const char *texts[3][2] = {{doc, FIXED_TEXT}, {doc, longer}, {longer, doc}};
    for (int k = 0; k < 3; k++) {
        mch_pair pr;
        mch_alignment al;
        memset(&err, 0, sizeof err);
        if (mch_given_build(g, "q", "fast compression", "d", NULL, texts[k][0], texts[k][1], &pr,
                            &al, &err) != MCH_OK) {
            FUZZ_CHECK(err.msg[0] != '\0');
            continue;
        }
        if (pr.skip[0]) continue;
        check_pair(t, &pr, o->max_len);
        FUZZ_CHECK(pr.n_term == (al.n_baseline > al.n_perturbed ? al.n_baseline : al.n_perturbed));
    }
    mch_given_free(g);
}

static void perturb(const mch_tok *t, const char *in, size_t len, int monot5)
{
    char buf[8];
    size_t bl;
    mch_ids ids = {0};
    mch_err err = {0};
    if (mch_tok_tokenize(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, &ids, &err) == MCH_OK)
        for (size_t i = 0; i < ids.n; i++) {
            int k = mch_tok_piece(t, ids.ids[i], buf, sizeof buf, &bl);
            FUZZ_CHECK(k < 0 || (bl < sizeof buf && buf[bl] == '\0'));
        }
    mch_ids_free(&ids);
    char doc[FUZZ_TEXT_MAX_BYTES + 64];
    size_t n = len < FUZZ_TEXT_MAX_BYTES ? len : FUZZ_TEXT_MAX_BYTES;
    memcpy(doc, in, n);
    doc[n] = '\0';
    if (strlen(doc) != n) return; /* a NUL inside: texts are C strings here */
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_INJECT;
    o.pos = MCH_POS_END;
    o.max_len = 32;
    o.monot5 = monot5;
    o.filler = ".";
    mch_perturber *p = NULL;
    memset(&err, 0, sizeof err);
    if (mch_perturber_create(&p, t, &o, &err) != MCH_OK) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return;
    }
    mch_pair pr;
    const char *docs[2] = {doc, FIXED_TEXT};
    for (int d = 0; d < 2; d++) {
        memset(&err, 0, sizeof err);
        if (mch_perturb(p, "q", "fast compression caf\xc3\xa9", "d", docs[d], "compression", &pr,
                        &err) != MCH_OK) {
            FUZZ_CHECK(err.msg[0] != '\0');
            continue;
        }
        if (pr.skip[0]) continue;
        check_pair(t, &pr, o.max_len);
    }
    mch_perturber_free(p);
    given(t, &o, doc);
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
    perturb(t, in, tlen, (int)(size & 1));
    mch_tok_free(t);
    return 0;
}
