/* SHA-256 of files (OpenSSL's libcrypto), as lowercase hex. */
#ifndef MCH_SHA256_H
#define MCH_SHA256_H

#include "mch_err.h"

/* hex receives 65 bytes (64 digits and a NUL). */
mch_status mch_sha256_file(const char *path, char hex[65], mch_err *err);

#endif
