/* One pair patched end to end (see patch_one.h). Invariant: mch_patch_one_check refuses, before
 * anything runs, every option error that `mechir patch` reports as a usage error (exit 2). */
#include "patch_one.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses "1,2,3" (at most cap ids) into out, or only counts them when out is NULL. opt names
 * the list in messages. */
static mch_status ids_parse(const char *opt, const char *s, int32_t *out, int cap, int *n,
                            mch_err *err)
{
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end && *end != ',') || *n == cap)
            return mch_fail(err, MCH_ERR_ARG,
                            "%s: expected comma-separated token ids (at most %d), bad at '%.20s'",
                            opt, cap, p);
        if (out) out[*n] = (int32_t)v;
        ++*n;
        p = *end ? end + 1 : end;
    }
    if (!*n) return mch_fail(err, MCH_ERR_ARG, "%s is empty", opt);
    return MCH_OK;
}

/* The names are the job spec's (proto/msg.h), "exact" spelt out. */
mch_status mch_method_parse(const char *s, int *method, mch_err *err)
{
    int k = mch_method_of(s);
    if (k < 0)
        return mch_fail(err, MCH_ERR_ARG, "--method takes exact, atp or atp-qk, got '%.40s'", s);
    *method = k;
    return MCH_OK;
}

const char *mch_method_name(int method)
{
    if (method == MCH_JOB_EXACT) return "exact";
    const char *name = mch_method_spec_name(method);
    return *name ? name : "unknown";
}

/* The options of the estimates (attribution patching) or of the exact engine. */
static mch_patch_opts patch_opts(const mch_patch_one_opts *o)
{
    mch_patch_opts po = {.sweeps = o->sweeps,
                         .n_heads = o->n_heads,
                         .heads = o->heads,
                         .save_patterns = o->save_patterns,
                         .min_delta = o->min_delta,
                         .naive = o->naive,
                         .scratch_bytes = (size_t)(o->scratch_mb ? o->scratch_mb : 256) << 20,
                         .pooling = o->pooling};
    return po;
}

/* Attribution patching's limits, before anything runs. */
static mch_status check_method(const mch_patch_one_opts *o, const mch_model *m, mch_err *err)
{
    const char *name = mch_method_name(o->method);
    if (o->method == MCH_JOB_EXACT)
        return o->verify_top ? mch_fail(err, MCH_ERR_ARG,
                                        "--verify-top checks estimates: it needs --method atp or "
                                        "atp-qk")
                             : MCH_OK;
    if (o->sweeps & MCH_SWEEP_HEAD_POS)
        return mch_fail(err, MCH_ERR_ARG, "--method %s does not estimate the head-pos sweep", name);
    if (o->save_patterns) return mch_fail(err, MCH_ERR_ARG, "--save-patterns needs --method exact");
    /* A family without a backward pass is refused here, on a one-token context. */
    mch_patch_opts po = patch_opts(o);
    mch_atp *a = NULL;
    mch_status rc = mch_atp_create(&a, m, &po, 1, err);
    mch_atp_free(a);
    return rc;
}

mch_status mch_patch_one_supported(const mch_patch_one_opts *o, const mch_model *m, mch_err *err)
{
    if (!m->t5) return mch_model_need_encoder(m, "activation patching", err);
    const char *what = o->method != MCH_JOB_EXACT          ? "--method atp or atp-qk"
                       : (o->sweeps & MCH_SWEEP_HEAD_POS)  ? "the head-pos sweep"
                       : (o->sweeps & MCH_SWEEP_QKV)       ? "the qkv sweep"
                       : (o->sweeps & MCH_SWEEP_PATTERN)   ? "the pattern sweep"
                       : (o->sweeps & MCH_SWEEP_RESID_MID) ? "the resid-mid sweep"
                       : o->save_patterns                  ? "--save-patterns"
                                                           : NULL;
    if (!what) return MCH_OK;
    return mch_fail(err, MCH_ERR_UNSUPPORTED,
                    "%s: a MonoT5 is patched exactly over the heads and blocks sweeps only; %s "
                    "is not supported for it",
                    m->dir, what);
}

