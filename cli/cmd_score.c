/* `mechir score`: relevance scores for one pair (--query/--doc) or a TSV of pairs (--input).
 * The TSV is validated completely before anything is printed, so a bad line never leaves a
 * partial result on stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "log.h"
#include "opts.h"
#include "input.h"
#include "ops.h"
#include "safetensors.h"
#include "score.h"

static void score_usage(FILE *f)
{
    fprintf(
        f, "usage: mechir score --model DIR --query TEXT --doc TEXT [options]\n"
           "       mechir score --model DIR --input FILE.tsv [options]\n"
           "\n"
           "Scores query-document pairs. A cross-encoder's score is its logit (of label 1 when\n"
           "it has two labels); a bi-encoder's is the dot product of the pooled query and\n"
           "document vectors. One pair prints the score alone (%%.9g); --input prints\n"
           "'qid<TAB>docno<TAB>score' per line, in input order.\n"
           "\n"
           "  --model DIR          Hugging Face model directory (config.json, model.safetensors,\n"
           "                       tokenizer.json or vocab.txt)\n"
           "  --query TEXT         query text\n"
           "  --doc TEXT           document text\n"
           "  --input FILE         TSV with columns qid, query, docno, text, read as mechir pairs\n"
           "                       reads it but without its term column (UTF-8, plain or .zst;\n"
           "                       a first line whose first field is 'qid' is a header; empty\n"
           "                       lines are passed over). A bad line (column count, UTF-8, an\n"
           "                       empty qid, query, docno or text) is an error naming\n"
           "                       FILE:LINE, before anything is printed; a repeated\n"
           "                       (qid, docno) pair is scored again (docs/INPUTS.md)\n"
           "  --max-line-bytes N   longest line of --input (default 67108864, 64 MiB); a longer\n"
           "                       line is an error (FILE:LINE: line longer than N bytes)\n"
           "  --max-len N          tokens a sequence (default: max_position_embeddings)\n"
           "  --max-query-len N    cross-encoder query tokens (default 64)\n"
           "  --pooling cls|mean   bi-encoder pooling (default cls)\n"
           "  --batch-size N       pairs scored together (default 32)\n"
           "  --threads N          BLAS threads (default: OpenBLAS's own default)\n"
           "  --check-weights      first scan every float tensor of model.safetensors for NaN\n"
           "                       and inf: an error names the tensor and the element; without\n"
           "                       --query/--doc or --input, only the check\n"
           "  -h, --help           this text\n");
}

/* The rules of --input: the shared TSV reader's (coordinator/input.h, docs/INPUTS.md), strict
 * (the first bad line is the error), with exactly four columns, and a repeated (qid, docno) pair
 * scored again (one output line per input pair). */
static mch_input_opts score_tsv_opts(uint64_t max_line_bytes)
{
    return (mch_input_opts){.strict = 1,
                            .four_columns = 1,
                            .allow_duplicates = 1,
                            .max_line_bytes = (size_t)max_line_bytes};
}

typedef struct {
    char **fields; /* qid, query, docno, text of each pending pair; the qid starts its copy */
    int n;
} pending;

/* Copies r's four fields into one allocation: f[0] (the qid, to be freed) and f[1..3] into it.
 * @return 0 when out of memory. */
static int copy_pair(const mch_record *r, char **f)
{
    const char *src[4] = {r->qid, r->query, r->docno, r->text};
    size_t len[4], total = 0;
    for (int i = 0; i < 4; i++) total += (len[i] = strlen(src[i])) + 1;
    char *p = malloc(total);
    if (!p) return 0;
    for (int i = 0; i < 4; i++) {
        f[i] = p;
        memcpy(p, src[i], len[i] + 1);
        p += len[i] + 1;
    }
    return 1;
}

/* Pass 1: the whole file through the strict reader, so that a bad line is the error
 * ("mechir score: FILE:LINE: reason") before anything is printed. @return 0, or 1 on error. */
