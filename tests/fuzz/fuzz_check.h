/* Shared by the fuzz targets: an invariant check that aborts (so libFuzzer and the ctest replay
 * both report it) whatever NDEBUG says, the checks every failing decoder call must pass, and the
 * decoder status of the last input, which the replay compares with the seed's name. */
#ifndef MCH_FUZZ_CHECK_H
#define MCH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mch_err.h"

/* What the decoder returned for the last input (MCH_OK: accepted). Each target defines it. */
extern int mch_fuzz_status;

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A refused input must come back as the status recorded in err, with a non-empty, terminated
 * message (the first failure's), never as MCH_ERR_ARG: the targets pass valid arguments. */
static inline void fuzz_check_failure(mch_status rc, const mch_err *err)
{
    FUZZ_CHECK(rc != MCH_OK);
    FUZZ_CHECK(rc != MCH_ERR_ARG);
    FUZZ_CHECK(err->code == rc);
    FUZZ_CHECK(memchr(err->msg, '\0', sizeof err->msg) != NULL);
    FUZZ_CHECK(err->msg[0] != '\0');
}

#endif
