/* Hugging Face config.json for the encoders mechir runs: BERT, DistilBERT, ELECTRA, RoBERTa and
 * XLM-RoBERTa.
 * Everything mechir would compute wrongly (relative positions, an unknown activation, an unknown
 * architecture) is refused here, so the encoder never meets it. */
#ifndef MCH_CONFIG_H
#define MCH_CONFIG_H

#include <stddef.h>

#include "mch_err.h"

/* The default --max-len of a MonoT5 (relative positions have no table): pygaggle's 512. */
#define MCH_MONOT5_MAX_LEN 512

/* MCH_ARCH_T5: MonoT5 (T5ForConditionalGeneration); only C, L, NH, HS, FF, V, max_pos and
 * max_tokens are set here (mch_t5_config has the rest), and only scoring runs it. */
typedef enum {
    MCH_ARCH_BERT,
    MCH_ARCH_DISTILBERT,
    MCH_ARCH_ELECTRA,
    MCH_ARCH_ROBERTA,
    MCH_ARCH_T5
} mch_arch;

/* What sits on top of the encoder. */
typedef enum {
    MCH_HEAD_NONE,           /* BertModel / DistilBertModel / ElectraModel: a bi-encoder */
    MCH_HEAD_BERT_SEQCLS,    /* pooler dense + tanh, then classifier */
    MCH_HEAD_DISTIL_SEQCLS,  /* pre_classifier + ReLU + classifier */
    MCH_HEAD_ELECTRA_SEQCLS, /* classifier.dense + exact GELU + classifier.out_proj */
    MCH_HEAD_ROBERTA_SEQCLS, /* classifier.dense + tanh + classifier.out_proj */
    MCH_HEAD_MONOT5          /* log P("true") at the first decoder step (kernels/t5.h) */
} mch_head_kind;

typedef enum { MCH_ACT_GELU_ERF, MCH_ACT_GELU_TANH, MCH_ACT_RELU } mch_activation;

typedef struct {
    mch_arch arch;
    mch_head_kind head;
    mch_activation act;
    char model_type[32];
    char architecture[64];
    int C;          /* hidden size */
    int L;          /* layers */
    int LD;         /* a MonoT5's decoder layers (0: an encoder) */
    int NH;         /* attention heads */
    int HS;         /* head size, C / NH */
    int FF;         /* FFN inner size (I in the shape comments; I is a macro in complex.h) */
    int E;          /* embedding size (ELECTRA may differ from C) */
    int V;          /* vocabulary size */
    int max_pos;    /* max_position_embeddings (rows of the position table) */
    int max_tokens; /* the longest sequence: max_pos - pos_offset */
    int type_vocab; /* 0 for DistilBERT (no token types) */
    int num_labels; /* classifier outputs; 0 for a bi-encoder */
    float eps;      /* LayerNorm epsilon */
    int pos_offset; /* RoBERTa: position ids start at pad_token_id + 1 and skip pads; else 0 */
    int pad_id;     /* RoBERTa: pad_token_id (a pad inside a text takes position pad_id) */
} mch_config;

/* Parses config.json text; name is used in messages ("DIR/config.json: key 'n_heads' ..."). */
mch_status mch_config_parse(mch_config *cfg, const char *json, size_t len, const char *name,
                            mch_err *err);
/* Reads and parses the file at path. */
mch_status mch_config_open(mch_config *cfg, const char *path, mch_err *err);

const char *mch_arch_name(mch_arch a);

#endif
