/* Given (pre-perturbed) pairs: a baseline and a perturbed document written by the user, aligned
 * to equal token length as MechIR's pad_by_perturb_type pads them, then laid out as the perturber
 * lays out its pairs (the same mch_pair, with token roles).
 *
 * Alignment: the documents' tokens are compared from both ends (longest common prefix first,
 * then the longest common suffix of what is left); what lies between is the differing span of
 * each side. The shorter span is padded with the filler token right after itself (MechIR's
 * replace), which for an insertion is at the insertion point: append (the baseline padded at
 * its end), prepend (at its start), insert (in the middle), delete (the perturbed side padded).
 * Spans of equal length need no filler. Invariant of every aligned pair: both documents have the
 * same length and agree outside the span [position, position + max(n_baseline, n_perturbed)). */
#ifndef MCH_ALIGN_H
#define MCH_ALIGN_H

#include <stddef.h>
#include <stdint.h>

#include "hftok.h"
#include "perturb.h"

typedef enum {
    MCH_ALIGN_SAME,    /* the documents have the same tokens */
    MCH_ALIGN_APPEND,  /* tokens added after the baseline's last token */
    MCH_ALIGN_PREPEND, /* tokens added before its first */
    MCH_ALIGN_INSERT,  /* tokens added between two of its tokens */
    MCH_ALIGN_DELETE,  /* tokens of the baseline removed */
    MCH_ALIGN_REPLACE  /* a span of the baseline replaced by another (either may be longer) */
} mch_align_kind;
const char *mch_align_name(mch_align_kind k); /* "same", "append", ... */

typedef struct {
    mch_align_kind kind;
    int position;    /* document tokens before the differing span */
    int n_baseline;  /* tokens of the span in the baseline document, fillers not counted */
    int n_perturbed; /* ... in the perturbed document */
} mch_alignment;

/* Aligns the baseline document's ids a (na) with the perturbed document's b (nb) into out_a and
 * out_b (room for na + nb ids each), *n set to their common length. max_span > 0 bounds the
 * longer span. @return 1, or 0 with why (nothing usable in the outputs) when the documents
 * differ in more than one span (spans of different lengths that share a token: a token kept
 * between two changes, where no single filler run can align them) or in more than max_span
 * tokens. */
int mch_align_docs(const int32_t *a, int na, const int32_t *b, int nb, int32_t filler, int max_span,
                   int32_t *out_a, int32_t *out_b, int *n, mch_alignment *al, char *why,
                   size_t why_cap);

/* Builds aligned pairs of given documents with the perturber's layout (cross-encoder, or
 * bi-encoder with the query apart, or MonoT5's prompt) and options: max_len, max_query_len,
 * filler, stopwords, stem; kind and position are not used. A MonoT5 pair whose prompt does not
 * tokenize as its parts side by side (mch_monot5_prompt_splits) is skipped. */
typedef struct mch_given mch_given;
mch_status mch_given_create(mch_given **out, const mch_tok *t, const mch_perturb_opts *o,
                            int max_span, mch_err *err);
void mch_given_free(mch_given *g); /* accepts NULL */

/* The pair of one record into *out (arrays owned by g, valid until its next call) and its
 * alignment into *al. pair_key (may be NULL or "") tells apart several pairs of one (qid, docno):
 * the pair id is mch_pair_id(qid, docno) without it, else mch_pair_id(qid, docno + 0x1F +
 * pair_key). A pair that cannot be aligned, or whose differing span does not fit the max_len
 * window, gives MCH_OK with out->skip set. Roles: cls and sep on the special tokens; injected on
 * the span's positions (fillers included) in both inputs; a query or document word that spells
 * the span's words in order (the perturbed side's, or the baseline's for a deletion) gets
 * query_term or doc_term; another document word that is a query term (mch_query_terms, by stem
 * with stem) doc_match; the rest query_other or doc_other. out->term holds the perturbed span's
 * words (cut to 127 bytes), out->position and out->n_term the span's start and length. */
mch_status mch_given_build(mch_given *g, const char *qid, const char *query, const char *docno,
                           const char *pair_key, const char *baseline, const char *perturbed,
                           mch_pair *out, mch_alignment *al, mch_err *err);

#endif
