/* MonoT5 (T5ForConditionalGeneration) against golden.json from an independent torch reference of
 * Hugging Face's modeling_t5, for a t5 v1.0 fixture (relu, tied embeddings) and a v1.1 one
 * (gated-gelu, untied): input ids from the prompt, score and both logits of every case, and
 * every element of case 0's residual streams, encoder output and step-0 logits; the relative
 * position buckets against torch; and the refusals (config key, tokenizer piece, tensor shape,
 * missing tensor), each message checked for the file and the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "t5.h"
#include "testutil.h"

#define ATOL 1e-5
#define RTOL 1e-4
#define MAXN 65536

static double want_buf[MAXN];

/* Compares got (n) with the numbers at key of c; counts the values into *n_cmp and the largest
 * |got - want| / (ATOL + RTOL |want|) into *worst. @return the mismatches. */
static long compare(const char *model, int ci, const char *key, const cJSON *c, const float *got,
                    long n, long *n_cmp, double *worst)
{
    long wn = tu_flatten(cJSON_GetObjectItem(c, key), want_buf, MAXN);
    char what[160];
    snprintf(what, sizeof what, "%s case %d %s", model, ci, key);
    if (wn != n) {
        fprintf(stderr, "%s: golden has %ld numbers, we have %ld\n", what, wn, n);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        double r = fabs(got[i] - want_buf[i]) / (ATOL + RTOL * fabs(want_buf[i]));
        if (r > *worst) *worst = r;
    }
    *n_cmp += n;
    return tu_compare(what, got, want_buf, n, ATOL, RTOL);
}

static void check_golden(const char *model)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, MCH_TEST_DATA "/models/%s", model);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    cJSON *g = tu_read_json(path);
    assert_non_null(g);
    mch_err err = {0};
    mch_monot5 *m = NULL;
    if (mch_monot5_open(&m, dir, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    const mch_t5_config *c = &m->model->cfg;
    assert_int_equal(m->true_id, cJSON_GetObjectItem(g, "true_id")->valueint);
    assert_int_equal(m->false_id, cJSON_GetObjectItem(g, "false_id")->valueint);
    assert_int_equal(c->decoder_start, cJSON_GetObjectItem(g, "decoder_start_token_id")->valueint);

    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    int nc = cJSON_GetArraySize(cases);
    long n_ids = 0, n_vals = 0, n_acts = 0, bad = 0;
    double worst = 0;
    int32_t want_ids[1024];
    for (int ci = 0; ci < nc; ci++) {
        const cJSON *cs = cJSON_GetArrayItem(cases, ci);
        int max_len = cJSON_GetObjectItem(cs, "max_len")->valueint;
        if (mch_monot5_encode(m, cJSON_GetObjectItem(cs, "query")->valuestring,
                              cJSON_GetObjectItem(cs, "doc")->valuestring, max_len, &err))
            fprintf(stderr, "%s case %d: %s\n", model, ci, err.msg);
        int wn = tu_ids(cs, "input_ids", want_ids, 1024);
        assert_true(wn > 0);
        assert_int_equal((int)m->enc.n, wn);
        for (int i = 0; i < wn; i++) {
            if (m->enc.ids[i] != want_ids[i])
                fprintf(stderr, "%s case %d input_ids[%d]: got %d want %d\n", model, ci, i,
                        m->enc.ids[i], want_ids[i]);
            assert_int_equal(m->enc.ids[i], want_ids[i]);
        }
        n_ids += wn;

        int T = wn;
        float *resid = NULL, *enc_out = NULL, *dres = NULL, *logits = NULL;
        mch_t5_capture cap = {0};
        mch_t5_hooks hooks = {mch_t5_capture_fn, &cap};
        if (ci == 0) {
            cap.enc_resid_post = resid = malloc((size_t)c->L * T * c->C * sizeof(float));
            cap.enc_out = enc_out = malloc((size_t)T * c->C * sizeof(float));
            cap.dec_resid_post = dres = malloc((size_t)c->LD * c->C * sizeof(float));
            cap.logits = logits = malloc((size_t)c->V * sizeof(float));
            assert_true(resid && enc_out && dres && logits);
        }
        mch_monot5_result r;
        assert_int_equal(mch_monot5_score_ids(m, m->enc.ids, T, ci == 0 ? &hooks : NULL, &r, &err),
                         MCH_OK);
        assert_int_equal(r.n_tokens, T);
        bad += compare(model, ci, "score", cs, &r.score, 1, &n_vals, &worst);
        bad += compare(model, ci, "logit_true", cs, &r.logit_true, 1, &n_vals, &worst);
        bad += compare(model, ci, "logit_false", cs, &r.logit_false, 1, &n_vals, &worst);
        if (ci == 0) {
            bad += compare(model, ci, "encoder_resid_post", cs, resid, (long)c->L * T * c->C,
                           &n_acts, &worst);
            bad += compare(model, ci, "encoder_out", cs, enc_out, (long)T * c->C, &n_acts, &worst);
            bad += compare(model, ci, "decoder_resid_post", cs, dres, (long)c->LD * c->C, &n_acts,
                           &worst);
            bad += compare(model, ci, "logits_step0", cs, logits, c->V, &n_acts, &worst);
            free(resid);
            free(enc_out);
            free(dres);
            free(logits);
        }
    }
    /* mch_monot5_score and the batch call agree with the per-step path on every case. */
    const char *qs[16], *ds[16];
    float batch[16];
    for (int ci = 0; ci < nc && ci < 16; ci++) {
        qs[ci] = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, ci), "query")->valuestring;
        ds[ci] = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, ci), "doc")->valuestring;
    }
    int nb = nc < 16 ? nc : 16;
    /* One max_len for the whole batch: the cases with 128 (the others are cut differently). */
    int k = 0;
    for (int ci = 0; ci < nb; ci++)
        if (cJSON_GetObjectItem(cJSON_GetArrayItem(cases, ci), "max_len")->valueint == 128) {
            qs[k] = qs[ci];
            ds[k] = ds[ci];
            want_buf[k] = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, ci), "score")->valuedouble;
            k++;
        }
    assert_true(k > 0);
    assert_int_equal(mch_monot5_score_batch(m, qs, ds, (size_t)k, 128, batch, &err), MCH_OK);
    bad += tu_compare("batch scores", batch, want_buf, k, ATOL, RTOL);
    printf("%s: %d cases, %ld input ids equal, %ld scores/logits and %ld activations within "
           "1e-5 + 1e-4|want| (worst %.3f of the tolerance), %d batch scores\n",
           model, nc, n_ids, n_vals, n_acts, worst, k);
    assert_true(nc > 0 && n_ids > 0 && n_vals == 3L * nc && n_acts > 0);
    assert_int_equal(bad, 0);
    mch_monot5_close(m);
    cJSON_Delete(g);
}

