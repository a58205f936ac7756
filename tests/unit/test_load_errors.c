/* Bad model directories are refused, never crash: each test copies a fixture model from
 * tests/data/models into a mkdtemp directory, corrupts one file of the copy, and checks that
 * mch_model_open fails with the expected status and a one-line message naming the file and the
 * tensor, key or line. Run under ASan/UBSan/LSan, a crash or a leak on any path fails too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model.h"
#include "testutil.h"

#define MODELS MCH_TEST_DATA "/models"

static const char *const model_files[] = {"config.json", "vocab.txt", "model.safetensors"};

typedef struct {
    char dir[4096]; /* the temporary model directory */
} fixture;

static void path_in(char *out, size_t cap, const fixture *fx, const char *file)
{
    int n = snprintf(out, cap, "%s/%s", fx->dir, file);
    assert_true(n > 0 && (size_t)n < cap);
}

static void write_whole(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    if (tu_tmpdir_make(fx->dir, sizeof fx->dir, "mch_load_errors")) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    char path[4200];
    for (size_t i = 0; i < sizeof model_files / sizeof model_files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, model_files[i]);
        unlink(path);
    }
    int rc = rmdir(fx->dir);
    free(fx);
    return rc;
}

/* Copies the three files of tests/data/models/<model> into the fixture's directory. */
static void copy_model(const fixture *fx, const char *model)
{
    char src[4200], dst[4200];
    for (size_t i = 0; i < sizeof model_files / sizeof model_files[0]; i++) {
        snprintf(src, sizeof src, "%s/%s/%s", MODELS, model, model_files[i]);
        size_t len;
        char *buf = tu_read_file(src, &len);
        assert_non_null(buf);
        path_in(dst, sizeof dst, fx, model_files[i]);
        write_whole(dst, buf, len);
        free(buf);
    }
}

/* A malloc'd copy of text with its first occurrence of old replaced by new; the occurrence must
 * exist, so a changed fixture cannot turn a test into a no-op. */
static char *replace_first(const char *text, size_t len, const char *old, const char *new,
                           size_t *out_len)
{
    const char *at = strstr(text, old);
    if (!at) fail_msg("'%s' not found in the fixture", old);
    size_t pre = (size_t)(at - text), ol = strlen(old), nl = strlen(new);
    *out_len = len - ol + nl;
    char *out = malloc(*out_len + 1);
    assert_non_null(out);
    memcpy(out, text, pre);
    memcpy(out + pre, new, nl);
    memcpy(out + pre + nl, at + ol, len - pre - ol);
    out[*out_len] = 0;
    return out;
}

/* Replaces the first occurrence of old by new in a text file of the copy. */
static void edit_text(const fixture *fx, const char *file, const char *old, const char *new)
{
    char path[4200];
    path_in(path, sizeof path, fx, file);
    size_t len, nlen;
    char *text = tu_read_file(path, &len);
    assert_non_null(text);
    char *edited = replace_first(text, len, old, new, &nlen);
    write_whole(path, edited, nlen);
    free(edited);
    free(text);
}

/* Keeps the first n bytes of a file of the copy. */
static void truncate_file(const fixture *fx, const char *file, size_t n)
{
    char path[4200];
    path_in(path, sizeof path, fx, file);
    size_t len;
    char *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    assert_true(n <= len);
    write_whole(path, buf, n);
    free(buf);
}

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The copy's model.safetensors with its header length field (the first 8 bytes) set to hlen. */
static void st_set_header_len(const fixture *fx, uint64_t hlen)
{
    char path[4200];
    path_in(path, sizeof path, fx, "model.safetensors");
    size_t len;
    char *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    put_u64le((unsigned char *)buf, hlen);
    write_whole(path, buf, len);
    free(buf);
}

