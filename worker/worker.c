/* A rank's work (see worker.h). Result arrays are allocated per pair and freed after the unit's
 * result was sent or journaled; the patcher itself allocates nothing per pair. A job of method
 * atp or atp-qk estimates the heads and blocks sweeps (kernels/atp.h) instead of patching them,
 * into the same result arrays; its patcher, made only for --select's first pass, computes
 * scores alone. */
#include "worker.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act_store.h"
#include "atp.h"
#include "atp_verify.h"
#include "patch.h"
#include "perturb.h"
#include "progress.h"
#include "t5_patch.h"

struct mch_worker {
    const mch_job_spec *spec;
    unsigned sweeps;
    int rank;
    mch_model *m;
    mch_patcher *p; /* exact patching, or --select's scores of an atp job (NULL: no-op sweep) */
    mch_atp *atp;   /* method atp or atp-qk with a sweep */
    mch_atp_method atp_method;
    int *heads, n_heads;
    mch_store_writer *store;
    mch_hook_point *cache;
    size_t n_cache;
    mch_t5_hook_point *t5_cache; /* a MonoT5's --cache points */
    size_t n_t5_cache;
};

void mch_worker_free(mch_worker *w)
{
    if (!w) return;
    mch_store_writer_close(w->store);
    mch_patcher_free(w->p);
    mch_atp_free(w->atp);
    mch_model_close(w->m);
    free(w->heads);
    free(w->cache);
    free(w->t5_cache);
    free(w);
}

/* The sign of the score change patched: the spec's direction times the axiom's expectation. */
static int axiom_direction(const mch_job_spec *spec)
{
    mch_perturb_kind k = MCH_PERTURB_TFC1;
    int d = mch_direction_parse(spec->direction);
    if (spec->perturbation) mch_perturb_parse(spec->perturbation, &k);
    return d < -1 ? 0 : d * mch_perturb_axiom_sign(k);
}

/* The rank's activation store (--cache) in out_dir/cache. */
static mch_status open_store(mch_worker *w, const char *out_dir, int rank, int attempt,
                             mch_err *err)
{
    const mch_job_spec *spec = w->spec;
    mch_store_dtype dt = MCH_STORE_F32;
    if (spec->cache_dtype && *spec->cache_dtype && !mch_store_dtype_parse(spec->cache_dtype, &dt))
        return mch_fail(err, MCH_ERR_ARG, "unknown cache dtype '%s'", spec->cache_dtype);
    char tag[64];
    snprintf(tag, sizeof tag, "rank-%d-a%d", rank, attempt);
    return mch_store_writer_open(&w->store, out_dir, tag, dt, 3, err);
}

