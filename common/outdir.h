/* An output directory replaced as a whole. Its files are written into a temp directory beside it,
 * PARENT/.NAME.tmp.PID, each fsynced; on commit the temp directory takes the target's place in one
 * rename (renameat2 RENAME_EXCHANGE, then the old files are removed; where the file system has no
 * exchange, the old directory is renamed aside to PARENT/.NAME.old.PID first). A reader sees the
 * old set of files or the new one, never a mix; a failure leaves the old directory untouched and
 * no temp directory behind. A kill leaves PARENT/.NAME.tmp.PID (or .old.PID): the next open
 * removes it once its process is gone (an .old.PID whose target is missing is renamed back). */
#ifndef MCH_OUTDIR_H
#define MCH_OUTDIR_H

#include <stddef.h>
#include <stdio.h>

#include "mch_err.h"

typedef struct {
    char *path;       /* the target, resolved (realpath) when it exists */
    char *parent;     /* its directory */
    const char *base; /* its last component (into path) */
    char *tmp;        /* PARENT/.NAME.tmp.PID */
} mch_outdir;

/* Prepares to replace dir with a directory of the files names (n of them). An existing dir must
 * be a directory holding only those names (and their NAME.tmp.PID files): anything else would be
 * lost with it, so it is refused, naming the entry. Stale temp directories of this target left by
 * dead processes are removed, then the temp directory is made. On failure nothing was changed. */
mch_status mch_outdir_open(mch_outdir *d, const char *dir, const char *const *names, size_t n,
                           mch_err *err);

/* Writes the temp directory's file name through fn(f, ctx), flushed and fsynced; an error names
 * the target's file (DIR/NAME) and the errno of the failed write (ENOSPC, EFBIG, ...). */
mch_status mch_outdir_write(mch_outdir *d, const char *name, void (*fn)(FILE *f, const void *ctx),
                            const void *ctx, mch_err *err);

/* Puts the temp directory in the target's place and removes the old files; on failure the temp
 * directory is removed and the target is as it was. Frees d either way. */
mch_status mch_outdir_commit(mch_outdir *d, mch_err *err);

/* Removes the temp directory and frees d (after an error); accepts a d never opened (zeroed). */
void mch_outdir_abort(mch_outdir *d);

#endif
