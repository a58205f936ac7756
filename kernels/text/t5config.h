/* Hugging Face config.json of a T5 encoder-decoder (model_type "t5": T5ForConditionalGeneration,
 * MonoT5 rerankers). Everything kernels/t5.c would compute wrongly (an unknown feed-forward
 * activation, a contradictory dense_act_fn / is_gated_act) is refused here, naming the file, the
 * key and the value. Missing keys take T5Config's defaults, as transformers does. */
#ifndef MCH_T5CONFIG_H
#define MCH_T5CONFIG_H

#include <stddef.h>

#include "mch_err.h"

/* The activation inside DenseReluDense (T5Config's dense_act_fn after feed_forward_proj). */
typedef enum {
    MCH_T5_ACT_RELU,      /* "relu" */
    MCH_T5_ACT_GELU_ERF,  /* "gelu": exact erf GELU */
    MCH_T5_ACT_GELU_TANH, /* "gelu_new" (and "gated-gelu", which transformers maps to gelu_new) */
} mch_t5_act;

typedef struct {
    int C;            /* d_model */
    int HS;           /* d_kv, head size; NH * HS need not equal C */
    int NH;           /* num_heads */
    int FF;           /* d_ff */
    int L;            /* num_layers (encoder blocks) */
    int LD;           /* num_decoder_layers (default num_layers) */
    int V;            /* vocab_size: rows of shared.weight and of the logits */
    int n_buckets;    /* relative_attention_num_buckets (32) */
    int max_distance; /* relative_attention_max_distance (128) */
    float eps;        /* layer_norm_epsilon (1e-6) */
    mch_t5_act act;
    int gated;         /* 1: wi_0 / wi_1 (act(wi_0 x) * wi_1 x); 0: wi */
    int tied;          /* tie_word_embeddings (default 1): lm_head = shared, d_model^-0.5 rescale */
    int decoder_start; /* decoder_start_token_id (default pad_token_id) */
    int pad_id, eos_id; /* pad_token_id (0), eos_token_id (1) */
    char feed_forward_proj[32];
} mch_t5_config;

/* Parses config.json text; name is used in messages ("DIR/config.json: key 'feed_forward_proj'
 * = 'gated-swish' ..."). On failure *cfg is unspecified. */
mch_status mch_t5_config_parse(mch_t5_config *cfg, const char *json, size_t len, const char *name,
                               mch_err *err);
/* Reads and parses the file at path (messages name path). */
mch_status mch_t5_config_open(mch_t5_config *cfg, const char *path, mch_err *err);

#endif
