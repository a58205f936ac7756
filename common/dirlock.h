/* An exclusive lock on an output directory: flock(LOCK_EX | LOCK_NB) on DIR/.mechir.lock, held
 * by one process for as long as it writes in DIR. The kernel drops the lock when the holder's
 * descriptor is closed, however the process ends (kill -9 included), so a lock is never stale;
 * the file itself stays (removing it would let a second process lock a new inode). */
#ifndef MCH_DIRLOCK_H
#define MCH_DIRLOCK_H

#include "mch_err.h"

#define MCH_DIR_LOCK_NAME ".mechir.lock"

typedef struct {
    int fd;   /* the lock file, open while held */
    int held; /* 0: nothing to release (a zeroed struct holds nothing) */
} mch_dir_lock;

/* Takes the lock of dir (which must exist) for who ("mechir run") and writes "PID HOST" into
 * the lock file. When another process holds it: MCH_ERR_IO and a message naming dir, the
 * holder's pid and host as its lock file records them, and the lock file; nothing waits. On a
 * file system without flock (ENOLCK, ENOSYS, EOPNOTSUPP) a warning is logged and the lock is
 * not held (MCH_OK). A lock file that is not a regular file is an error. */
mch_status mch_dir_lock_take(mch_dir_lock *l, const char *dir, const char *who, mch_err *err);

/* Releases the lock (closes its descriptor); a zeroed or released l: nothing. */
void mch_dir_lock_release(mch_dir_lock *l);

#endif
