/* `mechir submit`: writes a Slurm or PBS batch script for a `mechir run` into the run's output
 * directory, from a template in deploy/, and submits it with sbatch or qsub (--dry-run prints
 * it). Every run option reaches the script shell-quoted, byte for byte. With --shards K the input
 * is split here, by pair id, into K shard inputs run as a job array, and a dependent job merges
 * the shards' maps: a pair lands in the same shard whatever K's neighbours are doing. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "input.h"
#include "jsonout.h"
#include "pairs_source.h"
#include "shard.h"

extern char **environ;

enum { SCHED_SLURM, SCHED_PBS };
enum { MAX_SHARDS = 1000, DEFAULT_SIGNAL_S = 90, MERGE_TIME_CAP_S = 30 * 60 };

typedef struct {
    int sched;
    int nodes, ranks_per_node, shards, requeue, dry_run, signal_s;
    long time_s;
    const char *time, *partition, *account, *mem, *job_name, *template_path, *launcher;
    /* The run options after "--" and what submit needs from them. */
    int n_run;
    char **run;
    const char *out, *model, *threads, *job_file;
    int input_at, run_at, qrels_at, out_at, df_given, has_resume; /* argv indices or -1 */
    mch_source_opts src;
    /* Paths worked out here. */
    char out_abs[PATH_MAX], cwd[PATH_MAX], exe[PATH_MAX];
} submit_opts;

static void submit_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir submit --scheduler slurm|pbs --time HH:MM:SS [options] -- RUN OPTIONS\n"
            "\n"
            "Writes a batch script for `mechir run RUN OPTIONS` into the run's --out directory\n"
            "and submits it (sbatch or qsub); prints the job id(s). The run always gets\n"
            "--resume, so submitting the same command again continues an interrupted run.\n"
            "\n"
            "  --scheduler S        slurm or pbs (PBS Pro / OpenPBS)\n"
            "  --time HH:MM:SS      the job's time limit (at least 00:01:00)\n"
            "  --nodes N            nodes (default 1)\n"
            "  --ranks-per-node R   MPI ranks per node (default 2; rank 0 coordinates)\n"
            "  --partition P        Slurm partition, PBS queue\n"
            "  --account A          account to charge\n"
            "  --mem M              memory per node: a number of MB, or with K, M, G or T\n"
            "  --signal-seconds S   ask the run to stop S seconds before the limit (default\n"
            "                       90, or a third of the limit when that is shorter)\n"
            "  --requeue            Slurm: requeue the job when the time limit interrupted it\n"
            "  --launcher L         Slurm: srun (srun --mpi=pmix, default) or mpirun\n"
            "  --shards K           split the input into K shard jobs (a job array, outputs in\n"
            "                       OUT/shard-<i>) and merge them into OUT/circuit.cmap in a\n"
            "                       dependent job\n"
            "  --job-name NAME      default mechir-<name of --out>\n"
            "  --template FILE      the script template (default: the deploy/ directory next to\n"
            "                       the program, see docs/deploy.md)\n"
            "  --dry-run            print the script(s) and the submit command; change nothing\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0 submitted (or printed); 1 error; 2 usage error.\n");
}

/* ---- growable strings ------------------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_add(sbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1; /* only used for short, bounded texts */
        return;
    }
    sb_addn(b, tmp, (size_t)n);
}

static const char *sb_str(const sbuf *b)
{
    return b->s ? b->s : "";
}

/* Appends s as one shell word: as it is when it holds only characters no shell treats
 * specially, otherwise in single quotes (a ' inside becomes '\''). Newlines stay literal. */
static void sb_quote(sbuf *b, const char *s)
{
    int plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,+@%-",
                       *p) != NULL;
    if (plain) {
        sb_add(b, s);
        return;
    }
    sb_add(b, "'");
    for (const char *p = s; *p; p++)
        if (*p == '\'')
            sb_add(b, "'\\''");
        else
            sb_addn(b, p, 1);
    sb_add(b, "'");
}

/* ---- options --------------------------------------------------------------------------------- */

/* "H:MM:SS" (hours of any length) to seconds; -1 when malformed. */
static long parse_time(const char *s)
{
    const char *p = s;
    long h = 0;
    int hd = 0;
    while (*p >= '0' && *p <= '9' && hd < 6) h = h * 10 + (*p++ - '0'), hd++;
    if (!hd || *p++ != ':') return -1;
    int v[2];
    for (int k = 0; k < 2; k++) {
        if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9')) return -1;
        v[k] = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (v[k] > 59 || (k == 0 && *p++ != ':')) return -1;
    }
    return *p ? -1 : h * 3600 + v[0] * 60 + v[1];
}

