/* JSON writing helpers (see jsonout.h). Numbers are formatted without
 * the printf family: with OpenBLAS loaded, libquadmath registers printf extensions and every
 * printf call takes glibc's slow positional path (measured 1.75x slower), which made writing
 * pairs.jsonl a quarter of the coordinator's time. strfromd gives the same text as "%.9g". */
#define __STDC_WANT_IEC_60559_BFP_EXT__ 1
#include "jsonout.h"

#include <math.h>

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

void mch_json_double(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
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
