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

/* An output file written atomically: to PATH.tmp.PID, renamed to PATH on commit. A NULL or "-"
 * path means stdout (no rename). */
typedef struct {
    FILE *f;
    char *path, *tmp;
} mch_outfile;
int mch_outfile_open(mch_outfile *o, const char *path); /* 0, or -1 with errno */
/* Flushes, fsyncs and renames; 0 or -1 with errno (the temp file is removed on failure). */
int mch_outfile_commit(mch_outfile *o);
/* Removes the temp file without renaming (after an error). */
void mch_outfile_abort(mch_outfile *o);

#endif
