/* `mechir run`: corpus-scale circuit discovery. Rank 0 is the coordinator (reads the inputs,
 * builds pairs, cuts them into work units bucketed by token length, hands a unit to each worker
 * that asks, journals every finished pair, and reduces the journal into circuit maps); ranks
 * 1..N-1 are workers. With one rank (no mpirun, or -np 1) the coordinator runs the units itself.
 *
 * Determinism: a pair's result depends only on the pair, and the reduction reads the journal in
 * pair order, so circuit.cmap is byte-for-byte the same for any number of ranks, any arrival
 * order, and any number of interruptions and resumes. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "fsutil.h"
#include "cmap.h"
#include "encoder.h"
#include "journal.h"
#include "jsonout.h"
#include "pairs_source.h"
#include "progress.h"
#include "sha256.h"
#include "worker.h"

enum { TAG_READY = 1, TAG_UNIT, TAG_RESULT, TAG_STOP, TAG_ERROR };
enum { EXIT_INTERRUPTED = 3 };
#define MAX_MSG_BYTES (512 << 20)
#define WINDOW_PAIRS 512

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = sig;
}

typedef struct {
    const char *model, *out, *site, *sweep, *heads, *cache, *cache_dtype, *pooling;
    double min_delta;
    int resume, threads, scratch_mb, unit_size;
    mch_source_opts src;
    cJSON *given; /* the options as given, for job.json */
} run_opts;

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir run [JOB.json] --model DIR --out DIR (input options) [options]\n"
            "       mpirun -np N mechir run ...   (rank 0 coordinates, ranks 1..N-1 work)\n"
            "\n"
            "Corpus-scale circuit discovery: builds perturbed pairs from the input, patches each\n"
            "pair with the chosen sweeps, and reduces the effects into circuit maps. Outputs in\n"
            "--out: circuit.cmap (protobuf), circuit.json, pairs.jsonl, run.json, job.json,\n"
            "journal.bin (resume), cache/ (with --cache). A JOB.json holds the same options as\n"
            "keys without the dashes ({\"model\": \"DIR\", \"sweep\": \"heads,blocks\", ...}).\n"
            "\n"
            "  --model DIR          Hugging Face model directory (same path on every node)\n"
            "  --out DIR            output directory\n"
            "  --sweep LIST         heads, blocks, head-pos (comma-separated; default heads)\n"
            "  --heads L.H,...      heads for head-pos\n"
            "  --min-delta D        skip pairs whose score changes less (default 1e-3)\n"
            "  --pooling cls|mean   bi-encoder pooling (default cls)\n"
            "  --cache HOOKS        store these activations of both runs (TransformerLens names,\n"
            "                       * for every layer: blocks.*.attn.hook_pattern,...)\n"
            "  --cache-dtype T      f32 (lossless, default), bf16 or fp16\n"
            "  --site NAME          site name recorded in the map's provenance\n"
            "  --resume             continue an interrupted run in --out\n"
            "  --threads N          BLAS threads per rank (default 1)\n"
            "  --scratch-mb N       patching scratch memory per rank (default 256)\n"
            "  --unit-size N        pairs per work unit (default: adaptive)\n"
            "  -h, --help           this text\n"
            "\n%s\n"
            "Exit status: 0 done; 1 error; 2 usage; 3 interrupted by SIGTERM/SIGUSR1/SIGINT after\n"
            "finishing the units in flight (continue with --resume).\n",
            mch_source_help);
}

/* ---- options --------------------------------------------------------------------------------- */

static int set_opt(run_opts *o, const char *key, const char *val, int *used_value)
{
    struct {
        const char *name;
        const char **dst;
    } strs[] = {{"model", &o->model},
                {"out", &o->out},
                {"site", &o->site},
                {"sweep", &o->sweep},
                {"heads", &o->heads},
                {"cache", &o->cache},
                {"cache-dtype", &o->cache_dtype},
                {"pooling", &o->pooling}};
    *used_value = 1;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!strcmp(key, strs[i].name)) {
            if (!val) return fprintf(stderr, "mechir run: --%s needs a value\n", key), -1;
            *strs[i].dst = val;
            return 1;
        }
    struct {
        const char *name;
        int *dst, lo, hi;
    } ints[] = {{"threads", &o->threads, 1, 1024},
                {"scratch-mb", &o->scratch_mb, 1, 1 << 20},
                {"unit-size", &o->unit_size, 1, 1 << 16}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(key, ints[i].name)) {
            char opt[32];
            snprintf(opt, sizeof opt, "--%s", key);
            return mch_cli_int(opt, val, ints[i].lo, ints[i].hi, ints[i].dst) ? 1 : -1;
        }
    if (!strcmp(key, "min-delta")) {
        char *end;
        errno = 0;
        o->min_delta = val ? strtod(val, &end) : -1;
        if (!val || errno || *end || !(o->min_delta > 0) || !isfinite(o->min_delta))
            return fprintf(stderr, "mechir run: --min-delta needs a positive number\n"), -1;
        return 1;
    }
    *used_value = 0;
    if (!strcmp(key, "resume")) return o->resume = 1;
    return 0;
}

/* Applies "--key value" (or a flag) from argv[*i]; 1 used, -1 error, 0 unknown. */
static int apply_arg(run_opts *o, int argc, char **argv, int *i)
{
    int r = mch_source_parse_arg(&o->src, argc, argv, i);
    const char *a = argv[*i];
    if (r) return r;
    if (strncmp(a, "--", 2)) return 0;
    int used;
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    r = set_opt(o, a + 2, val, &used);
    if (r > 0 && used) ++*i;
    return r;
}

/* Records an option for job.json. */
static void remember(run_opts *o, const char *key, const char *val)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o->given, key);
    if (val)
        cJSON_AddStringToObject(o->given, key, val);
    else
        cJSON_AddBoolToObject(o->given, key, 1);
}

