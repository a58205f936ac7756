/* The input and perturbation options as an option table (see source_opts.h). */
#include "source_opts.h"

#include <string.h>

void mch_source_opt_table(mch_source_opts *o, mch_opt tab[MCH_SOURCE_OPT_COUNT + 1])
{
    static const char *const names[] = {"input",     "format",  "run",     "topics",   "docs",
                                        "qrels",     "perturb", "term",    "position", "filler",
                                        "stopwords", "df",      "write-df"};
    const char **const dst[] = {&o->input,     &o->format,  &o->run,     &o->topics,   &o->docs,
                                &o->qrels,     &o->perturb, &o->term,    &o->position, &o->filler,
                                &o->stopwords, &o->df,      &o->write_df};
    mch_opt *t = mch_opts_strings(tab, names, dst, (int)(sizeof names / sizeof names[0]));
    const mch_opt numbers_and_flags[] = {
        {"top-k", 0, MCH_OPT_INT, &o->top_k, 1, 1 << 30, NULL, 0},
        {"max-len", 0, MCH_OPT_INT, &o->max_len, 4, 1 << 20, NULL, 0},
        {"max-query-len", 0, MCH_OPT_INT, &o->max_query_len, 1, 1 << 20, NULL, 0},
        {"seed", 0, MCH_OPT_U64, &o->seed, 0, 0, NULL, 0},
        {"strict", 0, MCH_OPT_FLAG, &o->strict, 0, 0, NULL, 0},
        {"stem", 0, MCH_OPT_FLAG, &o->stem, 0, 0, NULL, 0},
        {0}};
    memcpy(t, numbers_and_flags, sizeof numbers_and_flags);
}
