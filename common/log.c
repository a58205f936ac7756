/* The log level and the one writer of log lines (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mch_log_level mch_log_threshold = MCH_LOG_INFO;

int mch_log_init(void)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *v = getenv("MECHIR_LOG");
    if (!v || !*v) return 0;
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            mch_log_threshold = (mch_log_level)i;
            return 0;
        }
    return -1;
}

void mch_log_write(mch_log_level level, const char *fmt, ...)
{
    (void)level;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one write: lines of ranks sharing stderr do not interleave */
}
