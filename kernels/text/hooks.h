/* Hook points: the one table between TransformerLens hook names (`blocks.3.attn.hook_z`) and
 * the internal (site, layer). Text only, so the coordinator can validate hook names (--cache)
 * without loading a model. */
#ifndef MCH_HOOKS_H
#define MCH_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mch_err.h"

/* Hook sites; names as TransformerLens writes them for BERT blocks. */
typedef enum {
    MCH_SITE_FULL_EMBED,      /* hook_full_embed                      (T, C) */
    MCH_SITE_RESID_PRE,       /* blocks.{l}.hook_resid_pre            (T, C) */
    MCH_SITE_Q,               /* blocks.{l}.attn.hook_q               (T, NH, HS) */
    MCH_SITE_K,               /* blocks.{l}.attn.hook_k               (T, NH, HS) */
    MCH_SITE_V,               /* blocks.{l}.attn.hook_v               (T, NH, HS) */
    MCH_SITE_PATTERN,         /* blocks.{l}.attn.hook_pattern         (NH, T, T) */
    MCH_SITE_Z,               /* blocks.{l}.attn.hook_z               (T, NH, HS) */
    MCH_SITE_ATTN_OUT,        /* blocks.{l}.hook_attn_out             (T, C) */
    MCH_SITE_RESID_MID,       /* blocks.{l}.hook_resid_mid            (T, C) */
    MCH_SITE_MLP_OUT,         /* blocks.{l}.hook_mlp_out              (T, C) */
    MCH_SITE_RESID_POST,      /* blocks.{l}.hook_resid_post           (T, C) */
    MCH_SITE_NORM_RESID_POST, /* blocks.{l}.hook_normalized_resid_post (T, C) */
    /* Finer sites, after the others so the numbers above keep their values. */
    MCH_SITE_ATTN_SCORES, /* blocks.{l}.attn.hook_attn_scores     (NH, T, T) q k^T / sqrt(HS) */
    MCH_SITE_RESULT,      /* blocks.{l}.attn.hook_result          (T, NH, C) z_h W_O,h^T, no bias */
    MCH_SITE_MLP_PRE,     /* blocks.{l}.mlp.hook_pre              (T, FF) before the activation */
    MCH_SITE_MLP_POST,    /* blocks.{l}.mlp.hook_post             (T, FF) after it */
    MCH_SITE_COUNT
} mch_site;

/* Patching sweeps (kernels/patch.h runs them; job specs name them: heads, blocks, head-pos, qkv,
 * pattern, resid-mid). */
enum {
    MCH_SWEEP_HEADS = 1,
    MCH_SWEEP_BLOCKS = 2,
    MCH_SWEEP_HEAD_POS = 4,
    MCH_SWEEP_QKV = 8,
    MCH_SWEEP_PATTERN = 16,
    MCH_SWEEP_RESID_MID = 32
};

/* Parses a TransformerLens hook name for a model of L layers. An unknown name fails with
 * "unknown hook 'X' (did you mean 'Y'?)", Y the valid name of the model nearest to X (edit
 * distance; a "blocks.*." name is answered with a "blocks.*." name). */
mch_status mch_hook_parse(const char *name, int L, mch_site *site, int *layer, mch_err *err);
/* Levenshtein distance of a and b (each cut at 127 characters), for "did you mean" messages. */
int mch_edit_distance(const char *a, const char *b);
/* Writes the hook name of (site, layer) into buf; returns buf. */
const char *mch_hook_name(mch_site site, int layer, char *buf, size_t len);
/* Floats one sequence of T tokens holds at a site. */
size_t mch_site_floats(const mch_config *cfg, mch_site site, int T);
/* The shape of a site for T tokens into shape (up to 3 dims); returns the number of dims:
 * (T, C), (T, NH, HS), (NH, T, T), (T, NH, C) or (T, FF) as the enum says. */
int mch_site_shape(const mch_config *cfg, mch_site site, int T, int64_t shape[3]);

/* Cache hooks: names as given ("blocks.*.X" stands for blocks.0.X .. blocks.{L-1}.X) to hook
 * points for a model of L layers, in order; *points malloc'd. Errors name the hook. */
typedef struct {
    mch_site site;
    int layer;
    char name[96]; /* the hook name, with the layer of a blocks.*. name filled in */
} mch_hook_point;
mch_status mch_hooks_expand(char *const *names, size_t n, int L, mch_hook_point **points,
                            size_t *n_points, mch_err *err);

/* 1 when `mechir run --cache` can store the site: the patcher keeps, or derives from what it
 * keeps, the activation of both full runs (kernels/patch.c mch_patcher_activation). Every site
 * is. */
int mch_site_cacheable(mch_site site);
/* MCH_OK, or MCH_ERR_ARG naming the first of pts[0..n) that cannot be cached: checked when a run
 * is planned and when a worker opens, so such a hook fails at the start, not on a pair. */
mch_status mch_hooks_check_cacheable(const mch_hook_point *pts, size_t n, mch_err *err);

#endif
