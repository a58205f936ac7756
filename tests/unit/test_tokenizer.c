/* Tokenizer tests: exact parity with Hugging Face bert-base-uncased on every case of
 * tests/data/tokenizer/cases.jsonl and punct-cases.jsonl (every ASCII punctuation character;
 * single and pair ids and token types), plus truncation,
 * vocab.txt errors, invalid UTF-8, the 100-character WordPiece limit and the basic words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tokenizer.h"

#define VOCAB_PATH MCH_TEST_DATA "/tokenizer/bert-base-uncased-vocab.txt"
#define CASES_PATH MCH_TEST_DATA "/tokenizer/cases.jsonl"
#define CASES_EXPECTED 36
/* Made by tests/unit/make_punct_cases.js with the Hugging Face tokenizers library. */
#define PUNCT_CASES_PATH MCH_TEST_DATA "/tokenizer/punct-cases.jsonl"
#define PUNCT_CASES_EXPECTED 98
#define BIG 100000 /* max_len for "no truncation" */

static mch_vocab *vocab; /* bert-base-uncased, opened once for the group */

static int group_setup(void **state)
{
    (void)state;
    mch_err err = {0};
    if (mch_vocab_open(&vocab, VOCAB_PATH, &err) != MCH_OK) {
        print_error("cannot open %s: %s\n", VOCAB_PATH, err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mch_vocab_free(vocab);
    vocab = NULL;
    return 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- fixture parity ---------------------------------------------------------------------- */

/* cJSON ends strings at NUL, but two cases hold "\u0000". The line is rewritten so that escape
 * reads "\uffff" (absent from the fixtures, checked), and the decoded U+FFFF bytes are turned
 * back into NUL with the true length kept. */
static char *line_hide_nul(const char *line, size_t len)
{
    char *out = malloc(len + 1);
    memcpy(out, line, len);
    out[len] = '\0';
    for (size_t i = 0; i + 1 < len; i++) {
        if (out[i] != '\\') continue;
        if (out[i + 1] == 'u' && i + 5 < len && memcmp(out + i + 2, "0000", 4) == 0)
            memcpy(out + i + 2, "ffff", 4);
        i++; /* skip the escaped character, so "\\u0000" is left alone */
    }
    return out;
}

static char *json_text(const cJSON *obj, const char *key, size_t *len)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(s));
    size_t n = strlen(s->valuestring), k = 0;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && memcmp(s->valuestring + i, "\xEF\xBF\xBF", 3) == 0) {
            out[k++] = '\0';
            i += 2;
        } else {
            out[k++] = s->valuestring[i];
        }
    }
    out[k] = '\0';
    *len = k;
    return out;
}

/* Compares got with the JSON int array want; prints the case, the first differing position
 * and both values. @return 1 on a difference. */
static const char *name_of(const char *what, int32_t id)
{
    if (strstr(what, "type")) return "type";
    const char *t = mch_vocab_token(vocab, id);
    return t ? t : "out of range";
}

static int diff_ids(int ci, const char *what, const int32_t *got, size_t ngot, const cJSON *want)
{
    assert_true(cJSON_IsArray(want));
    size_t nwant = (size_t)cJSON_GetArraySize(want);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, want)
    {
        if (i >= ngot || got[i] != (int32_t)e->valueint) {
            print_error("case %d %s: first difference at position %zu: got %d (%s), want %d "
                        "(%s); lengths got %zu, want %zu\n",
                        ci, what, i, i < ngot ? got[i] : -1,
                        i < ngot ? name_of(what, got[i]) : "end", (int)e->valueint,
                        name_of(what, (int32_t)e->valueint), ngot, nwant);
            return 1;
        }
        i++;
    }
    if (ngot != nwant) {
        print_error("case %d %s: got %zu ids, want %zu (extra id %d)\n", ci, what, ngot, nwant,
                    got[nwant]);
        return 1;
    }
    return 0;
}

static void push(mch_ids *a, int32_t id)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
        assert_non_null(a->ids);
    }
    a->ids[a->n++] = id;
}