static int parse_run_args(run_opts *o, int argc, char **argv, cJSON **job_json)
{
    o->given = cJSON_CreateObject();
    int first = 1;
    /* A job file first: its keys are the long options without dashes. */
    if (argc > 1 && strlen(argv[1]) > 5 && !strcmp(argv[1] + strlen(argv[1]) - 5, ".json")) {
        size_t len;
        FILE *f = fopen(argv[1], "rb");
        char *text = NULL;
        if (f) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            text = n >= 0 ? malloc((size_t)n + 1) : NULL;
            len = text ? fread(text, 1, (size_t)n, f) : 0;
            if (text) text[len] = 0;
            fclose(f);
        }
        cJSON *j = text ? mch_json_parse_exact(text, len) : NULL;
        free(text);
        if (!j || !cJSON_IsObject(j)) {
            fprintf(stderr, "mechir run: %s: %s\n", argv[1],
                    f ? "not a JSON object of options" : strerror(errno));
            cJSON_Delete(j);
            return 2;
        }
        *job_json = j;
        const cJSON *it;
        cJSON_ArrayForEach(it, j)
        {
            char key[80], val[64];
            snprintf(key, sizeof key, "--%s", it->string);
            const char *v = NULL;
            if (cJSON_IsString(it))
                v = it->valuestring;
            else if (cJSON_IsNumber(it)) {
                snprintf(val, sizeof val, "%.17g", it->valuedouble);
                v = val;
            } else if (cJSON_IsTrue(it))
                v = NULL;
            else if (cJSON_IsFalse(it))
                continue;
            else {
                fprintf(stderr, "mechir run: %s: key '%s' must be a string, number or boolean\n",
                        argv[1], it->string);
                return 2;
            }
            char *av[3] = {NULL, key, (char *)v};
            int i = 1, r = apply_arg(o, v ? 3 : 2, av, &i);
            if (r <= 0) {
                if (!r)
                    fprintf(stderr, "mechir run: %s: unknown option '%s'\n", argv[1], it->string);
                return 2;
            }
            remember(o, it->string, v);
        }
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage(stdout);
            return 0;
        }
        int start = i;
        int r = apply_arg(o, argc, argv, &i);
        if (r < 0) return 2;
        if (!r) {
            fprintf(stderr, "mechir run: unknown option or argument '%s' (see --help)\n", a);
            return 2;
        }
        remember(o, argv[start] + 2, i > start ? argv[i] : NULL);
    }
    if (!o->model || !o->out) {
        fprintf(stderr, "mechir run: --model and --out are required (see --help)\n");
        return 2;
    }
    return -1;
}

/* ---- the job spec ---------------------------------------------------------------------------- */

typedef struct {
    Mechir__JobSpec s;
    char sha[65], vocab_sha[65];
    char *sweeps[4];
    uint32_t *head_list;
    char **cache;
    char *cache_buf;
    char inputs[1024];
} spec_store;

static int parse_heads_list(const char *s, uint32_t **out, size_t *n)
{
    size_t cap = 16, k = 0;
    uint32_t *v = malloc(cap * sizeof *v);
    const char *p = s;
    while (v && *p) {
        char *end;
        long l = strtol(p, &end, 10);
        if (end == p || *end != '.' || l < 0) goto bad;
        p = end + 1;
        long h = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || h < 0) goto bad;
        if (k + 2 > cap) {
            uint32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) goto bad;
            v = nv;
        }
        v[k++] = (uint32_t)l;
        v[k++] = (uint32_t)h;
        p = *end ? end + 1 : end;
    }
    *out = v;
    *n = k;
    return v && k > 0;
bad:
    free(v);
    return 0;
}

static mch_status build_spec(spec_store *ss, const run_opts *o, const mch_model_meta *m,
                             mch_err *err)
{
    Mechir__JobSpec *s = &ss->s;
    mechir__job_spec__init(s);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->model);
    mch_status rc = mch_sha256_file(path, ss->sha, err);
    snprintf(path, sizeof path, "%s/vocab.txt", o->model);
    if (!rc) rc = mch_sha256_file(path, ss->vocab_sha, err);
    if (rc) return rc;
    s->format = (char *)"mechir-job/1";
    s->model_path = (char *)o->model;
    s->model_sha256 = ss->sha;
    s->arch = (char *)mch_arch_name(m->cfg.arch);
    s->architecture = (char *)m->cfg.architecture;
    s->layers = (uint32_t)m->cfg.L;
    s->heads = (uint32_t)m->cfg.NH;
    s->hidden = (uint32_t)m->cfg.C;
    s->vocab_hash = ss->vocab_sha;
    s->perturbation = (char *)(o->src.perturb ? o->src.perturb : "tfc1");
    /* Sweeps in a fixed order, whatever order they were given in. */
    const char *sweep = o->sweep ? o->sweep : "heads";
    static const char *const known[] = {"heads", "blocks", "head-pos", "none"};
    int want[4] = {0};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", sweep);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int found = 0;
        for (int k = 0; k < 4; k++)
            if (!strcmp(t, known[k])) want[k] = found = 1;
        if (!found)
            return mch_fail(err, MCH_ERR_ARG,
                            "--sweep: unknown sweep '%s' (heads, blocks, head-pos, none)", t);
    }
    for (int k = 0; k < 4; k++)
        if (want[k]) ss->sweeps[s->n_sweeps++] = (char *)known[k];
    if (want[3] && s->n_sweeps > 1)
        return mch_fail(err, MCH_ERR_ARG, "--sweep none cannot be combined with other sweeps");
    s->sweeps = ss->sweeps;
    if (o->heads && !parse_heads_list(o->heads, &ss->head_list, &s->n_head_list))
        return mch_fail(err, MCH_ERR_ARG, "--heads takes LAYER.HEAD pairs like 0.1,2.3, got '%s'",
                        o->heads);
    if (want[2] && !s->n_head_list)
        return mch_fail(err, MCH_ERR_ARG, "--sweep head-pos needs --heads");
    if (!want[2]) s->n_head_list = 0; /* heads only matter to head-pos */
    s->head_list = ss->head_list;
    for (size_t k = 0; k < s->n_head_list / 2; k++)
        if ((int)s->head_list[2 * k] >= m->cfg.L || (int)s->head_list[2 * k + 1] >= m->cfg.NH)
            return mch_fail(err, MCH_ERR_ARG,
                            "--heads: head %u.%u is outside the model (%d layers, %d heads)",
                            s->head_list[2 * k], s->head_list[2 * k + 1], m->cfg.L, m->cfg.NH);
    s->max_len = (uint32_t)(o->src.max_len ? o->src.max_len : m->cfg.max_pos);
    s->min_delta = o->min_delta > 0 ? o->min_delta : 1e-3;
    s->seed = o->src.seed;
    s->software_version = (char *)MCH_VERSION;
    s->position = (char *)(o->src.position ? o->src.position : "end");
    s->filler = (char *)(o->src.filler ? o->src.filler : "a");
    s->stem = o->src.stem;
    s->max_query_len = (uint32_t)(o->src.max_query_len ? o->src.max_query_len : 64);
    s->pooling = (char *)(o->pooling ? o->pooling : "cls");
    if (strcmp(s->pooling, "cls") && strcmp(s->pooling, "mean"))
        return mch_fail(err, MCH_ERR_ARG, "--pooling takes cls or mean, got '%s'", s->pooling);
    if (o->cache) {
        ss->cache_buf = strdup(o->cache);
        ss->cache = calloc(strlen(o->cache) + 1, sizeof *ss->cache);
        if (!ss->cache_buf || !ss->cache) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        for (char *t = strtok(ss->cache_buf, ","); t; t = strtok(NULL, ",")) {
            char name[128];
            mch_site site;
            int layer;
            snprintf(name, sizeof name, "%s", t);
            if (!strncmp(t, "blocks.*.", 9)) snprintf(name, sizeof name, "blocks.0.%s", t + 9);
            if ((mch_hook_parse(name, m->cfg.L, &site, &layer, err))) return MCH_ERR_ARG;
            ss->cache[s->n_cache_hooks++] = t;
        }
        s->cache_hooks = ss->cache;
    }
    s->cache_dtype = (char *)(o->cache_dtype ? o->cache_dtype : (o->cache ? "f32" : ""));
    if (o->cache_dtype && strcmp(o->cache_dtype, "f32") && strcmp(o->cache_dtype, "bf16") &&
        strcmp(o->cache_dtype, "fp16"))
        return mch_fail(err, MCH_ERR_ARG, "--cache-dtype takes f32, bf16 or fp16, got '%s'",
                        o->cache_dtype);
    const mch_source_opts *so = &o->src;
    snprintf(ss->inputs, sizeof ss->inputs,
             "input=%s run=%s topics=%s docs=%s qrels=%s top_k=%d df=%s",
             so->input ? so->input : "", so->run ? so->run : "", so->topics ? so->topics : "",
             so->docs ? so->docs : "", so->qrels ? so->qrels : "", so->top_k, so->df ? so->df : "");
    s->inputs = ss->inputs;
    return MCH_OK;
}