/* Memory per node: digits and an optional K, M, G or T. */
static int valid_mem(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && (!s[n] || (strchr("KMGT", s[n]) && !s[n + 1]));
}

/* A value that goes into a directive line as it is. */
static int directive_safe(const char *s)
{
    if (!*s) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '\'' || *p == '\\' || *p == 0x7f) return 0;
    return 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mechir submit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return 2;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Reads "out" (and "model") from a JOB.json given as the first run option. */
static int read_job_file(submit_opts *o, cJSON **keep)
{
    FILE *f = fopen(o->job_file, "rb");
    if (!f) return usage_error("%s: %s", o->job_file, strerror(errno));
    sbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_addn(&b, chunk, n);
    fclose(f);
    cJSON *j = b.oom ? NULL : mch_json_parse_exact(sb_str(&b), b.n);
    free(b.s);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return usage_error("%s: not a JSON object of run options", o->job_file);
    }
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "out");
    if (cJSON_IsString(out) && !o->out) o->out = out->valuestring;
    *keep = j;
    return 0;
}

/* Scans the run options: the source options through the shared parser (so values are checked
 * the way `mechir run` checks them), --out, --model, --threads; every other --option is taken to
 * have a value, except the run's flags. */
static int scan_run_opts(submit_opts *o)
{
    o->input_at = o->run_at = o->qrels_at = o->out_at = -1;
    int first = 0;
    if (o->n_run > 0 && ends_with(o->run[0], ".json")) {
        o->job_file = o->run[0];
        first = 1;
    }
    for (int i = first; i < o->n_run; i++) {
        const char *a = o->run[i];
        int at = i;
        int r = mch_source_parse_arg(&o->src, o->n_run, o->run, &i);
        if (r < 0) return 2;
        if (r > 0) {
            if (!strcmp(a, "--input")) o->input_at = at + 1;
            if (!strcmp(a, "--run")) o->run_at = at + 1;
            if (!strcmp(a, "--qrels")) o->qrels_at = at + 1;
            if (!strcmp(a, "--df")) o->df_given = 1;
            continue;
        }
        if (!strcmp(a, "--resume")) {
            o->has_resume = 1;
            continue;
        }
        if (strncmp(a, "--", 2) || !strcmp(a, "--"))
            return usage_error("run option '%s' is not an option (see mechir run --help)", a);
        if (i + 1 >= o->n_run) return usage_error("run option %s needs a value", a);
        const char *v = o->run[++i];
        if (!strcmp(a, "--out")) o->out = v, o->out_at = i;
        if (!strcmp(a, "--model")) o->model = v;
        if (!strcmp(a, "--threads")) o->threads = v;
    }
    return 0;
}

