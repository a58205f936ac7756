/* `mechir patch`: the command line of one pair's activation patching. Options go through the
 * shared table parser into mch_patch_one_opts; worker/patch_one.c does the work; this file prints
 * the JSON on stdout and turns the outcome into the exit status (0, 1 error, 2 usage). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "ops.h"
#include "msg.h"
#include "opts.h"
#include "patch_one.h"

static void patch_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir patch --model DIR --query TEXT --baseline TEXT --perturbed TEXT\n"
            "                    --sweep heads|blocks|head-pos|qkv|pattern|resid-mid[,...]\n"
            "                    [options]\n"
            "       mechir patch --model DIR --ids-baseline IDS --ids-perturbed IDS\n"
            "                    [--token-types TYPES] [--query-ids IDS] --sweep ... [options]\n"
            "\n"
            "Activation patching (MechIR semantics): runs the perturbed input, caches its\n"
            "activations, reruns the baseline with one component replaced, and reports the raw\n"
            "patched scores and effects (patched - baseline) / (perturbed - baseline) as one\n"
            "JSON object on stdout. For a cross-encoder the baseline and perturbed texts are\n"
            "documents paired with the same query; for a bi-encoder only the document side is\n"
            "patched. Texts whose tokens differ in length are aligned as MechIR pads them: the\n"
            "shorter side gets the filler where the documents differ (\"alignment\" in the\n"
            "output; docs/INPUTS.md, given pairs); id lists must have equal lengths. A MonoT5\n"
            "is patched on its prompt: heads (encoder, decoder_heads, cross_heads) and blocks\n"
            "(encoder), exact only (docs/PATCHING.md, \"MonoT5\").\n"
            "\n"
            "  --model DIR          Hugging Face model directory\n"
            "  --query TEXT         query text\n"
            "  --baseline TEXT      baseline document\n"
            "  --perturbed TEXT     perturbed document\n"
            "  --filler WORD        the padding of texts of different lengths, one token\n"
            "                       (default a)\n"
            "  --ids-baseline IDS   exact token ids, comma-separated (bypasses the tokenizer)\n"
            "  --ids-perturbed IDS  exact token ids of the perturbed input\n"
            "  --token-types IDS    token types of both (default: all 0)\n"
            "  --query-ids IDS      bi-encoder: the query's token ids\n"
            "  --sweep LIST         heads, blocks, head-pos, qkv, pattern, resid-mid\n"
            "                       (comma-separated; docs/PATCHING.md)\n"
            "  --heads L.H,...      heads for head-pos and --save-patterns, e.g. 0.1,2.3\n"
            "  --save-patterns      also print both runs' attention patterns of --heads\n"
            "  --max-len N          tokens a sequence (default: max_position_embeddings)\n"
            "  --max-query-len N    cross-encoder query tokens (default 64)\n"
            "  --min-delta D        skip pairs with |perturbed - baseline| < D (default 1e-3)\n"
            "  --pooling cls|mean   bi-encoder pooling (default cls)\n"
            "  --method M           exact (default), atp (attribution patching: every heads and\n"
            "                       blocks score estimated from one backward pass) or atp-qk\n"
            "                       (atp with the QK fix for heads); see docs/ATP.md\n"
            "  --verify-top K       with atp: also patch exactly the K components of largest\n"
            "                       |estimate - baseline| and every resid_pre row where the\n"
            "                       inputs differ (\"verified\", \"verified_diff_rows\")\n"
            "  --naive              one full forward per patch (the reference loop)\n"
            "  --scratch-mb N       memory for batched patches (default 256)\n"
            "  --threads N          BLAS threads (default: OpenBLAS's own default)\n"
            "  -h, --help           this text\n");
}

/* What argv holds: the library's options plus what only the command line decides. */
typedef struct {
    const char *model;
    int threads;
    mch_patch_one_opts o;
    int heads[2 * MCH_PATCH_MAX_HEADS];
} patch_cli;

static int refuse(const mch_err *err)
{
    mch_log_error("mechir patch: %s", err->msg);
    return -1;
}

static int on_sweep(void *user, const char *opt, const char *val)
{
    (void)opt;
    patch_cli *a = user;
    mch_err err = {0};
    if (mch_sweeps_parse(val, &a->o.sweeps, &err)) return refuse(&err);
    if (!a->o.sweeps) {
        mch_log_error("mechir patch: --sweep none: patch needs heads, blocks or head-pos");
        return -1;
    }
    return 0;
}

static int on_heads(void *user, const char *opt, const char *val)
{
    (void)opt;
    patch_cli *a = user;
    mch_err err = {0};
    uint32_t *pairs = NULL;
    size_t n = 0;
    if (mch_heads_parse(val, &pairs, &n, &err)) return refuse(&err);
    if (n > MCH_PATCH_MAX_HEADS) {
        free(pairs);
        mch_log_error("mechir patch: --heads lists %zu heads; at most %d", n, MCH_PATCH_MAX_HEADS);
        return -1;
    }
    for (size_t k = 0; k < 2 * n; k++) a->heads[k] = (int)pairs[k];
    free(pairs);
    a->o.heads = a->heads;
    a->o.n_heads = (int)n;
    return 0;
}

static int on_min_delta(void *user, const char *opt, const char *val)
{
    patch_cli *a = user;
    char *end;
    errno = 0;
    double d = strtod(val, &end);
    if (errno || end == val || *end || !(d > 0) || !isfinite(d)) {
        mch_log_error("mechir patch: %s needs a positive number, got '%s'", opt, val);
        return -1;
    }
    a->o.min_delta = d;
    return 0;
}

