/* What cJSON would change without a word, refused or kept exact (see mch_json_check in
 * mch_err.h). Invariant: the walk reads the text in the order cJSON built the tree, one value
 * per node, so every span it finds is the text of the node it is beside. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mch_err.h"

typedef struct {
    const char *s, *p, *end;
    size_t at; /* where the first fault is, from s */
    char *why;
    size_t why_cap;
    int failed;
} walk;

/* Records the first fault, at where; @return 0. */
static int fail(walk *w, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(walk *w, const char *where, const char *fmt, ...)
{
    if (w->failed) return 0;
    w->failed = 1;
    w->at = (size_t)(where - w->s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, w->why_cap, fmt, ap);
    va_end(ap);
    return 0;
}

static void skip_ws(walk *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
        w->p++;
}

/* Past the string at w->p; 1, or 0 when it holds a NUL (a raw byte or \u0000), which cJSON's
 * NUL-terminated strings would cut. *nul_at: where. */
static int skip_string(walk *w, const char **nul_at)
{
    const char *p = w->p + 1;
    int ok = 1;
    while (p < w->end && *p != '"') {
        if (*p == '\\' && p + 1 < w->end) {
            if (p[1] == 'u' && w->end - p >= 6 && !memcmp(p + 2, "0000", 4) && ok)
                ok = 0, *nul_at = p;
            p += 2;
        } else {
            if (!*p && ok) ok = 0, *nul_at = p;
            p++;
        }
    }
    w->p = p < w->end ? p + 1 : p;
    return ok;
}

typedef struct {
    const char *name, *at;
} key_at;

static int key_cmp(const void *a, const void *b)
{
    const key_at *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* A repeated key among n keys: the later occurrence of the first repeat in sorted order. */
static int no_repeats(walk *w, key_at *k, size_t n)
{
    qsort(k, n, sizeof *k, key_cmp);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(k[i - 1].name, k[i].name))
            return fail(w, k[i].at, "duplicate key \"%.60s\"", k[i].name);
    return 1;
}

/* The value at w->p, which cJSON parsed into v; field names it in messages. */
static int walk_value(walk *w, cJSON *v, const char *field)
{
    skip_ws(w);
    if (w->p >= w->end) return fail(w, w->p, "JSON text ends early");
    const char *nul_at = NULL, *start = w->p;
    if (cJSON_IsString(v)) {
        if (!skip_string(w, &nul_at))
            return field ? fail(w, nul_at, "\"%.60s\" holds a NUL character (\\u0000)", field)
                         : fail(w, nul_at, "a string holds a NUL character (\\u0000)");
        return 1;
    }
    if (cJSON_IsNumber(v)) {
        while (w->p < w->end && strchr("+-0123456789.eE", *w->p) && *w->p) w->p++;
        size_t n = (size_t)(w->p - start);
        char *text = cJSON_malloc(n + 1);
        if (!text) return fail(w, start, "out of memory");
        memcpy(text, start, n);
        text[n] = 0;
        cJSON_free(v->valuestring); /* NULL from cJSON */
        v->valuestring = text;
        return 1;
    }
    int obj = cJSON_IsObject(v);
    if (!obj && !cJSON_IsArray(v)) { /* true, false, null */
        while (w->p < w->end && *w->p >= 'a' && *w->p <= 'z') w->p++;
        return 1;
    }
    w->p++; /* { or [ */
    size_t n = 0;
    for (cJSON *c = v->child; c; c = c->next) n++;
    key_at *keys = obj && n > 1 ? malloc(n * sizeof *keys) : NULL;
    if (obj && n > 1 && !keys) return fail(w, start, "out of memory");
    size_t i = 0;
    int ok = 1;
    for (cJSON *c = v->child; c && ok; c = c->next, i++) {
        skip_ws(w);
        if (obj) {
            const char *key_start = w->p;
            if (!skip_string(w, &nul_at)) {
                ok = fail(w, nul_at, "a key holds a NUL character (\\u0000)");
                break;
            }
            if (keys) keys[i] = (key_at){c->string, key_start};
            skip_ws(w);
            w->p++; /* : */
        }
        ok = walk_value(w, c, obj ? c->string : field);
        skip_ws(w);
        w->p++; /* , or the closing bracket */
    }
    if (!v->child) { /* {} or [] */
        skip_ws(w);
        w->p++;
    }
    if (ok && keys) ok = no_repeats(w, keys, n);
    free(keys);
    return ok;
}

int mch_json_check(cJSON *root, const char *text, size_t len, size_t *at, char *why, size_t why_cap)
{
    walk w = {text, text, text + len, 0, why, why_cap, 0};
    if (walk_value(&w, root, NULL)) return 0;
    if (at) *at = w.at;
    return -1;
}

int mch_json_int_text(const char *s)
{
    if (!s) return 0;
    if (*s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}
