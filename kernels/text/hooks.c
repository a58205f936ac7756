/* TransformerLens hook names <-> (site, layer). */
#include "hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const site_suffix[MCH_SITE_COUNT] = {
    [MCH_SITE_FULL_EMBED] = "hook_full_embed",
    [MCH_SITE_RESID_PRE] = "hook_resid_pre",
    [MCH_SITE_Q] = "attn.hook_q",
    [MCH_SITE_K] = "attn.hook_k",
    [MCH_SITE_V] = "attn.hook_v",
    [MCH_SITE_PATTERN] = "attn.hook_pattern",
    [MCH_SITE_Z] = "attn.hook_z",
    [MCH_SITE_ATTN_OUT] = "hook_attn_out",
    [MCH_SITE_RESID_MID] = "hook_resid_mid",
    [MCH_SITE_MLP_OUT] = "hook_mlp_out",
    [MCH_SITE_RESID_POST] = "hook_resid_post",
    [MCH_SITE_NORM_RESID_POST] = "hook_normalized_resid_post",
    [MCH_SITE_ATTN_SCORES] = "attn.hook_attn_scores",
    [MCH_SITE_RESULT] = "attn.hook_result",
    [MCH_SITE_MLP_PRE] = "mlp.hook_pre",
    [MCH_SITE_MLP_POST] = "mlp.hook_post",
};

const char *mch_hook_name(mch_site site, int layer, char *buf, size_t len)
{
    if (site == MCH_SITE_FULL_EMBED)
        snprintf(buf, len, "hook_full_embed");
    else if (site >= 0 && site < MCH_SITE_COUNT)
        snprintf(buf, len, "blocks.%d.%s", layer, site_suffix[site]);
    else
        snprintf(buf, len, "?");
    return buf;
}

