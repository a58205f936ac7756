/* Caching chosen activations of a forward pass: register hook names (TransformerLens strings,
 * `*` for every layer, e.g. "blocks.*.attn.hook_pattern"), attach to a mch_hooks, run forwards,
 * read each sequence's copy. Buffers grow to the largest batch seen and are then reused. */
#ifndef MCH_ACT_CACHE_H
#define MCH_ACT_CACHE_H

#include "encoder.h"

typedef struct mch_act_cache mch_act_cache;

mch_act_cache *mch_act_cache_create(const mch_model *m); /* NULL when out of memory */
void mch_act_cache_free(mch_act_cache *c);               /* accepts NULL */

/* Adds a hook point, or every layer's when the name has `*` for the layer. */
mch_status mch_act_cache_add(mch_act_cache *c, const char *name, mch_err *err);

/* Registers the cache's callbacks on h (a forward with h then fills the cache). */
mch_status mch_act_cache_attach(mch_act_cache *c, mch_hooks *h, mch_err *err);

/* Sequence seq's activation at (site, layer) from the last forward, shaped as the site says
 * (see mch_site), with *T its token count; NULL when that point is not cached or seq was not
 * in the batch. Valid until the next forward. */
const float *mch_act_cache_get(const mch_act_cache *c, mch_site site, int layer, int seq, int *T);

#endif
