/* The one option parser of every subcommand: a table of options (long name, optional short
 * letter, kind, destination, range) and a loop over argv. `--name value`, `--name=value`, `-x
 * value` and flags; `--` ends the options; anything else is positional. Messages are one line on
 * stderr, prefixed "mechir CMD: "; a usage error makes the command exit 2. The same tables read
 * a job file's keys (the long names without dashes), so a JSON job and argv cannot disagree. */
#ifndef MCH_OPTS_H
#define MCH_OPTS_H

#include <stdint.h>

typedef enum {
    MCH_OPT_FLAG,   /* int *: set to 1 */
    MCH_OPT_STR,    /* const char **: the argument (repeated: the last one wins) */
    MCH_OPT_INT,    /* int *: an integer in [lo, hi] */
    MCH_OPT_U64,    /* uint64_t *: a non-negative integer (decimal, 0x hex) */
    MCH_OPT_DOUBLE, /* double *: a finite number in [lo, hi] */
    MCH_OPT_FN,     /* fn(user, value): 0 taken, -1 refused (fn printed why) */
} mch_opt_kind;

typedef struct {
    const char *name; /* long name without dashes ("max-len"); NULL ends a table */
    char letter;      /* short form (-o), or 0 */
    mch_opt_kind kind;
    void *dst;
    double lo, hi; /* range of INT and DOUBLE values (inclusive); both 0: any for DOUBLE */
    int (*fn)(void *user, const char *opt, const char *val); /* MCH_OPT_FN (val NULL for flags) */
    /* MCH_OPT_FN: how many argv words its value takes (0, 1 or 2). Two words reach fn (and the
     * seen callback, hence job.json) joined by one space, "top-delta 20"; so does one word that
     * already holds a space (a job file's value, --opt="a b", a quoted "a b"). */
    int fn_takes_value;
} mch_opt;

/* Table rows (complete initializers, so -Wextra stays quiet). */
#define MCH_OPT_ROW_STR(name, dst)                                                                 \
    {                                                                                              \
        (name), 0, MCH_OPT_STR, (dst), 0, 0, NULL, 0                                               \
    }
#define MCH_OPT_ROW_FLAG(name, dst)                                                                \
    {                                                                                              \
        (name), 0, MCH_OPT_FLAG, (dst), 0, 0, NULL, 0                                              \
    }
#define MCH_OPT_ROW_INT(name, dst, lo, hi)                                                         \
    {                                                                                              \
        (name), 0, MCH_OPT_INT, (dst), (lo), (hi), NULL, 0                                         \
    }
#define MCH_OPT_ROW_U64(name, dst)                                                                 \
    {                                                                                              \
        (name), 0, MCH_OPT_U64, (dst), 0, 0, NULL, 0                                               \
    }
#define MCH_OPT_ROW_DOUBLE(name, dst, lo, hi)                                                      \
    {                                                                                              \
        (name), 0, MCH_OPT_DOUBLE, (dst), (lo), (hi), NULL, 0                                      \
    }
#define MCH_OPT_ROW_FN(name, fn, takes_value)                                                      \
    {                                                                                              \
        (name), 0, MCH_OPT_FN, NULL, 0, 0, (fn), (takes_value)                                     \
    }
#define MCH_OPT_ROW_END                                                                            \
    {                                                                                              \
        NULL, 0, MCH_OPT_FLAG, NULL, 0, 0, NULL, 0                                                 \
    }

/* The parse: options from several tables (NULL-terminated list of tables), positional
 * arguments collected in order. */
typedef struct {
    const char *cmd;            /* "score": messages say "mechir score: ..." */
    const mch_opt *const *tabs; /* NULL-terminated */
    void *user;                 /* passed to MCH_OPT_FN callbacks */
    char **pos;                 /* positional arguments (pointers into argv) */
    int n_pos, max_pos;
    int help; /* -h or --help was given */
    /* Called for every option taken (name without dashes, value or NULL): job.json records. */
    void (*seen)(void *user, const char *name, const char *val);
} mch_opts;

/* Parses argv[first..argc). @return 0 (check o->help), or 2 after printing a usage error. */
int mch_opts_parse(mch_opts *o, int argc, char **argv, int first);

/* Applies one option by its long name (a job file's key): val NULL for a flag. @return 0, 2 on a
 * usage error (printed), or 1 when no table has the name (nothing printed). */
int mch_opts_apply(mch_opts *o, const char *name, const char *val);

/* Takes the one option at argv[*i] when a table has it (advancing *i past its value). @return 0
 * taken, 1 not an option of the tables (nothing printed), 2 after printing a usage error. For
 * commands that pass other options on (submit's run options). */
int mch_opts_take(mch_opts *o, int argc, char **argv, int *i);

/* Fills tab with n string options (MCH_OPT_STR) named names[i] writing to *dst[i]; @return
 * tab + n, where the next entry goes. */
mch_opt *mch_opts_strings(mch_opt *tab, const char *const *names, const char **const *dst, int n);

/* Parses an integer option value in [lo, hi]; prints "mechir CMD: --opt needs an integer in
 * lo..hi, got 'val'" and returns 0 on error, 1 on success. */
int mch_opt_int(const char *cmd, const char *opt, const char *val, long lo, long hi, int *out);

#endif
