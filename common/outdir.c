/* An output directory replaced as a whole (outdir.h): a temp directory beside the target, files
 * fsynced, one exchange of the two names, then the old files removed. The target is only ever
 * the old directory or the new one. */
#define _GNU_SOURCE /* renameat2, RENAME_EXCHANGE, realpath */
#include "outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

/* The PID of ENTRY when it is ".BASE" KIND "PID" (KIND ".tmp." or ".old."), else 0. */
static long temp_pid(const char *entry, const char *base, const char *kind)
{
    size_t nb = strlen(base), nk = strlen(kind);
    if (entry[0] != '.' || strncmp(entry + 1, base, nb) || strncmp(entry + 1 + nb, kind, nk))
        return 0;
    const char *digits = entry + 1 + nb + nk;
    size_t nd = strspn(digits, "0123456789");
    if (!nd || nd > 9 || digits[nd] || *digits == '0') return 0;
    return strtol(digits, NULL, 10);
}

/* 1 when entry is one of names or NAME.tmp.PID of one of them (mch_outfile's temp files). */
static int is_listed(const char *entry, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        if (strncmp(entry, names[i], k)) continue;
        const char *rest = entry + k;
        if (!*rest) return 1;
        if (!strncmp(rest, ".tmp.", 5) && rest[5] &&
            strspn(rest + 5, "0123456789") == strlen(rest + 5))
            return 1;
    }
    return 0;
}

/* Removes dir and the regular files in it; -1 with errno when something else is there (then dir
 * is kept) or a removal fails. */
static int remove_flat(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int e = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *path = mch_path_join(dir, de->d_name);
        struct stat sb;
        if (!path)
            e = ENOMEM;
        else if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            e = ENOTEMPTY;
        else if (unlink(path) != 0)
            e = errno;
        free(path);
    }
    closedir(dp);
    if (!e && rmdir(dir) != 0) e = errno;
    errno = e;
    return e ? -1 : 0;
}

