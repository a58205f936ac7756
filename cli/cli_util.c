/* Small helpers shared by the subcommands' option parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int mch_cli_int(const char *opt, const char *val, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || errno || end == val || *end || v < lo || v > hi) {
        fprintf(stderr, "mechir: %s needs an integer in %d..%d, got '%s'\n", opt, lo, hi,
                val ? val : "(nothing)");
        return 0;
    }
    *out = (int)v;
    return 1;
}
