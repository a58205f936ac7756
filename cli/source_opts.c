/* The source options as a table (see source_opts.h): names, ranges and kinds as `mechir pairs`
 * and `mechir run` document them in mch_source_help. */
#include "source_opts.h"

#include <string.h>

void mch_source_opt_table_init(mch_source_opt_table *t, mch_source_opts *o)
{
    const mch_opt opt[] = {
        {.name = "input", .kind = MCH_OPT_STR, .dst = &o->input},
        {.name = "format", .kind = MCH_OPT_STR, .dst = &o->format},
        {.name = "run", .kind = MCH_OPT_STR, .dst = &o->run},
        {.name = "topics", .kind = MCH_OPT_STR, .dst = &o->topics},
        {.name = "docs", .kind = MCH_OPT_STR, .dst = &o->docs},
        {.name = "qrels", .kind = MCH_OPT_STR, .dst = &o->qrels},
        {.name = "top-k", .kind = MCH_OPT_INT, .dst = &o->top_k, .lo = 1, .hi = 1 << 30},
        {.name = "strict", .kind = MCH_OPT_FLAG, .dst = &o->strict},
        {.name = "perturb", .kind = MCH_OPT_STR, .dst = &o->perturb},
        {.name = "term", .kind = MCH_OPT_STR, .dst = &o->term},
        {.name = "position", .kind = MCH_OPT_STR, .dst = &o->position},
        {.name = "filler", .kind = MCH_OPT_STR, .dst = &o->filler},
        {.name = "seed", .kind = MCH_OPT_U64, .dst = &o->seed},
        {.name = "max-len", .kind = MCH_OPT_INT, .dst = &o->max_len, .lo = 4, .hi = 1 << 20},
        {.name = "max-query-len",
         .kind = MCH_OPT_INT,
         .dst = &o->max_query_len,
         .lo = 1,
         .hi = 1 << 20},
        {.name = "stem", .kind = MCH_OPT_FLAG, .dst = &o->stem},
        {.name = "stopwords", .kind = MCH_OPT_STR, .dst = &o->stopwords},
        {.name = "df", .kind = MCH_OPT_STR, .dst = &o->df},
        {.name = "write-df", .kind = MCH_OPT_STR, .dst = &o->write_df},
        {.name = "max-line-bytes", .kind = MCH_OPT_U64, .dst = &o->max_line_bytes},
        {.name = "max-span", .kind = MCH_OPT_INT, .dst = &o->max_span, .lo = 1, .hi = 1 << 20},
        {.name = NULL},
    };
    _Static_assert(sizeof opt == sizeof t->opt, "MCH_SOURCE_OPT_COUNT is the table's length");
    memcpy(t->opt, opt, sizeof opt);
}
