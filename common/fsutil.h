/* Files and paths shared by the coordinator, the worker and the CLI. */
#ifndef MCH_FSUTIL_H
#define MCH_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "mch_err.h"

/* An output file written atomically: to PATH.tmp.PID, fsynced and renamed to PATH on commit.
 * A NULL or "-" path means stdout; an existing path that is not a regular file (/dev/null, a
 * FIFO) is written in place and never replaced. */
typedef struct {
    FILE *f;
    char *path, *tmp; /* NULL when written in place */
} mch_outfile;
int mch_outfile_open(mch_outfile *o, const char *path); /* 0, or -1 with errno */
/* Flushes, fsyncs and renames; 0 or -1 with errno (the temp file is removed on failure). */
int mch_outfile_commit(mch_outfile *o);
/* Removes the temp file without renaming (after an error). */
void mch_outfile_abort(mch_outfile *o);

/* 1 when pid is not ours and is gone from this host: no such process, or a zombie (killed and
 * not yet reaped, as an orphan under a PID 1 that never reaps stays for good). */
int mch_process_gone(long pid);

/* Removes DIR/NAME.tmp.PID for each NAME of names (n of them): the temp files mch_outfile_open
 * makes, left when a process was killed before its rename. PID is decimal; ours is kept. With
 * dir_locked 0 a file whose PID is not mch_process_gone is kept too; dir_locked 1 says the caller
 * holds DIR's lock (dirlock.h), which every writer of these files takes, so every other PID's
 * file is stale (its writer may have run on another host). Nothing else is touched (logged at
 * info, one line a file). *removed (may be NULL) counts the files removed. 0, or -1 with errno. */
int mch_outfile_remove_stale(const char *dir, const char *const *names, size_t n, int dir_locked,
                             int *removed);

/* Writes bytes to path atomically (as mch_outfile). */
mch_status mch_write_file_atomic(const char *path, const void *data, size_t len, mch_err *err);

/* Writes DIR/NAME (name NULL: dir is the path) atomically through fn(f, ctx), as mch_outfile;
 * a failure names the path. */
mch_status mch_write_file_with(const char *dir, const char *name,
                               void (*fn)(FILE *f, const void *ctx), const void *ctx, mch_err *err);

/* mkdir -p with mode 0755: 0, or -1 with errno. */
int mch_mkdir_p(const char *dir);

/* "dir/name" in a malloc'd string, or NULL when out of memory. */
char *mch_path_join(const char *dir, const char *name);

/* 1 when s ends with suffix. */
int mch_ends_with(const char *s, const char *suffix);

#endif
