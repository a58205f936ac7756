/* config.json of a T5 encoder-decoder (cJSON). Invariant: a config that parses has every size
 * > 0, n_buckets even (the encoder splits them by direction), and an activation t5.c implements
 * exactly; feed_forward_proj is read the way transformers' T5Config reads it. */
#include "t5config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hftok_int.h" /* tk_read_file */

/* One integer key of T5Config: its default when missing and its range. */
typedef struct {
    const char *key;
    int def; /* used when the key is missing */
    int lo, hi;
    size_t off; /* of the int field in mch_t5_config */
} t5_int_key;

#define BIG (1 << 20)
static const t5_int_key int_keys[] = {
    {"d_model", 512, 1, BIG, offsetof(mch_t5_config, C)},
    {"d_kv", 64, 1, BIG, offsetof(mch_t5_config, HS)},
    {"num_heads", 8, 1, 4096, offsetof(mch_t5_config, NH)},
    {"d_ff", 2048, 1, BIG, offsetof(mch_t5_config, FF)},
    {"num_layers", 6, 1, 1024, offsetof(mch_t5_config, L)},
    {"vocab_size", 32128, 1, 1 << 24, offsetof(mch_t5_config, V)},
    {"relative_attention_num_buckets", 32, 2, 4096, offsetof(mch_t5_config, n_buckets)},
    {"relative_attention_max_distance", 128, 1, BIG, offsetof(mch_t5_config, max_distance)},
    {"pad_token_id", 0, 0, (1 << 24) - 1, offsetof(mch_t5_config, pad_id)},
    {"eos_token_id", 1, 0, (1 << 24) - 1, offsetof(mch_t5_config, eos_id)},
};

/* Reads key as an integer in [lo, hi] into *out, or def when missing (def < 0: required). */
static mch_status read_int(const cJSON *root, const char *key, int def, int lo, int hi, int *out,
                           const char *name, mch_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (def < 0) return mch_fail(err, MCH_ERR_FORMAT, "%s: missing key '%s'", name, key);
        *out = def;
        return MCH_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : 0.5;
    if (!cJSON_IsNumber(j) || !(d >= lo && d <= hi) || d != (double)(int)d)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key '%s' must be an integer in [%d, %d]", name,
                        key, lo, hi);
    *out = (int)d;
    return MCH_OK;
}

/* feed_forward_proj as T5Config splits it: "[gated-]ACT"; "gated-gelu" means gelu_new. */
static mch_status parse_ffp(mch_t5_config *cfg, const char *s, const char *name, mch_err *err)
{
    static const struct {
        const char *name;
        mch_t5_act act;
    } acts[] = {{"relu", MCH_T5_ACT_RELU},
                {"gelu", MCH_T5_ACT_GELU_ERF},
                {"gelu_new", MCH_T5_ACT_GELU_TANH}};
    const char *act = s;
    cfg->gated = !strncmp(s, "gated-", 6);
    if (cfg->gated) act += 6;
    int found = 0;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(act, acts[i].name)) {
            cfg->act = acts[i].act;
            found = 1;
        }
    if (!found)
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: key 'feed_forward_proj' = '%.40s' is not supported (relu, gelu, "
                        "gelu_new, each optionally 'gated-')",
                        name, s);
    if (!strcmp(s, "gated-gelu")) cfg->act = MCH_T5_ACT_GELU_TANH;
    snprintf(cfg->feed_forward_proj, sizeof cfg->feed_forward_proj, "%s", s);
    return MCH_OK;
}

/* config.json may also carry dense_act_fn / is_gated_act (save_pretrained writes them); the
 * loaded config uses those, so they must agree with feed_forward_proj. */
static mch_status check_derived(const mch_t5_config *cfg, const cJSON *root, const char *name,
                                mch_err *err)
{
    static const char *const act_names[] = {"relu", "gelu", "gelu_new"};
    const cJSON *daf = cJSON_GetObjectItemCaseSensitive(root, "dense_act_fn");
    if (daf && (!cJSON_IsString(daf) || strcmp(daf->valuestring, act_names[cfg->act]) != 0))
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: key 'dense_act_fn' = '%.40s' contradicts feed_forward_proj '%s' "
                        "(which means %s)",
                        name, cJSON_IsString(daf) ? daf->valuestring : "?", cfg->feed_forward_proj,
                        act_names[cfg->act]);
    const cJSON *iga = cJSON_GetObjectItemCaseSensitive(root, "is_gated_act");
    if (iga && (!cJSON_IsBool(iga) || cJSON_IsTrue(iga) != cfg->gated))
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: key 'is_gated_act' contradicts feed_forward_proj '%s'", name,
                        cfg->feed_forward_proj);
    return MCH_OK;
}

