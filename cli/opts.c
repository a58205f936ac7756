/* The option-table parser shared by every subcommand (see opts.h). */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int mch_opt_int(const char *cmd, const char *opt, const char *val, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || errno || end == val || *end || v < lo || v > hi) {
        mch_log_error("mechir %s: %s needs an integer in %ld..%ld, got '%s'", cmd, opt, lo, hi,
                      val ? val : "(nothing)");
        return 0;
    }
    *out = (int)v;
    return 1;
}

mch_opt *mch_opts_strings(mch_opt *tab, const char *const *names, const char **const *dst, int n)
{
    for (int i = 0; i < n; i++) tab[i] = (mch_opt){names[i], 0, MCH_OPT_STR, dst[i], 0, 0, NULL, 0};
    return tab + n;
}

static const mch_opt *find(const mch_opts *o, const char *name, size_t len, char letter)
{
    for (const mch_opt *const *t = o->tabs; *t; t++)
        for (const mch_opt *p = *t; p->name; p++)
            if (letter ? p->letter == letter
                       : strlen(p->name) == len && !strncmp(p->name, name, len))
                return p;
    return NULL;
}

static int takes_value(const mch_opt *p)
{
    return p->kind == MCH_OPT_FN ? p->fn_takes_value : p->kind != MCH_OPT_FLAG;
}

/* Stores val into p's destination; 0, or 2 after a message. opt is how the user wrote it. */
static int store(mch_opts *o, const mch_opt *p, const char *opt, const char *val)
{
    char *end;
    switch (p->kind) {
    case MCH_OPT_FLAG:
        *(int *)p->dst = 1;
        return 0;
    case MCH_OPT_STR:
        *(const char **)p->dst = val;
        return 0;
    case MCH_OPT_INT:
        return mch_opt_int(o->cmd, opt, val, (long)p->lo, (long)p->hi, p->dst) ? 0 : 2;
    case MCH_OPT_U64: {
        errno = 0;
        unsigned long long v = strtoull(val, &end, 0);
        if (errno || *end || end == val || val[0] == '-') {
            mch_log_error("mechir %s: %s needs a non-negative integer, got '%s'", o->cmd, opt, val);
            return 2;
        }
        *(uint64_t *)p->dst = v;
        return 0;
    }
    case MCH_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(val, &end);
        int ranged = p->lo != 0 || p->hi != 0;
        if (errno || *end || end == val || !isfinite(v) || (ranged && (v < p->lo || v > p->hi))) {
            if (ranged)
                mch_log_error("mechir %s: %s needs a number in %g..%g, got '%s'", o->cmd, opt,
                              p->lo, p->hi, val);
            else
                mch_log_error("mechir %s: %s needs a number, got '%s'", o->cmd, opt, val);
            return 2;
        }
        *(double *)p->dst = v;
        return 0;
    }
    case MCH_OPT_FN:
        return p->fn(o->user, opt, val) == 0 ? 0 : 2;
    }
    return 2;
}

int mch_opts_apply(mch_opts *o, const char *name, const char *val)
{
    const mch_opt *p = find(o, name, strlen(name), 0);
    if (!p) return 1;
    char opt[96];
    snprintf(opt, sizeof opt, "--%s", name);
    if (takes_value(p) && !val) {
        mch_log_error("mechir %s: %s needs a value", o->cmd, opt);
        return 2;
    }
    int rc = store(o, p, opt, takes_value(p) ? val : NULL);
    if (!rc && o->seen) o->seen(o->user, p->name, takes_value(p) ? val : NULL);
    return rc;
}

static int positional(mch_opts *o, char *arg)
{
    if (o->n_pos >= o->max_pos) {
        mch_log_error("mechir %s: unexpected argument '%s' (see --help)", o->cmd, arg);
        return 2;
    }
    o->pos[o->n_pos++] = arg;
    return 0;
}

/* One option at argv[*i]; advances *i past its value. quiet: an unknown option returns 1
 * without a message. */
static int one_option(mch_opts *o, int argc, char **argv, int *i, int quiet)
{
    const char *a = argv[*i], *name = a + 2, *eq = NULL;
    const mch_opt *p;
    if (a[1] == '-') {
        eq = strchr(name, '=');
        p = find(o, name, eq ? (size_t)(eq - name) : strlen(name), 0);
    } else {
        p = a[2] ? NULL : find(o, NULL, 0, a[1]);
    }
    if (!p && quiet) return 1;
    if (!p) {
        mch_log_error("mechir %s: unknown option '%s' (see --help)", o->cmd, a);
        return 2;
    }
    char opt[96];
    snprintf(opt, sizeof opt, "--%s", p->name);
    const char *val = NULL;
    char joined[512];
    if (takes_value(p)) {
        if (eq)
            val = eq + 1;
        else if (*i + 1 < argc)
            val = argv[++*i];
        else {
            mch_log_error("mechir %s: %s needs a value", o->cmd, a);
            return 2;
        }
        if (p->kind == MCH_OPT_FN && p->fn_takes_value == 2 && !strchr(val, ' ')) {
            /* The second word of a two-word value. */
            if (eq || *i + 1 >= argc) {
                mch_log_error("mechir %s: %s needs two values, got only '%s'", o->cmd, opt, val);
                return 2;
            }
            int n = snprintf(joined, sizeof joined, "%s %s", val, argv[++*i]);
            if (n < 0 || (size_t)n >= sizeof joined) {
                mch_log_error("mechir %s: %s: value too long", o->cmd, opt);
                return 2;
            }
            val = joined;
        }
    } else if (eq) {
        mch_log_error("mechir %s: %s takes no value", o->cmd, opt);
        return 2;
    }
    int rc = store(o, p, a[1] == '-' ? opt : a, val);
    if (!rc && o->seen) o->seen(o->user, p->name, val);
    return rc;
}

int mch_opts_parse(mch_opts *o, int argc, char **argv, int first)
{
    int only_pos = 0;
    for (int i = first; i < argc; i++) {
        char *a = argv[i];
        int rc;
        if (only_pos || a[0] != '-' || !a[1]) {
            rc = positional(o, a);
        } else if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = 1;
            return 0;
        } else {
            rc = one_option(o, argc, argv, &i, 0);
        }
        if (rc) return rc;
    }
    return 0;
}

int mch_opts_take(mch_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (a[0] != '-' || !a[1] || !strcmp(a, "--")) return 1;
    return one_option(o, argc, argv, i, 1);
}
