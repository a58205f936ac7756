/* libFuzzer target for the circuit-map decoder (mch_cmap_unpack): a .cmap from another site is
 * untrusted. A map that validates must be safe to print as circuit.json and to merge (alone),
 * and the merge must pack and validate again with the same counts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmap.h"
#include "fuzz_check.h"
#include "merge.h"

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_cmap m;
    mch_err err = {0};
    mch_status rc = mch_cmap_unpack(&m, data, size, "fuzz.cmap", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        FUZZ_CHECK(m.pair_ids == NULL && m.spec.format == NULL); /* nothing returned */
        FUZZ_CHECK(err.code == rc && err.msg[0]);
        return 0;
    }
    FILE *sink = fopen("/dev/null", "w");
    if (sink) {
        mch_cmap_write_json(&m, sink);
        fclose(sink);
    }
    mch_cmap_input in = {&m, "fuzz.cmap"};
    mch_cmap merged;
    mch_err e2 = {0};
    if (mch_cmap_merge(&in, 1, &merged, &e2) == MCH_OK) {
        uint8_t *out = NULL;
        size_t len = 0;
        mch_cmap again;
        mch_err e3 = {0};
        FUZZ_CHECK(mch_cmap_pack(&merged, &out, &len, &e3) == MCH_OK);
        FUZZ_CHECK(mch_cmap_unpack(&again, out, len, "merged", &e3) == MCH_OK);
        FUZZ_CHECK(again.pairs_total == m.pairs_total && again.pairs_used == m.pairs_used);
        mch_cmap_deinit(&again);
        mch_cmap_deinit(&merged);
        free(out);
    }
    mch_cmap_deinit(&m);
    return 0;
}
