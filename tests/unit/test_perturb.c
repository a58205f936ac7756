/* Perturbations: the fixture pairs' exact ids reproduced from their texts (cross-encoder and
 * bi-encoder), pair ids, shard-independent seeds, query terms, tfc1/tdc/lnc1/inject choices,
 * positions, token roles (every position written by hand: query and document occurrences of
 * the injected term, multi-wordpiece and two-word terms, lnc1, stemming, truncation), skips,
 * the df file, and replace/tfc2/lnc2 pairs written by hand (WordPiece) or as the tokens of
 * hand-written texts (BPE, Unigram). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "perturb.h"
#include "testutil.h"

static mch_tok *vocab;

static int setup(void **s)
{
    (void)s;
    mch_err err = {0};
    return mch_tok_open_vocab_txt(&vocab, MCH_TEST_DATA "/tokenizer/bert-base-uncased-vocab.txt",
                                  NULL, &err);
}

static int teardown(void **s)
{
    (void)s;
    mch_tok_free(vocab);
    return 0;
}

static int ids_of(const cJSON *c, const char *key, int32_t *out)
{
    double tmp[1024];
    long n = tu_flatten(cJSON_GetObjectItem(c, key), tmp, 1024);
    for (long i = 0; i < n; i++) out[i] = (int32_t)tmp[i];
    return (int)n;
}

static void reproduce(const char *fixture, int bi)
{
    cJSON *g = tu_read_json(fixture);
    assert_non_null(g);
    const cJSON *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
    {
        const char *pos = cJSON_GetObjectItem(c, "position")->valuestring;
        mch_perturb_opts o = {0};
        o.kind = MCH_PERTURB_INJECT;
        o.pos = !strcmp(pos, "start") ? MCH_POS_START : MCH_POS_END;
        o.filler = cJSON_GetObjectItem(c, "filler")->valuestring;
        o.max_len = cJSON_GetObjectItem(c, "max_len")->valueint;
        o.bi = bi;
        mch_perturber *p = NULL;
        mch_err err = {0};
        assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
        mch_pair pr;
        assert_int_equal(mch_perturb(p, "q", cJSON_GetObjectItem(c, "query")->valuestring, "d",
                                     cJSON_GetObjectItem(c, "doc")->valuestring,
                                     cJSON_GetObjectItem(c, "term")->valuestring, &pr, &err),
                         MCH_OK);
        assert_string_equal(pr.skip, "");
        int32_t want_b[1024], want_p[1024], want_t[1024], want_q[1024];
        int T = ids_of(c, "ids_baseline", want_b);
        assert_int_equal(ids_of(c, "ids_perturbed", want_p), T);
        assert_int_equal(ids_of(c, "token_types", want_t), T);
        assert_int_equal(pr.T, T);
        assert_memory_equal(pr.ids_baseline, want_b, (size_t)T * 4);
        assert_memory_equal(pr.ids_perturbed, want_p, (size_t)T * 4);
        assert_memory_equal(pr.token_types, want_t, (size_t)T * 4);
        if (bi) {
            int Tq = ids_of(c, "query_ids", want_q);
            assert_int_equal(pr.Tq, Tq);
            assert_memory_equal(pr.query_ids, want_q, (size_t)Tq * 4);
        }
        /* Differences exactly at the injected positions, all marked injected. */
        int diff = 0;
        for (int t = 0; t < T; t++) {
            if (pr.ids_baseline[t] != pr.ids_perturbed[t]) {
                assert_int_equal(pr.roles[t], MCH_ROLE_INJECTED);
                diff++;
            }
        }
        assert_true(diff > 0 && diff <= pr.n_term);
        mch_perturber_free(p);
        checked++;
    }
    assert_true(checked > 0);
    cJSON_Delete(g);
}

static void test_demo_fixture_ids_are_reproduced(void **s)
{
    (void)s;
    reproduce(MCH_TEST_DATA "/patching/demo-tfc1.json", 0);
}

static void test_biencoder_fixture_ids_are_reproduced(void **s)
{
    (void)s;
    reproduce(MCH_TEST_DATA "/patching/distilbert-dot-tfc1.json", 1);
}

static void test_pair_id_is_fnv1a_of_qid_and_docno(void **s)
{
    (void)s;
    /* Expected values computed with an independent Python FNV-1a 64. */
    assert_true(mch_pair_id("q1", "doc-1") == 0x7dd760c179b55352ULL);
    assert_true(mch_pair_id("0ad", "0ad") == 0x0b848617c5b7b596ULL);
    assert_true(mch_pair_id("q", "1d") != mch_pair_id("q1", "d"));
}

static mch_perturber *make(mch_perturb_kind kind, const mch_df *df, int stem, uint64_t seed)
{
    mch_perturb_opts o = {0};
    o.kind = kind;
    o.max_len = 64;
    o.seed = seed;
    o.df = df;
    o.stem = stem;
    mch_perturber *p = NULL;
    mch_err err = {0};
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    return p;
}

static void test_query_terms_drop_stopwords_short_words_and_punctuation(void **s)
{
    (void)s;
    mch_perturber *p = make(MCH_PERTURB_TFC1, NULL, 0, 1);
    char buf[256];
    mch_err err = {0};
    int n =
        mch_query_terms(p, "The cat is on a Mat, (cat) -- Café OK [SEP]", buf, sizeof buf, &err);
    assert_int_equal(n, 3);
    assert_string_equal(buf, "cat");
    assert_string_equal(buf + 4, "mat");
    assert_string_equal(buf + 8, "cafe");
    mch_perturber_free(p);
}

static void test_a_shard_picks_the_same_terms_as_the_whole(void **s)
{
    (void)s;
    const char *q[6] = {"fast lossless compression library",
                        "open source web browser engine",
                        "tools for digital photography workflow",
                        "music player daemon client",
                        "documentation for the python requests library",
                        "network packet capture analyzer"};
    char whole[6][128], shard[6][128];
    mch_perturber *p = make(MCH_PERTURB_TFC1, NULL, 0, 42);
    mch_pair pr;
    mch_err err = {0};
    for (int i = 0; i < 6; i++) {
        char qid[8], dn[8];
        snprintf(qid, sizeof qid, "q%d", i);
        snprintf(dn, sizeof dn, "d%d", i);
        assert_int_equal(mch_perturb(p, qid, q[i], dn, "some document text", NULL, &pr, &err),
                         MCH_OK);
        snprintf(whole[i], sizeof whole[i], "%s", pr.term);
    }
    mch_perturber_free(p);
    /* A shard: the odd records only, in reverse order, in a fresh perturber. */
    p = make(MCH_PERTURB_TFC1, NULL, 0, 42);
    for (int i = 5; i >= 1; i -= 2) {
        char qid[8], dn[8];
        snprintf(qid, sizeof qid, "q%d", i);
        snprintf(dn, sizeof dn, "d%d", i);
        assert_int_equal(mch_perturb(p, qid, q[i], dn, "some document text", NULL, &pr, &err),
                         MCH_OK);
        snprintf(shard[i], sizeof shard[i], "%s", pr.term);
        assert_string_equal(shard[i], whole[i]);
    }
    mch_perturber_free(p);
    /* Another job seed picks differently somewhere (6 queries of 3-4 terms). */
    p = make(MCH_PERTURB_TFC1, NULL, 0, 43);
    int differ = 0;
    for (int i = 0; i < 6; i++) {
        char qid[8], dn[8];
        snprintf(qid, sizeof qid, "q%d", i);
        snprintf(dn, sizeof dn, "d%d", i);
        assert_int_equal(mch_perturb(p, qid, q[i], dn, "some document text", NULL, &pr, &err),
                         MCH_OK);
        differ += strcmp(pr.term, whole[i]) != 0;
    }
    assert_true(differ > 0);
    mch_perturber_free(p);
}

/* One expected position: the perturbed input's wordpiece and the role, both written by hand
 * from the vocabulary (bert-base-uncased) and the rule in perturb.h. */
typedef struct {
    const char *tok, *role;
} want_pos;

/* Builds the pair of (query, doc, term) and asserts every position's wordpiece and role, and
 * that the two inputs differ exactly at the injected positions, where the baseline holds the
 * filler: one role array serves both inputs. */
