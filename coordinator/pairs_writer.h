/* The per-pair output of a run, OUT/pairs.jsonl.zst (default) or OUT/pairs.jsonl: one JSON line
 * per pair, written through a FILE * and committed atomically (temp + fsync + rename, fsutil.h).
 *
 * pairs.jsonl.zst is a concatenation of independent zstd frames (with content checksums), one
 * frame per MCH_PAIRS_LINES_PER_FRAME lines: frame k holds lines [k*64, k*64 + 64), the last one
 * the rest (a run without pairs is one empty frame, so the file is always valid zstd). Every
 * frame decompresses on its own to whole lines, so a reader can start at any frame boundary
 * (ZSTD_findFrameCompressedSize skips a frame without decompressing it), and `zstd -dc` gives
 * exactly the bytes --pairs-format jsonl writes. A file cut inside a frame is detected (zstd: an
 * incomplete frame); a cut exactly at a frame boundary leaves whole lines, fewer than run.json's
 * pairs.total. The frames are cut inside the FILE *'s write path (at the newline of every 64th
 * line), so the line writer is the same for both formats and there is no copy besides stdio's. */
#ifndef MCH_PAIRS_WRITER_H
#define MCH_PAIRS_WRITER_H

#include <stdio.h>

#include "mch_err.h"

typedef enum { MCH_PAIRS_ZST = 0, MCH_PAIRS_JSONL = 1 } mch_pairs_format;

enum { MCH_PAIRS_LINES_PER_FRAME = 64 };

/* "zst" or "jsonl" to *fmt; @return 0, or -1 for anything else. */
int mch_pairs_format_parse(const char *s, mch_pairs_format *fmt);
/* The file name of a format in OUT: "pairs.jsonl.zst" or "pairs.jsonl". */
const char *mch_pairs_file_name(mch_pairs_format fmt);

typedef struct mch_pairs_writer mch_pairs_writer;

/* Opens DIR/<mch_pairs_file_name(fmt)> for writing (a temp file until commit). @return MCH_OK,
 * or MCH_ERR_IO / MCH_ERR_NOMEM / MCH_ERR_ZSTD naming the path (*out is then NULL). */
mch_status mch_pairs_writer_open(mch_pairs_writer **out, const char *dir, mch_pairs_format fmt,
                                 mch_err *err);
/* The stream to write lines to (each ending in '\n'; JSON strings escape their newlines). Owned
 * by the writer: never fclose it. */
FILE *mch_pairs_writer_file(mch_pairs_writer *w);
/* Ends the last frame, fsyncs, renames over the final name, removes the other format's file
 * from DIR (a resume may change the format; DIR never holds both), and frees w. @return MCH_OK,
 * or an error naming the path (the temp file is then removed and w freed all the same). */
mch_status mch_pairs_writer_commit(mch_pairs_writer *w, mch_err *err);
/* Removes the temp file and frees w (after an error elsewhere); accepts NULL. */
void mch_pairs_writer_abort(mch_pairs_writer *w);

#endif
