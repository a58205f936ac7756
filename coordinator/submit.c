/* Batch scripts for a `mechir run` from the deploy/ templates, and the sbatch/qsub call (see
 * submit.h). A script is a pure function of the options, the working directory, the program's
 * path and the template: every run option is shell-quoted, directive values are checked before
 * they reach a directive line, and an unknown placeholder is an error, never a silent blank. */
#include "submit.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirlock.h"
#include "fsutil.h"
#include "log.h"
#include "shard.h"

extern char **environ;

enum { DEFAULT_SIGNAL_S = 90, MERGE_TIME_CAP_S = 30 * 60 };

/* ---- growable strings ------------------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t n, cap;
    int oom; /* an allocation failed: the text is incomplete */
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

/* Reads a whole file into b: 0, or -1 with errno when it cannot be opened (b->oom: too large). */
static int sb_read_file(sbuf *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_addn(b, chunk, n);
    fclose(f);
    return 0;
}

/* ---- the options ----------------------------------------------------------------------------- */

typedef enum { JOB_RUN, JOB_ARRAY, JOB_MERGE } job_kind;

/* One submission, worked out once for all its scripts. */
typedef struct {
    const mch_submit_opts *o;
    const mch_submit_run *r;
    long time_s;
    int signal_s;
    const char *launcher;
    const char *out; /* the run's --out, or its job file's */
    cJSON *job;      /* the job file, while out points into it */
    char out_abs[PATH_MAX], cwd[PATH_MAX], exe[PATH_MAX];
    /* With shards: the run option whose value each task replaces by its shard's file. */
    int sharded, at;
    mch_split_kind kind;
    char base[64]; /* file name inside OUT/shard-<i>/ */
    char tpl_path[PATH_MAX + 64];
    char *tpl;
} submission;

void mch_submit_opts_init(mch_submit_opts *o)
{
    memset(o, 0, sizeof *o);
    o->nodes = 1;
    o->ranks_per_node = 2;
    o->run.input_at = o->run.run_at = o->run.qrels_at = o->run.out_at = -1;
}

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

/* Checks o and works out the limit, the warning signal's lead and the launcher into s. */
static mch_status check_opts(const mch_submit_opts *o, submission *s, mch_err *err)
{
    int slurm = o->sched == MCH_SCHED_SLURM;
    if (o->nodes < 1 || o->ranks_per_node < 1 || o->shards > MCH_SUBMIT_MAX_SHARDS)
        return mch_fail(err, MCH_ERR_ARG, "%d nodes, %d ranks per node, %d shards: out of range",
                        o->nodes, o->ranks_per_node, o->shards);
    if (!o->time)
        return mch_fail(err, MCH_ERR_ARG, "--time HH:MM:SS is required (the job's time limit)");
    if ((s->time_s = parse_time(o->time)) < 0)
        return mch_fail(err, MCH_ERR_ARG, "--time takes HH:MM:SS (like 01:30:00), got '%s'",
                        o->time);
    if (s->time_s < 60)
        return mch_fail(err, MCH_ERR_ARG,
                        "--time %s is below one minute, the smallest limit Slurm keeps", o->time);
    if (o->mem && !valid_mem(o->mem))
        return mch_fail(err, MCH_ERR_ARG,
                        "--mem takes a number of MB or a number with K, M, G or T, got '%s'",
                        o->mem);
    if (!slurm && o->requeue)
        return mch_fail(err, MCH_ERR_ARG,
                        "--requeue is for Slurm (PBS: submit the same command again)");
    s->launcher = o->launcher ? o->launcher : slurm ? "srun" : "mpirun";
    if (slurm ? strcmp(s->launcher, "srun") && strcmp(s->launcher, "mpirun")
              : strcmp(s->launcher, "mpirun"))
        return mch_fail(err, MCH_ERR_ARG, "--launcher takes %s, got '%s'",
                        slurm ? "srun or mpirun" : "mpirun (PBS)", s->launcher);
    s->signal_s = s->time_s / 3 < DEFAULT_SIGNAL_S ? (int)(s->time_s / 3) : DEFAULT_SIGNAL_S;
    if (o->signal_s > 0 && (s->signal_s = o->signal_s) >= s->time_s)
        return mch_fail(err, MCH_ERR_ARG,
                        "--signal-seconds %d must be below the time limit (%ld s)", o->signal_s,
                        s->time_s);
    const char *names[] = {"--partition", "--account", "--job-name"};
    const char *vals[] = {o->partition, o->account, o->job_name};
    for (int k = 0; k < 3; k++)
        if (vals[k] && !directive_safe(vals[k]))
            return mch_fail(err, MCH_ERR_ARG,
                            "%s '%s' cannot go into a directive line (no spaces, quotes or "
                            "control characters)",
                            names[k], vals[k]);
    return MCH_OK;
}