/* The header length of the copy's model.safetensors. */
static size_t st_header_len(const fixture *fx)
{
    char path[4200];
    path_in(path, sizeof path, fx, "model.safetensors");
    size_t len;
    char *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    assert_true(len >= 8);
    uint64_t hlen = get_u64le((const unsigned char *)buf);
    free(buf);
    assert_true(hlen <= len - 8);
    return (size_t)hlen;
}

/* Rewrites the copy's model.safetensors with the first occurrence of old in its JSON header
 * replaced by new: new length + header + the original data section. The header is padded with
 * spaces to at least its old length (to a multiple of 8 when it grows), as safetensors writers
 * do, so the data section stays aligned. */
static void st_edit_header(const fixture *fx, const char *old, const char *new)
{
    char path[4200];
    path_in(path, sizeof path, fx, "model.safetensors");
    size_t len;
    char *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    assert_true(len >= 8);
    size_t hlen = (size_t)get_u64le((const unsigned char *)buf);
    assert_true(hlen <= len - 8);
    char *header = malloc(hlen + 1);
    assert_non_null(header);
    memcpy(header, buf + 8, hlen);
    header[hlen] = 0;
    size_t elen;
    char *edited = replace_first(header, hlen, old, new, &elen);
    size_t plen = elen <= hlen ? hlen : (elen + 7) / 8 * 8;
    size_t data_len = len - 8 - hlen;
    unsigned char *out = malloc(8 + plen + data_len);
    assert_non_null(out);
    put_u64le(out, plen);
    memcpy(out + 8, edited, elen);
    memset(out + 8 + elen, ' ', plen - elen);
    memcpy(out + 8 + plen, buf + 8 + hlen, data_len);
    write_whole(path, out, 8 + plen + data_len);
    free(out);
    free(edited);
    free(header);
    free(buf);
}

/* mch_model_open on the copy must fail with code and a one-line message that contains
 * "<dir>/<file>" and every one of the (NULL-terminated) strings that follow. */
static void expect_refused(const fixture *fx, mch_status code, const char *file, ...)
{
    char path[4200];
    path_in(path, sizeof path, fx, file);
    mch_model *m = NULL;
    mch_err err = {0};
    mch_status rc = mch_model_open(&m, fx->dir, &err);
    if (m) {
        mch_model_close(m);
        fail_msg("%s: opened, but %s was corrupted", fx->dir, file);
    }
    if (rc != code || err.code != rc)
        fail_msg("status %s (err.code %s), want %s; message: %s", mch_status_name(rc),
                 mch_status_name(err.code), mch_status_name(code), err.msg);
    if (!strstr(err.msg, path)) fail_msg("message does not name '%s': %s", path, err.msg);
    if (strchr(err.msg, '\n')) fail_msg("message is not one line: %s", err.msg);
    va_list ap;
    va_start(ap, file);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        if (!strstr(err.msg, s)) {
            va_end(ap);
            fail_msg("message does not contain '%s': %s", s, err.msg);
        }
    va_end(ap);
}

/* ---- controls: an untouched copy loads, and the helpers keep it loadable ---- */

static void test_untouched_copy_opens(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    mch_model *m = NULL;
    mch_err err = {0};
    mch_status rc = mch_model_open(&m, fx->dir, &err);
    if (rc != MCH_OK) fail_msg("untouched copy refused: %s", err.msg);
    mch_model_close(m);
}

static void test_header_rewrite_without_change_opens(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    /* Grows the header by one byte: padded to the next multiple of 8, still valid. */
    st_edit_header(fx, "\"classifier.weight\":{", "\"classifier.weight\": {");
    mch_model *m = NULL;
    mch_err err = {0};
    mch_status rc = mch_model_open(&m, fx->dir, &err);
    if (rc != MCH_OK) fail_msg("rewritten header refused: %s", err.msg);
    mch_model_close(m);
}

/* ---- model.safetensors ---- */

static void test_st_empty_file_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    truncate_file(fx, "model.safetensors", 0);
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "0 bytes", "too short", NULL);
}