mch_status mch_patch_one_check(const mch_patch_one_opts *o, const mch_model *m, mch_err *err)
{
    mch_status rc1 = mch_patch_one_supported(o, m, err);
    if (rc1) return rc1;
    mch_status rc0 = check_method(o, m, err);
    if (rc0) return rc0;
    int cap = m->cfg.max_tokens;
    int max_len = o->max_len ? o->max_len : cap;
    if (max_len > cap)
        return mch_fail(err, MCH_ERR_ARG,
                        "--max-len %d exceeds the model's longest input, %d tokens", max_len, cap);
    if (m->t5 && (o->token_types || o->query_ids))
        return mch_fail(err, MCH_ERR_ARG,
                        "%s: a MonoT5 takes neither --token-types nor --query-ids", m->dir);
    if (!o->ids_baseline) return MCH_OK;
    int Tb, Tp, Tt, Tq;
    mch_status rc = ids_parse("--ids-baseline", o->ids_baseline, NULL, cap, &Tb, err);
    if (!rc) rc = ids_parse("--ids-perturbed", o->ids_perturbed, NULL, cap, &Tp, err);
    Tt = Tb;
    if (!rc && o->token_types) rc = ids_parse("--token-types", o->token_types, NULL, cap, &Tt, err);
    if (!rc && o->query_ids) rc = ids_parse("--query-ids", o->query_ids, NULL, cap, &Tq, err);
    if (rc) return rc;
    if (Tb != Tp || Tt != Tb)
        return mch_fail(err, MCH_ERR_ARG,
                        "--ids-baseline has %d ids, --ids-perturbed %d, --token-types %d; they "
                        "must be equal",
                        Tb, Tp, Tt);
    if (m->cfg.head == MCH_HEAD_NONE && !o->query_ids && (!o->query || !m->tok))
        return mch_fail(err, MCH_ERR_ARG, "a bi-encoder needs --query-ids or --query");
    return MCH_OK;
}

/* The pair's ids, each array holding max_position_embeddings entries. */
typedef struct {
    int32_t *b, *p, *types, *q;
    int T, Tq;
    int aligned; /* texts of different token lengths, aligned (al) */
    mch_alignment al;
} pair_ids;

static void pair_ids_free(pair_ids *ids)
{
    free(ids->b);
    free(ids->p);
    free(ids->types);
    free(ids->q);
}

/* Texts whose tokens differ in length, aligned as given pairs are (kernels/text/align.h):
 * the shorter side padded with the filler where the documents differ. A pair that cannot be
 * aligned is an error naming why. */
static mch_status pair_aligned(pair_ids *ids, const mch_patch_one_opts *o, const mch_model *m,
                               int max_len, mch_err *err)
{
    mch_perturb_opts po = {.max_len = max_len,
                           .max_query_len = o->max_query_len,
                           .bi = !m->t5 && m->cfg.head == MCH_HEAD_NONE,
                           .monot5 = m->t5 != NULL,
                           .filler = o->filler};
    mch_given *g = NULL;
    mch_pair pr;
    mch_status rc = mch_given_create(&g, m->t5 ? m->t5->tok : m->tok, &po, 0, err);
    if (!rc)
        rc = mch_given_build(g, "", o->query ? o->query : "", "", NULL, o->baseline, o->perturbed,
                             &pr, &ids->al, err);
    if (!rc && pr.skip[0])
        rc = mch_fail(err, MCH_ERR_SHAPE, "the baseline and perturbed texts cannot be aligned: %s",
                      pr.skip);
    if (!rc) {
        ids->T = pr.T;
        ids->aligned = 1;
        memcpy(ids->b, pr.ids_baseline, (size_t)pr.T * sizeof *ids->b);
        memcpy(ids->p, pr.ids_perturbed, (size_t)pr.T * sizeof *ids->p);
        memcpy(ids->types, pr.token_types, (size_t)pr.T * sizeof *ids->types);
    }
    mch_given_free(g);
    return rc;
}

/* Whether the documents' tokens (before any cut to max_len) differ in count. */
static mch_status lengths_differ(const mch_patch_one_opts *o, const mch_tok *t, int *differ,
                                 mch_err *err)
{
    mch_ids a = {0}, b = {0};
    mch_status rc = mch_tok_tokenize(t, o->baseline, strlen(o->baseline), &a, err);
    if (!rc) rc = mch_tok_tokenize(t, o->perturbed, strlen(o->perturbed), &b, err);
    *differ = a.n != b.n;
    mch_ids_free(&a);
    mch_ids_free(&b);
    return rc;
}

