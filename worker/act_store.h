/* The on-disk activation cache of a patching run (format: docs/CACHE.md). Each writer (one per
 * rank and run attempt) appends chunks to OUT/cache/<tag>.bin and then their index records to
 * <tag>.idx, so a complete index record always points at a complete chunk; every chunk and every
 * record carries an XXH64 checksum, and the reader bounds-checks every size it reads from disk.
 *
 * A chunk is one activation of one pair, hook and run: float32 (lossless) or bf16/fp16 (lossy,
 * round to nearest even), its bytes split into planes (byte 0 of every value, then byte 1, ...),
 * then one zstd frame.
 *
 * The writer is store_write.c, the reader store_read.c; what both share (value codec, record and
 * header layout, checksums) is store_codec.c behind store_codec.h and the private
 * store_internal.h. The .npy writer of `mechir cache get` is npy.h. */
#ifndef MCH_ACT_STORE_H
#define MCH_ACT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mch_err.h"

#define MCH_STORE_MAX_DIMS 4
#define MCH_STORE_HOOK_MAX 95 /* bytes of a hook name, without its NUL */
/* Largest activation one chunk holds, as float32 bytes (a reader refuses larger shapes before
 * allocating anything). */
#define MCH_STORE_MAX_RAW_BYTES ((uint64_t)1 << 32)

typedef enum { MCH_STORE_F32 = 0, MCH_STORE_BF16 = 1, MCH_STORE_F16 = 2 } mch_store_dtype;
enum { MCH_RUN_BASELINE = 0, MCH_RUN_PERTURBED = 1 };

/* Parses "f32" (or "lossless"), "bf16", "fp16" (or "f16") into *dt. @return 1, or 0 (and *dt
 * untouched) when s is none of them. */
int mch_store_dtype_parse(const char *s, mch_store_dtype *dt);
const char *mch_store_dtype_name(mch_store_dtype dt); /* "f32", "bf16", "fp16" */
const char *mch_store_run_name(int run);              /* "baseline", "perturbed" */

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct mch_store_writer mch_store_writer;

/* Creates OUT and OUT/cache if needed and opens OUT/cache/<tag>.bin and <tag>.idx for
 * appending (tag: letters, digits, '.', '_', '-', not starting with '.', at most 64 bytes, e.g.
 * "rank-3-e0"). The caller picks a tag unique to its rank and run attempt, so that no two
 * processes append to one file. Reopening an existing tag appends after its last complete index
 * record (a half-written record left by a killed writer is cut off). dt is how every chunk of
 * this writer is stored; zstd_level as zstd's (1..19; 3 is a good default). On error *out is
 * NULL and nothing is left open. */
mch_status mch_store_writer_open(mch_store_writer **out, const char *out_dir, const char *tag,
                                 mch_store_dtype dt, int zstd_level, mch_err *err);

/* Appends one activation of pair_id at hook (a TransformerLens name) for run (MCH_RUN_*): data
 * is float32 of shape (shape[0], ..., shape[ndim-1]), C order, 1 <= ndim <= 4, every dim >= 1.
 * Writes the chunk to .bin, then its record to .idx. On an I/O error both files are cut back to
 * where they were (the writer stays usable); if that fails too, every later put fails. Scratch
 * buffers grow to the largest activation and are reused. */
mch_status mch_store_put(mch_store_writer *w, uint64_t pair_id, const char *hook, int run, int ndim,
                         const int64_t *shape, const float *data, mch_err *err);

/* fsyncs .bin, then .idx (call when a work unit completes; the writer does not buffer, so what
 * put returned is already in the page cache and survives a killed process). */
mch_status mch_store_writer_sync(mch_store_writer *w, mch_err *err);

void mch_store_writer_close(mch_store_writer *w); /* no sync; accepts NULL */

/* Bytes put so far: raw = as float32, stored = compressed payloads (each chunk adds a 184-byte
 * header on top, see MCH_STORE_RECORD_BYTES). */
void mch_store_writer_stats(const mch_store_writer *w, uint64_t *raw_bytes, uint64_t *stored_bytes);

/* ---- reading ---------------------------------------------------------------------------- */

#define MCH_STORE_RECORD_BYTES 184

typedef struct {
    uint64_t pair_id;
    const char *hook; /* TransformerLens name; owned by the store */
    int run;          /* MCH_RUN_BASELINE or MCH_RUN_PERTURBED */
    int ndim;
    int64_t shape[MCH_STORE_MAX_DIMS]; /* dims past ndim are 0 */
    mch_store_dtype dtype;
    int file;              /* which .bin: mch_store_file_name(s, file) */
    uint64_t offset;       /* of the chunk (its header) in that .bin */
    uint64_t stored_bytes; /* compressed payload */
    uint64_t raw_bytes;    /* numel * 4 */
    uint64_t checksum;     /* XXH64 of the payload */
} mch_store_entry;

typedef struct mch_store mch_store;

/* Reads every *.idx under OUT/cache, in name order. A truncated last record (a killed writer) is
 * ignored; a malformed record or header is MCH_ERR_FORMAT naming the file and byte offset. When
 * the same (pair, hook, run) appears more than once, the last one read wins. Entries are then
 * sorted by (pair_id, hook, run). .bin files are opened only by mch_store_read. */
mch_status mch_store_open(mch_store **out, const char *out_dir, mch_err *err);
size_t mch_store_count(const mch_store *s);
const mch_store_entry *mch_store_entry_at(const mch_store *s, size_t i);
size_t mch_store_file_count(const mch_store *s);
const char *mch_store_file_name(const mch_store *s, int file); /* path of the .bin */
/* The entry, or NULL when absent (binary search). */
const mch_store_entry *mch_store_find(const mch_store *s, uint64_t pair_id, const char *hook,
                                      int run);
/* Values an entry holds: the product of its shape. */
size_t mch_store_entry_numel(const mch_store_entry *e);

/* Reads, verifies and decodes e into out (mch_store_entry_numel(e) floats). A chunk that runs
 * past its file, whose header differs from its index record, whose checksum or decoded size is
 * wrong, is MCH_ERR_FORMAT naming the .bin and the chunk's offset. Allocates and frees its own
 * buffers (stored + decoded bytes). */
mch_status mch_store_read(const mch_store *s, const mch_store_entry *e, float *out, mch_err *err);

void mch_store_close(mch_store *s); /* accepts NULL */

#endif
