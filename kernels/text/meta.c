/* config.json + the tokenizer of a model directory, without weights. */
#include "meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mch_status mch_model_text_read(const char *dir, mch_config *cfg, mch_tok **tok, mch_err *err)
{
    char path[4096];
    mch_status rc;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((rc = mch_config_open(cfg, path, err))) return rc;
    return mch_tok_open(tok, dir, err);
}

mch_status mch_model_meta_open(mch_model_meta **out, const char *dir, mch_err *err)
{
    mch_model_meta *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", dir);
    }
    mch_status rc = mch_model_text_read(dir, &m->cfg, &m->tok, err);
    if (rc) {
        mch_model_meta_close(m);
        return rc;
    }
    *out = m;
    return MCH_OK;
}

void mch_model_meta_close(mch_model_meta *m)
{
    if (!m) return;
    mch_tok_free(m->tok);
    free(m->dir);
    free(m);
}