mch_status mch_submit_check(const mch_submit_opts *o, mch_err *err)
{
    submission s = {0};
    return check_opts(o, &s, err);
}

/* Reads "out" from the job file given as the first run option (the run options' --out wins). */
static mch_status read_job_out(submission *s, mch_err *err)
{
    const char *path = s->r->argv[0];
    sbuf b = {0};
    if (sb_read_file(&b, path)) return mch_fail(err, MCH_ERR_ARG, "%s: %s", path, strerror(errno));
    cJSON *j = b.oom ? NULL : mch_json_parse_exact(sb_str(&b), b.n);
    char why[160];
    int bad = !cJSON_IsObject(j) || mch_json_check(j, sb_str(&b), b.n, NULL, why, sizeof why);
    free(b.s);
    if (bad) {
        mch_status rc = mch_fail(err, MCH_ERR_ARG, "%s: %s", path,
                                 cJSON_IsObject(j) ? why : "not a JSON object of run options");
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "out");
    if (cJSON_IsString(out) && !s->out) s->out = out->valuestring;
    s->job = j;
    return MCH_OK;
}

/* tdc and lnc1 choose terms by document frequency: computed over a shard's own documents they
 * would differ from the whole's, so the df table of the whole input is written once here. */
static int needs_df(const mch_submit_run *r)
{
    return r->input_at >= 0 && !r->df_given && r->src.perturb &&
           (!strcmp(r->src.perturb, "tdc") || !strcmp(r->src.perturb, "lnc1"));
}

/* What a shard reads: the --input file, or the TREC run (or the qrels when there is no run;
 * with a run the qrels only give grades and stay whole). */
static mch_status plan_shards(submission *s, mch_err *err)
{
    const mch_submit_run *r = s->r;
    if (r->job_file)
        return mch_fail(err, MCH_ERR_ARG,
                        "--shards needs the run options on the command line, not a job file");
    if (r->input_at >= 0) {
        const char *src = r->argv[r->input_at];
        int jsonl = r->src.format
                        ? !strcmp(r->src.format, "jsonl")
                        : mch_ends_with(src, ".jsonl") || mch_ends_with(src, ".jsonl.zst");
        s->at = r->input_at;
        s->kind = jsonl ? MCH_SPLIT_JSONL : MCH_SPLIT_TSV;
        snprintf(s->base, sizeof s->base, "input.%s%s", jsonl ? "jsonl" : "tsv",
                 mch_ends_with(src, ".zst") ? ".zst" : "");
    } else if (r->run_at >= 0 || r->qrels_at >= 0) {
        s->at = r->run_at >= 0 ? r->run_at : r->qrels_at;
        s->kind = MCH_SPLIT_TREC;
        snprintf(s->base, sizeof s->base, "%s.txt%s", r->run_at >= 0 ? "run" : "qrels",
                 mch_ends_with(r->argv[s->at], ".zst") ? ".zst" : "");
    } else {
        return mch_fail(err, MCH_ERR_ARG,
                        "--shards needs --input FILE, or a TREC --run or --qrels, in the run "
                        "options");
    }
    if (needs_df(r) && !r->model)
        return mch_fail(err, MCH_ERR_ARG, "the run options have no --model DIR");
    return MCH_OK;
}