static void expect_roles(mch_perturber *p, const char *query, const char *doc, const char *term,
                         const want_pos *want, int n)
{
    mch_pair pr;
    mch_err err = {0};
    assert_int_equal(mch_perturb(p, "q", query, "d", doc, term, &pr, &err), MCH_OK);
    assert_string_equal(pr.skip, "");
    int32_t filler = mch_tok_lookup(vocab, "a", 1);
    for (int t = 0; t < n && t < pr.T; t++) {
        const char *tok = mch_tok_token(vocab, pr.ids_perturbed[t]);
        const char *role = mch_role_name(pr.roles[t]);
        if (strcmp(tok, want[t].tok) || strcmp(role, want[t].role))
            fail_msg("position %d: got %s/%s, want %s/%s (query '%s', doc '%s')", t, tok, role,
                     want[t].tok, want[t].role, query, doc);
        int injected = !strcmp(want[t].role, "injected");
        assert_int_equal(pr.ids_baseline[t] != pr.ids_perturbed[t], injected);
        if (injected) assert_int_equal(pr.ids_baseline[t], filler);
    }
    assert_int_equal(pr.T, n);
}

#define EXPECT_ROLES(p, q, d, term, ...)                                                           \
    do {                                                                                           \
        const want_pos w_[] = {__VA_ARGS__};                                                       \
        expect_roles(p, q, d, term, w_, (int)(sizeof w_ / sizeof w_[0]));                          \
    } while (0)

static void test_role_names_are_the_eight_of_chen_et_al_in_order(void **s)
{
    (void)s;
    const char *want[] = {"cls",      "sep",      "query_term", "query_other",
                          "injected", "doc_term", "doc_match",  "doc_other"};
    assert_int_equal(MCH_ROLE_COUNT, 8);
    for (int r = 0; r < 8; r++) assert_string_equal(mch_role_name((mch_role)r), want[r]);
    assert_string_equal(mch_role_name(MCH_ROLE_COUNT), "?");
}

static void test_roles_follow_whole_words(void **s)
{
    (void)s;
    mch_perturber *p = make(MCH_PERTURB_INJECT, NULL, 0, 1);
    /* "zstd" matches as a whole word of three pieces; "faster" is not "fast"; the injected
     * "the" is no query word, so no query_term and no doc_term. */
    EXPECT_ROLES(p, "fast zstd compression", "Zstd is fast, faster compression", "the",
                 {"[CLS]", "cls"}, {"fast", "query_other"}, {"z", "query_other"},
                 {"##st", "query_other"}, {"##d", "query_other"}, {"compression", "query_other"},
                 {"[SEP]", "sep"}, {"z", "doc_match"}, {"##st", "doc_match"}, {"##d", "doc_match"},
                 {"is", "doc_other"}, {"fast", "doc_match"}, {",", "doc_other"},
                 {"faster", "doc_other"}, {"compression", "doc_match"}, {"the", "injected"},
                 {"[SEP]", "sep"});
    /* A word the vocabulary cannot spell is one [UNK] piece and spells no word: injecting the
     * snowman marks no occurrence, neither of itself nor of the (also [UNK]) snowman emoji. */
    EXPECT_ROLES(p, "zstd \xe2\x98\x83", "zstd \xe2\x98\x83 tool \xe2\x9b\x84", "\xe2\x98\x83",
                 {"[CLS]", "cls"}, {"z", "query_other"}, {"##st", "query_other"},
                 {"##d", "query_other"}, {"[UNK]", "query_other"}, {"[SEP]", "sep"},
                 {"z", "doc_match"}, {"##st", "doc_match"}, {"##d", "doc_match"},
                 {"[UNK]", "doc_other"}, {"tool", "doc_other"}, {"[UNK]", "doc_other"},
                 {"[UNK]", "injected"}, {"[SEP]", "sep"});
    /* Without stemming "runs" is not "running"; with it, it is. */
    EXPECT_ROLES(p, "running", "he runs", "x", {"[CLS]", "cls"}, {"running", "query_other"},
                 {"[SEP]", "sep"}, {"he", "doc_other"}, {"runs", "doc_other"}, {"x", "injected"},
                 {"[SEP]", "sep"});
    mch_perturber_free(p);
    p = make(MCH_PERTURB_INJECT, NULL, 1, 1);
    EXPECT_ROLES(p, "running", "he runs", "x", {"[CLS]", "cls"}, {"running", "query_other"},
                 {"[SEP]", "sep"}, {"he", "doc_other"}, {"runs", "doc_match"}, {"x", "injected"},
                 {"[SEP]", "sep"});
    mch_perturber_free(p);
}

static void test_injected_query_term_splits_query_and_document_roles(void **s)
{
    (void)s;
    mch_perturber *p = make(MCH_PERTURB_INJECT, NULL, 0, 1);
    /* Two query terms; the injected one also occurs in the document. */
    EXPECT_ROLES(p, "fast compression", "compression is fast", "compression", {"[CLS]", "cls"},
                 {"fast", "query_other"}, {"compression", "query_term"}, {"[SEP]", "sep"},
                 {"compression", "doc_term"}, {"is", "doc_other"}, {"fast", "doc_match"},
                 {"compression", "injected"}, {"[SEP]", "sep"});
    /* The same record injecting the other term swaps the roles of the two words. */
    EXPECT_ROLES(p, "fast compression", "compression is fast", "fast", {"[CLS]", "cls"},
                 {"fast", "query_term"}, {"compression", "query_other"}, {"[SEP]", "sep"},
                 {"compression", "doc_match"}, {"is", "doc_other"}, {"fast", "doc_term"},
                 {"fast", "injected"}, {"[SEP]", "sep"});
    /* The term role goes by spelling, not by query-term status: an injected stopword is
     * query_term where the query holds it, and never doc_match. */
    EXPECT_ROLES(p, "the cat", "the dog", "the", {"[CLS]", "cls"}, {"the", "query_term"},
                 {"cat", "query_other"}, {"[SEP]", "sep"}, {"the", "doc_term"},
                 {"dog", "doc_other"}, {"the", "injected"}, {"[SEP]", "sep"});
    mch_perturber_free(p);
}

static void test_multi_wordpiece_term_matches_only_as_a_whole_word(void **s)
{
    (void)s;
    mch_perturber *p = make(MCH_PERTURB_INJECT, NULL, 0, 1);
    /* zstd = z ##st ##d: every piece of a word spelling "zstd" is the term, whatever its case
     * or the punctuation around it; "zst" (a prefix) and "zstdx" (a longer word) are not. */
    EXPECT_ROLES(p, "zstd compression", "Zstd and zstd-like zst tools: zstdx, ZSTD", "zstd",
                 {"[CLS]", "cls"}, {"z", "query_term"}, {"##st", "query_term"},
                 {"##d", "query_term"}, {"compression", "query_other"}, {"[SEP]", "sep"},
                 {"z", "doc_term"}, {"##st", "doc_term"}, {"##d", "doc_term"}, {"and", "doc_other"},
                 {"z", "doc_term"}, {"##st", "doc_term"}, {"##d", "doc_term"}, {"-", "doc_other"},
                 {"like", "doc_other"}, {"z", "doc_other"}, {"##st", "doc_other"},
                 {"tools", "doc_other"}, {":", "doc_other"}, {"z", "doc_other"},
                 {"##st", "doc_other"}, {"##d", "doc_other"}, {"##x", "doc_other"},
                 {",", "doc_other"}, {"z", "doc_term"}, {"##st", "doc_term"}, {"##d", "doc_term"},
                 {"z", "injected"}, {"##st", "injected"}, {"##d", "injected"}, {"[SEP]", "sep"});
    /* A term of two words is one occurrence only where both follow each other in order; the
     * words alone elsewhere are query-term matches. */
    EXPECT_ROLES(p, "zstd compression", "zstd compression and compression zstd", "zstd compression",
                 {"[CLS]", "cls"}, {"z", "query_term"}, {"##st", "query_term"},
                 {"##d", "query_term"}, {"compression", "query_term"}, {"[SEP]", "sep"},
                 {"z", "doc_term"}, {"##st", "doc_term"}, {"##d", "doc_term"},
                 {"compression", "doc_term"}, {"and", "doc_other"}, {"compression", "doc_match"},
                 {"z", "doc_match"}, {"##st", "doc_match"}, {"##d", "doc_match"}, {"z", "injected"},
                 {"##st", "injected"}, {"##d", "injected"}, {"compression", "injected"},
                 {"[SEP]", "sep"});
    mch_perturber_free(p);
    /* Injected inside a word (position 1 of z ##st ##d): the document's words are those before
     * injection, so the three pieces around the inserted ones stay the term. */
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_INJECT;
    o.pos = MCH_POS_INDEX;
    o.pos_index = 1;
    o.max_len = 64;
    mch_err err = {0};
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    EXPECT_ROLES(p, "zstd", "zstd tool", "zstd", {"[CLS]", "cls"}, {"z", "query_term"},
                 {"##st", "query_term"}, {"##d", "query_term"}, {"[SEP]", "sep"}, {"z", "doc_term"},
                 {"z", "injected"}, {"##st", "injected"}, {"##d", "injected"}, {"##st", "doc_term"},
                 {"##d", "doc_term"}, {"tool", "doc_other"}, {"[SEP]", "sep"});
    mch_perturber_free(p);
}

