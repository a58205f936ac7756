/* `mechir submit`: the command line of coordinator/submit.h. Reads the submit options (an
 * option table for cli/opts.h) and what submit must know of the run options after "--", prints a
 * dry run's scripts or the job ids on stdout, and turns the outcome into the exit status: 0
 * submitted (or printed), 1 failure, 2 usage error (one line on stderr each). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "log.h"
#include "opts.h"
#include "source_opts.h"
#include "pairs_source.h"
#include "submit.h"

static void submit_usage(FILE *f)
{
    fprintf(f,
            "usage: mechir submit --scheduler slurm|pbs --time HH:MM:SS [options] -- RUN OPTIONS\n"
            "\n"
            "Writes a batch script for `mechir run RUN OPTIONS` into the run's --out directory\n"
            "and submits it (sbatch or qsub); prints the job id(s). The run always gets\n"
            "--resume, so submitting the same command again continues an interrupted run.\n"
            "\n"
            "  --scheduler S        slurm or pbs (PBS Pro / OpenPBS)\n"
            "  --time HH:MM:SS      the job's time limit (at least 00:01:00)\n"
            "  --nodes N            nodes (default 1)\n"
            "  --ranks-per-node R   MPI ranks per node (default 2; rank 0 coordinates)\n"
            "  --partition P        Slurm partition, PBS queue\n"
            "  --account A          account to charge\n"
            "  --mem M              memory per node: a number of MB, or with K, M, G or T\n"
            "  --signal-seconds S   ask the run to stop S seconds before the limit (default\n"
            "                       90, or a third of the limit when that is shorter)\n"
            "  --requeue            Slurm: requeue the job when the time limit interrupted it\n"
            "  --launcher L         Slurm: srun (srun --mpi=pmix, default) or mpirun\n"
            "  --shards K           split the input into K shard jobs (a job array, outputs in\n"
            "                       OUT/shard-<i>) and merge them into OUT/circuit.cmap in a\n"
            "                       dependent job\n"
            "  --job-name NAME      default mechir-<name of --out>\n"
            "  --template FILE      the script template (default: the deploy/ directory next to\n"
            "                       the program, see docs/deploy.md)\n"
            "  --dry-run            print the script(s) and the submit command; change nothing\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0 submitted (or printed); 1 error; 2 usage error.\n");
}

/* Reads the options in argv[1..argc) into o and the scheduler's name into *sched; *help is set
 * by -h or --help. 0, or 2 after a message. */
static int parse_submit_opts(mch_submit_opts *o, const char **sched, int argc, char **argv,
                             int *help)
{
    const mch_opt tab[] = {
        {.name = "scheduler", .kind = MCH_OPT_STR, .dst = sched},
        {.name = "time", .kind = MCH_OPT_STR, .dst = &o->time},
        {.name = "nodes", .kind = MCH_OPT_INT, .dst = &o->nodes, .lo = 1, .hi = 1 << 20},
        {.name = "ranks-per-node",
         .kind = MCH_OPT_INT,
         .dst = &o->ranks_per_node,
         .lo = 1,
         .hi = 1 << 16},
        {.name = "partition", .kind = MCH_OPT_STR, .dst = &o->partition},
        {.name = "account", .kind = MCH_OPT_STR, .dst = &o->account},
        {.name = "mem", .kind = MCH_OPT_STR, .dst = &o->mem},
        {.name = "signal-seconds", .kind = MCH_OPT_INT, .dst = &o->signal_s, .lo = 1, .hi = 65535},
        {.name = "requeue", .kind = MCH_OPT_FLAG, .dst = &o->requeue},
        {.name = "launcher", .kind = MCH_OPT_STR, .dst = &o->launcher},
        {.name = "shards",
         .kind = MCH_OPT_INT,
         .dst = &o->shards,
         .lo = 1,
         .hi = MCH_SUBMIT_MAX_SHARDS},
        {.name = "job-name", .kind = MCH_OPT_STR, .dst = &o->job_name},
        {.name = "template", .kind = MCH_OPT_STR, .dst = &o->template_path},
        {.name = "dry-run", .kind = MCH_OPT_FLAG, .dst = &o->dry_run},
        {.name = NULL},
    };
    const mch_opt *const tabs[] = {tab, NULL};
    mch_opts p = {.cmd = "submit", .tabs = tabs};
    int rc = mch_opts_parse(&p, argc, argv, 1);
    *help = p.help;
    return rc;
}

/* What submit must know of the run options: the source options through the shared parser (so
 * values are checked the way `mechir run` checks them), --out, --model, --threads; every other
 * --option is taken to have a value, except the run's flags (--resume, --per-grade) and --select
 * (two words: top-delta K; *has_select set). 0, or 2 after a message. */
