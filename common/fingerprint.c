/* Input fingerprints (see fingerprint.h). XXH3-64 rather than sha256 (which the model's weights
 * use): it runs at memory speed, so fingerprinting a corpus adds about one read of it, and a
 * fingerprint guards against a replaced file, not against an adversary. Header-only xxhash
 * (libxxhash-dev), as the activation cache uses it. */
#include "fingerprint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

enum { BLOCK_BYTES = 1 << 20 };

mch_status mch_fingerprint_file(const char *path, mch_fingerprint *fp, mch_err *err)
{
    memset(fp, 0, sizeof *fp);
    struct stat sb;
    if (stat(path, &sb) != 0) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return MCH_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    XXH3_state_t st;
    unsigned char *buf = malloc(BLOCK_BYTES);
    mch_status rc = MCH_OK;
    if (!buf || XXH3_64bits_reset(&st) != XXH_OK) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    } else {
        size_t n;
        while ((n = fread(buf, 1, BLOCK_BYTES, f)) > 0) {
            XXH3_64bits_update(&st, buf, n);
            fp->size_bytes += n;
        }
        if (ferror(f)) rc = mch_fail(err, MCH_ERR_IO, "%s: read error", path);
    }
    if (!rc) {
        fp->xxh3 = XXH3_64bits_digest(&st);
        fp->regular = 1;
    }
    free(buf);
    fclose(f);
    return rc;
}
