/* Subcommands of the mechir program. Each takes (argc, argv) with argv[0] the command name and
 * returns the process exit status: 0 success, 1 failure (a one-line message was printed on
 * stderr), 2 usage error. */
#ifndef MCH_CLI_H
#define MCH_CLI_H

int mch_cmd_score(int argc, char **argv);
int mch_cmd_patch(int argc, char **argv);
int mch_cmd_pairs(int argc, char **argv);
int mch_cmd_run(int argc, char **argv);
int mch_cmd_submit(int argc, char **argv);
int mch_cmd_merge(int argc, char **argv);
int mch_cmd_cache(int argc, char **argv);
int mch_cmd_report(int argc, char **argv);

#endif
