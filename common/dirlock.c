/* The output directory's lock (see dirlock.h): flock on DIR/.mechir.lock, then "PID HOST\n"
 * written over the file's contents for the message a second process prints. */
#include "dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

enum { HOLDER_READS = 50, HOLDER_WAIT_NS = 10 * 1000 * 1000, HOST_MAX = 256 };

/* The holder's "PID HOST" into pid and host; the holder writes it right after its flock, so an
 * empty file is read again for up to HOLDER_READS * 10 ms. @return 1 when read, else 0. */
static int read_holder(int fd, long *pid, char host[HOST_MAX])
{
    for (int i = 0; i < HOLDER_READS; i++) {
        char buf[HOST_MAX + 32];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            char fmt[32];
            snprintf(fmt, sizeof fmt, "%%ld %%%ds", HOST_MAX - 1);
            if (sscanf(buf, fmt, pid, host) == 2) return 1;
        }
        struct timespec ts = {0, HOLDER_WAIT_NS};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Replaces the lock file's contents by "PID HOST\n". */
static int write_holder(int fd)
{
    char host[HOST_MAX] = "unknown", line[HOST_MAX + 32];
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    host[strcspn(host, " \t\r\n")] = 0;
    int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), *host ? host : "unknown");
    if (ftruncate(fd, 0) != 0) return -1;
    return pwrite(fd, line, (size_t)n, 0) == n ? 0 : -1;
}

/* The message for a lock that flock refused with e (EWOULDBLOCK: another holder). */
static mch_status refused(int fd, int e, const char *dir, const char *path, const char *who,
                          mch_err *err)
{
    long pid = 0;
    char host[HOST_MAX];
    if (e == EWOULDBLOCK && read_holder(fd, &pid, host))
        return mch_fail(err, MCH_ERR_IO,
                        "%s is in use by pid %ld on host %s (it holds %s); wait for it to end or "
                        "stop it",
                        dir, pid, host, path);
    if (e == EWOULDBLOCK)
        return mch_fail(err, MCH_ERR_IO,
                        "%s is in use by another process (it holds %s, which names no pid)", dir,
                        path);
    if (e != ENOLCK && e != ENOSYS && e != EOPNOTSUPP)
        return mch_fail(err, MCH_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
    mch_log_warn("%s: cannot lock %s (%s): running without a lock; do not start a second job in "
                 "%s while this one runs",
                 who, path, strerror(e), dir);
    return MCH_OK;
}

mch_status mch_dir_lock_take(mch_dir_lock *l, const char *dir, const char *who, mch_err *err)
{
    l->held = 0;
    l->fd = -1;
    char *path = mch_path_join(dir, MCH_DIR_LOCK_NAME);
    if (!path) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    mch_status rc = MCH_OK;
    struct stat sb;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = mch_fail(err, MCH_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    else if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = mch_fail(err, MCH_ERR_IO, "%s: the lock file is not a regular file", path);
    else if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        rc = refused(fd, errno, dir, path, who, err);
    else if (write_holder(fd) != 0)
        rc = mch_fail(err, MCH_ERR_IO, "%s: cannot write the lock holder: %s", path,
                      strerror(errno));
    else
        l->fd = fd, l->held = 1;
    if (!l->held && fd >= 0) close(fd);
    free(path);
    return rc;
}

void mch_dir_lock_release(mch_dir_lock *l)
{
    if (!l || !l->held) return;
    close(l->fd); /* closing the only descriptor of the open file drops the flock */
    l->held = 0;
    l->fd = -1;
}
