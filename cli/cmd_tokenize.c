/* `mechir tokenize`: what a model's tokenizer gives a text or a query-document pair, one JSON
 * object a line ({"ids", "tokens", "token_types"}), from the tokenizer files alone (no weight is
 * read), so users and tests can hold it to Hugging Face directly. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "hftok.h"
#include "input.h"
#include "log.h"
#include "opts.h"
#include "utf8.h"

static void tokenize_usage(FILE *f)
{
    fprintf(
        f, "usage: mechir tokenize --model DIR --text TEXT [options]\n"
           "       mechir tokenize --model DIR --input FILE.jsonl [--pair] [options]\n"
           "\n"
           "Prints, one JSON object a line, {\"ids\": [...], \"tokens\": [...], \"token_types\":\n"
           "[...]}: the ids the model sees, with the post-processor's special tokens. The\n"
           "tokenizer is DIR/tokenizer.json, or DIR/vocab.txt (+ tokenizer_config.json's\n"
           "do_lower_case) without one; no weight is read.\n"
           "\n"
           "  --model DIR          model directory (tokenizer.json or vocab.txt; config.json)\n"
           "  --text TEXT          one text\n"
           "  --input FILE         JSONL (plain or .zst): {\"text\": ...} a line, or with --pair\n"
           "                       {\"query\": ..., \"text\": ...}; a bad line is an error naming\n"
           "                       FILE:LINE\n"
           "  --pair               each line is a query-document pair (a cross-encoder's input;\n"
           "                       for a MonoT5, \"Query: q Document: d Relevant:\" cut with </s>\n"
           "                       kept last)\n"
           "  --max-len N          tokens in all (default: the positions config.json gives the\n"
           "                       encoders mechir runs: max_position_embeddings, less\n"
           "                       pad_token_id + 1 for RoBERTa; else no\n"
           "                       limit); a single text is cut at its end\n"
           "  --max-query-len N    a pair's query is cut to N tokens first (default 64, as mechir\n"
           "                       score), then the document so the pair fits --max-len\n"
           "  --max-line-bytes N   longest line of --input (default 67108864, 64 MiB)\n"
           "  -h, --help           this text\n");
}

/* One encoding as a JSON line on stdout. @return 0, or 1 when out of memory. */
static int print_enc(const mch_tok *t, const mch_tok_enc *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(o, "ids");
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    cJSON *types = cJSON_AddArrayToObject(o, "token_types");
    int ok = o && ids && toks && types;
    for (size_t i = 0; ok && i < e->n; i++) {
        const char *s = mch_tok_token(t, e->ids[i]);
        ok = cJSON_AddItemToArray(ids, cJSON_CreateNumber(e->ids[i])) &&
             cJSON_AddItemToArray(toks, s ? cJSON_CreateString(s) : cJSON_CreateNull()) &&
             cJSON_AddItemToArray(types, cJSON_CreateNumber(e->types[i]));
    }
    char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!line) {
        mch_log_error("mechir tokenize: out of memory printing %zu tokens", e->n);
        return 1;
    }
    puts(line);
    free(line);
    return 0;
}

typedef struct {
    const mch_tok *tok;
    int pair, max_len, max_query_len;
    int monot5; /* config.json's model_type is t5: a pair is MonoT5's prompt */
    mch_tok_enc enc;
} tk_run;

/* a (and b for a pair) encoded and printed; where names the input for messages. */
static int encode_print(tk_run *r, const char *a, const char *b, const char *where)
{
    mch_err err = {0};
    if (b && r->monot5 ? mch_tok_encode_monot5(r->tok, a, b, r->max_len, &r->enc, &err)
                       : mch_tok_encode(r->tok, a, strlen(a), b, b ? strlen(b) : 0, r->max_len,
                                        r->max_query_len, &r->enc, &err)) {
        mch_log_error("mechir tokenize: %s: %s", where, err.msg);
        return 1;
    }
    return print_enc(r->tok, &r->enc);
}

/* The string member key of a line's object, or NULL after logging why. */
static const char *line_field(const cJSON *o, const char *key, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        mch_log_error("mechir tokenize: %s: \"%s\" is %s", where, key,
                      v ? "not a string" : "missing");
        return NULL;
    }
    return v->valuestring;
}

/* One pass over the file: with print, each line encoded and printed; without, each line only
 * checked (so that a bad line is the error before anything is printed). */