static void test_query_term_twice_in_the_query_and_stemmed_forms(void **s)
{
    (void)s;
    /* tfc1 on a query with one term ("for", "a", "of" are stopwords or short): both
     * occurrences of "library" are the term; "libraries" is another query term. */
    mch_perturber *p = make(MCH_PERTURB_TFC1, NULL, 0, 1);
    EXPECT_ROLES(p, "library for a library of libraries", "libraries and library", NULL,
                 {"[CLS]", "cls"}, {"library", "query_term"}, {"for", "query_other"},
                 {"a", "query_other"}, {"library", "query_term"}, {"of", "query_other"},
                 {"libraries", "query_other"}, {"[SEP]", "sep"}, {"libraries", "doc_match"},
                 {"and", "doc_other"}, {"library", "doc_term"}, {"library", "injected"},
                 {"[SEP]", "sep"});
    mch_perturber_free(p);
    /* With stemming "libraries" and "library" share the stem "librari": both are the term. */
    p = make(MCH_PERTURB_INJECT, NULL, 1, 1);
    EXPECT_ROLES(p, "library for a library of libraries", "libraries and library", "library",
                 {"[CLS]", "cls"}, {"library", "query_term"}, {"for", "query_other"},
                 {"a", "query_other"}, {"library", "query_term"}, {"of", "query_other"},
                 {"libraries", "query_term"}, {"[SEP]", "sep"}, {"libraries", "doc_term"},
                 {"and", "doc_other"}, {"library", "doc_term"}, {"library", "injected"},
                 {"[SEP]", "sep"});
    mch_perturber_free(p);
}

static void test_lnc1_non_query_word_has_no_query_term_but_document_occurrences(void **s)
{
    (void)s;
    mch_df *df = mch_df_create();
    mch_err err = {0};
    /* Only "zebra" has df >= 2 outside the query ("quagga" has df 1). */
    const char *docs[] = {"tool zebra", "zebra library", "quagga compression"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(mch_df_add_doc(df, docs[i], strlen(docs[i]), &err), MCH_OK);
    mch_perturber *p = make(MCH_PERTURB_LNC1, df, 0, 3);
    EXPECT_ROLES(p, "tool library compression", "Zebra tool, zebra library", NULL, {"[CLS]", "cls"},
                 {"tool", "query_other"}, {"library", "query_other"},
                 {"compression", "query_other"}, {"[SEP]", "sep"}, {"zebra", "doc_term"},
                 {"tool", "doc_match"}, {",", "doc_other"}, {"zebra", "doc_term"},
                 {"library", "doc_match"}, {"zebra", "injected"}, {"[SEP]", "sep"});
    mch_perturber_free(p);
    mch_df_free(df);
}

static void test_roles_at_truncation_judge_the_pieces_inside_the_window(void **s)
{
    (void)s;
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_INJECT;
    o.pos = MCH_POS_END;
    o.max_len = 17; /* 1 + 4 query + 1 + 7 document + 3 term + 1 */
    mch_perturber *p = NULL;
    mch_err err = {0};
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    /* The document is cut after the "z" of its second "zstd": that lone piece is no term. */
    EXPECT_ROLES(p, "zstd compression", "the zstd tool uses zstd compression", "zstd",
                 {"[CLS]", "cls"}, {"z", "query_term"}, {"##st", "query_term"},
                 {"##d", "query_term"}, {"compression", "query_other"}, {"[SEP]", "sep"},
                 {"the", "doc_other"}, {"z", "doc_term"}, {"##st", "doc_term"}, {"##d", "doc_term"},
                 {"tool", "doc_other"}, {"uses", "doc_other"}, {"z", "doc_other"},
                 {"z", "injected"}, {"##st", "injected"}, {"##d", "injected"}, {"[SEP]", "sep"});
    mch_perturber_free(p);
    /* The query cut to two pieces: "z ##st" spells "zst", not the term. */
    o.max_len = 64;
    o.max_query_len = 2;
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    EXPECT_ROLES(p, "zstd compression", "zstd", "zstd", {"[CLS]", "cls"}, {"z", "query_other"},
                 {"##st", "query_other"}, {"[SEP]", "sep"}, {"z", "doc_term"}, {"##st", "doc_term"},
                 {"##d", "doc_term"}, {"z", "injected"}, {"##st", "injected"}, {"##d", "injected"},
                 {"[SEP]", "sep"});
    mch_perturber_free(p);
    /* Bi-encoder: the pair is the document side only. */
    o.max_query_len = 0;
    o.bi = 1;
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    EXPECT_ROLES(p, "zstd compression", "zstd compression tool", "zstd", {"[CLS]", "cls"},
                 {"z", "doc_term"}, {"##st", "doc_term"}, {"##d", "doc_term"},
                 {"compression", "doc_match"}, {"tool", "doc_other"}, {"z", "injected"},
                 {"##st", "injected"}, {"##d", "injected"}, {"[SEP]", "sep"});
    mch_perturber_free(p);
}

static void test_tdc_picks_the_rarest_query_term_and_lnc1_a_non_query_word(void **s)
{
    (void)s;
    mch_df *df = mch_df_create();
    mch_err err = {0};
    const char *docs[] = {"compression library tool", "compression tool",  "library tool",
                          "tool zebra zebra",         "zebra compression", "quagga quagga tool"};
    for (int i = 0; i < 6; i++)
        assert_int_equal(mch_df_add_doc(df, docs[i], strlen(docs[i]), &err), MCH_OK);
    assert_int_equal(mch_df_docs(df), 6);
    assert_int_equal(mch_df_get(df, "tool", 4), 5);
    assert_int_equal(mch_df_get(df, "zebra", 5), 2); /* counted once per document */
    mch_perturber *p = make(MCH_PERTURB_TDC, df, 0, 1);
    mch_pair pr;
    assert_int_equal(mch_perturb(p, "q", "tool library compression", "d", "text", NULL, &pr, &err),
                     MCH_OK);
    assert_string_equal(pr.term, "library"); /* df 2 < compression 3 < tool 5; tie: first */
    mch_perturber_free(p);
    p = make(MCH_PERTURB_LNC1, df, 0, 7);
    int seen_zebra = 0;
    for (int i = 0; i < 20; i++) {
        char qid[8];
        snprintf(qid, sizeof qid, "q%d", i);
        assert_int_equal(
            mch_perturb(p, qid, "tool library compression", "d", "text", NULL, &pr, &err), MCH_OK);
        /* Only zebra (df 2) qualifies: quagga has df 1, the rest are query terms. */
        assert_string_equal(pr.term, "zebra");
        seen_zebra++;
    }
    assert_int_equal(seen_zebra, 20);
    mch_perturber_free(p);
    /* Round trip through the df file. */
    char dir[] = "/tmp/mch-df-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/df.tsv", dir);
    assert_int_equal(mch_df_save(df, path, &err), MCH_OK);
    mch_df *df2 = mch_df_create();
    assert_int_equal(mch_df_load(df2, path, 0, &err), MCH_OK);
    assert_int_equal(mch_df_docs(df2), 6);
    assert_int_equal(mch_df_get(df2, "zebra", 5), 2);
    assert_int_equal(mch_df_get(df2, "tool", 4), 5);
    FILE *f = fopen(path, "w");
    fputs("#N\t6\nzebra\tmany\n", f);
    fclose(f);
    mch_df *df3 = mch_df_create();
    mch_err e3 = {0};
    assert_int_equal(mch_df_load(df3, path, 0, &e3), MCH_ERR_FORMAT);
    assert_non_null(strstr(e3.msg, ":2:"));
    unlink(path);
    rmdir(dir);
    mch_df_free(df3);
    mch_df_free(df2);
    mch_df_free(df);
}