static mch_status parse_root(mch_t5_config *cfg, const cJSON *root, const char *name, mch_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: missing key 'model_type'", name);
    if (strcmp(mt->valuestring, "t5") != 0)
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: key 'model_type' = '%.40s' is not a T5 model (t5)", name,
                        mt->valuestring);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (archs && (!cJSON_IsString(a0) || strcmp(a0->valuestring, "T5ForConditionalGeneration")))
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: key 'architectures' = '%.60s' is not supported "
                        "(T5ForConditionalGeneration)",
                        name, cJSON_IsString(a0) ? a0->valuestring : "?");
    mch_status rc;
    for (size_t i = 0; i < sizeof int_keys / sizeof int_keys[0]; i++) {
        const t5_int_key *k = &int_keys[i];
        if ((rc = read_int(root, k->key, k->def, k->lo, k->hi, (int *)((char *)cfg + k->off), name,
                           err)))
            return rc;
    }
    if ((rc = read_int(root, "num_decoder_layers", cfg->L, 1, 1024, &cfg->LD, name, err)) ||
        (rc = read_int(root, "decoder_start_token_id", cfg->pad_id, 0, cfg->V - 1,
                       &cfg->decoder_start, name, err)))
        return rc;
    if ((long long)cfg->NH * cfg->HS > BIG)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: keys 'num_heads' = %d times 'd_kv' = %d exceed %d (attention size)",
                        name, cfg->NH, cfg->HS, BIG);
    if (cfg->n_buckets % 2 != 0)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: key 'relative_attention_num_buckets' = %d must be even", name,
                        cfg->n_buckets);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    /* Checked again as the float kept: 1e-300 would become 0. */
    if (eps && (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1) ||
                !((float)eps->valuedouble > 0)))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key 'layer_norm_epsilon' must be in (0, 1)",
                        name);
    cfg->eps = eps ? (float)eps->valuedouble : 1e-6f;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key 'tie_word_embeddings' is not true or false",
                        name);
    cfg->tied = tie ? cJSON_IsTrue(tie) : 1;
    const cJSON *ffp = cJSON_GetObjectItemCaseSensitive(root, "feed_forward_proj");
    if (ffp && !cJSON_IsString(ffp))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key 'feed_forward_proj' is not a string", name);
    if ((rc = parse_ffp(cfg, ffp ? ffp->valuestring : "relu", name, err))) return rc;
    return check_derived(cfg, root, name, err);
}

mch_status mch_t5_config_parse(mch_t5_config *cfg, const char *json, size_t len, const char *name,
                               mch_err *err)
{
    cJSON *root = mch_json_parse_exact(json, len);
    mch_status rc = cJSON_IsObject(root)
                        ? parse_root(cfg, root, name, err)
                        : mch_fail(err, MCH_ERR_FORMAT, "%s: not a JSON object", name);
    cJSON_Delete(root);
    return rc;
}

mch_status mch_t5_config_open(mch_t5_config *cfg, const char *path, mch_err *err)
{
    char *text = NULL;
    size_t len = 0;
    mch_status rc = tk_read_file(path, &text, &len, err);
    if (!rc) rc = mch_t5_config_parse(cfg, text, len, path, err);
    free(text);
    return rc;
}

/* ---- hook names ---- */

