/* libFuzzer target for the TSV pair reader (mch_input_open_tsv, coordinator/input_tsv.c): the
 * first byte picks the options (fuzz_input.h), the rest is the file. Every record and the skip
 * report are checked as fuzz_input.h says. */
#include "fuzz_input.h"

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input_one_file(data, size, "pairs.tsv", mch_input_open_tsv);
    return 0;
}
