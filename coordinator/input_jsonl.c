/* The JSONL pairs reader: one object {"qid", "query", "docno", "text", "term"?, "relevance"?,
 * "rank"?} a line; and the JSON field helpers TREC's JSONL docs share. Records point into the
 * current line's cJSON object, which lives until the next line is read. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "input_internal.h"

/* An id field: a string, or an integer kept as its exact text (9007199254740993 stays that, not
 * the double 9007199254740992; mch_json_check put the text in valuestring). */
int mch_input_json_id(const cJSON *o, const char *name, const char **out, char *why, size_t why_cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) {
        snprintf(why, why_cap, "missing \"%s\"", name);
        return 0;
    }
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 1;
    }
    if (cJSON_IsNumber(v) && mch_json_int_text(v->valuestring)) {
        *out = v->valuestring;
        return 1;
    }
    snprintf(why, why_cap, "\"%s\" is not a string or an integer", name);
    return 0;
}

int mch_input_json_id2(const cJSON *o, const char *name, const char *alias, int optional,
                       const char **out, char *why, size_t why_cap)
{
    int has = cJSON_GetObjectItemCaseSensitive(o, name) != NULL,
        has_alias = cJSON_GetObjectItemCaseSensitive(o, alias) != NULL;
    *out = NULL;
    if (has && has_alias) {
        snprintf(why, why_cap, "both \"%s\" and \"%s\"", name, alias);
        return 0;
    }
    if (!has && !has_alias && optional) return 1;
    if (!has && !has_alias) {
        snprintf(why, why_cap, "missing \"%s\" (or \"%s\")", name, alias);
        return 0;
    }
    return mch_input_json_id(o, has ? name : alias, out, why, why_cap);
}

const char *mch_input_join_title(char **buf, size_t *cap, const char *title, const char *text)
{
    if (!title) return text;
    size_t tl = strlen(title), xl = strlen(text), need = tl + xl + 2;
    if (need > *cap) {
        char *b = realloc(*buf, need);
        if (!b) return NULL;
        *buf = b;
        *cap = need;
    }
    memcpy(*buf, title, tl);
    (*buf)[tl] = ' ';
    memcpy(*buf + tl + 1, text, xl + 1);
    return *buf;
}

/* A string field; optional ones may be missing or null (*out = NULL). */
int mch_input_json_str(const cJSON *o, const char *name, int optional, const char **out, char *why,
                       size_t why_cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (optional) return 1;
        snprintf(why, why_cap, "missing \"%s\"", name);
        return 0;
    }
    if (!cJSON_IsString(v)) {
        snprintf(why, why_cap, "\"%s\" is not a string", name);
        return 0;
    }
    *out = v->valuestring;
    return 1;
}

/* An optional integer field (-1 when missing or null), read from its text: no fraction or
 * exponent, within int. */
static int json_int(const cJSON *o, const char *name, int *out, char *why, size_t why_cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = -1;
    if (!v || cJSON_IsNull(v)) return 1;
    if (cJSON_IsNumber(v) && mch_json_int_text(v->valuestring)) {
        errno = 0;
        long long d = strtoll(v->valuestring, NULL, 10);
        if (!errno && d >= INT_MIN && d <= INT_MAX) {
            *out = (int)d;
            return 1;
        }
    }
    snprintf(why, why_cap, "\"%s\" is not an integer", name);
    return 0;
}

/* Parses one JSON object from s[0..len) and checks it (mch_json_check: no NUL in a string, no
 * repeated key, numbers keep their text); NULL with why on error. */