static int scan_run_opts(mch_submit_run *r, int n, char **run, int *has_select)
{
    mch_source_opt_table t;
    mch_source_opt_table_init(&t, &r->src);
    const mch_opt *tabs[] = {t.opt, NULL};
    mch_opts src = {.cmd = "submit", .tabs = tabs};
    r->n = n;
    r->argv = run;
    int first = 0;
    if (n > 0 && mch_ends_with(run[0], ".json")) r->job_file = first = 1;
    for (int i = first; i < n; i++) {
        const char *a = run[i];
        int at = i;
        if (!strncmp(a, "--", 2) && strchr(a, '=')) {
            /* Shards rewrite the value's own argv slot, so run options go as two words. */
            mch_log_error("mechir submit: give run option %.*s and its value as two words",
                          (int)(strchr(a, '=') - a), a);
            return 2;
        }
        int rc = mch_opts_take(&src, n, run, &i);
        if (rc == 2) return 2;
        if (rc == 0) {
            if (!strcmp(a, "--input")) r->input_at = at + 1;
            if (!strcmp(a, "--run")) r->run_at = at + 1;
            if (!strcmp(a, "--qrels")) r->qrels_at = at + 1;
            if (!strcmp(a, "--df")) r->df_given = 1;
        } else if (!strcmp(a, "--resume")) {
            r->has_resume = 1;
        } else if (!strcmp(a, "--per-grade")) {
            continue; /* the run's other flag */
        } else if (!strcmp(a, "--select") && i + 2 < n && !strchr(run[i + 1], ' ')) {
            *has_select = 1;
            i += 2; /* top-delta K: two words, checked by the run */
        } else if (!strcmp(a, "--select")) {
            *has_select = 1;
            i++;
        } else if (strncmp(a, "--", 2) || !strcmp(a, "--")) {
            mch_log_error("mechir submit: run option '%s' is not an option (see mechir run --help)",
                          a);
            return 2;
        } else if (i + 1 >= n) {
            mch_log_error("mechir submit: run option %s needs a value", a);
            return 2;
        } else {
            const char *v = run[++i];
            if (!strcmp(a, "--out")) r->out = v, r->out_at = i;
            if (!strcmp(a, "--model")) r->model = v;
            if (!strcmp(a, "--threads")) r->threads = v;
        }
    }
    return 0;
}

/* Everything before the run: the options, the scheduler, the checks that need no run option.
 * 0, -1 after printing --help, or the exit status of a usage error (printed). */
static int read_args(mch_submit_opts *o, int argc, char **argv, int dashes)
{
    const char *sched = NULL;
    int help = 0, rc = parse_submit_opts(o, &sched, dashes, argv, &help);
    if (rc) return rc;
    if (help) {
        submit_usage(stdout);
        return -1;
    }
    if (dashes >= argc) {
        mch_log_error("mechir submit: give the run options after '--' (see --help)");
        return 2;
    }
    if (!sched) {
        mch_log_error("mechir submit: --scheduler slurm|pbs is required");
        return 2;
    }
    if (strcmp(sched, "slurm") && strcmp(sched, "pbs")) {
        mch_log_error("mechir submit: unknown scheduler '%s' (slurm or pbs)", sched);
        return 2;
    }
    o->sched = !strcmp(sched, "slurm") ? MCH_SCHED_SLURM : MCH_SCHED_PBS;
    mch_err err = {0};
    if (mch_submit_check(o, &err)) {
        mch_log_error("mechir submit: %s", err.msg);
        return 2;
    }
    int has_select = 0;
    rc = scan_run_opts(&o->run, argc - dashes - 1, argv + dashes + 1, &has_select);
    if (!rc && has_select && o->shards > 1) {
        /* Each shard would choose its own top K: the merged map would not be the top K. */
        mch_log_error("mechir submit: --shards cannot split a run with --select (each shard "
                      "would select its own top K)");
        return 2;
    }
    return rc;
}

int mch_cmd_submit(int argc, char **argv)
{
    mch_submit_opts o;
    mch_submit_opts_init(&o);
    int dashes = 1; /* argv[dashes] is the "--" before the run options (argc: none) */
    while (dashes < argc && strcmp(argv[dashes], "--")) dashes++;
    int rc = read_args(&o, argc, argv, dashes);
    if (rc) return rc < 0 ? 0 : rc;

    mch_submit_result res;
    mch_err err = {0};
    mch_status st = mch_submit(&o, &res, &err);
    for (int i = 0; i < res.n_scripts; i++) {
        if (o.dry_run && !st) {
            if (res.n_scripts > 1) printf("# ==> %s <==\n", res.path[i]);
            fwrite(res.script[i], 1, res.len[i], stdout);
        }
        if (res.id[i][0]) printf("%s\n", res.id[i]);
    }
    fflush(stdout); /* before any exit-time checker can end the process */
    if (st) mch_log_error("mechir submit: %s", err.msg);
    mch_submit_result_free(&res);
    return st == MCH_OK ? 0 : st == MCH_ERR_ARG ? 2 : 1;
}
