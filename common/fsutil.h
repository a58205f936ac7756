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

/* Removes DIR/NAME.tmp.PID for each NAME of names (n of them): the temp files mch_outfile_open
 * makes, left when a process was killed before its rename. PID is decimal; a file whose PID is
 * a live process on this host (or is ours) is kept, and nothing else is touched (logged at info,
 * one line a file). *removed (may be NULL) counts the files removed. 0, or -1 with errno. */
int mch_outfile_remove_stale(const char *dir, const char *const *names, size_t n, int *removed);

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
