/* config.json reader (cJSON). Invariant: a config that parses has C = NH * HS, every size > 0,
 * and an activation, architecture and position scheme the encoder implements exactly. */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t5config.h"

#define MCH_CONFIG_MAX_BYTES (16u << 20)

const char *mch_arch_name(mch_arch a)
{
    switch (a) {
    case MCH_ARCH_BERT:
        return "bert";
    case MCH_ARCH_DISTILBERT:
        return "distilbert";
    case MCH_ARCH_ELECTRA:
        return "electra";
    case MCH_ARCH_ROBERTA:
        return "roberta"; /* XLM-RoBERTa checkpoints use the same prefix */
    case MCH_ARCH_T5:
        return "t5";
    }
    return "?";
}

/* Whether d is a whole number, without casting a value beyond long long (undefined behaviour):
 * every double of magnitude >= 2^53 is whole; NaN is not. */
static int is_whole(double d)
{
    if (d != d) return 0;
    if (d >= 9007199254740992.0 || d <= -9007199254740992.0) return 1;
    return d == (double)(long long)d;
}

/* Reads an integer key; missing -> def (or an error when def < 0). Range [lo, hi]. */
static mch_status get_int(const cJSON *root, const char *key, int def, int lo, int hi, int *out,
                          const char *name, mch_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) {
        if (def < 0) return mch_fail(err, MCH_ERR_FORMAT, "%s: missing key '%s'", name, key);
        *out = def;
        return MCH_OK;
    }
    if (!cJSON_IsNumber(j) || !is_whole(j->valuedouble))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key '%s' is not an integer", name, key);
    if (j->valuedouble < lo || j->valuedouble > hi)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key '%s' = %.15g is outside [%d, %d]", name, key,
                        j->valuedouble, lo, hi);
    *out = (int)j->valuedouble;
    return MCH_OK;
}

static mch_status parse_act(const char *s, mch_activation *act, const char *key, const char *name,
                            mch_err *err)
{
    if (!strcmp(s, "gelu") || !strcmp(s, "gelu_python"))
        *act = MCH_ACT_GELU_ERF;
    else if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_fast"))
        *act = MCH_ACT_GELU_TANH;
    else if (!strcmp(s, "relu"))
        *act = MCH_ACT_RELU;
    else
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: key '%s' = '%.40s' is not a supported activation (gelu, gelu_python, "
                        "gelu_new, gelu_pytorch_tanh, gelu_fast, relu)",
                        name, key, s);
    return MCH_OK;
}

static const struct {
    const char *name;
    mch_arch arch;
    mch_head_kind head;
} arch_table[] = {
    {"BertModel", MCH_ARCH_BERT, MCH_HEAD_NONE},
    {"BertForSequenceClassification", MCH_ARCH_BERT, MCH_HEAD_BERT_SEQCLS},
    {"DistilBertModel", MCH_ARCH_DISTILBERT, MCH_HEAD_NONE},
    {"DistilBertForSequenceClassification", MCH_ARCH_DISTILBERT, MCH_HEAD_DISTIL_SEQCLS},
    {"ElectraModel", MCH_ARCH_ELECTRA, MCH_HEAD_NONE},
    {"ElectraForSequenceClassification", MCH_ARCH_ELECTRA, MCH_HEAD_ELECTRA_SEQCLS},
    {"RobertaForSequenceClassification", MCH_ARCH_ROBERTA, MCH_HEAD_ROBERTA_SEQCLS},
    {"XLMRobertaForSequenceClassification", MCH_ARCH_ROBERTA, MCH_HEAD_ROBERTA_SEQCLS},
};

