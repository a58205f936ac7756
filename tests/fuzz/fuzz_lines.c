/* libFuzzer target for the line reader under every input file and --df/--stopwords
 * (mch_lines_*, coordinator/input_lines.c), plain and zstd. The first byte picks the file name
 * (bit 0: lines.zst, decompressed on the fly) and the line limit (bits 1-2: the default, 1, 16 or
 * 4096 bytes; 4096 for zstd instead of the default); the rest is the file. A plain file must come
 * back exactly: each line is the next bytes of the input, followed by "\n", "\r\n" or the end (a
 * byte-order mark dropped before line 1), and the lines cover the whole input; a failure is only a
 * line over the limit, found before the reader holds more than the limit. For zstd, lines are as
 * long as the limit allows, numbered 1, 2, ..., hold no "\n", and a failure is a corrupt or
 * truncated stream. */
#include "fuzz_file.h"
#include "input.h"

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int zst = data[0] & 1;
    static const size_t limits[4] = {0, 1, 16, 4096};
    size_t max = limits[(data[0] >> 1) & 3];
    /* A few KB of zstd can expand to hundreds of MB (RLE blocks): a zstd file is read with at
     * most 4096-byte lines and only its first 4096 lines, so each run stays fast. */
    if (zst && !max) max = 4096;
    size_t lim = max ? max : MCH_LINE_BYTES_DEFAULT;
    const uint8_t *in = data + 1;
    size_t n = size - 1, pos = 0;
    char path[512];
    fuzz_write(zst ? "lines.zst" : "lines.txt", in, n, path, sizeof path);
    mch_lines *l = NULL;
    mch_err err = {0};
    mch_status rc = mch_lines_open(&l, path, max, &err);
    FUZZ_CHECK(rc == MCH_OK && l != NULL); /* a regular file that exists */
    if (!zst && n >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    char *line;
    size_t len;
    long lineno, want = 1;
    while ((rc = mch_lines_next(l, &line, &len, &lineno, &err)) == MCH_OK && line) {
        FUZZ_CHECK(lineno == want++);
        FUZZ_CHECK(len <= lim && line[len] == '\0');
        FUZZ_CHECK(memchr(line, '\n', len) == NULL);
        if (zst && want > 4096) break;
        if (zst) continue;
        FUZZ_CHECK(len <= n - pos && memcmp(line, in + pos, len) == 0);
        pos += len;
        if (pos + 1 < n && in[pos] == '\r' && in[pos + 1] == '\n')
            pos += 2;
        else if (pos < n)
            FUZZ_CHECK(in[pos++] == '\n');
    }
    mch_fuzz_status = rc;
    if (rc == MCH_OK && line) {
        FUZZ_CHECK(zst); /* stopped early */
    } else if (rc == MCH_OK) {
        FUZZ_CHECK(zst || pos == n);
        FUZZ_CHECK(mch_lines_next(l, &line, &len, &lineno, &err) == MCH_OK && !line);
    } else {
        fuzz_check_failure(rc, &err);
        if (zst) {
            FUZZ_CHECK(rc == MCH_ERR_ZSTD || rc == MCH_ERR_FORMAT);
        } else {
            /* A plain file fails only on a line longer than the limit: the next one. */
            FUZZ_CHECK(rc == MCH_ERR_FORMAT && strstr(err.msg, "line longer than") != NULL);
            const uint8_t *nl = memchr(in + pos, '\n', n - pos);
            size_t next = nl ? (size_t)(nl - (in + pos)) : n - pos;
            if (nl && next > 0 && in[pos + next - 1] == '\r') next--;
            if (want == 1 && pos == 3) next += 3; /* the limit counts a byte-order mark */
            FUZZ_CHECK(next > lim);
        }
        FUZZ_CHECK(mch_lines_next(l, &line, &len, &lineno, &err) == MCH_OK && !line);
    }
    mch_lines_close(l);
    return 0;
}