/* Tokenises the texts into ids (whose arrays hold max_len entries); documents of different token
 * lengths are aligned (pair_aligned) before the pair is cut to max_len. */
static mch_status pair_from_texts(pair_ids *ids, const mch_patch_one_opts *o, const mch_model *m,
                                  int max_len, mch_err *err)
{
    int Tb = 0, Tp = 0, differ = 0;
    mch_status rc = lengths_differ(o, m->tok, &differ, err);
    if (rc) return rc;
    if (differ) return pair_aligned(ids, o, m, max_len, err);
    if (m->cfg.head != MCH_HEAD_NONE) {
        int qlen = o->max_query_len ? o->max_query_len : 64;
        int32_t *tp = calloc((size_t)max_len, sizeof *tp);
        if (!tp) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        rc = mch_tok_encode_to(m->tok, o->query, o->baseline, qlen, max_len, ids->b, ids->types,
                               &Tb, err);
        if (!rc)
            rc = mch_tok_encode_to(m->tok, o->query, o->perturbed, qlen, max_len, ids->p, tp, &Tp,
                                   err);
        if (!rc && (Tb != Tp || memcmp(ids->types, tp, (size_t)Tb * sizeof *tp)))
            rc = mch_fail(err, MCH_ERR_SHAPE,
                          "baseline and perturbed pairs have %d and %d tokens (or different "
                          "token types); patching needs aligned inputs of equal length",
                          Tb, Tp);
        free(tp);
    } else {
        rc = mch_tok_encode_to(m->tok, o->baseline, NULL, 0, max_len, ids->b, NULL, &Tb, err);
        if (!rc)
            rc = mch_tok_encode_to(m->tok, o->perturbed, NULL, 0, max_len, ids->p, NULL, &Tp, err);
        if (!rc && Tb != Tp)
            rc = mch_fail(err, MCH_ERR_SHAPE,
                          "baseline and perturbed documents have %d and %d tokens; patching "
                          "needs aligned inputs of equal length",
                          Tb, Tp);
    }
    ids->T = Tb;
    return rc;
}

/* A MonoT5's pair: the prompt of the query with each document (mch_monot5_encode); documents
 * of different token lengths are aligned (pair_aligned) before the prompt is cut to max_len. */
static mch_status pair_from_prompt(pair_ids *ids, const mch_patch_one_opts *o, const mch_model *m,
                                   int max_len, mch_err *err)
{
    mch_monot5 *t5 = m->t5;
    int differ = 0;
    mch_status rc = lengths_differ(o, t5->tok, &differ, err);
    if (rc || differ) return rc ? rc : pair_aligned(ids, o, m, max_len, err);
    if ((rc = mch_monot5_encode(t5, o->query, o->baseline, max_len, err))) return rc;
    ids->T = (int)t5->enc.n;
    memcpy(ids->b, t5->enc.ids, (size_t)ids->T * sizeof *ids->b);
    if ((rc = mch_monot5_encode(t5, o->query, o->perturbed, max_len, err))) return rc;
    if ((int)t5->enc.n != ids->T)
        return mch_fail(err, MCH_ERR_SHAPE,
                        "baseline and perturbed prompts have %d and %zu tokens; patching needs "
                        "aligned inputs of equal length",
                        ids->T, (size_t)t5->enc.n);
    memcpy(ids->p, t5->enc.ids, (size_t)ids->T * sizeof *ids->p);
    return MCH_OK;
}

/* Builds the pair's ids from the id lists or the texts; a bi-encoder's query from query_ids or
 * the query text. */