static void test_st_cut_in_data_names_first_tensor_outside(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    size_t hlen = st_header_len(fx);
    /* 2,000,000 bytes of data: inside bert.embeddings.word_embeddings.weight [66048, 3972864). */
    truncate_file(fx, "model.safetensors", 8 + hlen + 2000000);
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors",
                   "'bert.embeddings.word_embeddings.weight'", "data_offsets", "2000000", NULL);
}

static void test_st_cut_one_byte_short_names_last_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    size_t hlen = st_header_len(fx);
    truncate_file(fx, "model.safetensors", 8 + hlen + 4045571);
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.weight'",
                   "[4045444, 4045572]", NULL);
}

static void test_st_cut_in_header_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    size_t hlen = st_header_len(fx);
    truncate_file(fx, "model.safetensors", 8 + hlen / 2);
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "header length", NULL);
}

static void test_st_cut_in_length_field_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    truncate_file(fx, "model.safetensors", 5);
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "5 bytes", "too short", NULL);
}

static void test_st_header_length_beyond_file_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    char want[64];
    snprintf(want, sizeof want, "header length %d", 4050004 - 8 + 1);
    st_set_header_len(fx, 4050004 - 8 + 1); /* one byte more than the file holds */
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", want, NULL);
}

static void test_st_huge_header_length_does_not_overflow(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_set_header_len(fx, UINT64_MAX - 3); /* 8 + hlen wraps around in size_t */
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "header length", NULL);
}

static void test_st_header_not_json_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "{\"bert.embeddings.LayerNorm.bias\":", "{bert.embeddings.LayerNorm.bias:");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "not a JSON object", NULL);
}

static void test_st_header_json_array_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_set_header_len(fx, 2);
    /* The first two header bytes become "[]": valid JSON, but not an object. */
    char path[4200];
    path_in(path, sizeof path, fx, "model.safetensors");
    size_t len;
    char *buf = tu_read_file(path, &len);
    assert_non_null(buf);
    memcpy(buf + 8, "[]", 2);
    write_whole(path, buf, len);
    free(buf);
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "not a JSON object", NULL);
}

static void test_st_offsets_out_of_range_name_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"data_offsets\":[4045444,4045572]", "\"data_offsets\":[9045444,9045572]");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.weight'",
                   "[9045444, 9045572]", "outside the data section", NULL);
}

static void test_st_offsets_reversed_name_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"data_offsets\":[4045444,4045572]", "\"data_offsets\":[4045572,4045444]");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.weight'",
                   "[4045572, 4045444]", NULL);
}

static void test_st_negative_offset_names_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"data_offsets\":[4045444,4045572]", "\"data_offsets\":[-128,4045572]");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.weight'", "data_offsets",
                   NULL);
}

static void test_st_overlapping_tensors_are_both_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    /* LayerNorm.weight moved onto LayerNorm.bias's bytes [0, 128). */
    st_edit_header(fx, "\"data_offsets\":[128,256]", "\"data_offsets\":[0,128]");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'bert.embeddings.LayerNorm.bias'",
                   "'bert.embeddings.LayerNorm.weight'", "overlap", NULL);
}

static void test_st_partial_overlap_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    /* classifier.bias [4045440, 4045444) grows into classifier.weight's first float. */
    st_edit_header(fx, "\"shape\":[1],\"data_offsets\":[4045440,4045444]",
                   "\"shape\":[2],\"data_offsets\":[4045440,4045448]");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.bias'",
                   "'classifier.weight'", "overlap", NULL);
}

static void test_st_duplicate_tensor_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"classifier.weight\":{\"dtype\":\"F32\",\"shape\":[1,32]",
                   "\"classifier.bias\":{\"dtype\":\"F32\",\"shape\":[1,32]");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.bias'", "twice", NULL);
}