static int parse_args(submit_opts *o, int argc, char **argv)
{
    int i = 1;
    const char *sched = NULL, *signal_s = NULL;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) break;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            submit_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--dry-run")) {
            o->dry_run = 1;
            continue;
        }
        if (!strcmp(a, "--requeue")) {
            o->requeue = 1;
            continue;
        }
        struct {
            const char *name;
            const char **dst;
        } strs[] = {{"--scheduler", &sched},
                    {"--time", &o->time},
                    {"--partition", &o->partition},
                    {"--account", &o->account},
                    {"--mem", &o->mem},
                    {"--job-name", &o->job_name},
                    {"--template", &o->template_path},
                    {"--launcher", &o->launcher},
                    {"--signal-seconds", &signal_s}};
        struct {
            const char *name;
            int *dst, lo, hi;
        } ints[] = {{"--nodes", &o->nodes, 1, 1 << 20},
                    {"--ranks-per-node", &o->ranks_per_node, 1, 1 << 16},
                    {"--shards", &o->shards, 1, MAX_SHARDS}};
        int known = 0;
        for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !known; k++)
            if (!strcmp(a, strs[k].name)) {
                if (i + 1 >= argc) return usage_error("%s needs a value", a);
                *strs[k].dst = argv[++i];
                known = 1;
            }
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !known; k++)
            if (!strcmp(a, ints[k].name)) {
                if (!mch_cli_int(a, i + 1 < argc ? argv[i + 1] : NULL, ints[k].lo, ints[k].hi,
                                 ints[k].dst))
                    return 2;
                i++;
                known = 1;
            }
        if (!known)
            return usage_error("unknown option '%s' (run options go after '--'; see mechir "
                               "submit --help)",
                               a);
    }
    if (i >= argc) return usage_error("give the run options after '--' (see --help)");
    o->run = argv + i + 1;
    o->n_run = argc - i - 1;

    if (!sched) return usage_error("--scheduler slurm|pbs is required");
    if (!strcmp(sched, "slurm"))
        o->sched = SCHED_SLURM;
    else if (!strcmp(sched, "pbs"))
        o->sched = SCHED_PBS;
    else
        return usage_error("unknown scheduler '%s' (slurm or pbs)", sched);
    if (!o->time) return usage_error("--time HH:MM:SS is required (the job's time limit)");
    if ((o->time_s = parse_time(o->time)) < 0)
        return usage_error("--time takes HH:MM:SS (like 01:30:00), got '%s'", o->time);
    if (o->time_s < 60)
        return usage_error("--time %s is below one minute, the smallest limit Slurm keeps",
                           o->time);
    if (o->mem && !valid_mem(o->mem))
        return usage_error("--mem takes a number of MB or a number with K, M, G or T, got '%s'",
                           o->mem);
    if (o->sched == SCHED_PBS && o->requeue)
        return usage_error("--requeue is for Slurm (PBS: submit the same command again)");
    if (!o->launcher) o->launcher = o->sched == SCHED_SLURM ? "srun" : "mpirun";
    if (o->sched == SCHED_SLURM ? strcmp(o->launcher, "srun") && strcmp(o->launcher, "mpirun")
                                : strcmp(o->launcher, "mpirun"))
        return usage_error("--launcher takes %s, got '%s'",
                           o->sched == SCHED_SLURM ? "srun or mpirun" : "mpirun (PBS)",
                           o->launcher);
    if (signal_s) {
        if (!mch_cli_int("--signal-seconds", signal_s, 1, 65535, &o->signal_s)) return 2;
        if (o->signal_s >= o->time_s)
            return usage_error("--signal-seconds %d must be below the time limit (%ld s)",
                               o->signal_s, o->time_s);
    } else {
        o->signal_s = o->time_s / 3 < DEFAULT_SIGNAL_S ? (int)(o->time_s / 3) : DEFAULT_SIGNAL_S;
    }
    const char *names[] = {"--partition", "--account", "--job-name"};
    const char *vals[] = {o->partition, o->account, o->job_name};
    for (int k = 0; k < 3; k++)
        if (vals[k] && !directive_safe(vals[k]))
            return usage_error("%s '%s' cannot go into a directive line (no spaces, quotes or "
                               "control characters)",
                               names[k], vals[k]);
    return -1;
}

/* ---- paths ----------------------------------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The template: --template, $MECHIR_DEPLOY_DIR, <exe dir>/../deploy (a build directory inside
 * the source tree), <exe dir>/../share/mechir/deploy (installed), the configured source tree. */