static mch_status pair_build(pair_ids *ids, const mch_patch_one_opts *o, const mch_model *m,
                             mch_err *err)
{
    int cap = m->cfg.max_tokens;
    int max_len = o->max_len ? o->max_len : cap;
    ids->b = calloc((size_t)cap, sizeof *ids->b);
    ids->p = calloc((size_t)cap, sizeof *ids->p);
    ids->types = calloc((size_t)cap, sizeof *ids->types);
    ids->q = calloc((size_t)cap, sizeof *ids->q);
    if (!ids->b || !ids->p || !ids->types || !ids->q)
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status rc = MCH_OK;
    int Tp, Tt;
    if (o->ids_baseline) { /* counts checked by mch_patch_one_check */
        rc = ids_parse("--ids-baseline", o->ids_baseline, ids->b, cap, &ids->T, err);
        if (!rc) rc = ids_parse("--ids-perturbed", o->ids_perturbed, ids->p, cap, &Tp, err);
        if (!rc && o->token_types)
            rc = ids_parse("--token-types", o->token_types, ids->types, cap, &Tt, err);
        if (!rc && o->query_ids)
            rc = ids_parse("--query-ids", o->query_ids, ids->q, cap, &ids->Tq, err);
    } else if (m->t5) {
        rc = pair_from_prompt(ids, o, m, max_len, err);
    } else if (!m->tok) {
        rc = mch_fail(err, MCH_ERR_ARG, "%s has no tokenizer; give token ids", m->dir);
    } else {
        rc = pair_from_texts(ids, o, m, max_len, err);
    }
    if (!rc && m->cfg.head == MCH_HEAD_NONE && !ids->Tq)
        rc = mch_tok_encode_to(m->tok, o->query, NULL, 0, max_len, ids->q, NULL, &ids->Tq, err);
    return rc;
}

/* ---- the result as JSON ------------------------------------------------------------------- */

static cJSON *num(double v)
{
    char buf[32];
    if (!isfinite(v)) return cJSON_CreateNull();
    snprintf(buf, sizeof buf, "%.9g", v);
    return cJSON_CreateRaw(buf);
}

/* rows x cols floats as nested arrays. */
static cJSON *matrix(const float *x, int rows, int cols)
{
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < rows; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < cols; c++) cJSON_AddItemToArray(row, num(x[(size_t)r * cols + c]));
        cJSON_AddItemToArray(a, row);
    }
    return a;
}

static cJSON *tokens(const mch_tok *v, const int32_t *ids, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const char *t = v ? mch_tok_token(v, ids[i]) : NULL;
        cJSON_AddItemToArray(a, t ? cJSON_CreateString(t) : cJSON_CreateNull());
    }
    return a;
}

