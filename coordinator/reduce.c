/* The outputs of a run from its journal (see reduce.h). */
#include "reduce.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmap.h"
#include "fsutil.h"
#include "journal.h"
#include "jsonout.h"
#include "pairs_writer.h"
#include "pairs_out.h"
#include "perturb.h"

/* ---- pairs.jsonl -------------------------------------------------------------------------- */

static const char *const block_names[3] = {"resid_pre", "attn_out", "mlp_out"};

/* rows arrays of cols floats from x, as [[..],[..]]. */
static void float_rows(FILE *f, const float *x, size_t rows, size_t cols)
{
    putc('[', f);
    for (size_t r = 0; r < rows; r++) {
        if (r) putc(',', f);
        mch_json_float_array(f, x + r * cols, (int)cols);
    }
    putc(']', f);
}

/* The maps of a pair: effects under key, raw patched scores under key_scores. */
static void pair_maps_of(FILE *f, const mch_pair_result *r, const mch_job_spec *s, int scores)
{
    size_t T = r->pair.T, L = s->layers, NH = s->heads, K = s->n_head_pos;
    size_t LD = s->decoder_layers;
    const char *sfx = scores ? "_scores" : "";
    if (r->n_heads) { /* a MonoT5's rows L.. are its decoder's, as mechir patch writes them */
        const float *x = scores ? r->heads_scores : r->heads;
        fprintf(f, ",\"heads%s\":", sfx);
        float_rows(f, x, L, NH);
        if (LD) {
            fprintf(f, ",\"decoder_heads%s\":", sfx);
            float_rows(f, x + L * NH, LD, NH);
            fprintf(f, ",\"cross_heads%s\":", sfx);
            float_rows(f, x + (L + LD) * NH, LD, NH);
        }
    }
    if (r->n_blocks) {
        const char *const *names = block_names;
        const float *x = scores ? r->blocks_scores : r->blocks;
        fprintf(f, ",\"blocks%s\":{", sfx);
        for (size_t k = 0; k < 3; k++) {
            fprintf(f, "%s\"%s\":", k ? "," : "", names[k]);
            float_rows(f, x + k * L * T, L, T);
        }
        putc('}', f);
    }
    if (r->n_head_pos_z) {
        fprintf(f, ",\"head_pos%s\":{\"z\":", sfx);
        float_rows(f, scores ? r->head_pos_z_scores : r->head_pos_z, K, T);
        fputs(",\"pattern\":", f);
        float_rows(f, scores ? r->head_pos_pattern_scores : r->head_pos_pattern, K, T);
        putc('}', f);
    }
    if (r->n_qkv) { /* as mechir patch: {"q": (L, NH), "k": .., "v": ..} */
        const float *x = scores ? r->qkv_scores : r->qkv;
        fprintf(f, ",\"qkv%s\":{", sfx);
        for (size_t j = 0; j < 3; j++) {
            fprintf(f, "%s\"%c\":", j ? "," : "", "qkv"[j]);
            float_rows(f, x + j * L * NH, L, NH);
        }
        putc('}', f);
    }
    if (r->n_pattern) {
        fprintf(f, ",\"pattern%s\":", sfx);
        float_rows(f, scores ? r->pattern_scores : r->pattern, L, NH);
    }
    if (r->n_resid_mid) {
        fprintf(f, ",\"resid_mid%s\":", sfx);
        float_rows(f, scores ? r->resid_mid_scores : r->resid_mid, L, T);
    }
}

/* Verified components [from, to) of r as patch's JSON: name, estimate, exact. */
static void verified_of(FILE *f, const mch_pair_result *r, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        const int32_t *c = r->verified_comp + 3 * i;
        if (c[0] < 0)
            fprintf(f, "%s{\"component\":\"head %d.%d\",\"estimate\":", i > from ? "," : "",
                    (int)c[1], (int)c[2]);
        else
            fprintf(f, "%s{\"component\":\"%s %d %d\",\"estimate\":", i > from ? "," : "",
                    block_names[c[0]], (int)c[1], (int)c[2]);
        mch_json_number(f, r->verified_estimate[i]);
        fputs(",\"exact\":", f);
        mch_json_number(f, r->verified_exact[i]);
        putc('}', f);
    }
}