/* ---- paths ----------------------------------------------------------------------------------- */

/* The directory submit runs in, the program (the script runs the one that wrote it), and the
 * absolute output directory without trailing slashes. */
static mch_status find_paths(submission *s, mch_err *err)
{
    if (!getcwd(s->cwd, sizeof s->cwd))
        return mch_fail(err, MCH_ERR_IO, "getcwd: %s", strerror(errno));
    ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
    if (n <= 0)
        return mch_fail(err, MCH_ERR_IO, "cannot find the mechir program: /proc/self/exe: %s",
                        strerror(errno));
    s->exe[n] = 0;
    int wn = s->out[0] == '/' ? snprintf(s->out_abs, sizeof s->out_abs, "%s", s->out)
                              : snprintf(s->out_abs, sizeof s->out_abs, "%s/%s", s->cwd, s->out);
    if (wn < 0 || (size_t)wn >= sizeof s->out_abs)
        return mch_fail(err, MCH_ERR_IO, "--out %s: path too long", s->out);
    while (strlen(s->out_abs) > 1 && s->out_abs[strlen(s->out_abs) - 1] == '/')
        s->out_abs[strlen(s->out_abs) - 1] = 0;
    return MCH_OK;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The template: --template, $MECHIR_DEPLOY_DIR, <exe dir>/../deploy (a build directory inside
 * the source tree), <exe dir>/../share/mechir/deploy (installed), the configured source tree. */
static mch_status find_template(submission *s, mch_err *err)
{
    const char *name = s->o->sched == MCH_SCHED_SLURM ? "slurm.sbatch.in" : "pbs.qsub.in";
    if (s->o->template_path) {
        snprintf(s->tpl_path, sizeof s->tpl_path, "%s", s->o->template_path);
        if (file_exists(s->tpl_path)) return MCH_OK;
        return mch_fail(err, MCH_ERR_ARG, "--template %s: no such file", s->o->template_path);
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", s->exe);
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
        if (file_exists(tried[k]) && strlen(tried[k]) < sizeof s->tpl_path) {
            memcpy(s->tpl_path, tried[k], strlen(tried[k]) + 1);
            return MCH_OK;
        }
    return mch_fail(err, MCH_ERR_IO,
                    "template %s not found (tried %s and %s; give --template FILE)", name, tried[0],
                    tried[n - 1]);
}

static mch_status load_template(submission *s, mch_err *err)
{
    sbuf b = {0};
    int opened = sb_read_file(&b, s->tpl_path) == 0;
    s->tpl = b.s;
    if (!opened || b.oom || !s->tpl)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", s->tpl_path,
                        opened ? "empty or too large" : strerror(errno));
    return MCH_OK;
}

/* Everything a script needs before rendering, in the order the errors are reported. */
static mch_status prepare(submission *s, mch_err *err)
{
    mch_status rc = check_opts(s->o, s, err);
    if (!rc && s->r->job_file) rc = read_job_out(s, err);
    if (rc) return rc;
    if (!s->out)
        return mch_fail(err, MCH_ERR_ARG, "the run options have no --out DIR (after '--')");
    s->sharded = s->o->shards > 1;
    if (s->sharded && (rc = plan_shards(s, err))) return rc;
    if ((rc = find_paths(s, err)) || (rc = find_template(s, err))) return rc;
    return load_template(s, err);
}

/* ---- templates ------------------------------------------------------------------------------- */

typedef struct {
    const char *name, *value; /* value NULL: nothing to put there */
} tvar;

static const tvar *find_var(const tvar *vars, size_t n_vars, const char *name, size_t len)
{
    for (size_t k = 0; k < n_vars; k++)
        if (strlen(vars[k].name) == len && !strncmp(name, vars[k].name, len)) return &vars[k];
    return NULL;
}

/* Fills the template's @NAME@ placeholders from vars. A line that holds only a placeholder whose
 * value is empty is dropped; an unknown @NAME@ is an error naming the template line. */
static mch_status render(const char *tpl_path, const char *tpl, const tvar *vars, size_t n_vars,
                         sbuf *out, mch_err *err)
{
    long line = 1;
    for (const char *p = tpl; *p; line++) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        /* A line of one placeholder with nothing to put there goes away. */
        const tvar *whole = len > 2 && p[0] == '@' && p[len - 1] == '@'
                                ? find_var(vars, n_vars, p + 1, len - 2)
                                : NULL;
        int drop = whole && (!whole->value || !*whole->value);
        for (size_t i = 0; i < len && !drop; i++) {
            size_t k = i + 1;
            while (k < len &&
                   ((p[k] >= 'A' && p[k] <= 'Z') || (p[k] >= '0' && p[k] <= '9') || p[k] == '_'))
                k++;
            if (p[i] != '@' || k == i + 1 || k >= len || p[k] != '@') {
                sb_addn(out, p + i, 1);
                continue;
            }
            const tvar *v = find_var(vars, n_vars, p + i + 1, k - i - 1);
            if (!v)
                return mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: unknown placeholder @%.*s@", tpl_path,
                                line, (int)(k - i - 1), p + i + 1);
            if (v->value) sb_add(out, v->value);
            i = k;
        }
        if (eol && !drop) sb_add(out, "\n");
        p += len + (eol ? 1 : 0);
    }
    return out->oom ? mch_fail(err, MCH_ERR_NOMEM, "out of memory") : MCH_OK;
}

