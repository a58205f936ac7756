/* libFuzzer target for the messages between ranks through the validation layer
 * (proto/msg_unit.c): the first byte picks the message (0 a work unit, 1 a unit result, 2 a
 * pair result as a journal record holds it, 3 a worker's error) and, for pair results, the
 * model shape mch_pair_result_check is given; the rest is the packed message. What unpacks must
 * hold what unpacking promises (every array of a pair as long as the pair, roles known, effects
 * and patched scores of equal length), read in full; packing it again and unpacking the bytes
 * must give the same bytes once more (a unit or result survives a second hop unchanged). */
#include <math.h>

#include "fuzz_check.h"
#include "msg.h"
#include "perturb.h"

int mch_fuzz_status;

static void check_pair(const mch_pair_input *p)
{
    long sum = 0;
    for (size_t t = 0; t < p->T; t++) {
        FUZZ_CHECK(p->roles[t] < MCH_ROLE_COUNT);
        sum += p->ids_baseline[t] ^ p->ids_perturbed[t] ^ p->token_types[t];
    }
    for (size_t t = 0; t < p->Tq; t++) sum += p->query_ids[t];
    (void)sum;
    FUZZ_CHECK(p->qid && p->docno && p->term); /* "" when absent */
    (void)strlen(p->qid), (void)strlen(p->docno), (void)strlen(p->term);
}

static void check_result(const mch_pair_result *r, uint8_t shape)
{
    check_pair(&r->pair);
    const float *x[4][2] = {{r->heads, r->heads_scores},
                            {r->blocks, r->blocks_scores},
                            {r->head_pos_z, r->head_pos_z_scores},
                            {r->head_pos_pattern, r->head_pos_pattern_scores}};
    const size_t n[4] = {r->n_heads, r->n_blocks, r->n_head_pos_z, r->n_head_pos_pattern};
    double sum = 0;
    for (int a = 0; a < 4; a++)
        for (size_t i = 0; i < n[a]; i++) sum += x[a][0][i] + x[a][1][i];
    (void)sum;
    if (r->skip_reason) (void)strlen(r->skip_reason);
    if (r->error) (void)strlen(r->error);
    int L = 1 + (shape & 3), NH = 1 + ((shape >> 2) & 3), K = (shape >> 4) & 3;
    char why[256];
    if (mch_pair_result_check(r, L, NH, K, why, sizeof why) == 0) {
        FUZZ_CHECK(n[0] == 0 || n[0] == (size_t)(L * NH));
        FUZZ_CHECK(n[1] == 0 || n[1] == 3 * (size_t)L * r->pair.T);
        FUZZ_CHECK(n[2] == 0 || n[2] == (size_t)K * r->pair.T);
        FUZZ_CHECK(n[3] == 0 || n[3] == (size_t)K * r->pair.T);
        FUZZ_CHECK(isfinite(r->score_baseline) && isfinite(r->score_perturbed));
        FUZZ_CHECK(!(r->skip_reason || r->error) || (!n[0] && !n[1] && !n[2] && !n[3]));
    } else {
        FUZZ_CHECK(memchr(why, '\0', sizeof why) && why[0]);
    }
}

/* Packs again what unpacked, unpacks those bytes and packs once more: the same bytes. */
#define ROUND_TRIP(T, v, pack, unpack, deinit)                                                     \
    do {                                                                                           \
        uint8_t *b1 = NULL, *b2 = NULL;                                                            \
        size_t n1 = 0, n2 = 0;                                                                     \
        T again;                                                                                   \
        mch_err e = {0};                                                                           \
        FUZZ_CHECK(pack(&(v), &b1, &n1, &e) == MCH_OK);                                            \
        FUZZ_CHECK(unpack(&again, b1, n1, &e) == MCH_OK);                                          \
        FUZZ_CHECK(pack(&again, &b2, &n2, &e) == MCH_OK);                                          \
        FUZZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);                                           \
        deinit(&again);                                                                            \
        free(b1);                                                                                  \
        free(b2);                                                                                  \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    mch_err err = {0};
    mch_status rc;
    switch (data[0] & 3) {
    case 0: {
        mch_work_unit u;
        memset(&u, 0xa5, sizeof u);
        rc = mch_work_unit_unpack(&u, buf, len, &err);
        if (rc == MCH_OK) {
            FUZZ_CHECK(u.mode < MCH_UNIT_MODES);
            for (size_t i = 0; i < u.n_pairs; i++) check_pair(&u.pairs[i]);
            ROUND_TRIP(mch_work_unit, u, mch_work_unit_pack, mch_work_unit_unpack,
                       mch_work_unit_deinit);
            mch_work_unit_deinit(&u);
        }
        break;
    }
    case 1: {
        mch_unit_result r;
        memset(&r, 0xa5, sizeof r);
        rc = mch_unit_result_unpack(&r, buf, len, &err);
        if (rc == MCH_OK) {
            for (size_t i = 0; i < r.n_results; i++) check_result(&r.results[i], data[0] >> 2);
            ROUND_TRIP(mch_unit_result, r, mch_unit_result_pack, mch_unit_result_unpack,
                       mch_unit_result_deinit);
            mch_unit_result_deinit(&r);
        }
        break;
    }
    case 2: {
        mch_pair_result r;
        memset(&r, 0xa5, sizeof r);
        rc = mch_pair_result_unpack(&r, buf, len, &err);
        uint64_t index;
        int idx_bad = mch_pair_result_index(buf, len, &index);
        FUZZ_CHECK(rc != MCH_OK || !idx_bad); /* what unpacks has an index */
        if (rc == MCH_OK) {
            FUZZ_CHECK(index == r.pair.index);
            check_result(&r, data[0] >> 2);
            ROUND_TRIP(mch_pair_result, r, mch_pair_result_pack, mch_pair_result_unpack,
                       mch_pair_result_deinit);
            mch_pair_result_deinit(&r);
        }
        break;
    }
    default: {
        mch_error_msg m;
        memset(&m, 0xa5, sizeof m);
        rc = mch_error_msg_unpack(&m, buf, len, &err);
        if (rc == MCH_OK) {
            FUZZ_CHECK(m.message != NULL);
            (void)strlen(m.message);
            ROUND_TRIP(mch_error_msg, m, mch_error_msg_pack, mch_error_msg_unpack,
                       mch_error_msg_deinit);
            mch_error_msg_deinit(&m);
        }
        break;
    }
    }
    mch_fuzz_status = rc;
    if (rc != MCH_OK) fuzz_check_failure(rc, &err);
    return 0;
}