static cJSON *int_array(const int32_t *x, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static void add_head_pos(cJSON *o, const mch_patch_one_opts *a, const mch_patch_result *r, int T)
{
    cJSON *hp = cJSON_AddObjectToObject(o, "head_pos");
    cJSON *hl = cJSON_AddArrayToObject(hp, "heads");
    for (int k = 0; k < a->n_heads; k++)
        cJSON_AddItemToArray(hl, cJSON_CreateIntArray(a->heads + 2 * k, 2));
    cJSON_AddItemToObject(hp, "z", matrix(r->head_pos_z, a->n_heads, T));
    cJSON_AddItemToObject(hp, "pattern", matrix(r->head_pos_pattern, a->n_heads, T));
    cJSON *hs = cJSON_AddObjectToObject(o, "head_pos_scores");
    cJSON_AddItemToObject(hs, "z", matrix(r->head_pos_z_scores, a->n_heads, T));
    cJSON_AddItemToObject(hs, "pattern", matrix(r->head_pos_pattern_scores, a->n_heads, T));
}

static void add_patterns(cJSON *o, const mch_patch_one_opts *a, const mch_patch_result *r, int T)
{
    cJSON *pt = cJSON_AddObjectToObject(o, "patterns");
    cJSON *hl = cJSON_AddArrayToObject(pt, "heads");
    cJSON *pb = cJSON_AddArrayToObject(pt, "baseline"),
          *pp = cJSON_AddArrayToObject(pt, "perturbed");
    size_t TT = (size_t)T * T;
    for (int k = 0; k < a->n_heads; k++) {
        cJSON_AddItemToArray(hl, cJSON_CreateIntArray(a->heads + 2 * k, 2));
        cJSON_AddItemToArray(pb, matrix(r->patterns_baseline + k * TT, T, T));
        cJSON_AddItemToArray(pp, matrix(r->patterns_perturbed + k * TT, T, T));
    }
}

static void add_maps(cJSON *o, const mch_config *c, const mch_patch_one_opts *a,
                     const mch_patch_result *r, int T)
{
    int L = c->L;
    if (a->sweeps & MCH_SWEEP_HEADS) {
        cJSON_AddItemToObject(o, "heads", matrix(r->heads, L, c->NH));
        cJSON_AddItemToObject(o, "heads_scores", matrix(r->heads_scores, L, c->NH));
    }
    if (a->sweeps & MCH_SWEEP_BLOCKS) {
        static const char *names[MCH_BLOCK_COUNT] = {"resid_pre", "attn_out", "mlp_out"};
        cJSON *b = cJSON_AddObjectToObject(o, "blocks"),
              *bs = cJSON_AddObjectToObject(o, "blocks_scores");
        for (int k = 0; k < MCH_BLOCK_COUNT; k++) {
            cJSON_AddItemToObject(b, names[k], matrix(r->blocks + (size_t)k * L * T, L, T));
            cJSON_AddItemToObject(bs, names[k], matrix(r->blocks_scores + (size_t)k * L * T, L, T));
        }
    }
    if (a->sweeps & MCH_SWEEP_HEAD_POS) add_head_pos(o, a, r, T);
    if (a->save_patterns) add_patterns(o, a, r, T);
    if (a->sweeps & MCH_SWEEP_QKV) {
        static const char *names[3] = {"q", "k", "v"};
        size_t LNH = (size_t)L * c->NH;
        cJSON *q = cJSON_AddObjectToObject(o, "qkv"),
              *qs = cJSON_AddObjectToObject(o, "qkv_scores");
        for (int j = 0; j < 3; j++) {
            cJSON_AddItemToObject(q, names[j], matrix(r->qkv + j * LNH, L, c->NH));
            cJSON_AddItemToObject(qs, names[j], matrix(r->qkv_scores + j * LNH, L, c->NH));
        }
    }
    if (a->sweeps & MCH_SWEEP_PATTERN) {
        cJSON_AddItemToObject(o, "pattern", matrix(r->pattern, L, c->NH));
        cJSON_AddItemToObject(o, "pattern_scores", matrix(r->pattern_scores, L, c->NH));
    }
    if (a->sweeps & MCH_SWEEP_RESID_MID) {
        cJSON_AddItemToObject(o, "resid_mid", matrix(r->resid_mid, L, T));
        cJSON_AddItemToObject(o, "resid_mid_scores", matrix(r->resid_mid_scores, L, T));
    }
}

/* The whole result: scores, tokens and ids of both inputs, then the maps unless skipped. */
static cJSON *result_json(const mch_patch_one_opts *a, const mch_model *m, const pair_ids *ids,
                          const mch_patch_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (r->skipped) cJSON_AddStringToObject(o, "skipped", r->skip_reason);
    cJSON_AddItemToObject(o, "score_baseline", num(r->score_baseline));
    cJSON_AddItemToObject(o, "score_perturbed", num(r->score_perturbed));
    const mch_tok *tok = m->t5 ? m->t5->tok : m->tok;
    cJSON_AddItemToObject(o, "tokens", tokens(tok, ids->b, ids->T));
    cJSON_AddItemToObject(o, "tokens_perturbed", tokens(tok, ids->p, ids->T));
    cJSON_AddItemToObject(o, "ids_baseline", int_array(ids->b, ids->T));
    cJSON_AddItemToObject(o, "ids_perturbed", int_array(ids->p, ids->T));
    cJSON_AddItemToObject(o, "token_types", int_array(ids->types, ids->T));
    if (ids->aligned) {
        const mch_alignment *al = &ids->al;
        int span = al->n_baseline > al->n_perturbed ? al->n_baseline : al->n_perturbed;
        cJSON *j = cJSON_AddObjectToObject(o, "alignment");
        cJSON_AddStringToObject(j, "kind", mch_align_name(al->kind));
        cJSON_AddNumberToObject(j, "position", al->position);
        cJSON_AddNumberToObject(j, "baseline_tokens", al->n_baseline);
        cJSON_AddNumberToObject(j, "perturbed_tokens", al->n_perturbed);
        cJSON_AddNumberToObject(j, "baseline_fillers", span - al->n_baseline);
        cJSON_AddNumberToObject(j, "perturbed_fillers", span - al->n_perturbed);
    }
    if (a->method != MCH_JOB_EXACT)
        cJSON_AddStringToObject(o, "method", mch_method_name(a->method));
    if (!r->skipped) add_maps(o, &m->cfg, a, r, ids->T);
    return o;
}

/* A MonoT5's maps: the encoder's heads as "heads", the decoder's self- and cross-attention
 * heads, the encoder's blocks. */
static void add_t5_maps(cJSON *o, const mch_t5_patch_result *r)
{
    if (r->enc_heads) {
        const struct {
            const char *name, *scores;
            const float *eff, *raw;
            int rows;
        } h[] = {
            {"heads", "heads_scores", r->enc_heads, r->enc_heads_scores, r->L},
            {"decoder_heads", "decoder_heads_scores", r->dec_heads, r->dec_heads_scores, r->LD},
            {"cross_heads", "cross_heads_scores", r->cross_heads, r->cross_heads_scores, r->LD}};
        for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
            cJSON_AddItemToObject(o, h[i].name, matrix(h[i].eff, h[i].rows, r->NH));
            cJSON_AddItemToObject(o, h[i].scores, matrix(h[i].raw, h[i].rows, r->NH));
        }
    }
    if (r->blocks) {
        static const char *names[MCH_T5_BLOCK_COUNT] = {"resid_pre", "attn_out", "mlp_out"};
        cJSON *b = cJSON_AddObjectToObject(o, "blocks"),
              *bs = cJSON_AddObjectToObject(o, "blocks_scores");
        size_t LT = (size_t)r->L * r->T;
        for (int k = 0; k < MCH_T5_BLOCK_COUNT; k++) {
            cJSON_AddItemToObject(b, names[k], matrix(r->blocks + k * LT, r->L, r->T));
            cJSON_AddItemToObject(bs, names[k], matrix(r->blocks_scores + k * LT, r->L, r->T));
        }
    }
}

