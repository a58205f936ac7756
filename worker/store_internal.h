/* Private to the activation cache (store_codec.c, store_write.c, store_read.c): the file
 * header, the 184-byte record shared by a chunk and its index entry, their checksums and the
 * little-endian fields, as docs/CACHE.md lays them out. Everything a reader gets from disk goes
 * through mch_store_record_decode before it is used. */
#ifndef MCH_STORE_INTERNAL_H
#define MCH_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "act_store.h"

#define STORE_HDR_BYTES 16
#define STORE_REC_BYTES MCH_STORE_RECORD_BYTES
#define STORE_REC_SUM_AT 176 /* the record's own XXH64 covers bytes [0, 176) */
#define STORE_FORMAT_VERSION 1

extern const char mch_store_idx_magic[8]; /* "MCHSTIDX" */
extern const char mch_store_bin_magic[8]; /* "MCHSTBIN" */

static inline uint32_t store_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* XXH64 with seed 0, of a chunk's payload or of a record's first STORE_REC_SUM_AT bytes. */
uint64_t mch_store_checksum(const void *p, size_t n);

/* shape -> element count; 0 when a dim is out of range or the float32 size exceeds
 * MCH_STORE_MAX_RAW_BYTES. */
uint64_t mch_store_shape_numel(int ndim, const int64_t *shape);

/* 1 when hook (len bytes) is 1..MCH_STORE_HOOK_MAX printable ASCII bytes without spaces. */
int mch_store_hook_ok(const char *hook, size_t len);

/* "[4,20,20]" into buf (truncated to cap). */
void mch_store_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* e -> r (STORE_REC_BYTES), checksum included. e must be valid (the writer checked it). */
void mch_store_record_encode(unsigned char *r, const mch_store_entry *e);

/* Checks every field of record r and fills e (hook into hook_buf, MCH_STORE_HOOK_MAX + 1 bytes;
 * e->file is 0). @return NULL, or what is wrong (written into why). */
const char *mch_store_record_decode(const unsigned char *r, mch_store_entry *e, char *hook_buf,
                                    char *why, size_t why_cap);

/* The 16-byte file header: magic (mch_store_idx_magic or _bin_magic), version, record size. */
void mch_store_header_encode(unsigned char *h, const char *magic);

/* @return bytes read (short only at end of file), or -1 with errno. Retries on EINTR. */
ssize_t mch_store_pread_all(int fd, void *buf, size_t n, uint64_t off);

/* "a/b" + ext, malloc'd; NULL when out of memory. */
char *mch_store_path_join(const char *a, const char *b, const char *ext);

#endif
