/* tokenizer.json parity: every case of tests/data/tokenizers/cases.jsonl against the goldens the
 * Hugging Face tokenizers library wrote (golden.jsonl per tokenizer: ids, pair ids, pair type
 * ids, pair ids truncated only_second to 48, null where the library refuses), for each way a
 * tokenizer can be loaded (tokenizer.json, legacy "a b" merges, vocab.txt + tokenizer_config);
 * bert-base-uncased's vocab.txt goldens of tests/data/tokenizer/; refusals naming the JSON path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hftok.h"
#include "testutil.h"

#define TOKDIR MCH_TEST_DATA "/tokenizers"
#define CASES_EXPECTED 369

/* cJSON ends strings at a NUL, and cases hold "\u0000": lines are read with it spelled as the
 * noncharacter U+FDD0 (in no case), turned back into NUL by unnul. */
#define NUL_STANDIN "\xEF\xB7\x90"

/* s with every U+FDD0 made NUL again, into buf (as long as s); *len its length. */
static const char *unnul(const char *s, char *buf, size_t *len)
{
    size_t n = 0;
    for (; *s; s++) {
        if (!strncmp(s, NUL_STANDIN, 3)) {
            buf[n++] = 0;
            s += 2;
        } else {
            buf[n++] = *s;
        }
    }
    *len = n;
    return buf;
}

/* Lines of a JSONL file as parsed objects; NULL-terminated array, *n the count. */
static cJSON **read_jsonl(const char *path, size_t *n)
{
    size_t len;
    char *s = tu_read_file(path, &len);
    *n = 0;
    if (!s) return NULL;
    size_t cap = 16;
    cJSON **v = malloc((cap + 1) * sizeof *v);
    for (char *line = s, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end) *end = '\0';
        if (!*line) continue;
        for (char *z; (z = strstr(line, "\\u0000"));) memcpy(z, "\\ufdd0", 6);
        if (*n == cap) v = realloc(v, ((cap *= 2) + 1) * sizeof *v);
        v[(*n)++] = cJSON_Parse(line);
    }
    v[*n] = NULL;
    free(s);
    return v;
}

