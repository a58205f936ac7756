/* The TREC reader: units from a run (or, without one, the relevant qrels lines), joined with
 * topics, docs and optional qrels. Pass 1 over the unit file collects the qids and docnos the
 * units need, so only their queries and documents are kept (in the arena) while the tables are
 * streamed; pass 2 produces the units. Records stay valid until mch_input_close. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "input_internal.h"

/* A line of a run (`qid Q0 docno rank score tag`) or qrels (`qid iter docno grade`). */
typedef struct {
    mch_input_line ln;
    int good;          /* well-formed; else why says what is wrong */
    char *qid, *docno; /* in ln.s, when good */
    int num;           /* run: rank; qrels: grade */
    char why[MCH_INPUT_WHY_BYTES];
} trec_line;

/* Splits s at runs of spaces and tabs in place. @return the number of fields. */
static int split_ws(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) return n;
        if (n < max) f[n] = s;
        n++;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (!*s) return n;
        *s++ = '\0';
    }
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

/* Parses t->ln in place as a run line (run = 1) or a qrels line. @return 1, or 0 with t->why. */
static int parse_trec(trec_line *t, int run)
{
    char *f[6], *why = t->why;
    size_t cap = sizeof t->why;
    if (mch_input_bad_text(t->ln.s, t->ln.len, why, cap)) return 0;
    int want = run ? 6 : 4, n = split_ws(t->ln.s, f, 6);
    if (n != want) {
        snprintf(why, cap, "expected %d whitespace-separated columns (%s), found %d", want,
                 run ? "qid Q0 docno rank score tag" : "qid iter docno grade", n);
        return 0;
    }
    t->qid = f[0];
    t->docno = f[2];
    if (!parse_int(f[3], &t->num)) {
        snprintf(why, cap, "%s '%.*s' is not an integer", run ? "rank" : "grade", MCH_INPUT_ID_SHOW,
                 f[3]);
        return 0;
    }
    if (run && t->num < 0) {
        snprintf(why, cap, "rank %d is negative", t->num);
        return 0;
    }
    return 1;
}

/* The next non-empty line of l, parsed (see parse_trec); t->ln.s NULL at the end. */
static mch_status read_trec_line(mch_lines *l, int run, trec_line *t, mch_err *err)
{
    mch_status st = mch_input_next_line(l, &t->ln, err);
    if (st == MCH_OK && t->ln.s) t->good = parse_trec(t, run);
    return st;
}

/* 1 when a well-formed unit line is a unit at all: run ranks beyond top_k and qrels lines that
 * do not mark a relevant document (grade <= 0) are filtered out, not skipped. */
static int trec_wanted(const mch_input *in, const trec_line *t)
{
    if (in->has_run) return in->o.top_k == 0 || t->num <= in->o.top_k;
    return t->num > 0;
}

/* Adds id to the needed ids (once); its key is set by set_keys. 0 when out of memory. */
static int need(mch_trec_ids *s, const char *id)
{
    if (s->n == s->cap) { /* room for id first: every position in the index is in v */
        mch_trec_id *v = mch_input_grow(s->v, &s->cap, sizeof *v);
        if (!v) return 0;
        s->v = v;
    }
    int added;
    int64_t *pos = mch_strmap_put(s->index, id, strlen(id), &added);
    if (!pos) return 0;
    if (!added) return 1;
    s->v[s->n] = (mch_trec_id){0};
    *pos = (int64_t)s->n++;
    return 1;
}

/* Points each id's key at the index's copy of it: no id is added after pass 1, so the index's
 * keys stay where they are until mch_input_close. */
static void set_keys(mch_trec_ids *s)
{
    size_t pos = 0, len;
    const char *key;
    int64_t at;
    while (mch_strmap_next(s->index, &pos, &key, &len, &at)) s->v[at].key = key;
}

/* The needed id's entry, or NULL when id is not needed. */
static mch_trec_id *lookup(const mch_trec_ids *s, const char *id)
{
    const int64_t *pos = mch_strmap_get(s->index, id, strlen(id));
    return pos ? &s->v[*pos] : NULL;
}

/* The key of a (qid, docno) pair in the pair maps: the two positions, as 8 bytes. */
typedef struct {
    char b[8];
} pair_key;