static void test_monot5_tiny_matches_golden(void **s)
{
    (void)s;
    check_golden("monot5-tiny");
}

static void test_monot5_tiny_gated_matches_golden(void **s)
{
    (void)s;
    check_golden("monot5-tiny-gated");
}

/* Buckets for key - query in [-3000, 3000], both directions and two bucket settings, against
 * Hugging Face's _relative_position_bucket run in torch (tests/data/models/t5-buckets.py). */
static void test_t5_buckets_match_torch(void **s)
{
    (void)s;
    cJSON *g = tu_read_json(MCH_TEST_DATA "/models/t5-buckets.json");
    assert_non_null(g);
    long n = 0, bad = 0;
    const cJSON *set;
    cJSON_ArrayForEach(set, cJSON_GetObjectItem(g, "sets"))
    {
        int nb = cJSON_GetObjectItem(set, "num_buckets")->valueint;
        int md = cJSON_GetObjectItem(set, "max_distance")->valueint;
        int bi = cJSON_IsTrue(cJSON_GetObjectItem(set, "bidirectional"));
        int lo = cJSON_GetObjectItem(set, "from")->valueint;
        const cJSON *b;
        int rel = lo;
        cJSON_ArrayForEach(b, cJSON_GetObjectItem(set, "buckets"))
        {
            int got = mch_t5_bucket(rel, bi, nb, md);
            if (got != b->valueint && bad++ < 5)
                fprintf(stderr, "bucket(%d, bidirectional %d, %d, %d): got %d want %d\n", rel, bi,
                        nb, md, got, b->valueint);
            rel++;
            n++;
        }
    }
    printf("t5 buckets: %ld compared with torch\n", n);
    assert_true(n > 0);
    assert_int_equal(bad, 0);
    cJSON_Delete(g);
}

