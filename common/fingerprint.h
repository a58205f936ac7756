/* Fingerprints of input files: size and XXH3-64 of the contents, so a resume can tell that a
 * file under the same path is no longer the one the job started from. */
#ifndef MCH_FINGERPRINT_H
#define MCH_FINGERPRINT_H

#include <stdint.h>

#include "mch_err.h"

typedef struct {
    uint64_t size_bytes;
    uint64_t xxh3; /* XXH3_64bits (seed 0) of the whole file */
    int regular;   /* 0: a FIFO, a device, a socket: not read, size and xxh3 are 0 */
} mch_fingerprint;

/* The fingerprint of path (symbolic links followed). A regular file is streamed in 1 MiB
 * blocks (memory does not grow with the file); anything else is not opened, since reading a
 * pipe would consume it. Errors name the path. */
mch_status mch_fingerprint_file(const char *path, mch_fingerprint *fp, mch_err *err);

#endif