static int find_template(const submit_opts *o, char *path, size_t cap)
{
    const char *name = o->sched == SCHED_SLURM ? "slurm.sbatch.in" : "pbs.qsub.in";
    if (o->template_path) {
        snprintf(path, cap, "%s", o->template_path);
        if (file_exists(path)) return 0;
        fprintf(stderr, "mechir submit: --template %s: no such file\n", o->template_path);
        return 2;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", o->exe);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    char tried[4][PATH_MAX + 64];
    int n = 0;
    const char *env = getenv("MECHIR_DEPLOY_DIR");
    if (env && *env) snprintf(tried[n++], sizeof tried[0], "%s/%s", env, name);
    snprintf(tried[n++], sizeof tried[0], "%s/../deploy/%s", dir, name);
    snprintf(tried[n++], sizeof tried[0], "%s/../share/mechir/deploy/%s", dir, name);
#ifdef MCH_DEPLOY_DIR
    snprintf(tried[n++], sizeof tried[0], "%s/%s", MCH_DEPLOY_DIR, name);
#endif
    for (int k = 0; k < n; k++)
        if (file_exists(tried[k]) && strlen(tried[k]) < cap) {
            memcpy(path, tried[k], strlen(tried[k]) + 1);
            return 0;
        }
    fprintf(stderr,
            "mechir submit: template %s not found (tried %s and %s; give --template FILE)\n", name,
            tried[0], tried[n - 1]);
    return 1;
}

/* ---- templates ------------------------------------------------------------------------------- */

typedef struct {
    const char *name, *value; /* value NULL: nothing to put there */
} tvar;

/* Fills the template's @NAME@ placeholders from vars. A line that holds only a placeholder whose
 * value is empty is dropped; an unknown @NAME@ is an error naming the template line. */
static int render(const char *tpl_path, const char *tpl, const tvar *vars, size_t n_vars, sbuf *out)
{
    long line = 1;
    const char *p = tpl;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        /* A line of one placeholder with nothing to put there goes away. */
        if (len > 2 && p[0] == '@' && p[len - 1] == '@') {
            int drop = 0;
            for (size_t k = 0; k < n_vars; k++)
                if (strlen(vars[k].name) == len - 2 && !strncmp(p + 1, vars[k].name, len - 2))
                    drop = !vars[k].value || !*vars[k].value;
            if (drop) {
                p += len + (eol ? 1 : 0);
                line++;
                continue;
            }
        }
        for (size_t i = 0; i < len; i++) {
            size_t k = i + 1;
            while (k < len &&
                   ((p[k] >= 'A' && p[k] <= 'Z') || (p[k] >= '0' && p[k] <= '9') || p[k] == '_'))
                k++;
            if (p[i] != '@' || k == i + 1 || k >= len || p[k] != '@') {
                sb_addn(out, p + i, 1);
                continue;
            }
            size_t nl = k - i - 1;
            const tvar *v = NULL;
            for (size_t j = 0; j < n_vars && !v; j++)
                if (strlen(vars[j].name) == nl && !strncmp(p + i + 1, vars[j].name, nl))
                    v = &vars[j];
            if (!v) {
                fprintf(stderr, "mechir submit: %s:%ld: unknown placeholder @%.*s@\n", tpl_path,
                        line, (int)nl, p + i + 1);
                return 1;
            }
            if (v->value) sb_add(out, v->value);
            i = k;
        }
        if (eol) sb_add(out, "\n");
        p += len + (eol ? 1 : 0);
        line++;
    }
    if (out->oom) {
        fprintf(stderr, "mechir submit: out of memory\n");
        return 1;
    }
    return 0;
}

/* ---- sharding the input ---------------------------------------------------------------------- */

/* What a shard reads: the --input file, or the TREC run (or the qrels when there is no run;
 * with a run the qrels only give grades and stay whole). */
typedef struct {
    int at; /* index in the run options of the value to replace */
    mch_split_kind kind;
    char base[64]; /* file name inside OUT/shard-<i>/ */
} shard_plan;

static int plan_shards(const submit_opts *o, shard_plan *p)
{
    if (o->job_file)
        return usage_error("--shards needs the run options on the command line, not a job file");
    const char *src;
    const char *zst;
    if (o->input_at >= 0) {
        src = o->run[o->input_at];
        int jsonl = o->src.format ? !strcmp(o->src.format, "jsonl")
                                  : ends_with(src, ".jsonl") || ends_with(src, ".jsonl.zst");
        p->at = o->input_at;
        p->kind = jsonl ? MCH_SPLIT_JSONL : MCH_SPLIT_TSV;
        zst = ends_with(src, ".zst") ? ".zst" : "";
        snprintf(p->base, sizeof p->base, "input.%s%s", jsonl ? "jsonl" : "tsv", zst);
        return 0;
    }
    if (o->run_at >= 0 || o->qrels_at >= 0) {
        p->at = o->run_at >= 0 ? o->run_at : o->qrels_at;
        src = o->run[p->at];
        p->kind = MCH_SPLIT_TREC;
        zst = ends_with(src, ".zst") ? ".zst" : "";
        snprintf(p->base, sizeof p->base, "%s.txt%s", o->run_at >= 0 ? "run" : "qrels", zst);
        return 0;
    }
    return usage_error("--shards needs --input FILE, or a TREC --run or --qrels, in the run "
                       "options");
}

/* tdc and lnc1 choose terms by document frequency: computed over a shard's own documents they
 * would differ from the whole's, so the df table of the whole input is written once here. */
static int needs_df(const submit_opts *o)
{
    return o->input_at >= 0 && !o->df_given && o->src.perturb &&
           (!strcmp(o->src.perturb, "tdc") || !strcmp(o->src.perturb, "lnc1"));
}

