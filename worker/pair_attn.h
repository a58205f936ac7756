/* The attention patterns of chosen heads in both runs of one pair (`mechir report --pair`): one
 * hooked forward of the baseline ids and one of the perturbed ids, blocks.L.attn.hook_pattern
 * cached (kernels/act_cache.h) at the heads' layers. Nothing here prints or exits. */
#ifndef MCH_PAIR_ATTN_H
#define MCH_PAIR_ATTN_H

#include <stdint.h>

#include "model.h"

/* ids_baseline, ids_perturbed and types (NULL: all 0; ignored by a model without token types)
 * are (T); heads (n_heads, 2) layer, head. Writes pat_baseline and pat_perturbed, each
 * (n_heads, T, T): row i of head k holds query i's attention weights over the T keys, as
 * TransformerLens's hook_pattern[h, i, :]. Refuses (MCH_ERR_UNSUPPORTED) a model without the
 * hooked encoder (MonoT5) and (MCH_ERR_ARG) a head outside the model, naming it; the forward's
 * own refusals (ids outside the vocabulary, T beyond max_position_embeddings) name the run. */
mch_status mch_pair_attn(const mch_model *m, const int32_t *ids_baseline,
                         const int32_t *ids_perturbed, const int32_t *types, int T,
                         const int *heads, int n_heads, float *pat_baseline, float *pat_perturbed,
                         mch_err *err);

#endif
