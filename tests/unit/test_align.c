/* Given pairs (kernels/text/align.h): the alignment of hand-made id lists (append, prepend,
 * insert, delete, replace of either length, ties, more than one span, --max-span), and whole
 * pairs on a WordPiece vocabulary (bert-base-uncased) and a byte-level BPE (tests/data/tokenizers/
 * bpe-roberta) whose expected tokens, token types and roles are written by hand and turned into
 * ids by vocabulary lookup only (never by the tokenizer under test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "align.h"
#include "testutil.h"

/* ---- mch_align_docs on id lists ----------------------------------------------------------- */

typedef struct {
    int32_t a[16], b[16];
    int na, nb;
    int max_span;
    int ok;
    mch_align_kind kind;
    int position, n_baseline, n_perturbed;
    int32_t want_a[16], want_b[16];
    int n;
    const char *why; /* a piece of the reason when !ok */
} align_case;

#define F 0 /* the filler id of these cases */

static const align_case cases[] = {
    /* append: the baseline padded at its end */
    {{1, 2, 3},
     {1, 2, 3, 7, 8},
     3,
     5,
     0,
     1,
     MCH_ALIGN_APPEND,
     3,
     0,
     2,
     {1, 2, 3, F, F},
     {1, 2, 3, 7, 8},
     5,
     NULL},
    /* prepend: at its start */
    {{1, 2, 3},
     {7, 1, 2, 3},
     3,
     4,
     0,
     1,
     MCH_ALIGN_PREPEND,
     0,
     0,
     1,
     {F, 1, 2, 3},
     {7, 1, 2, 3},
     4,
     NULL},
    /* insert: where the perturbed document has more */
    {{1, 2, 3},
     {1, 7, 8, 2, 3},
     3,
     5,
     0,
     1,
     MCH_ALIGN_INSERT,
     1,
     0,
     2,
     {1, F, F, 2, 3},
     {1, 7, 8, 2, 3},
     5,
     NULL},
    /* delete: the perturbed side padded */
    {{1, 2, 3, 4},
     {1, 4},
     4,
     2,
     0,
     1,
     MCH_ALIGN_DELETE,
     1,
     2,
     0,
     {1, 2, 3, 4},
     {1, F, F, 4},
     4,
     NULL},
    /* replace by a longer span: the baseline's span padded after itself (MechIR's replace) */
    {{1, 2, 3},
     {1, 7, 8, 3},
     3,
     4,
     0,
     1,
     MCH_ALIGN_REPLACE,
     1,
     1,
     2,
     {1, 2, F, 3},
     {1, 7, 8, 3},
     4,
     NULL},
    /* replace by a shorter span */
    {{1, 2, 5, 3},
     {1, 7, 3},
     4,
     3,
     0,
     1,
     MCH_ALIGN_REPLACE,
     1,
     2,
     1,
     {1, 2, 5, 3},
     {1, 7, F, 3},
     4,
     NULL},
    /* equal lengths need no filler, even where a token is kept between changes */
    {{1, 2, 3, 4},
     {1, 7, 3, 8},
     4,
     4,
     0,
     1,
     MCH_ALIGN_REPLACE,
     1,
     3,
     3,
     {1, 2, 3, 4},
     {1, 7, 3, 8},
     4,
     NULL},
    /* a tie (the added token repeats its neighbours): the common prefix is taken first */
    {{5, 5}, {5, 5, 5}, 2, 3, 0, 1, MCH_ALIGN_APPEND, 2, 0, 1, {5, 5, F}, {5, 5, 5}, 3, NULL},
    /* the same tokens */
    {{1, 2}, {1, 2}, 2, 2, 0, 1, MCH_ALIGN_SAME, 2, 0, 0, {1, 2}, {1, 2}, 2, NULL},
    /* two changes of different lengths around a kept token (3): no single filler run aligns them */
    {{1, 2, 3, 4}, {1, 7, 3, 8, 9}, 4, 5, 0, 0, 0, 0, 0, 0, {0}, {0}, 0, "more than one span"},
    /* more than --max-span */
    {{1}, {1, 2, 3, 4}, 1, 4, 2, 0, 0, 0, 0, 0, {0}, {0}, 0, "more than --max-span 2"},
    /* at --max-span exactly */
    {{1}, {1, 2, 3}, 1, 3, 2, 1, MCH_ALIGN_APPEND, 1, 0, 2, {1, F, F}, {1, 2, 3}, 3, NULL},
};

