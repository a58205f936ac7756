/* Planning a run (see plan.h). The spec is built from the options and the model's text side
 * only (config.json, the tokenizer, the sha256 of the weights file): the coordinator never maps
 * weights. */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fingerprint.h"
#include "fsutil.h"
#include "log.h"
#include "sha256.h"
#include "t5config.h"

/* The sha256 of DIR/NAME into hex. */
static mch_status sha_of(const char *dir, const char *name, char hex[65], mch_err *err)
{
    char *path = mch_path_join(dir, name);
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status rc = mch_sha256_file(path, hex, err);
    free(path);
    return rc;
}

/* The description of the input files (names, not contents) a resume must agree on. */
static char *inputs_text(const mch_source_opts *so)
{
    const char *fmt = "input=%s run=%s topics=%s docs=%s qrels=%s top_k=%d df=%s";
#define S(x) ((x) ? (x) : "")
    int n = snprintf(NULL, 0, fmt, S(so->input), S(so->run), S(so->topics), S(so->docs),
                     S(so->qrels), so->top_k, S(so->df));
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s)
        snprintf(s, (size_t)n + 1, fmt, S(so->input), S(so->run), S(so->topics), S(so->docs),
                 S(so->qrels), so->top_k, S(so->df));
#undef S
    return s;
}

/* Every input file the job reads, in the order of mch_job_spec.input_files. */
static size_t input_paths(const mch_source_opts *so, const char *paths[7])
{
    const char *all[] = {so->input, so->run, so->topics,   so->docs,
                         so->qrels, so->df,  so->stopwords};
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) paths[n++] = all[i];
    return n;
}

