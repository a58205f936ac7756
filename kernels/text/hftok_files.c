/* The tokenizer files older than tokenizer.json (hftok.h): vocab.json + merges.txt read as
 * RobertaTokenizer reads them (turned into the tokenizer.json RobertaConverter writes, then
 * loaded by the tokenizer.json reader), a directory's files in mch_tok_open's order, and the
 * public openers of sentencepiece models (spm_model.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hftok_int.h"
#include "utf8.h"

mch_status tk_new(mch_tok **t, mch_err *err)
{
    *t = calloc(1, sizeof **t);
    if (!*t || !((*t)->all = mch_strmap_create())) {
        free(*t);
        *t = NULL;
        return mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    }
    return MCH_OK;
}

/* ---- vocab.json + merges.txt ------------------------------------------------------------------
 */

/* A whole file that must be UTF-8 into *data (free() it). */
static mch_status read_utf8(const char *path, char **data, size_t *len, mch_err *err)
{
    size_t at;
    mch_status st = tk_read_file(path, data, len, err);
    if (st) return st;
    if (!mch_utf8_valid(*data, *len, &at)) {
        free(*data);
        *data = NULL;
        return mch_fail(err, MCH_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", path, at);
    }
    return MCH_OK;
}

/* A JSON file's root object into *root (cJSON_Delete it). */
static mch_status read_json(const char *path, cJSON **root, mch_err *err)
{
    char *data;
    size_t len;
    mch_status st = read_utf8(path, &data, &len, err);
    if (st) return st;
    *root = mch_json_parse_exact(data, len);
    free(data);
    if (!*root || !cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return mch_fail(err, MCH_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return MCH_OK;
}

/* A special token of tokenizer_config.json: a string or {"content": string}; def when absent. */
static mch_status config_token(const cJSON *cfg, const char *key, const char *def, const char *path,
                               const char **out, mch_err *err)
{
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    *out = def;
    if (!v || cJSON_IsNull(v)) return MCH_OK;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return mch_fail(err, MCH_ERR_FORMAT, "%s: %s is not a string", path, key);
    *out = v->valuestring;
    return MCH_OK;
}

/* merges.txt lines ("a b", an optional "#version" first line) as a JSON array of pairs. */
static mch_status merges_array(const char *path, cJSON *arr, mch_err *err)
{
    char *data;
    size_t len;
    mch_status st = read_utf8(path, &data, &len, err);
    if (st) return st;
    size_t line = 0;
    for (char *p = data; !st && p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        char *end = nl ? nl : data + len;
        line++;
        if (end > p && end[-1] == '\r') end[-1] = '\0';
        *end = '\0';
        if (!(line == 1 && !strncmp(p, "#version", 8)) && *p) {
            char *sp = strchr(p, ' ');
            if (!sp || sp == p || !sp[1] || strchr(sp + 1, ' ')) {
                st = mch_fail(err, MCH_ERR_FORMAT, "%s:%zu: '%.60s' is not two tokens 'a b'", path,
                              line, p);
                break;
            }
            *sp = '\0';
            cJSON *pair = cJSON_CreateArray();
            if (!pair || !cJSON_AddItemToArray(arr, pair) ||
                !cJSON_AddItemToArray(pair, cJSON_CreateString(p)) ||
                !cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1)))
                st = mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", path);
        }
        p = end + 1;
    }
    free(data);
    return st;
}

/* The id of token in vocab (vocab.json's object), or -1. */
static int vocab_id(const cJSON *vocab, const char *token)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(vocab, token);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
}

/* added_tokens as RobertaTokenizer has them: from tokenizer_config.json's added_tokens_decoder
 * when it has one, else <s> <pad> </s> <unk> and <mask> (lstrip) where vocab.json has them. */