static int validate_tsv(const char *path, const mch_input_opts *io)
{
    mch_input *in = NULL;
    mch_err err = {0};
    mch_status st = mch_input_open_tsv(&in, path, io, &err);
    while (st == MCH_OK) {
        const mch_record *r;
        st = mch_input_next(in, &r, &err);
        if (!r) break;
    }
    mch_input_close(in);
    if (st == MCH_OK) return 0;
    mch_log_error("mechir score: %s", err.msg);
    return 1;
}

/* A NaN or inf score is an error naming the pair (what), never printed. @return 0 when finite. */
static int not_finite(float score, const char *what)
{
    if (isfinite(score)) return 0;
    mch_log_error("mechir score: %s: non-finite score %g (the model's weights or activations are "
                  "not finite; see --check-weights)",
                  what, (double)score);
    return 1;
}

/* Scores and prints the pending pairs; nothing of the batch is printed when a score is not
 * finite. */
static int flush(mch_scorer *sc, pending *p, float *scores, const char *path)
{
    if (!p->n) return 0;
    const char *q[256], *d[256];
    for (int i = 0; i < p->n; i++) {
        q[i] = p->fields[4 * i + 1];
        d[i] = p->fields[4 * i + 3];
    }
    mch_err err = {0};
    if (mch_scorer_run(sc, q, d, p->n, scores, &err)) {
        mch_log_error("mechir score: %s", err.msg);
        return 1;
    }
    for (int i = 0; i < p->n; i++) {
        char what[512];
        snprintf(what, sizeof what, "%s: pair qid %.200s, docno %.200s", path, p->fields[4 * i],
                 p->fields[4 * i + 2]);
        if (not_finite(scores[i], what)) return 1;
    }
    for (int i = 0; i < p->n; i++) {
        printf("%s\t%s\t%.9g\n", p->fields[4 * i], p->fields[4 * i + 2], (double)scores[i]);
        free(p->fields[4 * i]);
    }
    p->n = 0;
    return 0;
}

/* Pass 2: scores the pairs in batches, printing each batch in input order. */
static int score_tsv(mch_scorer *sc, const char *path, uint64_t max_line_bytes)
{
    mch_input_opts io = score_tsv_opts(max_line_bytes);
    mch_err rerr = {0};
    if (mch_input_need_regular(path, "mechir score (a check, then the scores)", &rerr)) {
        mch_log_error("mechir score: %s", rerr.msg);
        return 1;
    }
    if (validate_tsv(path, &io)) return 1;
    int bs = mch_scorer_batch_size(sc);
    pending p = {calloc((size_t)bs * 4, sizeof(char *)), 0};
    float *scores = calloc((size_t)bs, sizeof *scores);
    mch_input *in = NULL;
    mch_err err = {0};
    mch_status st = !p.fields || !scores ? mch_fail(&err, MCH_ERR_NOMEM, "out of memory")
                                         : mch_input_open_tsv(&in, path, &io, &err);
    int rc = 0;
    while (st == MCH_OK && !rc) {
        const mch_record *r;
        if ((st = mch_input_next(in, &r, &err)) != MCH_OK || !r) break;
        if (!copy_pair(r, p.fields + 4 * p.n)) {
            st = mch_fail(&err, MCH_ERR_NOMEM, "%s:%ld: out of memory", path, r->line);
            break;
        }
        if (++p.n == bs) rc = flush(sc, &p, scores, path);
    }
    if (st != MCH_OK) {
        mch_log_error("mechir score: %s", err.msg);
        rc = 1;
    }
    if (!rc) rc = flush(sc, &p, scores, path);
    for (int i = 0; i < p.n; i++) free(p.fields[4 * i]);
    free(p.fields);
    free(scores);
    mch_input_close(in);
    return rc; /* main() checks that stdout took the scores */
}

static int set_pooling(void *user, const char *opt, const char *val)
{
    mch_score_opts *so = user;
    if (!strcmp(val, "cls"))
        so->pooling = MCH_POOL_CLS;
    else if (!strcmp(val, "mean"))
        so->pooling = MCH_POOL_MEAN;
    else {
        mch_log_error("mechir score: %s takes cls or mean, got '%s'", opt, val);
        return -1;
    }
    return 0;
}

