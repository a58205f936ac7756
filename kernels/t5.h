/* T5ForConditionalGeneration as a reranker (MonoT5): weights by Hugging Face name, a hooked
 * forward (encoder over T tokens, then ONE decoder step from decoder_start_token_id) over
 * cblas_sgemm, and the MonoT5 score log P("true") from the step-0 logits of "▁true" / "▁false".
 * Semantics are Hugging Face's modeling_t5 (docs/T5.md): RMS norm without mean subtraction, no
 * 1/sqrt(d) attention scaling, relative position buckets from block 0 of each stack reused by
 * every block, d_model^-0.5 rescale before a tied lm_head. Every weight's shape was checked
 * against config.json at load, so the forward cannot meet a bad shape. */
#ifndef MCH_T5_H
#define MCH_T5_H

#include <stddef.h>
#include <stdint.h>

#include "hftok.h"
#include "safetensors.h"
#include "t5config.h"

/* One block's weights; IN = NH * HS (need not equal C). Decoder-only fields are NULL in the
 * encoder; wi1 is NULL unless the feed-forward is gated. */
typedef struct {
    const float *ln_attn;      /* (C) layer.0.layer_norm */
    const float *q, *k, *v;    /* (IN, C) SelfAttention */
    const float *o;            /* (C, IN) */
    const float *ln_cross;     /* (C) decoder layer.1.layer_norm */
    const float *cq, *ck, *cv; /* (IN, C) decoder EncDecAttention */
    const float *co;           /* (C, IN) */
    const float *ln_ff;        /* (C) the last layer's layer_norm */
    const float *wi, *wi1;     /* (FF, C): wi or wi_0; wi_1 when gated */
    const float *wo;           /* (C, FF) */
} mch_t5_block;

typedef struct {
    mch_t5_config cfg;
    char *dir;
    mch_safetensors *st;            /* NULL once every weight was converted and the file unmapped */
    float *owned;                   /* F16/BF16 weights converted to F32, or NULL */
    size_t weight_bytes;            /* size of model.safetensors */
    const float *shared;            /* (V, C) shared.weight: both stacks' embeddings */
    const float *lm_head;           /* (V, C): lm_head.weight, or shared when tied */
    const float *enc_rel, *dec_rel; /* (n_buckets, NH) relative_attention_bias of block 0 */
    const float *enc_final_ln, *dec_final_ln; /* (C) */
    mch_t5_block *enc;                        /* (L) */
    mch_t5_block *dec;                        /* (LD) */
} mch_t5;

/* Opens DIR/config.json and DIR/model.safetensors. On failure err names the file and the key or
 * tensor (missing tensors, wrong shapes, unsupported dtypes); *out is untouched. */
mch_status mch_t5_open(mch_t5 **out, const char *dir, mch_err *err);
/* From parsed parts (the benchmark builds models in memory); takes ownership of st on success and
 * on failure. name is used in messages when st has no path. */
mch_status mch_t5_from_parts(mch_t5 **out, const mch_t5_config *cfg, mch_safetensors *st,
                             const char *name, mch_err *err);
void mch_t5_close(mch_t5 *m); /* accepts NULL */

/* Calls fn for every tensor a model of this config needs, in load order, with its Hugging Face
 * name and shape (d1 = 0: one dimension); for writers of checkpoints (bench/bench_t5.c). fn
 * returns 0 to go on. @return MCH_OK, MCH_ERR_NOMEM, or MCH_ERR_ARG when fn stopped the walk. */
typedef int (*mch_t5_tensor_fn)(void *ctx, const char *name, int64_t d0, int64_t d1);
mch_status mch_t5_tensors(const mch_t5_config *cfg, mch_t5_tensor_fn fn, void *ctx, mch_err *err);

/* Relative position bucket of Hugging Face's T5Attention._relative_position_bucket for
 * rel = key position - query position, in float32 as torch computes it. */
int mch_t5_bucket(int rel, int bidirectional, int n_buckets, int max_distance);

/* Called right after a site's activation is computed, with the buffer the rest of the forward
 * reads: the callback may read it (caching) or overwrite it (patching), and what it writes is
 * what flows downstream. act is (rows, cols), row-major, contiguous. */