/* fsync of a directory, so that the names in it survive a crash. */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Refuses an existing target holding anything but names: replacing it would lose that entry. */
static mch_status check_holds_only(const char *dir, const char *const *names, size_t n,
                                   mch_err *err)
{
    DIR *dp = opendir(dir);
    if (!dp) return mch_fail(err, MCH_ERR_IO, "%s: %s", dir, strerror(errno));
    mch_status rc = MCH_OK;
    struct dirent *de;
    while (!rc && (de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *path = mch_path_join(dir, de->d_name);
        struct stat sb;
        if (!path)
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        else if (!is_listed(de->d_name, names, n) || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            rc = mch_fail(err, MCH_ERR_ARG,
                          "%s: holds '%.100s', which is not one of the files written there and "
                          "would be lost when the directory is replaced; choose a new directory",
                          dir, de->d_name);
        free(path);
    }
    closedir(dp);
    return rc;
}

/* Removes PARENT/.BASE.tmp.PID and .old.PID of processes that are gone; an .old.PID whose target
 * is missing (a kill between the two renames) is renamed back first. Failures are logged. */
static void remove_stale(const mch_outdir *d)
{
    DIR *dp = opendir(d->parent);
    if (!dp) return;
    struct dirent *de;
    while ((de = readdir(dp))) {
        long tmp_pid = temp_pid(de->d_name, d->base, ".tmp.");
        long old_pid = temp_pid(de->d_name, d->base, ".old.");
        long pid = tmp_pid ? tmp_pid : old_pid;
        if (!pid || !mch_process_gone(pid)) continue;
        char *path = mch_path_join(d->parent, de->d_name);
        struct stat sb;
        if (!path || lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(path);
            continue;
        }
        if (old_pid && lstat(d->path, &sb) != 0 && errno == ENOENT && rename(path, d->path) == 0)
            mch_log_info("restored %s from %s (process %ld was killed while replacing it)", d->path,
                         path, pid);
        else if (remove_flat(path) == 0)
            mch_log_info("removed %s (the temp directory of process %ld, which is gone)", path,
                         pid);
        else
            mch_log_warn("could not remove %s (the temp directory of process %ld): %s", path, pid,
                         strerror(errno));
        free(path);
    }
    closedir(dp);
}

/* Sets d->path (trailing slashes cut), d->parent and d->base. */
static int split_path(mch_outdir *d)
{
    size_t len = strlen(d->path);
    while (len > 1 && d->path[len - 1] == '/') d->path[--len] = 0;
    char *slash = strrchr(d->path, '/');
    d->base = slash ? slash + 1 : d->path;
    d->parent = !slash             ? strdup(".")
                : slash == d->path ? strdup("/")
                                   : strndup(d->path, (size_t)(slash - d->path));
    return d->parent != NULL;
}

void mch_outdir_abort(mch_outdir *d)
{
    if (d->tmp && remove_flat(d->tmp) != 0 && errno != ENOENT)
        mch_log_warn("could not remove %s: %s", d->tmp, strerror(errno));
    free(d->path);
    free(d->parent);
    free(d->tmp);
    d->path = d->parent = d->tmp = NULL;
    d->base = NULL;
}

mch_status mch_outdir_open(mch_outdir *d, const char *dir, const char *const *names, size_t n,
                           mch_err *err)
{
    memset(d, 0, sizeof *d);
    struct stat sb;
    mch_status rc = MCH_OK;
    if (lstat(dir, &sb) == 0) {
        if (!(d->path = realpath(dir, NULL)))
            rc = mch_fail(err, MCH_ERR_IO, "%s: %s", dir, strerror(errno));
        else if (stat(d->path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            rc = mch_fail(err, MCH_ERR_IO, "%s: exists and is not a directory", dir);
        else if (!strcmp(d->path, "/"))
            rc = mch_fail(err, MCH_ERR_ARG, "%s: the root directory cannot be replaced", dir);
        else
            rc = check_holds_only(d->path, names, n, err);
    } else if (errno != ENOENT) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", dir, strerror(errno));
    } else if (!(d->path = strdup(dir))) {
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    if (!rc && !split_path(d)) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    size_t len = d->path ? strlen(d->path) + 32 : 0;
    if (!rc && !(d->tmp = malloc(len))) rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) {
        remove_stale(d);
        snprintf(d->tmp, len, "%s/.%s.tmp.%ld", d->parent, d->base, (long)getpid());
        if (mkdir(d->tmp, 0755) != 0) {
            rc = mch_fail(err, MCH_ERR_IO, "%s: cannot make the temp directory %s: %s", dir, d->tmp,
                          strerror(errno));
            free(d->tmp); /* not ours: abort must not remove it */
            d->tmp = NULL;
        }
    }
    if (rc) mch_outdir_abort(d);
    return rc;
}

mch_status mch_outdir_write(mch_outdir *d, const char *name, void (*fn)(FILE *f, const void *ctx),
                            const void *ctx, mch_err *err)
{
    char *path = mch_path_join(d->tmp, name);
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "wb");
    int e = f ? 0 : errno;
    if (f) {
        errno = 0;
        fn(f, ctx);
        if (ferror(f)) e = errno ? errno : EIO; /* the failed write's errno */
        if (fflush(f) != 0 && !e) e = errno;
        if (fsync(fileno(f)) != 0 && !e) e = errno;
        if (fclose(f) != 0 && !e) e = errno;
    }
    free(path);
    return e ? mch_fail(err, MCH_ERR_IO, "%s/%s: %s", d->path, name, strerror(e)) : MCH_OK;
}

mch_status mch_outdir_commit(mch_outdir *d, mch_err *err)
{
    mch_status rc = MCH_OK;
    char *aside = NULL; /* the old directory when renamed aside (no RENAME_EXCHANGE) */
    struct stat sb;
    if (fsync_dir(d->tmp) != 0) {
        rc = mch_fail(err, MCH_ERR_IO, "%s: %s", d->tmp, strerror(errno));
    } else if (lstat(d->path, &sb) != 0) {
        if (rename(d->tmp, d->path) != 0)
            rc = mch_fail(err, MCH_ERR_IO, "%s: %s", d->path, strerror(errno));
        else
            free(d->tmp), d->tmp = NULL; /* nothing old to remove */
    } else if (renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->path, RENAME_EXCHANGE) != 0) {
        /* No exchange on this file system (NFS, older kernels): the old one aside first. */
        size_t len = strlen(d->path) + 32;
        int e = errno;
        if ((e == EINVAL || e == ENOSYS || e == ENOTSUP) && (aside = malloc(len))) {
            snprintf(aside, len, "%s/.%s.old.%ld", d->parent, d->base, (long)getpid());
            if (rename(d->path, aside) != 0) {
                e = errno;
            } else if (rename(d->tmp, d->path) != 0) {
                e = errno;
                if (rename(aside, d->path) != 0)
                    mch_log_error("%s is now %s: %s", d->path, aside, strerror(errno));
            } else {
                e = 0;
            }
        }
        if (e) rc = mch_fail(err, MCH_ERR_IO, "%s: %s", d->path, strerror(e));
    }
    /* d->tmp now holds the old files (after an exchange) or the new ones (after a failure). */
    if (!rc && fsync_dir(d->parent) != 0) mch_log_warn("%s: fsync: %s", d->parent, strerror(errno));
    if (!rc && aside && remove_flat(aside) != 0)
        mch_log_warn("could not remove the old %s: %s", aside, strerror(errno));
    free(aside);
    mch_outdir_abort(d);
    return rc;
}
