/* `mechir run`: argv (and a JOB.json of the same options) to mch_run_coordinate on rank 0, and
 * the worker loop on ranks 1..N-1. Signals: rank 0 stops after the units in flight on SIGTERM,
 * SIGUSR1 and SIGINT (handlers installed before the inputs are read); workers ignore them.
 * Exit 0 done, 1 error (one line on stderr), 2 usage, 3 interrupted (resumable). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "log.h"
#include "ops.h"
#include "opts.h"
#include "rank.h"
#include "run.h"
#include "source_opts.h"
#include "worker.h"

enum { EXIT_INTERRUPTED = 3 };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = sig;
}

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir run [JOB.json] --model DIR --out DIR (input options) [options]\n"
            "       mpirun -np N mechir run ...   (rank 0 coordinates, ranks 1..N-1 work)\n"
            "\n"
            "Corpus-scale circuit discovery: builds perturbed pairs from the input, patches each\n"
            "pair with the chosen sweeps, and reduces the effects into circuit maps. Outputs in\n"
            "--out: circuit.cmap (protobuf), circuit.json, pairs.jsonl.zst (a JSON line a pair,\n"
            "a zstd frame per 64 pairs: zstd -dc reads it), run.json, job.json, journal.bin\n"
            "(resume), cache/ (with --cache), scores.bin and selection.json (with --select). A\n"
            "JOB.json holds the same options as keys without the dashes ({\"model\": \"DIR\",\n"
            "\"sweep\": \"heads,blocks\", \"select\": \"top-delta 2000\", ...}).\n"
            "\n"
            "  --model DIR          Hugging Face model directory (same path on every node)\n"
            "  --out DIR            output directory\n"
            "  --sweep LIST         heads, blocks, head-pos, qkv, pattern, resid-mid\n"
            "                       (comma-separated; default heads; docs/PATCHING.md)\n"
            "  --heads L.H,...      heads for head-pos\n"
            "  --method M           exact (default: one patched run per component), atp or\n"
            "                       atp-qk (attribution patching: every heads and blocks effect\n"
            "                       estimated from one backward pass a pair, the QK fix for\n"
            "                       atp-qk's heads; docs/ATP.md); atp takes neither head-pos\n"
            "                       nor --cache\n"
            "  --verify-top K       with atp or atp-qk: also patch exactly, in every pair, the K\n"
            "                       components of largest estimated score change (heads and\n"
            "                       blocks together; all when fewer) and, with blocks, the\n"
            "                       resid_pre rows where the ids differ; circuit.json's\n"
            "                       \"verified\" and the report compare them with the estimates\n"
            "  --min-delta D        skip pairs whose score changes less (default 1e-3)\n"
            "  --direction D        patch the pairs whose score moved with the axiom, against it,\n"
            "                       or any (default any; the others are skipped and counted)\n"
            "  --bootstrap B        Poisson bootstrap replicates for the intervals (default 200;\n"
            "                       0: none)\n"
            "  --ci LEVEL           level of the percentile intervals (default 0.95)\n"
            "  --select top-delta K score every pair first (two forwards, no patching), then\n"
            "                       patch only the K pairs with the largest score change\n"
            "                       perturbed - baseline (signed; ties by pair id); scores.bin\n"
            "                       journals the first pass, selection.json records the choice\n"
            "  --per-grade          with --select: K pairs per relevance grade (pairs without a\n"
            "                       grade form their own group)\n"
            "  --pooling cls|mean   bi-encoder pooling (default cls)\n"
            "  --cache HOOKS        store these activations of both runs (TransformerLens names,\n"
            "                       * for every layer: blocks.*.attn.hook_pattern,...)\n"
            "  --cache-dtype T      f32 (lossless, default), bf16 or fp16\n"
            "  --site NAME          site name recorded in the map's provenance\n"
            "  --pairs-format F     zst (default: pairs.jsonl.zst) or jsonl (plain pairs.jsonl)\n"
            "  --resume             continue an interrupted run in --out (the outputs are rebuilt\n"
            "                       from the journal, so --pairs-format may change)\n"
            "  --threads N          BLAS threads per rank (default 1)\n"
            "  --scratch-mb N       patching scratch memory per rank (default 256)\n"
            "  --unit-size N        pairs per work unit (default: adaptive)\n"
            "  --worker-timeout S   with several ranks: a worker holding a unit that sends\n"
            "                       nothing for S seconds (a dead node, a broken link) ends\n"
            "                       the job with exit 1 naming it; --resume continues (600)\n"
            "  -h, --help           this text\n"
            "\n%s\n"
            "Exit status: 0 done; 1 error; 2 usage; 3 interrupted by SIGTERM/SIGUSR1/SIGINT after\n"
            "finishing the units in flight (continue with --resume).\n",
            mch_source_help);
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct {
    mch_run_opts o;
    cJSON *given; /* the options as given, in order, for job.json */
} run_cli;