typedef void (*mch_t5_hook_fn)(void *ctx, mch_t5_site site, int layer, float *act, int rows,
                               int cols);
typedef struct {
    mch_t5_hook_fn fn;
    void *ctx;
} mch_t5_hooks;

/* A ready-made hook: copies the sites whose pointer is non-NULL (ctx is an mch_t5_capture). */
typedef struct {
    float *enc_resid_post; /* (L, T, C) */
    float *enc_out;        /* (T, C) */
    float *dec_resid_post; /* (LD, C) */
    float *logits;         /* (V) */
} mch_t5_capture;
void mch_t5_capture_fn(void *ctx, mch_t5_site site, int layer, float *act, int rows, int cols);

/* Activation buffers for encoder inputs of up to T_max tokens, sized once. NULL when out of
 * memory. Free with mch_t5_workspace_free (accepts NULL). */
typedef struct mch_t5_ws mch_t5_ws;
mch_t5_ws *mch_t5_workspace_create(const mch_t5 *m, int T_max);
void mch_t5_workspace_free(mch_t5_ws *ws);
int mch_t5_workspace_tokens(const mch_t5_ws *ws);

/* Encoder over ids (T tokens, no padding), then one decoder step from dec_id. hooks may be NULL.
 * @return MCH_OK with the step-0 logits (V) in mch_t5_logits(ws); MCH_ERR_ARG when T is outside
 * [1, T_max] or an id is outside [0, V). Nothing is allocated. */
mch_status mch_t5_forward(const mch_t5 *m, mch_t5_ws *ws, const int32_t *ids, int T, int32_t dec_id,
                          const mch_t5_hooks *hooks, mch_err *err);
const float *mch_t5_logits(const mch_t5_ws *ws); /* (V) of the last forward */

/* ---- MonoT5 ---- */

typedef struct {
    mch_t5 *model;
    mch_tok *tok;
    int32_t true_id, false_id; /* the pieces "▁true" / "▁false" */
    mch_t5_ws *ws;             /* grown to the longest max_len asked for */
    mch_tok_enc enc;           /* the last pair's input ids */
} mch_monot5;

typedef struct {
    float score;                   /* log_softmax([logit_false, logit_true])[1] = log P(true) */
    float logit_true, logit_false; /* step-0 logits */
    int n_tokens;                  /* encoder input length after truncation */
} mch_monot5_result;

/* DIR holds config.json, model.safetensors and tokenizer.json (or vocab.txt). Refused with one
 * line naming the tokenizer file when "▁true" or "▁false" is not a piece of it, or when the
 * tokenizer has more ids than vocab_size. Close with mch_monot5_close (accepts NULL). */
mch_status mch_monot5_open(mch_monot5 **out, const char *dir, mch_err *err);
void mch_monot5_close(mch_monot5 *m);

/* The encoder input of a pair: "Query: {q} Document: {d} Relevant:" through the tokenizer with
 * </s> appended, cut to max_len (>= 2) tokens keeping </s> last. Into m->enc. */
mch_status mch_monot5_encode(mch_monot5 *m, const char *query, const char *doc, int max_len,
                             mch_err *err);
/* Scores ids (T tokens, e.g. m->enc after mch_monot5_encode, or a patched copy) with one forward;
 * hooks may be NULL. */
mch_status mch_monot5_score_ids(mch_monot5 *m, const int32_t *ids, int T, const mch_t5_hooks *hooks,
                                mch_monot5_result *res, mch_err *err);
/* encode + score_ids. */
mch_status mch_monot5_score(mch_monot5 *m, const char *query, const char *doc, int max_len,
                            mch_monot5_result *res, mch_err *err);
/* scores[i] = the score of (queries[i], docs[i]) for i < n, one forward each. The first failing
 * pair stops the batch; err names its index. */
mch_status mch_monot5_score_batch(mch_monot5 *m, const char *const *queries,
                                  const char *const *docs, size_t n, int max_len, float *scores,
                                  mch_err *err);

#endif