static mch_status added_tokens(const cJSON *cfg, const cJSON *vocab, const char *cfg_path,
                               cJSON *arr, mch_err *err)
{
    const cJSON *dec = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    if (dec && cJSON_IsObject(dec)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, dec)
        {
            char *endp;
            long id = strtol(e->string, &endp, 10);
            if (*endp || endp == e->string || id < 0 || id > INT32_MAX - 1 || !cJSON_IsObject(e))
                return mch_fail(err, MCH_ERR_FORMAT,
                                "%s: added_tokens_decoder['%.40s'] is not an id and an object",
                                cfg_path, e->string);
            cJSON *a = cJSON_Duplicate(e, true);
            if (!a || !cJSON_AddNumberToObject(a, "id", (double)id) ||
                !cJSON_AddItemToArray(arr, a)) {
                cJSON_Delete(a);
                return mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", cfg_path);
            }
        }
        return MCH_OK;
    }
    static const char *const SPECIAL[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    for (size_t k = 0; k < 5; k++) {
        int id = vocab_id(vocab, SPECIAL[k]);
        if (id < 0) continue;
        cJSON *a = cJSON_CreateObject();
        if (!a || !cJSON_AddItemToArray(arr, a) || !cJSON_AddNumberToObject(a, "id", id) ||
            !cJSON_AddStringToObject(a, "content", SPECIAL[k]) ||
            !cJSON_AddBoolToObject(a, "lstrip", k == 4) ||
            !cJSON_AddBoolToObject(a, "normalized", k != 4))
            return mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    }
    return MCH_OK;
}

/* cls/sep of RobertaProcessing: [token, id]. */
static mch_status post_token(cJSON *post, const char *key, const char *token, const cJSON *vocab,
                             const char *vocab_path, mch_err *err)
{
    int id = vocab_id(vocab, token);
    if (id < 0)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: the %s token '%.40s' is not in the vocabulary",
                        vocab_path, key, token);
    cJSON *pair = cJSON_CreateArray();
    if (!pair || !cJSON_AddItemToObject(post, key, pair) ||
        !cJSON_AddItemToArray(pair, cJSON_CreateString(token)) ||
        !cJSON_AddItemToArray(pair, cJSON_CreateNumber(id)))
        return mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    return MCH_OK;
}

mch_status tk_load_bpe_files(mch_tok *t, const char *vocab_path, const char *merges_path,
                             const char *config_path, mch_err *err)
{
    cJSON *cfg = NULL, *vocab = NULL, *root = cJSON_CreateObject();
    if (!root) return mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    mch_status st = config_path ? read_json(config_path, &cfg, err) : MCH_OK;
    if (!st) st = read_json(vocab_path, &vocab, err);
    bool prefix = false;
    const cJSON *aps = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_prefix_space") : NULL;
    if (!st && aps && !cJSON_IsNull(aps)) {
        if (!cJSON_IsBool(aps))
            st =
                mch_fail(err, MCH_ERR_FORMAT, "%s: add_prefix_space is not a boolean", config_path);
        prefix = cJSON_IsTrue(aps);
    }
    const char *cls = NULL, *sep = NULL;
    if (!st) st = config_token(cfg, "cls_token", "<s>", config_path, &cls, err);
    if (!st) st = config_token(cfg, "sep_token", "</s>", config_path, &sep, err);
    cJSON *model = NULL, *pre = NULL, *post = NULL, *added = NULL, *merges = NULL;
    if (!st) {
        model = cJSON_AddObjectToObject(root, "model");
        pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
        post = cJSON_AddObjectToObject(root, "post_processor");
        added = cJSON_AddArrayToObject(root, "added_tokens");
        if (!model || !pre || !post || !added || !cJSON_AddStringToObject(model, "type", "BPE") ||
            !(merges = cJSON_AddArrayToObject(model, "merges")) ||
            !cJSON_AddStringToObject(pre, "type", "ByteLevel") ||
            !cJSON_AddBoolToObject(pre, "add_prefix_space", prefix) ||
            !cJSON_AddStringToObject(post, "type", "RobertaProcessing"))
            st = mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    }
    if (!st) st = post_token(post, "cls", cls, vocab, vocab_path, err);
    if (!st) st = post_token(post, "sep", sep, vocab, vocab_path, err);
    if (!st) st = added_tokens(cfg, vocab, config_path, added, err);
    if (!st) st = merges_array(merges_path, merges, err);
    if (!st) { /* vocab.json becomes model.vocab */
        cJSON_AddItemToObject(model, "vocab", vocab);
        vocab = NULL;
    }
    char *json = st ? NULL : cJSON_PrintUnformatted(root);
    if (!st && !json) st = mch_fail(err, MCH_ERR_NOMEM, "tokenizer: out of memory");
    char name[4200];
    snprintf(name, sizeof name, "%s + merges.txt", vocab_path);
    if (!st) st = tk_load_json(t, json, strlen(json), name, err);
    free(json);
    cJSON_Delete(root);
    cJSON_Delete(vocab);
    cJSON_Delete(cfg);
    return st;
}

