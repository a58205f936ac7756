/* Shared by the input-reader targets (TSV, JSONL, TREC): the options a first byte selects and
 * the loop that reads every record and checks what a record and the skip report promise
 * (input.h): fields NUL-terminated, non-empty, valid UTF-8; unit lines increasing; a run's
 * ranks within top_k (a JSONL rank or relevance, and a qrels grade, may be any int: INPUTS.md);
 * produced + skipped = units; a failure only under strict or for a long line. */
#ifndef MCH_FUZZ_INPUT_H
#define MCH_FUZZ_INPUT_H

#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "fuzz_file.h"
#include "input.h"
#include "utf8.h"

/* Options from byte b: strict, four columns, duplicates allowed, 256-byte lines, top_k 0..3. */
static inline mch_input_opts fuzz_input_opts(uint8_t b)
{
    mch_input_opts o = {0};
    o.strict = b & 1;
    o.four_columns = (b >> 1) & 1;
    o.allow_duplicates = (b >> 2) & 1;
    o.max_line_bytes = (b >> 3) & 1 ? 256 : 0;
    o.top_k = (b >> 4) & 3;
    o.report_cap = (b >> 6) & 1 ? 1 : 0;
    return o;
}

static inline void fuzz_check_text(const char *s, int may_be_null)
{
    if (!s) {
        FUZZ_CHECK(may_be_null);
        return;
    }
    FUZZ_CHECK(s[0] != '\0');
    FUZZ_CHECK(mch_utf8_valid(s, strlen(s), NULL));
}

/* Reads in to the end (or its first error), checking every record; closes in. opened is what
 * the open returned (in NULL unless MCH_OK) and err its error; ordered: records come in line
 * order; ranked: records are run lines, kept only when their rank is within top_k.
 * @return the decoder status. */
static inline mch_status fuzz_input_drain(mch_input *in, mch_status opened, mch_err *err,
                                          const mch_input_opts *o, int ordered, int ranked)
{
    if (opened != MCH_OK) {
        FUZZ_CHECK(in == NULL);
        fuzz_check_failure(opened, err);
        return opened;
    }
    const mch_record *rec;
    mch_status rc;
    long n = 0, last_line = 0;
    while ((rc = mch_input_next(in, &rec, err)) == MCH_OK && rec) {
        n++;
        if (o->given) { /* ids may be empty; a perturbed document, and a key when no ids */
            FUZZ_CHECK(rec->qid && mch_utf8_valid(rec->qid, strlen(rec->qid), NULL));
            FUZZ_CHECK(rec->docno && mch_utf8_valid(rec->docno, strlen(rec->docno), NULL));
            fuzz_check_text(rec->perturbed, 0);
            fuzz_check_text(rec->pair_key, 1);
            FUZZ_CHECK(rec->qid[0] || rec->docno[0] || rec->pair_key);
        } else {
            fuzz_check_text(rec->qid, 0);
            fuzz_check_text(rec->docno, 0);
            FUZZ_CHECK(rec->perturbed == NULL);
        }
        fuzz_check_text(rec->query, 0);
        fuzz_check_text(rec->text, 0);
        fuzz_check_text(rec->term, 1);
        FUZZ_CHECK(rec->file != NULL && rec->line >= 1);
        FUZZ_CHECK(!ordered || rec->line > last_line); /* one unit a line, in file order */
        last_line = rec->line;
        if (ranked) FUZZ_CHECK(rec->rank >= 0 && (!o->top_k || rec->rank <= o->top_k));
    }
    const mch_skip_report *r = mch_input_report(in);
    if (rc == MCH_OK) {
        FUZZ_CHECK(r->produced == n);
        FUZZ_CHECK(r->units == r->produced + r->skipped);
        FUZZ_CHECK(r->n_entries <= r->skipped + r->table_skipped);
        FUZZ_CHECK(o->report_cap == 0 || r->n_entries <= o->report_cap);
        /* The end is sticky. */
        FUZZ_CHECK(mch_input_next(in, &rec, err) == MCH_OK && rec == NULL);
    } else {
        fuzz_check_failure(rc, err);
        FUZZ_CHECK(rc == MCH_ERR_FORMAT); /* strict, or a line over the limit: nothing else */
        FUZZ_CHECK(o->strict || strstr(err->msg, "line longer than") != NULL);
        FUZZ_CHECK(r->produced == n);
    }
    for (long i = 0; i < r->n_entries; i++) {
        FUZZ_CHECK(r->entries[i].file != NULL && r->entries[i].line >= 1);
        FUZZ_CHECK(memchr(r->entries[i].reason, '\0', sizeof r->entries[i].reason) != NULL);
    }
    FILE *sink = fopen("/dev/null", "w");
    if (sink) {
        mch_skip_report_print(r, sink);
        fclose(sink);
    }
    mch_input_close(in);
    return rc;
}

/* The whole of a target over a reader of one file (TSV, JSONL): the first byte the options (its
 * top bit: given pairs), the rest the file, written as name; the decoder status left in
 * mch_fuzz_status. */
static inline void fuzz_input_one_file(const uint8_t *data, size_t size, const char *name,
                                       mch_status (*open)(mch_input **, const char *,
                                                          const mch_input_opts *, mch_err *))
{
    if (size < 1) return;
    mch_input_opts o = fuzz_input_opts(data[0]);
    o.given = data[0] >> 7;
    char path[512];
    fuzz_write(name, data + 1, size - 1, path, sizeof path);
    mch_input *in = NULL;
    mch_err err = {0};
    mch_status rc = open(&in, path, &o, &err);
    mch_fuzz_status = fuzz_input_drain(in, rc, &err, &o, 1, 0);
}

#endif