/* Writes text to path, then extra zero bytes (a hole: no disk space, no newline). */
static void write_sparse(const char *path, const char *text, off_t extra)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    if (extra) assert_int_equal(truncate(path, (off_t)strlen(text) + extra), 0);
}

/* --df and --stopwords read lines under the same bound as the input readers: a line of the
 * default 64 MiB + 1 bytes (no newline, as /dev/zero gives) is an error naming FILE:LINE, not a
 * buffer grown without limit; a line of exactly the bound (plus "\r\n") is read; a read error
 * is reported. */
static void test_df_and_stopwords_lines_are_bounded(void **s)
{
    (void)s;
    char dir[4096], path[4200], want[4300];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "mch_perturb_lines"), 0);
    snprintf(path, sizeof path, "%s/words.txt", dir);
    mch_err err = {0};
    mch_strmap *m = NULL;
    write_sparse(path, "the\n", (off_t)MCH_LINE_BYTES_DEFAULT + 1);
    assert_int_equal(mch_stopwords_load(&m, path, 0, &err), MCH_ERR_FORMAT);
    assert_null(m);
    snprintf(want, sizeof want, "%s:2: line longer than 67108864 bytes (--max-line-bytes)", path);
    assert_string_equal(err.msg, want);
    mch_df *df = mch_df_create();
    assert_non_null(df);
    mch_err e2 = {0};
    write_sparse(path, "#N\t6\nab\t1\n", (off_t)MCH_LINE_BYTES_DEFAULT + 1);
    assert_int_equal(mch_df_load(df, path, 0, &e2), MCH_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:3: line longer than 67108864 bytes (--max-line-bytes)", path);
    assert_string_equal(e2.msg, want);
    /* A smaller bound: 8 bytes pass (with "\r\n" after them), 9 do not. */
    mch_err e3 = {0};
    write_sparse(path, "#N\t6\r\nabcd\t123\r\nabcd\t1234\n", 0);
    assert_int_equal(mch_df_load(df, path, 8, &e3), MCH_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:3: line longer than 8 bytes (--max-line-bytes)", path);
    assert_string_equal(e3.msg, want);
    assert_int_equal(mch_df_get(df, "abcd", 4), 123);
    /* A NUL byte in a term (found by fuzz_df: mch_df_save wrote such a table back cut at the
     * NUL, as a line it refuses) is an error naming the line. */
    mch_err e7 = {0};
    static const char nul_term[] = "#N\t3\r\n\0z\0bra\t2\r\n";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(nul_term, 1, sizeof nul_term - 1, f), sizeof nul_term - 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(mch_df_load(df, path, 0, &e7), MCH_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:2: a NUL byte", path);
    assert_string_equal(e7.msg, want);
    mch_err e4 = {0};
    write_sparse(path, "# words\r\nabcdefgh\r\n\nabcdefghi", 0);
    assert_int_equal(mch_stopwords_load(&m, path, 8, &e4), MCH_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:4: line longer than 8 bytes (--max-line-bytes)", path);
    assert_string_equal(e4.msg, want);
    write_sparse(path, "# words\r\nabcdefgh\r\n\nabcdefg", 0);
    assert_int_equal(mch_stopwords_load(&m, path, 8, &e4), MCH_OK);
    assert_non_null(mch_strmap_get(m, "abcdefgh", 8));
    assert_non_null(mch_strmap_get(m, "abcdefg", 7));
    assert_int_equal(mch_strmap_size(m), 2);
    mch_strmap_free(m);
    /* A read error (a directory opens, then fails to read) is one, not an empty list. */
    mch_strmap *m2 = NULL;
    mch_err e5 = {0}, e6 = {0};
    assert_int_equal(mch_stopwords_load(&m2, dir, 0, &e5), MCH_ERR_IO);
    assert_null(m2);
    assert_non_null(strstr(e5.msg, "read error"));
    assert_int_equal(mch_df_load(df, dir, 0, &e6), MCH_ERR_IO);
    mch_df_free(df);
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

static void test_positions_and_skips(void **s)
{
    (void)s;
    mch_err err = {0};
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_INJECT;
    o.pos = MCH_POS_INDEX;
    o.pos_index = 1;
    o.max_len = 12;
    mch_perturber *p = NULL;
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    mch_pair pr;
    /* [CLS] cat [SEP] one [x] two three ... [SEP]: the term goes after one document token. */
    assert_int_equal(mch_perturb(p, "q", "cat", "d", "one two three four five six seven eight",
                                 "dog", &pr, &err),
                     MCH_OK);
    assert_int_equal(pr.T, 12);
    assert_int_equal(pr.position, 1);
    assert_int_equal(pr.roles[4], MCH_ROLE_INJECTED);
    assert_int_equal(pr.ids_baseline[4], mch_tok_lookup(vocab, "a", 1));
    assert_int_equal(pr.ids_perturbed[4], mch_tok_lookup(vocab, "dog", 3));
    /* An index beyond the document is clamped to its end. */
    mch_perturber_free(p);
    o.pos_index = 50;
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    assert_int_equal(mch_perturb(p, "q", "cat", "d", "one two", "dog", &pr, &err), MCH_OK);
    assert_int_equal(pr.position, 2);
    /* Skips: no term; a term without wordpieces; no room. */
    assert_int_equal(mch_perturb(p, "q", "cat", "d", "one two", NULL, &pr, &err), MCH_OK);
    assert_non_null(strstr(pr.skip, "no term"));
    assert_int_equal(mch_perturb(p, "q", "cat", "d", "one two", "\xe2\x80\x8b", &pr, &err), MCH_OK);
    assert_non_null(strstr(pr.skip, "no tokens"));
    assert_int_equal(mch_perturb(p, "q", "cat dog cow pig hen ram ewe", "d", "one",
                                 "supercalifragilistic", &pr, &err),
                     MCH_OK);
    assert_non_null(strstr(pr.skip, "do not fit"));
    mch_perturber_free(p);
    /* tfc1 without a query term is skipped; a filler of two wordpieces is refused. */
    p = make(MCH_PERTURB_TFC1, NULL, 0, 1);
    assert_int_equal(mch_perturb(p, "q", "it is a", "d", "text", NULL, &pr, &err), MCH_OK);
    assert_non_null(strstr(pr.skip, "no query term"));
    mch_perturber_free(p);
    o.kind = MCH_PERTURB_INJECT;
    o.filler = "zstandard";
    mch_err e2 = {0};
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &e2), MCH_ERR_ARG);
    assert_non_null(strstr(e2.msg, "filler"));
    o.filler = NULL;
    o.kind = MCH_PERTURB_TDC;
    mch_err e3 = {0};
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &e3), MCH_ERR_ARG);
}

/* ---- other tokenizers: the pair's layout and word roles -------------------------------------
 * Expectations come from the text, not from the perturber: the test decodes the tokens itself
 * (ASCII text only: byte-level "Ġ" and Metaspace "▁" stand for a space, WordPiece "##" glues),
 * finds each token's word in the document by its offset, and expects doc_match exactly for the
 * tokens of words that are query terms (case-insensitively), doc_other for the rest. */