static void free_jsonl(cJSON **v, size_t n)
{
    for (size_t i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

/* Compares enc (ids or types) with the JSON array want; prints the first difference. */
static int same_ids(const char *what, const char *id, const int32_t *got, size_t n,
                    const cJSON *want, long *compared)
{
    size_t wn = (size_t)cJSON_GetArraySize(want);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, want)
    {
        if (i >= n || got[i] != (int32_t)e->valuedouble) {
            fprintf(stderr, "MISMATCH %s %s[%zu]: got %d want %d (lengths %zu vs %zu)\n", id, what,
                    i, i < n ? got[i] : -1, (int)e->valuedouble, n, wn);
            return 0;
        }
        i++;
    }
    if (n != wn) {
        fprintf(stderr, "MISMATCH %s %s: length %zu, want %zu\n", id, what, n, wn);
        return 0;
    }
    *compared += (long)n;
    return 1;
}

/* Every case of cases.jsonl through tok against golden; returns the ids compared. */
static long check_goldens(const mch_tok *tok, const char *golden_path, const char *label)
{
    size_t nc, ng;
    cJSON **cases = read_jsonl(TOKDIR "/cases.jsonl", &nc);
    cJSON **gold = read_jsonl(golden_path, &ng);
    assert_non_null(cases);
    assert_non_null(gold);
    assert_int_equal(nc, CASES_EXPECTED);
    assert_int_equal(ng, nc);
    long compared = 0, bad = 0, refusals = 0;
    mch_tok_enc enc = {0};
    for (size_t i = 0; i < nc; i++) {
        const cJSON *c = cases[i], *g = gold[i];
        const char *id = cJSON_GetObjectItem(c, "id")->valuestring;
        assert_string_equal(id, cJSON_GetObjectItem(g, "id")->valuestring);
        const cJSON *pair = cJSON_GetObjectItem(c, "pair");
        const char *text0 = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *a0 = cJSON_GetArrayItem(pair, 0)->valuestring;
        const char *b0 = cJSON_GetArrayItem(pair, 1)->valuestring;
        char *tb = malloc(strlen(text0) + 1), *ab = malloc(strlen(a0) + 1),
             *bb = malloc(strlen(b0) + 1);
        size_t tl, al, bl;
        const char *text = unnul(text0, tb, &tl), *a = unnul(a0, ab, &al), *b = unnul(b0, bb, &bl);
        mch_err err = {0};
        int ok = 1;
        assert_int_equal(mch_tok_encode(tok, text, tl, NULL, 0, 0, 0, &enc, &err), MCH_OK);
        ok &= same_ids("ids", id, enc.ids, enc.n, cJSON_GetObjectItem(g, "ids"), &compared);
        assert_int_equal(mch_tok_encode(tok, a, al, b, bl, 0, 0, &enc, &err), MCH_OK);
        ok &=
            same_ids("pair_ids", id, enc.ids, enc.n, cJSON_GetObjectItem(g, "pair_ids"), &compared);
        const cJSON *pt = cJSON_GetObjectItem(g, "pair_type_ids");
        if (pt) {
            ok &= same_ids("pair_type_ids", id, enc.types, enc.n, pt, &compared);
        } else { /* absent: all 0 */
            for (size_t k = 0; k < enc.n; k++) ok &= enc.types[k] == 0;
            compared += (long)enc.n;
        }
        const cJSON *m48 = cJSON_GetObjectItem(g, "pair_ids_max48");
        mch_status st = mch_tok_encode(tok, a, al, b, bl, 48, 0, &enc, &err);
        if (cJSON_IsNull(m48)) {
            refusals++;
            if (st != MCH_ERR_ARG) {
                fprintf(stderr, "MISMATCH %s pair_ids_max48: encoded, the library refuses\n", id);
                ok = 0;
            }
        } else if (st != MCH_OK) {
            fprintf(stderr, "MISMATCH %s pair_ids_max48: refused (%s)\n", id, err.msg);
            ok = 0;
        } else {
            ok &= same_ids("pair_ids_max48", id, enc.ids, enc.n, m48, &compared);
        }
        bad += !ok;
        free(tb);
        free(ab);
        free(bb);
    }
    mch_tok_enc_free(&enc);
    printf("%s: %zu cases, %ld ids compared, %ld refusals matched, %ld cases differ\n", label, nc,
           compared, refusals, bad);
    free_jsonl(cases, nc);
    free_jsonl(gold, ng);
    assert_int_equal(bad, 0);
    assert_true(compared > 10000);
    return compared;
}

static mch_tok *open_json(const char *path)
{
    size_t len;
    char *s = tu_read_file(path, &len);
    assert_non_null(s);
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_parse_json(&t, s, len, path, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    free(s);
    return t;
}

static void test_hftok_wordpiece_cased_json_matches_library(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, TOKDIR "/wordpiece-cased", &err), MCH_OK);
    check_goldens(t, TOKDIR "/wordpiece-cased/golden.jsonl", "wordpiece-cased tokenizer.json");
    mch_tok_free(t);
}

static void test_hftok_wordpiece_cased_vocab_txt_stays_cased(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open_vocab_txt(&t, TOKDIR "/wordpiece-cased/vocab.txt",
                                            TOKDIR "/wordpiece-cased/tokenizer_config.json", &err),
                     MCH_OK);
    check_goldens(t, TOKDIR "/wordpiece-cased/golden.jsonl", "wordpiece-cased vocab.txt");
    mch_tok_free(t);
}