static void test_t5_site_names_roundtrip(void **s)
{
    (void)s;
    mch_t5_config c = {.L = 2, .LD = 3};
    char buf[96];
    mch_err err = {0};
    int n = 0;
    for (int st = 0; st < MCH_T5_N_SITES; st++) {
        int nl = !mch_t5_site_layered(st) ? 1 : st < MCH_T5_DEC_RESID_PRE ? c.L : c.LD;
        for (int l = 0; l < nl; l++) {
            mch_t5_site got;
            int gl;
            mch_t5_site_name(st, l, buf, sizeof buf);
            assert_int_equal(mch_t5_site_parse(&c, buf, &got, &gl, &err), MCH_OK);
            assert_int_equal(got, st);
            if (mch_t5_site_layered(st)) assert_int_equal(gl, l);
            n++;
        }
    }
    assert_int_equal(n, 6 * 2 + 9 * 3 + 3);
    assert_string_equal(mch_t5_site_name(MCH_T5_ENC_RESID_POST, 1, buf, sizeof buf),
                        "encoder.1.hook_resid_post");
    mch_t5_site st;
    int l;
    assert_int_equal(mch_t5_site_parse(&c, "decoder.3.hook_resid_post", &st, &l, &err),
                     MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "decoder.3.hook_resid_post"));
}

/* ---- refusals: a scratch copy of a fixture with one file changed ---- */

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* An edit of the scratch copy in dir; arg is the edit's own. */
typedef void (*edit_fn)(const char *dir, const void *arg);

/* Copies the fixture model (config, weights, tokenizer) to a scratch directory, applies edit,
 * opens it as MonoT5 expecting a refusal whose one-line message holds DIR/leaf and every needle
 * (NULL-terminated), then removes the directory. */
static void expect_refusal(const char *model, edit_fn edit, const void *arg, const char *leaf,
                           const char *const *needles)
{
    char dir[512], path[600];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "t5"), 0);
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        size_t n;
        snprintf(path, sizeof path, MCH_TEST_DATA "/models/%s/%s", model, files[i]);
        char *data = tu_read_file(path, &n);
        assert_non_null(data);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        write_file(path, data, n);
        free(data);
    }
    edit(dir, arg);
    mch_monot5 *m = NULL;
    mch_err err = {0};
    assert_int_not_equal(mch_monot5_open(&m, dir, &err), MCH_OK);
    assert_null(m);
    printf("refused: %s\n", err.msg);
    assert_null(strchr(err.msg, '\n'));
    snprintf(path, sizeof path, "%s/%s", dir, leaf);
    assert_non_null(strstr(err.msg, path));
    for (; *needles; needles++) {
        if (!strstr(err.msg, *needles)) fprintf(stderr, "'%s' not in: %s\n", *needles, err.msg);
        assert_non_null(strstr(err.msg, *needles));
    }
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* Sets config.json's string keys: arg is {key, value, key, value, ..., NULL}. */
static void set_config_strings(const char *dir, const void *arg)
{
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = tu_read_json(path);
    assert_non_null(j);
    for (const char *const *kv = arg; *kv; kv += 2) {
        cJSON_DeleteItemFromObject(j, kv[0]);
        cJSON_AddStringToObject(j, kv[0], kv[1]);
    }
    char *text = cJSON_Print(j);
    write_file(path, text, strlen(text));
    free(text);
    cJSON_Delete(j);
}

static void test_t5_refuses_unknown_feed_forward_proj(void **s)
{
    (void)s;
    expect_refusal("monot5-tiny", set_config_strings,
                   (const char *const[]){"feed_forward_proj", "gated-silu", NULL}, "config.json",
                   (const char *const[]){"feed_forward_proj", "gated-silu", NULL});
    /* A dense_act_fn that contradicts feed_forward_proj (transformers would use it). */
    expect_refusal("monot5-tiny", set_config_strings,
                   (const char *const[]){"dense_act_fn", "gelu_new", NULL}, "config.json",
                   (const char *const[]){"dense_act_fn", "gelu_new", "relu", NULL});
}

/* Renames the piece arg[0] of tokenizer.json's Unigram vocabulary to arg[1]. */
static void rename_piece(const char *dir, const void *arg)
{
    const char *const *names = arg;
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *j = tu_read_json(path);
    assert_non_null(j);
    const cJSON *e;
    int done = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab"))
    {
        cJSON *piece = cJSON_GetArrayItem(e, 0);
        if (!strcmp(piece->valuestring, names[0])) {
            assert_non_null(cJSON_SetValuestring(piece, names[1]));
            done++;
        }
    }
    assert_int_equal(done, 1);
    char *text = cJSON_PrintUnformatted(j);
    write_file(path, text, strlen(text));
    free(text);
    cJSON_Delete(j);
}