static const struct {
    const char *fmt; /* %d: the layer */
    int layered;
} site_tab[MCH_T5_N_SITES] = {
    [MCH_T5_EMBED] = {"hook_embed", 0},
    [MCH_T5_ENC_RESID_PRE] = {"encoder.%d.hook_resid_pre", 1},
    [MCH_T5_ENC_Z] = {"encoder.%d.attn.hook_z", 1},
    [MCH_T5_ENC_ATTN_OUT] = {"encoder.%d.hook_attn_out", 1},
    [MCH_T5_ENC_RESID_MID] = {"encoder.%d.hook_resid_mid", 1},
    [MCH_T5_ENC_MLP_OUT] = {"encoder.%d.hook_mlp_out", 1},
    [MCH_T5_ENC_RESID_POST] = {"encoder.%d.hook_resid_post", 1},
    [MCH_T5_ENC_OUT] = {"encoder_out", 0},
    [MCH_T5_DEC_RESID_PRE] = {"decoder.%d.hook_resid_pre", 1},
    [MCH_T5_DEC_Z] = {"decoder.%d.attn.hook_z", 1},
    [MCH_T5_DEC_ATTN_OUT] = {"decoder.%d.hook_attn_out", 1},
    [MCH_T5_DEC_RESID_MID] = {"decoder.%d.hook_resid_mid", 1},
    [MCH_T5_DEC_CROSS_Z] = {"decoder.%d.cross_attn.hook_z", 1},
    [MCH_T5_DEC_CROSS_ATTN_OUT] = {"decoder.%d.hook_cross_attn_out", 1},
    [MCH_T5_DEC_RESID_MID_CROSS] = {"decoder.%d.hook_resid_mid_cross", 1},
    [MCH_T5_DEC_MLP_OUT] = {"decoder.%d.hook_mlp_out", 1},
    [MCH_T5_DEC_RESID_POST] = {"decoder.%d.hook_resid_post", 1},
    [MCH_T5_LOGITS] = {"logits", 0},
};

int mch_t5_site_layered(mch_t5_site s)
{
    return s < MCH_T5_N_SITES && site_tab[s].layered;
}

const char *mch_t5_site_name(mch_t5_site s, int layer, char *buf, size_t cap)
{
    if (s >= MCH_T5_N_SITES)
        snprintf(buf, cap, "?");
    else if (site_tab[s].layered)
        snprintf(buf, cap, site_tab[s].fmt, layer);
    else
        snprintf(buf, cap, "%s", site_tab[s].fmt);
    return buf;
}

/* mch_t5_site_parse for L encoder and LD decoder layers. */
static mch_status site_parse(int L, int LD, const char *name, mch_t5_site *site, int *layer,
                             mch_err *err)
{
    char buf[96];
    for (int s = 0; s < MCH_T5_N_SITES; s++) {
        int n_layers = !site_tab[s].layered ? 1 : s < MCH_T5_DEC_RESID_PRE ? L : LD;
        for (int l = 0; l < n_layers; l++)
            if (!strcmp(mch_t5_site_name((mch_t5_site)s, l, buf, sizeof buf), name)) {
                *site = (mch_t5_site)s;
                *layer = site_tab[s].layered ? l : -1;
                return MCH_OK;
            }
    }
    return mch_fail(err, MCH_ERR_ARG,
                    "hook '%.80s' is not a T5 hook point of this model (%d encoder, %d decoder "
                    "layers; docs/T5.md lists them)",
                    name, L, LD);
}

mch_status mch_t5_site_parse(const mch_t5_config *cfg, const char *name, mch_t5_site *site,
                             int *layer, mch_err *err)
{
    return site_parse(cfg->L, cfg->LD, name, site, layer, err);
}

mch_status mch_t5_hooks_expand(int L, int LD, char *const *names, size_t n, mch_t5_hook_point **out,
                               size_t *n_out, mch_err *err)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) cap += (size_t)(L > LD ? L : LD) + 1;
    mch_t5_hook_point *pts = calloc(cap + 1, sizeof *pts);
    if (!pts) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    size_t k = 0;
    mch_status rc = MCH_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *star = strstr(names[i], ".*.");
        int stack = star ? (int)(star - names[i]) : 0, many = 0;
        if (star && stack == 7 && !strncmp(names[i], "encoder", 7)) many = L;
        if (star && stack == 7 && !strncmp(names[i], "decoder", 7)) many = LD;
        if (star && !many) {
            rc = mch_fail(err, MCH_ERR_ARG,
                          "hook '%.80s': '*' stands for a layer only as encoder.*.X or "
                          "decoder.*.X",
                          names[i]);
            break;
        }
        for (int l = 0; l < (many ? many : 1) && !rc; l++, k++) {
            if (many)
                snprintf(pts[k].name, sizeof pts[k].name, "%.7s.%d.%.60s", names[i], l % 10000,
                         star + 3);
            else
                snprintf(pts[k].name, sizeof pts[k].name, "%.95s", names[i]);
            rc = site_parse(L, LD, pts[k].name, &pts[k].site, &pts[k].layer, err);
        }
    }
    if (rc) {
        free(pts);
        return rc;
    }
    *out = pts;
    *n_out = k;
    return MCH_OK;
}