/* ---- scripts --------------------------------------------------------------------------------- */

/* The values of one script's placeholders. */
typedef struct {
    sbuf log, extra, setup, args, sel, name, workdir, mechir, out;
    char nodes[16], rpn[16], cpt[16], time[32], tsec[32], sig[16], warn[32], shards[16];
} script_vals;

static void put_numbers(const submission *s, job_kind kind, script_vals *v)
{
    const mch_submit_opts *o = s->o;
    long time_s = kind == JOB_MERGE && s->time_s > MERGE_TIME_CAP_S ? MERGE_TIME_CAP_S : s->time_s;
    int sig_s = s->signal_s < time_s ? s->signal_s : (int)(time_s / 3);
    snprintf(v->nodes, sizeof v->nodes, "%d", kind == JOB_MERGE ? 1 : o->nodes);
    snprintf(v->rpn, sizeof v->rpn, "%d", kind == JOB_MERGE ? 1 : o->ranks_per_node);
    snprintf(v->cpt, sizeof v->cpt, "%s", kind != JOB_MERGE && s->r->threads ? s->r->threads : "1");
    snprintf(v->time, sizeof v->time, "%02ld:%02ld:%02ld", time_s / 3600, time_s / 60 % 60,
             time_s % 60);
    snprintf(v->sig, sizeof v->sig, "%d", sig_s);
    snprintf(v->warn, sizeof v->warn, "%ld", time_s - sig_s);
    snprintf(v->tsec, sizeof v->tsec, "%ld", time_s);
    snprintf(v->shards, sizeof v->shards, "%d", kind == JOB_RUN ? 0 : o->shards);
}

/* The directive value of the job's log: Slurm expands %j (job), %A_%a (array); PBS writes
 * <job name>.o<id> into a directory given with a trailing slash. */
