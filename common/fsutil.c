/* Files and paths: atomic output files (temp + fsync + rename over regular files only), whole-file
 * atomic writes, mkdir -p, suffix tests. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int mch_outfile_open(mch_outfile *o, const char *path)
{
    o->f = NULL;
    o->path = o->tmp = NULL;
    if (!path || !strcmp(path, "-")) {
        o->f = stdout;
        return 0;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* /dev/null, a FIFO, a terminal: written in place, never replaced. */
        o->f = fopen(path, "wb");
        return o->f ? 0 : -1;
    }
    size_t n = strlen(path) + 32;
    o->path = strdup(path);
    o->tmp = malloc(n);
    if (!o->path || !o->tmp) {
        free(o->path);
        free(o->tmp);
        errno = ENOMEM;
        return -1;
    }
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        int e = errno;
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

int mch_outfile_commit(mch_outfile *o)
{
    if (!o->path) {
        int bad = fflush(o->f) != 0 || ferror(o->f);
        if (o->f != stdout) bad |= fclose(o->f) != 0;
        o->f = NULL;
        return bad ? -1 : 0;
    }
    int bad = ferror(o->f) | (fflush(o->f) != 0) | (fsync(fileno(o->f)) != 0);
    int e = errno;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (!bad && rename(o->tmp, o->path) == 0) {
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        return 0;
    }
    e = errno ? errno : e;
    unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    errno = e;
    return -1;
}

/* The PID of NAME.tmp.PID for one of names (the pattern mch_outfile_open makes), or 0. */
static long stale_pid(const char *file, const char *const *names, size_t n)
{
    const char *tmp = strstr(file, ".tmp.");
    for (; tmp; tmp = strstr(tmp + 1, ".tmp.")) {
        const char *digits = tmp + 5;
        size_t nd = strspn(digits, "0123456789");
        if (!nd || nd > 9 || digits[nd] || *digits == '0') continue;
        for (size_t i = 0; i < n; i++)
            if (strlen(names[i]) == (size_t)(tmp - file) && !strncmp(file, names[i], tmp - file))
                return strtol(digits, NULL, 10);
    }
    return 0;
}

int mch_process_gone(long pid)
{
    if (pid <= 0 || pid == (long)getpid()) return 0;
    if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0; /* no /proc: alive, as kill said */
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so the last ')' ends it. */
    const char *close = strrchr(buf, ')');
    return close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

int mch_outfile_remove_stale(const char *dir, const char *const *names, size_t n, int dir_locked,
                             int *removed)
{
    if (removed) *removed = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int bad = 0, e = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long pid = stale_pid(de->d_name, names, n);
        if (!pid || pid == (long)getpid()) continue;
        if (!dir_locked && !mch_process_gone(pid)) continue; /* its writer may still run */
        char *path = mch_path_join(dir, de->d_name);
        struct stat sb;
        if (!path) {
            bad = 1, e = ENOMEM;
            break;
        }
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (unlink(path) == 0) {
                mch_log_info("removed %s (the temp file of process %ld, which is gone)", path, pid);
                if (removed) ++*removed;
            } else if (errno != ENOENT) {
                bad = 1, e = errno;
            }
        }
        free(path);
    }
    closedir(d);
    errno = e;
    return bad ? -1 : 0;
}

void mch_outfile_abort(mch_outfile *o)
{
    if (!o->path) {
        if (o->f && o->f != stdout) fclose(o->f);
        o->f = NULL;
        return;
    }
    if (o->f) fclose(o->f);
    unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    o->f = NULL;
    o->path = o->tmp = NULL;
}

mch_status mch_write_file_atomic(const char *path, const void *data, size_t len, mch_err *err)
{
    const char *shown = !path || !strcmp(path, "-") ? "writing standard output" : path;
    mch_outfile o;
    if (mch_outfile_open(&o, path) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", shown, strerror(errno));
    if (fwrite(data, 1, len, o.f) != len) {
        int e = errno;
        mch_outfile_abort(&o);
        return mch_fail(err, MCH_ERR_IO, "%s: %s", shown, strerror(e));
    }
    if (mch_outfile_commit(&o) != 0)
        return mch_fail(err, MCH_ERR_IO, "%s: %s", shown, strerror(errno));
    return MCH_OK;
}

mch_status mch_write_file_with(const char *dir, const char *name,
                               void (*fn)(FILE *f, const void *ctx), const void *ctx, mch_err *err)
{
    char *path = name ? mch_path_join(dir, name) : strdup(dir);
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_outfile o;
    mch_status rc = MCH_OK;
    if (mch_outfile_open(&o, path) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        fn(o.f, ctx);
        if (mch_outfile_commit(&o) != 0)
            rc = mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

int mch_mkdir_p(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

char *mch_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int mch_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}