static void spec_store_free(spec_store *ss)
{
    free(ss->head_list);
    free(ss->cache);
    free(ss->cache_buf);
}

/* The spec as the circuit map records it: only what the map's numbers depend on. */
static Mechir__JobSpec map_spec(const Mechir__JobSpec *s)
{
    Mechir__JobSpec m = *s;
    m.inputs = (char *)"";
    m.n_cache_hooks = 0;
    m.cache_hooks = NULL;
    m.cache_dtype = (char *)"";
    return m;
}

/* ---- pairs and units ------------------------------------------------------------------------- */

typedef struct {
    mch_pair_source *src;
    uint64_t next_index; /* index of the next pair the source produces */
    const uint8_t *done; /* (done_cap) 1 when the journal already has the pair */
    uint64_t done_cap;
    Mechir__PairInput **window;
    size_t n_window, pos_window;
    uint64_t next_unit_id;
    int unit_size;       /* 0: adaptive */
    double sec_per_pair; /* measured, for adaptive units */
    int exhausted;
} unit_maker;

static void pair_input_free(Mechir__PairInput *p)
{
    if (!p) return;
    free(p->ids_baseline);
    free(p->ids_perturbed);
    free(p->token_types);
    free(p->query_ids);
    free(p->roles.data);
    free(p->qid);
    free(p->docno);
    free(p->term);
    free(p);
}