static int is_alnum_ascii(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The lowercase word of text around offset at (a maximal run of letters and digits). */
static void word_at(const char *text, size_t at, char *out, size_t cap)
{
    size_t b = at, e = at, n = 0;
    while (b > 0 && is_alnum_ascii(text[b - 1])) b--;
    while (is_alnum_ascii(text[e])) e++;
    for (size_t i = b; i < e && n + 1 < cap; i++) {
        char c = text[i];
        out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[n] = 0;
}

typedef struct {
    const char *dir, *space_mark; /* "Ġ", "▁" or NULL (WordPiece "##") */
    int n_lead;                   /* specials before the query: 1 (<s>, [CLS]) or 0 (T5) */
    int n_mid;                    /* specials between query and document */
    const char *filler_token;     /* the filler's token string */
} tok_case;

static void check_layout_and_roles(const tok_case *tc)
{
    char dir[512];
    snprintf(dir, sizeof dir, MCH_TEST_DATA "/tokenizers/%s", tc->dir);
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, dir, &err), MCH_OK);
    const char *query = "fast compression library";
    const char *doc = "Zstandard is a fast compression algorithm. Compression is fast, and it "
                      "compresses well";
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_INJECT;
    o.pos = MCH_POS_END;
    o.max_len = 128;
    mch_perturber *p = NULL;
    assert_int_equal(mch_perturber_create(&p, t, &o, &err), MCH_OK);
    mch_pair pr;
    assert_int_equal(mch_perturb(p, "q", query, "d", doc, "library", &pr, &err), MCH_OK);
    assert_string_equal(pr.skip, "");
    int T = pr.T, checked = 0, matches = 0;
    /* lead specials, the query, mid specials, the document, the injected term, one special */
    int q0 = tc->n_lead, qn = 0;
    while (pr.roles[q0 + qn] == MCH_ROLE_QUERY_OTHER || pr.roles[q0 + qn] == MCH_ROLE_QUERY_TERM)
        qn++;
    assert_true(qn >= 3);
    for (int i = 0; i < tc->n_lead; i++) assert_int_equal(pr.roles[i], MCH_ROLE_CLS);
    for (int i = 0; i < tc->n_mid; i++) assert_int_equal(pr.roles[q0 + qn + i], MCH_ROLE_SEP);
    assert_int_equal(pr.roles[T - 1], MCH_ROLE_SEP);
    int d0 = q0 + qn + tc->n_mid, d1 = T - 1 - pr.n_term;
    assert_int_equal(d1 - d0, pr.position);
    /* the injected tokens spell " library"; the baseline holds the filler there */
    char spelled[256] = "";
    for (int i = d1; i < T - 1; i++) {
        assert_int_equal(pr.roles[i], MCH_ROLE_INJECTED);
        assert_string_equal(mch_tok_token(t, pr.ids_baseline[i]), tc->filler_token);
        strcat(spelled, mch_tok_token(t, pr.ids_perturbed[i]));
    }
    char want[64];
    snprintf(want, sizeof want, "%slibrary", tc->space_mark ? tc->space_mark : "");
    assert_string_equal(spelled, want);
    /* the query's "library" tokens are query_term, the others query_other */
    size_t qoff = 0;
    for (int i = q0; i < q0 + qn; i++) {
        const char *tok = mch_tok_token(t, pr.ids_baseline[i]);
        size_t ml = tc->space_mark ? strlen(tc->space_mark) : 0;
        if (ml && !strncmp(tok, tc->space_mark, ml)) tok += ml, qoff++;
        if (!ml && !strncmp(tok, "##", 2))
            tok += 2;
        else if (!ml && i > q0)
            qoff++;
        while (query[qoff] == ' ') qoff++;
        char w[64];
        word_at(query, qoff, w, sizeof w);
        assert_int_equal(pr.roles[i],
                         strcmp(w, "library") ? MCH_ROLE_QUERY_OTHER : MCH_ROLE_QUERY_TERM);
        qoff += strlen(tok);
    }
    /* document tokens: walk the text by the decoded tokens */
    size_t off = 0;
    for (int i = d0; i < d1; i++, checked++) {
        const char *tok = mch_tok_token(t, pr.ids_baseline[i]);
        assert_int_equal(pr.ids_baseline[i], pr.ids_perturbed[i]);
        size_t ml = tc->space_mark ? strlen(tc->space_mark) : 0;
        if (ml && !strncmp(tok, tc->space_mark, ml)) tok += ml;
        if (!ml && !strncmp(tok, "##", 2)) tok += 2;
        while (doc[off] == ' ') off++;
        assert_memory_equal(doc + off, tok, strlen(tok));
        char w[64];
        word_at(doc, off, w, sizeof w);
        int match = is_alnum_ascii(doc[off]) &&
                    (!strcmp(w, "fast") || !strcmp(w, "compression") || !strcmp(w, "library"));
        matches += match;
        assert_int_equal(pr.roles[i], match ? MCH_ROLE_DOC_MATCH : MCH_ROLE_DOC_OTHER);
        off += strlen(tok);
    }
    assert_int_equal(off, strlen(doc));
    assert_true(checked > 10 && matches >= 4);
    printf("%s: %d document tokens checked, %d of query-term words\n", tc->dir, checked, matches);
    mch_perturber_free(p);
    mch_tok_free(t);
}

static void test_bpe_roberta_layout_and_roles(void **s)
{
    (void)s;
    tok_case tc = {"bpe-roberta", "\xc4\xa0", 1, 2,
                   "\xc4\xa0"
                   "a"};
    check_layout_and_roles(&tc);
}

static void test_unigram_t5_layout_and_roles(void **s)
{
    (void)s;
    tok_case tc = {"unigram-t5", "\xe2\x96\x81", 0, 1,
                   "\xe2\x96\x81"
                   "a"};
    check_layout_and_roles(&tc);
}

static void test_wordpiece_cased_layout_and_roles(void **s)
{
    (void)s;
    tok_case tc = {"wordpiece-cased", NULL, 1, 1, "a"};
    check_layout_and_roles(&tc);
}

/* MonoT5: the pair is the prompt "Query: q Document: d Relevant:" </s>. The perturbed and baseline
 * ids must be exactly the prompt of the document with " library" / " a" appended, as
 * mch_tok_encode_monot5 makes it (checked against the MonoT5 goldens by cli_monot5); the prompt's
 * own tokens are sep, the injected ones injected, and doc_match falls on the 5 tokens of the
 * words fast, compression, Compression, fast ("▁" "Compression" is two). */
static void test_monot5_prompt_layout_and_roles(void **s)
{
    (void)s;
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, MCH_TEST_DATA "/models/monot5-tiny", &err), MCH_OK);
    const char *query = "fast compression library";
    const char *doc =
        "Zstandard is a fast compression algorithm. Compression is fast, and it compresses well";
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_INJECT;
    o.pos = MCH_POS_END;
    o.max_len = 128;
    o.monot5 = 1;
    mch_perturber *p = NULL;
    assert_int_equal(mch_perturber_create(&p, t, &o, &err), MCH_OK);
    mch_pair pr;
    assert_int_equal(mch_perturb(p, "q", query, "d", doc, "library", &pr, &err), MCH_OK);
    assert_string_equal(pr.skip, "");
    char text[256];
    const char *add[2] = {" a", " library"};
    const int32_t *got[2] = {pr.ids_baseline, pr.ids_perturbed};
    for (int k = 0; k < 2; k++) {
        mch_tok_enc e = {0};
        snprintf(text, sizeof text, "%s%s", doc, add[k]);
        assert_int_equal(mch_tok_encode_monot5(t, query, text, 128, &e, &err), MCH_OK);
        assert_int_equal((int)e.n, pr.T);
        assert_memory_equal(e.ids, got[k], e.n * sizeof *e.ids);
        mch_tok_enc_free(&e);
    }
    int n_sep = 0, n_match = 0, n_inj = 0, n_qterm = 0;
    for (int i = 0; i < pr.T; i++) {
        const char *tok = mch_tok_token(t, pr.ids_baseline[i]);
        n_sep += pr.roles[i] == MCH_ROLE_SEP;
        n_match += pr.roles[i] == MCH_ROLE_DOC_MATCH;
        n_inj += pr.roles[i] == MCH_ROLE_INJECTED;
        if (pr.roles[i] == MCH_ROLE_QUERY_TERM) {
            n_qterm++;
            assert_string_equal(tok, "\xe2\x96\x81library");
        }
        assert_int_equal(pr.token_types[i], 0);
        assert_int_not_equal(pr.roles[i], MCH_ROLE_CLS);
    }
    assert_int_equal(n_match, 5);
    assert_int_equal(n_inj, pr.n_term);
    assert_int_equal(n_qterm, 1);
    assert_int_equal(pr.roles[pr.T - 1], MCH_ROLE_SEP); /* </s> */
    /* "Query:", "Document:", "Relevant:" and </s> */
    mch_ids fr = {0};
    assert_int_equal(mch_tok_tokenize(t, "Query: Document: Relevant:", 26, &fr, &err), MCH_OK);
    assert_int_equal(n_sep, (int)fr.n + 1);
    mch_ids_free(&fr);
    /* A document cut to fit keeps the prompt's end: "Relevant:" </s> stay last. */
    mch_perturber_free(p);
    o.max_len = 24;
    assert_int_equal(mch_perturber_create(&p, t, &o, &err), MCH_OK);
    assert_int_equal(mch_perturb(p, "q", query, "d", doc, "library", &pr, &err), MCH_OK);
    assert_int_equal(pr.T, 24);
    assert_int_equal(pr.roles[pr.T - 1], MCH_ROLE_SEP);
    assert_string_equal(mch_tok_token(t, pr.ids_perturbed[pr.T - 1]), "</s>");
    mch_perturber_free(p);
    mch_tok_free(t);
}

