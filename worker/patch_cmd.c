/* `mechir patch`: activation patching of one baseline/perturbed pair, printed as one JSON object
 * on stdout (layout in docs/PATCHING.md). Inputs are texts (tokenised here) or exact token ids. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "patch.h"

#define MAX_HEADS 256

static void patch_usage(FILE *f)
{
    fprintf(f, "usage: mechir patch --model DIR --query TEXT --baseline TEXT --perturbed TEXT\n"
               "                    --sweep heads|blocks|head-pos[,...] [options]\n"
               "       mechir patch --model DIR --ids-baseline IDS --ids-perturbed IDS\n"
               "                    [--token-types TYPES] [--query-ids IDS] --sweep ... [options]\n"
               "\n"
               "Activation patching (MechIR semantics): runs the perturbed input, caches its\n"
               "activations, reruns the baseline with one component replaced, and reports the raw\n"
               "patched scores and effects (patched - baseline) / (perturbed - baseline) as one\n"
               "JSON object on stdout. For a cross-encoder the baseline and perturbed texts are\n"
               "documents paired with the same query; for a bi-encoder only the document side is\n"
               "patched. Both inputs must have the same token length and token types.\n"
               "\n"
               "  --model DIR          Hugging Face model directory\n"
               "  --query TEXT         query text\n"
               "  --baseline TEXT      baseline document\n"
               "  --perturbed TEXT     perturbed document\n"
               "  --ids-baseline IDS   exact token ids, comma-separated (bypasses the tokenizer)\n"
               "  --ids-perturbed IDS  exact token ids of the perturbed input\n"
               "  --token-types IDS    token types of both (default: all 0)\n"
               "  --query-ids IDS      bi-encoder: the query's token ids\n"
               "  --sweep LIST         heads, blocks, head-pos (comma-separated)\n"
               "  --heads L.H,...      heads for head-pos and --save-patterns, e.g. 0.1,2.3\n"
               "  --save-patterns      also print both runs' attention patterns of --heads\n"
               "  --max-len N          tokens a sequence (default: max_position_embeddings)\n"
               "  --max-query-len N    cross-encoder query tokens (default 64)\n"
               "  --min-delta D        skip pairs with |perturbed - baseline| < D (default 1e-3)\n"
               "  --pooling cls|mean   bi-encoder pooling (default cls)\n"
               "  --naive              one full forward per patch (the reference loop)\n"
               "  --scratch-mb N       memory for batched patches (default 256)\n"
               "  --threads N          BLAS threads (default: OpenBLAS's own default)\n"
               "  -h, --help           this text\n");
}

/* Parses "1,2,3" into out (cap); returns the count or -1. */
static int parse_ids(const char *opt, const char *s, int32_t *out, int cap)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end && *end != ',') || n == cap) {
            fprintf(stderr,
                    "mechir patch: %s: expected comma-separated token ids (at most %d), "
                    "bad at '%.20s'\n",
                    opt, cap, p);
            return -1;
        }
        out[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!n) fprintf(stderr, "mechir patch: %s is empty\n", opt);
    return n ? n : -1;
}

static int parse_heads(const char *s, int *heads)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long l = strtol(p, &end, 10);
        if (end == p || *end != '.' || l < 0) goto bad;
        p = end + 1;
        long h = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || h < 0 || n == MAX_HEADS) goto bad;
        heads[2 * n] = (int)l;
        heads[2 * n + 1] = (int)h;
        n++;
        p = *end ? end + 1 : end;
    }
    if (n) return n;
bad:
    fprintf(stderr, "mechir patch: --heads takes LAYER.HEAD pairs like 0.1,2.3, got '%s'\n", s);
    return -1;
}

static cJSON *num(double v)
{
    char buf[32];
    if (!isfinite(v)) return cJSON_CreateNull();
    snprintf(buf, sizeof buf, "%.9g", v);
    return cJSON_CreateRaw(buf);
}

/* rows x cols floats as nested arrays. */
static cJSON *matrix(const float *x, int rows, int cols)
{
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < rows; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < cols; c++) cJSON_AddItemToArray(row, num(x[(size_t)r * cols + c]));
        cJSON_AddItemToArray(a, row);
    }
    return a;
}

