/* The guards of a run's output directory and inputs (common/dirlock.h, common/fingerprint.h):
 * a second lock on a locked directory is refused at once naming the holder's pid and host, and
 * released locks can be taken again; input fingerprints match XXH3-64 computed in one call over
 * the whole file (the streamed fingerprint reads it in 1 MiB blocks), a fixed known value for the
 * empty file, and a FIFO is recorded as not regular without being opened. A resume's removal of
 * stale temp files (common/fsutil.h) takes those of dead processes and zombies, keeps those of
 * live ones, and under the directory's lock takes every PID's but ours. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "dirlock.h"
#include "fingerprint.h"
#include "fsutil.h"
#include "testutil.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static void test_second_lock_is_refused_naming_the_holder(void **st)
{
    (void)st;
    char dir[256], path[300], host[256] = "", want[1024];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "mch_lock"), 0);
    mch_dir_lock a = {0}, b = {0}, c = {0};
    mch_err err = {0};
    if (mch_dir_lock_take(&a, dir, "test", &err)) fail_msg("%s", err.msg);
    assert_true(a.held);
    /* The lock file names this process and host. */
    snprintf(path, sizeof path, "%s/" MCH_DIR_LOCK_NAME, dir);
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    assert_non_null(text);
    gethostname(host, sizeof host - 1);
    snprintf(want, sizeof want, "%ld %s\n", (long)getpid(), host);
    assert_string_equal(text, want);
    free(text);
    /* A second open file description of the same file: flock refuses it, as another process. */
    mch_err e2 = {0};
    assert_int_equal(mch_dir_lock_take(&b, dir, "test", &e2), MCH_ERR_IO);
    assert_false(b.held);
    snprintf(want, sizeof want, "%s is in use by pid %ld on host %s (it holds %s)", dir,
             (long)getpid(), host, path);
    if (!strstr(e2.msg, want)) fail_msg("'%s' lacks '%s'", e2.msg, want);
    mch_dir_lock_release(&a);
    mch_dir_lock_release(&a); /* twice, and a zeroed lock: nothing */
    mch_dir_lock_release(&b);
    mch_dir_lock_release(NULL);
    if (mch_dir_lock_take(&c, dir, "test", &err)) fail_msg("after release: %s", err.msg);
    mch_dir_lock_release(&c);
    /* A lock file that is not a regular file is refused. */
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    mch_err e3 = {0};
    assert_int_equal(mch_dir_lock_take(&c, dir, "test", &e3), MCH_ERR_IO);
    assert_non_null(strstr(e3.msg, "the lock file is not a regular file"));
    assert_false(c.held);
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

static void test_fingerprint_is_xxh3_of_the_whole_file(void **st)
{
    (void)st;
    char dir[256], path[300];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "mch_fp"), 0);
    snprintf(path, sizeof path, "%s/f", dir);
    /* Sizes around the 1 MiB block: none, one byte, a block, a block and one, three and a bit. */
    const size_t sizes[] = {0, 1, 1u << 20, (1u << 20) + 1, (3u << 20) + 17};
    size_t checked = 0;
    unsigned char *buf = malloc(sizes[4]);
    assert_non_null(buf);
    for (size_t i = 0; i < sizes[4]; i++) buf[i] = (unsigned char)(i * 2654435761u >> 13);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, sizes[k], f), sizes[k]);
        assert_int_equal(fclose(f), 0);
        mch_fingerprint fp;
        mch_err err = {0};
        if (mch_fingerprint_file(path, &fp, &err)) fail_msg("%s", err.msg);
        assert_int_equal(fp.regular, 1);
        assert_int_equal(fp.size_bytes, sizes[k]);
        assert_int_equal(fp.xxh3, XXH3_64bits(buf, sizes[k]));
        if (!sizes[k]) assert_int_equal(fp.xxh3, 0x2d06800538d394c2ULL); /* XXH3 of "" */
        checked++;
    }
    assert_int_equal(checked, 5);
    /* One byte changed, the size kept: another fingerprint. */
    mch_fingerprint before, after;
    mch_err err = {0};
    assert_int_equal(mch_fingerprint_file(path, &before, &err), MCH_OK);
    buf[sizes[4] / 2] ^= 1;
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, sizes[4], f), sizes[4]);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(mch_fingerprint_file(path, &after, &err), MCH_OK);
    assert_int_equal(after.size_bytes, before.size_bytes);
    assert_int_not_equal(after.xxh3, before.xxh3);
    free(buf);
    /* A FIFO: not opened (opening it would block without a writer), recorded as not regular. */
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    mch_fingerprint fp = {.regular = 1, .size_bytes = 9};
    assert_int_equal(mch_fingerprint_file(path, &fp, &err), MCH_OK);
    assert_int_equal(fp.regular, 0);
    assert_int_equal(fp.size_bytes, 0);
    /* A missing file: an error naming it. */
    unlink(path);
    mch_err e2 = {0};
    assert_int_equal(mch_fingerprint_file(path, &fp, &e2), MCH_ERR_IO);
    assert_non_null(strstr(e2.msg, path));
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* Creates DIR/NAME.tmp.PID. */
static void put_temp(const char *dir, const char *name, long pid)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.tmp.%ld", dir, name, pid);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("half", f);
    assert_int_equal(fclose(f), 0);
}

