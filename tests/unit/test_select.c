/* --select top-delta (coordinator/select.c) on scores journals written here: the largest signed
 * score changes, ties by pair id then index, K per grade with a group for pairs without one,
 * failed pairs left out, pairs scored twice counted once, and a journal that misses a pair
 * refused with the pair's index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "msg.h"
#include "select.h"

typedef struct {
    uint64_t index, pair_id;
    double base, pert;
    int relevance;
    int failed;
} scored;

/* Writes a scores journal of the records at path (the spec bytes are not read here). */
static void write_scores(const char *path, const scored *s, size_t n)
{
    mch_journal j;
    mch_err err = {0};
    const uint8_t spec[4] = {1, 2, 3, 4};
    unlink(path);
    assert_int_equal(mch_journal_create(&j, path, spec, sizeof spec, &err), MCH_OK);
    for (size_t i = 0; i < n; i++) {
        mch_pair_result r = {0};
        r.pair.index = s[i].index;
        r.pair.pair_id = s[i].pair_id;
        r.pair.relevance = s[i].relevance;
        r.pair.rank = -1;
        r.score_baseline = s[i].base;
        r.score_perturbed = s[i].pert;
        r.error = s[i].failed ? "ids outside the vocabulary" : NULL;
        uint8_t *buf;
        size_t len;
        assert_int_equal(mch_pair_result_pack(&r, &buf, &len, &err), MCH_OK);
        assert_int_equal(mch_journal_append(&j, r.pair.index, buf, len, &err), MCH_OK);
        free(buf);
    }
    assert_int_equal(mch_journal_sync(&j, &err), MCH_OK);
    mch_journal_close(&j);
}

static char path[64];
static const mch_job_spec spec = {.layers = 2, .heads = 2}; /* score records: no maps */

static int setup(void **s)
{
    (void)s;
    snprintf(path, sizeof path, "/tmp/mch_select_%ld.bin", (long)getpid());
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    unlink(path);
    return 0;
}

/* Deltas 0.5 (three times: pair ids 0x30, 0x10, 0x20 at indices 0, 1, 2), 0.75, -1, 0.25. */
static const scored ties[] = {
    {0, 0x30, 1.0, 1.5, -1, 0},  {1, 0x10, 2.0, 2.5, -1, 0}, {2, 0x20, 0.0, 0.5, -1, 0},
    {3, 0x05, 0.0, 0.75, -1, 0}, {4, 0x01, 1.0, 0.0, -1, 0}, {5, 0x02, 0.0, 0.25, -1, 0},
};

static void test_largest_signed_delta_ties_by_pair_id(void **s)
{
    (void)s;
    write_scores(path, ties, 6);
    mch_selection sel;
    mch_err err = {0};
    /* K 3: 0.75 (index 3), then of the three 0.5 the pair ids 0x10 (1) and 0x20 (2). */
    assert_int_equal(mch_select_top_delta(path, &spec, 6, 3, 0, &sel, &err), MCH_OK);
    assert_int_equal(sel.n, 3);
    assert_int_equal(sel.indices[0], 1);
    assert_int_equal(sel.indices[1], 2);
    assert_int_equal(sel.indices[2], 3);
    assert_int_equal(sel.pair_ids[0], 0x10);
    assert_int_equal(sel.n_groups, 1);
    assert_int_equal(sel.groups[0].grade, -1);
    assert_int_equal(sel.groups[0].scored, 6);
    assert_true(sel.groups[0].threshold == 0.5);
    mch_selection_deinit(&sel);
    /* K larger than the pairs: all of them, the negative change last (threshold -1). */
    assert_int_equal(mch_select_top_delta(path, &spec, 6, 100, 0, &sel, &err), MCH_OK);
    assert_int_equal(sel.n, 6);
    assert_true(sel.groups[0].threshold == -1.0);
    mch_selection_deinit(&sel);
}

static void test_k_per_grade_with_a_group_without_grade(void **s)
{
    (void)s;
    /* index 6 scored twice (a resume), index 7 failed. */
    const scored g[] = {
        {0, 0xa0, 0, 0.9, 2, 0},  {1, 0xa1, 0, 0.1, 0, 0},  {2, 0xa2, 0, 0.8, -1, 0},
        {3, 0xa3, 0, 0.7, 2, 0},  {4, 0xa4, 0, 0.6, 0, 0},  {5, 0xa5, 0, 0.2, 2, 0},
        {6, 0xa6, 0, 0.3, -1, 0}, {6, 0xa6, 0, 0.3, -1, 0}, {7, 0xa7, 0, 5.0, 0, 1},
    };
    write_scores(path, g, sizeof g / sizeof g[0]);
    mch_selection sel;
    mch_err err = {0};
    assert_int_equal(mch_select_top_delta(path, &spec, 8, 1, 1, &sel, &err), MCH_OK);
    assert_int_equal(sel.pairs_failed, 1);
    assert_int_equal(sel.n, 3); /* grade 0: index 4; grade 2: index 0; none: index 2 */
    assert_int_equal(sel.indices[0], 0);
    assert_int_equal(sel.indices[1], 2);
    assert_int_equal(sel.indices[2], 4);
    assert_int_equal(sel.n_groups, 3);
    assert_int_equal(sel.groups[0].grade, 0);
    assert_int_equal(sel.groups[0].scored, 2); /* the failed pair is not among them */
    assert_int_equal(sel.groups[1].grade, 2);
    assert_int_equal(sel.groups[1].scored, 3);
    assert_int_equal(sel.groups[2].grade, -1);
    assert_int_equal(sel.groups[2].scored, 2);
    char *json = mch_selection_json(&sel, 1);
    assert_non_null(json);
    assert_non_null(
        strstr(json, "{\"relevance\":null,\"scored\":2,\"selected\":1,\"threshold\":0."));
    assert_non_null(strstr(json, "\"pair_id\":\"00000000000000a2\",\"index\":2"));
    free(json);
    mch_selection_deinit(&sel);
    /* Without per grade: one group, the two largest of every grade. */
    assert_int_equal(mch_select_top_delta(path, &spec, 8, 2, 0, &sel, &err), MCH_OK);
    assert_int_equal(sel.n, 2);
    assert_int_equal(sel.indices[0], 0);
    assert_int_equal(sel.indices[1], 2);
    mch_selection_deinit(&sel);
}

static void test_missing_pairs_are_refused(void **s)
{
    (void)s;
    write_scores(path, ties, 6);
    mch_selection sel;
    mch_err err = {0};
    assert_int_equal(mch_select_top_delta(path, &spec, 7, 2, 0, &sel, &err), MCH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "6 pairs scored, 7 expected"));
    assert_null(sel.indices);
    write_scores(path, ties + 1, 5); /* pair #0 missing */
    memset(&err, 0, sizeof err);     /* the first failure keeps its message */
    assert_int_equal(mch_select_top_delta(path, &spec, 6, 2, 0, &sel, &err), MCH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "pair #0 is not scored"));
    assert_int_equal(mch_select_top_delta(path, &spec, 6, 0, 0, &sel, &err), MCH_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_largest_signed_delta_ties_by_pair_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k_per_grade_with_a_group_without_grade, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_pairs_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