static void tokenize_ok(const char *text, size_t len, mch_ids *out)
{
    mch_err err = {0};
    mch_status st = mch_tokenize(vocab, text, len, out, &err);
    if (st != MCH_OK) print_error("mch_tokenize: %s\n", err.msg);
    assert_int_equal(st, MCH_OK);
}

static int check_case(int ci, const cJSON *c)
{
    size_t la, lb;
    char *a = json_text(c, "text_a", &la);
    char *b = json_text(c, "text_b", &lb);
    int bad = 0;

    /* The whole sequences from mch_tokenize, which takes a length and so sees every byte. */
    mch_ids ta = {0}, tb = {0}, single = {0}, pair = {0}, types = {0};
    tokenize_ok(a, la, &ta);
    tokenize_ok(b, lb, &tb);
    push(&single, mch_vocab_cls(vocab));
    push(&pair, mch_vocab_cls(vocab));
    push(&types, 0);
    for (size_t i = 0; i < ta.n; i++) {
        push(&single, ta.ids[i]);
        push(&pair, ta.ids[i]);
        push(&types, 0);
    }
    push(&single, mch_vocab_sep(vocab));
    push(&pair, mch_vocab_sep(vocab));
    push(&types, 0);
    for (size_t i = 0; i < tb.n; i++) {
        push(&pair, tb.ids[i]);
        push(&types, 1);
    }
    push(&pair, mch_vocab_sep(vocab));
    push(&types, 1);
    bad |= diff_ids(ci, "single_ids (mch_tokenize)", single.ids, single.n,
                    cJSON_GetObjectItemCaseSensitive(c, "single_ids"));
    bad |= diff_ids(ci, "pair_ids (mch_tokenize)", pair.ids, pair.n,
                    cJSON_GetObjectItemCaseSensitive(c, "pair_ids"));
    bad |= diff_ids(ci, "pair_type_ids (mch_tokenize)", types.ids, types.n,
                    cJSON_GetObjectItemCaseSensitive(c, "pair_type_ids"));

    /* The encode functions take C strings: checked on every case without an embedded NUL. */
    int32_t *ids = malloc(BIG * sizeof *ids), *tt = malloc(BIG * sizeof *tt);
    int n = -1;
    mch_err err = {0};
    if (strlen(a) == la) {
        assert_int_equal(mch_encode_single(vocab, a, BIG, ids, &n, &err), MCH_OK);
        bad |= diff_ids(ci, "single_ids (mch_encode_single)", ids, (size_t)n,
                        cJSON_GetObjectItemCaseSensitive(c, "single_ids"));
    }
    if (strlen(a) == la && strlen(b) == lb) {
        assert_int_equal(mch_encode_pair(vocab, a, b, BIG, BIG, ids, tt, &n, &err), MCH_OK);
        bad |= diff_ids(ci, "pair_ids (mch_encode_pair)", ids, (size_t)n,
                        cJSON_GetObjectItemCaseSensitive(c, "pair_ids"));
        bad |= diff_ids(ci, "pair_type_ids (mch_encode_pair)", tt, (size_t)n,
                        cJSON_GetObjectItemCaseSensitive(c, "pair_type_ids"));
    }
    free(ids);
    free(tt);
    mch_ids_free(&ta);
    mch_ids_free(&tb);
    mch_ids_free(&single);
    mch_ids_free(&pair);
    mch_ids_free(&types);
    free(a);
    free(b);
    return bad;
}

/* Checks every case of a fixture file; fails unless it held exactly `expected` cases. */
static void check_fixture_file(const char *path, int expected)
{
    size_t len = 0;
    char *all = read_all(path, &len);
    if (!all) fail_msg("cannot read %s", path);
    assert_null(strstr(all, "\\uffff"));
    assert_null(strstr(all, "\\uFFFF"));
    assert_null(strstr(all, "\xEF\xBF\xBF"));

    int checked = 0, failed = 0;
    for (char *line = all; line < all + len;) {
        char *end = memchr(line, '\n', (size_t)(all + len - line));
        if (!end) end = all + len;
        if (end > line) {
            char *copy = line_hide_nul(line, (size_t)(end - line));
            cJSON *c = cJSON_Parse(copy);
            if (!c) fail_msg("%s: case %d is not JSON", path, checked);
            failed += check_case(checked, c);
            checked++;
            cJSON_Delete(c);
            free(copy);
        }
        line = end + 1;
    }
    free(all);
    if (failed) fail_msg("%s: %d of %d cases differ from Hugging Face", path, failed, checked);
    assert_true(checked > 0);
    assert_int_equal(checked, expected);
}

