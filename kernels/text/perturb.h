/* Axiomatic perturbations: from a query-document record to an aligned baseline/perturbed pair of
 * token ids with token roles, as MechIR builds them.
 *
 * Query terms are the words of the tokenizer's basic step (lowercased, accents stripped,
 * punctuation removed) minus stopwords and words shorter than 3 characters. The injections
 * (tfc1, tdc, lnc1, inject) give the perturbed document the term's wordpieces at the position
 * and the baseline the filler wordpiece (default "a") once per term wordpiece; tfc2 adds the
 * term once to both and a second time (filler in the baseline); replace swaps one document word
 * for the term; lnc2 appends copies of the document (fillers in the baseline). Either way both
 * inputs have the same length and token types and differ only at the positions with the role
 * injected (docs/PERTURBATIONS.md). Perturbing happens after truncation.
 *
 * Every random choice for a pair is drawn from a generator seeded with (job seed, pair id), so
 * a shard of a collection picks the same terms as the whole collection. */
#ifndef MCH_PERTURB_H
#define MCH_PERTURB_H

#include <stdint.h>
#include <stdio.h>

#include "strmap.h"
#include "hftok.h"

/* Pair id: FNV-1a 64 over the bytes of qid, one 0x1F byte, and the bytes of docno. */
uint64_t mch_pair_id(const char *qid, const char *docno);
/* The pair's generator seed: splitmix64(job_seed ^ splitmix64(pair_id)). */
uint64_t mch_pair_seed(uint64_t job_seed, uint64_t pair_id);
/* splitmix64 step: advances *state and returns the next 64 random bits. */
uint64_t mch_rng_next(uint64_t *state);

typedef enum {
    MCH_PERTURB_TFC1,    /* one query term chosen at random */
    MCH_PERTURB_TDC,     /* the query term with the highest IDF (lowest df) */
    MCH_PERTURB_LNC1,    /* a sampled collection word that is not a query term */
    MCH_PERTURB_INJECT,  /* the record's term (or --term) */
    MCH_PERTURB_REPLACE, /* TFC1-R: a document word replaced by tfc1's query term */
    MCH_PERTURB_TFC2,    /* tfc1's query term added twice against once */
    MCH_PERTURB_LNC2,    /* the document repeated k times against once (filler-padded) */
    MCH_PERTURB_COUNT
} mch_perturb_kind;
const char *mch_perturb_name(mch_perturb_kind k);
int mch_perturb_parse(const char *s, mch_perturb_kind *k); /* 1 when known */
/* The valid names as "a, b, c or d", for messages. */
const char *mch_perturb_names(void);
/* The valid name nearest to s (case-insensitive edit distance) when it is at most 2 edits away
 * or one of the two is a prefix of the other, else NULL: what a message suggests for a typo. */
const char *mch_perturb_nearest(const char *s);
/* The sign of the score change the axiom expects of the pair: +1 where the perturbed input
 * should score higher (tfc1, tdc, inject, replace, tfc2: one more occurrence of a query term;
 * lnc2: k copies score at least the single document), -1 for lnc1 (it should not rise). */
int mch_perturb_axiom_sign(mch_perturb_kind k);

/* Spells the word of pieces ids[i..j) into buf (cap bytes, NUL-terminated; *len its length):
 * what each piece adds (mch_tok_piece), with fold lowercased and unaccented (a cased
 * tokenizer). 0 when it does not fit or holds an unknown piece: an unknown token spells no word,
 * so it matches nothing. */
int mch_word_spell(const mch_tok *v, int fold, const int32_t *ids, int i, int j, char *buf,
                   size_t cap, size_t *len);

/* Token roles as Chen, Merullo and Eickhoff (SIGIR 2024) group positions. Words are the
 * wordpiece groups of the window (a piece and its "##" continuations), spelled by joining the
 * pieces; the injected term's words come from its own wordpieces. A query or document word is
 * an occurrence of the term when a run of consecutive words spells the term's words in order
 * (each equal, or with stemming the same stem); every piece of such a run gets the term role.
 * Document words are those of the document before injection, cut by truncation to the pieces
 * inside the window. The same roles hold for the baseline and the perturbed input. */
typedef enum {
    MCH_ROLE_CLS,
    MCH_ROLE_SEP,
    MCH_ROLE_QUERY_TERM,  /* query pieces of an occurrence of the injected term */
    MCH_ROLE_QUERY_OTHER, /* the other query pieces */
    MCH_ROLE_INJECTED,    /* the positions where the inputs differ (see docs/PERTURBATIONS.md) */
    MCH_ROLE_DOC_TERM,    /* document pieces of an occurrence of the injected term (and tfc2's
                             first added occurrence) */
    MCH_ROLE_DOC_MATCH,   /* other document pieces whose word is a query term */
    MCH_ROLE_DOC_OTHER,
    MCH_ROLE_COUNT
} mch_role;
const char *mch_role_name(mch_role r); /* "cls", "sep", "query_term", ...; "?" when unknown */

/* Document frequencies: word -> number of documents containing it, and N documents. */
typedef struct mch_df mch_df;
mch_df *mch_df_create(void);
void mch_df_free(mch_df *df); /* accepts NULL */
/* Counts each basic-step word of text once (the text is one more document). */
mch_status mch_df_add_doc(mch_df *df, const char *text, size_t len, mch_err *err);
/* Reads `term<TAB>df` lines plus one `#N<TAB><documents>` line; bad lines are errors naming
 * FILE:LINE, and so is a line longer than max_line_bytes (0: MCH_LINE_BYTES_DEFAULT). */
