/* Pair source (see pairs_source.h). The skip report of the reader is extended with perturbation
 * skips so that one report covers every input unit. */
#include "pairs_source.h"

#include "fsutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "input_internal.h" /* the readers' title join and tab split, for the df pass */
#include "utf8.h"

const char mch_source_help[] =
    "input (one of):\n"
    "  --input FILE         TSV (qid, query, docno, text[, term]) or JSONL; .zst read directly\n"
    "  --format tsv|jsonl   format of --input (default: from the file name)\n"
    "  --run FILE --topics FILE --docs FILE [--qrels FILE] [--top-k K]\n"
    "                       TREC run joined with topics and docs; without --run, each query of\n"
    "                       --qrels with its relevant documents\n"
    "  --strict             the first bad input line is fatal (default: report and skip)\n"
    "  --max-line-bytes N   longest line of any input file (default 67108864, 64 MiB); a\n"
    "                       longer line is an error (FILE:LINE: line longer than N bytes)\n"
    "perturbation:\n"
    "  --perturb KIND       tfc1 (default), tdc, lnc1, inject, replace, tfc2, lnc2; or\n"
    "                       given: the input holds the perturbed documents (JSONL\n"
    "                       \"perturbed\", TSV 5th column), aligned as MechIR pads them\n"
    "  --max-span N         given: skip pairs whose documents differ in more than N tokens\n"
    "  --term TEXT          inject: the term when the input has no term column\n"
    "  --position P         start, end (default) or a document token index\n"
    "  --filler WORD        baseline filler, one token (default a)\n"
    "  --seed S             job seed of every random choice (default 0)\n"
    "  --max-len N          tokens of a pair (default: the model's max_position_embeddings)\n"
    "  --max-query-len N    query tokens (default 64)\n"
    "  --stem               match query terms by Snowball English stems\n"
    "  --stopwords FILE     one word a line (default: a built-in English list)\n"
    "  --df FILE            document frequencies (term<TAB>df lines and #N<TAB>docs) for tdc and\n"
    "                       lnc1; default: counted from the input's documents in a first pass\n"
    "  --write-df FILE      also write the counted document frequencies\n";

struct mch_pair_source {
    mch_input *in;
    mch_perturber *pert;
    mch_given *given;    /* --perturb given: the pairs' builder (pert unused) */
    mch_alignment align; /* given: the last pair's */
    mch_perturb_opts po;
    mch_strmap *stop;
    mch_df *df;
    mch_skip_report report; /* reader report + perturbation skips */
    long perturb_skips;
    mch_pair pair;
};

/* Counts document frequencies over the input's documents (each docno once). */
static mch_status df_pass(mch_pair_source *s, const mch_source_opts *o, mch_err *err)
{
    mch_status rc;
    mch_strmap *seen = mch_strmap_create();
    if (!seen) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (o->input) {
        mch_input *in = NULL;
        mch_input_opts io = {
            .strict = 0, .top_k = 0, .report_cap = 1, .max_line_bytes = o->max_line_bytes};
        int jsonl =
            o->format ? !strcmp(o->format, "jsonl")
                      : mch_ends_with(o->input, ".jsonl") || mch_ends_with(o->input, ".jsonl.zst");
        /* This pass, then the pairs, read --input. */
        rc = mch_input_need_regular(o->input, "the document-frequency pass", err);
        if (!rc)
            rc = jsonl ? mch_input_open_jsonl(&in, o->input, &io, err)
                       : mch_input_open_tsv(&in, o->input, &io, err);
        const mch_record *r;
        while (!rc && !(rc = mch_input_next(in, &r, err)) && r) {
            int added;
            if (!mch_strmap_put(seen, r->docno, strlen(r->docno), &added)) {
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
            } else if (added) {
                rc = mch_df_add_doc(s->df, r->text, strlen(r->text), err);
            }
        }
        mch_input_close(in);
    } else {
        /* The whole document collection of --docs: TSV docno<TAB>text or JSONL. */
        mch_lines *l = NULL;
        char *joined = NULL; /* "{title} {text}" of the current line */
        size_t joined_cap = 0;
        rc = mch_lines_open(&l, o->docs, o->max_line_bytes, err);
        char *line;
        size_t len;
        long lineno;
        int jsonl = mch_ends_with(o->docs, ".jsonl") || mch_ends_with(o->docs, ".jsonl.zst");
        while (!rc && !(rc = mch_lines_next(l, &line, &len, &lineno, err)) && line) {
            if (strlen(line) != len || !mch_utf8_valid(line, len, NULL)) continue;
            const char *docno = NULL, *text = NULL, *title = NULL;
            cJSON *j = NULL;
            if (jsonl) {
                errno = 0; /* a failed allocation is no bad line: malloc's ENOMEM tells */
                if (!(j = cJSON_ParseWithLength(line, len)) && errno == ENOMEM) {
                    rc = mch_fail(err, MCH_ERR_NOMEM, "%s:%ld: out of memory", o->docs, lineno);
                    break;
                }
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "docno");
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
                if (!d) d = cJSON_GetObjectItemCaseSensitive(j, "doc_id");
                const cJSON *ti = cJSON_GetObjectItemCaseSensitive(j, "title");
                if (cJSON_IsString(d) && cJSON_IsString(t))
                    docno = d->valuestring, text = t->valuestring;
                if (cJSON_IsString(ti)) title = ti->valuestring;
            } else {
                char *f[3];
                int n = mch_input_split_tabs(line, f, 3);
                if (n == 2 || n == 3) docno = f[0], text = f[n - 1], title = n == 3 ? f[1] : NULL;
            }
            /* a title counts as the readers join it: "{title} {text}" */
            if (docno && !(text = mch_input_join_title(&joined, &joined_cap, title, text))) {
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
                cJSON_Delete(j);
                break;
            }
            int added = 0;
            if (docno && *text && !mch_strmap_put(seen, docno, strlen(docno), &added))
                rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
            if (!rc && added) rc = mch_df_add_doc(s->df, text, strlen(text), err);
            cJSON_Delete(j);
        }
        mch_lines_close(l);
        free(joined);
    }
    mch_strmap_free(seen);
    if (!rc && o->write_df) rc = mch_df_save(s->df, o->write_df, err);
    return rc;
}