static int32_t *dup_ids(const int32_t *x, int n)
{
    int32_t *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    if (y && n) memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

static Mechir__PairInput *pair_input_new(const mch_pair *pr, const mch_record *r, uint64_t index)
{
    Mechir__PairInput *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    mechir__pair_input__init(p);
    p->index = index;
    p->pair_id = pr->pair_id;
    p->n_ids_baseline = p->n_ids_perturbed = p->n_token_types = (size_t)pr->T;
    p->ids_baseline = dup_ids(pr->ids_baseline, pr->T);
    p->ids_perturbed = dup_ids(pr->ids_perturbed, pr->T);
    p->token_types = dup_ids(pr->token_types, pr->T);
    p->n_query_ids = (size_t)pr->Tq;
    p->query_ids = pr->Tq ? dup_ids(pr->query_ids, pr->Tq) : NULL;
    p->roles.len = (size_t)pr->T;
    p->roles.data = malloc((size_t)pr->T + 1);
    if (p->roles.data) memcpy(p->roles.data, pr->roles, (size_t)pr->T);
    p->qid = strdup(r->qid);
    p->docno = strdup(r->docno);
    p->term = strdup(pr->term);
    p->position = pr->position;
    p->relevance = r->relevance;
    p->rank = r->rank;
    if (!p->ids_baseline || !p->ids_perturbed || !p->token_types || (pr->Tq && !p->query_ids) ||
        !p->roles.data || !p->qid || !p->docno || !p->term) {
        pair_input_free(p);
        return NULL;
    }
    return p;
}

static int cmp_by_len(const void *a, const void *b)
{
    const Mechir__PairInput *x = *(Mechir__PairInput *const *)a,
                            *y = *(Mechir__PairInput *const *)b;
    if (x->n_ids_baseline != y->n_ids_baseline)
        return x->n_ids_baseline < y->n_ids_baseline ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Fills the window with the next pairs not yet journaled, sorted by length (buckets). */
static mch_status fill_window(unit_maker *um, mch_err *err)
{
    um->n_window = um->pos_window = 0;
    while (um->n_window < WINDOW_PAIRS && !um->exhausted) {
        const mch_pair *pr;
        const mch_record *r;
        mch_status rc = mch_pair_source_next(um->src, &pr, &r, err);
        if (rc) return rc;
        if (!pr) {
            um->exhausted = 1;
            break;
        }
        uint64_t index = um->next_index++;
        if (index < um->done_cap && um->done[index]) continue;
        Mechir__PairInput *p = pair_input_new(pr, r, index);
        if (!p) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        um->window[um->n_window++] = p;
    }
    qsort(um->window, um->n_window, sizeof *um->window, cmp_by_len);
    return MCH_OK;
}

/* The next work unit, or NULL when every pair was handed out. */
static mch_status next_unit(unit_maker *um, Mechir__WorkUnit **out, mch_err *err)
{
    *out = NULL;
    if (um->pos_window == um->n_window) {
        mch_status rc = fill_window(um, err);
        if (rc) return rc;
        if (!um->n_window) return MCH_OK;
    }
    size_t size = (size_t)um->unit_size;
    if (!size) { /* about half a second of work, 1..256 pairs */
        double s = um->sec_per_pair > 0 ? 0.5 / um->sec_per_pair : 4;
        size = s < 1 ? 1 : s > 256 ? 256 : (size_t)s;
    }
    size_t left = um->n_window - um->pos_window;
    if (size > left) size = left;
    Mechir__WorkUnit *u = calloc(1, sizeof *u);
    Mechir__PairInput **ps = calloc(size, sizeof *ps);
    if (!u || !ps) {
        free(u);
        free(ps);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    mechir__work_unit__init(u);
    u->unit_id = um->next_unit_id++;
    u->n_pairs = size;
    u->pairs = ps;
    for (size_t i = 0; i < size; i++) ps[i] = um->window[um->pos_window++];
    *out = u;
    return MCH_OK;
}

static void unit_free(Mechir__WorkUnit *u)
{
    if (!u) return;
    for (size_t i = 0; i < u->n_pairs; i++) pair_input_free(u->pairs[i]);
    free(u->pairs);
    free(u);
}

/* ---- the coordinator's bookkeeping ----------------------------------------------------------- */

typedef struct {
    const run_opts *o;
    mch_journal j;
    uint64_t total, done;
    mch_progress prog;
    unit_maker um;
    char fatal[600];
    uint64_t units;
    double busy_s;
    double synced_s; /* when the journal was last fsynced */
    long errors_reported;
} coord;

/* Journals the results of one unit; checks each result against its pair and the spec. */
static mch_status journal_unit(coord *c, const Mechir__JobSpec *spec, const Mechir__WorkUnit *u,
                               Mechir__UnitResult *res, mch_err *err)
{
    if (res->n_results != u->n_pairs)
        return mch_fail(err, MCH_ERR_PROTO, "rank %u returned %zu results for a unit of %zu pairs",
                        res->rank, res->n_results, u->n_pairs);
    for (size_t i = 0; i < u->n_pairs; i++) {
        Mechir__PairResult *r = res->results[i];
        char why[160];
        if (r->pair && r->pair->index != u->pairs[i]->index) {
            snprintf(c->fatal, sizeof c->fatal, "rank %u answered for pair #%llu instead of #%llu",
                     res->rank, (unsigned long long)r->pair->index,
                     (unsigned long long)u->pairs[i]->index);
            return mch_fail(err, MCH_ERR_PROTO, "%s", c->fatal);
        }
        /* Journal the coordinator's own copy of the input, not the worker's echo. */
        Mechir__PairInput *echo = r->pair;
        r->pair = u->pairs[i];
        int bad = mch_pair_result_check(r, (int)spec->layers, (int)spec->heads,
                                        (int)(spec->n_head_list / 2), why, sizeof why);
        if (bad) {
            r->pair = echo;
            snprintf(c->fatal, sizeof c->fatal,
                     "rank %u sent a malformed result for pair %016llx: %s", res->rank,
                     (unsigned long long)r->pair->pair_id, why);
            return mch_fail(err, MCH_ERR_PROTO, "%s", c->fatal);
        }
        if (r->error && *r->error && c->errors_reported++ < 5)
            fprintf(stderr, "%smechir run: rank %u, pair %016llx (%s, %s): %s\n",
                    c->prog.tty ? "\r\033[K" : "", res->rank, (unsigned long long)r->pair->pair_id,
                    r->pair->qid, r->pair->docno, r->error);
        size_t n = mechir__pair_result__get_packed_size(r);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf) mechir__pair_result__pack(r, buf);
        r->pair = echo;
        if (!buf) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        mch_status rc = mch_journal_append(&c->j, buf, n, err);
        free(buf);
        if (rc) return rc;
    }
    c->done += u->n_pairs;
    c->units++;
    c->busy_s += res->seconds;
    double spp = res->seconds / (double)(u->n_pairs ? u->n_pairs : 1);
    c->um.sec_per_pair = c->um.sec_per_pair > 0 ? 0.8 * c->um.sec_per_pair + 0.2 * spp : spp;
    return MCH_OK;
}

/* fsyncs the journal at most every quarter second (and when forced), so a worker's next unit is
 * never held up by the disk; a process kill loses nothing (the data is in the page cache), and a
 * power loss at most the last quarter second of results, which a resume recomputes. */
static mch_status journal_sync_maybe(coord *c, int force, mch_err *err)
{
    double now = mch_now_s();
    if (!force && now - c->synced_s < 0.25) return MCH_OK;
    c->synced_s = now;
    return mch_journal_sync(&c->j, err);
}

static void progress(coord *c, int ranks_alive)
{
    char extra[64];
    snprintf(extra, sizeof extra, "%d rank%s working", ranks_alive, ranks_alive == 1 ? "" : "s");
    mch_progress_update(&c->prog, (long)c->done, extra);
}

/* One process: the coordinator runs each unit itself. */
static mch_status run_embedded(coord *c, const Mechir__JobSpec *spec, int attempt, mch_err *err)
{
    mch_worker *w = NULL;
    mch_status rc = mch_worker_create(&w, spec, c->o->out, 0, attempt,
                                      c->o->threads ? c->o->threads : 1, c->o->scratch_mb, err);
    while (!rc && !stop_requested) {
        Mechir__WorkUnit *u;
        if ((rc = next_unit(&c->um, &u, err)) || !u) break;
        Mechir__UnitResult res;
        rc = mch_worker_run_unit(w, u, &res, err);
        if (!rc) rc = journal_unit(c, spec, u, &res, err);
        if (!rc) rc = journal_sync_maybe(c, 0, err);
        mch_worker_release(&res);
        unit_free(u);
        progress(c, 1);
    }
    mch_worker_free(w);
    if (!rc) rc = journal_sync_maybe(c, 1, err);
    return rc;
}

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* The journal's fsync, after the worker already has its next unit. */
static void sync_after_reply(coord *c, mch_status *first_rc)
{
    mch_err e = {0};
    mch_status rc = journal_sync_maybe(c, 0, &e);
    if (rc && !c->fatal[0]) snprintf(c->fatal, sizeof c->fatal, "%s", e.msg);
    if (rc && !*first_rc) *first_rc = rc;
}

/* Rank 0 with workers: hand out units on request, journal results. Polls with MPI_Iprobe and
 * sleeps in between, so the coordinator does not take a core from the workers. */
static mch_status run_coordinator(coord *c, const Mechir__JobSpec *spec, int size, mch_err *err)
{
    Mechir__WorkUnit **inflight = calloc((size_t)size, sizeof *inflight);
    uint8_t *buf = NULL;
    size_t cap = 0;
    int alive = size - 1, working = 0;
    long idle_us = 50;
    mch_status rc = inflight ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status first_rc = rc;
    while (alive > 0) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            progress(c, working);
            sleep_us(idle_us);
            idle_us = idle_us < 2000 ? idle_us * 2 : 2000;
            continue;
        }
        idle_us = 50;
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        if (count < 0 || count > MAX_MSG_BYTES) {
            snprintf(c->fatal, sizeof c->fatal, "rank %d sent a message of %d bytes", st.MPI_SOURCE,
                     count);
            count = 0;
        }
        if ((size_t)count > cap) {
            uint8_t *nb = realloc(buf, (size_t)count);
            if (!nb) {
                snprintf(c->fatal, sizeof c->fatal, "out of memory receiving %d bytes", count);
                count = 0;
            } else {
                buf = nb;
                cap = (size_t)count;
            }
        }
        MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        int src = st.MPI_SOURCE;
        if (st.MPI_TAG == TAG_RESULT && count && inflight[src]) {
            Mechir__UnitResult *res = mechir__unit_result__unpack(NULL, (size_t)count, buf);
            if (!res) {
                snprintf(c->fatal, sizeof c->fatal, "rank %d sent a result that does not decode",
                         src);
            } else if (res->unit_id != inflight[src]->unit_id) {
                snprintf(c->fatal, sizeof c->fatal, "rank %d answered unit %llu, expected %llu",
                         src, (unsigned long long)res->unit_id,
                         (unsigned long long)inflight[src]->unit_id);
            } else {
                mch_err e = {0};
                if ((rc = journal_unit(c, spec, inflight[src], res, &e)) && !c->fatal[0])
                    snprintf(c->fatal, sizeof c->fatal, "%s", e.msg);
                if (rc && !first_rc) first_rc = rc;
            }
            if (res) mechir__unit_result__free_unpacked(res, NULL);
            unit_free(inflight[src]);
            inflight[src] = NULL;
            working--;
        } else if (st.MPI_TAG == TAG_RESULT) {
            snprintf(c->fatal, sizeof c->fatal, "rank %d sent an empty or unexpected result", src);
        } else if (st.MPI_TAG == TAG_ERROR) {
            Mechir__Error *e = count ? mechir__error__unpack(NULL, (size_t)count, buf) : NULL;
            snprintf(c->fatal, sizeof c->fatal, "rank %d: %s", src,
                     e && e->message ? e->message : "failed");
            if (e) mechir__error__free_unpacked(e, NULL);
            if (inflight[src]) {
                unit_free(inflight[src]);
                inflight[src] = NULL;
                working--;
            }
        }
        /* Reply: the next unit, or stop. */
        Mechir__WorkUnit *u = NULL;
        if (!c->fatal[0] && !stop_requested) {
            mch_err e = {0};
            if ((rc = next_unit(&c->um, &u, &e))) {
                snprintf(c->fatal, sizeof c->fatal, "%s", e.msg);
                if (!first_rc) first_rc = rc;
            }
        }
        if (u) {
            size_t n = mechir__work_unit__get_packed_size(u);
            uint8_t *out = malloc(n ? n : 1);
            if (out) {
                mechir__work_unit__pack(u, out);
                MPI_Send(out, (int)n, MPI_BYTE, src, TAG_UNIT, MPI_COMM_WORLD);
                free(out);
                inflight[src] = u;
                working++;
                sync_after_reply(c, &first_rc);
                continue;
            }
            unit_free(u);
            snprintf(c->fatal, sizeof c->fatal, "out of memory sending a unit");
        }
        MPI_Send(NULL, 0, MPI_BYTE, src, TAG_STOP, MPI_COMM_WORLD);
        alive--;
        sync_after_reply(c, &first_rc);
    }
    {
        mch_err e = {0};
        mch_status src = journal_sync_maybe(c, 1, &e);
        if (src && !c->fatal[0]) snprintf(c->fatal, sizeof c->fatal, "%s", e.msg);
        if (src && !first_rc) first_rc = src;
    }
    free(inflight);
    free(buf);
    if (c->fatal[0]) return mch_fail(err, first_rc ? first_rc : MCH_ERR_MPI, "%s", c->fatal);
    return MCH_OK;
}

