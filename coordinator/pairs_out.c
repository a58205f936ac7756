/* Pairs as JSONL (see pairs_out.h). */
#include "pairs_out.h"

#include "jsonout.h"

void mch_alignment_write_json(FILE *f, const char *kind, int position, int n_baseline,
                              int n_perturbed)
{
    int span = n_baseline > n_perturbed ? n_baseline : n_perturbed;
    fputs("{\"kind\":", f);
    mch_json_string(f, kind);
    fprintf(f,
            ",\"position\":%d,\"baseline_tokens\":%d,\"perturbed_tokens\":%d,"
            "\"baseline_fillers\":%d,\"perturbed_fillers\":%d}",
            position, n_baseline, n_perturbed, span - n_baseline, span - n_perturbed);
}

void mch_pair_write_json(FILE *f, const mch_pair *p, const mch_record *r, const char *perturbation,
                         const mch_alignment *al)
{
    fprintf(f, "{\"pair_id\":\"%016llx\",\"qid\":", (unsigned long long)p->pair_id);
    mch_json_string(f, r->qid);
    fputs(",\"docno\":", f);
    mch_json_string(f, r->docno);
    if (r->pair_key) {
        fputs(",\"pair_key\":", f);
        mch_json_string(f, r->pair_key);
    }
    fprintf(f, ",\"perturbation\":\"%s\",\"term\":", perturbation);
    mch_json_string(f, p->term);
    fprintf(f, ",\"position\":%d", p->position);
    if (r->relevance >= 0) fprintf(f, ",\"relevance\":%d", r->relevance);
    if (r->rank >= 0) fprintf(f, ",\"rank\":%d", r->rank);
    if (al) {
        fputs(",\"alignment\":", f);
        mch_alignment_write_json(f, mch_align_name(al->kind), al->position, al->n_baseline,
                                 al->n_perturbed);
    }
    fputs(",\"baseline_ids\":", f);
    mch_json_int_array(f, p->ids_baseline, p->T);
    fputs(",\"perturbed_ids\":", f);
    mch_json_int_array(f, p->ids_perturbed, p->T);
    fputs(",\"token_types\":", f);
    mch_json_int_array(f, p->token_types, p->T);
    if (p->query_ids) {
        fputs(",\"query_ids\":", f);
        mch_json_int_array(f, p->query_ids, p->Tq);
    }
    fputs(",\"roles\":[", f);
    for (int t = 0; t < p->T; t++) fprintf(f, t ? ",\"%s\"" : "\"%s\"", mch_role_name(p->roles[t]));
    fputs("]}\n", f);
}

mch_status mch_pairs_write(mch_pair_source *s, FILE *f, void (*on_pair)(void *user, long n),
                           void *user, long *n, mch_err *err)
{
    const char *kind = mch_pair_source_perturb_name(s);
    *n = 0;
    for (;;) {
        const mch_pair *p;
        const mch_record *r;
        mch_status rc = mch_pair_source_next(s, &p, &r, err);
        if (rc || !p) return rc;
        mch_pair_write_json(f, p, r, kind, mch_pair_source_alignment(s));
        ++*n;
        if (on_pair) on_pair(user, *n);
    }
}
