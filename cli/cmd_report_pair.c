/* `mechir report --pairs OUT/pairs.jsonl[.zst] --pair ID`: one pair's views
 * (coordinator/pair_view.h), with the attention patterns of a forward of the model
 * (worker/pair_attn.h) when --model is given. Exit 0 written, 1 failed, 2 usage (one line on
 * stderr). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "input.h"
#include "log.h"
#include "meta.h"
#include "msg.h"
#include "opts.h"
#include "pair_attn.h"
#include "pair_view.h"

enum { TOP_HEADS_DEFAULT = 3, TOP_HEADS_MAX = 64 };

void mch_report_pair_usage(FILE *f)
{
    fprintf(
        f,
        "usage: mechir report --pairs OUT/pairs.jsonl[.zst] --pair ID [-o DIR]\n"
        "                     [--model DIR [--heads L.H,... | --top-heads K]]\n"
        "\n"
        "One pair's views, written into DIR (default pair-ID), replaced as a whole:\n"
        "  blocks.svg   the pair's blocks effects by position, as MechIR's plot_blocks: one\n"
        "      panel per site (resid_pre, attn_out, mlp_out), x the pair's tokens (perturbed\n"
        "      tokens in red below where they differ), y the layer; hover a cell for its value\n"
        "  attention_L.H.svg  with --model: head L.H's attention pattern in the baseline run,\n"
        "      in the perturbed run and their difference (y query tokens, x key tokens)\n"
        "  index.html   the pair, its head effects, its tokens and roles, the figures\n"
        "  --pair ID     the pair id of pairs.jsonl (16 hex digits, as mechir cache ls shows)\n"
        "  --model DIR   the run's model: labels the tokens and runs both inputs for the\n"
        "                attention patterns; without it the tokens are labelled by the\n"
        "                tokenizer of the model OUT/run.json names, and no pattern is drawn\n"
        "  --heads L.H,...  the heads whose patterns are drawn (needs --model)\n"
        "  --top-heads K    without --heads: the pair's K heads of largest |effect| (default\n"
        "                %d; needs a heads sweep)\n",
        TOP_HEADS_DEFAULT);
}

/* The model OUT/run.json (beside the pairs file) names, as its job gave it; NULL when there is
 * none (why: the reason). The caller frees it. */
static char *run_model(const char *pairs, char *why, size_t cap)
{
    const char *slash = strrchr(pairs, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - pairs) : 1, slash ? pairs : ".");
    char *path = mch_path_join(dir, "run.json");
    mch_lines *l = NULL;
    mch_err err = {0};
    char *line = NULL, *model = NULL;
    size_t len = 0;
    long no = 0;
    cJSON *o = NULL;
    if (path && !mch_lines_open(&l, path, 0, &err) && !mch_lines_next(l, &line, &len, &no, &err) &&
        line)
        o = mch_json_parse_exact(line, len);
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(o, "job");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(job, "model");
    if (cJSON_IsString(m)) model = strdup(m->valuestring);
    snprintf(why, cap, "%s %s", path ? path : "run.json",
             model ? ""
             : o   ? "names no model"
                   : "cannot be read");
    cJSON_Delete(o);
    mch_lines_close(l);
    free(path);
    return model;
}

typedef struct {
    const char *pairs, *pair, *out, *model, *heads;
    int top_heads, top_given;
} pair_opts;