static mch_status log_value(const submission *s, job_kind kind, sbuf *b, mch_err *err)
{
    if (s->o->sched == MCH_SCHED_SLURM) {
        for (const char *p = s->out_abs; *p; p++)
            if ((unsigned char)*p < ' ' || *p == '"' || *p == 0x7f)
                return mch_fail(err, MCH_ERR_ARG,
                                "--out %s cannot go into a #SBATCH line (no double quotes or "
                                "control characters)",
                                s->out_abs);
        sb_add(b, "\"");
        for (const char *p = s->out_abs; *p; p++)
            sb_addn(b, *p == '%' ? "%%" : p, *p == '%' ? 2 : 1);
        sb_add(b, kind == JOB_ARRAY   ? "/slurm-%A_%a.out\""
                  : kind == JOB_MERGE ? "/slurm-merge-%j.out\""
                                      : "/slurm-%j.out\"");
        return MCH_OK;
    }
    if (!directive_safe(s->out_abs))
        return mch_fail(err, MCH_ERR_ARG,
                        "--out %s cannot go into a #PBS line (no spaces, quotes or control "
                        "characters)",
                        s->out_abs);
    sb_printf(b, "%s/", s->out_abs);
    return MCH_OK;
}

/* --job-name, or mechir-<last part of OUT> with characters a directive cannot hold as _. */
static void job_name(const submission *s, job_kind kind, sbuf *b)
{
    if (s->o->job_name) {
        sb_add(b, s->o->job_name);
    } else {
        const char *base = strrchr(s->out_abs, '/');
        base = base && base[1] ? base + 1 : s->out_abs;
        sb_add(b, "mechir-");
        for (const char *p = base; *p; p++)
            sb_addn(b, strchr(" \t\"'\\", *p) || (unsigned char)*p < ' ' ? "_" : p, 1);
    }
    if (kind == JOB_MERGE) sb_add(b, "-merge");
}

/* Directive lines for the options given, without the last newline (the template's ends it). */
static void extra_directives(const submission *s, job_kind kind, sbuf *b)
{
    const mch_submit_opts *o = s->o;
    int slurm = o->sched == MCH_SCHED_SLURM;
    const char *pfx = slurm ? "#SBATCH " : "#PBS ";
    if (o->partition) sb_printf(b, "%s%s%s\n", pfx, slurm ? "--partition=" : "-q ", o->partition);
    if (o->account) sb_printf(b, "%s%s%s\n", pfx, slurm ? "--account=" : "-A ", o->account);
    if (o->mem && slurm) sb_printf(b, "#SBATCH --mem=%s\n", o->mem);
    if (kind == JOB_ARRAY)
        sb_printf(b, "%s%s0-%d\n", pfx, slurm ? "--array=" : "-J ", o->shards - 1);
    if (o->requeue && kind != JOB_MERGE)
        sb_add(b, "#SBATCH --requeue\n#SBATCH --open-mode=append\n");
    if (b->n) b->s[--b->n] = 0;
}

/* PBS Pro resources: one chunk per node with its ranks, a CPU per thread of each rank, and the
 * memory (PBS units are lower case with a b: 4G is mem=4gb, a plain number is MB). */
static void pbs_select(const submission *s, job_kind kind, const script_vals *v, sbuf *b)
{
    const char *mem = s->o->mem;
    sb_printf(b, "select=%s:ncpus=%d:mpiprocs=%s", v->nodes,
              (kind == JOB_MERGE ? 1 : s->o->ranks_per_node) * atoi(v->cpt), v->rpn);
    if (mem) {
        size_t n = strlen(mem);
        char unit = mem[n - 1];
        if (unit >= '0' && unit <= '9')
            sb_printf(b, ":mem=%smb", mem);
        else
            sb_printf(b, ":mem=%.*s%cb", (int)(n - 1), mem, unit - 'A' + 'a');
    }
}

/* Shell lines before the command: the array task's shard, or the merge job's list of maps. The
 * PBS index is PBS Pro's, Torque's, or Slurm's under slurm-wlm-torque's qsub (docs/deploy.md). */
