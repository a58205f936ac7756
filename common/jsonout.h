/* Minimal JSON writing for streamed outputs (JSONL lines with large arrays), where building a
 * cJSON tree per line would cost more than the work itself. Strings must be valid UTF-8. */
#ifndef MCH_JSONOUT_H
#define MCH_JSONOUT_H

#include <stdint.h>
#include <stdio.h>

/* Writes s as a JSON string literal (quotes, backslashes and control characters escaped). */
void mch_json_string(FILE *f, const char *s);
/* Writes [a, b, ...]. */
void mch_json_int_array(FILE *f, const int32_t *x, int n);
/* Writes numbers with 9 significant digits; non-finite values as null. */
void mch_json_float_array(FILE *f, const float *x, int n);
void mch_json_number(FILE *f, double v);
/* A double with every digit it needs to read back the same (%.17g); null when not finite. */
void mch_json_double(FILE *f, double v);

#endif