/* Records an option for job.json (a repeated option moves to the end with its last value). */
static void remember(void *user, const char *name, const char *val)
{
    cJSON *given = ((run_cli *)user)->given;
    cJSON_DeleteItemFromObjectCaseSensitive(given, name);
    if (val)
        cJSON_AddStringToObject(given, name, val);
    else
        cJSON_AddBoolToObject(given, name, 1);
}

static int min_delta_opt(void *user, const char *opt, const char *val)
{
    (void)opt;
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || *end || end == val || !(v > 0) || !isfinite(v)) {
        mch_log_error("mechir run: --min-delta needs a positive number");
        return -1;
    }
    ((run_cli *)user)->o.min_delta = v;
    return 0;
}

static int pairs_format_opt(void *user, const char *opt, const char *val)
{
    (void)opt;
    if (mch_pairs_format_parse(val, &((run_cli *)user)->o.pairs_format) == 0) return 0;
    mch_log_error("mechir run: --pairs-format takes zst or jsonl, got '%s'", val);
    return -1;
}

/* --select top-delta K (two argv words, or one value "top-delta K" in a job file). */
static int select_opt(void *user, const char *opt, const char *val)
{
    mch_run_opts *o = &((run_cli *)user)->o;
    const char *k = val + strlen("top-delta");
    if (strncmp(val, "top-delta", strlen("top-delta")) || *k != ' ') {
        mch_log_error("mechir run: %s takes top-delta K, got '%s'", opt, val);
        return -1;
    }
    while (*k == ' ') k++;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(k, &end, 10);
    if (*k < '0' || *k > '9' || errno || *end || v < 1) {
        mch_log_error("mechir run: %s top-delta needs an integer K >= 1, got '%s'", opt, k);
        return -1;
    }
    o->select = "top-delta";
    o->select_k = v;
    return 0;
}

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL with errno on failure. */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

/* The 1-based line of byte at in text. */
static long line_of(const char *text, size_t at)
{
    long line = 1;
    for (size_t i = 0; i < at; i++) line += text[i] == '\n';
    return line;
}

/* Applies the keys of a JOB.json (the long options without dashes); 0, or 2 after a message.
 * A number is passed on as its exact text (mch_json_check), so the option parses it as it
 * parses argv: a seed of 17 digits stays exact, 2.5 is not an integer. A string or key holding
 * a NUL and a repeated key are refused with the file's line. */
static int apply_job_file(mch_opts *p, const char *path, cJSON **json)
{
    size_t len = 0, at = 0;
    char *text = read_text(path, &len), why[160];
    int e = errno, was_read = text != NULL;
    cJSON *j = text ? mch_json_parse_exact(text, len) : NULL;
    *json = j;
    if (!j || !cJSON_IsObject(j)) {
        free(text);
        mch_log_error("mechir run: %s: %s", path,
                      was_read ? "not a JSON object of options" : strerror(e));
        return 2;
    }
    int bad = mch_json_check(j, text, len, &at, why, sizeof why);
    long line = bad ? line_of(text, at) : 0;
    free(text);
    if (bad) {
        mch_log_error("mechir run: %s:%ld: %s", path, line, why);
        return 2;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        const char *v = NULL;
        if (cJSON_IsString(it) || cJSON_IsNumber(it)) {
            v = it->valuestring;
        } else if (cJSON_IsFalse(it)) {
            continue;
        } else if (!cJSON_IsTrue(it)) {
            mch_log_error("mechir run: %s: key '%s' must be a string, number or boolean", path,
                          it->string);
            return 2;
        }
        int rc = mch_opts_apply(p, it->string, v);
        if (rc == 1) mch_log_error("mechir run: %s: unknown option '%s'", path, it->string);
        if (rc) return 2;
    }
    return 0;
}