#define PIECE_TRUE "\xe2\x96\x81true"
#define PIECE_FALSE                                                                                \
    "\xe2\x96\x81"                                                                                 \
    "false"

static void test_monot5_refuses_vocabulary_without_true_false(void **s)
{
    (void)s;
    expect_refusal("monot5-tiny-gated", rename_piece,
                   (const char *const[]){PIECE_FALSE, "<not-false>"}, "tokenizer.json",
                   (const char *const[]){"'" PIECE_FALSE "'", NULL});
    expect_refusal("monot5-tiny", rename_piece, (const char *const[]){PIECE_TRUE, "<not-true>"},
                   "tokenizer.json", (const char *const[]){"'" PIECE_TRUE "'", NULL});
}

/* Rewrites model.safetensors with its header edited by arg, a void (*)(cJSON *header) (the data
 * section unchanged). */
typedef struct {
    void (*fn)(cJSON *header);
} header_edit;

static void edit_safetensors(const char *dir, const void *arg)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    char *b = tu_read_file(path, &len);
    assert_non_null(b);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (unsigned char)b[i];
    assert_true(8 + hl <= len);
    cJSON *h = cJSON_ParseWithLength(b + 8, (size_t)hl);
    assert_non_null(h);
    ((const header_edit *)arg)->fn(h);
    char *text = cJSON_PrintUnformatted(h);
    size_t nl = strlen(text), data = len - 8 - (size_t)hl;
    char *out = malloc(8 + nl + data);
    assert_non_null(out);
    for (int i = 0; i < 8; i++) out[i] = (char)((uint64_t)nl >> (8 * i));
    memcpy(out + 8, text, nl);
    memcpy(out + 8 + nl, b + 8 + hl, data);
    write_file(path, out, 8 + nl + data);
    free(out);
    free(text);
    free(b);
    cJSON_Delete(h);
}

static void transpose_wo(cJSON *h)
{
    cJSON *t = cJSON_GetObjectItem(h, "encoder.block.1.layer.1.DenseReluDense.wo.weight");
    assert_non_null(t);
    cJSON_ReplaceItemInObject(t, "shape", cJSON_CreateIntArray((const int[]){128, 64}, 2));
}

static void test_t5_refuses_tensor_with_wrong_shape(void **s)
{
    (void)s;
    expect_refusal("monot5-tiny", edit_safetensors, &(header_edit){transpose_wo},
                   "model.safetensors",
                   (const char *const[]){"'encoder.block.1.layer.1.DenseReluDense.wo.weight'",
                                         "[128, 64]", "[64, 128]", NULL});
}

static void drop_final_ln(cJSON *h)
{
    cJSON_DeleteItemFromObject(h, "decoder.final_layer_norm.weight");
}

static void drop_lm_head(cJSON *h)
{
    cJSON_DeleteItemFromObject(h, "lm_head.weight");
}

static void test_t5_refuses_missing_tensor(void **s)
{
    (void)s;
    expect_refusal(
        "monot5-tiny", edit_safetensors, &(header_edit){drop_final_ln}, "model.safetensors",
        (const char *const[]){"missing tensor", "'decoder.final_layer_norm.weight'", NULL});
    /* Untied embeddings need lm_head.weight (a tied model does not). */
    expect_refusal("monot5-tiny-gated", edit_safetensors, &(header_edit){drop_lm_head},
                   "model.safetensors",
                   (const char *const[]){"missing tensor", "'lm_head.weight'", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monot5_tiny_matches_golden),
        cmocka_unit_test(test_monot5_tiny_gated_matches_golden),
        cmocka_unit_test(test_t5_buckets_match_torch),
        cmocka_unit_test(test_t5_site_names_roundtrip),
        cmocka_unit_test(test_t5_refuses_unknown_feed_forward_proj),
        cmocka_unit_test(test_monot5_refuses_vocabulary_without_true_false),
        cmocka_unit_test(test_t5_refuses_tensor_with_wrong_shape),
        cmocka_unit_test(test_t5_refuses_missing_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
