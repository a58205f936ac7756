/* The NumPy .npy writer of `mechir cache get`: format 1.0, '<f4', C order, the header padded to
 * 64 bytes; written to path.tmp.PID, fsynced, then renamed, so path is either the old file or the
 * whole new one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "store_codec.h"

/* The 10-byte preamble (magic, version 1.0, header length) and the header dict for shape into
 * hdr (at least 256 bytes), padded with spaces and a '\n' so data starts at a multiple of 64.
 * *hbytes: preamble + header bytes; *numel: values of shape. MCH_ERR_SHAPE when a dim is < 0 or
 * numel * 4 overflows. */
static mch_status npy_header(unsigned char *hdr, size_t *hbytes, uint64_t *numel, const char *path,
                             int ndim, const int64_t *shape, mch_err *err)
{
    char dims[128] = "";
    size_t k = 0;
    *numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && *numel > (UINT64_MAX / 4) / (uint64_t)shape[d]))
            return mch_fail(err, MCH_ERR_SHAPE, "%s: shape[%d] = %lld out of range", path, d,
                            (long long)shape[d]);
        *numel *= (uint64_t)shape[d];
        k +=
            (size_t)snprintf(dims + k, sizeof dims - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    }
    if (ndim == 1) snprintf(dims + k, sizeof dims - k, ",");
    char *dict = (char *)hdr + 10;
    int h = snprintf(dict, 246, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    size_t total = (10 + (size_t)h + 1 + 63) / 64 * 64, hlen = total - 10;
    memset(dict + h, ' ', hlen - 1 - (size_t)h);
    dict[hlen - 1] = '\n';
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hlen, (unsigned char)(hlen >> 8)};
    memcpy(hdr, pre, 10);
    *hbytes = total;
    return MCH_OK;
}

mch_status mch_npy_write(const char *path, const float *data, int ndim, const int64_t *shape,
                         mch_err *err)
{
    if (ndim < 0 || ndim > MCH_NPY_MAX_DIMS)
        return mch_fail(err, MCH_ERR_SHAPE, "%s: ndim %d not in 0..%d", path, ndim,
                        MCH_NPY_MAX_DIMS);
    unsigned char hdr[256];
    size_t hbytes = 0;
    uint64_t numel = 0;
    mch_status hst = npy_header(hdr, &hbytes, &numel, path, ndim, shape, err);
    if (hst) return hst;
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        mch_status st = mch_fail(err, MCH_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    int bad = fwrite(hdr, 1, hbytes, f) != hbytes;
    unsigned char buf[4096 * 4];
    for (uint64_t i = 0; !bad && i < numel;) {
        size_t m = numel - i < 4096 ? (size_t)(numel - i) : 4096;
        mch_store_encode_values(MCH_STORE_F32, 0, data + i, m, buf); /* little-endian */
        bad = fwrite(buf, 4, m, f) != m;
        i += m;
    }
    if (!bad) bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e1 = errno;
    if (fclose(f) && !bad) {
        bad = 1;
        e1 = errno;
    }
    if (!bad && rename(tmp, path)) {
        bad = 1;
        e1 = errno;
    }
    mch_status st = MCH_OK;
    if (bad) {
        unlink(tmp);
        st = mch_fail(err, MCH_ERR_IO, "writing %s: %s", path, strerror(e1));
    }
    free(tmp);
    return st;
}