static void setup_lines(const submission *s, job_kind kind, sbuf *b)
{
    if (kind == JOB_ARRAY) {
        sb_add(b, s->o->sched == MCH_SCHED_SLURM
                      ? "i=${SLURM_ARRAY_TASK_ID:?not a job array task: submit with sbatch "
                        "--array}\n"
                      : "i=${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-${SLURM_ARRAY_TASK_ID:?not a job "
                        "array task: submit with qsub -J}}}\n");
        sb_add(b, "shard=\"$OUT/shard-$i\"\n");
    } else if (kind == JOB_MERGE) {
        sb_printf(b,
                  "maps=()\nfor ((i = 0; i < %d; i++)); do maps+=(\"$OUT/shard-$i/circuit.cmap\"); "
                  "done\n",
                  s->o->shards);
    }
    if (b->n) b->s[--b->n] = 0;
}

/* The command's arguments: the run options quoted (an array task's own input and output
 * directory in place of the whole's) and --resume; or the merge of the shards' maps. */
static void command_args(const submission *s, job_kind kind, sbuf *b)
{
    const mch_submit_run *r = s->r;
    if (kind == JOB_MERGE) {
        sb_add(b, "merge \"${maps[@]}\" -o \"$OUT/circuit.cmap\"");
        return;
    }
    sb_add(b, "run");
    for (int i = 0; i < r->n; i++) {
        sb_add(b, " ");
        if (kind == JOB_ARRAY && i == s->at)
            sb_printf(b, "\"$shard/%s\"", s->base);
        else if (kind == JOB_ARRAY && i == r->out_at)
            sb_add(b, "\"$shard\"");
        else
            sb_quote(b, r->argv[i]);
    }
    if (kind == JOB_ARRAY && needs_df(r)) sb_add(b, " --df \"$OUT/df.tsv\"");
    if (!r->has_resume) sb_add(b, " --resume");
}

static void free_vals(script_vals *v)
{
    sbuf *all[] = {&v->log,  &v->extra,   &v->setup,  &v->args, &v->sel,
                   &v->name, &v->workdir, &v->mechir, &v->out};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) free(all[k]->s);
}

/* Renders one script into *script (appended). */
static mch_status make_script(const submission *s, job_kind kind, sbuf *script, mch_err *err)
{
    script_vals v = {0};
    put_numbers(s, kind, &v);
    mch_status rc = log_value(s, kind, &v.log, err);
    if (rc) return rc;
    job_name(s, kind, &v.name);
    extra_directives(s, kind, &v.extra);
    pbs_select(s, kind, &v, &v.sel);
    setup_lines(s, kind, &v.setup);
    command_args(s, kind, &v.args);
    sb_quote(&v.workdir, s->cwd);
    sb_quote(&v.mechir, s->exe);
    sb_quote(&v.out, s->out_abs);
    tvar vars[] = {
        {"JOB_NAME", sb_str(&v.name)},
        {"LOG", sb_str(&v.log)},
        {"NODES", v.nodes},
        {"RANKS_PER_NODE", v.rpn},
        {"CPUS_PER_TASK", v.cpt},
        {"TIME", v.time},
        {"TIME_SECONDS", v.tsec},
        {"SIGNAL_SECONDS", v.sig},
        {"WARN_AFTER_SECONDS", v.warn},
        {"SELECT", sb_str(&v.sel)},
        {"EXTRA_DIRECTIVES", sb_str(&v.extra)},
        {"WORKDIR", sb_str(&v.workdir)},
        {"MECHIR", sb_str(&v.mechir)},
        {"OUT", sb_str(&v.out)},
        {"SETUP", sb_str(&v.setup)},
        {"ARGS", sb_str(&v.args)},
        {"LAUNCHER", kind == JOB_MERGE ? "none" : s->launcher},
        {"REQUEUE", s->o->requeue && kind != JOB_MERGE ? "1" : "0"},
        {"SHARDS", v.shards},
        {"VERSION", MCH_VERSION},
    };
    int oom = v.log.oom | v.extra.oom | v.setup.oom | v.args.oom | v.sel.oom | v.name.oom |
              v.workdir.oom | v.mechir.oom | v.out.oom;
    rc = oom ? mch_fail(err, MCH_ERR_NOMEM, "out of memory")
             : render(s->tpl_path, s->tpl, vars, sizeof vars / sizeof vars[0], script, err);
    free_vals(&v);
    return rc;
}

