/* `mechir report`: argv to the report of one circuit map (coordinator/report.h), or its
 * circuit.json form on stdout. Exit 0 written, 1 failed (one line on stderr), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmap.h"
#include "log.h"
#include "opts.h"
#include "report.h"

static void report_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir report MAP.cmap -o DIR [--top K]\n"
            "       mechir report MAP.cmap --format json\n"
            "\n"
            "Writes into DIR:\n"
            "  heads.svg, blocks.svg, head_pos.svg  heatmaps (diverging colours centred on 0):\n"
            "      first row the ratio of means sum(patched - baseline) / sum(perturbed -\n"
            "      baseline), hover a cell for its value, bootstrap interval and n; second row\n"
            "      the mean of ratios (the mean of the pairs' effects), with std and n\n"
            "  strata.svg         the heads of each stratum, both rows\n"
            "  components.csv, components.json  every component with pairs (heads, blocks by\n"
            "      role, head-pos cells): ratio of means with its bootstrap percentile interval,\n"
            "      mean of ratios with std, n and the normal interval mean +- z std / sqrt(n) at\n"
            "      the map's level, and both sums\n"
            "  top.txt            the K components with the largest ratio of means (default 10)\n"
            "  index.html         provenance, pair counts, the heatmaps, a table per kind of\n"
            "      stratum and the top table\n"
            "--format json prints the map as circuit.json to stdout (any map, merged or not).\n"
            "\n");
    mch_report_pair_usage(f);
}

/* Writes what was asked for; @return the exit status. */
static int report(const char *map, const char *out, const char *format, int top)
{
    mch_err err = {0};
    mch_cmap m;
    if (mch_cmap_load(&m, map, &err)) {
        mch_log_error("mechir report: %s", err.msg);
        return 1;
    }
    int status = 0;
    if (format) mch_cmap_write_json(&m, stdout); /* main() checks that stdout took it */
    if (out && mch_report_write(&m, out, top, &err)) {
        mch_log_error("mechir report: %s", err.msg);
        status = 1;
    } else if (out) {
        mch_log_info("mechir report: %s/index.html, heads.svg, blocks.svg, head_pos.svg, "
                     "strata.svg, components.csv, components.json, top.txt, verified.csv",
                     out);
    }
    mch_cmap_deinit(&m);
    return status;
}

int mch_cmd_report(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strncmp(argv[i], "--pairs", 7) && (!argv[i][7] || argv[i][7] == '='))
            return mch_cmd_report_pair(argc, argv);
    const char *out = NULL, *format = NULL;
    int top = 10;
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) return 1;
    const mch_opt tab[] = {{"out", 'o', MCH_OPT_STR, &out, 0, 0, NULL, 0},
                           {"format", 0, MCH_OPT_STR, &format, 0, 0, NULL, 0},
                           {"top", 0, MCH_OPT_INT, &top, 1, 100000, NULL, 0},
                           {0}};
    const mch_opt *const tabs[] = {tab, NULL};
    mch_opts o = {.cmd = "report", .tabs = tabs, .pos = pos, .max_pos = argc};
    int status = mch_opts_parse(&o, argc, argv, 1);
    if (!status && o.help) {
        report_usage(stdout);
    } else if (!status && o.n_pos > 1) {
        mch_log_error("mechir report: one map at a time ('%s' is extra)", pos[1]);
        status = 2;
    } else if (!status && format && strcmp(format, "json")) {
        mch_log_error("mechir report: --format takes json, got '%s'", format);
        status = 2;
    } else if (!status && (!o.n_pos || (!out && !format))) {
        mch_log_error("mechir report: give a map and -o DIR or --format json (see --help)");
        status = 2;
    } else if (!status) {
        status = report(pos[0], out, format, top);
    }
    free(pos);
    return status;
}