cJSON *mch_input_json_object(const char *s, size_t len, char *why, size_t why_cap)
{
    const char *end = NULL;
    errno = 0; /* cJSON reports a failed allocation as bad JSON; malloc's ENOMEM tells them apart */
    cJSON *o = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!o && errno == ENOMEM) {
        snprintf(why, why_cap, "%s", MCH_INPUT_OOM);
        return NULL;
    }
    if (!o) {
        size_t at = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
        snprintf(why, why_cap, "invalid JSON at byte %zu", at + 1);
        return NULL;
    }
    while (end < s + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
    if (end < s + len) {
        snprintf(why, why_cap, "invalid JSON at byte %zu: text after the object",
                 (size_t)(end - s) + 1);
        cJSON_Delete(o);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        snprintf(why, why_cap, "not a JSON object");
        cJSON_Delete(o);
        return NULL;
    }
    if (mch_json_check(o, s, len, NULL, why, why_cap)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The given pair's fields: "perturbed" and the optional "pair_id"; without given, a
 * "perturbed" field makes the line bad (its pairs would be built from the baseline alone). */
static int given_fields(const mch_input *in, const cJSON *o, mch_record *r, char *why, size_t cap)
{
    if (!in->o.given) {
        if (!cJSON_GetObjectItemCaseSensitive(o, "perturbed")) return 1;
        snprintf(why, cap, "has \"perturbed\": given pairs need --perturb given");
        return 0;
    }
    return mch_input_json_str(o, "perturbed", 0, &r->perturbed, why, cap) &&
           (!cJSON_GetObjectItemCaseSensitive(o, "pair_id") ||
            mch_input_json_id(o, "pair_id", &r->pair_key, why, cap));
}

/* Parses the line s[0..len) into in->json and its fields into *r (the title joined to the
 * documents in in->joined). @return 1, or 0 with why. */
static int jsonl_fields(mch_input *in, const char *s, size_t len, mch_record *r, char *why,
                        size_t cap)
{
    if (mch_input_bad_text(s, len, why, cap)) return 0;
    const cJSON *o = in->json = mch_input_json_object(s, len, why, cap);
    const char *title = NULL;
    int given = in->o.given;
    if (!(o && mch_input_json_id2(o, "qid", "query_id", given, &r->qid, why, cap) &&
          mch_input_json_str(o, "query", 0, &r->query, why, cap) &&
          mch_input_json_id2(o, "docno", "doc_id", given, &r->docno, why, cap) &&
          mch_input_json_str(o, "text", 0, &r->text, why, cap) &&
          mch_input_json_str(o, "title", 1, &title, why, cap) &&
          mch_input_json_str(o, "term", 1, &r->term, why, cap) &&
          given_fields(in, o, r, why, cap) && json_int(o, "relevance", &r->relevance, why, cap) &&
          json_int(o, "rank", &r->rank, why, cap)))
        return 0;
    if (!r->qid) r->qid = "";
    if (!r->docno) r->docno = "";
    r->text = mch_input_join_title(&in->joined[0], &in->joined_cap[0], title, r->text);
    if (r->perturbed && r->text)
        r->perturbed =
            mch_input_join_title(&in->joined[1], &in->joined_cap[1], title, r->perturbed);
    if (!r->text || (given && !r->perturbed)) {
        snprintf(why, cap, "%s", MCH_INPUT_OOM);
        return 0;
    }
    return 1;
}

static mch_status next_jsonl(mch_input *in, const mch_record **rec, mch_err *err)
{
    for (;;) {
        cJSON_Delete(in->json);
        in->json = NULL;
        char why[MCH_INPUT_WHY_BYTES];
        mch_input_line ln;
        mch_status st = mch_input_next_line(in->lines, &ln, err);
        if (st != MCH_OK || !ln.s) return st;
        in->rep.units++;
        mch_record r = {.relevance = -1, .rank = -1, .file = in->path, .line = ln.no};
        if (!jsonl_fields(in, ln.s, ln.len, &r, why, sizeof why)) {
            if ((st = mch_input_skip(in, 0, in->path, ln.no, err, "%s", why)) != MCH_OK) return st;
            continue;
        }
        if (r.term && !*r.term) r.term = NULL;
        in->rec = r;
        if ((st = mch_input_offer(in, rec, err)) != MCH_OK || *rec) return st;
    }
}

mch_status mch_input_open_jsonl(mch_input **out, const char *path, const mch_input_opts *o,
                                mch_err *err)
{
    return mch_input_open_lines(out, path, o, next_jsonl, err);
}
