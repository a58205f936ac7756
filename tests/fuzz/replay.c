/* Corpus replay for the ordinary (non-libFuzzer) build: feeds every file of the given corpus
 * directories (or single files) to LLVMFuzzerTestOneInput, one call per file, in name order.
 * Each input sits in a heap buffer of exactly its size, so a sanitizer build catches overreads.
 * A seed named good-* must be accepted by the decoder and one named bad-* refused (the target
 * leaves the decoder's status in mch_fuzz_status); other names (fuzzer finds) only must not
 * crash. Exits non-zero on a broken expectation or when no file at all was replayed. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern int mch_fuzz_status;

static long n_wrong; /* seeds whose status broke the expectation their name states */

/* Reads path into a fresh buffer of exactly its size; @return 0 on success. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    /* Shrink to the exact size (at least 1 byte so the pointer is valid for size 0). */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    *out = exact;
    *len = n;
    return 0;
}

static int replay_file(const char *path)
{
    uint8_t *data;
    size_t len;
    if (read_file(path, &data, &len) != 0) {
        fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    mch_fuzz_status = -1;
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "good-", 5) == 0 && mch_fuzz_status != 0) {
        fprintf(stderr, "replay: %s: a good-* seed was refused (status %d)\n", path,
                mch_fuzz_status);
        n_wrong++;
    } else if (strncmp(base, "bad-", 4) == 0 && mch_fuzz_status == 0) {
        fprintf(stderr, "replay: %s: a bad-* seed was accepted\n", path);
        n_wrong++;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file directly in dir (not recursing, skipping dot files).
 * @return the number replayed, or -1 on an error. */
static long replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    long rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc >= 0; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        struct stat sb;
        if (!path) {
            rc = -1;
            break;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (replay_file(path) != 0)
                rc = -1;
            else
                rc++;
        }
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc < 0 && errno == ENOMEM) fprintf(stderr, "replay: %s: out of memory\n", dir);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    long total = 0;
    for (int a = 1; a < argc; a++) {
        struct stat sb;
        if (stat(argv[a], &sb) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[a], strerror(errno));
            return 1;
        }
        long n;
        if (S_ISDIR(sb.st_mode))
            n = replay_dir(argv[a]);
        else
            n = replay_file(argv[a]) == 0 ? 1 : -1;
        if (n < 0) return 1;
        fprintf(stderr, "replay: %s: %ld inputs\n", argv[a], n);
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input files found: the corpus is empty or misplaced\n");
        return 1;
    }
    if (n_wrong) {
        fprintf(stderr, "replay: %ld of %ld inputs got the wrong verdict\n", n_wrong, total);
        return 1;
    }
    fprintf(stderr, "replay: %ld inputs replayed, no failure\n", total);
    return 0;
}
