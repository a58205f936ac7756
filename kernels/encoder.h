/* The hooked encoder forward pass (BERT, DistilBERT, ELECTRA) with TransformerLens hook points.
 *
 * Batches are padded (B, T) id matrices with per-sequence lengths; internally the valid tokens
 * are packed row after row (N = sum of lengths rows), so padding costs nothing and a sequence's
 * numbers do not depend on what else is in the batch. Hooks see one sequence at a time. */
#ifndef MCH_ENCODER_H
#define MCH_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "hooks.h"
#include "model.h"

/* What a hook callback sees: one sequence's activation at one hook point, contiguous, in the
 * shape of the site (see mch_site). The callback may read it or overwrite it in place. */
typedef struct {
    mch_site site;
    int layer; /* 0 for hook_full_embed */
    int seq;   /* index in the batch */
    int T;     /* tokens of this sequence */
    int NH, HS, C;
    float *data;
    int FF; /* the MLP's width: rows of mlp.hook_pre and mlp.hook_post */
} mch_act_view;

/* Floats of a view: mch_site_floats of its site for its T. */
size_t mch_act_view_floats(const mch_act_view *v);

/* Return 0 to go on; anything else aborts the forward with MCH_ERR_ARG. */
typedef int (*mch_hook_fn)(void *user, const mch_act_view *act);

#define MCH_HOOKS_PER_POINT 4
typedef struct mch_hooks mch_hooks;
mch_hooks *mch_hooks_create(int L); /* NULL when out of memory */
void mch_hooks_free(mch_hooks *h);  /* accepts NULL */
void mch_hooks_clear(mch_hooks *h);
/* Registers fn at (site, layer); up to MCH_HOOKS_PER_POINT callbacks per point, run in order. */
mch_status mch_hooks_add(mch_hooks *h, mch_site site, int layer, mch_hook_fn fn, void *user,
                         mch_err *err);
mch_status mch_hooks_add_name(mch_hooks *h, const char *name, mch_hook_fn fn, void *user,
                              mch_err *err);

/* A padded batch of token ids. */
typedef struct {
    int B;                /* sequences */
    int T;                /* row stride of ids and types */
    const int32_t *ids;   /* (B, T) */
    const int32_t *types; /* (B, T), or NULL for all 0 */
    const int *lengths;   /* (B): valid tokens of each sequence, 1..T */
} mch_batch;

/* Activation buffers for batches up to max_tokens valid tokens and max_T tokens a sequence,
 * sized once; nothing is allocated during a forward. */
typedef struct mch_workspace mch_workspace;
mch_workspace *mch_workspace_create(const mch_model *m, int max_tokens, int max_T);
void mch_workspace_free(mch_workspace *ws); /* accepts NULL */
size_t mch_workspace_bytes(const mch_workspace *ws);
/* Row offset of each sequence in the packed activations of the last forward, (B + 1). */
const int *mch_workspace_offsets(const mch_workspace *ws);
/* The final hidden states of the last forward (N, C) packed. */
const float *mch_workspace_hidden(const mch_workspace *ws);

typedef enum { MCH_POOL_CLS, MCH_POOL_MEAN } mch_pooling;

typedef struct {
    const mch_hooks *hooks; /* or NULL */
    int start_layer;        /* 0: from the embeddings; l > 0: from resid_pre of layer l */
    const float *resid_pre; /* (N, C) packed rows, needed when start_layer > 0 */
    mch_pooling pooling;    /* for emb */
} mch_forward_opts;

typedef struct {
    float *scores; /* (B) cross-encoder score (1 label: the logit; 2+: logit of label 1), or NULL */
    float *logits; /* (B, num_labels), or NULL */
    float *emb;    /* (B, C) pooled final hidden state (CLS or mean), or NULL */
} mch_forward_out;

/* Runs the encoder (and the classification head when the model has one and scores or logits
 * are asked for). Refuses (MCH_ERR_ARG) token ids outside the vocabulary, token types outside
 * type_vocab_size, lengths outside 1..min(T, max_position_embeddings) or beyond the workspace. */
mch_status mch_forward(const mch_model *m, mch_workspace *ws, const mch_batch *batch,
                       const mch_forward_opts *opts, mch_forward_out *out, mch_err *err);

/* The classification head on B [CLS] rows: cls (B, C) -> logits (B, num_labels); tmp (B, C) is
 * scratch. The model must have a head (cfg.head != MCH_HEAD_NONE). */
void mch_head_forward(const mch_model *m, float *logits, float *tmp, const float *cls, int B);

/* The score a head's logits give: the logit itself (1 label) or the logit of label 1. */
static inline float mch_logits_score(const mch_config *c, const float *logits)
{
    return c->num_labels == 1 ? logits[0] : logits[1];
}

#endif
