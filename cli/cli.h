/* Subcommands of the mechir program. Each takes (argc, argv) with argv[0] the command name and
 * returns the process exit status: 0 success, 1 failure (a one-line message was printed on
 * stderr), 2 usage error. */
#ifndef MCH_CLI_H
#define MCH_CLI_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "run.h"

int mch_cmd_score(int argc, char **argv);
int mch_cmd_patch(int argc, char **argv);
int mch_cmd_pairs(int argc, char **argv);
int mch_cmd_run(int argc, char **argv);
int mch_cmd_submit(int argc, char **argv);
int mch_cmd_merge(int argc, char **argv);
int mch_cmd_cache(int argc, char **argv);
int mch_cmd_report(int argc, char **argv);
/* `mechir report --pairs ... --pair ID` (cmd_report_pair.c), which mch_cmd_report hands argv to
 * when it holds --pairs; its usage text. */
int mch_cmd_report_pair(int argc, char **argv);
void mch_report_pair_usage(FILE *f);
int mch_cmd_tokenize(int argc, char **argv);

/* `mechir run`'s options into *o: a JOB.json first (argv[1] ending in .json; its keys are the
 * long options without dashes), then the rest of argv. *given: the options as given, in order,
 * what OUT/job.json records; *job: the job file parsed (NULL without one), whose strings *o may
 * point into. The caller deletes both (cJSON_Delete), whatever the result. @return -1 to run,
 * or the exit status (0 after --help, 1 out of memory, 2 a usage error, printed). */
int mch_run_parse_args(int argc, char **argv, mch_run_opts *o, cJSON **given, cJSON **job);

#endif