static int file_pass(tk_run *r, const char *path, uint64_t max_line_bytes, int print)
{
    mch_lines *l = NULL;
    mch_err err = {0};
    size_t cap = max_line_bytes ? (size_t)max_line_bytes : MCH_LINE_BYTES_DEFAULT;
    if (mch_lines_open(&l, path, cap, &err)) {
        mch_log_error("mechir tokenize: %s", err.msg);
        return 1;
    }
    int rc = 0;
    for (;;) {
        char *line;
        size_t len;
        long no;
        if (mch_lines_next(l, &line, &len, &no, &err)) {
            mch_log_error("mechir tokenize: %s", err.msg);
            rc = 1;
            break;
        }
        if (!line) break;
        char where[600], why[200];
        snprintf(where, sizeof where, "%.500s:%ld", path, no);
        size_t at;
        if (!mch_utf8_valid(line, len, &at)) {
            mch_log_error("mechir tokenize: %s: invalid UTF-8 at byte %zu", where, at + 1);
            rc = 1;
            break;
        }
        cJSON *o = mch_json_parse_exact(line, len);
        if (!cJSON_IsObject(o) || mch_json_check(o, line, len, &at, why, sizeof why)) {
            mch_log_error("mechir tokenize: %s: %s", where,
                          cJSON_IsObject(o) ? why : "not a JSON object");
            cJSON_Delete(o);
            rc = 1;
            break;
        }
        const char *q = r->pair ? line_field(o, "query", where) : NULL;
        const char *d = (!r->pair || q) ? line_field(o, "text", where) : NULL;
        if (!d)
            rc = 1;
        else if (print)
            rc = r->pair ? encode_print(r, q, d, where) : encode_print(r, d, NULL, where);
        cJSON_Delete(o);
        if (rc) break;
    }
    mch_lines_close(l);
    return rc;
}

static int tokenize_file(tk_run *r, const char *path, uint64_t max_line_bytes)
{
    mch_err err = {0};
    if (mch_input_need_regular(path, "mechir tokenize (a check, then the ids)", &err)) {
        mch_log_error("mechir tokenize: %s", err.msg);
        return 1;
    }
    return file_pass(r, path, max_line_bytes, 0) || file_pass(r, path, max_line_bytes, 1);
}

/* The default --max-len: max_position_embeddings of a config.json mechir runs, else 0; sets
 * *monot5 for a T5 model. */
static int default_max_len(const char *model, int *monot5)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", model);
    mch_config cfg;
    mch_err err = {0};
    if (mch_config_open(&cfg, path, &err)) {
        mch_log_debug("mechir tokenize: no --max-len from config.json (%s): no limit", err.msg);
        return 0;
    }
    *monot5 = cfg.arch == MCH_ARCH_T5;
    return cfg.max_tokens;
}

int mch_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *input = NULL;
    tk_run r = {.max_len = -1, .max_query_len = 64};
    uint64_t max_line_bytes = 0;
    const mch_opt tab[] = {
        MCH_OPT_ROW_STR("model", &model),
        MCH_OPT_ROW_STR("text", &text),
        MCH_OPT_ROW_STR("input", &input),
        MCH_OPT_ROW_FLAG("pair", &r.pair),
        MCH_OPT_ROW_INT("max-len", &r.max_len, 1, 1 << 24),
        MCH_OPT_ROW_INT("max-query-len", &r.max_query_len, 1, 1 << 24),
        MCH_OPT_ROW_U64("max-line-bytes", &max_line_bytes),
        MCH_OPT_ROW_END,
    };
    const mch_opt *tabs[] = {tab, NULL};
    mch_opts o = {.cmd = "tokenize", .tabs = tabs};
    int st = mch_opts_parse(&o, argc, argv, 1);
    if (st) return st;
    if (o.help) {
        tokenize_usage(stdout);
        return 0;
    }
    if (!model || !text == !input || (text && r.pair)) {
        mch_log_error("mechir tokenize: give --model and either --text or --input (--pair only "
                      "with --input; see --help)");
        return 2;
    }
    size_t bad;
    if (text && !mch_utf8_valid(text, strlen(text), &bad)) {
        mch_log_error("mechir tokenize: --text: invalid UTF-8 at byte %zu", bad + 1);
        return 1;
    }
    mch_tok *tok = NULL;
    mch_err err = {0};
    if (mch_tok_open(&tok, model, &err)) {
        mch_log_error("mechir tokenize: %s", err.msg);
        return 1;
    }
    int max_len = default_max_len(model, &r.monot5);
    if (r.max_len < 0) r.max_len = max_len;
    r.tok = tok;
    int rc =
        text ? encode_print(&r, text, NULL, "--text") : tokenize_file(&r, input, max_line_bytes);
    mch_tok_enc_free(&r.enc);
    mch_tok_free(tok);
    return rc; /* main() checks that stdout took the lines */
}