static void test_hftok_bpe_roberta_matches_library(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, TOKDIR "/bpe-roberta", &err), MCH_OK);
    check_goldens(t, TOKDIR "/bpe-roberta/golden.jsonl", "bpe-roberta tokenizer.json");
    mch_tok_free(t);
}

static void test_hftok_bpe_legacy_merges_match_library(void **state)
{
    (void)state;
    mch_tok *t = open_json(TOKDIR "/bpe-roberta/tokenizer.legacy-merges.json");
    check_goldens(t, TOKDIR "/bpe-roberta/golden.jsonl", "bpe-roberta legacy merges");
    mch_tok_free(t);
}

static void test_hftok_unigram_t5_matches_library(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, TOKDIR "/unigram-t5", &err), MCH_OK);
    check_goldens(t, TOKDIR "/unigram-t5/golden.jsonl", "unigram-t5 tokenizer.json");
    mch_tok_free(t);
}

/* bert-base-uncased from its vocab.txt alone (do_lower_case defaults to true) against the
 * library's ids of tests/data/tokenizer/ (the old WordPiece path's goldens). */
static void test_hftok_uncased_vocab_txt_matches_library(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open_vocab_txt(
                         &t, MCH_TEST_DATA "/tokenizer/bert-base-uncased-vocab.txt", NULL, &err),
                     MCH_OK);
    static const char *const files[] = {MCH_TEST_DATA "/tokenizer/cases.jsonl",
                                        MCH_TEST_DATA "/tokenizer/punct-cases.jsonl"};
    long compared = 0, cases = 0, bad = 0;
    mch_tok_enc enc = {0};
    for (int f = 0; f < 2; f++) {
        size_t n;
        cJSON **v = read_jsonl(files[f], &n);
        assert_non_null(v);
        for (size_t i = 0; i < n; i++) {
            const char *a = cJSON_GetObjectItem(v[i], "text_a")->valuestring;
            const char *b = cJSON_GetObjectItem(v[i], "text_b")->valuestring;
            char id[32];
            snprintf(id, sizeof id, "%s:%zu", f ? "punct" : "cases", i + 1);
            int ok = 1;
            assert_int_equal(mch_tok_encode(t, a, strlen(a), NULL, 0, 0, 0, &enc, &err), MCH_OK);
            ok &= same_ids("single_ids", id, enc.ids, enc.n,
                           cJSON_GetObjectItem(v[i], "single_ids"), &compared);
            assert_int_equal(mch_tok_encode(t, a, strlen(a), b, strlen(b), 0, 0, &enc, &err),
                             MCH_OK);
            ok &= same_ids("pair_ids", id, enc.ids, enc.n, cJSON_GetObjectItem(v[i], "pair_ids"),
                           &compared);
            ok &= same_ids("pair_type_ids", id, enc.types, enc.n,
                           cJSON_GetObjectItem(v[i], "pair_type_ids"), &compared);
            bad += !ok;
            cases++;
        }
        free_jsonl(v, n);
    }
    mch_tok_enc_free(&enc);
    mch_tok_free(t);
    printf("bert-base-uncased vocab.txt: %ld cases, %ld ids compared, %ld differ\n", cases,
           compared, bad);
    assert_int_equal(cases, 36 + 98);
    assert_int_equal(bad, 0);
}

/* The text of path with the first occurrence of from replaced by to. */
static char *edited(const char *path, const char *from, const char *to, size_t *len)
{
    size_t n;
    char *s = tu_read_file(path, &n);
    assert_non_null(s);
    char *at = strstr(s, from);
    assert_non_null(at);
    size_t fl = strlen(from), tl = strlen(to);
    char *out = malloc(n - fl + tl + 1);
    size_t pre = (size_t)(at - s);
    memcpy(out, s, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, at + fl, n - pre - fl + 1);
    *len = n - fl + tl;
    free(s);
    return out;
}