static void test_tokenizer_matches_hf_on_every_fixture_case(void **state)
{
    (void)state;
    check_fixture_file(CASES_PATH, CASES_EXPECTED);
}

/* Every ASCII punctuation character (33-47, 58-64, 91-96, 123-126: the edges of HF's
 * _is_punctuation table included) alone, repeated, inside and around words. */
static void test_tokenizer_matches_hf_on_all_ascii_punctuation(void **state)
{
    (void)state;
    check_fixture_file(PUNCT_CASES_PATH, PUNCT_CASES_EXPECTED);
}

/* ---- vocabulary ---------------------------------------------------------------------------- */

static void test_vocab_special_ids_are_bert_base_uncased(void **state)
{
    (void)state;
    assert_int_equal(mch_vocab_size(vocab), 30522);
    assert_int_equal(mch_vocab_pad(vocab), 0);
    assert_int_equal(mch_vocab_unk(vocab), 100);
    assert_int_equal(mch_vocab_cls(vocab), 101);
    assert_int_equal(mch_vocab_sep(vocab), 102);
    assert_int_equal(mch_vocab_mask(vocab), 103);
    assert_int_equal(mch_vocab_lookup(vocab, "the", 3), 1996);
    assert_int_equal(mch_vocab_lookup(vocab, "thex", 4), -1);
    assert_string_equal(mch_vocab_token(vocab, 1996), "the");
    assert_null(mch_vocab_token(vocab, 30522));
    assert_null(mch_vocab_token(vocab, -1));
}

static mch_status parse(const char *data, size_t len, mch_err *err)
{
    mch_vocab *v = NULL;
    mch_status st = mch_vocab_parse(&v, data, len, "t.txt", err);
    assert_true((st == MCH_OK) == (v != NULL));
    mch_vocab_free(v);
    return st;
}

static void test_vocab_refuses_empty_file(void **state)
{
    (void)state;
    mch_err err = {0};
    assert_int_equal(parse("", 0, &err), MCH_ERR_FORMAT);
    assert_string_equal(err.msg, "t.txt: empty vocabulary file");
}

static void test_vocab_refuses_missing_cls(void **state)
{
    (void)state;
    mch_err err = {0};
    const char *d = "[PAD]\n[SEP]\n[UNK]\nfoo\n";
    assert_int_equal(parse(d, strlen(d), &err), MCH_ERR_FORMAT);
    assert_string_equal(err.msg, "t.txt: no [CLS] token in 4 lines");
}

static void test_vocab_refuses_duplicate_with_both_lines(void **state)
{
    (void)state;
    mch_err err = {0};
    const char *d = "[CLS]\n[SEP]\n[UNK]\nfoo\nbar\nfoo\n";
    assert_int_equal(parse(d, strlen(d), &err), MCH_ERR_FORMAT);
    assert_string_equal(err.msg, "t.txt:6: duplicate token 'foo' (first at line 4)");
}

static void test_vocab_refuses_invalid_utf8_with_line(void **state)
{
    (void)state;
    mch_err err = {0};
    const char *d = "[CLS]\n[SEP]\n[UNK]\nab\xff\n";
    assert_int_equal(parse(d, strlen(d), &err), MCH_ERR_FORMAT);
    assert_string_equal(err.msg, "t.txt:4: invalid UTF-8 at byte 2 of the line");
    mch_err err2 = {0};
    const char *overlong = "[CLS]\n[SEP]\n\xc0\xaf\n[UNK]\n";
    assert_int_equal(parse(overlong, strlen(overlong), &err2), MCH_ERR_FORMAT);
    assert_string_equal(err2.msg, "t.txt:3: invalid UTF-8 at byte 0 of the line");
}

