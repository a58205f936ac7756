/* Splitting a run's input into K shard inputs for `mechir submit --shards`, and the document
 * frequencies of the whole input that keep tdc and lnc1 shards choosing the whole's terms. A line
 * goes to shard splitmix64(pair id) mod K, the pair id being mch_pair_id(qid, docno): a pair and
 * its repeats land in one shard, shards are disjoint, and the split does not depend on the order
 * of the file or on K's other shards. */
#ifndef MCH_SHARD_H
#define MCH_SHARD_H

#include <stddef.h>

#include "mch_err.h"
#include "pairs_source.h"

/* How a line names its pair: TSV (qid, query, docno, ... at tabs), JSONL ("qid" and "docno"
 * keys; an integer id counts as its decimal text, as the reader does), TREC run or qrels lines
 * (qid at field 0, docno at field 2, split at runs of spaces and tabs). */
typedef enum { MCH_SPLIT_TSV, MCH_SPLIT_JSONL, MCH_SPLIT_TREC } mch_split_kind;

/* The shard in [0, k) of one input line (len bytes without its newline; lineno counts from 1),
 * or -1 for a line that is not a unit: an empty line, or a TSV header (line 1 starting with the
 * field "qid"). A line without a readable (qid, docno) goes by its line number, so a shard's
 * reader still reports it. */
int mch_shard_of_line(mch_split_kind kind, const char *line, size_t len, long lineno, int k);

/* Splits the file src (plain or .zst) into dir/shard-<i>/<base> for i < k, making the
 * directories; a base ending in .zst is written as a series of zstd frames. A UTF-8 byte-order
 * mark on line 1 is left out. Each shard file is written atomically (mch_outfile): on an error
 * the shards not yet renamed into place are removed, and err names the file. *min_lines and
 * *max_lines: the smallest and the largest shard, in lines. */
mch_status mch_shard_split(const char *src, mch_split_kind kind, const char *dir, const char *base,
                           int k, size_t max_line_bytes, long *min_lines, long *max_lines,
                           mch_err *err);

/* Counts the document frequencies of the whole input that src names (the --write-df pass of
 * `mechir pairs`, with the tokenizer of the model in model_dir, opened metadata-only) and writes
 * them to path. Errors: "document frequencies for --shards: " and the reason. */
mch_status mch_shard_write_df(const char *model_dir, const mch_source_opts *src, const char *path,
                              mch_err *err);

#endif