static void test_st_shape_disagreeing_with_bytes_names_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"shape\":[32,32],\"data_offsets\":[4041344,4045440]",
                   "\"shape\":[32,31],\"data_offsets\":[4041344,4045440]");
    expect_refused(fx, MCH_ERR_SHAPE, "model.safetensors", "'bert.pooler.dense.weight'", "3968",
                   "4096", NULL);
}

static void test_st_overflowing_shape_names_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"shape\":[32,32],\"data_offsets\":[4041344,4045440]",
                   "\"shape\":[4294967296,4294967296,4],\"data_offsets\":[4041344,4045440]");
    expect_refused(fx, MCH_ERR_SHAPE, "model.safetensors", "'bert.pooler.dense.weight'",
                   "overflows", NULL);
}

static void test_st_shape_disagreeing_with_config_names_tensor(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"intermediate_size\": 64", "\"intermediate_size\": 65");
    expect_refused(fx, MCH_ERR_SHAPE, "model.safetensors",
                   "'bert.encoder.layer.0.intermediate.dense.weight'", "[64, 32]", "[65, 32]",
                   "config.json", NULL);
}

static void test_st_missing_tensor_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"bert.encoder.layer.1.output.dense.bias\"",
                   "\"bert.encoder.layer.1.output.dense.renamed\"");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors",
                   "'bert.encoder.layer.1.output.dense.bias'", "missing", NULL);
}

static void test_st_missing_head_tensor_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"classifier.weight\"", "\"classifier.weigth\"");
    expect_refused(fx, MCH_ERR_FORMAT, "model.safetensors", "'classifier.weight'", "missing", NULL);
}

static void test_st_f64_tensor_is_refused_by_name(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    /* 16 doubles fill classifier.weight's 128 bytes, so only the dtype is wrong. */
    st_edit_header(fx, "\"classifier.weight\":{\"dtype\":\"F32\",\"shape\":[1,32]",
                   "\"classifier.weight\":{\"dtype\":\"F64\",\"shape\":[1,16]");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "model.safetensors", "'classifier.weight'", "F64",
                   NULL);
}

static void test_st_i64_tensor_is_refused_by_name(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"bert.embeddings.LayerNorm.bias\":{\"dtype\":\"F32\",\"shape\":[32]",
                   "\"bert.embeddings.LayerNorm.bias\":{\"dtype\":\"I64\",\"shape\":[16]");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "model.safetensors", "'bert.embeddings.LayerNorm.bias'",
                   "I64", NULL);
}

static void test_st_unknown_dtype_is_refused_by_name(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    st_edit_header(fx, "\"bert.pooler.dense.bias\":{\"dtype\":\"F32\"",
                   "\"bert.pooler.dense.bias\":{\"dtype\":\"Q4_0\"");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "model.safetensors", "'bert.pooler.dense.bias'", "Q4_0",
                   NULL);
}

/* Every prefix of a real file up to the end of its header is refused by mch_st_parse without
 * reading outside the buffer (each prefix gets its own exact-size allocation for ASan). */
static void test_st_every_header_prefix_is_refused(void **state)
{
    (void)state;
    size_t len;
    char *buf = tu_read_file(MODELS "/bert-ce-tiny/model.safetensors", &len);
    assert_non_null(buf);
    size_t hlen = (size_t)get_u64le((const unsigned char *)buf);
    assert_true(8 + hlen + 1 <= len);
    for (size_t n = 0; n <= 8 + hlen + 1; n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        mch_safetensors *st = NULL;
        mch_err err = {0};
        mch_status rc = mch_st_parse(&st, copy, n, "prefix.safetensors", &err);
        free(copy);
        if (rc == MCH_OK) {
            mch_st_close(st);
            fail_msg("a prefix of %zu bytes parsed", n);
        }
        assert_null(st);
        if (!strstr(err.msg, "prefix.safetensors") || strchr(err.msg, '\n'))
            fail_msg("prefix of %zu bytes: bad message: %s", n, err.msg);
    }
    free(buf);
}