mch_status mch_tok_open_bpe_files(mch_tok **out, const char *vocab_path, const char *merges_path,
                                  const char *config_path, mch_err *err)
{
    if (!out || !vocab_path || !merges_path)
        return mch_fail(err, MCH_ERR_ARG, "mch_tok_open_bpe_files: NULL argument");
    mch_tok *t;
    mch_status st = tk_new(&t, err);
    if (!st) st = tk_load_bpe_files(t, vocab_path, merges_path, config_path, err);
    if (st) {
        mch_tok_free(t);
        return st;
    }
    *out = t;
    return MCH_OK;
}

/* ---- sentencepiece models ---------------------------------------------------------------------
 */

mch_status mch_tok_parse_spm(mch_tok **out, const void *data, size_t len, int layout,
                             const char *name, mch_err *err)
{
    if (!name) name = "sentencepiece model";
    if (!out || (!data && len)) return mch_fail(err, MCH_ERR_ARG, "%s: NULL argument", name);
    if (layout != MCH_SPM_T5 && layout != MCH_SPM_XLMR)
        return mch_fail(err, MCH_ERR_ARG, "%s: unknown layout %d", name, layout);
    mch_tok *t;
    mch_status st = tk_new(&t, err);
    if (!st) st = tk_load_spm(t, data ? data : "", len, layout, name, err);
    if (st) {
        mch_tok_free(t);
        return st;
    }
    *out = t;
    return MCH_OK;
}

mch_status mch_tok_open_spm(mch_tok **out, const char *path, int layout, mch_err *err)
{
    if (!out || !path) return mch_fail(err, MCH_ERR_ARG, "mch_tok_open_spm: NULL argument");
    char *data;
    size_t len;
    mch_status st = tk_read_file(path, &data, &len, err);
    if (st) return st;
    st = mch_tok_parse_spm(out, data, len, layout, path, err);
    free(data);
    return st;
}

/* ---- a directory ------------------------------------------------------------------------------
 */

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

mch_status mch_tok_open_dir(mch_tok **out, const char *dir, mch_err *err)
{
    if (!out || !dir) return mch_fail(err, MCH_ERR_ARG, "mch_tok_open_dir: NULL argument");
    char a[4096], b[4096], cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    const char *config = is_file(cfg) ? cfg : NULL;
    snprintf(a, sizeof a, "%s/tokenizer.json", dir);
    if (is_file(a)) {
        char *data;
        size_t len;
        mch_status st = tk_read_file(a, &data, &len, err);
        if (st) return st;
        st = mch_tok_parse_json(out, data, len, a, err);
        free(data);
        return st;
    }
    snprintf(a, sizeof a, "%s/vocab.json", dir);
    snprintf(b, sizeof b, "%s/merges.txt", dir);
    if (is_file(a) && is_file(b)) return mch_tok_open_bpe_files(out, a, b, config, err);
    snprintf(a, sizeof a, "%s/spiece.model", dir);
    if (is_file(a)) return mch_tok_open_spm(out, a, MCH_SPM_T5, err);
    snprintf(a, sizeof a, "%s/sentencepiece.bpe.model", dir);
    if (is_file(a)) return mch_tok_open_spm(out, a, MCH_SPM_XLMR, err);
    snprintf(a, sizeof a, "%s/vocab.txt", dir);
    if (is_file(a)) return mch_tok_open_vocab_txt(out, a, config, err);
    return mch_fail(err, MCH_ERR_IO,
                    "%s: no tokenizer.json, vocab.json + merges.txt, spiece.model, "
                    "sentencepiece.bpe.model or vocab.txt there",
                    dir);
}