/* Renders the script (and the merge job's) into res. */
static mch_status make_scripts(const submission *s, mch_submit_result *res, mch_err *err)
{
    const char *sched = s->o->sched == MCH_SCHED_SLURM ? "slurm" : "pbs";
    snprintf(res->path[0], sizeof res->path[0], "%s/mechir-%s.sh", s->out_abs, sched);
    snprintf(res->path[1], sizeof res->path[1], "%s/mechir-%s-merge.sh", s->out_abs, sched);
    res->n_scripts = s->sharded ? 2 : 1;
    for (int i = 0; i < res->n_scripts; i++) {
        sbuf b = {0};
        mch_status rc = make_script(s, !s->sharded ? JOB_RUN : i ? JOB_MERGE : JOB_ARRAY, &b, err);
        res->script[i] = b.s;
        res->len[i] = b.n;
        if (rc) return rc;
    }
    return MCH_OK;
}

/* ---- submitting ------------------------------------------------------------------------------ */

/* Runs argv, puts its stdout's first line (trimmed) in id. */
static mch_status run_capture(char *const argv[], char *id, size_t cap, mch_err *err)
{
    int fd[2];
    if (pipe(fd)) return mch_fail(err, MCH_ERR_IO, "pipe: %s", strerror(errno));
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
        return mch_fail(err, MCH_ERR_IO, "cannot run %s: %s (--dry-run prints the script)", argv[0],
                        strerror(e));
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
    const char *out = sb_str(&b);
    size_t len = strcspn(out, "\r\n");
    mch_status rc = MCH_OK;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && len > 0 && len < cap) {
        memcpy(id, out, len);
        id[len] = 0;
    } else {
        rc = mch_fail(err, MCH_ERR_IO, "%s failed (%s %d)%s%.*s", argv[0],
                      WIFEXITED(st) ? "exit status" : "signal",
                      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), len ? ": " : "", (int)len,
                      out);
    }
    free(b.s);
    return rc;
}

/* Submits script (after the job `after`, or NULL) and puts the job id in id; a dry run only
 * logs the command. */
