/* The job spec: packing, validation, the one comparison of two specs, and the parsers of what a
 * spec names (sweeps, head-pos heads, cache hooks). One table of string fields drives copying,
 * freeing and the conversion to and from the generated type, so a new field is added once. */
#include "msg_pb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings and lists -------------------------------------------------------------------- */

int mch_msg_str(char **dst, const char *src)
{
    char *s = strdup(src ? src : "");
    if (!s) return 0;
    free(*dst);
    *dst = s;
    return 1;
}

void mch_msg_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

mch_status mch_list_split(const char *list, char ***items, size_t *n, mch_err *err)
{
    size_t cap = 1, k = 0;
    for (const char *p = list; *p; p++) cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (!v) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len && !(v[k++] = strndup(p, len))) {
            mch_msg_strv_free(v, k);
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        }
        p += len + (p[len] == ',');
    }
    *items = v;
    *n = k;
    return MCH_OK;
}

static mch_status strv_copy(char ***dst, char *const *src, size_t n, mch_err *err)
{
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = strdup(src[i] ? src[i] : ""))) {
            mch_msg_strv_free(v, i);
            v = NULL;
        }
    if (!v) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    *dst = v;
    return MCH_OK;
}

int mch_direction_parse(const char *s)
{
    if (!s || !*s || !strcmp(s, "any")) return 0;
    if (!strcmp(s, "with")) return 1;
    if (!strcmp(s, "against")) return -1;
    return -2;
}

static const char *const method_names[] = {"", "atp", "atp-qk"};

int mch_method_of(const char *s)
{
    if (!s || !strcmp(s, "exact")) return MCH_JOB_EXACT;
    for (int i = 0; i < (int)(sizeof method_names / sizeof method_names[0]); i++)
        if (!strcmp(s, method_names[i])) return i;
    return -1;
}

const char *mch_method_spec_name(int method)
{
    return method > MCH_JOB_EXACT && method <= MCH_JOB_ATP_QK ? method_names[method] : "";
}

/* ---- sweeps, heads, hooks ----------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} sweep_table[] = {{"heads", MCH_SWEEP_HEADS},
                   {"blocks", MCH_SWEEP_BLOCKS},
                   {"head-pos", MCH_SWEEP_HEAD_POS},
                   {"qkv", MCH_SWEEP_QKV},
                   {"pattern", MCH_SWEEP_PATTERN},
                   {"resid-mid", MCH_SWEEP_RESID_MID},
                   {"none", 0}};
enum { N_SWEEP_NAMES = sizeof sweep_table / sizeof sweep_table[0] };

static int sweep_find(const char *name)
{
    for (int k = 0; k < N_SWEEP_NAMES; k++)
        if (!strcmp(name, sweep_table[k].name)) return k;
    return -1;
}

mch_status mch_sweeps_parse(const char *list, unsigned *bits, mch_err *err)
{
    char **items;
    size_t n;
    mch_status rc = mch_list_split(list, &items, &n, err);
    if (rc) return rc;
    unsigned b = 0;
    int none = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int k = sweep_find(items[i]);
        if (k < 0)
            rc = mch_fail(err, MCH_ERR_ARG,
                          "--sweep: unknown sweep '%s' (heads, blocks, head-pos, qkv, pattern, "
                          "resid-mid, none)",
                          items[i]);
        else if (!sweep_table[k].bit)
            none = 1;
        else
            b |= sweep_table[k].bit;
    }
    mch_msg_strv_free(items, n);
    if (!rc && !n)
        rc = mch_fail(err, MCH_ERR_ARG,
                      "--sweep is empty (heads, blocks, head-pos, qkv, pattern, resid-mid, none)");
    if (!rc && none && b)
        rc = mch_fail(err, MCH_ERR_ARG, "--sweep none cannot be combined with other sweeps");
    if (!rc) *bits = b;
    return rc;
}

size_t mch_sweeps_names(unsigned bits, const char *names[MCH_SWEEP_NAMES_MAX])
{
    size_t n = 0;
    for (int k = 0; k < N_SWEEP_NAMES; k++)
        if (sweep_table[k].bit & bits) names[n++] = sweep_table[k].name;
    if (!n) names[n++] = "none";
    return n;
}

unsigned mch_sweeps_bits(char *const *names, size_t n)
{
    unsigned b = 0;
    for (size_t i = 0; i < n; i++) {
        int k = sweep_find(names[i]);
        if (k >= 0) b |= sweep_table[k].bit;
    }
    return b;
}

/* A layer or head number at p: digits only (no sign or space), at most MCH_HEAD_NUMBER_MAX;
 * *end past it. @return 1, or 0. */
