/* libFuzzer target for a run's JOB.json (`mechir run JOB.json ...`, read by mch_run_parse_args
 * in cli/cmd_run.c with the option tables of `mechir run`): the input is the file, given
 * with --model and --out on the command line. A file that is accepted must give the options
 * back as mechir records them in OUT/job.json, and that record, read as a JOB.json alone (what
 * `mechir run OUT/job.json --resume` does), must be accepted and record the same options with
 * the same values. A refusal is exit status 2 (a usage error, printed), never a crash. Messages
 * go to stderr: fuzz with -close_fd_mask=2. */
#include "cli.h"
#include "fuzz_file.h"

int mch_fuzz_status;

/* The options of a job file at path (argv after it); o, given and job as mch_run_parse_args. */
static int parse(const char *path, char **more, int n_more, mch_run_opts *o, cJSON **given,
                 cJSON **job)
{
    char *argv[8] = {"run", (char *)path};
    for (int i = 0; i < n_more; i++) argv[2 + i] = more[i];
    return mch_run_parse_args(2 + n_more, argv, o, given, job);
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], again[512];
    fuzz_write("job.json", data, size, path, sizeof path);
    mch_run_opts o;
    cJSON *given = NULL, *job = NULL;
    char *more[] = {"--model", "M", "--out", "O"};
    int st = parse(path, more, 4, &o, &given, &job);
    mch_fuzz_status = st == -1 ? MCH_OK : MCH_ERR_FORMAT;
    FUZZ_CHECK(st == -1 || st == 2 || st == 0); /* 0: "help": true */
    if (st != -1) {
        cJSON_Delete(given);
        cJSON_Delete(job);
        return 0;
    }
    FUZZ_CHECK(o.model && !strcmp(o.model, "M") && o.out && !strcmp(o.out, "O"));
    FUZZ_CHECK(cJSON_IsObject(given));
    char *text = cJSON_Print(given);
    FUZZ_CHECK(text != NULL);
    fuzz_write("job-again.json", (const uint8_t *)text, strlen(text), again, sizeof again);
    mch_run_opts o2;
    cJSON *given2 = NULL, *job2 = NULL;
    FUZZ_CHECK(parse(again, NULL, 0, &o2, &given2, &job2) == -1);
    char *text2 = cJSON_Print(given2);
    FUZZ_CHECK(text2 != NULL && !strcmp(text, text2));
    FUZZ_CHECK(!strcmp(o2.model, "M") && !strcmp(o2.out, "O"));
    FUZZ_CHECK(o2.min_delta == o.min_delta);
    FUZZ_CHECK(o2.bootstrap == o.bootstrap && o2.ci == o.ci && o2.select_k == o.select_k);
    FUZZ_CHECK(o2.per_grade == o.per_grade && o2.resume == o.resume && o2.threads == o.threads);
    FUZZ_CHECK(o2.unit_size == o.unit_size && o2.scratch_mb == o.scratch_mb);
    FUZZ_CHECK(o2.src.seed == o.src.seed && o2.src.top_k == o.src.top_k);
    FUZZ_CHECK(o2.src.max_len == o.src.max_len && o2.src.max_query_len == o.src.max_query_len);
    FUZZ_CHECK(o2.src.max_line_bytes == o.src.max_line_bytes && o2.src.strict == o.src.strict);
    FUZZ_CHECK(same_str(o2.src.input, o.src.input) && same_str(o2.src.df, o.src.df));
    FUZZ_CHECK(same_str(o2.sweep, o.sweep) && same_str(o2.heads, o.heads));
    free(text);
    free(text2);
    cJSON_Delete(given2);
    cJSON_Delete(job2);
    cJSON_Delete(given);
    cJSON_Delete(job);
    return 0;
}
