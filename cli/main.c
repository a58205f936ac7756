/* mechir: the command-line front door. Dispatches subcommands; only this file's main() ends the
 * process, and the thread policy for BLAS is set here, never inside kernels. Whatever the command,
 * a result that did not reach stdout (a full disk, /dev/full) is an error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mechir <command> [options]\n"
               "\n"
               "Mechanistic interpretability of neural retrieval models from Hugging Face\n"
               "checkpoint directories: BERT, DistilBERT, ELECTRA, RoBERTa and XLM-RoBERTa\n"
               "cross- and bi-encoders, and MonoT5 (docs/MODELS.md).\n"
               "\n"
               "commands:\n"
               "  score    score query-document pairs with a model\n"
               "  patch    activation patching of one baseline/perturbed pair (JSON)\n"
               "  pairs    build aligned baseline/perturbed pairs of a collection (JSONL)\n"
               "  run      corpus-scale circuit discovery (MPI; one process without mpirun)\n"
               "  submit   write and submit a Slurm or PBS batch script for a run\n"
               "  cache    list, extract (.npy), verify or benchmark a run's activation cache\n"
               "  merge    combine circuit maps of shards or sites\n"
               "  report   heatmaps, top components, CSV/JSON of a circuit map\n"
               "  tokenize the ids a model's tokenizer gives texts or pairs (JSONL)\n"
               "\n"
               "options:\n"
               "  -h, --help     this text; 'mechir <command> --help' for a command's options\n"
               "  --version      print the version\n"
               "\n"
               "environment:\n"
               "  MECHIR_LOG     error, warn, info (default) or debug: what is logged on stderr\n");
}

static int run_command(int argc, char **argv)
{
    if (mch_log_init() != 0)
        mch_log_warn("mechir: MECHIR_LOG='%s' is not error, warn, info or debug; using info",
                     getenv("MECHIR_LOG"));
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("mechir %s\n", MCH_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "score")) return mch_cmd_score(argc - 1, argv + 1);
    if (!strcmp(cmd, "patch")) return mch_cmd_patch(argc - 1, argv + 1);
    if (!strcmp(cmd, "pairs")) return mch_cmd_pairs(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return mch_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "submit")) return mch_cmd_submit(argc - 1, argv + 1);
    if (!strcmp(cmd, "merge")) return mch_cmd_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "cache")) return mch_cmd_cache(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return mch_cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return mch_cmd_tokenize(argc - 1, argv + 1);
    mch_log_error("mechir: unknown command '%s' (see 'mechir --help')", cmd);
    return 2;
}

/* Flushes and closes stdout: a failed write (now or during the command) turns a status of 0 into
 * 1 with one line on stderr. A command that already failed has said why; its status stays. */
static int close_stdout(int status)
{
    /* A write that failed earlier (a large one goes past the buffer) may have left nothing to
     * flush: its errno is then the one still set, if it is one a write gives. */
    int e = errno, bad = ferror(stdout) != 0;
    if (e != ENOSPC && e != EDQUOT && e != EFBIG && e != EIO && e != EPIPE && e != EBADF) e = 0;
    errno = 0;
    if (fflush(stdout) != 0) bad = 1, e = errno;
    if (fclose(stdout) != 0 && !bad) bad = 1, e = errno;
    if (!bad || status) return status;
    mch_log_error("mechir: writing standard output: %s", e ? strerror(e) : "write error");
    return 1;
}

int main(int argc, char **argv)
{
    /* A file-size limit (ulimit -f) makes write() fail with EFBIG, reported like a full disk,
     * instead of killing the process halfway through an output. */
    signal(SIGXFSZ, SIG_IGN);
    return close_stdout(run_command(argc, argv));
}
