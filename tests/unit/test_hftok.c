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
    assert_non_null(strstr(err.msg, "neither tokenizer.json nor vocab.txt"));
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