static cJSON *tokens(const mch_vocab *v, const int32_t *ids, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const char *t = v ? mch_vocab_token(v, ids[i]) : NULL;
        cJSON_AddItemToArray(a, t ? cJSON_CreateString(t) : cJSON_CreateNull());
    }
    return a;
}

static cJSON *int_array(const int32_t *x, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

typedef struct {
    const char *model, *query, *baseline, *perturbed;
    const char *ids_b, *ids_p, *types, *qids;
    unsigned sweeps;
    int heads[2 * MAX_HEADS], n_heads;
    int save_patterns, naive, max_len, max_query_len, scratch_mb, threads;
    double min_delta;
    mch_pooling pooling;
} patch_args;

static int parse_sweeps(const char *s, unsigned *out)
{
    *out = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "heads"))
            *out |= MCH_SWEEP_HEADS;
        else if (!strcmp(tok, "blocks"))
            *out |= MCH_SWEEP_BLOCKS;
        else if (!strcmp(tok, "head-pos"))
            *out |= MCH_SWEEP_HEAD_POS;
        else {
            fprintf(stderr, "mechir patch: unknown sweep '%s' (heads, blocks, head-pos)\n", tok);
            return 0;
        }
    }
    if (!*out) fprintf(stderr, "mechir patch: --sweep is empty\n");
    return *out != 0;
}