static int head_number(const char *p, const char **end, uint32_t *out)
{
    uint64_t v = 0;
    const char *q = p;
    for (; *q >= '0' && *q <= '9'; q++)
        if ((v = v * 10 + (uint64_t)(*q - '0')) > MCH_HEAD_NUMBER_MAX) return 0;
    *end = q;
    *out = (uint32_t)v;
    return q != p;
}

mch_status mch_heads_parse(const char *list, uint32_t **pairs, size_t *n, mch_err *err)
{
    size_t cap = 2;
    for (const char *p = list; *p; p++) cap += 2 * (*p == ',');
    uint32_t *v = malloc(cap * sizeof *v);
    if (!v) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    size_t k = 0;
    const char *p = list;
    while (*p) {
        const char *dot, *end;
        uint32_t l, h;
        if (!head_number(p, &dot, &l) || *dot != '.') break;
        if (!head_number(dot + 1, &end, &h) || (*end && *end != ',')) break;
        v[k++] = l;
        v[k++] = h;
        p = *end ? end + 1 : end;
    }
    if (*p || !k) {
        free(v);
        return mch_fail(err, MCH_ERR_ARG,
                        "--heads takes LAYER.HEAD pairs like 0.1,2.3, got '%s' (each number 0..%d)",
                        list, MCH_HEAD_NUMBER_MAX);
    }
    *pairs = v;
    *n = k / 2;
    return MCH_OK;
}

size_t mch_heads_outside(const uint32_t *pairs, size_t n, uint32_t L, uint32_t NH)
{
    for (size_t k = 0; k < n; k++)
        if (pairs[2 * k] >= L || pairs[2 * k + 1] >= NH) return k + 1;
    return 0;
}

/* ---- the spec and its generated form ------------------------------------------------------ */

/* Every string field: its place in the plain struct and in the generated one. */
static const struct {
    size_t plain, pb;
} str_fields[] = {
#define F(x)                                                                                       \
    {                                                                                              \
        offsetof(mch_job_spec, x), offsetof(Mechir__JobSpec, x)                                    \
    }
    F(format),       F(model_path),   F(model_sha256),     F(vocab_hash), F(arch),
    F(architecture), F(perturbation), F(position),         F(filler),     F(pooling),
    F(cache_dtype),  F(inputs),       F(software_version), F(direction),  F(select),
    F(method),
#undef F
};
enum { N_STR_FIELDS = sizeof str_fields / sizeof str_fields[0] };

#define PLAIN_STR(s, i) ((char **)((char *)(s) + str_fields[i].plain))
#define PB_STR(m, i) ((char **)((char *)(m) + str_fields[i].pb))

static void input_files_free(mch_input_file *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) free(v[i].name);
    free(v);
}

/* A copy of the n files at src (names copied; n may be 0) into *dst. */
static mch_status input_files_copy(mch_input_file **dst, const mch_input_file *src, size_t n,
                                   mch_err *err)
{
    mch_input_file *v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        v[i] = src[i];
        if (!(v[i].name = strdup(msg_s(src[i].name)))) {
            input_files_free(v, i);
            v = NULL;
        }
    }
    if (!v) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    *dst = v;
    return MCH_OK;
}

void mch_job_spec_deinit(mch_job_spec *s)
{
    if (!s) return;
    for (int i = 0; i < N_STR_FIELDS; i++) free(*PLAIN_STR(s, i));
    input_files_free(s->input_files, s->n_input_files);
    mch_msg_strv_free(s->sweeps, s->n_sweeps);
    mch_msg_strv_free(s->cache_hooks, s->n_cache_hooks);
    free(s->head_pos);
    memset(s, 0, sizeof *s);
}

