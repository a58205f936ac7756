/* Progress reporting (see progress.h). Rates and ETA from wall-clock time. */
#include "progress.h"

#include "log.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double mch_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mch_progress_init(mch_progress *p, const char *what, long total)
{
    p->what = what;
    p->total = total;
    p->start_s = p->last_s = mch_now_s();
    p->tty = isatty(2);
    p->printed = 0;
}

static void print_line(mch_progress *p, long done, const char *extra, double now, int final)
{
    if (mch_log_threshold < MCH_LOG_INFO) return; /* progress is info */
    double el = now - p->start_s, rate = el > 0 ? done / el : 0;
    char eta[32] = "";
    if (p->total > 0 && rate > 0 && !final)
        snprintf(eta, sizeof eta, ", ETA %.0f s", (p->total - done) / rate);
    char tot[32] = "";
    if (p->total > 0) snprintf(tot, sizeof tot, "/%ld", p->total);
    fprintf(stderr, "%s%s: %ld%s done, %.1f/s%s%s%s%s", p->tty ? "\r\033[K" : "", p->what, done,
            tot, rate, eta, extra ? ", " : "", extra ? extra : "", p->tty && !final ? "" : "\n");
    fflush(stderr);
    p->printed = 1;
}

void mch_progress_update(mch_progress *p, long done, const char *extra)
{
    double now = mch_now_s();
    if (now - p->last_s < (p->tty ? 0.25 : 5.0)) return;
    p->last_s = now;
    print_line(p, done, extra, now, 0);
}

void mch_progress_finish(mch_progress *p, long done, const char *extra)
{
    print_line(p, done, extra, mch_now_s(), 1);
}
