/* `mechir cache`: lists, extracts (.npy) and verifies the activation cache a run left under
 * OUT/cache (worker/act_store.h). Reads only; a damaged chunk is reported with its file and
 * offset. (Codec measurements: bench/bench_cache_codec.) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act_store.h"
#include "cli.h"
#include "hooks.h"
#include "log.h"
#include "opts.h"
#include "npy.h"

static void cache_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir cache ls OUT\n"
            "       mechir cache get OUT --pair ID --hook NAME [--run baseline|perturbed] -o FILE\n"
            "       mechir cache verify OUT\n"
            "\n"
            "Reads the activation cache of a run (OUT/cache/*.idx and *.bin, see docs/CACHE.md).\n"
            "\n"
            "  ls      one line per entry: pair id, hook, run, shape, dtype, stored bytes,\n"
            "          file:offset; then a total line (entries, raw MB, stored MB, ratio)\n"
            "  get     writes one activation as a NumPy .npy (float32, C order)\n"
            "            --pair ID    16 hex digits, as ls prints it (0x allowed)\n"
            "            --hook NAME  TransformerLens name, e.g. blocks.3.attn.hook_pattern\n"
            "            --run R      baseline (default) or perturbed\n"
            "            -o FILE      the .npy to write (atomically)\n"
            "  verify  reads and checks every chunk; prints each damaged one (file:offset)\n"
            "\n"
            "Exit status: 0 ok, 1 error (one line on stderr), 2 usage error.\n");
}

static int parse_pair(const char *s, uint64_t *out)
{
    if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2)) s += 2;
    size_t n = strlen(s);
    if (n < 1 || n > 16) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void shape_text(char *buf, size_t cap, const mch_store_entry *e)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < e->ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, d ? ",%lld" : "%lld", (long long)e->shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Opens OUT's cache or prints why not. */
static mch_store *open_store(const char *out_dir)
{
    mch_err err = {0};
    mch_store *s = NULL;
    if (mch_store_open(&s, out_dir, &err)) mch_log_error("mechir cache: %s", err.msg);
    return s;
}

static int cmd_ls(const char *out_dir)
{
    mch_store *s = open_store(out_dir);
    if (!s) return 1;
    size_t n = mch_store_count(s);
    int w = 4;
    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(mch_store_entry_at(s, i)->hook);
        if (len > w) w = len;
    }
    uint64_t raw = 0, stored = 0;
    for (size_t i = 0; i < n; i++) {
        const mch_store_entry *e = mch_store_entry_at(s, i);
        char sh[128];
        shape_text(sh, sizeof sh, e);
        printf("%016llx  %-*s  %-9s  %-16s  %-4s  %10llu  %s:%llu\n",
               (unsigned long long)e->pair_id, w, e->hook, mch_store_run_name(e->run), sh,
               mch_store_dtype_name(e->dtype), (unsigned long long)e->stored_bytes,
               base_name(mch_store_file_name(s, e->file)), (unsigned long long)e->offset);
        raw += e->raw_bytes;
        stored += e->stored_bytes;
    }
    printf("total: %zu entries, %.3f MB raw, %.3f MB stored, ratio %.2f\n", n, (double)raw / 1e6,
           (double)stored / 1e6, stored ? (double)raw / (double)stored : 0.0);
    mch_store_close(s);
    return 0;
}