static void test_vocab_reads_crlf_and_unterminated_last_line(void **state)
{
    (void)state;
    mch_err err = {0};
    mch_vocab *v = NULL;
    const char *d = "[CLS]\r\n[SEP]\r\n[UNK]\r\n\xc3\xa9t\xc3\xa9\r\nfoo";
    assert_int_equal(mch_vocab_parse(&v, d, strlen(d), "t.txt", &err), MCH_OK);
    assert_int_equal(mch_vocab_size(v), 5);
    assert_int_equal(mch_vocab_lookup(v, "foo", 3), 4);
    assert_int_equal(mch_vocab_lookup(v, "\xc3\xa9t\xc3\xa9", 5), 3);
    assert_string_equal(mch_vocab_token(v, 2), "[UNK]");
    assert_int_equal(mch_vocab_pad(v), -1);
    assert_int_equal(mch_vocab_mask(v), -1);
    mch_vocab_free(v);
    mch_vocab_free(NULL);
}

static void test_vocab_open_names_the_path(void **state)
{
    (void)state;
    char path[] = "/tmp/mch_vocab_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *d = "[CLS]\n[SEP]\n[UNK]\n[SEP]\n";
    assert_int_equal(write(fd, d, strlen(d)), (ssize_t)strlen(d));
    close(fd);
    mch_err err = {0};
    mch_vocab *v = NULL;
    assert_int_equal(mch_vocab_open(&v, path, &err), MCH_ERR_FORMAT);
    assert_null(v);
    char want[128];
    snprintf(want, sizeof want, "%s:4: duplicate token '[SEP]' (first at line 2)", path);
    assert_string_equal(err.msg, want);
    unlink(path);

    mch_err err2 = {0};
    assert_int_equal(mch_vocab_open(&v, "/nonexistent/vocab.txt", &err2), MCH_ERR_IO);
    assert_non_null(strstr(err2.msg, "/nonexistent/vocab.txt"));
}

/* ---- text --------------------------------------------------------------------------------- */

static void test_invalid_utf8_text_is_refused_with_offset(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        const char *where;
    } bad[] = {
        {"abc\xc3(", "byte 3"},               /* truncated 2-byte sequence */
        {"ok \xc0\xaf", "byte 3"},            /* overlong '/' */
        {"\xed\xa0\x80 surrogate", "byte 0"}, /* UTF-16 surrogate */
        {"x\xf4\x90\x80\x80", "byte 1"},      /* above U+10FFFF */
        {"caf\xc3\xa9 \xff", "byte 6"},       /* stray byte after valid text */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mch_ids out = {0};
        mch_err err = {0};
        assert_int_equal(mch_tokenize(vocab, bad[i].s, strlen(bad[i].s), &out, &err),
                         MCH_ERR_FORMAT);
        assert_int_equal(out.n, 0);
        if (!strstr(err.msg, bad[i].where)) fail_msg("'%s' lacks '%s'", err.msg, bad[i].where);
        mch_ids_free(&out);
    }
    int32_t ids[16], types[16];
    int n = -1;
    mch_err err = {0};
    assert_int_equal(mch_encode_pair(vocab, "fine", "bad \xff", 8, 16, ids, types, &n, &err),
                     MCH_ERR_FORMAT);
    assert_string_equal(err.msg, "document: invalid UTF-8 at byte 4 (0xff)");
    assert_int_equal(n, 0);
    mch_err err2 = {0};
    assert_int_equal(mch_encode_single(vocab, "\xe2\x82", 16, ids, &n, &err2), MCH_ERR_FORMAT);
    assert_string_equal(err2.msg, "text: invalid UTF-8 at byte 0 (0xe2)");
}

static void repeat(char *out, const char *unit, int times)
{
    out[0] = '\0';
    for (int i = 0; i < times; i++) strcat(out, unit);
}