mch_status mch_worker_create(mch_worker **out, const mch_job_spec *spec, const char *out_dir,
                             int rank, int attempt, int threads, int scratch_mb, mch_err *err)
{
    mch_worker *w = calloc(1, sizeof *w);
    if (!w) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    w->spec = spec;
    w->rank = rank;
    w->sweeps = mch_sweeps_bits(spec->sweeps, spec->n_sweeps);
    if (threads > 0) openblas_set_num_threads(threads);
    mch_status rc = MCH_OK;
    int scoring = spec->select && *spec->select;          /* the first pass needs the model */
    if (!w->sweeps && !spec->n_cache_hooks && !scoring) { /* the no-op sweep: no model needed */
        *out = w;
        return MCH_OK;
    }
    if ((rc = mch_model_open(&w->m, spec->model_path, err))) goto fail;
    w->n_heads = (int)spec->n_head_pos;
    if (!(w->heads = malloc((2 * spec->n_head_pos + 1) * sizeof *w->heads))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < 2 * spec->n_head_pos; i++) w->heads[i] = (int)spec->head_pos[i];
    if (w->m->t5) { /* kernels/t5_patch.h patches it; the plan refused what it cannot do */
        if (mch_method_of(spec->method) != MCH_JOB_EXACT || (w->sweeps & MCH_SWEEP_HEAD_POS)) {
            rc = mch_fail(err, MCH_ERR_UNSUPPORTED,
                          "a MonoT5 job takes exact patching of the heads and blocks sweeps only");
            goto fail;
        }
        rc = mch_t5_hooks_expand(w->m->cfg.L, w->m->cfg.LD, spec->cache_hooks, spec->n_cache_hooks,
                                 &w->t5_cache, &w->n_t5_cache, err);
        if (!rc && w->n_t5_cache) rc = open_store(w, out_dir, rank, attempt, err);
        if (rc) goto fail;
        *out = w;
        return MCH_OK;
    }
    rc = mch_hooks_expand(spec->cache_hooks, spec->n_cache_hooks, w->m->cfg.L, &w->cache,
                          &w->n_cache, err);
    if (!rc) rc = mch_hooks_check_cacheable(w->cache, w->n_cache, err);
    if (rc) goto fail;
    int patterns = 0, derived = 0;
    for (size_t i = 0; i < w->n_cache; i++) {
        mch_site s = w->cache[i].site;
        patterns |= s == MCH_SITE_PATTERN;
        derived |= s == MCH_SITE_RESID_POST || s >= MCH_SITE_ATTN_SCORES;
    }
    mch_patch_opts po = {w->sweeps,
                         w->n_heads,
                         w->heads,
                         0,
                         spec->min_delta,
                         0,
                         (size_t)(scratch_mb > 0 ? scratch_mb : 256) << 20,
                         spec->pooling && !strcmp(spec->pooling, "mean") ? MCH_POOL_MEAN
                                                                         : MCH_POOL_CLS,
                         patterns,
                         axiom_direction(spec),
                         derived};
    int method = mch_method_of(spec->method);
    if (method != MCH_JOB_EXACT && w->n_cache) { /* the plan and the spec check refuse it too */
        rc = mch_fail(err, MCH_ERR_ARG, "--cache needs --method exact, not %s", spec->method);
        goto fail;
    }
    if (method != MCH_JOB_EXACT && w->sweeps) {
        mch_err aerr = {0};
        w->atp_method = method == MCH_JOB_ATP_QK ? MCH_ATP_QK : MCH_ATP_LINEAR;
        if ((rc = mch_atp_create(&w->atp, w->m, &po, (int)spec->max_len, &aerr))) {
            mch_fail(err, rc, "--method %s: %s", spec->method, aerr.msg);
            goto fail;
        }
        /* the patcher verifies estimates, or only scores (--select's first pass) */
        po.sweeps = spec->verify_top ? MCH_SWEEP_HEADS | MCH_SWEEP_BLOCKS : 0;
    }
    if ((!w->atp || scoring || spec->verify_top) &&
        (rc = mch_patcher_create(&w->p, w->m, &po, (int)spec->max_len, err)))
        goto fail;
    if (w->n_cache && (rc = open_store(w, out_dir, rank, attempt, err))) goto fail;
    *out = w;
    return MCH_OK;
fail:
    mch_worker_free(w);
    return rc;
}

static float *dup_floats(const float *x, size_t n, int *oom)
{
    if (!n) return NULL;
    float *y = malloc(n * sizeof *y);
    if (!y) {
        *oom = 1;
        return NULL;
    }
    memcpy(y, x, n * sizeof *y);
    return y;
}

static mch_status cache_pair(mch_worker *w, uint64_t pair_id, mch_err *err)
{
    const mch_config *c = &w->m->cfg;
    int T = mch_patcher_tokens(w->p);
    for (size_t i = 0; i < w->n_cache; i++) {
        const mch_hook_point *cp = &w->cache[i];
        int64_t shape[3];
        int nd = mch_site_shape(c, cp->site, T, shape);
        for (int run = 0; run < 2; run++) {
            const float *a = mch_patcher_activation(w->p, run, cp->site, cp->layer);
            if (!a) return mch_fail(err, MCH_ERR_ARG, "hook '%s' cannot be cached", cp->name);
            mch_status rc = mch_store_put(w->store, pair_id, cp->name, run, nd, shape, a, err);
            if (rc) return rc;
        }
    }
    return MCH_OK;
}

/* Copies the effects of the sweeps that ran into r (NULL where a sweep did not run): nh heads
 * (L * NH), nb blocks (3 * L * T), nk head-pos (K * T), nm resid-mid (L * T). */
