/* Scoring texts with a loaded model: tokenise, batch, forward, and turn outputs into relevance
 * scores. Cross-encoder: the classification logit of [CLS] q [SEP] d [SEP]. Bi-encoder: the dot
 * product of the query's and the document's pooled vectors, each encoded as [CLS] text [SEP]. */
#ifndef MCH_SCORE_H
#define MCH_SCORE_H

#include "encoder.h"
#include "utf8.h"

typedef struct {
    int max_len; /* tokens a sequence (pair for a cross-encoder); 0 = max_position_embeddings */
    int max_query_len; /* cross-encoder query cut; 0 = 64 */
    mch_pooling pooling;
    int batch_size; /* pairs a forward; 0 = 32 */
} mch_score_opts;

typedef struct mch_scorer mch_scorer;

/* Sizes every buffer for opts.batch_size pairs once. The model must have a vocabulary. */
mch_status mch_scorer_create(mch_scorer **out, const mch_model *m, const mch_score_opts *opts,
                             mch_err *err);
void mch_scorer_free(mch_scorer *s); /* accepts NULL */
int mch_scorer_batch_size(const mch_scorer *s);

/* Scores n (<= batch size) query-document pairs into scores (n). Texts must be valid UTF-8. */
mch_status mch_scorer_run(mch_scorer *s, const char *const *queries, const char *const *docs, int n,
                          float *scores, mch_err *err);

#endif