/* A worker's failure, to the coordinator: "on HOST: MESSAGE" (never cut). */
static void send_error(int rank, const char *host, const char *message)
{
    Mechir__Error e;
    mechir__error__init(&e);
    char msg[MPI_MAX_PROCESSOR_NAME + sizeof(((mch_err *)0)->msg) + 8];
    snprintf(msg, sizeof msg, "on %s: %s", host, message);
    e.rank = (uint32_t)rank;
    e.message = msg;
    size_t n = mechir__error__get_packed_size(&e);
    uint8_t *b = malloc(n ? n : 1);
    if (b) mechir__error__pack(&e, b);
    MPI_Send(b, b ? (int)n : 0, MPI_BYTE, 0, TAG_ERROR, MPI_COMM_WORLD);
    free(b);
}

/* Ranks 1..N-1: ask for units, run them, send results, until told to stop. */
static int worker_main(int rank)
{
    signal(SIGTERM, SIG_IGN); /* the coordinator decides when to stop */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    int hdr[5];
    MPI_Bcast(hdr, 5, MPI_INT, 0, MPI_COMM_WORLD);
    if (hdr[0] < 0) return 1; /* the coordinator failed before the job started */
    uint8_t *spec_buf = malloc((size_t)hdr[0] + 1);
    char *out_dir = malloc((size_t)hdr[1] + 1);
    MPI_Bcast(spec_buf, hdr[0], MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(out_dir, hdr[1], MPI_BYTE, 0, MPI_COMM_WORLD);
    out_dir[hdr[1]] = 0;
    Mechir__JobSpec *spec = mechir__job_spec__unpack(NULL, (size_t)hdr[0], spec_buf);
    char host[MPI_MAX_PROCESSOR_NAME] = "?";
    int hl;
    MPI_Get_processor_name(host, &hl);
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, NULL, 0, MPI_CHAR, 0, MPI_COMM_WORLD);
    mch_err err = {0};
    mch_worker *w = NULL;
    mch_status rc =
        spec ? mch_worker_create(&w, spec, out_dir, rank, hdr[2], hdr[3] ? hdr[3] : 1, hdr[4], &err)
             : mch_fail(&err, MCH_ERR_PROTO, "the job spec does not decode");
    int status = 0;
    if (rc) { /* tell the coordinator, then wait for the stop */
        send_error(rank, host, err.msg);
        status = 1;
    } else {
        MPI_Send(NULL, 0, MPI_BYTE, 0, TAG_READY, MPI_COMM_WORLD);
    }
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (;;) {
        MPI_Status st;
        MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        if ((size_t)count > cap) {
            uint8_t *nb = realloc(buf, (size_t)count);
            if (!nb) break;
            buf = nb;
            cap = (size_t)count;
        }
        MPI_Recv(buf, count, MPI_BYTE, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (st.MPI_TAG == TAG_STOP) break;
        if (st.MPI_TAG != TAG_UNIT || !w) continue;
        Mechir__WorkUnit *u =
            count <= MAX_MSG_BYTES ? mechir__work_unit__unpack(NULL, (size_t)count, buf) : NULL;
        Mechir__UnitResult res;
        mch_err e = {0};
        mch_status urc = u ? mch_worker_run_unit(w, u, &res, &e)
                           : mch_fail(&e, MCH_ERR_PROTO, "a work unit does not decode");
        if (urc) {
            send_error(rank, host, e.msg);
            status = 1;
        } else {
            /* Echo only each pair's index and id; the coordinator has the rest. */
            Mechir__PairInput *echoes = calloc(res.n_results + 1, sizeof *echoes);
            for (size_t i = 0; echoes && i < res.n_results; i++) {
                mechir__pair_input__init(&echoes[i]);
                echoes[i].index = res.results[i]->pair->index;
                echoes[i].pair_id = res.results[i]->pair->pair_id;
                res.results[i]->pair = &echoes[i];
            }
            size_t n = mechir__unit_result__get_packed_size(&res);
            uint8_t *b = malloc(n ? n : 1);
            if (b) mechir__unit_result__pack(&res, b);
            MPI_Send(b, b ? (int)n : 0, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
            free(b);
            free(echoes);
        }
        if (u) mch_worker_release(&res);
        if (u) mechir__work_unit__free_unpacked(u, NULL);
    }
    free(buf);
    mch_worker_free(w);
    if (spec) mechir__job_spec__free_unpacked(spec, NULL);
    free(spec_buf);
    free(out_dir);
    return status;
}

/* ---- reduction and outputs ------------------------------------------------------------------- */

static int journal_index(const uint8_t *payload, size_t len, uint64_t *index)
{
    Mechir__PairResult *r = mechir__pair_result__unpack(NULL, len, payload);
    if (!r || !r->pair) {
        if (r) mechir__pair_result__free_unpacked(r, NULL);
        return 1;
    }
    *index = r->pair->index;
    mechir__pair_result__free_unpacked(r, NULL);
    return 0;
}

static int cmp_rec(const void *a, const void *b)
{
    const mch_journal_rec *x = a, *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void write_pair_line(FILE *f, const Mechir__PairResult *r, const Mechir__JobSpec *s)
{
    const Mechir__PairInput *p = r->pair;
    size_t T = p->n_ids_baseline, L = s->layers, NH = s->heads, K = s->n_head_list / 2;
    fprintf(f, "{\"pair_id\":\"%016llx\",\"index\":%llu,\"qid\":", (unsigned long long)p->pair_id,
            (unsigned long long)p->index);
    mch_json_string(f, p->qid);
    fputs(",\"docno\":", f);
    mch_json_string(f, p->docno);
    fputs(",\"term\":", f);
    mch_json_string(f, p->term);
    fprintf(f, ",\"position\":%d", p->position);
    if (p->relevance >= 0) fprintf(f, ",\"relevance\":%d", p->relevance);
    if (p->rank >= 0) fprintf(f, ",\"rank\":%d", p->rank);
    fputs(",\"score_baseline\":", f);
    mch_json_number(f, r->score_baseline);
    fputs(",\"score_perturbed\":", f);
    mch_json_number(f, r->score_perturbed);
    if (r->skip_reason && *r->skip_reason) {
        fputs(",\"skipped\":", f);
        mch_json_string(f, r->skip_reason);
    }
    if (r->error && *r->error) {
        fputs(",\"error\":", f);
        mch_json_string(f, r->error);
    }
    if (r->n_heads) {
        fputs(",\"heads\":[", f);
        for (size_t l = 0; l < L; l++) {
            if (l) putc(',', f);
            mch_json_float_array(f, r->heads + l * NH, (int)NH);
        }
        putc(']', f);
    }
    if (r->n_blocks) {
        static const char *names[3] = {"resid_pre", "attn_out", "mlp_out"};
        fputs(",\"blocks\":{", f);
        for (int k = 0; k < 3; k++) {
            fprintf(f, "%s\"%s\":[", k ? "," : "", names[k]);
            for (size_t l = 0; l < L; l++) {
                if (l) putc(',', f);
                mch_json_float_array(f, r->blocks + (k * L + l) * T, (int)T);
            }
            putc(']', f);
        }
        putc('}', f);
    }
    if (r->n_head_pos_z) {
        fputs(",\"head_pos\":{\"z\":[", f);
        for (size_t k = 0; k < K; k++) {
            if (k) putc(',', f);
            mch_json_float_array(f, r->head_pos_z + k * T, (int)T);
        }
        fputs("],\"pattern\":[", f);
        for (size_t k = 0; k < K; k++) {
            if (k) putc(',', f);
            mch_json_float_array(f, r->head_pos_pattern + k * T, (int)T);
        }
        fputs("]}", f);
    }
    fputs(",\"baseline_ids\":", f);
    mch_json_int_array(f, p->ids_baseline, (int)T);
    fputs(",\"perturbed_ids\":", f);
    mch_json_int_array(f, p->ids_perturbed, (int)T);
    fputs(",\"roles\":[", f);
    for (size_t t = 0; t < T; t++)
        fprintf(f, t ? ",\"%s\"" : "\"%s\"", mch_role_name((mch_role)p->roles.data[t]));
    fputs("]}\n", f);
}

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

/* Reads the journal in pair order into the circuit map, pairs.jsonl and circuit.json. */
static mch_status reduce(const run_opts *o, const Mechir__JobSpec *spec, mch_cmap_acc *acc,
                         uint64_t expected, mch_err *err)
{
    char path[4096];
    path_in(path, sizeof path, o->out, "journal.bin");
    mch_journal j;
    mch_status rc = mch_journal_open(&j, path, 0, journal_index, err);
    if (rc) return rc;
    if (j.n_recs) qsort(j.recs, j.n_recs, sizeof *j.recs, cmp_rec); /* recs is NULL when empty */
    FILE *f = fopen(path, "rb");
    path_in(path, sizeof path, o->out, "pairs.jsonl");
    mch_outfile pf;
    if (!f || mch_outfile_open(&pf, path) != 0) {
        if (f) fclose(f);
        mch_journal_close(&j);
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    }
    rc = mch_cmap_acc_init(acc, (int)spec->layers, (int)spec->heads, (int)(spec->n_head_list / 2),
                           err);
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t next = 0;
    for (size_t i = 0; !rc && i < j.n_recs; i++) {
        const mch_journal_rec *r = &j.recs[i];
        if (i && r->index == j.recs[i - 1].index) continue; /* a pair redone after a crash */
        if (r->index != next) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: pair #%llu is missing", j.path,
                          (unsigned long long)next);
            break;
        }
        next++;
        if (r->length > cap) {
            uint8_t *nb = realloc(buf, r->length);
            if (!nb) {
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
                break;
            }
            buf = nb;
            cap = r->length;
        }
        if ((rc = mch_journal_read(&j, f, r, buf, err))) break;
        Mechir__PairResult *pr = mechir__pair_result__unpack(NULL, r->length, buf);
        if (!pr) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s: record at %llu does not decode", j.path,
                          (unsigned long long)r->offset);
            break;
        }
        rc = mch_cmap_acc_add(acc, pr, err);
        write_pair_line(pf.f, pr, spec);
        mechir__pair_result__free_unpacked(pr, NULL);
    }
    if (!rc && next != expected)
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: %llu pairs journaled, %llu expected", j.path,
                      (unsigned long long)next, (unsigned long long)expected);
    free(buf);
    fclose(f);
    mch_journal_close(&j);
    if (rc) {
        mch_outfile_abort(&pf);
        return rc;
    }
    if (mch_outfile_commit(&pf) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    return MCH_OK;
}

