/* `mechir pairs`: the command line that writes a collection's aligned baseline/perturbed pairs
 * as JSONL. Options through the shared tables (the source options of cli/source_opts.h); the
 * pairs come from coordinator/pairs_out.c; this file owns the output files, the summary and the
 * skip report on stderr, and the exit status (0, 1 error, 2 usage). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "log.h"
#include "opts.h"
#include "pairs_out.h"
#include "progress.h"
#include "source_opts.h"

static void pairs_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir pairs --model DIR (--input FILE | --run FILE --topics FILE --docs FILE\n"
            "                    [--qrels FILE] [--top-k K]) [--perturb KIND]\n"
            "                    [--seed S] [--max-len N] [options]\n"
            "\n"
            "Builds aligned baseline/perturbed token pairs with token roles and writes one JSON\n"
            "object per pair: pair_id (16 hex digits), qid, docno, perturbation, term, position,\n"
            "baseline_ids, perturbed_ids, token_types, roles (and query_ids for a bi-encoder;\n"
            "relevance and rank when known). Bad input lines and pairs that cannot be perturbed\n"
            "are reported with file:line and a reason; produced + skipped = input units.\n"
            "\n"
            "  --model DIR          model directory (config.json and tokenizer.json or vocab.txt)\n"
            "  -o, --out FILE       output JSONL (default stdout; a file is written atomically)\n"
            "  --skips FILE         the full skip report (default: the first 20 bad lines of\n"
            "                       each kind on stderr)\n"
            "  -h, --help           this text\n"
            "\n%s",
            mch_source_help);
}

typedef struct {
    const char *model, *out, *skips;
    mch_source_opts src;
} pairs_cli;

/* argv into a: -1 to go on, else the exit status (0 after --help, 2 on a usage error). */
static int parse_args(int argc, char **argv, pairs_cli *a)
{
    const mch_opt tab[] = {
        {.name = "model", .kind = MCH_OPT_STR, .dst = &a->model},
        {.name = "out", .letter = 'o', .kind = MCH_OPT_STR, .dst = &a->out},
        {.name = "skips", .kind = MCH_OPT_STR, .dst = &a->skips},
        {.name = NULL},
    };
    mch_source_opt_table src;
    mch_source_opt_table_init(&src, &a->src);
    const mch_opt *const tabs[] = {tab, src.opt, NULL};
    mch_opts p = {.cmd = "pairs", .tabs = tabs};
    int st = mch_opts_parse(&p, argc, argv, 1);
    if (st || p.help) {
        if (p.help) pairs_usage(stdout);
        return st;
    }
    if (!a->model) {
        mch_log_error("mechir pairs: --model is required (see --help)");
        return 2;
    }
    return -1;
}

static void on_pair(void *user, long n)
{
    mch_progress_update(user, n, NULL);
}

/* Writes the pairs into of (opened on a->out) and commits it; 0, or 1 after a message (then of
 * is abandoned and no partial file is left). */
static int write_pairs(const pairs_cli *a, mch_pair_source *src, mch_outfile *of)
{
    mch_progress prog;
    mch_progress_init(&prog, "pairs", 0);
    mch_err err = {0};
    long n;
    int rc = 0;
    if (mch_pairs_write(src, of->f, on_pair, &prog, &n, &err)) {
        mch_log_error("mechir pairs: %s", err.msg);
        mch_outfile_abort(of);
        rc = 1;
    } else if (mch_outfile_commit(of) != 0) {
        mch_log_error("mechir pairs: writing %s: %s",
                      a->out && strcmp(a->out, "-") ? a->out : "standard output", strerror(errno));
        rc = 1;
    }
    if (prog.printed) mch_progress_finish(&prog, n, NULL);
    return rc;
}

/* The summary line, and the skip report into a->skips or, capped at MCH_BAD_LINES_SHOWN lines of
 * each kind, stderr (when anything was skipped). */
static int report(const pairs_cli *a, const mch_pair_source *src)
{
    const mch_skip_report *rep = mch_pair_source_report(src);
    long perturb = mch_pair_source_perturb_skips(src);
    mch_log_info("mechir pairs: %ld input units: %ld pairs written, %ld skipped (%ld input lines, "
                 "%ld not perturbable); %ld bad lines in joined tables",
                 rep->units, rep->produced, rep->skipped, rep->skipped - perturb, perturb,
                 rep->table_skipped);
    if (!a->skips) {
        if ((rep->skipped || rep->table_skipped) && mch_log_threshold >= MCH_LOG_WARN) {
            mch_log_info("mechir pairs: bad lines, the first %d of each kind (--skips FILE for "
                         "all of them):",
                         MCH_BAD_LINES_SHOWN);
            mch_pair_source_print_bad_input(src, MCH_BAD_LINES_SHOWN, stderr);
            mch_pair_source_print_unperturbable(src, MCH_BAD_LINES_SHOWN, stderr);
        }
        return 0;
    }
    mch_outfile sf;
    if (mch_outfile_open(&sf, a->skips) != 0) {
        mch_log_error("mechir pairs: %s: %s", a->skips, strerror(errno));
        return 1;
    }
    mch_pair_source_print_report(src, sf.f);
    if (mch_outfile_commit(&sf) != 0) {
        mch_log_error("mechir pairs: writing %s: %s", a->skips, strerror(errno));
        return 1;
    }
    return 0;
}

int mch_cmd_pairs(int argc, char **argv)
{
    pairs_cli a = {0};
    int st = parse_args(argc, argv, &a);
    if (st >= 0) return st;
    mch_err err = {0};
    mch_model_meta *m = NULL;
    mch_pair_source *src = NULL;
    if (mch_model_meta_open(&m, a.model, &err) || mch_pair_source_open(&src, &a.src, m, &err)) {
        mch_log_error("mechir pairs: %s", err.msg);
        mch_model_meta_close(m);
        return 1;
    }
    mch_outfile of;
    if (mch_outfile_open(&of, a.out) != 0) {
        mch_log_error("mechir pairs: %s: %s", a.out, strerror(errno));
        st = 1;
    } else {
        st = write_pairs(&a, src, &of);
        if (!st && report(&a, src)) st = 1; /* no summary nor skip report for failed pairs */
    }
    mch_pair_source_close(src);
    mch_model_meta_close(m);
    return st;
}
