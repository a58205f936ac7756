/* libFuzzer target for the safetensors header decoder (mch_st_parse). Whatever the bytes, the
 * parse either refuses them with a message or hands out tensors whose byte ranges lie inside the
 * input, match their shape and dtype, do not overlap, and are all found again by name. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "safetensors.h"

/* Folds every byte of the range into a value the compiler must compute, so ASan sees each read. */
static uint8_t touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= p[i];
    return x;
}

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_safetensors *st = NULL;
    mch_err err = {0};
    mch_status rc = mch_st_parse(&st, data, size, "fuzz.safetensors", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(st == NULL);
        return 0;
    }
    FUZZ_CHECK(st != NULL && st->map == NULL);
    FUZZ_CHECK(st->data_start >= 8 && st->data_start <= size);
    const uint8_t *section = data + st->data_start;
    size_t section_bytes = size - st->data_start;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < st->n; i++) {
        const mch_st_tensor *t = &st->tensors[i];
        FUZZ_CHECK(t->name != NULL);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= MCH_ST_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= (size_t)t->shape[d];
        }
        FUZZ_CHECK(numel == t->numel);
        FUZZ_CHECK(t->nbytes == t->numel * mch_dtype_size(t->dtype));
        FUZZ_CHECK(t->offset <= section_bytes && t->nbytes <= section_bytes - t->offset);
        FUZZ_CHECK((const uint8_t *)t->data == section + t->offset);
        sink ^= touch(t->data, t->nbytes);
        FUZZ_CHECK(mch_st_find(st, t->name) == t);
        if (i > 0) FUZZ_CHECK(strcmp(st->tensors[i - 1].name, t->name) < 0);
        for (size_t j = 0; j < i; j++) {
            const mch_st_tensor *u = &st->tensors[j];
            FUZZ_CHECK(t->offset >= u->offset + u->nbytes || u->offset >= t->offset + t->nbytes ||
                       t->nbytes == 0 || u->nbytes == 0);
        }
        /* Convert a bounded prefix of float tensors, as the model loader would. */
        if (t->dtype == MCH_DT_F32 || t->dtype == MCH_DT_F16 || t->dtype == MCH_DT_BF16) {
            float buf[64];
            size_t n = t->numel < 64 ? t->numel : 64;
            mch_to_f32(buf, t->data, t->dtype, n);
            for (size_t k = 0; k < n; k++) sink ^= (uint8_t)(buf[k] == buf[k]);
        }
        FUZZ_CHECK(strcmp(mch_dtype_name(t->dtype), "?") != 0);
    }
    (void)sink;
    const mch_st_tensor *empty = mch_st_find(st, "");
    FUZZ_CHECK(empty == NULL || empty->name[0] == '\0');
    (void)mch_st_find(st, "bert.embeddings.word_embeddings.weight");
    (void)mch_st_find(st, "__metadata__");
    mch_st_close(st);
    return 0;
}