static int cmd_get(const char *out_dir, const char *pair_s, const char *hook, const char *run_s,
                   const char *out)
{
    uint64_t pair;
    if (parse_pair(pair_s, &pair)) {
        mch_log_error("mechir cache get: --pair needs 16 hex digits, got '%s'", pair_s);
        return 2;
    }
    int run = !run_s || !strcmp(run_s, "baseline") ? MCH_RUN_BASELINE
              : !strcmp(run_s, "perturbed")        ? MCH_RUN_PERTURBED
                                                   : -1;
    if (run < 0) {
        mch_log_error("mechir cache get: --run is baseline or perturbed, got '%s'", run_s);
        return 2;
    }
    mch_store *s = open_store(out_dir);
    if (!s) return 1;
    const mch_store_entry *e = mch_store_find(s, pair, hook, run);
    if (!e) {
        /* A hook no entry has: a typo (name the stored hook nearest to it) or one the run did
         * not cache. */
        const char *near = NULL;
        int best = 1 << 30;
        for (size_t i = 0; i < mch_store_count(s) && best; i++) {
            const char *h = mch_store_entry_at(s, i)->hook;
            int d = mch_edit_distance(hook, h);
            if (d < best) best = d, near = h;
        }
        mch_site site;
        int layer;
        mch_err perr = {0};
        int valid = !mch_hook_parse(hook, 1 << 20, &site, &layer, &perr);
        if (near && best && !valid)
            mch_log_error("mechir cache get: unknown hook '%s' (did you mean '%s'?)", hook, near);
        else if (near && best)
            mch_log_error("mechir cache get: hook '%s' was not cached in %s/cache (mechir cache "
                          "ls lists what was)",
                          hook, out_dir);
        else
            mch_log_error("mechir cache get: no entry for pair %016llx, hook %s, run %s in "
                          "%s/cache",
                          (unsigned long long)pair, hook, mch_store_run_name(run), out_dir);
        mch_store_close(s);
        return 1;
    }
    mch_err err = {0};
    size_t n = mch_store_entry_numel(e);
    float *data = malloc(n * sizeof *data);
    int rc = 0;
    if (!data) {
        mch_log_error("mechir cache get: out of memory for %zu values", n);
        rc = 1;
    } else if (mch_store_read(s, e, data, &err) ||
               mch_npy_write(out, data, e->ndim, e->shape, &err)) {
        mch_log_error("mechir cache get: %s", err.msg);
        rc = 1;
    }
    free(data);
    mch_store_close(s);
    return rc;
}

static int cmd_verify(const char *out_dir)
{
    mch_store *s = open_store(out_dir);
    if (!s) return 1;
    size_t n = mch_store_count(s), bad = 0;
    float *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        const mch_store_entry *e = mch_store_entry_at(s, i);
        size_t m = mch_store_entry_numel(e);
        if (m > cap) {
            float *p = realloc(buf, m * sizeof *p);
            if (!p) {
                mch_log_error("mechir cache verify: out of memory for %zu values", m);
                free(buf);
                mch_store_close(s);
                return 1;
            }
            buf = p;
            cap = m;
        }
        mch_err err = {0};
        if (mch_store_read(s, e, buf, &err)) {
            mch_log_error("mechir cache verify: %s", err.msg);
            bad++;
        }
    }
    printf("verified %zu entries: %zu ok, %zu damaged\n", n, n - bad, bad);
    free(buf);
    mch_store_close(s);
    return bad ? 1 : 0;
}

int mch_cmd_cache(int argc, char **argv)
{
    if (argc < 2) {
        cache_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        cache_usage(stdout);
        return 0;
    }
    int is_ls = !strcmp(sub, "ls"), is_get = !strcmp(sub, "get"),
        is_verify = !strcmp(sub, "verify");
    if (!is_ls && !is_get && !is_verify) {
        mch_log_error("mechir cache: unknown subcommand '%s' (see --help)", sub);
        return 2;
    }
    const char *pair = NULL, *hook = NULL, *run = NULL, *out = NULL;
    mch_opt get_tab[] = {
        MCH_OPT_ROW_STR("pair", &pair),
        MCH_OPT_ROW_STR("hook", &hook),
        MCH_OPT_ROW_STR("run", &run),
        MCH_OPT_ROW_STR("out", &out),
        MCH_OPT_ROW_END,
    };
    get_tab[3].letter = 'o';
    const mch_opt none[] = {MCH_OPT_ROW_END};
    const mch_opt *tabs[] = {is_get ? get_tab : none, NULL};
    char cmd[32], *pos[1];
    snprintf(cmd, sizeof cmd, "cache %s", sub);
    mch_opts o = {.cmd = cmd, .tabs = tabs, .pos = pos, .max_pos = 1};
    int st = mch_opts_parse(&o, argc, argv, 2);
    if (st) return st;
    if (o.help) {
        cache_usage(stdout);
        return 0;
    }
    const char *out_dir = o.n_pos ? pos[0] : NULL;
    if (!out_dir) {
        mch_log_error("mechir cache %s: the run's OUT directory is required (see --help)", sub);
        return 2;
    }
    if (is_ls) return cmd_ls(out_dir);
    if (is_verify) return cmd_verify(out_dir);
    if (!pair || !hook || !out) {
        mch_log_error("mechir cache get: --pair, --hook and -o are required (see --help)");
        return 2;
    }
    return cmd_get(out_dir, pair, hook, run, out);
}
