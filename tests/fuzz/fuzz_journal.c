/* libFuzzer target for the resume journal (coordinator/journal.c): mch_journal_open, the spec
 * of its header, every record through mch_journal_load (the checks of a worker's result) for
 * both unit modes, then the resume path (reopened for appending: a torn tail is cut, one more
 * record appended and read back). The first byte: bit 0 set, the target first rewrites every
 * checksum the framing has (header spec, each record's header and payload) to match, so the
 * fuzzer reaches the payloads as a tampered journal with valid checksums would (issue 14);
 * bits 1-3 pick the expected pair count. The rest is journal.bin. */
#include "fuzz_file.h"
#include "journal.h"
#include "perturb.h"

int mch_fuzz_status;

static uint64_t get_le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static void put_u64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

/* Makes every checksum of the framing in b[0..n) match what it covers. */
static void fix_checksums(uint8_t *b, size_t n)
{
    if (n < 12) return;
    uint64_t slen = get_le(b + 8, 4), off = 12 + slen;
    if (off + 8 > n) return;
    put_u64(b + off, mch_fnv1a64(b + 12, slen));
    off += 8;
    while (off + MCH_JOURNAL_REC_HEADER <= n) {
        uint64_t len = get_le(b + off + 4, 4);
        put_u64(b + off + 16, mch_fnv1a64(b + off, 16));
        if (off + MCH_JOURNAL_REC_HEADER + len + 8 > n) return;
        put_u64(b + off + MCH_JOURNAL_REC_HEADER + len,
                mch_fnv1a64(b + off + MCH_JOURNAL_REC_HEADER, len));
        off += MCH_JOURNAL_REC_HEADER + len + 8;
    }
}

/* A record that loaded: shaped as the spec says, readable in full. */
static void check_loaded(const mch_pair_result *r, const mch_journal_rec *rec,
                         const mch_journal_expect *x)
{
    const mch_job_spec *s = x->spec;
    FUZZ_CHECK(r->pair.index == rec->index && rec->index < x->limit);
    char why[256];
    FUZZ_CHECK(mch_journal_check_result(r, s, x->mode, why, sizeof why) == 0);
    size_t T = r->pair.T, L = s->layers, K = s->n_head_pos;
    FUZZ_CHECK(r->n_heads == 0 || r->n_heads == L * s->heads);
    FUZZ_CHECK(r->n_blocks == 0 || r->n_blocks == 3 * L * T);
    FUZZ_CHECK(r->n_head_pos_z == 0 || r->n_head_pos_z == K * T);
    FUZZ_CHECK(r->n_head_pos_pattern == 0 || r->n_head_pos_pattern == K * T);
    for (size_t t = 0; t < T; t++) FUZZ_CHECK(r->pair.roles[t] < MCH_ROLE_COUNT);
    FUZZ_CHECK(r->pair.qid && r->pair.docno && r->pair.term);
    if (x->mode == MCH_UNIT_SCORE)
        FUZZ_CHECK(!r->n_heads && !r->n_blocks && !r->n_head_pos_z && !r->skip_reason);
}

/* Loads every record of j for mode; @return the first failure (or MCH_OK). */
static mch_status load_all(const mch_journal *j, const mch_journal_expect *x)
{
    FILE *f = fopen(j->path, "rb");
    FUZZ_CHECK(f != NULL);
    uint8_t *buf = NULL;
    size_t cap = 0;
    mch_status first = MCH_OK;
    for (size_t i = 0; i < j->n_recs; i++) {
        mch_pair_result r;
        mch_err err = {0};
        mch_status rc = mch_journal_load(j, f, &j->recs[i], x, &buf, &cap, &r, &err);
        if (rc == MCH_OK) {
            check_loaded(&r, &j->recs[i], x);
            mch_pair_result_deinit(&r);
        } else {
            fuzz_check_failure(rc, &err);
            FUZZ_CHECK(r.n_heads == 0 && r.pair.roles == NULL); /* zeroed */
            if (first == MCH_OK) first = rc;
        }
    }
    free(buf);
    fclose(f);
    return first;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const uint64_t limits[8] = {UINT64_MAX, 1, 2, 3, 10, 100, 1000, 1u << 20};
    uint64_t limit = limits[(data[0] >> 1) & 7];
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    FUZZ_CHECK(b != NULL);
    memcpy(b, data + 1, n);
    if (data[0] & 1) fix_checksums(b, n);
    char path[512];
    fuzz_write("journal.bin", b, n, path, sizeof path);
    free(b);

    mch_journal j;
    mch_err err = {0};
    mch_status rc = mch_journal_open(&j, path, 0, &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(j.spec == NULL && j.recs == NULL && j.path == NULL);
        return 0;
    }
    FUZZ_CHECK(j.end + j.torn_bytes == n);
    for (size_t i = 0; i < j.n_recs; i++) {
        FUZZ_CHECK(j.recs[i].offset + MCH_JOURNAL_REC_HEADER + j.recs[i].length + 8 <= j.end);
        FUZZ_CHECK(i == 0 || j.recs[i].offset > j.recs[i - 1].offset);
    }
    mch_job_spec spec;
    rc = mch_job_spec_unpack(&spec, j.spec, j.spec_len, "the journal's job spec", &err);
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
    } else {
        mch_journal_expect x = {&spec, MCH_UNIT_PATCH, limit};
        rc = load_all(&j, &x);
        x.mode = MCH_UNIT_SCORE;
        load_all(&j, &x);
        mch_job_spec_deinit(&spec);
    }
    mch_fuzz_status = rc;

    /* Resume: reopened for appending, the torn tail is cut and a record can follow. */
    mch_journal a;
    mch_err e2 = {0};
    FUZZ_CHECK(mch_journal_open(&a, path, 1, &e2) == MCH_OK);
    FUZZ_CHECK(a.n_recs == j.n_recs && a.end == j.end && a.torn_bytes == j.torn_bytes);
    const uint8_t payload[3] = {1, 2, 3};
    FUZZ_CHECK(mch_journal_append(&a, 7, payload, sizeof payload, &e2) == MCH_OK);
    FUZZ_CHECK(mch_journal_sync(&a, &e2) == MCH_OK);
    mch_journal_close(&a);
    FUZZ_CHECK(mch_journal_open(&a, path, 0, &e2) == MCH_OK);
    FUZZ_CHECK(a.n_recs == j.n_recs + 1 && a.torn_bytes == 0);
    FUZZ_CHECK(a.recs[j.n_recs].index == 7 && a.recs[j.n_recs].length == sizeof payload);
    mch_journal_close(&a);
    mch_journal_close(&j);
    return 0;
}