static int keep_maps(const mch_worker *w, const mch_patch_result *res, size_t nh, size_t nb,
                     size_t nk, size_t nm, mch_pair_result *r)
{
    int oom = 0;
    if (w->sweeps & MCH_SWEEP_QKV) {
        r->n_qkv = 3 * nh;
        r->qkv = dup_floats(res->qkv, 3 * nh, &oom);
        r->qkv_scores = dup_floats(res->qkv_scores, 3 * nh, &oom);
    }
    if (w->sweeps & MCH_SWEEP_PATTERN) {
        r->n_pattern = nh;
        r->pattern = dup_floats(res->pattern, nh, &oom);
        r->pattern_scores = dup_floats(res->pattern_scores, nh, &oom);
    }
    if (w->sweeps & MCH_SWEEP_RESID_MID) {
        r->n_resid_mid = nm;
        r->resid_mid = dup_floats(res->resid_mid, nm, &oom);
        r->resid_mid_scores = dup_floats(res->resid_mid_scores, nm, &oom);
    }
    if (w->sweeps & MCH_SWEEP_HEADS) {
        r->n_heads = nh;
        r->heads = dup_floats(res->heads, nh, &oom);
        r->heads_scores = dup_floats(res->heads_scores, nh, &oom);
    }
    if (w->sweeps & MCH_SWEEP_BLOCKS) {
        r->n_blocks = nb;
        r->blocks = dup_floats(res->blocks, nb, &oom);
        r->blocks_scores = dup_floats(res->blocks_scores, nb, &oom);
    }
    if (w->sweeps & MCH_SWEEP_HEAD_POS) {
        r->n_head_pos_z = r->n_head_pos_pattern = nk;
        r->head_pos_z = dup_floats(res->head_pos_z, nk, &oom);
        r->head_pos_z_scores = dup_floats(res->head_pos_z_scores, nk, &oom);
        r->head_pos_pattern = dup_floats(res->head_pos_pattern, nk, &oom);
        r->head_pos_pattern_scores = dup_floats(res->head_pos_pattern_scores, nk, &oom);
    }
    return oom;
}

/* Exact patching of the pair's verify_top largest estimates and diff rows (atp_verify.h) into
 * r; a failure fails the pair (r->error), as a failed estimate would. */