mch_status mch_pair_source_open(mch_pair_source **out, const mch_source_opts *o,
                                const mch_model_meta *m, mch_err *err)
{
    if (!m->tok) return mch_fail(err, MCH_ERR_ARG, "%s: the model has no tokenizer", m->dir);
    int trec = o->run || o->topics || o->docs || o->qrels;
    if (!!o->input == !!trec)
        return mch_fail(err, MCH_ERR_ARG,
                        "give --input FILE, or --topics and --docs with --run or --qrels");
    if (trec && (!o->topics || !o->docs || (!o->run && !o->qrels)))
        return mch_fail(err, MCH_ERR_ARG,
                        "TREC input needs --topics and --docs, and --run or --qrels");
    if (o->format && strcmp(o->format, "tsv") && strcmp(o->format, "jsonl"))
        return mch_fail(err, MCH_ERR_ARG, "--format takes tsv or jsonl, got '%s'", o->format);
    mch_pair_source *s = calloc(1, sizeof *s);
    if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_perturb_opts *po = &s->po;
    mch_status rc = MCH_OK;
    int given = o->perturb && !strcmp(o->perturb, MCH_PERTURB_GIVEN_NAME);
    if (given && !o->input)
        rc = mch_fail(err, MCH_ERR_ARG,
                      "--perturb given reads the pairs of --input FILE (TSV or JSONL), not a "
                      "TREC set");
    if (!given && o->max_span)
        rc = mch_fail(err, MCH_ERR_ARG, "--max-span applies to --perturb given only");
    if (!rc && o->perturb && !given && !mch_perturb_parse(o->perturb, &po->kind)) {
        const char *near = mch_perturb_nearest(o->perturb);
        rc = mch_fail(err, MCH_ERR_ARG, "--perturb takes %s or given, got '%.60s'%s%s%s",
                      mch_perturb_names(), o->perturb, near ? " (did you mean '" : "",
                      near ? near : "", near ? "'?)" : "");
    }
    po->pos = MCH_POS_END;
    if (!rc && o->position) {
        char *end;
        if (!strcmp(o->position, "start"))
            po->pos = MCH_POS_START;
        else if (!strcmp(o->position, "end"))
            po->pos = MCH_POS_END;
        else if ((po->pos_index = (int)strtol(o->position, &end, 10)) >= 0 && !*end &&
                 end != o->position)
            po->pos = MCH_POS_INDEX;
        else
            rc = mch_fail(err, MCH_ERR_ARG,
                          "--position takes start, end or a token index, got '%s'", o->position);
    }
    po->filler = o->filler;
    po->term = o->term;
    po->max_len = o->max_len ? o->max_len : m->cfg.max_tokens;
    po->max_query_len = o->max_query_len;
    po->bi = m->cfg.head == MCH_HEAD_NONE;
    po->monot5 = m->cfg.arch == MCH_ARCH_T5;
    po->stem = o->stem;
    po->seed = o->seed;
    if (!rc && po->max_len > m->cfg.max_tokens)
        rc = mch_fail(err, MCH_ERR_ARG, "--max-len %d exceeds the model's longest input, %d tokens",
                      po->max_len, m->cfg.max_tokens);
    if (!rc && o->stopwords)
        rc = mch_stopwords_load(&s->stop, o->stopwords, o->max_line_bytes, err);
    po->stopwords = s->stop;
    if (!rc && (po->kind == MCH_PERTURB_TDC || po->kind == MCH_PERTURB_LNC1 || o->write_df)) {
        if (!(s->df = mch_df_create()))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        else if (o->df)
            rc = mch_df_load(s->df, o->df, o->max_line_bytes, err);
        else
            rc = df_pass(s, o, err);
        po->df = s->df;
    }
    if (!rc && given) rc = mch_given_create(&s->given, m->tok, po, o->max_span, err);
    if (!rc && !given) rc = mch_perturber_create(&s->pert, m->tok, po, err);
    mch_input_opts io = {.strict = o->strict,
                         .top_k = o->top_k,
                         .report_cap = 1000,
                         .max_line_bytes = o->max_line_bytes,
                         .given = given};
    if (!rc && o->input) {
        int jsonl =
            o->format ? !strcmp(o->format, "jsonl")
                      : mch_ends_with(o->input, ".jsonl") || mch_ends_with(o->input, ".jsonl.zst");
        rc = jsonl ? mch_input_open_jsonl(&s->in, o->input, &io, err)
                   : mch_input_open_tsv(&s->in, o->input, &io, err);
    } else if (!rc) {
        rc = mch_input_open_trec(&s->in, o->run, o->topics, o->docs, o->qrels, &io, err);
    }
    if (rc) {
        mch_pair_source_close(s);
        return rc;
    }
    *out = s;
    return MCH_OK;
}