static mch_status write_outputs(const run_opts *o, const Mechir__JobSpec *spec, mch_cmap_acc *acc,
                                mch_err *err)
{
    char path[4096];
    Mechir__JobSpec ms = map_spec(spec);
    char *sites[1] = {(char *)(o->site ? o->site : "")};
    uint8_t *bytes = NULL;
    size_t len = 0;
    mch_status rc = mch_cmap_pack(acc, &ms, sites, 1, &bytes, &len, err);
    if (rc) return rc;
    path_in(path, sizeof path, o->out, "circuit.cmap");
    rc = mch_write_file_atomic(path, bytes, len, err);
    Mechir__CircuitMap *m = NULL;
    if (!rc) rc = mch_cmap_unpack(&m, bytes, len, path, err);
    free(bytes);
    if (rc) return rc;
    path_in(path, sizeof path, o->out, "circuit.json");
    mch_outfile jf;
    if (mch_outfile_open(&jf, path) != 0)
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    else {
        mch_cmap_write_json(m, jf.f);
        if (mch_outfile_commit(&jf) != 0)
            rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    }
    mechir__circuit_map__free_unpacked(m, NULL);
    return rc;
}

/* Prints the heads with the largest mean effect. */
static void print_top_heads(const mch_cmap_acc *a, int k)
{
    int n = a->L * a->NH, order[4096];
    if (n > 4096 || !a->used || !a->heads.n[0]) return;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (a->heads.mean[order[j]] > a->heads.mean[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    printf("top heads by mean effect (patched - baseline) / (perturbed - baseline):\n");
    for (int r = 0; r < k && r < n; r++) {
        int i = order[r];
        double sd = a->heads.n[i] > 1 ? sqrt(a->heads.m2[i] / (double)(a->heads.n[i] - 1)) : 0;
        printf("  %d. head %d.%d  mean %+.4f  std %.4f  n %llu\n", r + 1, i / a->NH, i % a->NH,
               a->heads.mean[i], sd, (unsigned long long)a->heads.n[i]);
    }
}

static mch_status write_run_json(const run_opts *o, const Mechir__JobSpec *spec, int size,
                                 char hosts[][MPI_MAX_PROCESSOR_NAME], const coord *c,
                                 const mch_cmap_acc *acc, double seconds, time_t started,
                                 int resumed, mch_err *err)
{
    char path[4096], when[64];
    path_in(path, sizeof path, o->out, "run.json");
    mch_outfile f;
    if (mch_outfile_open(&f, path) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&started));
    fprintf(f.f, "{\"format\":\"mechir-run/1\",\"software_version\":\"%s\",\"started\":\"%s\",",
            MCH_VERSION, when);
    fprintf(f.f, "\"seconds\":%.3f,\"ranks\":%d,\"workers\":%d,\"resumed\":%s,\"hosts\":[", seconds,
            size, size > 1 ? size - 1 : 1, resumed ? "true" : "false");
    for (int r = 0; r < size; r++) {
        if (r) putc(',', f.f);
        mch_json_string(f.f, hosts[r]);
    }
    fprintf(f.f,
            "],\"pairs\":{\"total\":%llu,\"used\":%llu,\"skipped\":%llu,\"failed\":%llu,\"this_"
            "attempt\":%llu}",
            (unsigned long long)acc->total, (unsigned long long)acc->used,
            (unsigned long long)acc->skipped, (unsigned long long)acc->failed,
            (unsigned long long)c->done);
    fprintf(
        f.f,
        ",\"units\":%llu,\"pairs_per_second\":%.3f,\"worker_busy_seconds\":%.3f,\"model_sha256\":",
        (unsigned long long)c->units, seconds > 0 ? (double)c->done / seconds : 0.0, c->busy_s);
    mch_json_string(f.f, spec->model_sha256);
    fputs(",\"inputs\":", f.f);
    mch_json_string(f.f, spec->inputs);
    fputs(",\"job\":", f.f);
    char *job = cJSON_PrintUnformatted(o->given);
    fputs(job ? job : "{}", f.f);
    free(job);
    fputs("}\n", f.f);
    if (mch_outfile_commit(&f) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    return MCH_OK;
}

/* ---- the command ----------------------------------------------------------------------------- */

/* Explains how two specs differ, for a refused resume. */
static void join(char *out, size_t len, char **x, size_t n)
{
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", x[i]);
}

/* Explains how two specs differ, for a refused resume. */
static void spec_diff(const Mechir__JobSpec *a, const Mechir__JobSpec *b, char *out, size_t len)
{
    snprintf(out, len, "the job options differ");
    char x[300], y[300];
    struct {
        const char *name, *x, *y;
    } strs[] = {{"model sha256", a->model_sha256, b->model_sha256},
                {"model path", a->model_path, b->model_path},
                {"perturbation", a->perturbation, b->perturbation},
                {"inputs", a->inputs, b->inputs},
                {"position", a->position, b->position},
                {"filler", a->filler, b->filler},
                {"pooling", a->pooling, b->pooling},
                {"cache dtype", a->cache_dtype, b->cache_dtype},
                {"software version", a->software_version, b->software_version}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(strs[i].x, strs[i].y)) {
            snprintf(out, len, "%s: '%.200s' in the journal, '%.200s' now", strs[i].name, strs[i].x,
                     strs[i].y);
            return;
        }
    struct {
        const char *name;
        unsigned long long x, y;
    } nums[] = {{"max_len", a->max_len, b->max_len},
                {"max_query_len", a->max_query_len, b->max_query_len},
                {"seed", a->seed, b->seed},
                {"stem", a->stem, b->stem}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (nums[i].x != nums[i].y) {
            snprintf(out, len, "%s: %llu in the journal, %llu now", nums[i].name, nums[i].x,
                     nums[i].y);
            return;
        }
    if (a->min_delta != b->min_delta) {
        snprintf(out, len, "min_delta: %g in the journal, %g now", a->min_delta, b->min_delta);
        return;
    }
    join(x, sizeof x, a->sweeps, a->n_sweeps);
    join(y, sizeof y, b->sweeps, b->n_sweeps);
    if (strcmp(x, y)) {
        snprintf(out, len, "sweeps: %.120s in the journal, %.120s now", x, y);
        return;
    }
    join(x, sizeof x, a->cache_hooks, a->n_cache_hooks);
    join(y, sizeof y, b->cache_hooks, b->n_cache_hooks);
    if (strcmp(x, y)) {
        snprintf(out, len, "cache hooks: '%.120s' in the journal, '%.120s' now", x, y);
        return;
    }
    if (a->n_head_list != b->n_head_list ||
        (a->n_head_list &&
         memcmp(a->head_list, b->head_list, a->n_head_list * sizeof *a->head_list)))
        snprintf(out, len, "--heads differ");
}

/* Rank 0: everything but the workers' loop. Returns the exit status. */
static int coordinator_main(int argc, char **argv, int size)
{
    run_opts o = {0};
    cJSON *job_json = NULL;
    spec_store ss = {0};
    coord c = {0};
    mch_model_meta *m = NULL;
    mch_err err = {0};
    int status = 1, hdr[5] = {-1, 0, 0, 0, 0}, bcast_done = 0, resumed = 0;
    time_t started = time(NULL);
    double t0 = mch_now_s();
    uint8_t *spec_bytes = NULL, *done = NULL;
    size_t spec_len = 0;
    char(*hosts)[MPI_MAX_PROCESSOR_NAME] = calloc((size_t)size, MPI_MAX_PROCESSOR_NAME);
    mch_cmap_acc acc = {0};
    char path[4096];
    /* From the start: a scheduler's warning may come while the inputs are still being read. */
    signal(SIGTERM, on_signal);
    signal(SIGUSR1, on_signal);
    signal(SIGINT, on_signal);
    int st = parse_run_args(&o, argc, argv, &job_json);
    if (st >= 0) {
        status = st;
        goto out;
    }
    c.o = &o;
    if (mch_mkdir_p(o.out) != 0) {
        fprintf(stderr, "mechir run: %s: %s\n", o.out, strerror(errno));
        goto out;
    }
    if (mch_model_meta_open(&m, o.model, &err) || build_spec(&ss, &o, m, &err)) goto fail;
    spec_len = mechir__job_spec__get_packed_size(&ss.s);
    spec_bytes = malloc(spec_len + 1);
    if (!spec_bytes) goto oom;
    mechir__job_spec__pack(&ss.s, spec_bytes);

    /* The journal: new, or the one to resume (same job only). */
    path_in(path, sizeof path, o.out, "journal.bin");
    int attempt = 0;
    if (o.resume && access(path, F_OK) == 0) {
        if (mch_journal_open(&c.j, path, 1, journal_index, &err)) goto fail;
        if (c.j.spec_len != spec_len || memcmp(c.j.spec, spec_bytes, spec_len)) {
            Mechir__JobSpec *old = mechir__job_spec__unpack(NULL, c.j.spec_len, c.j.spec);
            char why[600] = "the journal's job spec does not decode";
            if (old) spec_diff(old, &ss.s, why, sizeof why);
            if (old) mechir__job_spec__free_unpacked(old, NULL);
            fprintf(stderr, "mechir run: cannot resume %s: %s\n", path, why);
            goto out;
        }
        uint64_t cap = 0;
        for (size_t i = 0; i < c.j.n_recs; i++)
            if (c.j.recs[i].index + 1 > cap) cap = c.j.recs[i].index + 1;
        done = calloc(cap + 1, 1);
        if (!done) goto oom;
        for (size_t i = 0; i < c.j.n_recs; i++) done[c.j.recs[i].index] = 1;
        c.um.done = done;
        c.um.done_cap = cap;
        /* A new attempt number for this resume's cache files: one no rank has used. */
        for (int used = 1; used;) {
            used = 0;
            ++attempt;
            for (int r = 0; r < size && !used; r++) {
                struct stat sb;
                snprintf(path, sizeof path, "%s/cache/rank-%d-a%d.idx", o.out, r, attempt);
                used = stat(path, &sb) == 0;
            }
        }
        resumed = 1;
    } else {
        if (mch_journal_create(&c.j, path, spec_bytes, spec_len, &err)) goto fail;
    }
    /* job.json: the options, so `mechir run OUT/job.json --resume` continues this run. */
    path_in(path, sizeof path, o.out, "job.json");
    char *job_text = cJSON_Print(o.given);
    if (!job_text) goto oom;
    mch_status wrc = mch_write_file_atomic(path, job_text, strlen(job_text), &err);
    free(job_text);
    if (wrc) goto fail;

    /* Count the input records first: the progress total, and bad input lines show up before
     * any work. Pairs are built once, while streaming (a record that cannot be perturbed is
     * counted at the end). */
    mch_pair_source *counter = NULL;
    if (mch_pair_source_open(&counter, &o.src, m, &err)) goto fail;
    for (;;) {
        const mch_record *r;
        if (mch_pair_source_next_record(counter, &r, &err)) {
            mch_pair_source_close(counter);
            goto fail;
        }
        if (!r) break;
        c.total++;
    }
    const mch_skip_report *rep = mch_pair_source_report(counter);
    fprintf(stderr, "mechir run: %ld input units, %llu records, %ld bad input lines", rep->units,
            (unsigned long long)c.total, rep->skipped);
    if (rep->skipped)
        fprintf(stderr, " (first: %s)",
                rep->n_entries ? rep->entries[0].reason : "bad input lines");
    fprintf(stderr, "; %llu already done; %d rank%s\n", (unsigned long long)c.j.n_recs, size,
            size == 1 ? "" : "s");
    mch_pair_source_close(counter);
    if (mch_pair_source_open(&c.um.src, &o.src, m, &err)) goto fail;
    c.um.unit_size = o.unit_size;
    c.um.window = calloc(WINDOW_PAIRS, sizeof *c.um.window);
    if (!c.um.window) goto oom;
    uint64_t already = 0;
    for (uint64_t i = 0; i < c.um.done_cap; i++) already += done[i];
    mch_progress_init(&c.prog, "pairs", (long)(c.total - already));

    /* Workers: the spec, the output directory, attempt, threads, scratch. */
    if (size > 1) {
        hdr[0] = (int)spec_len;
        hdr[1] = (int)strlen(o.out);
        hdr[2] = attempt;
        hdr[3] = o.threads;
        hdr[4] = o.scratch_mb;
        MPI_Bcast(hdr, 5, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Bcast(spec_bytes, hdr[0], MPI_BYTE, 0, MPI_COMM_WORLD);
        MPI_Bcast((void *)o.out, hdr[1], MPI_BYTE, 0, MPI_COMM_WORLD);
        bcast_done = 1;
    }
    int hl;
    MPI_Get_processor_name(hosts[0], &hl);
    if (size > 1)
        MPI_Gather(MPI_IN_PLACE, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME,
                   MPI_CHAR, 0, MPI_COMM_WORLD);
    mch_status rc =
        size > 1 ? run_coordinator(&c, &ss.s, size, &err) : run_embedded(&c, &ss.s, attempt, &err);
    if (c.prog.printed) mch_progress_finish(&c.prog, (long)c.done, NULL);
    mch_journal_close(&c.j);
    if (rc) goto fail;
    if (stop_requested) {
        fprintf(
            stderr,
            "mechir run: stopped by signal %d after the units in flight; %llu of %llu pairs are "
            "journaled in %s; continue with --resume\n",
            (int)stop_requested, (unsigned long long)(already + c.done),
            (unsigned long long)c.total, o.out);
        status = EXIT_INTERRUPTED;
        goto out;
    }
    /* Every record was streamed: next_index is the exact number of pairs. */
    long not_perturbed = mch_pair_source_perturb_skips(c.um.src);
    if (not_perturbed) {
        const mch_skip_report *pr = mch_pair_source_report(c.um.src);
        fprintf(stderr, "mechir run: %ld record%s could not be perturbed (first: %s)\n",
                not_perturbed, not_perturbed == 1 ? "" : "s",
                pr->n_entries ? pr->entries[0].reason : "see mechir pairs --skips");
    }
    if (reduce(&o, &ss.s, &acc, c.um.next_index, &err) || write_outputs(&o, &ss.s, &acc, &err) ||
        write_run_json(&o, &ss.s, size, hosts, &c, &acc, mch_now_s() - t0, started, resumed, &err))
        goto fail;
    fprintf(stderr,
            "mechir run: %llu pairs: %llu used, %llu skipped, %llu failed; %.1f s; outputs in %s\n",
            (unsigned long long)acc.total, (unsigned long long)acc.used,
            (unsigned long long)acc.skipped, (unsigned long long)acc.failed, mch_now_s() - t0,
            o.out);
    print_top_heads(&acc, 5);
    status = 0;
    goto out;
oom:
    mch_fail(&err, MCH_ERR_NOMEM, "out of memory");
fail:
    fprintf(stderr, "mechir run: %s\n", err.msg);
    status = 1;
out:
    if (size > 1 && !bcast_done) {
        hdr[0] = -1;
        MPI_Bcast(hdr, 5, MPI_INT, 0, MPI_COMM_WORLD);
    }
    mch_cmap_acc_free(&acc);
    if (c.j.path) mch_journal_close(&c.j);
    mch_pair_source_close(c.um.src);
    for (size_t i = c.um.pos_window; i < c.um.n_window; i++) pair_input_free(c.um.window[i]);
    free(c.um.window);
    free(done);
    free(spec_bytes);
    free(hosts);
    spec_store_free(&ss);
    mch_model_meta_close(m);
    cJSON_Delete(o.given);
    cJSON_Delete(job_json);
    return status;
}

int mch_cmd_run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            run_usage(stdout);
            return 0;
        }
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_SINGLE, &provided);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int status;
    if (rank == 0) {
        status = coordinator_main(argc, argv, size);
    } else {
        status = worker_main(rank);
    }
    MPI_Finalize();
    return status;
}
