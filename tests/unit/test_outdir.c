/* common/outdir.c: an output directory replaced as a whole. The test links with
 * -Wl,--wrap=renameat2, so the file systems without RENAME_EXCHANGE (the rename-aside path) and
 * a failing exchange can be tried on any machine. */
#define _GNU_SOURCE /* renameat2 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "outdir.h"
#include "testutil.h"

static int exchange_errno; /* != 0: renameat2 fails with it */
static int exchange_calls;

int __real_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                     unsigned int flags);
int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                     unsigned int flags);
int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                     unsigned int flags)
{
    exchange_calls++;
    if (exchange_errno) {
        errno = exchange_errno;
        return -1;
    }
    return __real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

static const char *const names[] = {"a.txt", "b.txt"};

typedef struct {
    char root[1024];   /* the parent */
    char target[1100]; /* root/rep */
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx || tu_tmpdir_make(fx->root, sizeof fx->root, "outdir")) return -1;
    snprintf(fx->target, sizeof fx->target, "%s/rep", fx->root);
    exchange_errno = exchange_calls = 0;
    *state = fx;
    return 0;
}

/* Removes root/rep, root/.rep.* (flat directories) and root. */
static int teardown(void **state)
{
    fixture *fx = *state;
    DIR *d = opendir(fx->root);
    struct dirent *e;
    char path[2048];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", fx->root, e->d_name);
        if (tu_tmpdir_remove(path) != 0) unlink(path);
    }
    if (d) closedir(d);
    rmdir(fx->root);
    free(fx);
    return 0;
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[2048];
    assert_true(snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The text of dir/name, or "" when it is missing (static buffer). */
static const char *get(const char *dir, const char *name)
{
    static char buf[256];
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
    }
    return buf;
}

/* Entries of root whose names start with ".rep.". */
static int temp_entries(const fixture *fx)
{
    DIR *d = opendir(fx->root);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += !strncmp(e->d_name, ".rep.", 5);
    closedir(d);
    return n;
}

static void writer(FILE *f, const void *ctx)
{
    fputs(ctx, f);
}

static void make_old(const fixture *fx)
{
    assert_int_equal(mkdir(fx->target, 0755), 0);
    put(fx->target, "a.txt", "old a");
    put(fx->target, "b.txt", "old b");
}

/* Writes a.txt "new a" only, and commits: the new directory has no b.txt. others: the temp
 * entries there were before. */
static mch_status write_new(const fixture *fx, int others)
{
    mch_outdir d;
    mch_err err = {0};
    mch_status rc = mch_outdir_open(&d, fx->target, names, 2, &err);
    assert_int_equal(rc, MCH_OK);
    assert_int_equal(mch_outdir_write(&d, "a.txt", writer, "new a", &err), MCH_OK);
    assert_int_equal(temp_entries(fx), others + 1);
    return mch_outdir_commit(&d, &err);
}

/* A pid that no process has: a child that has exited and been waited for. */
static long dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return (long)pid;
}

/* A child that has exited and is not reaped: a zombie, as a killed rank 0 stays when its parent
 * died too and PID 1 never reaps. The caller reaps it with waitpid. */
static long zombie_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(0);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    return (long)pid;
}

static void test_outdir_creates_a_missing_directory(void **state)
{
    fixture *fx = *state;
    assert_int_equal(write_new(fx, 0), MCH_OK);
    assert_string_equal(get(fx->target, "a.txt"), "new a");
    assert_int_equal(temp_entries(fx), 0);
}

static void test_outdir_replaces_the_whole_directory(void **state)
{
    fixture *fx = *state;
    make_old(fx);
    assert_int_equal(write_new(fx, 0), MCH_OK);
    assert_int_equal(exchange_calls, 1);
    assert_string_equal(get(fx->target, "a.txt"), "new a");
    assert_string_equal(get(fx->target, "b.txt"), ""); /* the old set of files is gone whole */
    assert_int_equal(temp_entries(fx), 0);
}

static void test_outdir_without_exchange_renames_the_old_one_aside(void **state)
{
    fixture *fx = *state;
    make_old(fx);
    exchange_errno = EINVAL; /* NFS, an old kernel */
    assert_int_equal(write_new(fx, 0), MCH_OK);
    assert_string_equal(get(fx->target, "a.txt"), "new a");
    assert_string_equal(get(fx->target, "b.txt"), "");
    assert_int_equal(temp_entries(fx), 0);
}

static void test_outdir_failed_exchange_leaves_the_old_one(void **state)
{
    fixture *fx = *state;
    make_old(fx);
    exchange_errno = EIO;
    mch_outdir d;
    mch_err err = {0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_OK);
    assert_int_equal(mch_outdir_write(&d, "a.txt", writer, "new a", &err), MCH_OK);
    assert_int_equal(mch_outdir_commit(&d, &err), MCH_ERR_IO);
    assert_non_null(strstr(err.msg, strerror(EIO)));
    assert_string_equal(get(fx->target, "a.txt"), "old a");
    assert_string_equal(get(fx->target, "b.txt"), "old b");
    assert_int_equal(temp_entries(fx), 0);
}

