/* libFuzzer target for the --stopwords file reader (mch_stopwords_load, kernels/text/
 * perturb.c). The first byte picks the line limit (bit 0: 16 bytes, else the default); the
 * rest is the file. A list that loads must hold exactly the words of its lines (line ends,
 * trailing "\r" and spaces dropped; empty lines and lines starting with '#' skipped), each
 * non-empty; a refusal is clean, names the file, and happens only for a line over the limit. */
#include "fuzz_file.h"
#include "perturb.h"
#include "strmap.h"

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t max = data[0] & 1 ? 16 : 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    char path[512];
    fuzz_write("stopwords.txt", data + 1, n, path, sizeof path);
    mch_strmap *m = NULL;
    mch_err err = {0};
    mch_status rc = mch_stopwords_load(&m, path, max, &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        FUZZ_CHECK(m == NULL);
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(rc == MCH_ERR_FORMAT && strstr(err.msg, "line longer than") != NULL);
        FUZZ_CHECK(strncmp(err.msg, path, strlen(path)) == 0);
        return 0;
    }
    /* Every line's word is in the set, and the set holds nothing else. */
    size_t words = 0;
    for (size_t at = 0; at < n;) {
        const char *nl = memchr(in + at, '\n', n - at);
        size_t len = nl ? (size_t)(nl - (in + at)) : n - at, next = at + len + 1;
        FUZZ_CHECK(max == 0 || len <= max + 1);
        while (len > 0 && (in[at + len - 1] == '\r' || in[at + len - 1] == ' ')) len--;
        if (len > 0 && in[at] != '#') {
            FUZZ_CHECK(mch_strmap_get(m, in + at, len) != NULL);
            words++;
        }
        at = next;
    }
    size_t pos = 0, klen;
    const char *k;
    int64_t v;
    while (mch_strmap_next(m, &pos, &k, &klen, &v)) FUZZ_CHECK(klen > 0 && k[0] != '#');
    FUZZ_CHECK(mch_strmap_size(m) <= words);
    mch_strmap_free(m);
    return 0;
}