static int on_method(void *user, const char *opt, const char *val)
{
    (void)opt;
    patch_cli *a = user;
    mch_err err = {0};
    return mch_method_parse(val, &a->o.method, &err) ? refuse(&err) : 0;
}

static int on_pooling(void *user, const char *opt, const char *val)
{
    patch_cli *a = user;
    if (!strcmp(val, "cls")) {
        a->o.pooling = MCH_POOL_CLS;
    } else if (!strcmp(val, "mean")) {
        a->o.pooling = MCH_POOL_MEAN;
    } else {
        mch_log_error("mechir patch: %s takes cls or mean, got '%s'", opt, val);
        return -1;
    }
    return 0;
}

/* argv into a: -1 to go on, else the exit status (0 after --help, 2 on a usage error). */
static int parse_args(int argc, char **argv, patch_cli *a)
{
    mch_patch_one_opts *o = &a->o;
    const mch_opt tab[] = {
        {.name = "model", .kind = MCH_OPT_STR, .dst = &a->model},
        {.name = "query", .kind = MCH_OPT_STR, .dst = &o->query},
        {.name = "baseline", .kind = MCH_OPT_STR, .dst = &o->baseline},
        {.name = "perturbed", .kind = MCH_OPT_STR, .dst = &o->perturbed},
        {.name = "filler", .kind = MCH_OPT_STR, .dst = &o->filler},
        {.name = "ids-baseline", .kind = MCH_OPT_STR, .dst = &o->ids_baseline},
        {.name = "ids-perturbed", .kind = MCH_OPT_STR, .dst = &o->ids_perturbed},
        {.name = "token-types", .kind = MCH_OPT_STR, .dst = &o->token_types},
        {.name = "query-ids", .kind = MCH_OPT_STR, .dst = &o->query_ids},
        {.name = "sweep", .kind = MCH_OPT_FN, .fn = on_sweep, .fn_takes_value = 1},
        {.name = "heads", .kind = MCH_OPT_FN, .fn = on_heads, .fn_takes_value = 1},
        {.name = "save-patterns", .kind = MCH_OPT_FLAG, .dst = &o->save_patterns},
        {.name = "max-len", .kind = MCH_OPT_INT, .dst = &o->max_len, .lo = 2, .hi = 1 << 20},
        {.name = "max-query-len",
         .kind = MCH_OPT_INT,
         .dst = &o->max_query_len,
         .lo = 1,
         .hi = 1 << 20},
        {.name = "min-delta", .kind = MCH_OPT_FN, .fn = on_min_delta, .fn_takes_value = 1},
        {.name = "pooling", .kind = MCH_OPT_FN, .fn = on_pooling, .fn_takes_value = 1},
        {.name = "method", .kind = MCH_OPT_FN, .fn = on_method, .fn_takes_value = 1},
        {.name = "verify-top", .kind = MCH_OPT_INT, .dst = &o->verify_top, .lo = 1, .hi = 1 << 20},
        {.name = "naive", .kind = MCH_OPT_FLAG, .dst = &o->naive},
        {.name = "scratch-mb", .kind = MCH_OPT_INT, .dst = &o->scratch_mb, .lo = 1, .hi = 1 << 20},
        {.name = "threads", .kind = MCH_OPT_INT, .dst = &a->threads, .lo = 1, .hi = 1024},
        {.name = NULL},
    };
    const mch_opt *const tabs[] = {tab, NULL};
    mch_opts p = {.cmd = "patch", .tabs = tabs, .user = a};
    int st = mch_opts_parse(&p, argc, argv, 1);
    if (st || p.help) {
        if (p.help) patch_usage(stdout);
        return st;
    }
    int texts = o->baseline || o->perturbed, ids = o->ids_baseline || o->ids_perturbed;
    if (!a->model || !o->sweeps || texts == ids || (texts && (!o->baseline || !o->perturbed)) ||
        (ids && (!o->ids_baseline || !o->ids_perturbed)) || (texts && !o->query)) {
        mch_log_error("mechir patch: give --model, --sweep, and either --query with --baseline "
                      "and --perturbed, or --ids-baseline and --ids-perturbed (see --help)");
        return 2;
    }
    if ((o->sweeps & MCH_SWEEP_HEAD_POS) && !o->n_heads) {
        mch_log_error("mechir patch: --sweep head-pos needs --heads (e.g. --heads 0.1,2.3)");
        return 2;
    }
    if (o->save_patterns && !o->n_heads) {
        mch_log_error("mechir patch: --save-patterns needs --heads");
        return 2;
    }
    return -1;
}

int mch_cmd_patch(int argc, char **argv)
{
    patch_cli a = {0};
    a.o.min_delta = 1e-3;
    int st = parse_args(argc, argv, &a);
    if (st >= 0) return st;
    st = 0;
    mch_set_threads(a.threads);
    mch_err err = {0};
    mch_model *m = NULL;
    cJSON *out = NULL;
    if (mch_model_open(&m, a.model, &err)) {
        st = 1;
    } else if (mch_patch_one_supported(&a.o, m, &err)) {
        st = 1; /* a valid request this model cannot serve yet */
    } else if (mch_patch_one_check(&a.o, m, &err)) {
        st = 2;
    } else if (mch_patch_one_run(&a.o, m, &out, &err)) {
        st = 1;
    }
    mch_model_close(m);
    if (st) {
        mch_log_error("mechir patch: %s", err.msg);
        return st;
    }
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (!text) {
        mch_log_error("mechir patch: out of memory");
        st = 1;
    } else {
        printf("%s\n", text); /* main() checks that stdout took it */
    }
    free(text);
    return st;
}
