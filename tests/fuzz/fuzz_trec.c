/* libFuzzer target for the TREC reader (mch_input_open_trec, coordinator/input_trec.c): run,
 * topics, docs and qrels joined by id. The first byte picks the options (fuzz_input.h) and, in
 * its top bit, docs as JSONL, in bit 1 topics as JSONL; the rest is the four files separated by
 * form feeds (\f): run, topics, docs, qrels. An empty run means none (units from the qrels); no
 * fourth part, no qrels. Every record and the skip report are checked as fuzz_input.h says. */
#include "fuzz_file.h"
#include "fuzz_input.h"

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    mch_input_opts o = fuzz_input_opts(data[0]);
    /* bit 7: docs as JSONL; bit 1 (four columns, which TREC does not read): topics as JSONL */
    static const char *const names[4][4] = {{"run", "topics.tsv", "docs.tsv", "qrels"},
                                            {"run", "topics.tsv", "docs.jsonl", "qrels"},
                                            {"run", "topics.jsonl", "docs.tsv", "qrels"},
                                            {"run", "topics.jsonl", "docs.jsonl", "qrels"}};
    const char *const *name = names[(data[0] >> 7) | (((data[0] >> 1) & 1) << 1)];
    char path[4][512];
    size_t part_len[4] = {0};
    const uint8_t *p = data + 1, *end = data + size;
    int n = 0;
    while (n < 4) {
        const uint8_t *ff = n < 3 ? memchr(p, '\f', (size_t)(end - p)) : NULL;
        const uint8_t *stop = ff ? ff : end;
        part_len[n] = (size_t)(stop - p);
        fuzz_write(name[n], p, part_len[n], path[n], sizeof path[n]);
        n++;
        if (!ff) break;
        p = ff + 1;
    }
    const char *run = part_len[0] ? path[0] : NULL;
    const char *topics = n > 1 ? path[1] : NULL;
    const char *docs = n > 2 ? path[2] : NULL;
    const char *qrels = n > 3 ? path[3] : NULL;
    if (!topics || !docs || (!run && !qrels)) return 0; /* the CLI requires these */
    mch_input *in = NULL;
    mch_err err = {0};
    mch_status rc = mch_input_open_trec(&in, run, topics, docs, qrels, &o, &err);
    mch_fuzz_status = fuzz_input_drain(in, rc, &err, &o, 1, run != NULL);
    return 0;
}