static pair_key make_pair_key(const mch_trec_ids *qids, const mch_trec_id *q,
                              const mch_trec_ids *docnos, const mch_trec_id *d)
{
    uint64_t k = (uint64_t)(q - qids->v) << 32 | (uint64_t)(d - docnos->v);
    pair_key key;
    memcpy(key.b, &k, sizeof key.b);
    return key;
}

/* Pass 1 over the run (or qrels): the qids and docnos that units need. */
static mch_status trec_collect(mch_input *in, mch_err *err)
{
    mch_lines *l;
    mch_status st = mch_lines_open(&l, in->path, in->o.max_line_bytes, err);
    trec_line t;
    while (st == MCH_OK && (st = read_trec_line(l, in->has_run, &t, err)) == MCH_OK && t.ln.s) {
        if (!t.good) {
            if (in->o.strict)
                st = mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: %s", in->path, t.ln.no, t.why);
            continue; /* reported by the second pass */
        }
        if (!trec_wanted(in, &t)) continue;
        if (!need(&in->qids, t.qid) || !need(&in->docnos, t.docno))
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", in->path);
    }
    mch_lines_close(l);
    if (st == MCH_OK) {
        set_keys(&in->qids);
        set_keys(&in->docnos);
    }
    return st;
}

/* A line of a table (topics or docs). */
typedef struct {
    const char *id, *text;
    cJSON *json; /* JSONL docs: the line's object (id and text may point into it); to be freed */
} table_line;

/* Parses s[0..len) in place: `id<TAB>text` (docs also `docno<TAB>title<TAB>text`), or a JSONL
 * object (docs {"docno" or "doc_id", "text", "title"?}; topics {"qid" or "query_id", "query" or
 * "text"}); a title is joined as "{title} {text}" in in->joined[0].
 * @return 1 with t->id and t->text set, or 0 with why. */
static int parse_table_line(mch_input *in, char *s, size_t len, int jsonl, int is_docs,
                            table_line *t, char *why, size_t cap)
{
    const char *id_name = is_docs ? "docno" : "qid", *text_name = is_docs ? "text" : "query";
    const char *title = NULL;
    if (mch_input_bad_text(s, len, why, cap)) return 0;
    if (jsonl) {
        if (!(t->json = mch_input_json_object(s, len, why, cap))) return 0;
        const char *tname = text_name; /* topics: ir_datasets' "text" stands for "query" */
        if (!is_docs && cJSON_GetObjectItemCaseSensitive(t->json, "text")) {
            if (cJSON_GetObjectItemCaseSensitive(t->json, "query")) {
                snprintf(why, cap, "both \"query\" and \"text\"");
                return 0;
            }
            tname = "text";
        }
        if (!mch_input_json_id2(t->json, id_name, is_docs ? "doc_id" : "query_id", 0, &t->id, why,
                                cap) ||
            !mch_input_json_str(t->json, tname, 0, &t->text, why, cap) ||
            (is_docs && !mch_input_json_str(t->json, "title", 1, &title, why, cap)))
            return 0;
    } else {
        char *f[3];
        int n = mch_input_split_tabs(s, f, 3);
        if (n != 2 && !(is_docs && n == 3)) {
            snprintf(why, cap, "expected %s tab-separated columns (%s, %s%s), found %d",
                     is_docs ? "2 or 3" : "2", id_name, is_docs ? "[title, ]" : "", text_name, n);
            return 0;
        }
        t->id = f[0];
        t->text = f[n - 1];
        if (n == 3) title = f[1];
    }
    if (!*t->id || mch_input_blank(t->text)) {
        snprintf(why, cap, "empty %s", !*t->id ? id_name : text_name);
        return 0;
    }
    if (title &&
        !(t->text = mch_input_join_title(&in->joined[0], &in->joined_cap[0], title, t->text))) {
        snprintf(why, cap, "%s", MCH_INPUT_OOM);
        return 0;
    }
    return 1;
}

/* Reads a table of `id<TAB>text` lines (topics, or TSV docs), or JSONL {"docno","text"} docs,
 * keeping the text of the ids in s. */