static void pair_maps(FILE *f, const mch_pair_result *r, const mch_job_spec *s)
{
    pair_maps_of(f, r, s, 0);
    pair_maps_of(f, r, s, 1);
    if (!r->n_verified) return;
    fputs(",\"verified\":[", f);
    verified_of(f, r, 0, r->verified_top);
    fputs("],\"verified_diff_rows\":[", f);
    verified_of(f, r, r->verified_top, r->n_verified);
    putc(']', f);
}

static void write_pair_line(FILE *f, const mch_pair_result *r, const mch_job_spec *s)
{
    const mch_pair_input *p = &r->pair;
    size_t T = p->T;
    fprintf(f, "{\"pair_id\":\"%016llx\",\"index\":%llu,\"qid\":", (unsigned long long)p->pair_id,
            (unsigned long long)p->index);
    mch_json_string(f, p->qid);
    fputs(",\"docno\":", f);
    mch_json_string(f, p->docno);
    if (p->pair_key && *p->pair_key) {
        fputs(",\"pair_key\":", f);
        mch_json_string(f, p->pair_key);
    }
    fputs(",\"term\":", f);
    mch_json_string(f, p->term);
    fprintf(f, ",\"position\":%d", p->position);
    if (p->relevance >= 0) fprintf(f, ",\"relevance\":%d", p->relevance);
    if (p->rank >= 0) fprintf(f, ",\"rank\":%d", p->rank);
    if (p->alignment && *p->alignment) {
        fputs(",\"alignment\":", f);
        mch_alignment_write_json(f, p->alignment, p->position, p->span_baseline, p->span_perturbed);
    }
    fputs(",\"score_baseline\":", f);
    mch_json_double(f, r->score_baseline);
    fputs(",\"score_perturbed\":", f);
    mch_json_double(f, r->score_perturbed);
    if (r->skip_reason) {
        fputs(",\"skipped\":", f);
        mch_json_string(f, r->skip_reason);
    }
    if (r->error) {
        fputs(",\"error\":", f);
        mch_json_string(f, r->error);
    }
    pair_maps(f, r, s);
    fputs(",\"baseline_ids\":", f);
    mch_json_int_array(f, p->ids_baseline, (int)T);
    fputs(",\"perturbed_ids\":", f);
    mch_json_int_array(f, p->ids_perturbed, (int)T);
    fputs(",\"roles\":[", f);
    for (size_t t = 0; t < T; t++)
        fprintf(f, t ? ",\"%s\"" : "\"%s\"", mch_role_name((mch_role)p->roles[t]));
    fputs("]}\n", f);
}

/* ---- the reduction ------------------------------------------------------------------------ */

static int cmp_rec(const void *a, const void *b)
{
    const mch_journal_rec *x = a, *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The spec as the circuit map records it: only what the map's numbers depend on. */
static mch_status map_spec(const mch_job_spec *spec, mch_job_spec *out, mch_err *err)
{
    mch_status rc = mch_job_spec_copy(out, spec, err);
    if (rc) return rc;
    mch_msg_strv_free(out->cache_hooks, out->n_cache_hooks);
    out->cache_hooks = NULL;
    out->n_cache_hooks = 0;
    if (!mch_msg_str(&out->inputs, "") || !mch_msg_str(&out->cache_dtype, ""))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    return MCH_OK;
}

/* Every record in pair order into the accumulator and pairs.jsonl (pf); the records must be
 * those of the expected pairs (indices, or 0..expected-1 when NULL). Each record, a pair's
 * second one too, is checked (mch_journal_load) before it is used. */
static mch_status read_records(mch_journal *j, FILE *f, FILE *pf, const mch_job_spec *spec,
                               const uint64_t *indices, uint64_t expected, mch_cmap_acc *acc,
                               mch_err *err)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint64_t next = 0;
    mch_journal_expect x = {spec, MCH_UNIT_PATCH,
                            !indices   ? expected
                            : expected ? indices[expected - 1] + 1
                                       : 0};
    mch_status rc = MCH_OK;
    for (size_t i = 0; !rc && i < j->n_recs; i++) {
        const mch_journal_rec *r = &j->recs[i];
        mch_pair_result pr;
        if ((rc = mch_journal_load(j, f, r, &x, &buf, &cap, &pr, err))) break;
        int again = i && r->index == j->recs[i - 1].index; /* a pair redone after a crash */
        uint64_t want = !indices ? next : next < expected ? indices[next] : UINT64_MAX;
        if (!again && r->index != want) {
            if (want != UINT64_MAX && r->index > want)
                rc = mch_fail(err, MCH_ERR_FORMAT, "%s: pair #%llu is missing", j->path,
                              (unsigned long long)want);
            else
                rc = mch_fail(err, MCH_ERR_FORMAT, "%s: pair #%llu was not expected", j->path,
                              (unsigned long long)r->index);
        }
        if (!rc && !again) {
            next++;
            rc = mch_cmap_acc_add(acc, &pr, err);
            if (!rc) write_pair_line(pf, &pr, spec);
        }
        mch_pair_result_deinit(&pr);
    }
    if (!rc && next != expected)
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: %llu pairs journaled, %llu expected", j->path,
                      (unsigned long long)next, (unsigned long long)expected);
    free(buf);
    return rc;
}