/* ---- config.json ---- */

static void test_config_zero_heads_names_key(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"num_attention_heads\": 4", "\"num_attention_heads\": 0");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "'num_attention_heads'", NULL);
}

static void test_config_zero_heads_distilbert_names_key(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "distilbert-dot-tiny");
    edit_text(fx, "config.json", "\"n_heads\": 4", "\"n_heads\": 0");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "'n_heads'", NULL);
}

static void test_config_heads_not_dividing_hidden_names_keys(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "'hidden_size' = 32",
                   "'num_attention_heads' = 5", NULL);
}

static void test_config_negative_heads_names_key(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"num_attention_heads\": 4", "\"num_attention_heads\": -4");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "'num_attention_heads'", NULL);
}

static void test_config_missing_key_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"intermediate_size\"", "\"intermediate_sizes\"");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "missing key 'intermediate_size'", NULL);
}

static void test_config_non_integer_key_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"hidden_size\": 32", "\"hidden_size\": \"32\"");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "'hidden_size'", NULL);
}

static void test_config_unknown_model_type_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"model_type\": \"bert\"", "\"model_type\": \"roberta\"");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "config.json", "model_type 'roberta'", NULL);
}

static void test_config_unknown_architecture_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"BertForSequenceClassification\"", "\"BertForMaskedLM\"");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "config.json", "architecture 'BertForMaskedLM'", NULL);
}

static void test_config_architecture_of_other_model_type_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"BertForSequenceClassification\"",
              "\"DistilBertForSequenceClassification\"");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "config.json",
                   "architecture 'DistilBertForSequenceClassification'", "'bert'", NULL);
}

static void test_config_swish_activation_is_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "config.json", "'hidden_act'", "'swish'", NULL);
}

static void test_config_relative_positions_are_named(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"hidden_act\": \"gelu\",",
              "\"hidden_act\": \"gelu\",\n \"position_embedding_type\": \"relative_key\",");
    expect_refused(fx, MCH_ERR_UNSUPPORTED, "config.json", "position_embedding_type",
                   "'relative_key'", NULL);
}

static void test_config_not_json_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "config.json", "\"model_type\": \"bert\",", "model_type: bert,");
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "not a JSON object", NULL);
}

static void test_config_empty_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    truncate_file(fx, "config.json", 0);
    expect_refused(fx, MCH_ERR_FORMAT, "config.json", "not a JSON object", NULL);
}

/* ---- vocab.txt ---- */

static void test_vocab_without_cls_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "vocab.txt", "\n[CLS]\n", "\n[CLX]\n");
    expect_refused(fx, MCH_ERR_FORMAT, "vocab.txt", "[CLS]", NULL);
}

static void test_vocab_without_sep_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "vocab.txt", "\n[SEP]\n", "\n[SEX]\n");
    expect_refused(fx, MCH_ERR_FORMAT, "vocab.txt", "[SEP]", NULL);
}

static void test_vocab_without_unk_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "vocab.txt", "\n[UNK]\n", "\n[UNX]\n");
    expect_refused(fx, MCH_ERR_FORMAT, "vocab.txt", "[UNK]", NULL);
}

static void test_vocab_empty_is_refused(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    truncate_file(fx, "vocab.txt", 0);
    expect_refused(fx, MCH_ERR_FORMAT, "vocab.txt", "empty", NULL);
}

static void test_vocab_duplicate_token_names_line(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "vocab.txt", "\n[unused0]\n", "\n[unused1]\n"); /* line 2 copies line 3 */
    expect_refused(fx, MCH_ERR_FORMAT, "vocab.txt:3:", "[unused1]", NULL);
}

