/* A model's text side: config.json and the tokenizer, without a single weight. What planning
 * needs (pairs, shapes, the job spec): the coordinator opens models only this way, so it never
 * maps or converts weights. */
#ifndef MCH_META_H
#define MCH_META_H

#include "config.h"
#include "hftok.h"

typedef struct {
    mch_config cfg;
    char *dir;
    mch_tok *tok;
} mch_model_meta;

/* Reads DIR/config.json, then the tokenizer (mch_tok_open: tokenizer.json or vocab.txt; in that
 * order: the first failure names its file and key or line). *out is set only on success; close with
 * mch_model_meta_close. */
mch_status mch_model_meta_open(mch_model_meta **out, const char *dir, mch_err *err);
void mch_model_meta_close(mch_model_meta *m); /* accepts NULL */

/* The same two reads into caller-owned parts (mch_model_open uses it before the weights). */
mch_status mch_model_text_read(const char *dir, mch_config *cfg, mch_tok **tok, mch_err *err);

#endif