/* A MonoT5 pair through kernels/t5_patch.h, as JSON shaped like an encoder's. */
static mch_status t5_run(const mch_patch_one_opts *o, const mch_model *m, const pair_ids *ids,
                         cJSON **out, mch_err *err)
{
    mch_t5_patch_result r;
    unsigned sweeps = ((o->sweeps & MCH_SWEEP_HEADS) ? MCH_T5_SWEEP_HEADS : 0u) |
                      ((o->sweeps & MCH_SWEEP_BLOCKS) ? MCH_T5_SWEEP_BLOCKS : 0u);
    mch_status rc = mch_t5_patch(m->t5, ids->b, ids->p, ids->T, sweeps, o->min_delta, &r, err);
    if (rc) return rc;
    mch_patch_result pr = {.skipped = r.skipped,
                           .score_baseline = r.score_baseline,
                           .score_perturbed = r.score_perturbed};
    memcpy(pr.skip_reason, r.skip_reason, sizeof pr.skip_reason);
    mch_patch_one_opts no_maps = *o;
    no_maps.sweeps = 0, no_maps.save_patterns = 0;
    if (!(*out = result_json(&no_maps, m, ids, &pr)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    else if (!r.skipped)
        add_t5_maps(*out, &r);
    mch_t5_patch_result_free(&r);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------- */

enum { N_BUFS = 16 };

/* Allocates the result's arrays for T tokens and nh heads into bufs (freed by the caller). */
static mch_status result_alloc(mch_patch_result *r, float *bufs[N_BUFS], const mch_config *c,
                               size_t T, size_t nh, mch_err *err)
{
    size_t LH = (size_t)c->L * c->NH, LT3 = 3 * (size_t)c->L * T, LT = (size_t)c->L * T;
    size_t sizes[N_BUFS] = {LH,         LH,         LT3,    LT3,    nh * T, nh * T, nh * T, nh * T,
                            nh * T * T, nh * T * T, 3 * LH, 3 * LH, LH,     LH,     LT,     LT};
    for (int i = 0; i < N_BUFS; i++)
        if (!(bufs[i] = calloc(sizes[i], sizeof(float))))
            return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    r->heads = bufs[0], r->heads_scores = bufs[1], r->blocks = bufs[2], r->blocks_scores = bufs[3];
    r->head_pos_z = bufs[4], r->head_pos_z_scores = bufs[5], r->head_pos_pattern = bufs[6];
    r->head_pos_pattern_scores = bufs[7], r->patterns_baseline = bufs[8];
    r->patterns_perturbed = bufs[9];
    r->qkv = bufs[10], r->qkv_scores = bufs[11], r->pattern = bufs[12];
    r->pattern_scores = bufs[13], r->resid_mid = bufs[14], r->resid_mid_scores = bufs[15];
    return MCH_OK;
}

/* Verified components [from, to) of v as JSON objects: name, estimate and exact score. */
static cJSON *verified_json(const mch_atp_verified *v, int from, int to)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = from; a && i < to; i++) {
        char name[64];
        mch_component_name(&v->comp[i], name, sizeof name);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "component", name);
        cJSON_AddItemToObject(o, "estimate", num(v->estimate[i]));
        cJSON_AddItemToObject(o, "exact", num(v->exact[i]));
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* Exact patching of the verify_top components of largest |estimate - baseline| and of the
 * resid_pre rows where the ids differ (with the blocks sweep), added to out. */
static mch_status verify(const mch_patch_one_opts *o, const mch_model *m,
                         const mch_patch_pair *pair, const mch_patch_result *est, cJSON *out,
                         mch_err *err)
{
    mch_patch_opts po = patch_opts(o);
    po.sweeps = MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS;
    mch_patcher *p = NULL;
    mch_atp_verified v = {0};
    mch_status rc = mch_patcher_create(&p, m, &po, pair->T, err);
    if (!rc) rc = mch_atp_verify(p, m, NULL, pair, est, o->sweeps, o->verify_top, &v, err);
    if (!rc) {
        cJSON_AddItemToObject(out, "verified", verified_json(&v, 0, v.n_top));
        cJSON_AddItemToObject(out, "verified_diff_rows", verified_json(&v, v.n_top, v.n));
    }
    mch_atp_verified_free(&v);
    mch_patcher_free(p);
    return rc;
}

/* --verify-top K within the heads and blocks of a pair of T tokens. */
static mch_status check_verify_top(const mch_patch_one_opts *o, const mch_config *c, int T,
                                   mch_err *err)
{
    long n = ((o->sweeps & MCH_SWEEP_HEADS) ? (long)c->L * c->NH : 0) +
             ((o->sweeps & MCH_SWEEP_BLOCKS) ? 3L * c->L * T : 0);
    if (o->verify_top > n)
        return mch_fail(err, MCH_ERR_ARG,
                        "--verify-top %d: the sweeps of this pair (%d tokens) have %ld components",
                        o->verify_top, T, n);
    return MCH_OK;
}

/* The maps of one pair into r: the exact engine, or estimates. */
static mch_status run_pair(const mch_patch_one_opts *o, const mch_model *m,
                           const mch_patch_pair *pair, mch_patch_result *r, mch_err *err)
{
    mch_patch_opts po = patch_opts(o);
    mch_status rc;
    if (o->method == MCH_JOB_EXACT) {
        mch_patcher *p = NULL;
        rc = mch_patcher_create(&p, m, &po, pair->T, err);
        if (!rc) rc = mch_patch_run(p, pair, r, err);
        mch_patcher_free(p);
    } else {
        mch_atp *a = NULL;
        rc = mch_atp_create(&a, m, &po, pair->T, err);
        if (!rc)
            rc = mch_atp_run(a, pair, o->method == MCH_JOB_ATP_QK ? MCH_ATP_QK : MCH_ATP_LINEAR, r,
                             err);
        mch_atp_free(a);
    }
    return rc;
}

mch_status mch_patch_one_run(const mch_patch_one_opts *o, const mch_model *m, cJSON **out,
                             mch_err *err)
{
    *out = NULL;
    pair_ids ids = {0};
    mch_patch_result r = {0};
    float *bufs[N_BUFS] = {0};
    mch_status rc = pair_build(&ids, o, m, err);
    if (m->t5) {
        if (!rc) rc = t5_run(o, m, &ids, out, err);
        pair_ids_free(&ids);
        return rc;
    }
    if (!rc) rc = check_verify_top(o, &m->cfg, ids.T, err);
    if (!rc)
        rc = result_alloc(&r, bufs, &m->cfg, (size_t)ids.T, (size_t)(o->n_heads ? o->n_heads : 1),
                          err);
    mch_patch_pair pair = {ids.T, ids.b, ids.p, ids.types, ids.Tq, ids.q};
    if (!rc) rc = run_pair(o, m, &pair, &r, err);
    if (!rc && !(*out = result_json(o, m, &ids, &r)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && o->verify_top && !r.skipped) rc = verify(o, m, &pair, &r, *out, err);
    if (rc) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    for (int i = 0; i < N_BUFS; i++) free(bufs[i]);
    pair_ids_free(&ids);
    return rc;
}
