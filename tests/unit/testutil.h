/* Helpers shared by the cmocka tests: a scratch directory, read a whole file, parse JSON fixtures,
 * compare float arrays element-wise against golden numbers with the fixture's tolerance, printing
 * the tensor, the index and both values on the first mismatch. */
#ifndef MCH_TESTUTIL_H
#define MCH_TESTUTIL_H

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Makes a fresh directory $TMPDIR/PREFIX_XXXXXX (or under /tmp) into dir; 0, or -1. */
static inline int tu_tmpdir_make(char *dir, size_t cap, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes dir and the files in it (no subdirectories); the rmdir status. */
static inline int tu_tmpdir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4400];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    return rmdir(dir);
}

static inline char *tu_read_file(const char *path, size_t *len)
{
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

static inline cJSON *tu_read_json(const char *path)
{
    char *s = tu_read_file(path, NULL);
    if (!s) return NULL;
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

/* Copies a JSON array of numbers (any nesting, row-major) into out (cap entries); returns the
 * count, or -1 when it does not fit or holds a non-number. */
static inline long tu_flatten(const cJSON *j, double *out, long cap)
{
    if (cJSON_IsNumber(j)) {
        if (cap < 1) return -1;
        out[0] = j->valuedouble;
        return 1;
    }
    if (!cJSON_IsArray(j)) return -1;
    long n = 0;
    for (const cJSON *e = j->child; e; e = e->next) {
        long k = tu_flatten(e, out + n, cap - n);
        if (k < 0) return -1;
        n += k;
    }
    return n;
}

/* Copies the JSON array of integers at key of c (token ids) into out (cap); returns the count,
 * or -1 when it is missing, empty, holds a non-number or does not fit. */
static inline int tu_ids(const cJSON *c, const char *key, int32_t *out, int cap)
{
    double tmp[4096];
    long n = tu_flatten(cJSON_GetObjectItem(c, key), tmp, cap < 4096 ? cap : 4096);
    if (n < 1) return -1;
    for (long i = 0; i < n; i++) out[i] = (int32_t)tmp[i];
    return (int)n;
}

static inline int tu_close(double got, double want, double atol, double rtol)
{
    return isfinite(got) && fabs(got - want) <= atol + rtol * fabs(want);
}

/* Returns the number of mismatches (0 = all within tolerance), printing the first few. */
static inline long tu_compare(const char *what, const float *got, const double *want, long n,
                              double atol, double rtol)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        if (!tu_close(got[i], want[i], atol, rtol)) {
            if (bad < 3)
                fprintf(stderr, "MISMATCH %s[%ld]: got %.9g want %.9g (diff %.3g)\n", what, i,
                        (double)got[i], want[i], fabs(got[i] - want[i]));
            bad++;
        }
    }
    return bad;
}

#endif
