/* The input and perturbation options shared by `mechir pairs` and `mechir run` (the fields of
 * mch_source_opts, coordinator/pairs_source.h) as an option table for opts.h; their help text is
 * mch_source_help. */
#ifndef MCH_SOURCE_OPTS_H
#define MCH_SOURCE_OPTS_H

#include "opts.h"
#include "pairs_source.h"

enum { MCH_SOURCE_OPT_COUNT = 19 };

/* Fills tab (the options, then the terminator) so that parsing writes into o. */
void mch_source_opt_table(mch_source_opts *o, mch_opt tab[MCH_SOURCE_OPT_COUNT + 1]);

#endif