/* The fingerprints of the input files into s (a resume compares them: mch_job_spec_diff). */
static mch_status plan_input_files(const mch_source_opts *so, mch_job_spec *s, mch_err *err)
{
    const char *paths[7];
    size_t n = input_paths(so, paths);
    if (!(s->input_files = calloc(n + 1, sizeof *s->input_files)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (; s->n_input_files < n; s->n_input_files++) {
        mch_input_file *f = &s->input_files[s->n_input_files];
        mch_fingerprint fp;
        mch_status rc = mch_fingerprint_file(paths[s->n_input_files], &fp, err);
        if (rc) return rc;
        if (!(f->name = strdup(paths[s->n_input_files])))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        f->size_bytes = fp.size_bytes, f->xxh3 = fp.xxh3, f->not_regular = !fp.regular;
    }
    return MCH_OK;
}

/* Sweeps in canonical order and the head-pos heads (kept only for head-pos). */
static mch_status plan_sweeps(const mch_run_opts *o, const mch_config *cfg, mch_job_spec *s,
                              mch_err *err)
{
    unsigned bits;
    mch_status rc = mch_sweeps_parse(o->sweep ? o->sweep : "heads", &bits, err);
    if (rc) return rc;
    const char *names[MCH_SWEEP_NAMES_MAX];
    s->n_sweeps = 0;
    size_t n = mch_sweeps_names(bits, names);
    if (!(s->sweeps = calloc(n, sizeof *s->sweeps)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (; s->n_sweeps < n; s->n_sweeps++)
        if (!mch_msg_str(&s->sweeps[s->n_sweeps], names[s->n_sweeps]))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (o->heads && (rc = mch_heads_parse(o->heads, &s->head_pos, &s->n_head_pos, err))) return rc;
    if ((bits & MCH_SWEEP_HEAD_POS) && !s->n_head_pos)
        return mch_fail(err, MCH_ERR_ARG, "--sweep head-pos needs --heads");
    if (!(bits & MCH_SWEEP_HEAD_POS)) s->n_head_pos = 0; /* heads only matter to head-pos */
    size_t k = mch_heads_outside(s->head_pos, s->n_head_pos, (uint32_t)cfg->L, (uint32_t)cfg->NH);
    if (k--)
        return mch_fail(err, MCH_ERR_ARG,
                        "--heads: head %u.%u is outside the model (%d layers, %d heads)",
                        s->head_pos[2 * k], s->head_pos[2 * k + 1], cfg->L, cfg->NH);
    return MCH_OK;
}

/* Pooling, cache hooks (checked against the model) and the cache dtype. */
static mch_status plan_cache(const mch_run_opts *o, const mch_config *cfg, mch_job_spec *s,
                             mch_err *err)
{
    if (strcmp(s->pooling, "cls") && strcmp(s->pooling, "mean"))
        return mch_fail(err, MCH_ERR_ARG, "--pooling takes cls or mean, got '%s'", s->pooling);
    if (o->cache) {
        mch_hook_point *pts = NULL;
        size_t n_pts;
        mch_status rc = mch_list_split(o->cache, &s->cache_hooks, &s->n_cache_hooks, err);
        if (!rc && cfg->arch == MCH_ARCH_T5) { /* every T5 hook point can be cached */
            mch_t5_hook_point *t5 = NULL;
            mch_err e = {0};
            rc = mch_t5_hooks_expand(cfg->L, cfg->LD, s->cache_hooks, s->n_cache_hooks, &t5, &n_pts,
                                     &e);
            free(t5);
            if (rc) return mch_fail(err, rc, "--cache: %s", e.msg);
        } else if (!rc) {
            rc = mch_hooks_expand(s->cache_hooks, s->n_cache_hooks, cfg->L, &pts, &n_pts, err);
            if (!rc) rc = mch_hooks_check_cacheable(pts, n_pts, err);
        }
        free(pts);
        if (rc) return rc;
    }
    if (o->cache_dtype && strcmp(o->cache_dtype, "f32") && strcmp(o->cache_dtype, "bf16") &&
        strcmp(o->cache_dtype, "fp16"))
        return mch_fail(err, MCH_ERR_ARG, "--cache-dtype takes f32, bf16 or fp16, got '%s'",
                        o->cache_dtype);
    return MCH_OK;
}

/* The method ("" for exact) and what attribution patching cannot do: the head-pos sweep (its
 * estimates are not defined, kernels/atp.h) and the activation cache (the worker caches the
 * exact patcher's two runs, which an AtP job does not make). */
static mch_status plan_method(const mch_run_opts *o, mch_job_spec *s, mch_err *err)
{
    int method = mch_method_of(o->method);
    if (method < 0)
        return mch_fail(err, MCH_ERR_ARG, "--method: unknown '%s' (exact, atp, atp-qk)", o->method);
    if (!mch_msg_str(&s->method, mch_method_spec_name(method)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    s->verify_top = o->verify_top > 0 ? (uint32_t)o->verify_top : 0;
    if (method == MCH_JOB_EXACT)
        return s->verify_top ? mch_fail(err, MCH_ERR_ARG,
                                        "--verify-top checks estimates: it needs --method atp or "
                                        "atp-qk")
                             : MCH_OK;
    if (mch_sweeps_bits(s->sweeps, s->n_sweeps) & MCH_SWEEP_HEAD_POS)
        return mch_fail(err, MCH_ERR_ARG,
                        "--method %s does not estimate the head-pos sweep; --sweep head-pos needs "
                        "--method exact",
                        o->method);
    if (o->cache)
        return mch_fail(err, MCH_ERR_ARG,
                        "--cache needs --method exact (the cache stores the exact patcher's runs, "
                        "which --method %s does not make)",
                        o->method);
    return MCH_OK;
}

/* What a MonoT5 job cannot do: the head-pos sweep, attribution patching (no backward pass for
 * T5), bi-encoder options (kernels/t5_patch.h patches the heads and blocks sweeps exactly). */
static mch_status plan_monot5(const mch_run_opts *o, const mch_job_spec *s, mch_err *err)
{
    const char *no = NULL;
    unsigned bits = mch_sweeps_bits(s->sweeps, s->n_sweeps);
    if (bits & MCH_SWEEP_HEAD_POS)
        no = "--sweep head-pos (the heads and blocks sweeps are patched)";
    else if (bits & (MCH_SWEEP_QKV | MCH_SWEEP_PATTERN | MCH_SWEEP_RESID_MID))
        no = "--sweep qkv, pattern or resid-mid (the heads and blocks sweeps are patched)";
    else if (*s->method)
        no = "--method atp or atp-qk (no backward pass for T5: patch exactly)";
    else if (o->pooling && strcmp(o->pooling, "cls"))
        no = "--pooling (the score is log P(\"true\") at the first decoder step)";
    return no ? mch_fail(err, MCH_ERR_UNSUPPORTED, "%s: a MonoT5 run does not take %s", o->model,
                         no)
              : MCH_OK;
}

mch_status mch_plan_spec(const mch_run_opts *o, const mch_model_meta *m, mch_job_spec *s,
                         mch_err *err)
{
    const mch_config *cfg = &m->cfg;
    const mch_source_opts *so = &o->src;
    char sha[65], vocab_sha[65];
    memset(s, 0, sizeof *s);
    mch_status rc = sha_of(o->model, "model.safetensors", sha, err);
    char tok_path[4096]; /* the tokenizer file (tokenizer.json or vocab.txt) */
    if (!rc && mch_tok_file(o->model, tok_path, sizeof tok_path))
        rc = mch_fail(err, MCH_ERR_IO,
                      "%s: no tokenizer file (tokenizer.json, vocab.json, ...) is there", o->model);
    if (!rc) rc = mch_sha256_file(tok_path, vocab_sha, err);
    if (rc) return rc;
    const char *const strs[][2] = {
        {MCH_JOB_FORMAT, NULL},
        {o->model, NULL},
        {sha, NULL},
        {vocab_sha, NULL},
        {mch_arch_name(cfg->arch), NULL},
        {cfg->architecture, NULL},
        {so->perturb, "tfc1"},
        {so->position, "end"},
        {so->filler, "a"},
        {o->pooling, "cls"},
        {o->cache_dtype, o->cache ? "f32" : ""},
        {MCH_VERSION, NULL},
    };
    char **dst[] = {&s->format, &s->model_path,   &s->model_sha256, &s->vocab_hash,
                    &s->arch,   &s->architecture, &s->perturbation, &s->position,
                    &s->filler, &s->pooling,      &s->cache_dtype,  &s->software_version};
    for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++)
        if (!mch_msg_str(dst[i], strs[i][0] ? strs[i][0] : strs[i][1]))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!(s->inputs = inputs_text(so))) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if ((rc = plan_input_files(so, s, err))) return rc;
    s->layers = (uint32_t)cfg->L, s->heads = (uint32_t)cfg->NH, s->hidden = (uint32_t)cfg->C;
    s->decoder_layers = (uint32_t)cfg->LD;
    s->max_span = (uint32_t)(so->max_span > 0 ? so->max_span : 0);
    s->max_len = (uint32_t)(so->max_len ? so->max_len : cfg->max_tokens);
    s->max_query_len = (uint32_t)(so->max_query_len ? so->max_query_len : 64);
    s->min_delta = o->min_delta > 0 ? o->min_delta : 1e-3;
    s->seed = so->seed;
    s->stem = so->stem;
    s->bootstrap = (uint32_t)(o->bootstrap < 0 ? MCH_BOOTSTRAP_DEFAULT : o->bootstrap);
    s->ci_level = o->ci > 0 ? o->ci : MCH_CI_DEFAULT;
    s->select_k = o->select_k;
    s->select_per_grade = o->per_grade;
    if (mch_direction_parse(o->direction) < -1)
        return mch_fail(err, MCH_ERR_ARG, "--direction: unknown '%s' (any, with, against)",
                        o->direction);
    if (o->select && strcmp(o->select, "top-delta"))
        return mch_fail(err, MCH_ERR_ARG, "--select: unknown '%s' (top-delta K)", o->select);
    if (o->select && !o->select_k)
        return mch_fail(err, MCH_ERR_ARG, "--select top-delta needs K >= 1");
    if (!o->select && (o->select_k || o->per_grade))
        return mch_fail(err, MCH_ERR_ARG, "--per-grade needs --select top-delta K");
    if (!mch_msg_str(&s->direction, o->direction ? o->direction : "any") ||
        !mch_msg_str(&s->select, o->select ? o->select : ""))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if ((rc = plan_sweeps(o, cfg, s, err))) return rc;
    if ((rc = plan_method(o, s, err))) return rc;
    if (cfg->arch == MCH_ARCH_T5 && (rc = plan_monot5(o, s, err))) return rc;
    return plan_cache(o, cfg, s, err);
}

/* The first attempt number after 0 for which no rank of size has a cache file. */
static mch_status new_attempt(const char *out, int size, int *attempt, mch_err *err)
{
    char *cache = mch_path_join(out, "cache");
    char name[64];
    int used = 1, a = 0;
    while (cache && used) {
        used = 0;
        ++a;
        for (int r = 0; r < size && !used; r++) {
            snprintf(name, sizeof name, "rank-%d-a%d.idx", r, a);
            char *path = mch_path_join(cache, name);
            struct stat sb;
            used = !path || stat(path, &sb) == 0;
            if (!path) cache = NULL;
            free(path);
        }
    }
    free(cache);
    if (used) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    *attempt = a;
    return MCH_OK;
}

/* Refuses to resume a journal of another job; why names the first differing field (an input
 * file: the file and what changed). Equal bytes are the same job unless an input is not a
 * regular file, whose contents were never fingerprinted (mch_job_spec_diff refuses it). */
static mch_status same_job(const mch_journal *j, const mch_job_spec *spec, const uint8_t *bytes,
                           size_t len, mch_err *err)
{
    int fingerprinted = 1;
    for (size_t i = 0; i < spec->n_input_files; i++)
        fingerprinted &= !spec->input_files[i].not_regular;
    if (fingerprinted && j->spec_len == len && !memcmp(j->spec, bytes, len)) return MCH_OK;
    mch_job_spec old;
    mch_err e = {0};
    char why[600] = "the journal's job spec does not decode";
    if (!mch_job_spec_unpack(&old, j->spec, j->spec_len, "the journal's job spec", &e)) {
        mch_spec_diff d;
        if (mch_job_spec_diff(&old, spec, MCH_SPEC_SAME_JOB, &d) && *d.what)
            snprintf(why, sizeof why, "%s", d.what);
        else if (d.field)
            snprintf(why, sizeof why, "%s: %s in the journal, %s now", d.field, d.a, d.b);
        else
            snprintf(why, sizeof why, "the job options differ");
        mch_job_spec_deinit(&old);
    }
    return mch_fail(err, MCH_ERR_ARG, "cannot resume %s: %s", j->path, why);
}

mch_status mch_plan_journal(const mch_run_opts *o, const char *name, const mch_job_spec *spec,
                            const uint8_t *bytes, size_t len, int size, mch_journal *j,
                            mch_plan_resume *r, mch_err *err)
{
    memset(r, 0, sizeof *r);
    memset(j, 0, sizeof *j);
    char *path = mch_path_join(o->out, name);
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status rc;
    struct stat sb;
    int found = o->resume && stat(path, &sb) == 0;
    /* The header is one write after the file is created: a run killed between the two left an
     * empty journal, which holds no pair, so the job starts afresh. */
    if (found && S_ISREG(sb.st_mode) && sb.st_size == 0 && unlink(path) == 0) {
        mch_log_warn("mechir run: %s was empty (a run killed while creating it); the job starts "
                     "afresh",
                     path);
        found = 0;
    }
    if (found) {
        rc = mch_journal_open(j, path, 1, err);
        if (!rc && j->torn_bytes)
            mch_log_warn("mechir run: %s: cut off an incomplete last record (%llu bytes at offset "
                         "%llu, a crash mid-write); its pair is computed again",
                         path, (unsigned long long)j->torn_bytes, (unsigned long long)j->end);
        if (!rc) rc = same_job(j, spec, bytes, len, err);
        if (!rc) rc = new_attempt(o->out, size, &r->attempt, err);
        r->resumed = 1;
    } else {
        rc = mch_journal_create(j, path, bytes, len, err);
    }
    free(path);
    return rc;
}

mch_status mch_plan_write_job(const mch_run_opts *o, mch_err *err)
{
    char *path = mch_path_join(o->out, "job.json");
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    const char *text = o->job_json ? o->job_json : "{}";
    mch_status rc = mch_write_file_atomic(path, text, strlen(text), err);
    free(path);
    return rc;
}

mch_status mch_plan_resume_check(const mch_journal *j, const mch_job_spec *spec, uint32_t mode,
                                 uint64_t limit, mch_plan_resume *r, mch_err *err)
{
    mch_journal_expect x = {spec, mode, limit};
    FILE *f = fopen(j->path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", j->path, strerror(errno));
    mch_status rc = MCH_OK;
    if (!(r->done = calloc(limit + 1, 1))) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; !rc && i < j->n_recs; i++) {
        mch_pair_result pr;
        if ((rc = mch_journal_load(j, f, &j->recs[i], &x, &buf, &cap, &pr, err))) break;
        mch_pair_result_deinit(&pr);
        uint64_t index = j->recs[i].index; /* below limit: checked */
        r->n_done += !r->done[index];      /* a pair journaled twice is done once */
        r->done[index] = 1;
    }
    r->done_cap = limit;
    free(buf);
    fclose(f);
    return rc;
}

mch_status mch_plan_count(const mch_run_opts *o, const mch_model_meta *m, uint64_t *total,
                          mch_pair_source **counter, mch_err *err)
{
    const char *files[7];
    size_t n = input_paths(&o->src, files);
    *counter = NULL;
    /* Every pass opens every file again (--df and --stopwords too): a pipe would be empty. */
    for (size_t i = 0; i < n; i++) {
        mch_status rc =
            mch_input_need_regular(files[i], "mechir run (a count, then the pairs)", err);
        if (rc) return rc;
    }
    mch_status rc = mch_pair_source_open(counter, &o->src, m, err);
    *total = 0;
    for (;;) {
        const mch_record *r;
        if (rc || (rc = mch_pair_source_next_record(*counter, &r, err)) || !r) break;
        ++*total;
    }
    if (rc) {
        mch_pair_source_close(*counter);
        *counter = NULL;
    }
    return rc;
}

void mch_plan_count_report(mch_pair_source *counter, uint64_t total, uint64_t journaled, int size)
{
    if (!counter) return;
    const mch_skip_report *rep = mch_pair_source_report(counter);
    long bad = rep->skipped + rep->table_skipped;
    mch_log_info("mechir run: %ld input units, %llu records, %ld bad input line%s; %llu already "
                 "done; %d rank%s",
                 rep->units, (unsigned long long)total, bad, bad == 1 ? "" : "s",
                 (unsigned long long)journaled, size, size == 1 ? "" : "s");
    /* Named here, before any work; the pass that builds the pairs reads them again. */
    if (bad && mch_log_threshold >= MCH_LOG_WARN)
        mch_pair_source_print_bad_input(counter, MCH_BAD_LINES_SHOWN, stderr);
    mch_pair_source_close(counter);
}
