/* JSON writing helpers and atomic output files (see jsonout.h). Numbers are formatted without
 * the printf family: with OpenBLAS loaded, libquadmath registers printf extensions and every
 * printf call takes glibc's slow positional path (measured 1.75x slower), which made writing
 * pairs.jsonl a quarter of the coordinator's time. strfromd gives the same text as "%.9g". */
#define __STDC_WANT_IEC_60559_BFP_EXT__ 1
#include "jsonout.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mch_json_string(FILE *f, const char *s)
{
    putc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putc('\\', f);
            putc(*p, f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            putc(*p, f);
        }
    }
    putc('"', f);
}

void mch_json_int_array(FILE *f, const int32_t *x, int n)
{
    putc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", x[i]);
    putc(']', f);
}

void mch_json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

void mch_json_float_array(FILE *f, const float *x, int n)
{
    putc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) putc(',', f);
        mch_json_number(f, x[i]);
    }
    putc(']', f);
}

int mch_outfile_open(mch_outfile *o, const char *path)
{
    o->f = NULL;
    o->path = o->tmp = NULL;
    if (!path || !strcmp(path, "-")) {
        o->f = stdout;
        return 0;
    }
    size_t n = strlen(path) + 32;
    o->path = strdup(path);
    o->tmp = malloc(n);
    if (!o->path || !o->tmp) {
        free(o->path);
        free(o->tmp);
        errno = ENOMEM;
        return -1;
    }
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        int e = errno;
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

int mch_outfile_commit(mch_outfile *o)
{
    if (!o->path) return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
    int bad = ferror(o->f) | (fflush(o->f) != 0) | (fsync(fileno(o->f)) != 0);
    int e = errno;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (!bad && rename(o->tmp, o->path) == 0) {
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        return 0;
    }
    e = errno ? errno : e;
    unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    errno = e;
    return -1;
}

void mch_outfile_abort(mch_outfile *o)
{
    if (!o->path) return;
    if (o->f) fclose(o->f);
    unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    o->f = NULL;
    o->path = o->tmp = NULL;
}