mch_status mch_df_load(mch_df *df, const char *path, size_t max_line_bytes, mch_err *err);
/* Writes the table (sorted by term, #N first) atomically (temp file + rename). */
mch_status mch_df_save(const mch_df *df, const char *path, mch_err *err);
long mch_df_docs(const mch_df *df);
long mch_df_get(const mch_df *df, const char *word, size_t len); /* 0 when absent */

/* A set of words (stopwords). */
mch_strmap *mch_stopwords_default(void); /* the built-in English list; NULL when out of memory */
/* One word a line (blank lines and lines starting with # ignored); a line longer than
 * max_line_bytes (0: MCH_LINE_BYTES_DEFAULT) is an error naming FILE:LINE. */
mch_status mch_stopwords_load(mch_strmap **out, const char *path, size_t max_line_bytes,
                              mch_err *err);

typedef enum { MCH_POS_END, MCH_POS_START, MCH_POS_INDEX } mch_pos_kind;

typedef struct {
    mch_perturb_kind kind;
    mch_pos_kind pos;
    int pos_index;      /* MCH_POS_INDEX: document tokens before the term (replace: the first
                           replaceable word from there; lnc2 takes MCH_POS_END only) */
    const char *filler; /* default "a"; must be one token */
    const char *term;   /* MCH_PERTURB_INJECT default term (a record's term wins) */
    int max_len;        /* tokens of the (cross-encoder) pair or bi-encoder document */
    int max_query_len;  /* default 64 */
    int bi;             /* bi-encoder layout: [CLS] doc' [SEP], query encoded alone */
    int monot5;         /* MonoT5 layout: "Query: q Document: doc' Relevant:" </s>, one sequence */
    int stem;           /* match query terms by Snowball English stems */
    uint64_t seed;      /* job seed */
    const mch_strmap *stopwords; /* NULL: the built-in list */
    const mch_df *df;            /* needed by tdc and lnc1 */
} mch_perturb_opts;

/* One built pair; arrays are owned by the perturber and valid until its next call. */
typedef struct {
    uint64_t pair_id;
    char term[128]; /* the injected text ("" when skipped, and for lnc2) */
    int position;   /* document tokens before the added text (tfc2: before its first added
                       occurrence; replace: before the replaced word; lnc2: before the copies) */
    int n_term;     /* positions with the role injected, where the inputs may differ */
    int T;          /* tokens of both inputs */
    const int32_t *ids_baseline, *ids_perturbed, *token_types;
    const uint8_t *roles; /* (T) mch_role */
    int Tq;               /* bi-encoder: query tokens */
    const int32_t *query_ids;
    char skip[160]; /* non-empty: the pair could not be built, and why */
} mch_pair;

typedef struct mch_perturber mch_perturber;

/* Checks the options (filler is one token; tdc/lnc1 have a df table; max_len fits; lnc2 at the
 * end). The pair
 * is laid out by the tokenizer's post-processor (BERT [CLS] q [SEP] d [SEP], RoBERTa
 * <s> q </s></s> d </s>, ...); its special tokens take the roles cls (one before every text) and
 * sep. t must outlive the perturber. */
mch_status mch_perturber_create(mch_perturber **out, const mch_tok *t, const mch_perturb_opts *o,
                                mch_err *err);
void mch_perturber_free(mch_perturber *p); /* accepts NULL */

/* Builds the pair of one record. A record that cannot be perturbed (no query term, a term
 * without wordpieces, no room left for the document, no document word to replace, no room for a
 * second copy) gives MCH_OK with out->skip set; errors
 * are only invalid UTF-8 or out of memory. term may be NULL. */
mch_status mch_perturb(mch_perturber *p, const char *qid, const char *query, const char *docno,
                       const char *text, const char *term, mch_pair *out, mch_err *err);

/* MonoT5 (o->monot5): the prompt's own tokens plus the template's suffix, as n_special counts
 * them ("Query:", "Document:", "Relevant:", </s>); for another model the post-processor's. */
int mch_perturber_n_special(const mch_perturber *p);

/* MonoT5: *split = 1 when the prompt "Query: {query} Document: {text} Relevant:" tokenizes as
 * the prompt's words, the query and the text tokenized apart, side by side (so the document's
 * tokens can be cut or padded without changing the rest); 0 otherwise. */
mch_status mch_monot5_prompt_splits(mch_perturber *p, const char *query, const char *text,
                                    int *split, mch_err *err);

/* MonoT5: writes the prompt "Query:" q[0..nq) "Document:" d[0..nd) "Relevant:" </s> into ids
 * (room for nq + nd + n_special) and, when special is not NULL, 1 for the prompt's tokens and 0
 * for the query's and document's; returns its length. */
int mch_monot5_assemble(const mch_perturber *p, const int32_t *q, int nq, const int32_t *d, int nd,
                        int32_t *ids, uint8_t *special);

/* The query terms of a query, in order of first occurrence, deduplicated; written into buf
 * separated by NULs, count returned (or -1 with err set). Exposed for tests and docs. */
int mch_query_terms(mch_perturber *p, const char *query, char *buf, size_t cap, mch_err *err);

#endif