/* ---- replace, tfc2, lnc2 (docs/PERTURBATIONS.md) -------------------------------------------
 * Every expected token and role is written by hand from the text and the bert-base-uncased
 * vocabulary: "Zstandard is a real-time compression algorithm." is z ##stand ##ard is a real -
 * time compression algorithm . (document tokens 0..10); "what is a library" has the one query
 * term library; "zstd" is z ##st ##d. A token list is space-separated; "|" splits the query from
 * the document, as [SEP] does. */

static const char *const zdoc = "Zstandard is a real-time compression algorithm.";

/* Checks one input of a pair against a space-separated token list (looked up in the vocab). */
static void expect_tokens(const int32_t *ids, int T, const char *toks)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", toks);
    int n = 0;
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        assert_true(n < T);
        int32_t id = mch_tok_lookup(vocab, w, strlen(w));
        assert_true(id >= 0);
        if (ids[n] != id) fail_msg("token %d: got id %d, want '%s' (%d)", n, ids[n], w, id);
        n++;
    }
    assert_int_equal(n, T);
}

/* Checks the roles against space-separated short names: c s qt qo i dt dm do. */
static void expect_role_list(const mch_pair *pr, const char *roles)
{
    static const char *const shortn[MCH_ROLE_COUNT] = {"c", "s", "qt", "qo", "i", "dt", "dm", "do"};
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", roles);
    int n = 0, last = -1;
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        int rep = 1;
        if (w[0] == 'x') { /* "do x9": the role before, nine times in all */
            assert_true(n > 0);
            rep = atoi(w + 1) - 1;
        } else {
            last = -1;
            for (int k = 0; k < MCH_ROLE_COUNT; k++)
                if (!strcmp(w, shortn[k])) last = k;
            assert_true(last >= 0);
        }
        int r = last;
        for (int k = 0; k < rep; k++, n++) {
            assert_true(n < pr->T);
            if (pr->roles[n] != r)
                fail_msg("position %d: role %s, want %s", n, mch_role_name(pr->roles[n]),
                         mch_role_name((mch_role)r));
        }
    }
    assert_int_equal(n, pr->T);
}

/* A built pair against its hand-written baseline and perturbed tokens, roles, position and
 * n_term. */
static void expect_pair(const mch_pair *pr, const char *base, const char *pert, const char *roles,
                        int position, int n_term)
{
    expect_tokens(pr->ids_baseline, pr->T, base);
    expect_tokens(pr->ids_perturbed, pr->T, pert);
    expect_role_list(pr, roles);
    assert_int_equal(pr->position, position);
    assert_int_equal(pr->n_term, n_term);
}

static mch_perturber *make_at(mch_perturb_kind kind, mch_pos_kind pos, int index, int max_len)
{
    mch_perturb_opts o = {0};
    o.kind = kind;
    o.pos = pos;
    o.pos_index = index;
    o.max_len = max_len;
    o.seed = 1;
    mch_perturber *p = NULL;
    mch_err err = {0};
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_OK);
    return p;
}

static void perturb_ok(mch_perturber *p, const char *query, const char *doc, mch_pair *pr)
{
    mch_err err = {0};
    assert_int_equal(mch_perturb(p, "q", query, "d", doc, NULL, pr, &err), MCH_OK);
    assert_string_equal(pr->skip, "");
}

/* One pair built from scratch (a fresh perturber of kind at pos/index with max_len) against its
 * hand-written tokens, roles, position and n_term. */
typedef struct {
    mch_perturb_kind kind;
    mch_pos_kind pos;
    int index, max_len;
    const char *query, *doc, *base, *pert, *roles;
    int position, n_term;
} built_case;

static void expect_built(const built_case *c)
{
    mch_pair pr;
    mch_perturber *p = make_at(c->kind, c->pos, c->index, c->max_len);
    perturb_ok(p, c->query, c->doc, &pr);
    expect_pair(&pr, c->base, c->pert, c->roles, c->position, c->n_term);
    mch_perturber_free(p);
}