/* One pair from --query and --doc: the score alone on stdout. */
static int score_one(mch_scorer *sc, const char *query, const char *doc)
{
    size_t bad;
    float score;
    mch_err err = {0};
    const char *which = !mch_utf8_valid(query, strlen(query), &bad) ? "--query"
                        : !mch_utf8_valid(doc, strlen(doc), &bad)   ? "--doc"
                                                                    : NULL;
    if (which) {
        mch_log_error("mechir score: %s: invalid UTF-8 at byte %zu", which, bad + 1);
        return 1;
    }
    if (mch_scorer_run(sc, &query, &doc, 1, &score, &err)) {
        mch_log_error("mechir score: %s", err.msg);
        return 1;
    }
    if (not_finite(score, "--query and --doc")) return 1;
    printf("%.9g\n", (double)score);
    return 0;
}

/* --check-weights: every float tensor of DIR/model.safetensors finite (mch_st_check_finite). */
static mch_status check_finite_weights(const char *model, mch_err *err)
{
    char *path = mch_path_join(model, "model.safetensors");
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_safetensors *st = NULL;
    size_t n = 0;
    mch_status rc = mch_st_open(&st, path, err);
    if (!rc) rc = mch_st_check_finite(st, &n, err);
    if (!rc) mch_log_info("mechir score: %s: all %zu float values are finite", path, n);
    mch_st_close(st);
    free(path);
    return rc;
}

int mch_cmd_score(int argc, char **argv)
{
    const char *model = NULL, *query = NULL, *doc = NULL, *input = NULL;
    mch_score_opts so = {0, 64, MCH_POOL_CLS, 32};
    int threads = 0, check_weights = 0;
    uint64_t max_line_bytes = 0;
    const mch_opt tab[] = {
        MCH_OPT_ROW_STR("model", &model),
        MCH_OPT_ROW_STR("query", &query),
        MCH_OPT_ROW_STR("doc", &doc),
        MCH_OPT_ROW_STR("input", &input),
        MCH_OPT_ROW_INT("max-len", &so.max_len, 2, 1 << 20),
        MCH_OPT_ROW_INT("max-query-len", &so.max_query_len, 1, 1 << 20),
        MCH_OPT_ROW_INT("batch-size", &so.batch_size, 1, 256),
        MCH_OPT_ROW_INT("threads", &threads, 1, 1024),
        MCH_OPT_ROW_FN("pooling", set_pooling, 1),
        MCH_OPT_ROW_U64("max-line-bytes", &max_line_bytes),
        MCH_OPT_ROW_FLAG("check-weights", &check_weights),
        MCH_OPT_ROW_END,
    };
    const mch_opt *tabs[] = {tab, NULL};
    mch_opts o = {.cmd = "score", .tabs = tabs, .user = &so};
    int st = mch_opts_parse(&o, argc, argv, 1);
    if (st) return st;
    if (o.help) {
        score_usage(stdout);
        return 0;
    }
    int pairs = input || query || doc;
    if (!model || (!input && pairs && (!query || !doc)) || (input && (query || doc)) ||
        (!pairs && !check_weights)) {
        mch_log_error("mechir score: give --model and either --query and --doc, or --input, or "
                      "--check-weights (see --help)");
        return 2;
    }
    if (threads) mch_set_threads(threads);
    mch_err err = {0};
    if (check_weights && check_finite_weights(model, &err)) {
        mch_log_error("mechir score: %s", err.msg);
        return 1;
    }
    if (!pairs) return 0;
    mch_model *m = NULL;
    if (mch_model_open(&m, model, &err)) {
        mch_log_error("mechir score: %s", err.msg);
        return 1;
    }
    mch_scorer *sc = NULL;
    int rc = 0;
    if (!input) so.batch_size = 1;
    if (mch_scorer_create(&sc, m, &so, &err)) {
        mch_log_error("mechir score: %s", err.msg);
        rc = 1;
    } else {
        rc = input ? score_tsv(sc, input, max_line_bytes) : score_one(sc, query, doc);
    }
    mch_scorer_free(sc);
    mch_model_close(m);
    return rc;
}