/* The scalar fields and arrays of src into s; strings were copied by the caller. */
static mch_status copy_rest(mch_job_spec *s, const uint32_t *heads, size_t n_heads,
                            char *const *sweeps, size_t n_sweeps, char *const *hooks,
                            size_t n_hooks, mch_err *err)
{
    mch_status rc = strv_copy(&s->sweeps, sweeps, n_sweeps, err);
    if (!rc) s->n_sweeps = n_sweeps;
    if (!rc && !(rc = strv_copy(&s->cache_hooks, hooks, n_hooks, err))) s->n_cache_hooks = n_hooks;
    if (!rc && !(s->head_pos = malloc((2 * n_heads + 1) * sizeof *s->head_pos)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (rc) return rc;
    if (n_heads) memcpy(s->head_pos, heads, 2 * n_heads * sizeof *heads);
    s->n_head_pos = n_heads;
    return MCH_OK;
}

mch_status mch_job_spec_copy(mch_job_spec *dst, const mch_job_spec *src, mch_err *err)
{
    *dst = *src;
    for (int i = 0; i < N_STR_FIELDS; i++) *PLAIN_STR(dst, i) = NULL;
    dst->sweeps = dst->cache_hooks = NULL;
    dst->head_pos = NULL;
    dst->n_sweeps = dst->n_cache_hooks = dst->n_head_pos = 0;
    dst->input_files = NULL;
    dst->n_input_files = 0;
    mch_status rc = MCH_OK;
    for (int i = 0; i < N_STR_FIELDS && !rc; i++)
        if (!mch_msg_str(PLAIN_STR(dst, i), *PLAIN_STR(src, i)))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = copy_rest(dst, src->head_pos, src->n_head_pos, src->sweeps, src->n_sweeps,
                       src->cache_hooks, src->n_cache_hooks, err);
    if (!rc &&
        !(rc = input_files_copy(&dst->input_files, src->input_files, src->n_input_files, err)))
        dst->n_input_files = src->n_input_files;
    if (rc) mch_job_spec_deinit(dst);
    return rc;
}

void msg_spec_to_pb(const mch_job_spec *s, Mechir__JobSpec *m)
{
    mechir__job_spec__init(m);
    for (int i = 0; i < N_STR_FIELDS; i++) *PB_STR(m, i) = msg_s(*PLAIN_STR(s, i));
    m->layers = s->layers, m->heads = s->heads, m->hidden = s->hidden;
    m->decoder_layers = s->decoder_layers;
    m->max_span = s->max_span;
    m->stem = s->stem != 0;
    m->max_len = s->max_len, m->max_query_len = s->max_query_len;
    m->min_delta = s->min_delta;
    m->seed = s->seed;
    m->bootstrap = s->bootstrap, m->ci_level = s->ci_level;
    m->select_k = s->select_k, m->select_per_grade = s->select_per_grade != 0;
    m->verify_top = s->verify_top;
    m->n_sweeps = s->n_sweeps, m->sweeps = s->sweeps;
    m->n_head_list = 2 * s->n_head_pos, m->head_list = s->head_pos;
    m->n_cache_hooks = s->n_cache_hooks, m->cache_hooks = s->cache_hooks;
}

mch_status msg_spec_from_pb(mch_job_spec *s, const Mechir__JobSpec *m, mch_err *err)
{
    memset(s, 0, sizeof *s);
    mch_status rc = MCH_OK;
    for (int i = 0; i < N_STR_FIELDS && !rc; i++)
        if (!mch_msg_str(PLAIN_STR(s, i), *PB_STR(m, i)))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    s->layers = m->layers, s->heads = m->heads, s->hidden = m->hidden;
    s->decoder_layers = m->decoder_layers;
    s->max_span = m->max_span;
    s->stem = m->stem;
    s->max_len = m->max_len, s->max_query_len = m->max_query_len;
    s->min_delta = m->min_delta;
    s->seed = m->seed;
    s->bootstrap = m->bootstrap, s->ci_level = m->ci_level;
    s->select_k = m->select_k, s->select_per_grade = m->select_per_grade;
    s->verify_top = m->verify_top;
    if (!rc)
        rc = copy_rest(s, m->head_list, m->n_head_list / 2, m->sweeps, m->n_sweeps, m->cache_hooks,
                       m->n_cache_hooks, err);
    if (!rc && !(s->input_files = calloc(m->n_input_files + 1, sizeof *s->input_files)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_input_files; i++, s->n_input_files++) {
        const Mechir__InputFile *f = m->input_files[i];
        mch_input_file *d = &s->input_files[i];
        if (!(d->name = strdup(msg_s(f->name)))) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        d->size_bytes = f->size, d->xxh3 = f->xxh3, d->not_regular = f->not_regular;
    }
    if (rc) mch_job_spec_deinit(s);
    return rc;
}

int msg_spec_check(const Mechir__JobSpec *m, char *why, size_t len)
{
    size_t K = m->n_head_list / 2;
    if (m->base.n_unknown_fields)
        return snprintf(why, len, "spec: fields this version does not know"), 1;
    if (msg_utf8_check(&m->base, "spec", why, len)) return 1;
    if (m->layers < 1 || m->layers > 1024 || m->heads < 1 || m->heads > 1024 ||
        m->decoder_layers > 1024)
        return snprintf(why, len, "spec: layers or heads out of range"), 1;
    if (m->n_head_list % 2) return snprintf(why, len, "spec: head list of odd length"), 1;
    for (size_t i = 0; i < m->n_sweeps; i++)
        if (sweep_find(m->sweeps[i]) < 0)
            return snprintf(why, len, "spec: unknown sweep '%.60s'", m->sweeps[i]), 1;
    if (mch_heads_outside(m->head_list, K, m->layers, m->heads))
        return snprintf(why, len, "spec: head outside the model"), 1;
    if (m->bootstrap > MCH_BOOTSTRAP_MAX)
        return snprintf(why, len, "spec: bootstrap %lu is above %d", (unsigned long)m->bootstrap,
                        MCH_BOOTSTRAP_MAX),
               1;
    if (m->bootstrap && !(m->ci_level > 0 && m->ci_level < 1))
        return snprintf(why, len, "spec: ci_level %g is not in (0, 1)", m->ci_level), 1;
    if (!(m->min_delta >= 0) || !isfinite(m->min_delta))
        return snprintf(why, len, "spec: min_delta %g is not a finite number >= 0", m->min_delta),
               1;
    if (mch_direction_parse(m->direction) < -1)
        return snprintf(why, len, "spec: unknown direction '%.40s'", m->direction), 1;
    if (*msg_s(m->select) && strcmp(m->select, "top-delta"))
        return snprintf(why, len, "spec: unknown selection '%.40s'", m->select), 1;
    if (*msg_s(m->select) && !m->select_k)
        return snprintf(why, len, "spec: selection top-delta with K 0"), 1;
    /* "exact" is spelt "" in a spec: one job, one spelling (a resume compares bytes). */
    if (mch_method_of(m->method) < 0 || !strcmp(msg_s(m->method), "exact"))
        return snprintf(why, len, "spec: unknown method '%.40s'", m->method), 1;
    if (*msg_s(m->method) &&
        ((mch_sweeps_bits(m->sweeps, m->n_sweeps) & MCH_SWEEP_HEAD_POS) || m->n_cache_hooks))
        return snprintf(why, len, "spec: method %.40s with a head-pos sweep or cache hooks",
                        m->method),
               1;
    if (m->verify_top && (!*msg_s(m->method) || !(mch_sweeps_bits(m->sweeps, m->n_sweeps) &
                                                  (MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS))))
        return snprintf(why, len, "spec: verify_top %lu without attribution patching's sweeps",
                        (unsigned long)m->verify_top),
               1;
    if (m->verify_top > MCH_VERIFY_TOP_MAX)
        return snprintf(why, len, "spec: verify_top %lu is above %d", (unsigned long)m->verify_top,
                        MCH_VERIFY_TOP_MAX),
               1;
    if (m->n_input_files > MCH_SPEC_INPUT_FILES_MAX)
        return snprintf(why, len, "spec: %zu input files (at most %d)", m->n_input_files,
                        MCH_SPEC_INPUT_FILES_MAX),
               1;
    for (size_t i = 0; i < m->n_input_files; i++) {
        const Mechir__InputFile *f = m->input_files[i];
        if (f->base.n_unknown_fields || !*msg_s(f->name))
            return snprintf(why, len, "spec: input file %zu has no name or unknown fields", i), 1;
        if (f->not_regular && (f->size || f->xxh3))
            return snprintf(why, len, "spec: input file '%.60s' is not regular but has a size",
                            f->name),
                   1;
    }
    return 0;
}

mch_status msg_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len, mch_err *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return mch_fail(err, MCH_ERR_NOMEM, "out of memory packing a %s", m->descriptor->name);
    protobuf_c_message_pack(m, b);
    *out = b;
    *len = n;
    return MCH_OK;
}

mch_status mch_job_spec_pack(const mch_job_spec *s, uint8_t **out, size_t *len, mch_err *err)
{
    Mechir__JobSpec m;
    char why[200];
    msg_spec_to_pb(s, &m);
    size_t n = s->n_input_files;
    Mechir__InputFile *files = calloc(n + 1, sizeof *files);
    Mechir__InputFile **ptrs = calloc(n + 1, sizeof *ptrs);
    mch_status rc = files && ptrs ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        const mch_input_file *f = &s->input_files[i];
        mechir__input_file__init(&files[i]);
        files[i].name = msg_s(f->name);
        files[i].size = f->size_bytes, files[i].xxh3 = f->xxh3;
        files[i].not_regular = f->not_regular != 0;
        ptrs[i] = &files[i];
    }
    m.n_input_files = n, m.input_files = ptrs;
    if (!rc && msg_utf8_check(&m.base, "spec", why, sizeof why)) /* unpack would refuse it */
        rc = mch_fail(err, MCH_ERR_ARG, "the job spec: %s (paths and options must be UTF-8)", why);
    if (!rc) rc = msg_pack(&m.base, out, len, err);
    free(ptrs);
    free(files);
    return rc;
}

mch_status mch_job_spec_unpack(mch_job_spec *s, const uint8_t *buf, size_t len, const char *name,
                               mch_err *err)
{
    memset(s, 0, sizeof *s);
    if (len > MCH_MSG_MAX_BYTES)
        return mch_fail(err, MCH_ERR_PROTO, "%s: %zu bytes is larger than any job spec", name, len);
    Mechir__JobSpec *m = mechir__job_spec__unpack(NULL, len, buf);
    if (!m)
        return mch_fail(err, MCH_ERR_PROTO, "%s: not a job spec (protobuf decoding failed)", name);
    char why[160];
    mch_status rc = msg_spec_check(m, why, sizeof why)
                        ? mch_fail(err, MCH_ERR_FORMAT, "%s: invalid job spec: %s", name, why)
                        : msg_spec_from_pb(s, m, err);
    mechir__job_spec__free_unpacked(m, NULL);
    return rc;
}

/* ---- the comparison ----------------------------------------------------------------------- */

/* K_METHOD: a string printed as 'exact' when empty. */
typedef enum {
    K_STR,
    K_METHOD,
    K_U32,
    K_INT,
    K_U64,
    K_DBL,
    K_LIST,
    K_QLIST,
    K_HEADS,
    K_FILES
} field_kind;

/* In the order a difference is reported; job_only: compared for a resume, not for a merge. */
static const struct {
    const char *name;
    field_kind kind;
    size_t off;
    int job_only, plural;
} diff_fields[] = {
#define D(name, kind, field, job_only, plural)                                                     \
    {                                                                                              \
        name, kind, offsetof(mch_job_spec, field), job_only, plural                                \
    }
    D("format", K_STR, format, 1, 0),
    D("model sha256", K_STR, model_sha256, 0, 0),
    D("model path", K_STR, model_path, 1, 0),
    D("arch", K_STR, arch, 0, 0),
    D("architecture", K_STR, architecture, 0, 0),
    D("vocab hash", K_STR, vocab_hash, 0, 0),
    D("layers", K_U32, layers, 0, 1),
    D("heads", K_U32, heads, 0, 1),
    D("decoder layers", K_U32, decoder_layers, 0, 1),
    D("hidden", K_U32, hidden, 0, 0),
    D("perturbation", K_STR, perturbation, 0, 0),
    D("inputs", K_STR, inputs, 1, 1),
    D("input files", K_FILES, input_files, 1, 1),
    D("position", K_STR, position, 0, 0),
    D("filler", K_STR, filler, 0, 0),
    D("max span", K_U32, max_span, 0, 0),
    D("pooling", K_STR, pooling, 0, 0),
    D("stem", K_INT, stem, 0, 0),
    D("max_len", K_U32, max_len, 0, 0),
    D("max_query_len", K_U32, max_query_len, 0, 0),
    D("min_delta", K_DBL, min_delta, 0, 0),
    D("seed", K_U64, seed, 1, 0),
    D("bootstrap", K_U32, bootstrap, 0, 0),
    D("ci level", K_DBL, ci_level, 0, 0),
    D("direction", K_STR, direction, 0, 0),
    D("method", K_METHOD, method, 0, 0),
    D("verify top", K_U32, verify_top, 0, 0),
    D("selection", K_STR, select, 1, 0),
    D("selection k", K_U64, select_k, 1, 0),
    D("per grade", K_INT, select_per_grade, 1, 0),
    D("sweeps", K_LIST, sweeps, 0, 1),
    D("head-pos heads", K_HEADS, head_pos, 0, 1),
    D("cache hooks", K_QLIST, cache_hooks, 1, 1),
    D("cache dtype", K_STR, cache_dtype, 1, 0),
    D("software version", K_STR, software_version, 1, 0),
#undef D
};

/* Writes the value of field i of s as printed in a message. */
static void field_text(const mch_job_spec *s, int i, char *out, size_t len)
{
    const void *p = (const char *)s + diff_fields[i].off;
    char list[512] = "";
    size_t used = 0;
    switch (diff_fields[i].kind) {
    case K_STR:
        snprintf(out, len, "'%.200s'", msg_s(*(char *const *)p));
        return;
    case K_METHOD: {
        const char *m = msg_s(*(char *const *)p);
        snprintf(out, len, "'%.200s'", *m ? m : "exact");
        return;
    }
    case K_U32:
        snprintf(out, len, "%lu", (unsigned long)*(const uint32_t *)p);
        return;
    case K_INT:
        snprintf(out, len, "%d", *(const int *)p);
        return;
    case K_U64:
        snprintf(out, len, "%llu", (unsigned long long)*(const uint64_t *)p);
        return;
    case K_DBL:
        snprintf(out, len, "%.17g", *(const double *)p);
        return;
    case K_HEADS:
        for (size_t k = 0; k < s->n_head_pos && used < sizeof list; k++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%lu.%lu", k ? "," : "",
                                     (unsigned long)s->head_pos[2 * k],
                                     (unsigned long)s->head_pos[2 * k + 1]);
        break;
    case K_FILES:
        for (size_t k = 0; k < s->n_input_files && used < sizeof list; k++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'", k ? "," : "",
                                     s->input_files[k].name);
        if (!s->n_input_files) snprintf(list, sizeof list, "none");
        break;
    case K_LIST:
    case K_QLIST: {
        int sweeps = diff_fields[i].kind == K_LIST;
        char *const *v = sweeps ? s->sweeps : s->cache_hooks;
        size_t n = sweeps ? s->n_sweeps : s->n_cache_hooks;
        for (size_t k = 0; k < n && used < sizeof list; k++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? "," : "", v[k]);
        break;
    }
    }
    snprintf(out, len, diff_fields[i].kind == K_QLIST ? "'%.200s'" : "%.200s", list);
}

static int strv_equal(char *const *x, size_t nx, char *const *y, size_t ny)
{
    if (nx != ny) return 0;
    for (size_t k = 0; k < nx; k++)
        if (strcmp(msg_s(x[k]), msg_s(y[k]))) return 0;
    return 1;
}

/* The first non-regular input file of s, or NULL. */
static const mch_input_file *not_regular(const mch_job_spec *s)
{
    for (size_t k = 0; k < s->n_input_files; k++)
        if (s->input_files[k].not_regular) return &s->input_files[k];
    return NULL;
}

/* Whether the input files agree for a resume (a is the journal's spec, b today's); when not,
 * the difference as a sentence naming the file into what ("" when the lists of names differ).
 * A non-regular file never agrees: it was not read. */
static int files_equal(const mch_job_spec *a, const mch_job_spec *b, char *what, size_t len)
{
    const mch_input_file *nr = not_regular(b) ? not_regular(b) : not_regular(a);
    if (nr)
        return snprintf(what, len,
                        "input file '%.200s' is not a regular file (a pipe or a device): its "
                        "contents cannot be fingerprinted, so a job reading it cannot be resumed",
                        nr->name),
               0;
    int same_names = a->n_input_files == b->n_input_files;
    for (size_t k = 0; same_names && k < a->n_input_files; k++)
        same_names = !strcmp(a->input_files[k].name, b->input_files[k].name);
    if (!same_names) return *what = 0, 0; /* the two lists tell (field_text) */
    for (size_t k = 0; k < a->n_input_files; k++) {
        const mch_input_file *x = &a->input_files[k], *y = &b->input_files[k];
        if (x->size_bytes != y->size_bytes)
            return snprintf(what, len,
                            "input file '%.200s' changed: %llu bytes when the job started, %llu "
                            "now",
                            x->name, (unsigned long long)x->size_bytes,
                            (unsigned long long)y->size_bytes),
                   0;
        if (x->xxh3 != y->xxh3)
            return snprintf(what, len,
                            "input file '%.200s' changed: the same size (%llu bytes) but other "
                            "contents (xxh3 %016llx when the job started, %016llx now)",
                            x->name, (unsigned long long)x->size_bytes, (unsigned long long)x->xxh3,
                            (unsigned long long)y->xxh3),
                   0;
    }
    return 1;
}

static int field_equal(const mch_job_spec *a, const mch_job_spec *b, int i)
{
    const void *x = (const char *)a + diff_fields[i].off, *y = (const char *)b + diff_fields[i].off;
    switch (diff_fields[i].kind) {
    case K_STR:
    case K_METHOD:
        return !strcmp(msg_s(*(char *const *)x), msg_s(*(char *const *)y));
    case K_U32:
        return *(const uint32_t *)x == *(const uint32_t *)y;
    case K_INT:
        return *(const int *)x == *(const int *)y;
    case K_U64:
        return *(const uint64_t *)x == *(const uint64_t *)y;
    case K_DBL:
        return *(const double *)x == *(const double *)y;
    case K_HEADS:
        return a->n_head_pos == b->n_head_pos &&
               (!a->n_head_pos ||
                !memcmp(a->head_pos, b->head_pos, 2 * a->n_head_pos * sizeof *a->head_pos));
    case K_LIST:
        return strv_equal(a->sweeps, a->n_sweeps, b->sweeps, b->n_sweeps);
    case K_QLIST:
        return strv_equal(a->cache_hooks, a->n_cache_hooks, b->cache_hooks, b->n_cache_hooks);
    case K_FILES: {
        char what[sizeof((mch_spec_diff *)0)->what];
        return files_equal(a, b, what, sizeof what);
    }
    }
    return 0;
}

int mch_job_spec_diff(const mch_job_spec *a, const mch_job_spec *b, mch_spec_scope scope,
                      mch_spec_diff *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < (int)(sizeof diff_fields / sizeof diff_fields[0]); i++) {
        int seed_counts = diff_fields[i].off == offsetof(mch_job_spec, seed) && a->bootstrap;
        if ((scope == MCH_SPEC_SAME_MAP && diff_fields[i].job_only && !seed_counts) ||
            field_equal(a, b, i))
            continue;
        d->field = diff_fields[i].name;
        d->plural = diff_fields[i].plural;
        field_text(a, i, d->a, sizeof d->a);
        field_text(b, i, d->b, sizeof d->b);
        if (diff_fields[i].kind == K_FILES) files_equal(a, b, d->what, sizeof d->what);
        return 1;
    }
    return 0;
}