static void test_replace_swaps_one_content_word_for_the_query_term(void **s)
{
    (void)s;
    const built_case cases[] = {
        /* end (default): the last replaceable word, "algorithm" (not "." nor a stopword) */
        {MCH_PERTURB_REPLACE, MCH_POS_END, 0, 64, "what is a library", zdoc,
         "[CLS] what is a library [SEP] z ##stand ##ard is a real - time compression algorithm . "
         "[SEP]",
         "[CLS] what is a library [SEP] z ##stand ##ard is a real - time compression library . "
         "[SEP]",
         "c qo qo qo qt s do x9 i do s", 9, 1},
        /* a term of three wordpieces for a word of one: the baseline pads with two fillers */
        {MCH_PERTURB_REPLACE, MCH_POS_END, 0, 64, "zstd", zdoc,
         "[CLS] z ##st ##d [SEP] z ##stand ##ard is a real - time compression algorithm a a . "
         "[SEP]",
         "[CLS] z ##st ##d [SEP] z ##stand ##ard is a real - time compression z ##st ##d . [SEP]",
         "c qt x3 s do x9 i x3 do s", 9, 3},
        /* start: the first word, zstandard's three pieces against the term and two fillers */
        {MCH_PERTURB_REPLACE, MCH_POS_START, 0, 64, "what is a library", zdoc,
         "[CLS] what is a library [SEP] z ##stand ##ard is a real - time compression algorithm . "
         "[SEP]",
         "[CLS] what is a library [SEP] library a a is a real - time compression algorithm . [SEP]",
         "c qo qo qo qt s i x3 do x8 s", 0, 3},
        /* a word cut by the window is not replaced: "compression by z ##stand | ##ard" in 11
         * tokens keeps "z ##stand" and replaces "compression" ("by" is a stopword) */
        {MCH_PERTURB_REPLACE, MCH_POS_END, 0, 11, "what is a library", "compression by zstandard",
         "[CLS] what is a library [SEP] compression by z ##stand [SEP]",
         "[CLS] what is a library [SEP] library by z ##stand [SEP]", "c qo qo qo qt s i do x3 s", 0,
         1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_built(&cases[i]);
    mch_pair pr;
    mch_perturber *p = make_at(MCH_PERTURB_REPLACE, MCH_POS_END, 0, 64);
    perturb_ok(p, "what is a library", zdoc, &pr);
    assert_string_equal(pr.term, "library");
    /* a query term is never replaced: "compression" (either pick) stays, "algorithm" goes */
    perturb_ok(p, "what is a compression library",
               "Zstandard is a real-time algorithm for compression.", &pr);
    assert_int_equal(pr.position, 8);
    /* [CLS] what is a compression library [SEP]: the document from token 7 */
    assert_int_equal(pr.ids_baseline[7 + 8], mch_tok_lookup(vocab, "algorithm", 9));
    assert_int_equal(pr.ids_perturbed[7 + 8], mch_tok_lookup(vocab, pr.term, strlen(pr.term)));
    assert_int_equal(pr.roles[7 + 10],
                     !strcmp(pr.term, "compression") ? MCH_ROLE_DOC_TERM : MCH_ROLE_DOC_MATCH);
    /* no replaceable word: stopwords, short words, punctuation and query terms only */
    mch_err err = {0};
    assert_int_equal(
        mch_perturb(p, "q", "what is a library", "d", "It is on the... library!", NULL, &pr, &err),
        MCH_OK);
    assert_non_null(strstr(pr.skip, "no document word to replace"));
    mch_perturber_free(p);
    /* an index: the first replaceable word from that document token on, else the last before */
    const int at[4][2] = {{5, 5}, {6, 7}, {9, 9}, {11, 9}};
    for (int k = 0; k < 4; k++) {
        p = make_at(MCH_PERTURB_REPLACE, MCH_POS_INDEX, at[k][0], 64);
        perturb_ok(p, "what is a library", zdoc, &pr);
        assert_int_equal(pr.position, at[k][1]);
        assert_int_equal(pr.ids_perturbed[6 + at[k][1]], mch_tok_lookup(vocab, "library", 7));
        mch_perturber_free(p);
    }
}

static void test_tfc2_adds_the_term_to_both_and_a_second_time_to_the_perturbed(void **s)
{
    (void)s;
    const built_case cases[] = {
        /* the first added occurrence is in both: a document occurrence of the term */
        {MCH_PERTURB_TFC2, MCH_POS_END, 0, 64, "what is a library", zdoc,
         "[CLS] what is a library [SEP] z ##stand ##ard is a real - time compression algorithm . "
         "library a [SEP]",
         "[CLS] what is a library [SEP] z ##stand ##ard is a real - time compression algorithm . "
         "library library [SEP]",
         "c qo qo qo qt s do x11 dt i s", 11, 1},
        {MCH_PERTURB_TFC2, MCH_POS_END, 0, 64, "zstd", zdoc,
         "[CLS] z ##st ##d [SEP] z ##stand ##ard is a real - time compression algorithm . z ##st "
         "##d a a a [SEP]",
         "[CLS] z ##st ##d [SEP] z ##stand ##ard is a real - time compression algorithm . z ##st "
         "##d z ##st ##d [SEP]",
         "c qt x3 s do x11 dt x3 i x3 s", 11, 3},
        {MCH_PERTURB_TFC2, MCH_POS_START, 0, 64, "what is a library", zdoc,
         "[CLS] what is a library [SEP] library a z ##stand ##ard is a real - time compression "
         "algorithm . [SEP]",
         "[CLS] what is a library [SEP] library library z ##stand ##ard is a real - time "
         "compression algorithm . [SEP]",
         "c qo qo qo qt s dt i do x11 s", 0, 1},
        /* a window that leaves the document 12 - 4 - 3 - 2 = 3 tokens */
        {MCH_PERTURB_TFC2, MCH_POS_END, 0, 12, "what is a library", zdoc,
         "[CLS] what is a library [SEP] z ##stand ##ard library a [SEP]",
         "[CLS] what is a library [SEP] z ##stand ##ard library library [SEP]",
         "c qo qo qo qt s do x3 dt i s", 3, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_built(&cases[i]);
    /* tfc1, tfc2 and replace pick the same term for the same pair and seed */
    mch_perturber *t1 = make(MCH_PERTURB_TFC1, NULL, 0, 5),
                  *t2 = make(MCH_PERTURB_TFC2, NULL, 0, 5),
                  *rp = make(MCH_PERTURB_REPLACE, NULL, 0, 5);
    char first[128] = "";
    int distinct = 0;
    mch_err err = {0};
    for (int i = 0; i < 24; i++) {
        char qid[16];
        snprintf(qid, sizeof qid, "q%d", i);
        mch_pair a, c, r;
        const char *query = "fast lossless compression library";
        assert_int_equal(mch_perturb(t1, qid, query, "d", zdoc, NULL, &a, &err), MCH_OK);
        assert_int_equal(mch_perturb(t2, qid, query, "d", zdoc, NULL, &c, &err), MCH_OK);
        assert_int_equal(mch_perturb(rp, qid, query, "d", zdoc, NULL, &r, &err), MCH_OK);
        assert_string_equal(a.term, c.term);
        assert_string_equal(a.term, r.term);
        if (!i) snprintf(first, sizeof first, "%s", a.term);
        distinct += strcmp(first, a.term) != 0;
    }
    assert_true(distinct > 0);
    mch_perturber_free(t1);
    mch_perturber_free(t2);
    mch_perturber_free(rp);
}

static void test_lnc2_repeats_the_document_as_often_as_max_len_holds(void **s)
{
    (void)s;
    mch_pair pr;
    /* 32 tokens: [CLS] what is a library [SEP] ... [SEP] leave 25; "z ##st ##d is fast ." is 6,
     * so 4 copies (24 tokens), the baseline's 18 fillers after the one. */
    mch_perturber *p = make_at(MCH_PERTURB_LNC2, MCH_POS_END, 0, 32);
    perturb_ok(p, "what is a library", "Zstd is fast.", &pr);
    /* no term: no query_term, no doc_term; the first copy keeps its roles */
    expect_pair(
        &pr,
        "[CLS] what is a library [SEP] z ##st ##d is fast . a a a a a a a a a a a a a a a "
        "a a a [SEP]",
        "[CLS] what is a library [SEP] z ##st ##d is fast . z ##st ##d is fast . z ##st ##d "
        "is fast . z ##st ##d is fast . [SEP]",
        "c qo x4 s do x6 i x18 s", 6, 18);
    assert_string_equal(pr.term, "");
    perturb_ok(p, "fast library", "Zstd is fast.", &pr);
    expect_role_list(&pr, "c qo qo s do x4 dm do i x18 s");
    mch_perturber_free(p);
    /* a longer document is cut to half the room: 16 - 4 - 3 = 9, 4 tokens, 2 copies */
    expect_built(&(built_case){MCH_PERTURB_LNC2, MCH_POS_END, 0, 16, "what is a library",
                               "Zstd is fast and small.",
                               "[CLS] what is a library [SEP] z ##st ##d is a a a a [SEP]",
                               "[CLS] what is a library [SEP] z ##st ##d is z ##st ##d is [SEP]",
                               "c qo x4 s do x4 i x4 s", 4, 4});
    /* 12 tokens leave 5: "z ##st ##d" cannot be there twice */
    p = make_at(MCH_PERTURB_LNC2, MCH_POS_END, 0, 12);
    mch_err err = {0};
    assert_int_equal(
        mch_perturb(p, "q", "what is a library", "d", "Zstd is fast.", NULL, &pr, &err), MCH_OK);
    assert_non_null(strstr(pr.skip, "no room for two copies"));
    mch_perturber_free(p);
    /* the copies follow the document: start or an index is refused */
    mch_perturb_opts o = {0};
    o.kind = MCH_PERTURB_LNC2;
    o.pos = MCH_POS_START;
    o.max_len = 32;
    assert_int_equal(mch_perturber_create(&p, vocab, &o, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "lnc2"));
}

static void test_perturbation_names_and_the_nearest_for_a_typo(void **s)
{
    (void)s;
    const char *names[] = {"tfc1", "tdc", "lnc1", "inject", "replace", "tfc2", "lnc2"};
    for (int i = 0; i < 7; i++) {
        mch_perturb_kind k;
        assert_true(mch_perturb_parse(names[i], &k));
        assert_string_equal(mch_perturb_name(k), names[i]);
        assert_non_null(strstr(mch_perturb_names(), names[i]));
        assert_int_equal(mch_perturb_axiom_sign(k), i == 2 ? -1 : 1);
    }
    mch_perturb_kind k;
    assert_false(mch_perturb_parse("TFC2", &k));
    assert_string_equal(mch_perturb_nearest("TFC2"), "tfc2");
    assert_string_equal(mch_perturb_nearest("lnc3"), "lnc1");
    assert_string_equal(mch_perturb_nearest("replce"), "replace");
    assert_string_equal(mch_perturb_nearest("repl"), "replace");
    assert_string_equal(mch_perturb_nearest("injection"), "inject");
    assert_null(mch_perturb_nearest("bm25"));
    assert_null(mch_perturb_nearest(""));
}

/* BPE and Unigram: the document part of each input (a bi-encoder's [CLS] d [SEP] layout, lead
 * specials before it and one after) must be the tokenizer's tokens of a text written by hand. */
static void check_doc(const mch_tok *t, const int32_t *ids, int T, int lead, const char *text)
{
    mch_ids want = {0};
    mch_err err = {0};
    assert_int_equal(mch_tok_tokenize(t, text, strlen(text), &want, &err), MCH_OK);
    if (T - lead - 1 != (int)want.n)
        fail_msg("'%s': %d tokens, want %zu", text, T - lead - 1, want.n);
    for (size_t i = 0; i < want.n; i++)
        if (ids[lead + i] != want.ids[i])
            fail_msg("'%s' token %zu: got '%s', want '%s'", text, i,
                     mch_tok_token(t, ids[lead + i]), mch_tok_token(t, want.ids[i]));
    mch_ids_free(&want);
}

static int n_word_tokens(const mch_tok *t, const char *w)
{
    mch_ids x = {0};
    mch_err err = {0};
    assert_int_equal(mch_tok_tokenize_word(t, w, strlen(w), &x, &err), MCH_OK);
    int n = (int)x.n;
    mch_ids_free(&x);
    return n;
}

static void check_new_kinds_on(const char *dir_name, int lead)
{
    char dir[512], b[512], q[512];
    snprintf(dir, sizeof dir, MCH_TEST_DATA "/tokenizers/%s", dir_name);
    mch_tok *t = NULL;
    mch_err err = {0};
    assert_int_equal(mch_tok_open(&t, dir, &err), MCH_OK);
    mch_perturb_opts o = {0};
    o.bi = 1;
    o.max_len = 48;
    o.seed = 1;
    mch_pair pr;
    mch_perturber *p = NULL;
    /* tfc2: "... algorithm. library a" against "... algorithm. library library" */
    o.kind = MCH_PERTURB_TFC2;
    assert_int_equal(mch_perturber_create(&p, t, &o, &err), MCH_OK);
    assert_int_equal(mch_perturb(p, "q", "what is a library", "d", zdoc, NULL, &pr, &err), MCH_OK);
    assert_string_equal(pr.skip, "");
    snprintf(b, sizeof b, "%s library a", zdoc);
    snprintf(q, sizeof q, "%s library library", zdoc);
    check_doc(t, pr.ids_baseline, pr.T, lead, b);
    check_doc(t, pr.ids_perturbed, pr.T, lead, q);
    mch_perturber_free(p);
    /* replace: "algorithm" and "library", the shorter padded with " a" (no "." after it: the
     * Unigram vocabulary has a piece "▁library.", so "library." would read as one token) */
    o.kind = MCH_PERTURB_REPLACE;
    assert_int_equal(mch_perturber_create(&p, t, &o, &err), MCH_OK);
    assert_int_equal(mch_perturb(p, "q", "what is a library", "d",
                                 "Zstandard is a real-time compression algorithm", NULL, &pr, &err),
                     MCH_OK);
    assert_string_equal(pr.skip, "");
    int m = n_word_tokens(t, "algorithm"), nt = n_word_tokens(t, "library");
    snprintf(b, sizeof b, "Zstandard is a real-time compression algorithm");
    snprintf(q, sizeof q, "Zstandard is a real-time compression library");
    for (int i = m; i < nt; i++) strcat(b, " a");
    for (int i = nt; i < m; i++) strcat(q, " a");
    check_doc(t, pr.ids_baseline, pr.T, lead, b);
    check_doc(t, pr.ids_perturbed, pr.T, lead, q);
    mch_perturber_free(p);
    /* lnc2: the document repeated with spaces, as many times as max_len holds (counted on the
     * tokens of the repeated text), the baseline padded with " a". "Archive" is one token
     * after a space but three at the start under the byte-level BPE: its copies differ. */
    o.kind = MCH_PERTURB_LNC2;
    assert_int_equal(mch_perturber_create(&p, t, &o, &err), MCH_OK);
    const char *docs[2] = {"Zstd is fast.", "Archive is fast."};
    for (int di = 0; di < 2; di++) {
        const char *d = docs[di];
        assert_int_equal(mch_perturb(p, "q", "what is a library", "d", d, NULL, &pr, &err), MCH_OK);
        assert_string_equal(pr.skip, "");
        int room = o.max_len - mch_tok_n_special(t, false), k = 1;
        for (;; k++) { /* k copies fit, k + 1 do not */
            mch_ids x = {0};
            snprintf(q, sizeof q, "%s", d);
            for (int c = 0; c < k; c++) strcat(strcat(q, " "), d);
            assert_int_equal(mch_tok_tokenize(t, q, strlen(q), &x, &err), MCH_OK);
            int fits = (int)x.n <= room;
            mch_ids_free(&x);
            if (!fits) break;
        }
        assert_true(k >= 3);
        snprintf(q, sizeof q, "%s", d);
        for (int c = 1; c < k; c++) strcat(strcat(q, " "), d);
        check_doc(t, pr.ids_perturbed, pr.T, lead, q);
        mch_ids one = {0};
        assert_int_equal(mch_tok_tokenize(t, d, strlen(d), &one, &err), MCH_OK);
        snprintf(b, sizeof b, "%s", d);
        for (int c = (int)one.n; c < pr.T - lead - 1; c++) strcat(b, " a");
        check_doc(t, pr.ids_baseline, pr.T, lead, b);
        assert_int_equal(pr.n_term, pr.T - lead - 1 - (int)one.n);
        assert_int_equal(pr.position, (int)one.n);
        printf("%s: lnc2 '%s': %d copies, %d tokens\n", dir_name, d, k, pr.T - lead - 1);
        mch_ids_free(&one);
    }
    mch_perturber_free(p);
    mch_tok_free(t);
}

static void test_new_kinds_under_bpe_and_unigram_read_as_their_texts(void **s)
{
    (void)s;
    check_new_kinds_on("bpe-roberta", 1);
    check_new_kinds_on("unigram-t5", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_fixture_ids_are_reproduced),
        cmocka_unit_test(test_biencoder_fixture_ids_are_reproduced),
        cmocka_unit_test(test_pair_id_is_fnv1a_of_qid_and_docno),
        cmocka_unit_test(test_query_terms_drop_stopwords_short_words_and_punctuation),
        cmocka_unit_test(test_a_shard_picks_the_same_terms_as_the_whole),
        cmocka_unit_test(test_role_names_are_the_eight_of_chen_et_al_in_order),
        cmocka_unit_test(test_roles_follow_whole_words),
        cmocka_unit_test(test_injected_query_term_splits_query_and_document_roles),
        cmocka_unit_test(test_multi_wordpiece_term_matches_only_as_a_whole_word),
        cmocka_unit_test(test_query_term_twice_in_the_query_and_stemmed_forms),
        cmocka_unit_test(test_lnc1_non_query_word_has_no_query_term_but_document_occurrences),
        cmocka_unit_test(test_roles_at_truncation_judge_the_pieces_inside_the_window),
        cmocka_unit_test(test_tdc_picks_the_rarest_query_term_and_lnc1_a_non_query_word),
        cmocka_unit_test(test_positions_and_skips),
        cmocka_unit_test(test_bpe_roberta_layout_and_roles),
        cmocka_unit_test(test_unigram_t5_layout_and_roles),
        cmocka_unit_test(test_wordpiece_cased_layout_and_roles),
        cmocka_unit_test(test_monot5_prompt_layout_and_roles),
        cmocka_unit_test(test_df_and_stopwords_lines_are_bounded),
        cmocka_unit_test(test_replace_swaps_one_content_word_for_the_query_term),
        cmocka_unit_test(test_tfc2_adds_the_term_to_both_and_a_second_time_to_the_perturbed),
        cmocka_unit_test(test_lnc2_repeats_the_document_as_often_as_max_len_holds),
        cmocka_unit_test(test_perturbation_names_and_the_nearest_for_a_typo),
        cmocka_unit_test(test_new_kinds_under_bpe_and_unigram_read_as_their_texts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