static int write_df(const submit_opts *o, const char *path)
{
    if (!o->model) return usage_error("the run options have no --model DIR");
    mch_err err = {0};
    if (mch_shard_write_df(o->model, &o->src, path, &err)) {
        fprintf(stderr, "mechir submit: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "mechir submit: document frequencies of the whole input in %s\n", path);
    return 0;
}

/* ---- scripts --------------------------------------------------------------------------------- */

typedef enum { JOB_RUN, JOB_ARRAY, JOB_MERGE } job_kind;

static void fmt_time(char *buf, size_t cap, long s)
{
    snprintf(buf, cap, "%02ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* The directive value of the job's log: Slurm expands %j (job), %A_%a (array); PBS writes
 * <job name>.o<id> into a directory given with a trailing slash. */
static int log_value(const submit_opts *o, job_kind kind, sbuf *b)
{
    if (o->sched == SCHED_SLURM) {
        for (const char *p = o->out_abs; *p; p++)
            if ((unsigned char)*p < ' ' || *p == '"' || *p == 0x7f) {
                fprintf(stderr,
                        "mechir submit: --out %s cannot go into a #SBATCH line (no double "
                        "quotes or control characters)\n",
                        o->out_abs);
                return 1;
            }
        sb_add(b, "\"");
        for (const char *p = o->out_abs; *p; p++)
            sb_addn(b, *p == '%' ? "%%" : p, *p == '%' ? 2 : 1);
        sb_add(b, kind == JOB_ARRAY   ? "/slurm-%A_%a.out\""
                  : kind == JOB_MERGE ? "/slurm-merge-%j.out\""
                                      : "/slurm-%j.out\"");
        return 0;
    }
    if (!directive_safe(o->out_abs)) {
        fprintf(stderr,
                "mechir submit: --out %s cannot go into a #PBS line (no spaces, quotes or "
                "control characters)\n",
                o->out_abs);
        return 1;
    }
    sb_printf(b, "%s/", o->out_abs);
    return 0;
}

/* Renders one script into *script. */
static int make_script(const submit_opts *o, job_kind kind, const char *tpl_path, const char *tpl,
                       const shard_plan *plan, sbuf *script)
{
    int slurm = o->sched == SCHED_SLURM, rc = 1;
    sbuf log = {0}, extra = {0}, setup = {0}, args = {0}, sel = {0}, name = {0};
    sbuf workdir = {0}, mechir = {0}, out = {0};
    char nodes[16], rpn[16], cpt[16], tbuf[32], sig[16], warn[32], tsec[32], shards[16];
    long time_s = kind == JOB_MERGE && o->time_s > MERGE_TIME_CAP_S ? MERGE_TIME_CAP_S : o->time_s;
    int sig_s = o->signal_s < time_s ? o->signal_s : (int)(time_s / 3);
    snprintf(nodes, sizeof nodes, "%d", kind == JOB_MERGE ? 1 : o->nodes);
    snprintf(rpn, sizeof rpn, "%d", kind == JOB_MERGE ? 1 : o->ranks_per_node);
    snprintf(cpt, sizeof cpt, "%s", kind != JOB_MERGE && o->threads ? o->threads : "1");
    fmt_time(tbuf, sizeof tbuf, time_s);
    snprintf(sig, sizeof sig, "%d", sig_s);
    snprintf(warn, sizeof warn, "%ld", time_s - sig_s);
    snprintf(tsec, sizeof tsec, "%ld", time_s);
    snprintf(shards, sizeof shards, "%d", kind == JOB_RUN ? 0 : o->shards);
    if (log_value(o, kind, &log)) {
        rc = 2;
        goto out;
    }

    if (o->job_name) {
        sb_add(&name, o->job_name);
    } else {
        const char *base = strrchr(o->out_abs, '/');
        base = base && base[1] ? base + 1 : o->out_abs;
        sb_add(&name, "mechir-");
        for (const char *p = base; *p; p++)
            sb_addn(&name, strchr(" \t\"'\\", *p) || (unsigned char)*p < ' ' ? "_" : p, 1);
    }
    if (kind == JOB_MERGE) sb_add(&name, "-merge");

    const char *pfx = slurm ? "#SBATCH " : "#PBS ";
    if (o->partition)
        sb_printf(&extra, "%s%s%s\n", pfx, slurm ? "--partition=" : "-q ", o->partition);
    if (o->account) sb_printf(&extra, "%s%s%s\n", pfx, slurm ? "--account=" : "-A ", o->account);
    if (o->mem && slurm) sb_printf(&extra, "#SBATCH --mem=%s\n", o->mem);
    if (kind == JOB_ARRAY)
        sb_printf(&extra, "%s%s0-%d\n", pfx, slurm ? "--array=" : "-J ", o->shards - 1);
    if (o->requeue && kind != JOB_MERGE)
        sb_add(&extra, "#SBATCH --requeue\n#SBATCH --open-mode=append\n");
    if (extra.n) extra.s[--extra.n] = 0; /* the template line ends the last one */

    /* PBS Pro resources: one chunk per node with its ranks (and memory). */
    sb_printf(&sel, "select=%s:ncpus=%d:mpiprocs=%s", nodes,
              (kind == JOB_MERGE ? 1 : o->ranks_per_node) * atoi(cpt), rpn);
    if (o->mem) {
        size_t n = strlen(o->mem);
        char unit = o->mem[n - 1];
        if (unit >= '0' && unit <= '9')
            sb_printf(&sel, ":mem=%smb", o->mem);
        else
            sb_printf(&sel, ":mem=%.*s%cb", (int)(n - 1), o->mem, unit - 'A' + 'a');
    }

    if (kind == JOB_ARRAY) {
        sb_add(&setup, slurm ? "i=${SLURM_ARRAY_TASK_ID:?not a job array task: submit with sbatch "
                               "--array}\n"
                             : "i=${PBS_ARRAY_INDEX:-${PBS_ARRAYID:?not a job array task: "
                               "submit with qsub -J}}\n");
        sb_add(&setup, "shard=\"$OUT/shard-$i\"\n");
    } else if (kind == JOB_MERGE) {
        sb_printf(&setup,
                  "maps=()\nfor ((i = 0; i < %d; i++)); do maps+=(\"$OUT/shard-$i/circuit.cmap\"); "
                  "done\n",
                  o->shards);
    }
    if (setup.n) setup.s[--setup.n] = 0;

    if (kind == JOB_MERGE) {
        sb_add(&args, "merge \"${maps[@]}\" -o \"$OUT/circuit.cmap\"");
    } else {
        sb_add(&args, "run");
        for (int i = 0; i < o->n_run; i++) {
            sb_add(&args, " ");
            if (kind == JOB_ARRAY && i == plan->at)
                sb_printf(&args, "\"$shard/%s\"", plan->base);
            else if (kind == JOB_ARRAY && i == o->out_at)
                sb_add(&args, "\"$shard\"");
            else
                sb_quote(&args, o->run[i]);
        }
        if (kind == JOB_ARRAY && needs_df(o)) sb_add(&args, " --df \"$OUT/df.tsv\"");
        if (!o->has_resume) sb_add(&args, " --resume");
    }
    sb_quote(&workdir, o->cwd);
    sb_quote(&mechir, o->exe);
    sb_quote(&out, o->out_abs);

    tvar vars[] = {
        {"JOB_NAME", sb_str(&name)},
        {"LOG", sb_str(&log)},
        {"NODES", nodes},
        {"RANKS_PER_NODE", rpn},
        {"CPUS_PER_TASK", cpt},
        {"TIME", tbuf},
        {"TIME_SECONDS", tsec},
        {"SIGNAL_SECONDS", sig},
        {"WARN_AFTER_SECONDS", warn},
        {"SELECT", sb_str(&sel)},
        {"EXTRA_DIRECTIVES", sb_str(&extra)},
        {"WORKDIR", sb_str(&workdir)},
        {"MECHIR", sb_str(&mechir)},
        {"OUT", sb_str(&out)},
        {"SETUP", sb_str(&setup)},
        {"ARGS", sb_str(&args)},
        {"LAUNCHER", kind == JOB_MERGE ? "none" : o->launcher},
        {"REQUEUE", o->requeue && kind != JOB_MERGE ? "1" : "0"},
        {"SHARDS", shards},
        {"VERSION", MCH_VERSION},
    };
    sbuf *all[] = {&log, &extra, &setup, &args, &sel, &name, &workdir, &mechir, &out};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (all[k]->oom) {
            fprintf(stderr, "mechir submit: out of memory\n");
            goto out;
        }
    rc = render(tpl_path, tpl, vars, sizeof vars / sizeof vars[0], script);
out:
    free(log.s), free(extra.s), free(setup.s), free(args.s), free(sel.s), free(name.s);
    free(workdir.s), free(mechir.s), free(out.s);
    return rc;
}

/* ---- submitting ------------------------------------------------------------------------------ */

/* Runs argv, returns its stdout's first line (trimmed) in id, or 1 after a message. */
static int run_capture(char *const argv[], char *id, size_t cap)
{
    int fd[2];
    if (pipe(fd)) {
        fprintf(stderr, "mechir submit: pipe: %s\n", strerror(errno));
        return 1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e) {
        close(fd[0]);
        fprintf(stderr, "mechir submit: cannot run %s: %s (--dry-run prints the script)\n", argv[0],
                strerror(e));
        return 1;
    }
    sbuf b = {0};
    char chunk[512];
    ssize_t n;
    while ((n = read(fd[0], chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) sb_addn(&b, chunk, (size_t)n);
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    const char *s = sb_str(&b);
    size_t len = strcspn(s, "\r\n");
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && len > 0 && len < cap;
    if (ok) {
        memcpy(id, s, len);
        id[len] = 0;
    } else {
        fprintf(stderr, "mechir submit: %s failed (%s %d)%s%.*s\n", argv[0],
                WIFEXITED(st) ? "exit status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), len ? ": " : "", (int)len, s);
    }
    free(b.s);
    return !ok;
}

/* Writes the script atomically, executable. */
static int write_script(const char *path, const sbuf *s)
{
    mch_outfile of;
    if (mch_outfile_open(&of, path) || fwrite(s->s, 1, s->n, of.f) != s->n ||
        fchmod(fileno(of.f), 0755) || mch_outfile_commit(&of)) {
        fprintf(stderr, "mechir submit: %s: %s\n", path, strerror(errno));
        if (of.f) mch_outfile_abort(&of);
        return 1;
    }
    return 0;
}

static int submit(const submit_opts *o, const char *script, const char *after, char *id, size_t cap)
{
    char dep[256];
    char *argv[6];
    int n = 0;
    if (o->sched == SCHED_SLURM) {
        argv[n++] = (char *)"sbatch";
        argv[n++] = (char *)"--parsable";
        if (after) snprintf(dep, sizeof dep, "--dependency=afterok:%s", after), argv[n++] = dep;
    } else {
        argv[n++] = (char *)"qsub";
        if (after) {
            argv[n++] = (char *)"-W";
            snprintf(dep, sizeof dep, "depend=afterok:%s", after);
            argv[n++] = dep;
        }
    }
    argv[n++] = (char *)script;
    argv[n] = NULL;
    if (!o->dry_run) {
        if (run_capture(argv, id, cap)) return 1;
        /* sbatch --parsable prints "id" or "id;cluster". */
        if (o->sched == SCHED_SLURM) id[strcspn(id, ";")] = 0;
        return 0;
    }
    fprintf(stderr, "mechir submit: dry run: would write %s and run:", script);
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    return 0;
}

/* ---- the command ----------------------------------------------------------------------------- */

int mch_cmd_submit(int argc, char **argv)
{
    submit_opts o = {0};
    o.nodes = 1;
    o.ranks_per_node = 2;
    cJSON *job = NULL;
    char *tpl = NULL;
    sbuf run_s = {0}, merge_s = {0};
    int status = parse_args(&o, argc, argv);
    if (status >= 0) goto out;
    if ((status = scan_run_opts(&o))) goto out;
    if (o.job_file && (status = read_job_file(&o, &job))) goto out;
    status = 2;
    if (!o.out) {
        usage_error("the run options have no --out DIR (after '--')");
        goto out;
    }
    shard_plan plan = {-1, MCH_SPLIT_TSV, ""};
    if (o.shards > 1 && plan_shards(&o, &plan)) goto out;
    status = 1;

    if (!getcwd(o.cwd, sizeof o.cwd)) {
        fprintf(stderr, "mechir submit: getcwd: %s\n", strerror(errno));
        goto out;
    }
    ssize_t n = readlink("/proc/self/exe", o.exe, sizeof o.exe - 1);
    if (n <= 0) {
        fprintf(stderr, "mechir submit: cannot find the mechir program: /proc/self/exe: %s\n",
                strerror(errno));
        goto out;
    }
    o.exe[n] = 0;
    int wn = o.out[0] == '/' ? snprintf(o.out_abs, sizeof o.out_abs, "%s", o.out)
                             : snprintf(o.out_abs, sizeof o.out_abs, "%s/%s", o.cwd, o.out);
    if (wn < 0 || (size_t)wn >= sizeof o.out_abs) {
        fprintf(stderr, "mechir submit: --out %s: path too long\n", o.out);
        goto out;
    }
    while (strlen(o.out_abs) > 1 && o.out_abs[strlen(o.out_abs) - 1] == '/')
        o.out_abs[strlen(o.out_abs) - 1] = 0;

    char tpl_path[PATH_MAX + 64];
    int tr = find_template(&o, tpl_path, sizeof tpl_path);
    if (tr) {
        status = tr;
        goto out;
    }
    FILE *f = fopen(tpl_path, "rb");
    sbuf tb = {0};
    if (f) {
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) sb_addn(&tb, chunk, got);
        fclose(f);
    }
    tpl = tb.s;
    if (!f || tb.oom || !tpl) {
        fprintf(stderr, "mechir submit: %s: %s\n", tpl_path,
                f ? "empty or too large" : strerror(errno));
        goto out;
    }

    int sharded = o.shards > 1;
    const char *sched = o.sched == SCHED_SLURM ? "slurm" : "pbs";
    char run_path[PATH_MAX + 64], merge_path[PATH_MAX + 64];
    snprintf(run_path, sizeof run_path, "%s/mechir-%s.sh", o.out_abs, sched);
    snprintf(merge_path, sizeof merge_path, "%s/mechir-%s-merge.sh", o.out_abs, sched);
    int mr = make_script(&o, sharded ? JOB_ARRAY : JOB_RUN, tpl_path, tpl, &plan, &run_s);
    if (!mr && sharded) mr = make_script(&o, JOB_MERGE, tpl_path, tpl, &plan, &merge_s);
    if (mr) {
        status = mr;
        goto out;
    }

    if (o.dry_run) {
        if (sharded) printf("# ==> %s <==\n", run_path);
        fwrite(run_s.s, 1, run_s.n, stdout);
        if (sharded) {
            printf("# ==> %s <==\n", merge_path);
            fwrite(merge_s.s, 1, merge_s.n, stdout);
        }
        if (sharded)
            fprintf(stderr,
                    "mechir submit: dry run: would split %s into %d shards in %s/shard-*/%s%s\n",
                    o.run[plan.at], o.shards, o.out_abs, plan.base,
                    needs_df(&o) ? " and write the whole input's document frequencies to df.tsv"
                                 : "");
        char none[8];
        status = submit(&o, run_path, NULL, none, sizeof none) ||
                         (sharded && submit(&o, merge_path, "<array job id>", none, sizeof none))
                     ? 1
                     : 0;
        goto out;
    }

    if (mkdir_p(o.out_abs)) {
        fprintf(stderr, "mechir submit: %s: %s\n", o.out_abs, strerror(errno));
        goto out;
    }
    if (sharded) {
        char df[PATH_MAX + 16];
        snprintf(df, sizeof df, "%s/df.tsv", o.out_abs);
        long lo, hi;
        mch_err err = {0};
        if (mch_shard_split(o.run[plan.at], plan.kind, o.out_abs, plan.base, o.shards, &lo, &hi,
                            &err)) {
            fprintf(stderr, "mechir submit: %s\n", err.msg);
            goto out;
        }
        fprintf(stderr,
                "mechir submit: split %s into %d shards of %ld to %ld lines: %s/shard-*/%s\n",
                o.run[plan.at], o.shards, lo, hi, o.out_abs, plan.base);
        if (needs_df(&o) && write_df(&o, df)) goto out;
    }
    if (write_script(run_path, &run_s) || (sharded && write_script(merge_path, &merge_s))) goto out;
    char id[256], merge_id[256];
    if (submit(&o, run_path, NULL, id, sizeof id)) goto out;
    printf("%s\n", id);
    fflush(stdout);
    if (sharded) {
        if (submit(&o, merge_path, id, merge_id, sizeof merge_id)) goto out;
        printf("%s\n", merge_id);
        fprintf(stderr, "mechir submit: job array %s (%d shards) and merge job %s; outputs in %s\n",
                id, o.shards, merge_id, o.out_abs);
    } else {
        fprintf(stderr, "mechir submit: job %s; script %s; outputs in %s\n", id, run_path,
                o.out_abs);
    }
    status = 0;
out:
    fflush(stdout); /* before any exit-time checker can end the process */
    free(tpl);
    free(run_s.s);
    free(merge_s.s);
    cJSON_Delete(job);
    return status;
}
