/* The input and perturbation options as an option table (see source_opts.h). */
#include "source_opts.h"

#include <string.h>

void mch_source_opt_table(mch_source_opts *o, mch_opt tab[MCH_SOURCE_OPT_COUNT + 1])
{
    const mch_opt t[MCH_SOURCE_OPT_COUNT + 1] = {
        {"input", 0, MCH_OPT_STR, &o->input, 0, 0, NULL, 0},
        {"format", 0, MCH_OPT_STR, &o->format, 0, 0, NULL, 0},
        {"run", 0, MCH_OPT_STR, &o->run, 0, 0, NULL, 0},
        {"topics", 0, MCH_OPT_STR, &o->topics, 0, 0, NULL, 0},
        {"docs", 0, MCH_OPT_STR, &o->docs, 0, 0, NULL, 0},
        {"qrels", 0, MCH_OPT_STR, &o->qrels, 0, 0, NULL, 0},
        {"top-k", 0, MCH_OPT_INT, &o->top_k, 1, 1 << 30, NULL, 0},
        {"strict", 0, MCH_OPT_FLAG, &o->strict, 0, 0, NULL, 0},
        {"perturb", 0, MCH_OPT_STR, &o->perturb, 0, 0, NULL, 0},
        {"term", 0, MCH_OPT_STR, &o->term, 0, 0, NULL, 0},
        {"position", 0, MCH_OPT_STR, &o->position, 0, 0, NULL, 0},
        {"filler", 0, MCH_OPT_STR, &o->filler, 0, 0, NULL, 0},
        {"seed", 0, MCH_OPT_U64, &o->seed, 0, 0, NULL, 0},
        {"max-len", 0, MCH_OPT_INT, &o->max_len, 4, 1 << 20, NULL, 0},
        {"max-query-len", 0, MCH_OPT_INT, &o->max_query_len, 1, 1 << 20, NULL, 0},
        {"stem", 0, MCH_OPT_FLAG, &o->stem, 0, 0, NULL, 0},
        {"stopwords", 0, MCH_OPT_STR, &o->stopwords, 0, 0, NULL, 0},
        {"df", 0, MCH_OPT_STR, &o->df, 0, 0, NULL, 0},
        {"write-df", 0, MCH_OPT_STR, &o->write_df, 0, 0, NULL, 0},
        {0},
    };
    memcpy(tab, t, sizeof t);
}