mch_status mch_reduce(const char *out, const mch_job_spec *spec, const uint64_t *indices,
                      uint64_t n_expected, const char *site, const char *blas,
                      mch_pairs_format pairs_format, mch_cmap *map, mch_err *err)
{
    memset(map, 0, sizeof *map);
    char *jpath = mch_path_join(out, "journal.bin");
    mch_job_spec ms = {0};
    mch_journal j = {0};
    mch_cmap_acc acc = {0};
    FILE *f = NULL;
    mch_pairs_writer *pw = NULL;
    mch_status rc = jpath ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) rc = map_spec(spec, &ms, err);
    if (!rc) rc = mch_journal_open(&j, jpath, 0, err);
    if (!rc && j.n_recs) qsort(j.recs, j.n_recs, sizeof *j.recs, cmp_rec);
    if (!rc && !(f = fopen(jpath, "rb")))
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", jpath, strerror(errno));
    if (!rc) rc = mch_pairs_writer_open(&pw, out, pairs_format, err);
    if (!rc) rc = mch_cmap_acc_init(&acc, spec, err);
    if (!rc)
        rc = read_records(&j, f, mch_pairs_writer_file(pw), spec, indices, n_expected, &acc, err);
    if (pw && rc) mch_pairs_writer_abort(pw);
    if (pw && !rc) rc = mch_pairs_writer_commit(pw, err);
    const char *sites[1] = {site ? site : ""}, *prov[1] = {blas};
    if (!rc) rc = mch_cmap_acc_finish(&acc, &ms, sites, blas ? prov : NULL, 1, map, err);
    if (f) fclose(f);
    if (j.path) mch_journal_close(&j);
    mch_cmap_acc_deinit(&acc);
    mch_job_spec_deinit(&ms);
    free(jpath);
    return rc;
}

/* ---- circuit files, run.json, top heads --------------------------------------------------- */

static void write_json(FILE *f, const void *map)
{
    mch_cmap_write_json(map, f);
}

mch_status mch_reduce_write_maps(const char *out, const mch_cmap *map, mch_err *err)
{
    char *path = mch_path_join(out, "circuit.cmap");
    uint8_t *bytes = NULL;
    size_t len = 0;
    mch_cmap check = {0};
    mch_status rc = path ? mch_cmap_pack(map, &bytes, &len, err)
                         : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) rc = mch_write_file_atomic(path, bytes, len, err);
    if (!rc) rc = mch_cmap_unpack(&check, bytes, len, path, err);
    if (!rc) rc = mch_write_file_with(out, "circuit.json", write_json, &check, err);
    mch_cmap_deinit(&check);
    free(bytes);
    free(path);
    return rc;
}

typedef struct {
    const mch_cmap *map;
    const mch_run_record *r;
} run_json_ctx;

