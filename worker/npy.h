/* Writing one float32 array as a NumPy .npy file (what `mechir cache get` produces). */
#ifndef MCH_NPY_H
#define MCH_NPY_H

#include <stdint.h>

#include "mch_err.h"

#define MCH_NPY_MAX_DIMS 4

/* Writes data (the product of shape's ndim dims of floats, C order) as a NumPy .npy (format 1.0,
 * '<f4', C order, header padded to 64 bytes) to path.tmp.PID, fsyncs it, then renames it to
 * path. 0 <= ndim <= MCH_NPY_MAX_DIMS (ndim 0: one value, shape may be NULL). On error
 * (MCH_ERR_SHAPE, MCH_ERR_NOMEM, MCH_ERR_IO) the temporary file is removed and path untouched. */
mch_status mch_npy_write(const char *path, const float *data, int ndim, const int64_t *shape,
                         mch_err *err);

#endif