/* 1 when DIR/NAME.tmp.PID exists. */
static int has_temp(const char *dir, const char *name, long pid)
{
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s.tmp.%ld", dir, name, pid);
    return stat(path, &sb) == 0;
}

static void test_stale_temp_files_of_gone_processes_are_removed(void **st)
{
    (void)st;
    char dir[256];
    assert_int_equal(tu_tmpdir_make(dir, sizeof dir, "mch_stale"), 0);
    /* dead: exited and reaped; zombie: exited, not reaped; live: sleeping until killed. */
    pid_t dead = fork(), zombie, live;
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    zombie = fork();
    assert_true(zombie >= 0);
    if (zombie == 0) _exit(0);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)zombie, &si, WEXITED | WNOWAIT), 0);
    live = fork();
    assert_true(live >= 0);
    if (live == 0) {
        alarm(60); /* gone even if a failed assertion skips the kill below */
        pause();
        _exit(0);
    }
    assert_int_equal(mch_process_gone(dead), 1);
    assert_int_equal(mch_process_gone(zombie), 1);
    assert_int_equal(mch_process_gone(live), 0);
    assert_int_equal(mch_process_gone(getpid()), 0);

    const char *const names[] = {"circuit.cmap", "pairs.jsonl"};
    put_temp(dir, "circuit.cmap", dead);
    put_temp(dir, "pairs.jsonl", zombie);
    put_temp(dir, "circuit.cmap", live);
    put_temp(dir, "circuit.cmap", getpid());
    put_temp(dir, "other.txt", dead); /* not a listed name: never touched */
    int removed = -1;
    assert_int_equal(mch_outfile_remove_stale(dir, names, 2, 0, &removed), 0);
    assert_int_equal(removed, 2);
    assert_false(has_temp(dir, "circuit.cmap", dead));
    assert_false(has_temp(dir, "pairs.jsonl", zombie));
    assert_true(has_temp(dir, "circuit.cmap", live));
    assert_true(has_temp(dir, "circuit.cmap", getpid()));
    assert_true(has_temp(dir, "other.txt", dead));
    /* Under the directory's lock a live PID's file is stale too (its writer ran elsewhere). */
    assert_int_equal(mch_outfile_remove_stale(dir, names, 2, 1, &removed), 0);
    assert_int_equal(removed, 1);
    assert_false(has_temp(dir, "circuit.cmap", live));
    assert_true(has_temp(dir, "circuit.cmap", getpid()));
    assert_true(has_temp(dir, "other.txt", dead));

    kill(live, SIGKILL);
    assert_int_equal(waitpid(live, NULL, 0), live);
    assert_int_equal(waitpid(zombie, NULL, 0), zombie);
    assert_int_equal(tu_tmpdir_remove(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_lock_is_refused_naming_the_holder),
        cmocka_unit_test(test_fingerprint_is_xxh3_of_the_whole_file),
        cmocka_unit_test(test_stale_temp_files_of_gone_processes_are_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