static int parse_args(int argc, char **argv, patch_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"query", required_argument, 0, 'q'},
        {"baseline", required_argument, 0, 'b'},
        {"perturbed", required_argument, 0, 'p'},
        {"ids-baseline", required_argument, 0, 'B'},
        {"ids-perturbed", required_argument, 0, 'P'},
        {"token-types", required_argument, 0, 'y'},
        {"query-ids", required_argument, 0, 'Q'},
        {"sweep", required_argument, 0, 's'},
        {"heads", required_argument, 0, 'H'},
        {"save-patterns", no_argument, 0, 'S'},
        {"max-len", required_argument, 0, 'L'},
        {"max-query-len", required_argument, 0, 'K'},
        {"min-delta", required_argument, 0, 'd'},
        {"pooling", required_argument, 0, 'o'},
        {"naive", no_argument, 0, 'n'},
        {"scratch-mb", required_argument, 0, 'x'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'q':
            a->query = optarg;
            break;
        case 'b':
            a->baseline = optarg;
            break;
        case 'p':
            a->perturbed = optarg;
            break;
        case 'B':
            a->ids_b = optarg;
            break;
        case 'P':
            a->ids_p = optarg;
            break;
        case 'y':
            a->types = optarg;
            break;
        case 'Q':
            a->qids = optarg;
            break;
        case 's':
            if (!parse_sweeps(optarg, &a->sweeps)) return 2;
            break;
        case 'H':
            if ((a->n_heads = parse_heads(optarg, a->heads)) < 0) return 2;
            break;
        case 'S':
            a->save_patterns = 1;
            break;
        case 'n':
            a->naive = 1;
            break;
        case 'L':
            if (!mch_cli_int("--max-len", optarg, 2, 1 << 20, &a->max_len)) return 2;
            break;
        case 'K':
            if (!mch_cli_int("--max-query-len", optarg, 1, 1 << 20, &a->max_query_len)) return 2;
            break;
        case 'x':
            if (!mch_cli_int("--scratch-mb", optarg, 1, 1 << 20, &a->scratch_mb)) return 2;
            break;
        case 't':
            if (!mch_cli_int("--threads", optarg, 1, 1024, &a->threads)) return 2;
            break;
        case 'd':
            errno = 0;
            a->min_delta = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(a->min_delta > 0) || !isfinite(a->min_delta)) {
                fprintf(stderr, "mechir patch: --min-delta needs a positive number, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'o':
            if (!strcmp(optarg, "cls"))
                a->pooling = MCH_POOL_CLS;
            else if (!strcmp(optarg, "mean"))
                a->pooling = MCH_POOL_MEAN;
            else {
                fprintf(stderr, "mechir patch: --pooling takes cls or mean, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            patch_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "mechir patch: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mechir patch: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    int texts = a->baseline || a->perturbed, ids = a->ids_b || a->ids_p;
    if (!a->model || !a->sweeps || texts == ids || (texts && (!a->baseline || !a->perturbed)) ||
        (ids && (!a->ids_b || !a->ids_p)) || (texts && !a->query)) {
        fprintf(stderr, "mechir patch: give --model, --sweep, and either --query with --baseline "
                        "and --perturbed, or --ids-baseline and --ids-perturbed (see --help)\n");
        return 2;
    }
    if ((a->sweeps & MCH_SWEEP_HEAD_POS) && !a->n_heads) {
        fprintf(stderr, "mechir patch: --sweep head-pos needs --heads (e.g. --heads 0.1,2.3)\n");
        return 2;
    }
    if (a->save_patterns && !a->n_heads) {
        fprintf(stderr, "mechir patch: --save-patterns needs --heads\n");
        return 2;
    }
    return -1;
}

typedef struct {
    int32_t *b, *p, *types, *q;
    int T, Tq;
} pair_ids;

/* Builds the pair's ids from texts or from the id options; returns 0 or an exit status. */
static int build_pair(const patch_args *a, const mch_model *m, pair_ids *ids)
{
    int cap = m->cfg.max_pos;
    int max_len = a->max_len ? a->max_len : cap;
    if (max_len > cap) {
        fprintf(stderr, "mechir patch: --max-len %d exceeds max_position_embeddings %d\n", max_len,
                cap);
        return 2;
    }
    int bi = m->cfg.head == MCH_HEAD_NONE;
    int32_t *tp = calloc((size_t)cap, sizeof *tp);
    ids->b = calloc((size_t)cap, 4), ids->p = calloc((size_t)cap, 4);
    ids->types = calloc((size_t)cap, 4), ids->q = calloc((size_t)cap, 4);
    if (!tp || !ids->b || !ids->p || !ids->types || !ids->q) {
        free(tp);
        fprintf(stderr, "mechir patch: out of memory\n");
        return 1;
    }
    mch_err err = {0};
    int rc = 0;
    if (a->ids_b) {
        int Tb = parse_ids("--ids-baseline", a->ids_b, ids->b, cap);
        int Tp = Tb < 0 ? -1 : parse_ids("--ids-perturbed", a->ids_p, ids->p, cap);
        int Tt = !a->types || Tp < 0 ? Tb : parse_ids("--token-types", a->types, ids->types, cap);
        ids->Tq = a->qids ? parse_ids("--query-ids", a->qids, ids->q, cap) : 0;
        if (Tb < 0 || Tp < 0 || Tt < 0 || ids->Tq < 0)
            rc = 2;
        else if (Tb != Tp || Tt != Tb) {
            fprintf(stderr,
                    "mechir patch: --ids-baseline has %d ids, --ids-perturbed %d, --token-types "
                    "%d; they must be equal\n",
                    Tb, Tp, Tt);
            rc = 2;
        } else if (bi && !a->qids && !a->query) {
            fprintf(stderr, "mechir patch: a bi-encoder needs --query-ids or --query\n");
            rc = 2;
        }
        ids->T = Tb;
    } else if (!m->vocab) {
        fprintf(stderr, "mechir patch: %s has no vocab.txt; give token ids\n", a->model);
        rc = 1;
    } else if (!bi) {
        int qlen = a->max_query_len ? a->max_query_len : 64, Tb = 0, Tp = 0;
        if (mch_encode_pair(m->vocab, a->query, a->baseline, qlen, max_len, ids->b, ids->types, &Tb,
                            &err) ||
            mch_encode_pair(m->vocab, a->query, a->perturbed, qlen, max_len, ids->p, tp, &Tp,
                            &err)) {
            fprintf(stderr, "mechir patch: %s\n", err.msg);
            rc = 1;
        } else if (Tb != Tp || memcmp(ids->types, tp, (size_t)Tb * 4)) {
            fprintf(stderr,
                    "mechir patch: baseline and perturbed pairs have %d and %d tokens (or "
                    "different token types); patching needs aligned inputs of equal length\n",
                    Tb, Tp);
            rc = 1;
        }
        ids->T = Tb;
    } else {
        int Tb = 0, Tp = 0;
        if (mch_encode_single(m->vocab, a->baseline, max_len, ids->b, &Tb, &err) ||
            mch_encode_single(m->vocab, a->perturbed, max_len, ids->p, &Tp, &err)) {
            fprintf(stderr, "mechir patch: %s\n", err.msg);
            rc = 1;
        } else if (Tb != Tp) {
            fprintf(stderr,
                    "mechir patch: baseline and perturbed documents have %d and %d tokens; "
                    "patching needs aligned inputs of equal length\n",
                    Tb, Tp);
            rc = 1;
        }
        ids->T = Tb;
    }
    if (!rc && bi && !ids->Tq) {
        if (!a->query || !m->vocab) {
            fprintf(stderr, "mechir patch: a bi-encoder needs --query-ids or --query\n");
            rc = 2;
        } else if (mch_encode_single(m->vocab, a->query, max_len, ids->q, &ids->Tq, &err)) {
            fprintf(stderr, "mechir patch: %s\n", err.msg);
            rc = 1;
        }
    }
    free(tp);
    return rc;
}

static void add_maps(cJSON *o, const mch_config *c, const patch_args *a, const mch_patch_result *r,
                     int T)
{
    int L = c->L;
    if (a->sweeps & MCH_SWEEP_HEADS) {
        cJSON_AddItemToObject(o, "heads", matrix(r->heads, L, c->NH));
        cJSON_AddItemToObject(o, "heads_scores", matrix(r->heads_scores, L, c->NH));
    }
    if (a->sweeps & MCH_SWEEP_BLOCKS) {
        static const char *names[MCH_BLOCK_COUNT] = {"resid_pre", "attn_out", "mlp_out"};
        cJSON *b = cJSON_AddObjectToObject(o, "blocks"),
              *bs = cJSON_AddObjectToObject(o, "blocks_scores");
        for (int k = 0; k < MCH_BLOCK_COUNT; k++) {
            cJSON_AddItemToObject(b, names[k], matrix(r->blocks + (size_t)k * L * T, L, T));
            cJSON_AddItemToObject(bs, names[k], matrix(r->blocks_scores + (size_t)k * L * T, L, T));
        }
    }
    if (a->sweeps & MCH_SWEEP_HEAD_POS) {
        cJSON *hp = cJSON_AddObjectToObject(o, "head_pos");
        cJSON *hl = cJSON_AddArrayToObject(hp, "heads");
        for (int k = 0; k < a->n_heads; k++)
            cJSON_AddItemToArray(hl, cJSON_CreateIntArray(a->heads + 2 * k, 2));
        cJSON_AddItemToObject(hp, "z", matrix(r->head_pos_z, a->n_heads, T));
        cJSON_AddItemToObject(hp, "pattern", matrix(r->head_pos_pattern, a->n_heads, T));
        cJSON *hs = cJSON_AddObjectToObject(o, "head_pos_scores");
        cJSON_AddItemToObject(hs, "z", matrix(r->head_pos_z_scores, a->n_heads, T));
        cJSON_AddItemToObject(hs, "pattern", matrix(r->head_pos_pattern_scores, a->n_heads, T));
    }
    if (a->save_patterns) {
        cJSON *pt = cJSON_AddObjectToObject(o, "patterns");
        cJSON *hl = cJSON_AddArrayToObject(pt, "heads");
        cJSON *pb = cJSON_AddArrayToObject(pt, "baseline"),
              *pp = cJSON_AddArrayToObject(pt, "perturbed");
        size_t TT = (size_t)T * T;
        for (int k = 0; k < a->n_heads; k++) {
            cJSON_AddItemToArray(hl, cJSON_CreateIntArray(a->heads + 2 * k, 2));
            cJSON_AddItemToArray(pb, matrix(r->patterns_baseline + k * TT, T, T));
            cJSON_AddItemToArray(pp, matrix(r->patterns_perturbed + k * TT, T, T));
        }
    }
}

int mch_cmd_patch(int argc, char **argv)
{
    patch_args a = {0};
    a.min_delta = 1e-3;
    int st = parse_args(argc, argv, &a);
    if (st >= 0) return st;
    if (a.threads) openblas_set_num_threads(a.threads);
    mch_err err = {0};
    mch_model *m = NULL;
    if (mch_model_open(&m, a.model, &err)) {
        fprintf(stderr, "mechir patch: %s\n", err.msg);
        return 1;
    }
    const mch_config *c = &m->cfg;
    pair_ids ids = {0};
    mch_patcher *p = NULL;
    mch_patch_result r = {0};
    float *bufs[10] = {0};
    cJSON *o = NULL;
    int rc = build_pair(&a, m, &ids);
    if (rc) goto done;
    mch_patch_opts po = {a.sweeps,
                         a.n_heads,
                         a.heads,
                         a.save_patterns,
                         a.min_delta,
                         a.naive,
                         (size_t)(a.scratch_mb ? a.scratch_mb : 256) << 20,
                         a.pooling,
                         0};
    if (mch_patcher_create(&p, m, &po, ids.T, &err)) {
        fprintf(stderr, "mechir patch: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    size_t T = (size_t)ids.T, nh = (size_t)(a.n_heads ? a.n_heads : 1);
    size_t sizes[10] = {(size_t)c->L * c->NH,
                        (size_t)c->L * c->NH,
                        3 * c->L * T,
                        3 * c->L * T,
                        nh * T,
                        nh * T,
                        nh * T,
                        nh * T,
                        nh * T * T,
                        nh * T * T};
    for (int i = 0; i < 10; i++)
        if (!(bufs[i] = calloc(sizes[i], sizeof(float)))) {
            fprintf(stderr, "mechir patch: out of memory\n");
            rc = 1;
            goto done;
        }
    r.heads = bufs[0], r.heads_scores = bufs[1], r.blocks = bufs[2], r.blocks_scores = bufs[3];
    r.head_pos_z = bufs[4], r.head_pos_z_scores = bufs[5], r.head_pos_pattern = bufs[6];
    r.head_pos_pattern_scores = bufs[7], r.patterns_baseline = bufs[8];
    r.patterns_perturbed = bufs[9];
    mch_patch_pair pair = {ids.T, ids.b, ids.p, ids.types, ids.Tq, ids.q};
    if (mch_patch_run(p, &pair, &r, &err)) {
        fprintf(stderr, "mechir patch: %s\n", err.msg);
        rc = 1;
        goto done;
    }
    o = cJSON_CreateObject();
    if (r.skipped) cJSON_AddStringToObject(o, "skipped", r.skip_reason);
    cJSON_AddItemToObject(o, "score_baseline", num(r.score_baseline));
    cJSON_AddItemToObject(o, "score_perturbed", num(r.score_perturbed));
    cJSON_AddItemToObject(o, "tokens", tokens(m->vocab, ids.b, ids.T));
    cJSON_AddItemToObject(o, "tokens_perturbed", tokens(m->vocab, ids.p, ids.T));
    cJSON_AddItemToObject(o, "ids_baseline", int_array(ids.b, ids.T));
    cJSON_AddItemToObject(o, "ids_perturbed", int_array(ids.p, ids.T));
    cJSON_AddItemToObject(o, "token_types", int_array(ids.types, ids.T));
    if (!r.skipped) add_maps(o, c, &a, &r, ids.T);
    char *text = cJSON_PrintUnformatted(o);
    if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "mechir patch: writing stdout failed\n");
        rc = 1;
    }
    free(text);
done:
    cJSON_Delete(o);
    for (int i = 0; i < 10; i++) free(bufs[i]);
    free(ids.b);
    free(ids.p);
    free(ids.types);
    free(ids.q);
    mch_patcher_free(p);
    mch_model_close(m);
    return rc;
}