static void expect_refusal(const char *json, size_t len, const char *want)
{
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_parse_json(&t, json, len, "x/tokenizer.json", &err);
    if (st == MCH_OK || !strstr(err.msg, want))
        fprintf(stderr, "want a refusal with \"%s\", got status %d: %s\n", want, st, err.msg);
    assert_int_equal(st, MCH_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "x/tokenizer.json: "));
}

static void expect_edit_refused(const char *dir, const char *from, const char *to, const char *want)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", TOKDIR, dir);
    size_t len;
    char *s = edited(path, from, to, &len);
    expect_refusal(s, len, want);
    free(s);
}

static void test_hftok_unknown_parts_refused_naming_json_path(void **state)
{
    (void)state;
    expect_edit_refused("wordpiece-cased", "\"type\":\"BertNormalizer\"", "\"type\":\"NFKC\"",
                        "normalizer.type 'NFKC' is not supported");
    expect_edit_refused("unigram-t5", "\"type\":\"Strip\"", "\"type\":\"NFKC\"",
                        "normalizer.normalizers[1].type 'NFKC' is not supported");
    expect_edit_refused("wordpiece-cased", "\"type\":\"BertPreTokenizer\"", "\"type\":\"Split\"",
                        "pre_tokenizer.type 'Split' is not supported");
    expect_edit_refused("unigram-t5", "\"prepend_scheme\":\"always\"",
                        "\"prepend_scheme\":\"sometimes\"",
                        "pre_tokenizer.prepend_scheme 'sometimes' is not supported");
    expect_edit_refused("wordpiece-cased", "\"type\":\"WordPiece\",\"unk_token\"",
                        "\"type\":\"WordLevel\",\"unk_token\"",
                        "model.type 'WordLevel' is not supported");
    expect_edit_refused("bpe-roberta", "\"type\":\"RobertaProcessing\"", "\"type\":\"Sequence\"",
                        "post_processor.type 'Sequence' is not supported");
    expect_edit_refused("bpe-roberta", "\"byte_fallback\":false", "\"byte_fallback\":true",
                        "model.byte_fallback true is not supported");
    expect_edit_refused("unigram-t5", "\"unk_id\":2", "\"unk_id\":null", "model.unk_id is null");
    /* a pair template that holds $A twice (fuzz_hftok's find: encodings beyond max_len) */
    expect_edit_refused("unigram-t5", "{\"Sequence\":{\"id\":\"B\"", "{\"Sequence\":{\"id\":\"A\"",
                        "post_processor.pair uses $A 2 and $B 0 times");
    expect_edit_refused("bpe-roberta", "\"sep\":[\"</s>\",2]", "\"sep\":[\"</s>\",8000]",
                        "post_processor: cls id 0 or sep id 8000 is not in the vocabulary");
    expect_edit_refused("unigram-t5", "\"precompiled_charsmap\":\"", "\"precompiled_charsmap\":\"!",
                        "normalizer.normalizers[0].precompiled_charsmap is not base64");
    expect_edit_refused("wordpiece-cased", "\"unk_token\":\"[UNK]\"", "\"unk_token\":\"[NOPE]\"",
                        "model.unk_token '[NOPE]' is not in model.vocab");
    /* merges that reference unknown tokens */
    static const char bpe_bad[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
                                  "\"ab\":2},\"merges\":[[\"a\",\"b\"],[\"a\",\"c\"]]}}";
    expect_refusal(bpe_bad, sizeof bpe_bad - 1,
                   "model.merges[1] references 'c', which is not in model.vocab");
    static const char bpe_nonew[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},"
                                    "\"merges\":[\"a b\"]}}";
    expect_refusal(bpe_nonew, sizeof bpe_nonew - 1,
                   "model.merges[0] references 'ab', which is not in model.vocab");
    /* an id that would size the id table in gigabytes (fuzz_hftok's find) */
    static const char huge_id[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                                  "\"b\":2000000000},\"merges\":[]}}";
    expect_refusal(huge_id, sizeof huge_id - 1,
                   "model.vocab['b']: id 2000000000 is above the largest supported (16777215)");
    static const char no_model[] = "{\"normalizer\":null}";
    expect_refusal(no_model, sizeof no_model - 1, "model is missing");
    static const char not_json[] = "{\"model\":";
    expect_refusal(not_json, sizeof not_json - 1, "not a JSON object");
}

/* BertNormalizer with lowercase true and strip_accents null strips accents too (the library's
 * default follows lowercase): the edited cased tokenizer gives "Naïve CAFÉ" the cased ids of
 * "naive cafe". */
static void test_hftok_bert_strip_accents_follows_lowercase(void **state)
{
    (void)state;
    size_t len;
    char *s = edited(TOKDIR "/wordpiece-cased/tokenizer.json", "\"lowercase\":false",
                     "\"lowercase\":true", &len);
    mch_tok *lower = NULL, *cased = open_json(TOKDIR "/wordpiece-cased/tokenizer.json");
    mch_err err = {0};
    assert_int_equal(mch_tok_parse_json(&lower, s, len, "lower", &err), MCH_OK);
    free(s);
    mch_ids a = {0}, b = {0};
    static const char in[] = "Na\xC3\xAFve CAF\xC3\x89", plain[] = "naive cafe";
    assert_int_equal(mch_tok_tokenize(lower, in, sizeof in - 1, &a, &err), MCH_OK);
    assert_int_equal(mch_tok_tokenize(cased, plain, sizeof plain - 1, &b, &err), MCH_OK);
    assert_true(a.n > 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    mch_ids_free(&a);
    mch_ids_free(&b);
    mch_tok_free(lower);
    mch_tok_free(cased);
}

/* A directory's files: tokenizer.json wins over vocab.txt; neither is an I/O error naming DIR. */
static void test_hftok_open_refuses_empty_dir(void **state)
{
    (void)state;
    char dir[512];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "hftok"), 0);
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, dir, &err), MCH_ERR_IO);
    assert_null(t);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    assert_non_null(strstr(err.msg, "vocab.txt"));
    err = (mch_err){0};
    assert_int_equal(mch_tok_open_dir(&t, dir, &err), MCH_ERR_IO);
    assert_null(t);
    assert_non_null(strstr(err.msg, "no tokenizer.json, vocab.json + merges.txt, spiece.model, "
                                    "sentencepiece.bpe.model or vocab.txt there"));
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"do_lower_case\": \"yes\"}", f);
    fclose(f);
    err = (mch_err){0};
    assert_int_not_equal(
        mch_tok_open_vocab_txt(&t, MCH_TEST_DATA "/tokenizer/bert-base-uncased-vocab.txt", path,
                               &err),
        MCH_OK);
    assert_non_null(strstr(err.msg, "do_lower_case is not true or false"));
    unlink(path);
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* vocab.json + merges.txt (RobertaTokenizer's files), found by mch_tok_open_dir in a directory
 * without tokenizer.json: the library's ids of tokenizer.json on every case. */
static void test_hftok_bpe_vocab_json_merges_match_library(void **state)
{
    (void)state;
    char dir[512], link[700];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "hftok"), 0);
    static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    char abs[4096];
    for (int k = 0; k < 3; k++) {
        snprintf(link, sizeof link, "%s/%s", dir, files[k]);
        snprintf(abs, sizeof abs, "%s/bpe-roberta/%s", TOKDIR, files[k]);
        assert_int_equal(symlink(abs, link), 0);
    }
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_open_dir(&t, dir, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    check_goldens(t, TOKDIR "/bpe-roberta/golden.jsonl", "bpe-roberta vocab.json + merges.txt");
    mch_tok_free(t);
    /* without tokenizer_config.json: the same defaults */
    snprintf(link, sizeof link, "%s/tokenizer_config.json", dir);
    unlink(link);
    assert_int_equal(mch_tok_open_dir(&t, dir, &err), MCH_OK);
    mch_tok *ref = open_json(TOKDIR "/bpe-roberta/tokenizer.json");
    mch_ids ids = {0}, want = {0};
    static const char text[] = "A <mask> in Debian packages";
    assert_int_equal(mch_tok_tokenize(t, text, sizeof text - 1, &ids, &err), MCH_OK);
    assert_int_equal(mch_tok_tokenize(ref, text, sizeof text - 1, &want, &err), MCH_OK);
    assert_true(ids.n > 2);
    assert_int_equal(ids.ids[1], 7999); /* " <mask>": lstrip */
    assert_int_equal(ids.n, want.n);    /* add_prefix_space false: "A", not "ĠA" */
    assert_memory_equal(ids.ids, want.ids, ids.n * sizeof *ids.ids);
    mch_ids_free(&ids);
    mch_ids_free(&want);
    mch_tok_free(ref);
    mch_tok_free(t);
    t = NULL;
    /* a merges line that is not two tokens names the file and line */
    snprintf(abs, sizeof abs, "%s/merges.txt", dir);
    unlink(abs);
    FILE *f = fopen(abs, "w");
    fputs("#version: 0.2\n\xC4\xA0 a\nabc\n", f);
    fclose(f);
    assert_int_equal(mch_tok_open_dir(&t, dir, &err), MCH_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(err.msg, "merges.txt:3: 'abc' is not two tokens"));
    for (int k = 0; k < 2; k++) {
        snprintf(link, sizeof link, "%s/%s", dir, files[k]);
        unlink(link);
    }
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* spiece.model read by mch_tok_open_dir against sentencepiece's ids + </s> (T5Tokenizer). */
static void test_hftok_spm_t5_matches_sentencepiece(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_open_dir(&t, TOKDIR "/spm-t5", &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    check_goldens(t, TOKDIR "/spm-t5/golden.jsonl", "spm-t5 spiece.model");
    assert_int_equal(mch_tok_size(t), 8100);
    assert_string_equal(mch_tok_token(t, 8099), "<extra_id_0>");
    assert_string_equal(mch_tok_token(t, 1), "</s>");
    mch_tok_free(t);
}

/* sentencepiece.bpe.model against sentencepiece's ids in fairseq order (XLMRobertaTokenizer). */
static void test_hftok_spm_xlmr_matches_sentencepiece(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_open_dir(&t, TOKDIR "/spm-xlmr", &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    check_goldens(t, TOKDIR "/spm-xlmr/golden.jsonl", "spm-xlmr sentencepiece.bpe.model");
    assert_int_equal(mch_tok_size(t), 8002);
    assert_string_equal(mch_tok_token(t, 8001), "<mask>");
    assert_string_equal(mch_tok_token(t, 3), "<unk>");
    assert_int_equal(mch_tok_lookup(t, "<s>", 3), 0);
    mch_tok_free(t);
}

/* A model with nested custom normalization rules ("ab" and "a": the longest wins),
 * remove_extra_whitespaces and add_dummy_prefix false (tests/data/tokenizers/spm-rules/make.py):
 * sentencepiece's ids of each text, no special token. */
static void test_hftok_spm_rules_match_sentencepiece(void **state)
{
    (void)state;
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_open_spm(&t, TOKDIR "/spm-rules/spiece.model", MCH_SPM_T5, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, MCH_OK);
    size_t n;
    cJSON **v = read_jsonl(TOKDIR "/spm-rules/golden.jsonl", &n);
    assert_non_null(v);
    long compared = 0, bad = 0;
    mch_ids ids = {0};
    for (size_t i = 0; i < n; i++) {
        const char *text = cJSON_GetObjectItem(v[i], "text")->valuestring;
        char id[32];
        snprintf(id, sizeof id, "spm-rules:%zu", i + 1);
        ids.n = 0;
        assert_int_equal(mch_tok_tokenize(t, text, strlen(text), &ids, &err), MCH_OK);
        bad += !same_ids("ids", id, ids.ids, ids.n, cJSON_GetObjectItem(v[i], "ids"), &compared);
    }
    printf("spm-rules spiece.model: %zu texts, %ld ids compared, %ld differ\n", n, compared, bad);
    mch_ids_free(&ids);
    free_jsonl(v, n);
    mch_tok_free(t);
    assert_int_equal(n, 58);
    assert_int_equal(bad, 0);
    assert_true(compared > 1000);
}

/* ---- hand-made ModelProto bytes for the refusals -------------------------------------------- */

typedef struct {
    unsigned char b[512];
    size_t n;
} pb;

static void pb_varint(pb *p, uint64_t v)
{
    do {
        p->b[p->n++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void pb_bytes(pb *p, unsigned field, const void *s, size_t len)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, len);
    memcpy(p->b + p->n, s, len);
    p->n += len;
}

/* A piece message: piece, score (float), type. */
static void pb_piece(pb *p, const char *piece, float score, int type)
{
    pb m = {0};
    pb_bytes(&m, 1, piece, strlen(piece));
    uint32_t bits;
    memcpy(&bits, &score, 4);
    pb_varint(&m, 2 << 3 | 5);
    for (int k = 0; k < 4; k++) m.b[m.n++] = (unsigned char)(bits >> (8 * k));
    pb_varint(&m, 3 << 3 | 0);
    pb_varint(&m, (uint64_t)type);
    pb_bytes(p, 1, m.b, m.n);
}

static void expect_spm_refusal(const pb *p, int layout, const char *want)
{
    mch_tok *t = NULL;
    mch_err err = {0};
    mch_status st = mch_tok_parse_spm(&t, p->b, p->n, layout, "x/spiece.model", &err);
    if (st == MCH_OK || !strstr(err.msg, want))
        fprintf(stderr, "want a refusal with \"%s\", got status %d: %s\n", want, st, err.msg);
    assert_int_equal(st, MCH_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "x/spiece.model: "));
    assert_null(strchr(err.msg, '\n'));
}

static void test_hftok_spm_malformed_refused_naming_field(void **state)
{
    (void)state;
    pb good = {0};
    pb_piece(&good, "<unk>", 0, 2);
    pb_piece(&good, "</s>", 0, 3);
    pb_piece(&good,
             "\xE2\x96\x81"
             "a",
             -1.5f, 1);
    pb_piece(&good, "a", -2.5f, 1);
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_parse_spm(&t, good.b, good.n, MCH_SPM_T5, "x", &err), MCH_OK);
    mch_ids ids = {0};
    /* "a a" -> ▁a ▁a; "b" is unknown, and a run of unknowns is one unk */
    assert_int_equal(mch_tok_tokenize(t, "  a a bb a ", 11, &ids, &err), MCH_OK);
    static const int32_t want[] = {2, 2, 0, 2};
    assert_int_equal(ids.n, 4);
    assert_memory_equal(ids.ids, want, sizeof want);
    mch_ids_free(&ids);
    mch_tok_free(t);
    t = NULL;

    pb p = good;
    p.n -= 3; /* the last piece cut short */
    expect_spm_refusal(&p, MCH_SPM_T5, "ModelProto (byte");
    p = good;
    pb_piece(&p, "a", -3.0f, 1);
    expect_spm_refusal(&p, MCH_SPM_T5, "pieces[4].piece 'a' appears twice");
    p = good;
    pb_piece(&p, "x", -3.0f, 9);
    expect_spm_refusal(&p, MCH_SPM_T5, "pieces[4].type (byte");
    p = good;
    pb_piece(&p, "<0x41>", 0, 6);
    expect_spm_refusal(&p, MCH_SPM_T5, "pieces[4].type BYTE is not supported");
    p = good;
    pb_piece(&p, "", 0, 1);
    expect_spm_refusal(&p, MCH_SPM_T5, "pieces[4] (byte");
    p = (pb){0};
    pb_piece(&p, "</s>", 0, 3);
    pb_piece(&p, "a", -1, 1);
    expect_spm_refusal(&p, MCH_SPM_T5, "pieces: no piece of type UNKNOWN");
    static const unsigned char bpe_type[] = {2 << 3 | 2, 2, 3 << 3 | 0, 2};
    p = good;
    memcpy(p.b + p.n, bpe_type, sizeof bpe_type);
    p.n += sizeof bpe_type;
    expect_spm_refusal(&p, MCH_SPM_T5, "trainer_spec.model_type 2 is not supported");
    static const unsigned char fallback[] = {2 << 3 | 2, 3, 0x98, 0x02, 1}; /* field 35 */
    p = good;
    memcpy(p.b + p.n, fallback, sizeof fallback);
    p.n += sizeof fallback;
    expect_spm_refusal(&p, MCH_SPM_T5, "trainer_spec.byte_fallback true is not supported");
    static const unsigned char charsmap[] = {3 << 3 | 2, 4, 2 << 3 | 2, 2, 9, 9};
    p = good;
    memcpy(p.b + p.n, charsmap, sizeof charsmap);
    p.n += sizeof charsmap;
    expect_spm_refusal(&p, MCH_SPM_T5, "normalizer_spec.precompiled_charsmap: 2 bytes");
    static const unsigned char wrong_wire[] = {3 << 3 | 0, 1};
    p = good;
    memcpy(p.b + p.n, wrong_wire, sizeof wrong_wire);
    p.n += sizeof wrong_wire;
    expect_spm_refusal(&p, MCH_SPM_T5, "normalizer_spec (byte");
    p = (pb){0};
    pb_piece(&p, "a", -1, 1);
    pb_piece(&p, "<unk>", 0, 2);
    expect_spm_refusal(&p, MCH_SPM_XLMR, "pieces[1] is the UNKNOWN piece");
    p = (pb){0};
    expect_spm_refusal(&p, MCH_SPM_T5, "pieces: none");
    /* a real model cut in the middle, and a missing file */
    size_t len;
    char *s = tu_read_file(TOKDIR "/spm-t5/spiece.model", &len);
    assert_non_null(s);
    err = (mch_err){0};
    assert_int_equal(mch_tok_parse_spm(&t, s, len / 2, MCH_SPM_T5, "cut.model", &err),
                     MCH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "cut.model: "));
    free(s);
    assert_int_equal(mch_tok_open_spm(&t, TOKDIR "/none.model", MCH_SPM_T5, &err), MCH_ERR_IO);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hftok_wordpiece_cased_json_matches_library),
        cmocka_unit_test(test_hftok_wordpiece_cased_vocab_txt_stays_cased),
        cmocka_unit_test(test_hftok_bpe_roberta_matches_library),
        cmocka_unit_test(test_hftok_bpe_legacy_merges_match_library),
        cmocka_unit_test(test_hftok_unigram_t5_matches_library),
        cmocka_unit_test(test_hftok_uncased_vocab_txt_matches_library),
        cmocka_unit_test(test_hftok_unknown_parts_refused_naming_json_path),
        cmocka_unit_test(test_hftok_open_refuses_empty_dir),
        cmocka_unit_test(test_hftok_bert_strip_accents_follows_lowercase),
        cmocka_unit_test(test_hftok_bpe_vocab_json_merges_match_library),
        cmocka_unit_test(test_hftok_spm_t5_matches_sentencepiece),
        cmocka_unit_test(test_hftok_spm_xlmr_matches_sentencepiece),
        cmocka_unit_test(test_hftok_spm_rules_match_sentencepiece),
        cmocka_unit_test(test_hftok_spm_malformed_refused_naming_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