static mch_status submit_job(const submission *s, const char *script, const char *after, char *id,
                             size_t cap, mch_err *err)
{
    char dep[256];
    char *argv[6];
    int n = 0;
    if (s->o->sched == MCH_SCHED_SLURM) {
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
    if (!s->o->dry_run) {
        mch_status rc = run_capture(argv, id, cap, err);
        /* sbatch --parsable prints "id" or "id;cluster". */
        if (!rc && s->o->sched == MCH_SCHED_SLURM) id[strcspn(id, ";")] = 0;
        return rc;
    }
    sbuf line = {0};
    for (int i = 0; i < n; i++) sb_add(&line, " "), sb_add(&line, argv[i]);
    mch_log_info("mechir submit: dry run: would write %s and run:%s", script, sb_str(&line));
    free(line.s);
    return MCH_OK;
}

/* Writes the script atomically, executable. */
static mch_status write_script(const char *path, const char *text, size_t len, mch_err *err)
{
    mch_outfile of;
    if (mch_outfile_open(&of, path) || fwrite(text, 1, len, of.f) != len ||
        fchmod(fileno(of.f), 0755) || mch_outfile_commit(&of)) {
        mch_status rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
        if (of.f) mch_outfile_abort(&of);
        return rc;
    }
    return MCH_OK;
}

/* The shards and the df table (with shards), and the scripts, into OUT. */
static mch_status write_locked(const submission *s, const mch_submit_result *res, mch_err *err)
{
    mch_status rc = MCH_OK;
    if (s->sharded) {
        const char *src = s->r->argv[s->at];
        long lo, hi;
        if ((rc = mch_shard_split(src, s->kind, s->out_abs, s->base, s->o->shards,
                                  (size_t)s->r->src.max_line_bytes, &lo, &hi, err)))
            return rc;
        mch_log_info("mechir submit: split %s into %d shards of %ld to %ld lines: %s/shard-*/%s",
                     src, s->o->shards, lo, hi, s->out_abs, s->base);
    }
    if (s->sharded && needs_df(s->r)) {
        char df[PATH_MAX + 16];
        snprintf(df, sizeof df, "%s/df.tsv", s->out_abs);
        if ((rc = mch_shard_write_df(s->r->model, &s->r->src, df, err))) return rc;
        mch_log_info("mechir submit: document frequencies of the whole input in %s", df);
    }
    for (int i = 0; !rc && i < res->n_scripts; i++)
        rc = write_script(res->path[i], res->script[i], res->len[i], err);
    return rc;
}

/* OUT, the shards and the df table (with shards), and the scripts; under OUT's lock, so they
 * are not rewritten under a run of OUT (or another submit) that is writing there. */
static mch_status write_outputs(const submission *s, const mch_submit_result *res, mch_err *err)
{
    if (mch_mkdir_p(s->out_abs))
        return mch_fail(err, MCH_ERR_IO, "%s: %s", s->out_abs, strerror(errno));
    mch_dir_lock lock;
    mch_status rc = mch_dir_lock_take(&lock, s->out_abs, "mechir submit", err);
    if (!rc) rc = write_locked(s, res, err);
    mch_dir_lock_release(&lock);
    return rc;
}

static mch_status write_and_submit(const submission *s, mch_submit_result *res, mch_err *err)
{
    mch_status rc = write_outputs(s, res, err);
    if (!rc) rc = submit_job(s, res->path[0], NULL, res->id[0], sizeof res->id[0], err);
    if (rc) return rc;
    if (!s->sharded) {
        mch_log_info("mechir submit: job %s; script %s; outputs in %s", res->id[0], res->path[0],
                     s->out_abs);
        return MCH_OK;
    }
    rc = submit_job(s, res->path[1], res->id[0], res->id[1], sizeof res->id[1], err);
    if (!rc)
        mch_log_info("mechir submit: job array %s (%d shards) and merge job %s; outputs in %s",
                     res->id[0], s->o->shards, res->id[1], s->out_abs);
    return rc;
}

static mch_status dry_run(const submission *s, const mch_submit_result *res, mch_err *err)
{
    if (s->sharded)
        mch_log_info("mechir submit: dry run: would split %s into %d shards in %s/shard-*/%s%s",
                     s->r->argv[s->at], s->o->shards, s->out_abs, s->base,
                     needs_df(s->r) ? " and write the whole input's document frequencies to df.tsv"
                                    : "");
    mch_status rc = submit_job(s, res->path[0], NULL, NULL, 0, err);
    if (!rc && s->sharded) rc = submit_job(s, res->path[1], "<array job id>", NULL, 0, err);
    return rc;
}

mch_status mch_submit(const mch_submit_opts *o, mch_submit_result *res, mch_err *err)
{
    memset(res, 0, sizeof *res);
    submission s = {.o = o, .r = &o->run, .out = o->run.out};
    mch_status rc = prepare(&s, err);
    if (!rc) rc = make_scripts(&s, res, err);
    if (!rc) rc = o->dry_run ? dry_run(&s, res, err) : write_and_submit(&s, res, err);
    free(s.tpl);
    cJSON_Delete(s.job);
    return rc;
}

void mch_submit_result_free(mch_submit_result *res)
{
    if (!res) return;
    for (int i = 0; i < 2; i++) free(res->script[i]);
    memset(res, 0, sizeof *res);
}