static void test_outdir_abort_leaves_the_old_one(void **state)
{
    fixture *fx = *state;
    make_old(fx);
    mch_outdir d;
    mch_err err = {0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_OK);
    assert_int_equal(mch_outdir_write(&d, "a.txt", writer, "new a", &err), MCH_OK);
    mch_outdir_abort(&d);
    mch_outdir_abort(&d); /* twice is harmless */
    assert_string_equal(get(fx->target, "a.txt"), "old a");
    assert_string_equal(get(fx->target, "b.txt"), "old b");
    assert_int_equal(temp_entries(fx), 0);
}

static void test_outdir_refuses_a_directory_holding_other_entries(void **state)
{
    fixture *fx = *state;
    make_old(fx);
    put(fx->target, "notes.md", "mine");
    mch_outdir d;
    mch_err err = {0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "holds 'notes.md'"));
    assert_int_equal(temp_entries(fx), 0);
    /* A listed name that is not a regular file is refused too. */
    char sub[2048];
    snprintf(sub, sizeof sub, "%s/notes.md", fx->target);
    unlink(sub);
    snprintf(sub, sizeof sub, "%s/b.txt", fx->target);
    unlink(sub);
    assert_int_equal(mkdir(sub, 0755), 0);
    err = (mch_err){0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_ERR_ARG);
    assert_non_null(strstr(err.msg, "holds 'b.txt'"));
    rmdir(sub);
    /* mch_outfile's stale temp files of the listed names are not in the way. */
    put(fx->target, "a.txt.tmp.12345", "half");
    assert_int_equal(write_new(fx, 0), MCH_OK);
}

static void test_outdir_removes_stale_temp_directories_of_dead_processes(void **state)
{
    fixture *fx = *state;
    char dead[2048], live[2048];
    snprintf(dead, sizeof dead, "%s/.rep.tmp.%ld", fx->root, dead_pid());
    snprintf(live, sizeof live, "%s/.rep.tmp.1", fx->root); /* init's: alive */
    assert_int_equal(mkdir(dead, 0755), 0);
    put(dead, "a.txt", "half");
    assert_int_equal(mkdir(live, 0755), 0);
    assert_int_equal(write_new(fx, 1), MCH_OK);
    struct stat sb;
    assert_int_not_equal(stat(dead, &sb), 0);
    assert_int_equal(stat(live, &sb), 0);
    rmdir(live);
}

static void test_outdir_removes_stale_temp_directories_of_zombies(void **state)
{
    fixture *fx = *state;
    char zombie[2048];
    long pid = zombie_pid();
    snprintf(zombie, sizeof zombie, "%s/.rep.tmp.%ld", fx->root, pid);
    assert_int_equal(mkdir(zombie, 0755), 0);
    put(zombie, "a.txt", "half");
    assert_int_equal(write_new(fx, 0), MCH_OK);
    struct stat sb;
    assert_int_not_equal(stat(zombie, &sb), 0);
    assert_int_equal(waitpid((pid_t)pid, NULL, 0), (pid_t)pid);
}

static void test_outdir_restores_an_old_directory_renamed_aside_by_a_killed_process(void **state)
{
    fixture *fx = *state;
    char aside[2048];
    snprintf(aside, sizeof aside, "%s/.rep.old.%ld", fx->root, dead_pid());
    assert_int_equal(mkdir(aside, 0755), 0);
    put(aside, "a.txt", "old a");
    mch_outdir d;
    mch_err err = {0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_OK);
    assert_string_equal(get(fx->target, "a.txt"), "old a"); /* back before anything new */
    mch_outdir_abort(&d);
    assert_string_equal(get(fx->target, "a.txt"), "old a");
    assert_int_equal(temp_entries(fx), 0);
}

static void test_outdir_refuses_a_file_and_names_a_failed_write(void **state)
{
    fixture *fx = *state;
    put(fx->root, "rep", "a file");
    mch_outdir d;
    mch_err err = {0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_ERR_IO);
    assert_non_null(strstr(err.msg, "exists and is not a directory"));
    unlink(fx->target);
    err = (mch_err){0};
    assert_int_equal(mch_outdir_open(&d, fx->target, names, 2, &err), MCH_OK);
    assert_int_equal(mch_outdir_write(&d, "no/such/dir", writer, "x", &err), MCH_ERR_IO);
    assert_non_null(strstr(err.msg, "/rep/no/such/dir: No such file or directory"));
    mch_outdir_abort(&d);
    assert_int_equal(temp_entries(fx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outdir_creates_a_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outdir_replaces_the_whole_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outdir_without_exchange_renames_the_old_one_aside,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_outdir_failed_exchange_leaves_the_old_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outdir_abort_leaves_the_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outdir_refuses_a_directory_holding_other_entries,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outdir_removes_stale_temp_directories_of_dead_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outdir_removes_stale_temp_directories_of_zombies,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outdir_restores_an_old_directory_renamed_aside_by_a_killed_process, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_outdir_refuses_a_file_and_names_a_failed_write, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
