/* `mechir merge`: argv to mch_merge_files (coordinator/merge.h). Exit 0 merged, 1 refused or
 * failed (one line on stderr), 2 usage. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "log.h"
#include "merge.h"
#include "opts.h"

static void merge_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir merge A.cmap B.cmap ... -o C.cmap\n"
            "\n"
            "Combines circuit maps of disjoint pair sets (the shards of a collection, or the\n"
            "runs of collaborating sites) exactly: counts add; means and M2 combine with Chan's\n"
            "parallel formula in double. Refuses maps that cannot be combined (different model\n"
            "sha256, architecture, vocab hash, perturbation, sweeps, heads, max_len, min_delta,\n"
            "position, filler, stemming, pooling), naming the field and both values, and maps\n"
            "that share pairs, naming how many and one example. The contributing sites are kept.\n"
            "The output is the same bytes whatever the order of the inputs.\n"
            "\n"
            "  -o, --out FILE   the merged map (written atomically)\n"
            "  -h, --help       this text\n");
}

int mch_cmd_merge(int argc, char **argv)
{
    const char *out = NULL;
    char **maps = calloc((size_t)argc + 1, sizeof *maps);
    if (!maps) {
        mch_log_error("mechir merge: out of memory");
        return 1;
    }
    const mch_opt tab[] = {{"out", 'o', MCH_OPT_STR, &out, 0, 0, NULL, 0}, {0}};
    const mch_opt *const tabs[] = {tab, NULL};
    mch_opts o = {.cmd = "merge", .tabs = tabs, .pos = maps, .max_pos = argc};
    int status = mch_opts_parse(&o, argc, argv, 1);
    if (!status && o.help) {
        merge_usage(stdout);
    } else if (!status && (!out || o.n_pos < 1)) {
        mch_log_error("mechir merge: give one or more maps and -o OUT.cmap (see --help)");
        status = 2;
    } else if (!status) {
        mch_merge_opts mo = {(const char *const *)maps, o.n_pos, out};
        mch_merge_summary s;
        mch_err err = {0};
        if (mch_merge_files(&mo, &s, &err)) {
            mch_log_error("mechir merge: %s", err.msg);
            status = 1;
        } else {
            mch_log_info("mechir merge: %d map%s, %llu pairs (%llu used), %zu site%s -> %s",
                         o.n_pos, o.n_pos == 1 ? "" : "s", (unsigned long long)s.pairs_total,
                         (unsigned long long)s.pairs_used, s.n_sites, s.n_sites == 1 ? "" : "s",
                         out);
        }
    }
    free(maps);
    return status;
}
