/* The pairs of a pair source written as JSONL (what `mechir pairs` prints): one object a line,
 * in source order, so a line is the same whether the input is whole or a shard. */
#ifndef MCH_PAIRS_OUT_H
#define MCH_PAIRS_OUT_H

#include <stdio.h>

#include "pairs_source.h"

/* Writes one pair as a JSON line: pair_id (16 hex digits), qid, docno, perturbation, term,
 * position, relevance and rank when known, alignment (given pairs: al not NULL), baseline_ids,
 * perturbed_ids, token_types, query_ids (bi-encoder), roles. Write errors show in ferror(f). */
void mch_pair_write_json(FILE *f, const mch_pair *p, const mch_record *r, const char *perturbation,
                         const mch_alignment *al);

/* A given pair's alignment as the JSON object {"kind", "position", "baseline_tokens",
 * "perturbed_tokens", "baseline_fillers", "perturbed_fillers"} (no key before it). */
void mch_alignment_write_json(FILE *f, const char *kind, int position, int n_baseline,
                              int n_perturbed);

/* Writes every remaining pair of s to f. After each pair, on_pair (when not NULL) is called with
 * user and the count so far (progress). *n receives the pairs written, also on failure.
 * @return MCH_OK, or the source's error (a fatal input error; the file name and line are in
 * err). Skipped records are not errors: they are in the source's report. */
mch_status mch_pairs_write(mch_pair_source *s, FILE *f, void (*on_pair)(void *user, long n),
                           void *user, long *n, mch_err *err);

#endif
