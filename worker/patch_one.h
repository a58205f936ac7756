/* One baseline/perturbed pair patched end to end (what `mechir patch` runs): the pair's token
 * ids from texts (tokenised as `mechir score` does) or from given id lists, the sweeps of
 * kernels/patch.h, and the result as one JSON object (layout in docs/PATCHING.md). Also the small
 * parsers of a sweep list and a head list, kept here in one place until the message layer
 * (proto/) holds them. Nothing here prints or exits; messages travel in mch_err. */
#ifndef MCH_PATCH_ONE_H
#define MCH_PATCH_ONE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "align.h"
#include "atp.h"
#include "atp_verify.h"
#include "model.h"
#include "msg.h"
#include "patch.h"
#include "t5_patch.h"

#define MCH_PATCH_MAX_HEADS 256 /* heads a head list holds */

/* The options of one pair. Either texts (query, baseline, perturbed) or comma-separated token ids
 * (ids_baseline, ids_perturbed, optional token_types and query_ids; a bi-encoder may take its
 * query as text instead of query_ids). The strings are borrowed. */
typedef struct {
    const char *query, *baseline, *perturbed;
    const char *filler; /* texts of different token lengths: the padding word (NULL: "a") */
    const char *ids_baseline, *ids_perturbed, *token_types, *query_ids;
    unsigned sweeps;     /* MCH_SWEEP_* bits */
    int n_heads;         /* heads for head-pos and save_patterns */
    const int *heads;    /* (n_heads, 2): layer, head */
    int save_patterns;   /* also return both runs' attention patterns of heads */
    int naive;           /* one full forward per patch */
    int max_len;         /* tokens of a tokenised sequence; 0: max_position_embeddings */
    int max_query_len;   /* cross-encoder query tokens; 0: 64 */
    int scratch_mb;      /* memory for batched patches; 0: 256 */
    double min_delta;    /* |perturbed - baseline| below this: skipped */
    mch_pooling pooling; /* bi-encoder pooling */
    int method;          /* MCH_JOB_EXACT, _ATP or _ATP_QK (msg.h): how scores are found */
    int verify_top;      /* attribution patching: exact patching of the K largest; 0: none */
} mch_patch_one_opts;

/* "exact", "atp", "atp-qk" into *method; an unknown name fails naming the three. */
mch_status mch_method_parse(const char *s, int *method, mch_err *err);
const char *mch_method_name(int method);

/* Whether this model can serve the request at all (exit 1, not a usage error): an encoder
 * family always; a MonoT5 for exact patching of the heads and blocks sweeps only (head-pos,
 * --method atp / atp-qk and --save-patterns are refused in one line naming the directory).
 * @return MCH_OK or MCH_ERR_UNSUPPORTED. */
mch_status mch_patch_one_supported(const mch_patch_one_opts *o, const mch_model *m, mch_err *err);

/* Checks the options against the model without running anything: attribution patching's
 * limits (heads and blocks sweeps only, no --save-patterns, --verify-top only with it, a model
 * family with a backward pass); max_len within
 * max_position_embeddings; the id lists (at most max_position_embeddings ids each, the same
 * count, token types included); a bi-encoder given ids has query_ids, or a query and a
 * vocabulary. Every failure is an error in the options (a usage error), with a message naming
 * the option. @return MCH_OK or MCH_ERR_ARG. */
mch_status mch_patch_one_check(const mch_patch_one_opts *o, const mch_model *m, mch_err *err);

/* Builds the pair (tokenising texts; texts of different token lengths are aligned as given pairs
 * are, kernels/text/align.h, and "alignment" reports how), runs the sweeps and returns the result
 * in *out as one JSON object, numbers with 9 significant digits (free it with cJSON_Delete). A pair
 * whose score changes less than min_delta gives {"skipped": reason, scores, tokens, ids} without
 * maps. With attribution patching the maps hold estimates, "method" names it, and verify_top K adds
 * "verified" (the K components of largest |estimate - baseline|, patched exactly) and
 * "verified_diff_rows" (resid_pre at every layer and every position whose ids differ). Call
 * after mch_patch_one_check succeeded. @return MCH_OK, or an error (texts of different token
 * lengths, a tokenizer, patcher or memory failure) with *out NULL. A MonoT5 (kernels/t5_patch.h)
 * gives "heads" (encoder), "decoder_heads", "cross_heads" and "blocks", each with its _scores. */
mch_status mch_patch_one_run(const mch_patch_one_opts *o, const mch_model *m, cJSON **out,
                             mch_err *err);

#endif
