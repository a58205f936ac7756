/* Progress lines on stderr for long runs: on a terminal one line updated in place a few times a
 * second at most; otherwise a plain line every few seconds. Logged at level info (MECHIR_LOG). */
#ifndef MCH_PROGRESS_H
#define MCH_PROGRESS_H

typedef struct {
    const char *what; /* "pairs" */
    long total;       /* 0 when unknown */
    double start_s, last_s;
    int tty;
    int printed;
} mch_progress;

void mch_progress_init(mch_progress *p, const char *what, long total);
/* Reports done units (and extra text, may be NULL) when enough time has passed. */
void mch_progress_update(mch_progress *p, long done, const char *extra);
/* Ends the line (on a terminal) and prints the final count. */
void mch_progress_finish(mch_progress *p, long done, const char *extra);
double mch_now_s(void);

#endif