/* The pair's views; @return the exit status. */
static int report_pair(const pair_opts *po, const char *id, const uint32_t *given, size_t n_given)
{
    mch_err err = {0};
    mch_pair_rec rec;
    if (mch_pair_find(&rec, po->pairs, id, &err)) {
        mch_log_error("mechir report: %s", err.msg);
        return 1;
    }
    char why[4200] = "", out_dir[40];
    char *run_dir = po->model ? NULL : run_model(po->pairs, why, sizeof why);
    const char *dir = po->model ? po->model : run_dir;
    mch_model *m = NULL;
    mch_model_meta *meta = NULL;
    int status = 0, n_heads = 0, *heads = NULL;
    float *pat = NULL;
    if (!dir) {
        mch_log_error("mechir report: no model to label the tokens with (%s): give --model DIR",
                      why);
        status = 2;
    } else if (po->model ? mch_model_open(&m, dir, &err) : mch_model_meta_open(&meta, dir, &err)) {
        mch_log_error("mechir report: %s%s", err.msg,
                      po->model ? "" : " (the model OUT/run.json names; give --model DIR)");
        status = 1;
    }
    const mch_config *cfg = m ? &m->cfg : meta ? &meta->cfg : NULL;
    const mch_tok *tok = m ? (m->t5 ? m->t5->tok : m->tok) : meta ? meta->tok : NULL;
    if (!status && m && m->t5 && (given || po->top_given)) {
        mch_log_error("mechir report: %s is a MonoT5: attention patterns are drawn for encoder "
                      "models only (leave out --heads and --top-heads for the blocks view)",
                      dir);
        status = 2;
    } else if (!status && !tok) {
        mch_log_error("mechir report: %s has no tokenizer to label the tokens with", dir);
        status = 1;
    } else if (!status && rec.L && (rec.L != cfg->L || (rec.NH && rec.NH != cfg->NH))) {
        mch_log_error("mechir report: pair %s has maps of %d layers and %d heads, %s %d and %d: "
                      "not the run's model",
                      id, rec.L, rec.NH, dir, cfg->L, cfg->NH);
        status = 1;
    }
    size_t out_of =
        given ? mch_heads_outside(given, n_given, (uint32_t)cfg->L, (uint32_t)cfg->NH) : 0;
    if (!status && out_of) {
        mch_log_error("mechir report: --heads %u.%u is outside %s (%d layers, %d heads)",
                      given[2 * (out_of - 1)], given[2 * (out_of - 1) + 1], dir, cfg->L, cfg->NH);
        status = 2;
    }
    const char *no_pat = "no --model: attention patterns need a forward of the model";
    if (!status && m && m->t5) {
        no_pat = "a MonoT5: attention patterns are drawn for encoder models only";
    } else if (!status && m) {
        size_t cap = given ? n_given : (size_t)po->top_heads;
        heads = malloc((cap + 1) * 2 * sizeof *heads);
        for (size_t k = 0; heads && given && k < n_given; k++)
            heads[2 * k] = (int)given[2 * k], heads[2 * k + 1] = (int)given[2 * k + 1];
        n_heads = !heads  ? 0
                  : given ? (int)n_given
                          : mch_pair_top_heads(&rec, po->top_heads, heads);
        if (!n_heads) no_pat = "no heads: the run had no heads sweep for this pair; give --heads";
    }
    if (!status && n_heads) {
        size_t TT = (size_t)rec.T * rec.T;
        int32_t *types = malloc((size_t)rec.T * sizeof *types);
        pat = malloc(2 * TT * n_heads * sizeof *pat);
        if (!types || !pat) {
            mch_log_error("mechir report: out of memory for %d attention patterns of %d tokens",
                          2 * n_heads, rec.T);
            status = 1;
        } else if (mch_pair_types(&rec, tok, types, &err) ||
                   mch_pair_attn(m, rec.ids_baseline, rec.ids_perturbed, types, rec.T, heads,
                                 n_heads, pat, pat + TT * n_heads, &err)) {
            mch_log_error("mechir report: %s", err.msg);
            status = 1;
        }
        free(types);
    }
    if (!status) {
        snprintf(out_dir, sizeof out_dir, "pair-%s", id);
        size_t TT = (size_t)rec.T * rec.T;
        mch_pair_view v = {&rec,    tok,     po->pairs, dir, cfg->L,
                           cfg->NH, n_heads, heads,     pat, pat ? pat + TT * n_heads : NULL,
                           no_pat};
        const char *out = po->out ? po->out : out_dir;
        if (mch_pair_view_write(&v, out, &err)) {
            mch_log_error("mechir report: %s", err.msg);
            status = 1;
        } else {
            mch_log_info("mechir report: %s/index.html, blocks.svg and %d attention figures", out,
                         pat ? n_heads : 0);
        }
    }
    free(pat);
    free(heads);
    mch_model_close(m);
    mch_model_meta_close(meta);
    free(run_dir);
    mch_pair_rec_deinit(&rec);
    return status;
}

int mch_cmd_report_pair(int argc, char **argv)
{
    pair_opts po = {.top_heads = TOP_HEADS_DEFAULT};
    int top_given = 0;
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) return 1;
    const mch_opt tab[] = {{"pairs", 0, MCH_OPT_STR, &po.pairs, 0, 0, NULL, 0},
                           {"pair", 0, MCH_OPT_STR, &po.pair, 0, 0, NULL, 0},
                           {"out", 'o', MCH_OPT_STR, &po.out, 0, 0, NULL, 0},
                           {"model", 0, MCH_OPT_STR, &po.model, 0, 0, NULL, 0},
                           {"heads", 0, MCH_OPT_STR, &po.heads, 0, 0, NULL, 0},
                           {"top-heads", 0, MCH_OPT_INT, &top_given, 1, TOP_HEADS_MAX, NULL, 0},
                           {0}};
    const mch_opt *const tabs[] = {tab, NULL};
    mch_opts o = {.cmd = "report", .tabs = tabs, .pos = pos, .max_pos = argc};
    int status = mch_opts_parse(&o, argc, argv, 1);
    char id[17];
    uint32_t *given = NULL;
    size_t n_given = 0;
    mch_err err = {0};
    if (top_given) po.top_heads = po.top_given = top_given;
    if (!status && o.help) {
        mch_report_pair_usage(stdout);
    } else if (!status && o.n_pos) {
        mch_log_error("mechir report: --pairs takes no map ('%s')", pos[0]);
        status = 2;
    } else if (!status && (!po.pairs || !*po.pairs || !po.pair)) {
        mch_log_error("mechir report: give --pairs OUT/pairs.jsonl and --pair ID (see --help)");
        status = 2;
    } else if (!status && mch_pair_id_norm(po.pair, id)) {
        mch_log_error("mechir report: --pair needs a pair id of 16 hex digits, got '%s'", po.pair);
        status = 2;
    } else if (!status && (po.heads || top_given) && !po.model) {
        mch_log_error("mechir report: --%s needs --model DIR (attention patterns come from a "
                      "forward of the model)",
                      po.heads ? "heads" : "top-heads");
        status = 2;
    } else if (!status && po.heads && mch_heads_parse(po.heads, &given, &n_given, &err)) {
        mch_log_error("mechir report: %s", err.msg);
        status = 2;
    } else if (!status && po.heads && (!n_given || n_given > TOP_HEADS_MAX)) {
        mch_log_error("mechir report: --heads lists %zu heads ('%s'): 1 to %d", n_given, po.heads,
                      TOP_HEADS_MAX);
        status = 2;
    } else if (!status) {
        status = report_pair(&po, id, given, n_given);
    }
    free(given);
    free(pos);
    return status;
}