mch_status mch_pair_source_next(mch_pair_source *s, const mch_pair **pair, const mch_record **rec,
                                mch_err *err)
{
    for (;;) {
        const mch_record *r;
        mch_status rc = mch_input_next(s->in, &r, err);
        if (rc) return rc;
        if (!r) {
            *pair = NULL;
            *rec = NULL;
            return MCH_OK;
        }
        if (s->given)
            rc = mch_given_build(s->given, r->qid, r->query, r->docno, r->pair_key, r->text,
                                 r->perturbed, &s->pair, &s->align, err);
        else
            rc = mch_perturb(s->pert, r->qid, r->query, r->docno, r->text, r->term, &s->pair, err);
        if (rc) {
            char msg[sizeof err->msg + 64];
            snprintf(msg, sizeof msg, "%s:%ld: %s", r->file, r->line, err->msg);
            size_t n = strlen(msg) < sizeof err->msg ? strlen(msg) : sizeof err->msg - 1;
            memcpy(err->msg, msg, n);
            err->msg[n] = 0;
            return rc;
        }
        if (!s->pair.skip[0]) {
            *pair = &s->pair;
            *rec = r;
            return MCH_OK;
        }
        s->perturb_skips++;
        mch_skip_report *rep = &s->report;
        if (rep->n_entries < 1000) {
            mch_skip *e = realloc(rep->entries, (size_t)(rep->n_entries + 1) * sizeof *e);
            if (!e) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
            rep->entries = e;
            e[rep->n_entries].file = r->file;
            e[rep->n_entries].line = r->line;
            snprintf(e[rep->n_entries].reason, sizeof e->reason, "%s", s->pair.skip);
            rep->n_entries++;
        }
    }
}

mch_status mch_pair_source_next_record(mch_pair_source *s, const mch_record **rec, mch_err *err)
{
    return mch_input_next(s->in, rec, err);
}

const mch_skip_report *mch_pair_source_report(const mch_pair_source *cs)
{
    mch_pair_source *s = (mch_pair_source *)cs;
    const mch_skip_report *r = mch_input_report(s->in);
    mch_skip_report *m = &s->report;
    m->units = r->units;
    m->produced = r->produced - s->perturb_skips;
    m->skipped = r->skipped + s->perturb_skips;
    m->table_skipped = r->table_skipped;
    m->cap = 1000;
    return m;
}

void mch_pair_source_print_bad_input(const mch_pair_source *s, long max, FILE *f)
{
    const mch_skip_report *in = mch_input_report(s->in);
    mch_skip_print(in->entries, in->n_entries, in->skipped + in->table_skipped, max,
                   "bad input lines", f);
}

void mch_pair_source_print_unperturbable(const mch_pair_source *s, long max, FILE *f)
{
    mch_skip_print(s->report.entries, s->report.n_entries, s->perturb_skips, max,
                   "records that could not be perturbed", f);
}

void mch_pair_source_print_report(const mch_pair_source *s, FILE *f)
{
    const mch_skip_report *r = mch_pair_source_report(s);
    fprintf(
        f,
        "units %ld, produced %ld, skipped %ld (input %ld, perturbation %ld), bad table lines %ld\n",
        r->units, r->produced, r->skipped, r->skipped - s->perturb_skips, s->perturb_skips,
        r->table_skipped);
    mch_pair_source_print_bad_input(s, -1, f);
    mch_pair_source_print_unperturbable(s, -1, f);
}

long mch_pair_source_perturb_skips(const mch_pair_source *s)
{
    return s->perturb_skips;
}

const mch_perturb_opts *mch_pair_source_perturb_opts(const mch_pair_source *s)
{
    return &s->po;
}

const char *mch_pair_source_perturb_name(const mch_pair_source *s)
{
    return s->given ? MCH_PERTURB_GIVEN_NAME : mch_perturb_name(s->po.kind);
}

const mch_alignment *mch_pair_source_alignment(const mch_pair_source *s)
{
    return s->given ? &s->align : NULL;
}

void mch_pair_source_close(mch_pair_source *s)
{
    if (!s) return;
    mch_input_close(s->in);
    mch_perturber_free(s->pert);
    mch_given_free(s->given);
    mch_strmap_free(s->stop);
    mch_df_free(s->df);
    free(s->report.entries);
    free(s);
}
