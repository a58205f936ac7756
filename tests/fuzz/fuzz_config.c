/* libFuzzer target for the config.json decoder (mch_config_parse). A config that parses must keep
 * the invariant of config.c: C = NH * HS, every size > 0, eps in (0, 1), known enums. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fuzz_check.h"

int mch_fuzz_status;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mch_config cfg;
    mch_err err = {0};
    mch_status rc = mch_config_parse(&cfg, (const char *)data, size, "fuzz/config.json", &err);
    mch_fuzz_status = rc;
    if (rc != MCH_OK) {
        fuzz_check_failure(rc, &err);
        return 0;
    }
    FUZZ_CHECK(cfg.arch == MCH_ARCH_BERT || cfg.arch == MCH_ARCH_DISTILBERT ||
               cfg.arch == MCH_ARCH_ELECTRA);
    FUZZ_CHECK(strcmp(mch_arch_name(cfg.arch), "?") != 0);
    FUZZ_CHECK(strcmp(cfg.model_type, mch_arch_name(cfg.arch)) == 0);
    FUZZ_CHECK(memchr(cfg.architecture, '\0', sizeof cfg.architecture) != NULL);
    FUZZ_CHECK(cfg.head >= MCH_HEAD_NONE && cfg.head <= MCH_HEAD_ELECTRA_SEQCLS);
    FUZZ_CHECK(cfg.act >= MCH_ACT_GELU_ERF && cfg.act <= MCH_ACT_RELU);
    FUZZ_CHECK(cfg.C > 0 && cfg.L > 0 && cfg.NH > 0 && cfg.HS > 0 && cfg.FF > 0);
    FUZZ_CHECK(cfg.E > 0 && cfg.V > 0 && cfg.max_pos > 0 && cfg.type_vocab >= 0);
    FUZZ_CHECK(cfg.C == cfg.NH * cfg.HS);
    FUZZ_CHECK(cfg.arch == MCH_ARCH_ELECTRA || cfg.E == cfg.C);
    FUZZ_CHECK(cfg.arch != MCH_ARCH_DISTILBERT || cfg.type_vocab == 0);
    FUZZ_CHECK((cfg.head == MCH_HEAD_NONE) == (cfg.num_labels == 0));
    FUZZ_CHECK(cfg.num_labels >= 0);
    FUZZ_CHECK(cfg.eps > 0.0f && cfg.eps < 1.0f);
    return 0;
}