static void test_alignment_of_hand_made_id_lists(void **s)
{
    (void)s;
    int checked = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const align_case *c = &cases[i];
        int32_t oa[32], ob[32];
        int n = -1;
        mch_alignment al;
        char why[160] = "";
        int ok = mch_align_docs(c->a, c->na, c->b, c->nb, F, c->max_span, oa, ob, &n, &al, why,
                                sizeof why);
        if (ok != c->ok) fail_msg("case %zu: ok %d, want %d (%s)", i, ok, c->ok, why);
        if (!ok) {
            if (!strstr(why, c->why)) fail_msg("case %zu: reason '%s' lacks '%s'", i, why, c->why);
            checked++;
            continue;
        }
        assert_int_equal(al.kind, c->kind);
        assert_int_equal(al.position, c->position);
        assert_int_equal(al.n_baseline, c->n_baseline);
        assert_int_equal(al.n_perturbed, c->n_perturbed);
        assert_int_equal(n, c->n);
        assert_memory_equal(oa, c->want_a, (size_t)n * sizeof *oa);
        assert_memory_equal(ob, c->want_b, (size_t)n * sizeof *ob);
        checked++;
    }
    assert_int_equal(checked, (int)(sizeof cases / sizeof cases[0]));
    assert_string_equal(mch_align_name(MCH_ALIGN_PREPEND), "prepend");
    assert_string_equal(mch_align_name(MCH_ALIGN_DELETE), "delete");
}

/* ---- whole pairs ---------------------------------------------------------------------------- */

static mch_tok *wordpiece, *bpe;

static int setup(void **s)
{
    (void)s;
    mch_err err = {0};
    if (mch_tok_open_vocab_txt(&wordpiece, MCH_TEST_DATA "/tokenizer/bert-base-uncased-vocab.txt",
                               NULL, &err))
        return -1;
    return mch_tok_open(&bpe, MCH_TEST_DATA "/tokenizers/bpe-roberta", &err);
}

static int teardown(void **s)
{
    (void)s;
    mch_tok_free(wordpiece);
    mch_tok_free(bpe);
    return 0;
}

/* ids of space-separated token strings, by vocabulary lookup */
static int lookup_all(const mch_tok *t, const char *toks, int32_t *out)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", toks);
    int n = 0;
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        out[n] = mch_tok_lookup(t, w, strlen(w));
        if (out[n] < 0) fail_msg("token '%s' is not in the vocabulary", w);
        n++;
    }
    return n;
}

/* roles written as letters: c cls, s sep, Q query_term, q query_other, I injected, D doc_term,
 * M doc_match, o doc_other */
static void roles_of(const char *letters, uint8_t *out)
{
    static const char map[] = "csQqIDMo";
    for (size_t i = 0; letters[i]; i++) out[i] = (uint8_t)(strchr(map, letters[i]) - map);
}

typedef struct {
    const char *query, *baseline, *perturbed;
    int max_len, bi;
    const char *want_b, *want_p; /* tokens; NULL: skipped with reason containing skip */
    const char *types;           /* '0'/'1' per token */
    const char *roles;
    mch_align_kind kind;
    int position, n_baseline, n_perturbed;
    const char *term, *skip;
    const char *want_q; /* bi-encoder query tokens */
} pair_case;