static mch_status parse_root(mch_config *cfg, const cJSON *root, const char *name, mch_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: missing key 'model_type'", name);
    if (!strcmp(mt->valuestring, "bert"))
        cfg->arch = MCH_ARCH_BERT;
    else if (!strcmp(mt->valuestring, "distilbert"))
        cfg->arch = MCH_ARCH_DISTILBERT;
    else if (!strcmp(mt->valuestring, "electra"))
        cfg->arch = MCH_ARCH_ELECTRA;
    else if (!strcmp(mt->valuestring, "roberta") || !strcmp(mt->valuestring, "xlm-roberta"))
        cfg->arch = MCH_ARCH_ROBERTA;
    else
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: model_type '%.40s' is not supported (bert, distilbert, electra, "
                        "roberta, xlm-roberta, t5)",
                        name, mt->valuestring);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt->valuestring);

    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key 'architectures' must list one architecture",
                        name);
    int found = 0;
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (!strcmp(a0->valuestring, arch_table[i].name) && arch_table[i].arch == cfg->arch) {
            cfg->head = arch_table[i].head;
            found = 1;
        }
    if (!found)
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: architecture '%.60s' is not supported for model_type '%s'", name,
                        a0->valuestring, cfg->model_type);
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", a0->valuestring);

    const cJSON *pet = cJSON_GetObjectItemCaseSensitive(root, "position_embedding_type");
    if (pet && (!cJSON_IsString(pet) || strcmp(pet->valuestring, "absolute") != 0))
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "%s: position_embedding_type '%.40s' is not supported (only absolute)",
                        name, cJSON_IsString(pet) ? pet->valuestring : "?");

    const int big = 1 << 20;
    mch_status rc;
    const char *act_key, *c_key, *nh_key;
    if (cfg->arch == MCH_ARCH_DISTILBERT) {
        if ((rc = get_int(root, "dim", -1, 1, big, &cfg->C, name, err)) ||
            (rc = get_int(root, "n_layers", -1, 1, 1024, &cfg->L, name, err)) ||
            (rc = get_int(root, "n_heads", -1, 0, big, &cfg->NH, name, err)) ||
            (rc = get_int(root, "hidden_dim", -1, 1, big, &cfg->FF, name, err)))
            return rc;
        cfg->eps = 1e-12f;
        cfg->type_vocab = 0;
        cfg->E = cfg->C;
        act_key = "activation";
        c_key = "dim";
        nh_key = "n_heads";
    } else {
        if ((rc = get_int(root, "hidden_size", -1, 1, big, &cfg->C, name, err)) ||
            (rc = get_int(root, "num_hidden_layers", -1, 1, 1024, &cfg->L, name, err)) ||
            (rc = get_int(root, "num_attention_heads", -1, 0, big, &cfg->NH, name, err)) ||
            (rc = get_int(root, "intermediate_size", -1, 1, big, &cfg->FF, name, err)) ||
            (rc = get_int(root, "type_vocab_size", 2, 0, big, &cfg->type_vocab, name, err)))
            return rc;
        const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
        /* Checked again as the float kept: 1e-300 would become 0, 0.99999999999 would be 1. */
        if (eps && (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1) ||
                    !((float)eps->valuedouble > 0 && (float)eps->valuedouble < 1)))
            return mch_fail(err, MCH_ERR_FORMAT, "%s: key 'layer_norm_eps' must be in (0, 1)",
                            name);
        cfg->eps = eps ? (float)eps->valuedouble : 1e-12f;
        cfg->E = cfg->C;
        if (cfg->arch == MCH_ARCH_ELECTRA &&
            (rc = get_int(root, "embedding_size", cfg->C, 1, big, &cfg->E, name, err)))
            return rc;
        if (cfg->arch == MCH_ARCH_ROBERTA) {
            if ((rc = get_int(root, "pad_token_id", 1, 0, 1 << 24, &cfg->pad_id, name, err)))
                return rc;
            cfg->pos_offset = cfg->pad_id + 1;
        }
        act_key = "hidden_act";
        c_key = "hidden_size";
        nh_key = "num_attention_heads";
    }
    if ((rc = get_int(root, "vocab_size", -1, 1, 1 << 24, &cfg->V, name, err)) ||
        (rc = get_int(root, "max_position_embeddings", -1, 1, big, &cfg->max_pos, name, err)))
        return rc;
    if (cfg->pos_offset >= cfg->max_pos)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: key 'pad_token_id' = %d leaves no position of "
                        "max_position_embeddings = %d",
                        name, cfg->pad_id, cfg->max_pos);
    cfg->max_tokens = cfg->max_pos - cfg->pos_offset;
    if (cfg->NH == 0)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key '%s' (attention heads) is 0", name, nh_key);
    if (cfg->C % cfg->NH != 0)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s: key '%s' = %d (hidden size) is not divisible by key '%s' = %d "
                        "(attention heads)",
                        name, c_key, cfg->C, nh_key, cfg->NH);
    cfg->HS = cfg->C / cfg->NH;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, act_key);
    if (!act)
        cfg->act = MCH_ACT_GELU_ERF;
    else if (!cJSON_IsString(act))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: key '%s' is not a string", name, act_key);
    else if ((rc = parse_act(act->valuestring, &cfg->act, act_key, name, err)))
        return rc;

    if (cfg->head != MCH_HEAD_NONE) {
        const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(root, "id2label");
        int def = cJSON_IsObject(id2label) ? cJSON_GetArraySize(id2label) : 2;
        if ((rc = get_int(root, "num_labels", def, 1, 1 << 16, &cfg->num_labels, name, err)))
            return rc;
        /* get_int does not range-check its default: an empty id2label would give 0 outputs. */
        if (cfg->num_labels < 1 || cfg->num_labels > 1 << 16)
            return mch_fail(err, MCH_ERR_FORMAT,
                            "%s: no key 'num_labels' and 'id2label' has %d labels, outside "
                            "[1, 65536]",
                            name, cfg->num_labels);
    }
    return MCH_OK;
}