static void test_vocab_invalid_utf8_names_line(void **state)
{
    fixture *fx = *state;
    copy_model(fx, "bert-ce-tiny");
    edit_text(fx, "vocab.txt", "\n[unused0]\n", "\n[unused\xff]\n");
    expect_refused(fx, MCH_ERR_FORMAT, "vocab.txt:2:", "UTF-8", NULL);
}

/* More tokens than vocab_size, for a model whose weights are all converted from BF16: the check
 * used to run after the converted model dropped its mapping, and the failure path then closed
 * the safetensors twice. */
static void test_vocab_larger_than_vocab_size_is_refused(void **state)
{
    const char *models[] = {"bert-ce-tiny", "bert-ce-tiny-bf16"};
    fixture *fx = *state;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        copy_model(fx, models[i]);
        edit_text(fx, "vocab.txt", "\n[MASK]\n", "\n[MASK]\nzz-extra-1\nzz-extra-2\n");
        mch_model *m = NULL;
        mch_err err = {0};
        mch_status rc = mch_model_open(&m, fx->dir, &err);
        if (m) {
            mch_model_close(m);
            fail_msg("%s: opened with 30524 tokens for vocab_size 30522", models[i]);
        }
        if (rc != MCH_ERR_SHAPE || !strstr(err.msg, fx->dir) || !strstr(err.msg, "vocab.txt") ||
            !strstr(err.msg, "30524") || !strstr(err.msg, "vocab_size") || strchr(err.msg, '\n'))
            fail_msg("%s: status %s, message: %s", models[i], mch_status_name(rc), err.msg);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_untouched_copy_opens),
        T(test_header_rewrite_without_change_opens),
        T(test_st_empty_file_is_refused),
        T(test_st_cut_in_data_names_first_tensor_outside),
        T(test_st_cut_one_byte_short_names_last_tensor),
        T(test_st_cut_in_header_is_refused),
        T(test_st_cut_in_length_field_is_refused),
        T(test_st_header_length_beyond_file_is_refused),
        T(test_st_huge_header_length_does_not_overflow),
        T(test_st_header_not_json_is_refused),
        T(test_st_header_json_array_is_refused),
        T(test_st_offsets_out_of_range_name_tensor),
        T(test_st_offsets_reversed_name_tensor),
        T(test_st_negative_offset_names_tensor),
        T(test_st_overlapping_tensors_are_both_named),
        T(test_st_partial_overlap_is_refused),
        T(test_st_duplicate_tensor_is_named),
        T(test_st_shape_disagreeing_with_bytes_names_tensor),
        T(test_st_overflowing_shape_names_tensor),
        T(test_st_shape_disagreeing_with_config_names_tensor),
        T(test_st_missing_tensor_is_named),
        T(test_st_missing_head_tensor_is_named),
        T(test_st_f64_tensor_is_refused_by_name),
        T(test_st_i64_tensor_is_refused_by_name),
        T(test_st_unknown_dtype_is_refused_by_name),
        T(test_st_every_header_prefix_is_refused),
        T(test_config_zero_heads_names_key),
        T(test_config_zero_heads_distilbert_names_key),
        T(test_config_heads_not_dividing_hidden_names_keys),
        T(test_config_negative_heads_names_key),
        T(test_config_missing_key_is_named),
        T(test_config_non_integer_key_is_named),
        T(test_config_unknown_model_type_is_named),
        T(test_config_unknown_architecture_is_named),
        T(test_config_architecture_of_other_model_type_is_refused),
        T(test_config_swish_activation_is_named),
        T(test_config_relative_positions_are_named),
        T(test_config_not_json_is_refused),
        T(test_config_empty_is_refused),
        T(test_vocab_without_cls_is_refused),
        T(test_vocab_without_sep_is_refused),
        T(test_vocab_without_unk_is_refused),
        T(test_vocab_empty_is_refused),
        T(test_vocab_duplicate_token_names_line),
        T(test_vocab_invalid_utf8_names_line),
        T(test_vocab_larger_than_vocab_size_is_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
