/* libFuzzer target for the --df file reader (mch_df_load, kernels/text/perturb.c). The first
 * byte picks the line limit (bit 0: 16 bytes, else the default); the rest is the file. A table
 * that loads must save (mch_df_save) to a file that loads again and saves to the same bytes; a
 * refusal is clean and names the file. */
#include "fuzz_file.h"
#include "perturb.h"

int mch_fuzz_status;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    FUZZ_CHECK(f != NULL);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    FUZZ_CHECK(buf != NULL);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) FUZZ_CHECK((buf = realloc(buf, cap *= 2)) != NULL);
    }
    fclose(f);
    *len = n;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t max = data[0] & 1 ? 16 : 0;
    char path[512], saved[512], again[512];
    fuzz_write("df.tsv", data + 1, size - 1, path, sizeof path);
    mch_df *df = mch_df_create();
    FUZZ_CHECK(df != NULL);
    mch_err err = {0};
    mch_status rc = mch_df_load(df, path, max, &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(strncmp(err.msg, path, strlen(path)) == 0);
        mch_df_free(df);
        return 0;
    }
    FUZZ_CHECK(mch_df_docs(df) >= 0);
    snprintf(saved, sizeof saved, "%s/df-saved.tsv", fuzz_scratch());
    snprintf(again, sizeof again, "%s/df-again.tsv", fuzz_scratch());
    fuzz_remember("df-saved.tsv");
    fuzz_remember("df-again.tsv");
    FUZZ_CHECK(mch_df_save(df, saved, &err) == MCH_OK);
    mch_df *df2 = mch_df_create();
    FUZZ_CHECK(df2 != NULL);
    FUZZ_CHECK(mch_df_load(df2, saved, 0, &err) == MCH_OK);
    FUZZ_CHECK(mch_df_docs(df2) == mch_df_docs(df));
    FUZZ_CHECK(mch_df_save(df2, again, &err) == MCH_OK);
    size_t n1, n2;
    char *b1 = slurp(saved, &n1), *b2 = slurp(again, &n2);
    FUZZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    mch_df_free(df2);
    mch_df_free(df);
    return 0;
}