static void test_word_over_100_characters_is_unk(void **state)
{
    (void)state;
    char text[1024];
    int32_t unk = mch_vocab_unk(vocab);
    mch_ids out = {0};

    repeat(text, "a", 101);
    tokenize_ok(text, strlen(text), &out);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.ids[0], unk);

    /* 100 characters is still WordPiece'd; combining marks are stripped before counting. */
    out.n = 0;
    repeat(text, "a\xcc\x81", 100);
    tokenize_ok(text, strlen(text), &out);
    assert_true(out.n > 1);
    for (size_t i = 0; i < out.n; i++) assert_int_not_equal(out.ids[i], unk);

    /* Punctuation splits words before the limit applies: 2 x 60 letters are two words. */
    out.n = 0;
    repeat(text, "b", 60);
    strcat(text, "-");
    char tail[128];
    repeat(tail, "b", 60);
    strcat(text, tail);
    tokenize_ok(text, strlen(text), &out);
    for (size_t i = 0; i < out.n; i++) assert_int_not_equal(out.ids[i], unk);

    /* A word with no WordPiece match is one [UNK], however many pieces matched first. */
    out.n = 0;
    tokenize_ok("hello\xe2\x98\x83", strlen("hello\xe2\x98\x83"), &out);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.ids[0], unk);
    mch_ids_free(&out);
}

static void test_special_tokens_split_out_with_exact_case(void **state)
{
    (void)state;
    mch_ids out = {0};
    const char *t = "a[MASK]b [cls]";
    tokenize_ok(t, strlen(t), &out);
    const char *want[] = {"a", "[MASK]", "b", "[", "cl", "##s", "]"};
    assert_int_equal(out.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < out.n; i++)
        assert_string_equal(mch_vocab_token(vocab, out.ids[i]), want[i]);
    mch_ids_free(&out);
}

/* ---- encode and truncation ------------------------------------------------------------------ */

static size_t count_tokens(const char *text)
{
    mch_ids out = {0};
    tokenize_ok(text, strlen(text), &out);
    size_t n = out.n;
    mch_ids_free(&out);
    return n;
}

