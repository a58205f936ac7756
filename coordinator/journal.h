/* The resume journal of a run (OUT/journal.bin): a header holding the job spec, then one record
 * per finished pair (a protobuf PairResult), appended and fsynced after every work unit.
 *
 * Layout (little-endian): "MCHJOUR1", u32 spec length, spec bytes, u64 FNV-1a of the spec; then
 * records: u32 magic 0x5243484d ("MHCR"), u32 payload length, payload, u64 FNV-1a of payload.
 * A torn record at the end (a crash mid-write) is ignored and cut off on resume; a bad record
 * before the end is an error naming the file and offset. The journal alone rebuilds every
 * output, so the final reduction reads it rather than anything held in memory. */
#ifndef MCH_JOURNAL_H
#define MCH_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

#include "mch_err.h"

typedef struct {
    uint64_t index;  /* pair index in the input order */
    uint64_t offset; /* of the payload */
    uint32_t length;
} mch_journal_rec;

typedef struct {
    char *path;
    FILE *f;       /* append handle, or NULL when read-only */
    uint8_t *spec; /* header spec bytes */
    size_t spec_len;
    mch_journal_rec *recs; /* records read at open (resume) */
    size_t n_recs, cap_recs;
    uint64_t end; /* offset after the last good record */
} mch_journal;

/* Creates OUT/journal.bin with the spec (refusing an existing one). */
mch_status mch_journal_create(mch_journal *j, const char *path, const uint8_t *spec, size_t len,
                              mch_err *err);
/* Opens an existing journal: reads the header and every record (index taken from each
 * payload by the caller-provided decoder: index_of returns 0 on success). With append, the
 * file is cut after the last good record and opened for appending. */
typedef int (*mch_journal_index_fn)(const uint8_t *payload, size_t len, uint64_t *index);
mch_status mch_journal_open(mch_journal *j, const char *path, int append,
                            mch_journal_index_fn index_of, mch_err *err);
/* Appends one record (buffered). */
mch_status mch_journal_append(mch_journal *j, const uint8_t *payload, size_t len, mch_err *err);
/* fflush + fsync. */
mch_status mch_journal_sync(mch_journal *j, mch_err *err);
/* Reads record r's payload into buf (len bytes). */
mch_status mch_journal_read(const mch_journal *j, FILE *f, const mch_journal_rec *r, uint8_t *buf,
                            mch_err *err);
void mch_journal_close(mch_journal *j);

uint64_t mch_fnv1a64(const void *data, size_t len);

#endif