static mch_status trec_table(mch_input *in, const char *path, int is_docs, mch_trec_ids *ids,
                             mch_err *err)
{
    int jsonl = mch_ends_with(path, ".jsonl") || mch_ends_with(path, ".jsonl.zst");
    mch_lines *l;
    mch_status st = mch_lines_open(&l, path, in->o.max_line_bytes, err);
    while (st == MCH_OK) {
        char why[MCH_INPUT_WHY_BYTES];
        mch_input_line ln;
        if ((st = mch_input_next_line(l, &ln, err)) != MCH_OK || !ln.s) break;
        if (!jsonl && mch_input_is_header(ln.s, ln.no, is_docs ? "docno" : "qid")) continue;
        table_line t = {0};
        int good = parse_table_line(in, ln.s, ln.len, jsonl, is_docs, &t, why, sizeof why);
        mch_trec_id *e = good ? lookup(ids, t.id) : NULL;
        if (!good) {
            st = mch_input_skip(in, 1, path, ln.no, err, "%s", why);
        } else if (e && e->text) {
            st = mch_input_skip(in, 1, path, ln.no, err, "duplicate %s '%.*s', first at line %ld",
                                is_docs ? "docno" : "qid", MCH_INPUT_ID_SHOW, t.id, e->line);
        } else if (e) {
            if (!(e->text = mch_input_arena_copy(&in->ar, t.text, strlen(t.text))))
                st = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
            e->line = ln.no;
        }
        cJSON_Delete(t.json);
    }
    mch_lines_close(l);
    return st;
}

/* Records grade, given at line, for the pair key unless the pair has one: *first = the line
 * that gave it, or 0. @return 0 when out of memory. */
static int grade_add(mch_input *in, pair_key key, long line, int grade, long *first)
{
    int added;
    int64_t *pos = mch_strmap_put(in->grades, key.b, sizeof key.b, &added);
    if (!pos) return 0;
    *first = added ? 0 : in->grade[*pos].line;
    if (!added) return 1;
    if (in->n_grades == in->grades_cap) {
        mch_trec_grade *g = mch_input_grow(in->grade, &in->grades_cap, sizeof *g);
        if (!g) return 0;
        in->grade = g;
    }
    in->grade[in->n_grades] = (mch_trec_grade){line, grade};
    *pos = (int64_t)in->n_grades++;
    return 1;
}

/* Qrels with a run: the grades of the pairs whose qid and docno the run needs. */
static mch_status trec_grades(mch_input *in, mch_err *err)
{
    mch_lines *l;
    mch_status st = mch_lines_open(&l, in->qrels, in->o.max_line_bytes, err);
    trec_line t;
    while (st == MCH_OK && (st = read_trec_line(l, 0, &t, err)) == MCH_OK && t.ln.s) {
        if (!t.good) {
            st = mch_input_skip(in, 1, in->qrels, t.ln.no, err, "%s", t.why);
            continue;
        }
        const mch_trec_id *q = lookup(&in->qids, t.qid), *d = lookup(&in->docnos, t.docno);
        if (!q || !d) continue;
        long first;
        if (!grade_add(in, make_pair_key(&in->qids, q, &in->docnos, d), t.ln.no, t.num, &first))
            st = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", in->qrels);
        else if (first)
            st = mch_input_skip(in, 1, in->qrels, t.ln.no, err,
                                "duplicate (qid, docno) pair, first at line %ld", first);
    }
    mch_lines_close(l);
    return st;
}

static char *dup_or_null(const char *s, int *nomem)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *nomem = 1;
    return d;
}

static mch_status next_trec(mch_input *in, const mch_record **rec, mch_err *err);

