/* libFuzzer target for the job spec decoder (mch_job_spec_unpack, proto/msg_spec.c): the spec a
 * journal's header, a work unit's rank and a map's provenance carry. A spec that unpacks must
 * keep the rules of unpacking (layers and heads 1..1024, known sweeps, heads inside the model,
 * bootstrap and CI level, finite min_delta, known direction and selection), copy and pack to
 * something equal to itself by the one spec comparison (mch_job_spec_diff, as resume and merge
 * use it), and pack to the same bytes twice. */
#include <math.h>

#include "fuzz_check.h"
#include "msg.h"

int mch_fuzz_status;

static void check_same(const mch_job_spec *a, const mch_job_spec *b)
{
    mch_spec_diff d;
    FUZZ_CHECK(mch_job_spec_diff(a, b, MCH_SPEC_SAME_JOB, &d) == 0);
    FUZZ_CHECK(mch_job_spec_diff(a, b, MCH_SPEC_SAME_MAP, &d) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_job_spec s;
    mch_err err = {0};
    mch_status rc = mch_job_spec_unpack(&s, data, size, "fuzz spec", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        FUZZ_CHECK(strncmp(err.msg, "fuzz spec: ", 11) == 0);
        return 0;
    }
    FUZZ_CHECK(s.layers >= 1 && s.layers <= 1024 && s.heads >= 1 && s.heads <= 1024);
    FUZZ_CHECK(mch_heads_outside(s.head_pos, s.n_head_pos, s.layers, s.heads) == 0);
    for (size_t i = 0; i < s.n_sweeps; i++) {
        FUZZ_CHECK(s.sweeps[i] != NULL);
        unsigned bits;
        mch_err e = {0};
        FUZZ_CHECK(mch_sweeps_parse(s.sweeps[i], &bits, &e) == MCH_OK);
    }
    for (size_t i = 0; i < s.n_cache_hooks; i++) FUZZ_CHECK(s.cache_hooks[i] != NULL);
    FUZZ_CHECK(s.bootstrap <= MCH_BOOTSTRAP_MAX);
    FUZZ_CHECK(!s.bootstrap || (s.ci_level > 0 && s.ci_level < 1));
    FUZZ_CHECK(isfinite(s.min_delta) && s.min_delta >= 0);
    FUZZ_CHECK(mch_direction_parse(s.direction) >= -1);
    FUZZ_CHECK(s.select && (!*s.select || (!strcmp(s.select, "top-delta") && s.select_k > 0)));
    char *const strs[] = {
        s.format,       s.model_path,   s.model_sha256,    s.vocab_hash, s.arch,
        s.architecture, s.perturbation, s.position,        s.filler,     s.pooling,
        s.cache_dtype,  s.inputs,       s.software_version};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) FUZZ_CHECK(strs[i] != NULL);

    mch_job_spec copy;
    FUZZ_CHECK(mch_job_spec_copy(&copy, &s, &err) == MCH_OK);
    check_same(&s, &copy);
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    mch_job_spec again;
    FUZZ_CHECK(mch_job_spec_pack(&s, &b1, &n1, &err) == MCH_OK);
    FUZZ_CHECK(mch_job_spec_unpack(&again, b1, n1, "packed", &err) == MCH_OK);
    check_same(&s, &again);
    FUZZ_CHECK(mch_job_spec_pack(&again, &b2, &n2, &err) == MCH_OK);
    FUZZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    mch_job_spec_deinit(&again);
    mch_job_spec_deinit(&copy);
    mch_job_spec_deinit(&s);
    return 0;
}