static void check_pairs(const mch_tok *t, const pair_case *pc, size_t n_cases)
{
    int checked = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const pair_case *c = &pc[i];
        mch_perturb_opts o = {.max_len = c->max_len, .bi = c->bi};
        mch_given *g = NULL;
        mch_err err = {0};
        assert_int_equal(mch_given_create(&g, t, &o, 0, &err), MCH_OK);
        mch_pair pr;
        mch_alignment al;
        assert_int_equal(mch_given_build(g, "q1", c->query, "d1", NULL, c->baseline, c->perturbed,
                                         &pr, &al, &err),
                         MCH_OK);
        if (!c->want_b) {
            if (!strstr(pr.skip, c->skip))
                fail_msg("case %zu: skip '%s' lacks '%s'", i, pr.skip, c->skip);
            mch_given_free(g);
            checked++;
            continue;
        }
        if (pr.skip[0]) fail_msg("case %zu skipped: %s", i, pr.skip);
        int32_t wb[256], wp[256], wt[256], wq[256];
        uint8_t wr[256];
        int T = lookup_all(t, c->want_b, wb);
        assert_int_equal(lookup_all(t, c->want_p, wp), T);
        for (int k = 0; k < T; k++) wt[k] = c->types[k] - '0';
        roles_of(c->roles, wr);
        assert_int_equal((int)strlen(c->types), T);
        assert_int_equal((int)strlen(c->roles), T);
        assert_int_equal(pr.T, T);
        assert_memory_equal(pr.ids_baseline, wb, (size_t)T * 4);
        assert_memory_equal(pr.ids_perturbed, wp, (size_t)T * 4);
        assert_memory_equal(pr.token_types, wt, (size_t)T * 4);
        for (int k = 0; k < T; k++)
            if (pr.roles[k] != wr[k])
                fail_msg("case %zu token %d: role %s, want %s", i, k, mch_role_name(pr.roles[k]),
                         mch_role_name(wr[k]));
        assert_int_equal(al.kind, c->kind);
        assert_int_equal(al.position, c->position);
        assert_int_equal(al.n_baseline, c->n_baseline);
        assert_int_equal(al.n_perturbed, c->n_perturbed);
        assert_string_equal(pr.term, c->term);
        assert_true(pr.pair_id == mch_pair_id("q1", "d1"));
        if (c->bi) {
            int Tq = lookup_all(t, c->want_q, wq);
            assert_int_equal(pr.Tq, Tq);
            assert_memory_equal(pr.query_ids, wq, (size_t)Tq * 4);
        }
        mch_given_free(g);
        checked++;
    }
    assert_int_equal(checked, (int)n_cases);
}

static const pair_case wordpiece_cases[] = {
    /* append of the query: fillers at the end; the span's words "red apple" make the query's run
     * query_term; the document's "apple" alone is a query term (doc_match), "a" a stopword */
    {"red apple", "an apple a day", "an apple a day red apple", 64, 0,
     "[CLS] red apple [SEP] an apple a day a a [SEP]",
     "[CLS] red apple [SEP] an apple a day red apple [SEP]", "00001111111", "cQQsoMooIIs",
     MCH_ALIGN_APPEND, 4, 0, 2, "red apple", NULL, NULL},
    /* prepend of one query term: the document's "apple" is an occurrence (doc_term) */
    {"red apple", "an apple a day", "apple an apple a day", 64, 0,
     "[CLS] red apple [SEP] a an apple a day [SEP]",
     "[CLS] red apple [SEP] apple an apple a day [SEP]", "0000111111", "cqQsIoDoos",
     MCH_ALIGN_PREPEND, 0, 0, 1, "apple", NULL, NULL},
    /* a word replaced by three: the baseline's word and two fillers; multi-wordpiece word */
    {"cat toys", "the cat sat", "the unaffable dog sat", 64, 0,
     "[CLS] cat toys [SEP] the cat a a a sat [SEP]",
     "[CLS] cat toys [SEP] the una ##ffa ##ble dog sat [SEP]", "00001111111", "cqqsoIIIIos",
     MCH_ALIGN_REPLACE, 1, 1, 4, "unaffable dog", NULL, NULL},
    /* deletion: the perturbed side padded */
    {"red apple", "an apple pie a day", "an apple a day", 64, 0,
     "[CLS] red apple [SEP] an apple pie a day [SEP]",
     "[CLS] red apple [SEP] an apple a a day [SEP]", "0000111111", "cqqsoMIoos", MCH_ALIGN_DELETE,
     2, 1, 0, "pie", NULL, NULL},
    /* a bi-encoder: [CLS] doc' [SEP], the query encoded apart */
    {"red apple", "an apple a day", "an apple a day red", 64, 1, "[CLS] an apple a day a [SEP]",
     "[CLS] an apple a day red [SEP]", "0000000", "coMooIs", MCH_ALIGN_APPEND, 4, 0, 1, "red", NULL,
     "[CLS] red apple [SEP]"},
    /* a long document cut by max_len 12 keeps the prepended span (room 12 - 3 - 2 = 7) */
    {"red apple", "one two three four five six seven eight",
     "red one two three four five six "
     "seven eight",
     12, 0, "[CLS] red apple [SEP] a one two three four five six [SEP]",
     "[CLS] red apple [SEP] red one two three four five six [SEP]", "000011111111", "cQqsIoooooos",
     MCH_ALIGN_PREPEND, 0, 0, 1, "red", NULL, NULL},
    /* ... but an appended span beyond the window is skipped */
    {"red apple", "one two three four five six seven eight",
     "one two three four five six seven eight red", 12, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL,
     "beyond the 7 the max_len 12 window holds", NULL},
    /* ... also when the span would start right at the window's end (7 + 1 > 7) */
    {"red apple", "one two three four five six seven", "one two three four five six seven red", 12,
     0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL,
     "document tokens 7..7, beyond the 7 the max_len 12 window holds", NULL},
    /* the same tokens */
    {"red apple", "an apple", "An  apple", 64, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL,
     "have the same tokens", NULL},
    /* the filler is what the documents differ by */
    {"red apple", "an apple a day", "an apple day", 64, 0, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL,
     "the filler 'a' is what the documents differ by", NULL},
    /* more than one span */
    {"red apple", "the cat sat on the mat", "the dog sat on a the mat now", 64, 0, NULL, NULL, NULL,
     NULL, 0, 0, 0, 0, NULL, "more than one span", NULL},
};