static void test_pair_cuts_query_then_document(void **state)
{
    (void)state;
    const char *q = "the quick brown fox jumps over the lazy dog"; /* 9 tokens */
    const char *d = "zstd is a fast lossless compression algorithm for everyone";
    assert_int_equal(count_tokens(q), 9);
    size_t nd = count_tokens(d);
    mch_ids qi = {0}, di = {0};
    tokenize_ok(q, strlen(q), &qi);
    tokenize_ok(d, strlen(d), &di);

    int32_t ids[64], types[64];
    int n = -1;
    mch_err err = {0};
    /* Query cut to 4, document cut so the pair is exactly 12 long. */
    assert_int_equal(mch_encode_pair(vocab, q, d, 4, 12, ids, types, &n, &err), MCH_OK);
    assert_int_equal(n, 12);
    assert_true(nd > 5);
    assert_int_equal(ids[0], 101);
    assert_memory_equal(ids + 1, qi.ids, 4 * sizeof *ids);
    assert_int_equal(ids[5], 102);
    assert_memory_equal(ids + 6, di.ids, 5 * sizeof *ids);
    assert_int_equal(ids[11], 102);
    for (int i = 0; i < n; i++) assert_int_equal(types[i], i <= 5 ? 0 : 1);

    /* A query longer than the pair can hold is cut to max_len - 3, leaving no document. */
    assert_int_equal(mch_encode_pair(vocab, q, d, 64, 6, ids, types, &n, &err), MCH_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(ids + 1, qi.ids, 3 * sizeof *ids);
    assert_int_equal(ids[4], 102);
    assert_int_equal(ids[5], 102);
    assert_int_equal(types[4], 0);
    assert_int_equal(types[5], 1);

    /* No cut needed: everything is kept. */
    assert_int_equal(mch_encode_pair(vocab, q, d, 64, 64, ids, types, &n, &err), MCH_OK);
    assert_int_equal(n, (int)(9 + nd + 3));

    /* Empty document: [CLS] q [SEP] [SEP]. */
    assert_int_equal(mch_encode_pair(vocab, q, "", 64, 64, ids, types, &n, &err), MCH_OK);
    assert_int_equal(n, 12);
    assert_memory_equal(ids + 1, qi.ids, 9 * sizeof *ids);
    assert_int_equal(ids[10], 102);
    assert_int_equal(ids[11], 102);
    assert_int_equal(types[10], 0);
    assert_int_equal(types[11], 1);

    /* max_query_len 0 and the smallest pair. */
    assert_int_equal(mch_encode_pair(vocab, q, d, 0, 3, ids, types, &n, &err), MCH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 101);
    assert_int_equal(ids[1], 102);
    assert_int_equal(ids[2], 102);

    assert_int_equal(err.code, MCH_OK);
    assert_int_equal(mch_encode_pair(vocab, q, d, 4, 2, ids, types, &n, &err), MCH_ERR_ARG);
    mch_ids_free(&qi);
    mch_ids_free(&di);
}

static void test_single_cuts_text_to_max_len(void **state)
{
    (void)state;
    const char *t = "the quick brown fox jumps over the lazy dog";
    mch_ids ti = {0};
    tokenize_ok(t, strlen(t), &ti);
    int32_t ids[16];
    int n = -1;
    mch_err err = {0};
    assert_int_equal(mch_encode_single(vocab, t, 5, ids, &n, &err), MCH_OK);
    assert_int_equal(n, 5);
    assert_int_equal(ids[0], 101);
    assert_memory_equal(ids + 1, ti.ids, 3 * sizeof *ids);
    assert_int_equal(ids[4], 102);
    assert_int_equal(mch_encode_single(vocab, t, 2, ids, &n, &err), MCH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(mch_encode_single(vocab, t, 1, ids, &n, &err), MCH_ERR_ARG);
    mch_ids_free(&ti);
}

/* ---- basic words ---------------------------------------------------------------------------- */

typedef struct {
    char joined[512];
    int calls, stop_after;
} words_seen;

static int collect(void *user, const char *word, size_t len)
{
    words_seen *s = user;
    assert_int_equal(strlen(word), len);
    if (s->calls++) strcat(s->joined, "|");
    strcat(s->joined, word);
    return s->stop_after && s->calls == s->stop_after ? 42 : 0;
}

static void test_basic_words_lowercase_strip_and_split(void **state)
{
    (void)state;
    /* Accents stripped (é, Å), ẞ lowercased to ß, CJK split, punctuation split, control chars and
     * zero-width space dropped (joining), no-break space a separator, [MASK] kept as it is. */
    const char *t = "H\xc3\xa9llo, WORLD!\t\xc3\x85sa \xe1\xba\x9e "
                    "\xe5\x8c\x97\xe4\xba\xac[MASK]x\x01y\xe2\x80\x8bz\xc2\xa0"
                    "don't";
    words_seen s = {0};
    mch_err err = {0};
    assert_int_equal(mch_basic_words(t, strlen(t), collect, &s, &err), MCH_OK);
    assert_string_equal(s.joined, "hello|,|world|!|asa|\xc3\x9f|\xe5\x8c\x97|\xe4\xba\xac|[MASK]|"
                                  "xyz|don|'|t");

    words_seen stop = {.stop_after = 2};
    assert_int_equal(mch_basic_words(t, strlen(t), collect, &stop, &err), 42);
    assert_string_equal(stop.joined, "hello|,");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_matches_hf_on_every_fixture_case),
        cmocka_unit_test(test_tokenizer_matches_hf_on_all_ascii_punctuation),
        cmocka_unit_test(test_vocab_special_ids_are_bert_base_uncased),
        cmocka_unit_test(test_vocab_refuses_empty_file),
        cmocka_unit_test(test_vocab_refuses_missing_cls),
        cmocka_unit_test(test_vocab_refuses_duplicate_with_both_lines),
        cmocka_unit_test(test_vocab_refuses_invalid_utf8_with_line),
        cmocka_unit_test(test_vocab_reads_crlf_and_unterminated_last_line),
        cmocka_unit_test(test_vocab_open_names_the_path),
        cmocka_unit_test(test_invalid_utf8_text_is_refused_with_offset),
        cmocka_unit_test(test_word_over_100_characters_is_unk),
        cmocka_unit_test(test_special_tokens_split_out_with_exact_case),
        cmocka_unit_test(test_pair_cuts_query_then_document),
        cmocka_unit_test(test_single_cuts_text_to_max_len),
        cmocka_unit_test(test_basic_words_lowercase_strip_and_split),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