int mch_edit_distance(const char *a, const char *b)
{
    int row[128], n = 0, m = 0;
    while (a[n] && n < 127) n++;
    while (b[m] && m < 127) m++;
    for (int j = 0; j <= m; j++) row[j] = j;
    for (int i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= m; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[m];
}

/* The valid hook name of a model of L layers nearest to name, into buf; with star, the
 * "blocks.*." names instead of one per layer. The layers tried are the name's own when it gives
 * one inside the model, else the first 64 at most: L may be huge (`cache get` knows no model),
 * and a typo's layer number is rarely what is wrong. */
static void nearest_hook(const char *name, int L, int star, char *buf, size_t len)
{
    int best = mch_edit_distance(name, "hook_full_embed");
    snprintf(buf, len, "hook_full_embed");
    char cand[96];
    int from = 0, to = star ? 1 : (L < 64 ? L : 64);
    const char *p = name + 7;
    if (!star && !strncmp(name, "blocks.", 7) && *p >= '0' && *p <= '9') {
        long l = 0;
        while (*p >= '0' && *p <= '9' && l < 100000) l = l * 10 + (*p++ - '0');
        if (l < L) from = (int)l, to = (int)l + 1;
    }
    for (int l = from; l < to; l++)
        for (int s = MCH_SITE_RESID_PRE; s < MCH_SITE_COUNT; s++) {
            if (star)
                snprintf(cand, sizeof cand, "blocks.*.%s", site_suffix[s]);
            else
                snprintf(cand, sizeof cand, "blocks.%d.%s", l, site_suffix[s]);
            int d = mch_edit_distance(name, cand);
            if (d < best) {
                best = d;
                snprintf(buf, len, "%s", cand);
            }
        }
}

/* mch_hook_parse of name; shown is the name messages print (a blocks.*. name for its layers). */
static mch_status hook_parse_as(const char *name, const char *shown, int star, int L,
                                mch_site *site, int *layer, mch_err *err)
{
    if (!strcmp(name, "hook_full_embed")) {
        *site = MCH_SITE_FULL_EMBED;
        *layer = 0;
        return MCH_OK;
    }
    const char *p = name;
    if (strncmp(p, "blocks.", 7) != 0) goto bad;
    p += 7;
    if (*p < '0' || *p > '9') goto bad;
    long l = 0;
    while (*p >= '0' && *p <= '9' && l < 100000) l = l * 10 + (*p++ - '0');
    if (*p++ != '.') goto bad;
    for (int s = MCH_SITE_RESID_PRE; s < MCH_SITE_COUNT; s++)
        if (!strcmp(p, site_suffix[s])) {
            if (l >= L)
                return mch_fail(err, MCH_ERR_ARG, "hook '%s': layer %ld but the model has %d",
                                shown, l, L);
            *site = (mch_site)s;
            *layer = (int)l;
            return MCH_OK;
        }
bad:;
    char near[96];
    nearest_hook(shown, L > 0 ? L : 1, star, near, sizeof near);
    return mch_fail(err, MCH_ERR_ARG, "unknown hook '%s' (did you mean '%s'?)", shown, near);
}

mch_status mch_hook_parse(const char *name, int L, mch_site *site, int *layer, mch_err *err)
{
    return hook_parse_as(name, name, 0, L, site, layer, err);
}

int mch_site_shape(const mch_config *cfg, mch_site site, int T, int64_t shape[3])
{
    switch (site) {
    case MCH_SITE_PATTERN:
    case MCH_SITE_ATTN_SCORES:
        shape[0] = cfg->NH, shape[1] = T, shape[2] = T;
        return 3;
    case MCH_SITE_Q:
    case MCH_SITE_K:
    case MCH_SITE_V:
    case MCH_SITE_Z:
        shape[0] = T, shape[1] = cfg->NH, shape[2] = cfg->HS;
        return 3;
    case MCH_SITE_RESULT:
        shape[0] = T, shape[1] = cfg->NH, shape[2] = cfg->C;
        return 3;
    case MCH_SITE_MLP_PRE:
    case MCH_SITE_MLP_POST:
        shape[0] = T, shape[1] = cfg->FF;
        return 2;
    default:
        shape[0] = T, shape[1] = cfg->C;
        return 2;
    }
}

size_t mch_site_floats(const mch_config *cfg, mch_site site, int T)
{
    int64_t shape[3];
    int nd = mch_site_shape(cfg, site, T, shape);
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    return n;
}

/* One hook name (a blocks.*. name with its layer filled in) into a point. */
static mch_status hook_point(const char *name, int star_layer, int L, mch_hook_point *pt,
                             mch_err *err)
{
    int len = star_layer < 0 ? (int)strlen(name)
                             : snprintf(NULL, 0, "blocks.%d.%s", star_layer, name + 9);
    char *full = malloc((size_t)len + 1);
    if (!full) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (star_layer < 0)
        memcpy(full, name, (size_t)len + 1);
    else
        snprintf(full, (size_t)len + 1, "blocks.%d.%s", star_layer, name + 9);
    mch_status rc = hook_parse_as(full, name, star_layer >= 0, L, &pt->site, &pt->layer, err);
    if (!rc && (size_t)len >= sizeof pt->name) /* hook names are short; this one parsed */
        rc = mch_fail(err, MCH_ERR_ARG, "hook '%s' is longer than %zu characters", full,
                      sizeof pt->name - 1);
    if (!rc) memcpy(pt->name, full, (size_t)len + 1);
    free(full);
    return rc;
}

mch_status mch_hooks_expand(char *const *names, size_t n, int L, mch_hook_point **points,
                            size_t *n_points, mch_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += strncmp(names[i], "blocks.*.", 9) ? 1 : (size_t)L;
    mch_hook_point *pts = calloc(total + 1, sizeof *pts);
    if (!pts) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    size_t k = 0;
    mch_status rc = MCH_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        int star = !strncmp(names[i], "blocks.*.", 9);
        for (int l = 0; l < (star ? L : 1) && !rc; l++)
            rc = hook_point(names[i], star ? l : -1, L, &pts[k++], err);
    }
    if (rc) {
        free(pts);
        return rc;
    }
    *points = pts;
    *n_points = k;
    return MCH_OK;
}

int mch_site_cacheable(mch_site site)
{
    return site >= 0 && site < MCH_SITE_COUNT;
}

mch_status mch_hooks_check_cacheable(const mch_hook_point *pts, size_t n, mch_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!mch_site_cacheable(pts[i].site))
            return mch_fail(err, MCH_ERR_ARG, "--cache: hook '%s' cannot be cached", pts[i].name);
    return MCH_OK;
}