/* A MonoT5's config.json (t5config.c reads it all) as the few sizes the rest of mechir sees. */
static mch_status parse_t5(mch_config *cfg, const char *json, size_t len, const char *name,
                           mch_err *err)
{
    mch_t5_config t5;
    mch_status rc = mch_t5_config_parse(&t5, json, len, name, err);
    if (rc) return rc;
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = MCH_ARCH_T5;
    cfg->head = MCH_HEAD_MONOT5;
    snprintf(cfg->model_type, sizeof cfg->model_type, "t5");
    snprintf(cfg->architecture, sizeof cfg->architecture, "T5ForConditionalGeneration");
    cfg->C = cfg->E = t5.C;
    cfg->L = t5.L;
    cfg->LD = t5.LD;
    cfg->NH = t5.NH;
    cfg->HS = t5.HS;
    cfg->FF = t5.FF;
    cfg->V = t5.V;
    cfg->num_labels = 1;
    cfg->eps = t5.eps;
    cfg->max_pos = cfg->max_tokens = MCH_MONOT5_MAX_LEN;
    return MCH_OK;
}

mch_status mch_config_parse(mch_config *cfg, const char *json, size_t len, const char *name,
                            mch_err *err)
{
    cJSON *root = mch_json_parse_exact(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a JSON object", name);
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    mch_status rc = cJSON_IsString(mt) && !strcmp(mt->valuestring, "t5")
                        ? parse_t5(cfg, json, len, name, err)
                        : parse_root(cfg, root, name, err);
    cJSON_Delete(root);
    return rc;
}

mch_status mch_config_open(mch_config *cfg, const char *path, mch_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = malloc(MCH_CONFIG_MAX_BYTES);
    if (!buf) {
        fclose(f);
        return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MCH_CONFIG_MAX_BYTES, f);
    int bad = ferror(f) || (n == MCH_CONFIG_MAX_BYTES && fgetc(f) != EOF);
    fclose(f);
    mch_status rc = bad ? mch_fail(err, MCH_ERR_IO, "%s: unreadable or larger than %u bytes", path,
                                   MCH_CONFIG_MAX_BYTES)
                        : mch_config_parse(cfg, buf, n, path, err);
    free(buf);
    return rc;
}
