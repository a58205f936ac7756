/* One pair's views (`mechir report --pairs OUT/pairs.jsonl --pair ID`): the pair read back from
 * a run's pairs.jsonl or pairs.jsonl.zst (docs/RUN.md), and the files written for it into a
 * directory replaced as a whole (common/outdir.h):
 * - blocks.svg: the blocks effects by position, as MechIR's plot_blocks draws them: one panel per
 *   site (resid_pre, attn_out, mlp_out), x the pair's tokens, y the layer (0 at the bottom), one
 *   diverging scale from -max(1, |effect|) to +max(1, |effect|); every cell carries its value
 *   exactly (data-v, 17 digits) and a <title> to hover;
 * - attention_L.H.svg for each head asked for: the attention pattern of the baseline run, of the
 *   perturbed run and their difference, query (destination) tokens up the y axis, key (source)
 *   tokens along x, as MechIR's attention plots;
 * - index.html: the pair, its tokens with their roles, the pair's head effects and the figures.
 * The coordinator never runs the model: the attention patterns come from the caller. */
#ifndef MCH_PAIR_VIEW_H
#define MCH_PAIR_VIEW_H

#include <stdint.h>

#include "hftok.h"
#include "mch_err.h"

/* A pair of pairs.jsonl as the views need it. Arrays are owned (mch_pair_rec_deinit). */
typedef struct {
    char id[17]; /* 16 lowercase hex digits */
    long line;   /* 1-based line of the pairs file */
    char *qid, *docno, *term;
    int position; /* document tokens before the injected ones */
    double score_baseline, score_perturbed;
    char *skipped, *error;                 /* the run's reason, or NULL */
    int T;                                 /* tokens of both inputs */
    int32_t *ids_baseline, *ids_perturbed; /* (T) */
    uint8_t *roles;                        /* (T) mch_role */
    int L, NH;      /* layers of the maps present (0 without maps); heads (0 without heads) */
    double *heads;  /* (L, NH) effects, or NULL (no heads sweep, or skipped) */
    double *blocks; /* (3, L, T) effects resid_pre, attn_out, mlp_out, or NULL */
} mch_pair_rec;

/* A pair id as `--pair` takes it: 1 to 16 hex digits, "0x" allowed, any case, into the
 * 16-digit lowercase form the pairs file writes (out, 17 bytes). @return 0, or -1 when s is not
 * such an id. */
int mch_pair_id_norm(const char *s, char out[17]);

/* Finds pair id (mch_pair_id_norm's form) in the pairs file path (plain, or .zst: the lines
 * decompressed) and reads it into *out. Every field the views use is checked: ids, perturbed ids
 * and roles of one length T >= 1, known role names, a blocks map of 3 sites of L rows of T
 * numbers, a heads map of L rows of NH numbers; a failure names the file, the line and the field.
 * A pair that is not in the file is MCH_ERR_ARG "PATH: no pair ID among its N pairs". */
mch_status mch_pair_find(mch_pair_rec *out, const char *path, const char *id, mch_err *err);
void mch_pair_rec_deinit(mch_pair_rec *r); /* accepts a zeroed record */

/* The k heads (at most L * NH) of largest |effect| in the pair's heads map into heads ((k, 2)
 * layer, head; ties in map order). @return how many were written (0 without a heads map). */
int mch_pair_top_heads(const mch_pair_rec *r, int k, int *heads);

/* The token types of the pair's inputs, laid out again by the tokenizer: the query pieces (roles
 * query_*) and the document pieces (injected, doc_*) of the baseline ids assembled with t's
 * special tokens (a pair, or the document alone when there is no query piece) must give the
 * baseline ids back, else the tokenizer is not the run's (MCH_ERR_FORMAT naming the position and
 * both ids). types has room for T. */
mch_status mch_pair_types(const mch_pair_rec *r, const mch_tok *t, int32_t *types, mch_err *err);

/* What the views are drawn from; everything borrowed. */
typedef struct {
    const mch_pair_rec *rec;
    const mch_tok *tok;     /* labels the tokens (mch_tok_token); every id must be inside it */
    const char *pairs_path; /* shown in index.html */
    const char *model_dir;  /* shown in index.html */
    int L, NH;              /* the model's shape: names every possible attention file */
    int n_heads;
    const int *heads;            /* (n_heads, 2) layer, head */
    const float *pat_baseline;   /* (n_heads, T, T) attention patterns, or NULL: none drawn */
    const float *pat_perturbed;  /* (n_heads, T, T), with pat_baseline */
    const char *why_no_patterns; /* index.html's sentence when there are none */
} mch_pair_view;

/* Writes the views into dir (replaced as a whole: a reader sees the old files or the new ones;
 * on failure the old ones are untouched and nothing is left behind). An existing dir may hold
 * only the files of a view (index.html, blocks.svg, attention_L.H.svg of the model's heads).
 * @return MCH_OK, or an error naming the file or the token id outside the vocabulary. */
mch_status mch_pair_view_write(const mch_pair_view *v, const char *dir, mch_err *err);

#endif
