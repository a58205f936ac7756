/* A loaded encoder: config, weights (F32 used in place from the mapping; F16/BF16 converted once
 * to F32), and the tokenizer. Every weight's shape was checked against config.json at load, so
 * the kernels can trust them. */
#ifndef MCH_MODEL_H
#define MCH_MODEL_H

#include "config.h"
#include "meta.h"
#include "safetensors.h"
#include "hftok.h"
#include "t5.h"

typedef struct {
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* (C, C), (C) */
    const float *o_w, *o_b;                         /* (C, C), (C) */
    const float *ln1_g, *ln1_b;                     /* (C): after attention */
    const float *ff1_w, *ff1_b;                     /* (I, C), (I) */
    const float *ff2_w, *ff2_b;                     /* (C, I), (C) */
    const float *ln2_g, *ln2_b;                     /* (C): after the MLP */
} mch_layer_weights;

typedef struct {
    mch_config cfg;
    char *dir;
    mch_safetensors *st; /* NULL once every weight was converted and the file unmapped */
    float *owned;        /* converted weights, or NULL when all are F32 in place */
    size_t weight_bytes; /* size of model.safetensors */
    const float *wte;    /* (V, E) */
    const float *wpe;    /* (max_pos, E) */
    const float *wtt;    /* (type_vocab, E) or NULL */
    const float *emb_ln_g, *emb_ln_b; /* (E) */
    const float *proj_w, *proj_b;     /* (C, E), (C): ELECTRA embeddings_project, or NULL */
    mch_layer_weights *layers;        /* (L) */
    const float *head_w, *head_b;     /* (C, C): pooler / pre_classifier / classifier.dense */
    const float *cls_w, *cls_b;       /* (num_labels, C) */
    mch_tok *tok;                     /* NULL: only token ids can be used */
    mch_monot5 *t5; /* cfg.arch MCH_ARCH_T5: the MonoT5 (its own weights and tokenizer); the
                       encoder fields above are then unset and only scoring runs it */
} mch_model;

/* Opens a Hugging Face model directory (config.json, model.safetensors, tokenizer.json or
 * vocab.txt). On failure
 * err names the file and the tensor or key; *out is untouched. Free with mch_model_close. */
mch_status mch_model_open(mch_model **out, const char *dir, mch_err *err);

/* Loads weights from already-parsed parts (tests and benchmarks build models in memory).
 * tok may be NULL (then only token ids can be scored). Takes ownership of st and tok on
 * success and on failure. */
mch_status mch_model_from_parts(mch_model **out, const mch_config *cfg, mch_safetensors *st,
                                mch_tok *tok, const char *name, mch_err *err);

void mch_model_close(mch_model *m); /* accepts NULL */

/* MCH_OK for an encoder model; for a MonoT5, MCH_ERR_UNSUPPORTED naming the directory and what
 * (a forward with hooks, patching, attribution patching, ...), which is not built for it yet. */
mch_status mch_model_need_encoder(const mch_model *m, const char *what, mch_err *err);

#endif
