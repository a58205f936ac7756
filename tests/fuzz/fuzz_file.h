/* For the targets whose reader takes a path: the fuzz input written to a file in a scratch
 * directory made once per process (under /dev/shm when it is writable, so no disk is touched;
 * else $TMPDIR or /tmp) and removed at exit with the files written there. */
#ifndef MCH_FUZZ_FILE_H
#define MCH_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_check.h"

static char fuzz_dir[256];
static char fuzz_names[8][64]; /* files written, removed at exit (relative to fuzz_dir) */
static int fuzz_n_names;

static void fuzz_dir_remove(void)
{
    char path[400];
    for (int i = fuzz_n_names - 1; i >= 0; i--) {
        snprintf(path, sizeof path, "%s/%s", fuzz_dir, fuzz_names[i]);
        if (unlink(path) != 0) rmdir(path);
    }
    rmdir(fuzz_dir);
}

/* The scratch directory (made on the first call). */
static inline const char *fuzz_scratch(void)
{
    if (fuzz_dir[0]) return fuzz_dir;
    const char *tmp = getenv("TMPDIR");
    if (access("/dev/shm", W_OK) == 0) tmp = "/dev/shm";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/mch-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL);
    atexit(fuzz_dir_remove);
    return fuzz_dir;
}

/* Remembers name (a file or directory under the scratch directory) for removal at exit. */
static inline void fuzz_remember(const char *name)
{
    for (int i = 0; i < fuzz_n_names; i++)
        if (!strcmp(fuzz_names[i], name)) return;
    FUZZ_CHECK(fuzz_n_names < 8 && strlen(name) < sizeof fuzz_names[0]);
    strcpy(fuzz_names[fuzz_n_names++], name);
}

/* Makes the subdirectory name of the scratch directory (kept); its path in path. */
static inline void fuzz_mkdir(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", fuzz_scratch(), name);
    FUZZ_CHECK(mkdir(path, 0700) == 0 || access(path, W_OK) == 0);
    fuzz_remember(name);
}

/* Writes data[0..size) to the file name (may hold one '/') of the scratch directory, replacing
 * it; its path in path. */
static inline void fuzz_write(const char *name, const uint8_t *data, size_t size, char *path,
                              size_t cap)
{
    snprintf(path, cap, "%s/%s", fuzz_scratch(), name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
    fuzz_remember(name);
}

#endif