mch_status mch_input_open_trec(mch_input **out, const char *run, const char *topics,
                               const char *docs, const char *qrels, const mch_input_opts *o,
                               mch_err *err)
{
    *out = NULL;
    if (!topics || !docs || (!run && !qrels))
        return mch_fail(err, MCH_ERR_ARG,
                        "TREC input needs topics, docs, and a run or qrels (topics %s, docs %s, "
                        "run %s, qrels %s)",
                        topics ? topics : "missing", docs ? docs : "missing", run ? run : "missing",
                        qrels ? qrels : "missing");
    mch_input *in;
    mch_status st = mch_input_need_regular(run ? run : qrels, "TREC mode", err);
    if (st != MCH_OK) return st;
    st = mch_input_create(&in, run ? run : qrels, o, next_trec, err);
    if (st != MCH_OK) return st;
    int nomem = 0;
    in->has_run = run != NULL;
    in->topics = dup_or_null(topics, &nomem);
    in->docs = dup_or_null(docs, &nomem);
    in->qrels = dup_or_null(qrels, &nomem);
    in->qids.index = mch_strmap_create();
    in->docnos.index = mch_strmap_create();
    in->seen = mch_strmap_create();
    if (run && qrels) in->grades = mch_strmap_create();
    if (nomem || !in->qids.index || !in->docnos.index || !in->seen || (run && qrels && !in->grades))
        st = mch_fail(err, MCH_ERR_NOMEM, "out of memory opening %s", in->path);
    if (st == MCH_OK) st = trec_collect(in, err);
    if (st == MCH_OK) st = trec_table(in, in->topics, 0, &in->qids, err);
    if (st == MCH_OK) st = trec_table(in, in->docs, 1, &in->docnos, err);
    if (st == MCH_OK && run && qrels) st = trec_grades(in, err);
    if (st == MCH_OK) st = mch_lines_open(&in->lines, in->path, in->o.max_line_bytes, err);
    if (st != MCH_OK) {
        mch_input_close(in);
        return st;
    }
    *out = in;
    return MCH_OK;
}

/* The record of a unit that joined: q and d have their texts; key is the pair's. */
static const mch_record *trec_record(mch_input *in, const trec_line *t, const mch_trec_id *q,
                                     const mch_trec_id *d, pair_key key)
{
    int relevance = -1;
    if (!in->has_run) {
        relevance = t->num;
    } else if (in->grades) {
        const int64_t *pos = mch_strmap_get(in->grades, key.b, sizeof key.b);
        if (pos) relevance = in->grade[*pos].grade;
    }
    in->rec = (mch_record){.qid = q->key,
                           .query = q->text,
                           .docno = d->key,
                           .text = d->text,
                           .term = NULL,
                           .relevance = relevance,
                           .rank = in->has_run ? t->num : -1,
                           .file = in->path,
                           .line = t->ln.no};
    in->rep.produced++;
    return &in->rec;
}

/* Pass 2 over the run (or qrels): units in input order. */
static mch_status next_trec(mch_input *in, const mch_record **rec, mch_err *err)
{
    for (;;) {
        trec_line t;
        mch_status st = read_trec_line(in->lines, in->has_run, &t, err);
        if (st != MCH_OK || !t.ln.s) return st;
        if (!t.good) {
            in->rep.units++;
            st = mch_input_skip(in, 0, in->path, t.ln.no, err, "%s", t.why);
            if (st != MCH_OK) return st;
            continue;
        }
        if (!trec_wanted(in, &t)) continue;
        in->rep.units++;
        const mch_trec_id *q = lookup(&in->qids, t.qid), *d = lookup(&in->docnos, t.docno);
        if (!q || !d) /* only when the file changed since the first pass */
            return mch_fail(err, MCH_ERR_IO, "%s:%ld: file changed while being read", in->path,
                            t.ln.no);
        pair_key key = make_pair_key(&in->qids, q, &in->docnos, d);
        int added;
        int64_t *first = mch_strmap_put(in->seen, key.b, sizeof key.b, &added);
        if (!first) return mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", in->path);
        if (added) *first = t.ln.no;
        if (!added) {
            st = mch_input_skip(in, 0, in->path, t.ln.no, err,
                                "duplicate (qid, docno) pair, first at line %ld", (long)*first);
        } else if (!q->text) {
            st = mch_input_skip(in, 0, in->path, t.ln.no, err, "qid '%.*s' not in topics %s",
                                MCH_INPUT_ID_SHOW, t.qid, in->topics);
        } else if (!d->text) {
            st = mch_input_skip(in, 0, in->path, t.ln.no, err, "docno '%.*s' not in docs %s",
                                MCH_INPUT_ID_SHOW, t.docno, in->docs);
        } else {
            *rec = trec_record(in, &t, q, d, key);
            return MCH_OK;
        }
        if (st != MCH_OK) return st;
    }
}
