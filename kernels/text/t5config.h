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

/* ---- hook sites (TransformerLens HookedEncoderDecoder names; docs/T5.md) ---- */
typedef enum {
    MCH_T5_EMBED,               /* hook_embed                        (T, C) */
    MCH_T5_ENC_RESID_PRE,       /* encoder.{l}.hook_resid_pre        (T, C) */
    MCH_T5_ENC_Z,               /* encoder.{l}.attn.hook_z           (T, IN) heads side by side */
    MCH_T5_ENC_ATTN_OUT,        /* encoder.{l}.hook_attn_out         (T, C) */
    MCH_T5_ENC_RESID_MID,       /* encoder.{l}.hook_resid_mid        (T, C) */
    MCH_T5_ENC_MLP_OUT,         /* encoder.{l}.hook_mlp_out          (T, C) */
    MCH_T5_ENC_RESID_POST,      /* encoder.{l}.hook_resid_post       (T, C) */
    MCH_T5_ENC_OUT,             /* encoder_out: after encoder_final_ln, with its weight (T, C) */
    MCH_T5_DEC_RESID_PRE,       /* decoder.{l}.hook_resid_pre        (1, C) */
    MCH_T5_DEC_Z,               /* decoder.{l}.attn.hook_z           (1, IN) */
    MCH_T5_DEC_ATTN_OUT,        /* decoder.{l}.hook_attn_out         (1, C) */
    MCH_T5_DEC_RESID_MID,       /* decoder.{l}.hook_resid_mid        (1, C) */
    MCH_T5_DEC_CROSS_Z,         /* decoder.{l}.cross_attn.hook_z     (1, IN) */
    MCH_T5_DEC_CROSS_ATTN_OUT,  /* decoder.{l}.hook_cross_attn_out   (1, C) */
    MCH_T5_DEC_RESID_MID_CROSS, /* decoder.{l}.hook_resid_mid_cross (1, C) */
    MCH_T5_DEC_MLP_OUT,         /* decoder.{l}.hook_mlp_out          (1, C) */
    MCH_T5_DEC_RESID_POST,      /* decoder.{l}.hook_resid_post       (1, C) */
    MCH_T5_LOGITS,              /* logits: the step-0 logits row     (1, V) */
    MCH_T5_N_SITES
} mch_t5_site;

/* Whether a site has a layer index ({l} in its name). */
int mch_t5_site_layered(mch_t5_site s);
/* Writes the TransformerLens name of (site, layer) into buf (cap bytes). @return buf. */
const char *mch_t5_site_name(mch_t5_site s, int layer, char *buf, size_t cap);
/* The (site, layer) of a name; layers are checked against m's config. MCH_ERR_ARG naming the
 * string when it is not a T5 hook name or the layer is out of range. */
mch_status mch_t5_site_parse(const mch_t5_config *cfg, const char *name, mch_t5_site *site,
                             int *layer, mch_err *err);

/* A hook point of a MonoT5 (--cache): its site, layer (-1: none) and name. */
typedef struct {
    mch_t5_site site;
    int layer;
    char name[96];
} mch_t5_hook_point;
/* Names (encoder.*.X and decoder.*.X: every layer of that stack) as the points of a model of L
 * encoder and LD decoder layers, in the order given; *out is freed by the caller. MCH_ERR_ARG
 * naming the first name that is not a hook point. */
mch_status mch_t5_hooks_expand(int L, int LD, char *const *names, size_t n, mch_t5_hook_point **out,
                               size_t *n_out, mch_err *err);

#endif
