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

/* Parses the line s[0..len) into in->json and its fields into *r. @return 1, or 0 with why. */
static int jsonl_fields(mch_input *in, const char *s, size_t len, mch_record *r, char *why,
                        size_t cap)
{
    if (mch_input_bad_text(s, len, why, cap)) return 0;
    const cJSON *o = in->json = mch_input_json_object(s, len, why, cap);
    return o && mch_input_json_id(o, "qid", &r->qid, why, cap) &&
           mch_input_json_str(o, "query", 0, &r->query, why, cap) &&
           mch_input_json_id(o, "docno", &r->docno, why, cap) &&
           mch_input_json_str(o, "text", 0, &r->text, why, cap) &&
           mch_input_json_str(o, "term", 1, &r->term, why, cap) &&
           json_int(o, "relevance", &r->relevance, why, cap) &&
           json_int(o, "rank", &r->rank, why, cap);
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
