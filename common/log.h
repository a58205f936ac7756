/* Logging on stderr with a level from the environment: MECHIR_LOG=error|warn|info|debug (default
 * info). stdout carries results only. A message below the level is not formatted: the macros do
 * not evaluate their arguments then. Each call writes one line (a newline is added). */
#ifndef MCH_LOG_H
#define MCH_LOG_H

typedef enum { MCH_LOG_ERROR = 0, MCH_LOG_WARN, MCH_LOG_INFO, MCH_LOG_DEBUG } mch_log_level;

extern mch_log_level mch_log_threshold;

/* Reads MECHIR_LOG; an unknown value leaves the default and returns -1 (the caller may warn). */
int mch_log_init(void);

void mch_log_write(mch_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define MCH_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) <= mch_log_threshold) mch_log_write((level), __VA_ARGS__);                     \
    } while (0)
#define mch_log_error(...) MCH_LOG(MCH_LOG_ERROR, __VA_ARGS__)
#define mch_log_warn(...) MCH_LOG(MCH_LOG_WARN, __VA_ARGS__)
#define mch_log_info(...) MCH_LOG(MCH_LOG_INFO, __VA_ARGS__)
#define mch_log_debug(...) MCH_LOG(MCH_LOG_DEBUG, __VA_ARGS__)

#endif
