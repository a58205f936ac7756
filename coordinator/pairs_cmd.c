/* `mechir pairs`: builds the aligned baseline/perturbed pairs of a collection and writes them as
 * JSONL, so users can inspect what will be patched. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "jsonout.h"
#include "pairs_source.h"
#include "progress.h"

static void pairs_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir pairs --model DIR (--input FILE | --run FILE --topics FILE --docs FILE\n"
            "                    [--qrels FILE] [--top-k K]) [--perturb tfc1|tdc|lnc1|inject]\n"
            "                    [--seed S] [--max-len N] [options]\n"
            "\n"
            "Builds aligned baseline/perturbed token pairs with token roles and writes one JSON\n"
            "object per pair: pair_id (16 hex digits), qid, docno, perturbation, term, position,\n"
            "baseline_ids, perturbed_ids, token_types, roles (and query_ids for a bi-encoder;\n"
            "relevance and rank when known). Bad input lines and pairs that cannot be perturbed\n"
            "are reported with file:line and a reason; produced + skipped = input units.\n"
            "\n"
            "  --model DIR          model directory (vocab.txt and config.json are used)\n"
            "  -o, --out FILE       output JSONL (default stdout; a file is written atomically)\n"
            "  --skips FILE         the full skip report (default: a summary on stderr)\n"
            "  -h, --help           this text\n"
            "\n%s",
            mch_source_help);
}

static void write_pair(FILE *f, const mch_pair *p, const mch_record *r, const char *kind)
{
    fprintf(f, "{\"pair_id\":\"%016llx\",\"qid\":", (unsigned long long)p->pair_id);
    mch_json_string(f, r->qid);
    fputs(",\"docno\":", f);
    mch_json_string(f, r->docno);
    fprintf(f, ",\"perturbation\":\"%s\",\"term\":", kind);
    mch_json_string(f, p->term);
    fprintf(f, ",\"position\":%d", p->position);
    if (r->relevance >= 0) fprintf(f, ",\"relevance\":%d", r->relevance);
    if (r->rank >= 0) fprintf(f, ",\"rank\":%d", r->rank);
    fputs(",\"baseline_ids\":", f);
    mch_json_int_array(f, p->ids_baseline, p->T);
    fputs(",\"perturbed_ids\":", f);
    mch_json_int_array(f, p->ids_perturbed, p->T);
    fputs(",\"token_types\":", f);
    mch_json_int_array(f, p->token_types, p->T);
    if (p->query_ids) {
        fputs(",\"query_ids\":", f);
        mch_json_int_array(f, p->query_ids, p->Tq);
    }
    fputs(",\"roles\":[", f);
    for (int t = 0; t < p->T; t++) fprintf(f, t ? ",\"%s\"" : "\"%s\"", mch_role_name(p->roles[t]));
    fputs("]}\n", f);
}

int mch_cmd_pairs(int argc, char **argv)
{
    mch_source_opts so = {0};
    const char *model = NULL, *out = NULL, *skips = NULL;
    for (int i = 1; i < argc; i++) {
        int used = mch_source_parse_arg(&so, argc, argv, &i);
        if (used < 0) return 2;
        if (used) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            pairs_usage(stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--model")                     ? &model
                           : !strcmp(a, "--out") || !strcmp(a, "-o") ? &out
                           : !strcmp(a, "--skips")                   ? &skips
                                                                     : NULL;
        if (!dst) {
            fprintf(stderr, "mechir pairs: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mechir pairs: %s needs a value\n", a);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!model) {
        fprintf(stderr, "mechir pairs: --model is required (see --help)\n");
        return 2;
    }
    mch_err err = {0};
    mch_model_meta *m = NULL;
    mch_pair_source *src = NULL;
    if (mch_model_meta_open(&m, model, &err) || mch_pair_source_open(&src, &so, m, &err)) {
        fprintf(stderr, "mechir pairs: %s\n", err.msg);
        mch_model_meta_close(m);
        return 1;
    }
    mch_outfile of;
    if (mch_outfile_open(&of, out) != 0) {
        fprintf(stderr, "mechir pairs: %s: %s\n", out, strerror(errno));
        mch_pair_source_close(src);
        mch_model_meta_close(m);
        return 1;
    }
    const char *kind = mch_perturb_name(mch_pair_source_perturb_opts(src)->kind);
    mch_progress prog;
    mch_progress_init(&prog, "pairs", 0);
    long n = 0;
    int rc = 0;
    for (;;) {
        const mch_pair *p;
        const mch_record *r;
        if (mch_pair_source_next(src, &p, &r, &err)) {
            fprintf(stderr, "mechir pairs: %s\n", err.msg);
            rc = 1;
            break;
        }
        if (!p) break;
        write_pair(of.f, p, r, kind);
        n++;
        mch_progress_update(&prog, n, NULL);
    }
    if (!rc && mch_outfile_commit(&of) != 0) {
        fprintf(stderr, "mechir pairs: writing %s: %s\n", out ? out : "stdout", strerror(errno));
        rc = 1;
    } else if (rc) {
        mch_outfile_abort(&of);
    }
    const mch_skip_report *rep = mch_pair_source_report(src);
    if (prog.printed) mch_progress_finish(&prog, n, NULL);
    fprintf(stderr,
            "mechir pairs: %ld input units: %ld pairs written, %ld skipped (%ld input lines, %ld "
            "not perturbable); %ld bad lines in joined tables\n",
            rep->units, rep->produced, rep->skipped,
            rep->skipped - mch_pair_source_perturb_skips(src), mch_pair_source_perturb_skips(src),
            rep->table_skipped);
    if (skips) {
        mch_outfile sf;
        if (mch_outfile_open(&sf, skips) != 0) {
            fprintf(stderr, "mechir pairs: %s: %s\n", skips, strerror(errno));
            rc = 1;
        } else {
            mch_pair_source_print_report(src, sf.f);
            if (mch_outfile_commit(&sf) != 0) {
                fprintf(stderr, "mechir pairs: writing %s: %s\n", skips, strerror(errno));
                rc = 1;
            }
        }
    } else if (rep->skipped || rep->table_skipped) {
        fprintf(stderr, "mechir pairs: the skip report (--skips FILE for all of it):\n");
        mch_pair_source_print_report(src, stderr);
    }
    mch_pair_source_close(src);
    mch_model_meta_close(m);
    return rc;
}