/* Parses the options into c; @return -1 to run, or the exit status (0 after --help). */
static int parse_run_args(run_cli *c, int argc, char **argv, cJSON **job_json)
{
    *job_json = NULL;
    mch_run_opts *o = &c->o;
    mch_opt run[10 + 13];
    mch_source_opt_table src;
    mch_source_opt_table_init(&src, &o->src);
    static const char *const names[] = {"model", "out",         "site",    "sweep",     "heads",
                                        "cache", "cache-dtype", "pooling", "direction", "method"};
    const char **const dst[] = {&o->model, &o->out,         &o->site,    &o->sweep,     &o->heads,
                                &o->cache, &o->cache_dtype, &o->pooling, &o->direction, &o->method};
    mch_opt *t = mch_opts_strings(run, names, dst, 10);
    const mch_opt others[] = {{"min-delta", 0, MCH_OPT_FN, NULL, 0, 0, min_delta_opt, 1},
                              MCH_OPT_ROW_FN("pairs-format", pairs_format_opt, 1),
                              {"resume", 0, MCH_OPT_FLAG, &o->resume, 0, 0, NULL, 0},
                              {"threads", 0, MCH_OPT_INT, &o->threads, 1, 1024, NULL, 0},
                              {"scratch-mb", 0, MCH_OPT_INT, &o->scratch_mb, 1, 1 << 20, NULL, 0},
                              {"unit-size", 0, MCH_OPT_INT, &o->unit_size, 1, 1 << 16, NULL, 0},
                              MCH_OPT_ROW_INT("worker-timeout", &o->worker_timeout_s, 1, 1 << 24),
                              MCH_OPT_ROW_INT("bootstrap", &o->bootstrap, 0, MCH_BOOTSTRAP_MAX),
                              MCH_OPT_ROW_DOUBLE("ci", &o->ci, 0.5, 0.9999),
                              MCH_OPT_ROW_FN("select", select_opt, 2),
                              MCH_OPT_ROW_FLAG("per-grade", &o->per_grade),
                              MCH_OPT_ROW_INT("verify-top", &o->verify_top, 1, MCH_VERIFY_TOP_MAX),
                              {0}};
    memcpy(t, others, sizeof others);
    const mch_opt *const tabs[] = {run, src.opt, NULL};
    mch_opts p = {.cmd = "run", .tabs = tabs, .user = c, .seen = remember};
    if (!(c->given = cJSON_CreateObject())) return 1;
    int first = 1; /* a job file first: its keys are the long options without dashes */
    if (argc > 1 && strlen(argv[1]) > 5 && mch_ends_with(argv[1], ".json")) {
        if (apply_job_file(&p, argv[1], job_json)) return 2;
        first = 2;
    }
    if (mch_opts_parse(&p, argc, argv, first)) return 2;
    if (p.help) return run_usage(stdout), 0;
    if (!o->model || !o->out) {
        mch_log_error("mechir run: --model and --out are required (see --help)");
        return 2;
    }
    if (o->per_grade && !o->select) {
        mch_log_error("mechir run: --per-grade needs --select top-delta K");
        return 2;
    }
    return -1;
}

int mch_run_parse_args(int argc, char **argv, mch_run_opts *o, cJSON **given, cJSON **job)
{
    run_cli c = {0};
    c.o.bootstrap = -1;
    int status = parse_run_args(&c, argc, argv, job);
    *o = c.o;
    *given = c.given;
    return status;
}

/* ---- the local runner: the worker's functions, for a one-process run ------------------------
 */

typedef struct {
    mch_worker *w;
    int threads, scratch_mb;
} local_worker;

static mch_status local_open(void *ctx, const mch_job_spec *spec, const char *out_dir, int attempt,
                             mch_err *err)
{
    local_worker *l = ctx;
    return mch_worker_create(&l->w, spec, out_dir, 0, attempt, l->threads, l->scratch_mb, err);
}

static mch_status local_run(void *ctx, const mch_work_unit *u, mch_unit_result *res, mch_err *err)
{
    return mch_worker_run_unit(((local_worker *)ctx)->w, u, res, err);
}

static void local_close(void *ctx)
{
    local_worker *l = ctx;
    mch_worker_free(l->w);
    l->w = NULL;
}

/* ---- the command --------------------------------------------------------------------------
 */

/* Rank 0. Returns the exit status. */
static int coordinator(int argc, char **argv, int size)
{
    /* From the start: a scheduler's warning may come while the inputs are still being read. */
    signal(SIGTERM, on_signal);
    signal(SIGUSR1, on_signal);
    signal(SIGINT, on_signal);
    run_cli c = {0};
    cJSON *job_file = NULL;
    int status = mch_run_parse_args(argc, argv, &c.o, &c.given, &job_file);
    char *job = NULL, *job_compact = NULL;
    if (status < 0 &&
        (!(job = cJSON_Print(c.given)) || !(job_compact = cJSON_PrintUnformatted(c.given)))) {
        mch_log_error("mechir run: out of memory");
        status = 1;
    }
    if (status >= 0) {
        mch_dispatch_cancel(size);
    } else {
        local_worker lw = {NULL, c.o.threads ? c.o.threads : 1, c.o.scratch_mb};
        mch_local_runner local = {&lw, local_open, local_run, local_close};
        char blas[256];
        mch_blas_describe(blas, sizeof blas);
        c.o.blas = blas;
        c.o.job_json = job;
        c.o.job_compact = job_compact;
        c.o.stop = &stop_requested;
        c.o.summary = stdout;
        mch_err err = {0};
        int interrupted = 0;
        if (mch_run_coordinate(&c.o, size, &local, &interrupted, &err)) {
            mch_log_error("mechir run: %s", err.msg);
            status = 1;
        } else {
            status = interrupted ? EXIT_INTERRUPTED : 0;
        }
    }
    free(job);
    free(job_compact);
    cJSON_Delete(c.given);
    cJSON_Delete(job_file);
    return status;
}

int mch_cmd_run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            run_usage(stdout);
            return 0;
        }
    int rank = 0, size = 1;
    mch_mpi_start(&rank, &size);
    int status;
    if (rank == 0) {
        status = coordinator(argc, argv, size);
    } else {
        signal(SIGTERM, SIG_IGN); /* the coordinator decides when to stop */
        signal(SIGUSR1, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        status = mch_rank_run(rank);
    }
    mch_mpi_end(status); /* aborts the job when workers were lost */
    return status;
}