static void test_wordpiece_pairs_match_hand_written_tokens_types_and_roles(void **s)
{
    (void)s;
    check_pairs(wordpiece, wordpiece_cases, sizeof wordpiece_cases / sizeof wordpiece_cases[0]);
}

/* RoBERTa's layout <s> q </s></s> d </s>, all types 0; the filler "a" reads " a" (Ġa). */
static const pair_case bpe_cases[] = {
    {"This package", "This package provides the shared library.",
     "This package provides the shared library. Python tools", 64, 0,
     "<s> This Ġpackage </s> </s> This Ġpackage Ġprovides Ġthe Ġshared Ġlibrary . Ġa Ġa </s>",
     "<s> This Ġpackage </s> </s> This Ġpackage Ġprovides Ġthe Ġshared Ġlibrary . ĠPython Ġtools "
     "</s>",
     "000000000000000", "cqqssoMoooooIIs", MCH_ALIGN_APPEND, 7, 0, 2, "python tools", NULL, NULL},
    {"This package", "This package provides the shared library.",
     "This package provides the Python development library.", 64, 0,
     "<s> This Ġpackage </s> </s> This Ġpackage Ġprovides Ġthe Ġshared Ġa Ġlibrary . </s>",
     "<s> This Ġpackage </s> </s> This Ġpackage Ġprovides Ġthe ĠPython Ġdevelopment Ġlibrary . "
     "</s>",
     "00000000000000", "cqqssoMooIIoos", MCH_ALIGN_REPLACE, 4, 1, 2, "python development", NULL,
     NULL},
};

static void test_bpe_pairs_match_hand_written_tokens_and_roles(void **s)
{
    (void)s;
    check_pairs(bpe, bpe_cases, sizeof bpe_cases / sizeof bpe_cases[0]);
}

static void test_pair_key_tells_pairs_of_one_document_apart(void **s)
{
    (void)s;
    mch_perturb_opts o = {.max_len = 64};
    mch_given *g = NULL;
    mch_err err = {0};
    assert_int_equal(mch_given_create(&g, wordpiece, &o, 0, &err), MCH_OK);
    mch_pair pr;
    mch_alignment al;
    assert_int_equal(
        mch_given_build(g, "q1", "red", "d1", "k2", "an apple", "an apple red", &pr, &al, &err),
        MCH_OK);
    assert_true(pr.pair_id == mch_pair_id("q1", "d1\x1fk2"));
    assert_true(pr.pair_id != mch_pair_id("q1", "d1"));
    mch_given_free(g);
    /* a MonoT5 layout is refused */
    o.monot5 = 1;
    assert_int_equal(mch_given_create(&g, wordpiece, &o, 0, &err), MCH_ERR_UNSUPPORTED);
    assert_null(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_of_hand_made_id_lists),
        cmocka_unit_test(test_wordpiece_pairs_match_hand_written_tokens_types_and_roles),
        cmocka_unit_test(test_bpe_pairs_match_hand_written_tokens_and_roles),
        cmocka_unit_test(test_pair_key_tells_pairs_of_one_document_apart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
