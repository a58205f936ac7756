/* The input and perturbation options that `mechir pairs` and `mechir run` share, as one option
 * table (cli/opts.h) bound to a caller's mch_source_opts; their help text is mch_source_help. */
#ifndef MCH_SOURCE_OPTS_H
#define MCH_SOURCE_OPTS_H

#include "opts.h"
#include "pairs_source.h"

#define MCH_SOURCE_OPT_COUNT 21

/* The table: MCH_SOURCE_OPT_COUNT options and the entry that ends it. */
typedef struct {
    mch_opt opt[MCH_SOURCE_OPT_COUNT + 1];
} mch_source_opt_table;

/* Fills t so that parsing with t->opt stores into o (which must outlive the parse). */
void mch_source_opt_table_init(mch_source_opt_table *t, mch_source_opts *o);

#endif