static mch_status keep_verified(mch_worker *w, const mch_patch_pair *pair,
                                const mch_patch_result *est, mch_pair_result *r, mch_err *err)
{
    mch_atp_verified v = {0};
    mch_err perr = {0};
    if (mch_atp_verify(w->p, w->m, w->atp, pair, est, w->sweeps, (int)w->spec->verify_top, &v,
                       &perr)) {
        uint64_t index = r->pair.index, id = r->pair.pair_id; /* a failed pair has no maps */
        mch_pair_result_deinit(r);
        r->pair.index = index, r->pair.pair_id = id;
        return (r->error = strdup(perr.msg)) ? MCH_OK
                                             : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    size_t n = (size_t)v.n;
    r->n_verified = n, r->verified_top = (size_t)v.n_top;
    r->verified_comp = malloc((3 * n + 1) * sizeof *r->verified_comp);
    int oom = !r->verified_comp;
    for (size_t i = 0; !oom && i < n; i++) {
        r->verified_comp[3 * i] = v.comp[i].block < 0 ? -1 : v.comp[i].block;
        r->verified_comp[3 * i + 1] = v.comp[i].layer;
        r->verified_comp[3 * i + 2] = v.comp[i].index;
    }
    r->verified_estimate = dup_floats(v.estimate, n, &oom);
    r->verified_exact = dup_floats(v.exact, n, &oom);
    mch_atp_verified_free(&v);
    return oom ? mch_fail(err, MCH_ERR_NOMEM, "out of memory") : MCH_OK;
}

/* A MonoT5 full run's hook: stores the --cache points of one run of one pair. */
typedef struct {
    mch_worker *w;
    uint64_t pair_id;
    int run;
    mch_status rc;
    mch_err *err;
} t5_watch;

static void t5_watch_fn(void *ctx, mch_t5_site site, int layer, float *act, int rows, int cols)
{
    t5_watch *x = ctx;
    const mch_worker *w = x->w;
    for (size_t i = 0; i < w->n_t5_cache && !x->rc; i++) {
        const mch_t5_hook_point *cp = &w->t5_cache[i];
        if (cp->site != site || cp->layer != layer) continue;
        int z = site == MCH_T5_ENC_Z || site == MCH_T5_DEC_Z || site == MCH_T5_DEC_CROSS_Z;
        int64_t shape[3] = {rows, cols, 0}; /* hook_z as TransformerLens: (pos, head, d_head) */
        if (z) shape[1] = w->m->cfg.NH, shape[2] = cols / w->m->cfg.NH;
        x->rc =
            mch_store_put(w->store, x->pair_id, cp->name, x->run, z ? 3 : 2, shape, act, x->err);
    }
}

/* run_pair for a MonoT5 (kernels/t5_patch.h): heads are (L + 2 LD, NH), the encoder's then the
 * decoder's self- and cross-attention heads; blocks (3, L, T) over the encoder. */
static mch_status run_t5_pair(mch_worker *w, const mch_pair_input *in, int score_only,
                              mch_pair_result *r, mch_err *err)
{
    mch_monot5 *t5 = w->m->t5;
    int T = (int)in->T;
    mch_err perr = {0};
    mch_status rc;
    mch_t5_patch_result res = {0};
    t5_watch watch[2] = {{w, in->pair_id, 0, MCH_OK, err}, {w, in->pair_id, 1, MCH_OK, err}};
    mch_t5_hooks hk[2] = {{t5_watch_fn, &watch[0]}, {t5_watch_fn, &watch[1]}};
    if (score_only) {
        mch_monot5_result rb = {0}, rp = {0};
        rc = mch_monot5_score_ids(t5, in->ids_baseline, T, NULL, &rb, &perr);
        if (!rc) rc = mch_monot5_score_ids(t5, in->ids_perturbed, T, NULL, &rp, &perr);
        res.score_baseline = rb.score, res.score_perturbed = rp.score;
    } else {
        mch_t5_patch_opts o = {w->sweeps & (MCH_T5_SWEEP_HEADS | MCH_T5_SWEEP_BLOCKS),
                               w->spec->min_delta,
                               axiom_direction(w->spec),
                               {w->store ? &hk[0] : NULL, w->store ? &hk[1] : NULL}};
        rc = mch_t5_patch_ex(t5, in->ids_baseline, in->ids_perturbed, T, &o, &res, &perr);
    }
    for (int i = 0; i < 2; i++)
        if (watch[i].rc) { /* the cache could not be written: the job fails */
            mch_t5_patch_result_free(&res);
            return watch[i].rc;
        }
    int oom = 0;
    if (!rc && (!isfinite(res.score_baseline) || !isfinite(res.score_perturbed)))
        rc = mch_fail(&perr, MCH_ERR_SHAPE, "non-finite score (baseline %g, perturbed %g)",
                      (double)res.score_baseline, (double)res.score_perturbed);
    if (rc) { /* this pair failed; the unit goes on */
        oom = !(r->error = strdup(perr.msg));
    } else {
        r->score_baseline = res.score_baseline;
        r->score_perturbed = res.score_perturbed;
        size_t L = (size_t)res.L, LD = (size_t)res.LD, NH = (size_t)res.NH;
        if (res.skipped) {
            oom = !(r->skip_reason = strdup(res.skip_reason));
        } else if (res.enc_heads) {
            r->n_heads = (L + 2 * LD) * NH;
            r->heads = malloc(r->n_heads * sizeof *r->heads);
            r->heads_scores = malloc(r->n_heads * sizeof *r->heads_scores);
            oom = !r->heads || !r->heads_scores;
            const float *part[2][3] = {
                {res.enc_heads, res.dec_heads, res.cross_heads},
                {res.enc_heads_scores, res.dec_heads_scores, res.cross_heads_scores}};
            size_t n[3] = {L * NH, LD * NH, LD * NH};
            for (int k = 0, off = 0; !oom && k < 3; off += (int)n[k], k++) {
                memcpy(r->heads + off, part[0][k], n[k] * sizeof *r->heads);
                memcpy(r->heads_scores + off, part[1][k], n[k] * sizeof *r->heads_scores);
            }
        }
        if (!oom && !res.skipped && res.blocks) {
            r->n_blocks = MCH_T5_BLOCK_COUNT * L * (size_t)T;
            r->blocks = dup_floats(res.blocks, r->n_blocks, &oom);
            r->blocks_scores = dup_floats(res.blocks_scores, r->n_blocks, &oom);
        }
    }
    mch_t5_patch_result_free(&res);
    return oom ? mch_fail(err, MCH_ERR_NOMEM, "out of memory") : MCH_OK;
}

/* Patches one pair into r (zeroed by the caller; arrays allocated here); in a score unit only
 * both scores (no sweep, no skip, no cache). */
static mch_status run_pair(mch_worker *w, const mch_pair_input *in, int score_only,
                           mch_pair_result *r, mch_err *err)
{
    r->pair.index = in->index;
    r->pair.pair_id = in->pair_id;
    if (w->m && w->m->t5) {
        if (in->T < 1 || in->T > w->spec->max_len) {
            r->error = strdup("pair arrays of inconsistent lengths");
            return r->error ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        }
        return run_t5_pair(w, in, score_only, r, err);
    }
    if (!w->p && !w->atp) return MCH_OK; /* no-op sweep */
    const mch_config *c = &w->m->cfg;
    size_t T = in->T, K = (size_t)w->n_heads;
    if (T < 1 || T > w->spec->max_len) {
        r->error = strdup("pair arrays of inconsistent lengths");
        return r->error ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    size_t nh = (size_t)c->L * c->NH, nb = 3 * (size_t)c->L * T, nk = K * T, nm = (size_t)c->L * T;
    /* heads, blocks, head-pos z and pattern, qkv (3 nh), pattern (nh), resid-mid: effects and
     * scores of each */
    float *buf = calloc(2 * (nh + nb + 2 * nk + 4 * nh + nm) + 1, sizeof *buf);
    if (!buf) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_patch_result res = {0};
    res.heads = buf, res.heads_scores = buf + nh;
    res.blocks = buf + 2 * nh, res.blocks_scores = buf + 2 * nh + nb;
    float *hp = buf + 2 * (nh + nb);
    res.head_pos_z = hp, res.head_pos_z_scores = hp + nk;
    res.head_pos_pattern = hp + 2 * nk, res.head_pos_pattern_scores = hp + 3 * nk;
    float *fi = hp + 4 * nk;
    res.qkv = fi, res.qkv_scores = fi + 3 * nh;
    res.pattern = fi + 6 * nh, res.pattern_scores = fi + 7 * nh;
    res.resid_mid = fi + 8 * nh, res.resid_mid_scores = fi + 8 * nh + nm;
    mch_patch_pair pair = {(int)T,          in->ids_baseline, in->ids_perturbed,
                           in->token_types, (int)in->Tq,      in->Tq ? in->query_ids : NULL};
    mch_err perr = {0};
    mch_status rc = score_only ? mch_patch_scores(w->p, &pair, &res, &perr)
                    : w->atp   ? mch_atp_run(w->atp, &pair, w->atp_method, &res, &perr)
                               : mch_patch_run(w->p, &pair, &res, &perr);
    int oom = 0;
    if (!rc && (!isfinite(res.score_baseline) || !isfinite(res.score_perturbed))) {
        /* The coordinator refuses a non-finite score; the pair fails instead of the job. */
        rc = mch_fail(&perr, MCH_ERR_SHAPE, "non-finite score (baseline %g, perturbed %g)",
                      res.score_baseline, res.score_perturbed);
    }
    if (rc) { /* this pair failed; the unit goes on */
        rc = MCH_OK;
        oom = !(r->error = strdup(perr.msg));
    } else if (score_only) {
        r->score_baseline = res.score_baseline;
        r->score_perturbed = res.score_perturbed;
    } else {
        r->score_baseline = res.score_baseline;
        r->score_perturbed = res.score_perturbed;
        if (res.skipped)
            oom = !(r->skip_reason = strdup(res.skip_reason));
        else
            oom = keep_maps(w, &res, nh, nb, nk, nm, r);
        rc = w->store ? cache_pair(w, in->pair_id, err) : MCH_OK;
        if (!rc && !oom && !res.skipped && w->atp && w->spec->verify_top)
            rc = keep_verified(w, &pair, &res, r, err);
    }
    free(buf);
    if (rc) return rc;
    return oom ? mch_fail(err, MCH_ERR_NOMEM, "out of memory") : MCH_OK;
}

mch_status mch_worker_run_unit(mch_worker *w, const mch_work_unit *u, mch_unit_result *res,
                               mch_err *err)
{
    double t0 = mch_now_s();
    memset(res, 0, sizeof *res);
    res->unit_id = u->unit_id;
    res->rank = (uint32_t)w->rank;
    if (!(res->results = calloc(u->n_pairs + 1, sizeof *res->results)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status rc = MCH_OK;
    if (u->mode == MCH_UNIT_SCORE && !w->p && !(w->m && w->m->t5))
        return mch_fail(err, MCH_ERR_PROTO,
                        "work unit %llu asks for scores in a job without "
                        "--select",
                        (unsigned long long)u->unit_id);
    for (size_t i = 0; i < u->n_pairs && !rc; i++) {
        res->n_results = i + 1;
        rc = run_pair(w, &u->pairs[i], u->mode == MCH_UNIT_SCORE, &res->results[i], err);
    }
    if (!rc && w->store) rc = mch_store_writer_sync(w->store, err);
    res->seconds = mch_now_s() - t0;
    return rc;
}
