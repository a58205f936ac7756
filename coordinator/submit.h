/* `mechir submit` as a library: a Slurm or PBS batch script for a `mechir run`, rendered from a
 * template in deploy/, written into the run's output directory and handed to sbatch or qsub. With
 * shards the input is split here by pair id (shard.h) into a job array, and a dependent job
 * merges the shards' maps. Every run option reaches the script shell-quoted, byte for byte, and
 * the same options always give the same script. Nothing here prints to stdout or exits: the
 * scripts and job ids come back in an mch_submit_result; progress lines go to the log. */
#ifndef MCH_SUBMIT_H
#define MCH_SUBMIT_H

#include <limits.h>
#include <stddef.h>

#include "mch_err.h"
#include "pairs_source.h"

typedef enum { MCH_SCHED_SLURM, MCH_SCHED_PBS } mch_sched;

enum { MCH_SUBMIT_MAX_SHARDS = 1000 };

/* The run to submit: its options as given (passed to `mechir run` unchanged, plus --resume) and
 * what submit needs to know of them (the caller reads them from the options). */
typedef struct {
    int n;
    char *const *argv;   /* the run options; argv[0] may be a JOB.json (job_file) */
    const char *out;     /* --out DIR; NULL with a job file: its "out" key is read */
    const char *model;   /* --model DIR (the df table of tdc/lnc1 shards needs it), or NULL */
    const char *threads; /* --threads as given, or NULL (1): the CPUs of a rank */
    int job_file;        /* argv[0] is a job file */
    /* argv index of the value of --input, --run, --qrels, --out; -1 when not given */
    int input_at, run_at, qrels_at, out_at;
    int df_given, has_resume; /* --df, --resume among the options */
    mch_source_opts src;      /* the source options: how to split, whether a df table is needed */
} mch_submit_run;

typedef struct {
    mch_sched sched;
    const char *time;          /* the limit, HH:MM:SS (any number of hours); at least 00:01:00 */
    int nodes, ranks_per_node; /* at least 1 */
    int shards;   /* up to 1: one job; 2..MCH_SUBMIT_MAX_SHARDS: job array + merge job */
    int signal_s; /* stop the run this many seconds before the limit; 0: the default, 90 or a
                   * third of the limit when that is shorter */
    int requeue;  /* Slurm: requeue a job the warning signal stopped */
    int dry_run;  /* render only: write nothing, submit nothing */
    /* NULL when not given: the Slurm partition or PBS queue, the account, memory per node (MB,
     * or a number with K, M, G or T), the job name (default mechir-<last part of out>), the
     * template file (default: looked up, see deploy/README.md), srun or mpirun (PBS: mpirun) */
    const char *partition, *account, *mem, *job_name, *template_path, *launcher;
    mch_submit_run run;
} mch_submit_opts;

/* Defaults: 1 node, 2 ranks per node, no run option indices. */
void mch_submit_opts_init(mch_submit_opts *o);

typedef struct {
    int n_scripts;               /* 1, or 2 with shards: the array job, then the merge job */
    char path[2][PATH_MAX + 64]; /* OUT/mechir-slurm.sh, OUT/mechir-slurm-merge.sh (pbs) */
    char *script[2];             /* the rendered scripts (owned) */
    size_t len[2];               /* their lengths in bytes */
    char id[2][256];             /* the job ids sbatch or qsub printed; "" when not submitted */
} mch_submit_result;

/* Checks the options that need nothing of the run's (time, memory, launcher, signal, directive
 * values). @return MCH_OK, or MCH_ERR_ARG with a message naming the option and its value. */
mch_status mch_submit_check(const mch_submit_opts *o, mch_err *err);

/* Renders the script(s) into *res and, unless dry_run, makes OUT, splits the input into OUT/
 * shard-<i>/ (and writes OUT/df.tsv when tdc or lnc1 needs it), writes the scripts (executable)
 * and submits them: res->id[0] is set as soon as the first job is in, so a failing merge
 * submission still leaves the array's id. @return MCH_OK; MCH_ERR_ARG for options that cannot
 * work (the message names the option); another code when a file, the template or the submit
 * command failed. The caller frees *res with mch_submit_result_free whatever the outcome. */
mch_status mch_submit(const mch_submit_opts *o, mch_submit_result *res, mch_err *err);

void mch_submit_result_free(mch_submit_result *res); /* accepts NULL */

#endif