static void run_json(FILE *f, const void *ctx)
{
    const mch_cmap *m = ((const run_json_ctx *)ctx)->map;
    const mch_run_record *r = ((const run_json_ctx *)ctx)->r;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&r->started));
    fprintf(f, "{\"format\":\"mechir-run/1\",\"software_version\":\"%s\",\"started\":\"%s\",",
            MCH_VERSION, when);
    fprintf(f, "\"seconds\":%.3f,\"ranks\":%d,\"workers\":%d,\"resumed\":%s,\"hosts\":[",
            r->seconds, r->ranks, r->ranks > 1 ? r->ranks - 1 : 1, r->resumed ? "true" : "false");
    for (int i = 0; i < r->ranks; i++) {
        if (i) putc(',', f);
        mch_json_string(f, r->hosts[i]);
    }
    fprintf(f,
            "],\"pairs\":{\"total\":%llu,\"used\":%llu,\"skipped\":%llu,\"failed\":%llu,\"this_"
            "attempt\":%llu}",
            (unsigned long long)m->pairs_total, (unsigned long long)m->pairs_used,
            (unsigned long long)m->pairs_skipped, (unsigned long long)m->pairs_failed,
            (unsigned long long)r->done);
    fprintf(
        f,
        ",\"units\":%llu,\"pairs_per_second\":%.3f,\"worker_busy_seconds\":%.3f,\"model_sha256\":",
        (unsigned long long)r->units, r->seconds > 0 ? (double)r->done / r->seconds : 0.0,
        r->busy_s);
    mch_json_string(f, r->model_sha256);
    fputs(",\"inputs\":", f);
    mch_json_string(f, r->inputs);
    fputs(",\"input_files\":[", f);
    for (size_t i = 0; i < r->n_input_files; i++) {
        const mch_input_file *in = &r->input_files[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        mch_json_string(f, in->name);
        if (in->not_regular)
            fputs(",\"regular\":false}", f);
        else
            fprintf(f, ",\"size\":%llu,\"xxh3\":\"%016llx\"}", (unsigned long long)in->size_bytes,
                    (unsigned long long)in->xxh3);
    }
    putc(']', f);
    fputs(",\"job\":", f);
    fputs(r->job ? r->job : "{}", f);
    if (r->selection) fprintf(f, ",\"selection\":%s", r->selection);
    fputs("}\n", f);
}

mch_status mch_reduce_write_run_json(const char *out, const mch_cmap *map, const mch_run_record *r,
                                     mch_err *err)
{
    run_json_ctx ctx = {map, r};
    return mch_write_file_with(out, "run.json", run_json, &ctx, err);
}

typedef struct {
    double value;
    size_t cell;
} ranked;

/* By value, largest first (NAN last); equal values by cell. */
static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    int nx = isnan(x->value), ny = isnan(y->value);
    if (nx != ny) return nx - ny;
    if (!nx && x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->cell < y->cell ? -1 : x->cell > y->cell;
}

mch_status mch_print_top_heads(const mch_cmap *map, int k, FILE *f, mch_err *err)
{
    const mch_est *h = &map->heads;
    size_t n = h->cells, NH = map->spec.heads;
    if (!n || !map->pairs_used || !h->mor.n[0]) return MCH_OK;
    ranked *order = malloc(n * sizeof *order);
    double *scratch = malloc(((size_t)h->B + 1) * sizeof *scratch);
    if (!order || !scratch) {
        free(order);
        free(scratch);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) order[i] = (ranked){mch_est_ratio(h, i, 0), i};
    qsort(order, n, sizeof *order, cmp_ranked);
    fprintf(f, "top heads by ratio of means sum(patched - baseline) / sum(perturbed - baseline)");
    if (h->B)
        fprintf(f, ", %g%% bootstrap interval (%lu replicates)", 100 * map->spec.ci_level,
                (unsigned long)h->B);
    fputs(":\n", f);
    for (size_t r = 0; r < (size_t)k && r < n; r++) {
        size_t i = order[r].cell;
        double lo, hi, sd = h->mor.n[i] > 1 ? mch_stats_std(&h->mor, i) : 0;
        static const char *const what[3] = {"head", "decoder head", "cross-attention head"};
        int layer, part = mch_spec_head_part(&map->spec, i / NH, &layer);
        fprintf(f, "  %zu. %s %d.%zu  %+.4f", r + 1, what[part], layer, i % NH, order[r].value);
        if (h->B && !mch_est_interval(h, i, map->spec.ci_level, scratch, &lo, &hi))
            fprintf(f, " [%+.4f, %+.4f]", lo, hi);
        fprintf(f, "  mean of ratios %+.4f (std %.4f, n %llu)\n", h->mor.mean[i], sd,
                (unsigned long long)h->mor.n[i]);
    }
    free(order);
    free(scratch);
    return MCH_OK;
}
