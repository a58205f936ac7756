/* The resume journal of a run (OUT/journal.bin; OUT/scores.bin for the scoring pass of --select):
 * a header holding the job spec, then one record per finished pair (a protobuf PairResult),
 * appended and fsynced after every work unit.
 *
 * Layout (little-endian, format 2): "MCHJOUR2", u32 spec length, spec bytes, u64 FNV-1a of the
 * spec; then records of a 24-byte header (u32 magic 0x5243484d "MHCR", u32 payload length, u64
 * pair index, u64 FNV-1a of those 16 bytes), the payload and u64 FNV-1a of the payload.
 *
 * Only an incomplete last record (the file ends inside it: a crash mid-write) is a torn tail,
 * ignored and cut off on resume. Every other damage (a header or payload failing its checksum,
 * wherever it is) is an error naming the file and the record's offset: the header checksum keeps
 * a flipped length from passing for a torn tail, which would drop every later record. Format 1
 * (no header checksum, no index in the header) is refused with both format numbers.
 *
 * Records are untrusted when read back: mch_journal_load checks each exactly as dispatch checks
 * a worker's result (mch_journal_check_result), plus its pair index, before anything is used.
 * The journal alone rebuilds every output, so the final reduction reads it rather than anything
 * held in memory. */
#ifndef MCH_JOURNAL_H
#define MCH_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

#include "mch_err.h"
#include "msg.h"

#define MCH_JOURNAL_FORMAT 2
#define MCH_JOURNAL_REC_HEADER 24 /* bytes before a record's payload */

typedef struct {
    uint64_t index;  /* pair index in the input order, from the record's header */
    uint64_t offset; /* of the record (its header) in the file */
    uint32_t length; /* of the payload */
} mch_journal_rec;

typedef struct {
    char *path;
    FILE *f;       /* append handle, or NULL when read-only */
    uint8_t *spec; /* header spec bytes */
    size_t spec_len;
    mch_journal_rec *recs; /* records read at open (resume), in file order */
    size_t n_recs, cap_recs;
    uint64_t end;        /* offset after the last complete record */
    uint64_t torn_bytes; /* of an incomplete last record found at open (cut off with append) */
} mch_journal;

/* Creates OUT/journal.bin with the spec (refusing an existing one). */
mch_status mch_journal_create(mch_journal *j, const char *path, const uint8_t *spec, size_t len,
                              mch_err *err);
/* Opens an existing journal: reads the header and every record's header, checking both
 * checksums of every record. With append, a torn tail is cut off and the file opened for
 * appending. Errors name the file and the offset. */
mch_status mch_journal_open(mch_journal *j, const char *path, int append, mch_err *err);
/* Appends the record of pair index (buffered). */
mch_status mch_journal_append(mch_journal *j, uint64_t index, const uint8_t *payload, size_t len,
                              mch_err *err);
/* fflush + fsync. */
mch_status mch_journal_sync(mch_journal *j, mch_err *err);
/* Reads record r's payload into buf (r->length bytes). */
mch_status mch_journal_read(const mch_journal *j, FILE *f, const mch_journal_rec *r, uint8_t *buf,
                            mch_err *err);
void mch_journal_close(mch_journal *j);

uint64_t mch_fnv1a64(const void *data, size_t len);

/* ---- what a record must be -------------------------------------------------------------- */

/* The checks of a pair's result against the job spec and the mode of its unit (MCH_UNIT_PATCH
 * or MCH_UNIT_SCORE: both scores only, no maps, no skip), shared by dispatch (a worker's result,
 * with the coordinator's own pair) and mch_journal_load (a record read back): the shapes and
 * finite values of mch_pair_result_check. @return 0, or 1 with why filled. */
int mch_journal_check_result(const mch_pair_result *r, const mch_job_spec *spec, uint32_t mode,
                             char *why, size_t why_len);

/* What the records of a journal must hold: results of spec for units of mode, pair indices
 * below limit. */
typedef struct {
    const mch_job_spec *spec;
    uint32_t mode;
    uint64_t limit;
} mch_journal_expect;

/* Reads record r of j through f, unpacks it into *out (the caller deinits it) and checks it:
 * mch_journal_check_result, the payload's pair index equal to the header's and below x->limit.
 * *buf (*cap bytes, realloc'd as needed, the caller frees it) is scratch. On failure *out is
 * zeroed and the message names the journal and the record's offset. */
mch_status mch_journal_load(const mch_journal *j, FILE *f, const mch_journal_rec *r,
                            const mch_journal_expect *x, uint8_t **buf, size_t *cap,
                            mch_pair_result *out, mch_err *err);

#endif
