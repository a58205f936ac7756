/* libFuzzer target for the activation cache index (OUT/cache/NAME.idx, read by mch_store_open in
 * worker/store_read.c; docs/CACHE.md). The first byte: bit 0 set, the target first rewrites
 * each whole 184-byte record's XXH64 to match, so the fuzzer reaches the field checks behind
 * it; the rest is OUT/cache/a.idx. An index that opens must give entries that keep every rule
 * of a record (run, dtype, 1..4 dims each >= 1 and none past ndim, a printable hook of at most
 * 95 bytes, raw bytes = 4 x the element count), sorted by (pair, hook, run) without repeats,
 * each found again by mch_store_find, each naming an existing .bin path. */
#include "fuzz_file.h"
#include "store_internal.h"

int mch_fuzz_status;

static void put_u64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    FUZZ_CHECK(b != NULL);
    memcpy(b, data + 1, n);
    if (data[0] & 1)
        for (size_t off = STORE_HDR_BYTES; off + STORE_REC_BYTES <= n; off += STORE_REC_BYTES)
            put_u64(b + off + STORE_REC_SUM_AT, mch_store_checksum(b + off, STORE_REC_SUM_AT));
    char out[512], dir[512], path[512];
    fuzz_mkdir("out", out, sizeof out);
    fuzz_mkdir("out/cache", dir, sizeof dir);
    fuzz_write("out/cache/a.idx", b, n, path, sizeof path);
    free(b);

    mch_store *s = NULL;
    mch_err err = {0};
    mch_status rc = mch_store_open(&s, out, &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        FUZZ_CHECK(s == NULL);
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(rc == MCH_ERR_FORMAT && strstr(err.msg, "a.idx") != NULL);
        return 0;
    }
    size_t count = mch_store_count(s);
    FUZZ_CHECK(count <= (n > STORE_HDR_BYTES ? (n - STORE_HDR_BYTES) / STORE_REC_BYTES : 0));
    FUZZ_CHECK(mch_store_file_count(s) == 1);
    FUZZ_CHECK(mch_store_entry_at(s, count) == NULL);
    const mch_store_entry *prev = NULL;
    for (size_t i = 0; i < count; i++) {
        const mch_store_entry *e = mch_store_entry_at(s, i);
        FUZZ_CHECK(e != NULL);
        FUZZ_CHECK(e->run == MCH_RUN_BASELINE || e->run == MCH_RUN_PERTURBED);
        FUZZ_CHECK(e->dtype >= MCH_STORE_F32 && e->dtype <= MCH_STORE_F16);
        FUZZ_CHECK(e->ndim >= 1 && e->ndim <= MCH_STORE_MAX_DIMS);
        for (int d = 0; d < MCH_STORE_MAX_DIMS; d++)
            FUZZ_CHECK(d < e->ndim ? e->shape[d] >= 1 : e->shape[d] == 0);
        size_t numel = mch_store_entry_numel(e);
        FUZZ_CHECK(numel >= 1 && numel * 4 <= MCH_STORE_MAX_RAW_BYTES);
        FUZZ_CHECK(e->raw_bytes == (uint64_t)numel * 4);
        size_t hl = strlen(e->hook);
        FUZZ_CHECK(mch_store_hook_ok(e->hook, hl) && hl <= MCH_STORE_HOOK_MAX);
        FUZZ_CHECK(mch_store_file_name(s, e->file) != NULL);
        FUZZ_CHECK(mch_store_find(s, e->pair_id, e->hook, e->run) == e);
        if (prev) {
            int c = prev->pair_id != e->pair_id ? (prev->pair_id < e->pair_id ? -1 : 1)
                                                : strcmp(prev->hook, e->hook);
            if (!c) c = prev->run - e->run;
            FUZZ_CHECK(c < 0);
        }
        prev = e;
    }
    mch_store_close(s);
    return 0;
}
