/* The message layer of a run: plain C structs for what travels between the coordinator and the
 * workers (MPI messages), what the resume journal holds and what a circuit map file holds, with
 * the functions that pack them into protobuf bytes (proto/mechir.proto) and unpack and validate
 * untrusted bytes. The generated protobuf-c types never leave proto/msg*.c.
 *
 * Ownership: a struct owns what its pointers point to (heap). Its _deinit function frees the
 * members and zeroes the struct; it accepts NULL and zeroed structs. Strings of a job spec and of
 * a pair input may be NULL in a struct the program builds (packed as empty) and are never NULL
 * in an unpacked one (empty: ""); a result's skip_reason and error are NULL when there is none.
 * An unpack function checks sizes and shapes before it returns anything: on failure the output
 * struct is left zeroed and the message names the field and the numbers. Every string of a job
 * spec, work unit, pair result or circuit map must be valid UTF-8 (it reaches JSON, HTML and SVG
 * outputs); a worker's error message is not checked (it is only logged, and refusing it would
 * hide the failure it reports). */
#ifndef MCH_MSG_H
#define MCH_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "hooks.h"
#include "mch_err.h"

/* ---- the MPI protocol of a run (coordinator/dispatch.c and worker/rank.c) ---------------------
 * 1. rank 0 broadcasts MCH_JOB_HDR_INTS ints (spec bytes < 0: the job failed to start, exit),
 *    then the packed job spec and the output directory (no NUL);
 * 2. MPI_Gather of every rank's host name;
 * 3. each worker sends READY (empty) or ERROR (an mch_error_msg), then each answer of rank 0 is
 *    a UNIT (an mch_work_unit) or STOP (empty); a worker answers a unit with RESULT (an
 *    mch_unit_result whose pairs hold only their index and id) or ERROR. */
enum { MCH_TAG_READY = 1, MCH_TAG_UNIT, MCH_TAG_RESULT, MCH_TAG_STOP, MCH_TAG_ERROR };
enum {
    MCH_JOB_HDR_SPEC_BYTES,
    MCH_JOB_HDR_OUT_BYTES,
    MCH_JOB_HDR_ATTEMPT, /* distinguishes cache files of a resumed run */
    MCH_JOB_HDR_THREADS, /* BLAS threads a rank (0: 1) */
    MCH_JOB_HDR_SCRATCH_MB,
    MCH_JOB_HDR_INTS
};
#define MCH_MSG_MAX_BYTES ((size_t)512 << 20) /* a message larger than this is refused */

/* ---- the job spec: what a run computes ---------------------------------------------------- */

#define MCH_JOB_FORMAT "mechir-job/1"

/* An input file as the job read it when it started (proto InputFile). */
typedef struct {
    char *name;          /* the path as given */
    uint64_t size_bytes; /* 0 when not regular */
    uint64_t xxh3;   /* XXH3_64bits of the contents (common/fingerprint.h); 0 when not regular */
    int not_regular; /* a FIFO or a device: not fingerprinted, so the job cannot be resumed */
} mch_input_file;

typedef struct {
    char *format;                                 /* MCH_JOB_FORMAT */
    char *model_path, *model_sha256, *vocab_hash; /* sha256 of model.safetensors, vocab.txt */
    char *arch, *architecture;                    /* bert, BertForSequenceClassification */
    uint32_t layers, heads, hidden;               /* L, NH, C */
    uint32_t decoder_layers; /* MonoT5: the decoder's layers LD (0: an encoder model); the heads
                              * maps have mch_spec_head_rows rows */
    char *perturbation, *position, *filler, *pooling;
    uint32_t max_span; /* --perturb given: --max-span (0: any span) */
    int stem;
    uint32_t max_len, max_query_len;
    double min_delta;
    uint64_t seed;
    char **sweeps; /* (n_sweeps) names in the order mch_sweeps_names gives */
    size_t n_sweeps;
    uint32_t *head_pos; /* (n_head_pos, 2): layer, head of each head of the head-pos sweep */
    size_t n_head_pos;
    char **cache_hooks; /* (n_cache_hooks) hook names as given, blocks.*.X allowed */
    size_t n_cache_hooks;
    char *cache_dtype, *inputs, *software_version;
    uint32_t bootstrap;   /* Poisson bootstrap replicates B (0: none) */
    double ci_level;      /* level of the percentile intervals, in (0, 1) when bootstrap > 0 */
    char *direction;      /* pairs patched: "any" ("" too), "with" or "against" the axiom */
    char *select;         /* "" (every pair) or "top-delta" */
    char *method;         /* "" (exact patching), "atp" or "atp-qk" (mch_method_of) */
    uint32_t verify_top;  /* atp, atp-qk: components of a pair verified by exact patching (0:
                           * none), plus the resid_pre rows where the ids differ with blocks */
    uint64_t select_k;    /* top-delta: the K pairs with the largest score change */
    int select_per_grade; /* top-delta: K pairs per relevance grade */
    mch_input_file *input_files; /* (n_input_files) --input, --run, --topics, --docs,
                                  * --qrels, --df, --stopwords: those given */
    size_t n_input_files;
} mch_job_spec;

void mch_job_spec_deinit(mch_job_spec *s);
/* Deep copy into dst (which must not own anything). */
mch_status mch_job_spec_copy(mch_job_spec *dst, const mch_job_spec *src, mch_err *err);
/* Packs into a malloc'd buffer (*out, *len). */
mch_status mch_job_spec_pack(const mch_job_spec *s, uint8_t **out, size_t *len, mch_err *err);
/* Input files a spec may list (the source options: --input, --run, --topics, --docs, --qrels,
 * --df, --stopwords). */
#define MCH_SPEC_INPUT_FILES_MAX 16
/* Unpacks and validates (layers and heads 1..1024, known sweeps, heads inside the model); name
 * (a file, "the journal's job spec") starts every message. */
mch_status mch_job_spec_unpack(mch_job_spec *s, const uint8_t *buf, size_t len, const char *name,
                               mch_err *err);

/* Replaces *dst by a copy of src (NULL: ""); 0 when out of memory (*dst unchanged). */
int mch_msg_str(char **dst, const char *src);

/* The one comparison of job specs. SAME_JOB (a resume): every field, the input files' names,
 * sizes and hashes too (and a spec with a non-regular input file never agrees: its contents
 * were not fingerprinted); SAME_MAP (a merge): the fields a map's numbers depend on (not the
 * model path, inputs, input files, cache, selection or version; the seed only when a bootstrap
 * is on, since it draws the replicates' weights). */
typedef enum { MCH_SPEC_SAME_JOB, MCH_SPEC_SAME_MAP } mch_spec_scope;
typedef struct {
    const char *field;   /* "model sha256", "max_len", "sweeps", "input files", ... */
    int plural;          /* "sweeps differ" rather than "differs" */
    char a[256], b[256]; /* both values as printed: 'text' quoted, numbers and lists bare */
    char what[512];      /* input files: the whole difference as a sentence naming the file (a
                          * and b then hold the two file lists); "" for every other field */
} mch_spec_diff;
/* @return 1 and the first differing field in d, or 0 when a and b agree in scope. */
int mch_job_spec_diff(const mch_job_spec *a, const mch_job_spec *b, mch_spec_scope scope,
                      mch_spec_diff *d);

/* Sweeps: "heads,blocks,head-pos" (any order) or "none" alone, to MCH_SWEEP_* bits (none: 0).
 * Errors name the unknown sweep. */
mch_status mch_sweeps_parse(const char *list, unsigned *bits, mch_err *err);
/* The most sweep names a spec holds (every sweep). */
#define MCH_SWEEP_NAMES_MAX 6
/* The names of bits in canonical order ("none" for 0) into names; @return how many
 * (1..MCH_SWEEP_NAMES_MAX). */
size_t mch_sweeps_names(unsigned bits, const char *names[MCH_SWEEP_NAMES_MAX]);
/* The bits of a spec's sweep names (unknown names count as none; unpack refuses them). */
unsigned mch_sweeps_bits(char *const *names, size_t n);

/* How a job finds the patched scores: exact patching (kernels/patch.h) or attribution patching's
 * estimates (kernels/atp.h), plain or with the QK fix. A spec stores "" for exact (so an exact
 * job's spec bytes do not change), "atp" or "atp-qk" otherwise. */
enum { MCH_JOB_EXACT, MCH_JOB_ATP, MCH_JOB_ATP_QK };
/* "exact", "" or NULL: MCH_JOB_EXACT; "atp", "atp-qk": the others; anything else -1. */
int mch_method_of(const char *s);
/* The spec's string of a method (exact: ""). */
const char *mch_method_spec_name(int method);

/* The most components a pair's estimates are verified for (--verify-top). */
#define MCH_VERIFY_TOP_MAX 4096

/* Directions: "any" (or "" or NULL) 0, "with" 1, "against" -1; anything else -2. */
int mch_direction_parse(const char *s);
#define MCH_BOOTSTRAP_MAX 100000
#define MCH_BOOTSTRAP_DEFAULT 200
#define MCH_CI_DEFAULT 0.95

/* Heads: "L.H,L.H,..." to (*n, 2) layer, head pairs (malloc'd). Each number is digits only
 * (no sign, space or exponent) and at most MCH_HEAD_NUMBER_MAX, so it is never cut to 32 bits
 * or to an int; the model's own bounds are checked later (mch_heads_outside). */
#define MCH_HEAD_NUMBER_MAX 65535
mch_status mch_heads_parse(const char *list, uint32_t **pairs, size_t *n, mch_err *err);
/* @return the index + 1 of the first head outside a model of L layers and NH heads, or 0. */
size_t mch_heads_outside(const uint32_t *pairs, size_t n, uint32_t L, uint32_t NH);
/* Rows of a heads map: L for an encoder; L + 2 LD for a MonoT5 (encoder self-attention, then
 * the decoder's self-attention and cross-attention layers). */
static inline size_t mch_spec_head_rows(const mch_job_spec *s)
{
    return (size_t)s->layers + 2 * (size_t)s->decoder_layers;
}
/* Which heads a row of a heads map is: 0 the encoder's (every model), 1 a MonoT5's decoder
 * self-attention, 2 its cross-attention; *layer gets the layer within that stack. */
static inline int mch_spec_head_part(const mch_job_spec *s, size_t row, int *layer)
{
    size_t L = s->layers, LD = s->decoder_layers;
    int part = row < L ? 0 : row < L + LD ? 1 : 2;
    *layer = (int)(part == 0 ? row : part == 1 ? row - L : row - L - LD);
    return part;
}

/* Comma-separated items (empty ones dropped) into a malloc'd array of malloc'd strings; free
 * with mch_msg_strv_free. */
mch_status mch_list_split(const char *list, char ***items, size_t *n, mch_err *err);
void mch_msg_strv_free(char **v, size_t n);

/* ---- work units and results --------------------------------------------------------------- */

/* One pair to patch; index is its position among the pairs of the input (the reduction order). */
typedef struct {
    uint64_t index, pair_id;
    size_t T;                                            /* tokens of both runs */
    int32_t *ids_baseline, *ids_perturbed, *token_types; /* (T) */
    uint8_t *roles;                                      /* (T) mch_role */
    size_t Tq;
    int32_t *query_ids; /* (Tq) bi-encoder query, or NULL */
    char *qid, *docno, *term;
    int32_t position, relevance, rank;     /* relevance and rank: -1 unknown */
    char *alignment;                       /* given pairs: the alignment's kind; "" otherwise */
    int32_t span_baseline, span_perturbed; /* given pairs: the differing span's tokens */
    char *pair_key;                        /* given pairs: the input's pair key, or "" */
} mch_pair_input;
void mch_pair_input_deinit(mch_pair_input *p);
/* A deep copy of src into dst (which owns nothing yet); NULL strings become "". */
mch_status mch_pair_input_copy(mch_pair_input *dst, const mch_pair_input *src, mch_err *err);

/* What a worker does with a unit's pairs: patch them with the spec's sweeps, or compute only
 * both scores (the first pass of --select top-delta: two forwards a pair, no patch, no cache). */
typedef enum { MCH_UNIT_PATCH = 0, MCH_UNIT_SCORE = 1, MCH_UNIT_MODES } mch_unit_mode;

/* A unit of work, rank 0 to a worker. Packing fills a malloc'd buffer; unpacking refuses a
 * unit in which a pair's arrays differ in length, a role is unknown or the mode is unknown. */
typedef struct {
    uint64_t unit_id;
    mch_pair_input *pairs; /* (n_pairs) */
    size_t n_pairs;
    uint32_t mode; /* mch_unit_mode */
} mch_work_unit;
mch_status mch_work_unit_pack(const mch_work_unit *u, uint8_t **out, size_t *len, mch_err *err);
mch_status mch_work_unit_unpack(mch_work_unit *u, const uint8_t *buf, size_t len, mch_err *err);
void mch_work_unit_deinit(mch_work_unit *u);

/* A pair's patching result. Effects and raw patched scores come in pairs of equal length; an
 * array is absent (0, NULL) when its sweep did not run or the pair was skipped or failed. */
typedef struct {
    mch_pair_input pair; /* from a worker: only index and pair_id */
    double score_baseline, score_perturbed;
    char *skip_reason, *error; /* NULL when none */
    size_t n_heads;            /* L * NH */
    float *heads, *heads_scores;
    size_t n_blocks; /* 3 * L * T: resid_pre, attn_out, mlp_out x layer x token */
    float *blocks, *blocks_scores;
    size_t n_head_pos_z; /* K * T */
    float *head_pos_z, *head_pos_z_scores;
    size_t n_head_pos_pattern; /* K * T */
    float *head_pos_pattern, *head_pos_pattern_scores;
    /* verify_top: the verified components, the verified_top of largest |estimate - baseline|
     * first, then the resid_pre rows where the ids differ (a component may be in both). */
    size_t n_verified, verified_top;
    int32_t *verified_comp;                    /* (n_verified, 3): block (-1: a head), layer,
                                                * head or position (kernels/atp.h mch_component) */
    float *verified_estimate, *verified_exact; /* (n_verified) patched scores */
    size_t n_qkv;                              /* 3 * L * NH: q, k, v x layer x head */
    float *qkv, *qkv_scores;
    size_t n_pattern; /* L * NH */
    float *pattern, *pattern_scores;
    size_t n_resid_mid; /* L * T */
    float *resid_mid, *resid_mid_scores;
} mch_pair_result;
void mch_pair_result_deinit(mch_pair_result *r);
/* A journal record: the result with the coordinator's own pair. Unpacking checks the pair and
 * that effects and scores have equal lengths; mch_pair_result_check adds the spec's shapes. */
mch_status mch_pair_result_pack(const mch_pair_result *r, uint8_t **out, size_t *len, mch_err *err);
mch_status mch_pair_result_unpack(mch_pair_result *r, const uint8_t *buf, size_t len, mch_err *err);
/* Checks a result's arrays against its pair and the spec (L*NH heads, 3*L*T blocks, K*T
 * head-pos, 3*L*NH qkv, L*NH pattern, L*T resid-mid), whatever the result says: a skipped or failed
 * pair has no arrays; every effect, patched score and both scores are finite; verified components
 * lie inside (L, NH, T) with finite scores, verified_top <= n_verified. @return 0, or 1 with why
 * filled. */
int mch_pair_result_check(const mch_pair_result *r, int L, int NH, int K, char *why,
                          size_t why_len);
/* The same with HR rows of heads (mch_spec_head_rows: L + 2 LD for a MonoT5). */
int mch_pair_result_check_rows(const mch_pair_result *r, int L, int HR, int NH, int K, char *why,
                               size_t why_len);
/* The pair index of a packed result (the journal's record index): 0, or 1 when it does not
 * unpack. */
int mch_pair_result_index(const uint8_t *buf, size_t len, uint64_t *index);

/* A worker's answer to a unit (each result's pair holds only its index and id). Unpacking
 * checks every result as mch_pair_result_unpack does and names its place in the unit. */
typedef struct {
    uint64_t unit_id;
    uint32_t rank;            /* the worker's */
    double seconds;           /* spent on the unit */
    mch_pair_result *results; /* (n_results) in the unit's pair order */
    size_t n_results;
} mch_unit_result;
void mch_unit_result_deinit(mch_unit_result *r);
mch_status mch_unit_result_pack(const mch_unit_result *r, uint8_t **out, size_t *len, mch_err *err);
mch_status mch_unit_result_unpack(mch_unit_result *r, const uint8_t *buf, size_t len, mch_err *err);

/* A worker's failure: the message travels as given ("on HOST: ..."), never cut. */
typedef struct {
    uint32_t rank;    /* the worker's */
    uint64_t pair_id; /* the pair it was on, or 0 */
    char *message;
} mch_error_msg;
mch_status mch_error_msg_pack(const mch_error_msg *e, uint8_t **out, size_t *len, mch_err *err);
mch_status mch_error_msg_unpack(mch_error_msg *e, const uint8_t *buf, size_t len, mch_err *err);
void mch_error_msg_deinit(mch_error_msg *e);

/* ---- statistics and circuit maps ---------------------------------------------------------- */

/* Per-cell Welford statistics in double: count, mean, M2 (sum of squared deviations). */
typedef struct {
    size_t cells;
    uint64_t *n;
    double *mean, *m2;
} mch_stats;
mch_status mch_stats_init(mch_stats *s, size_t cells, mch_err *err); /* zeroed cells */
void mch_stats_deinit(mch_stats *s);
/* Adds one value to cell i (Welford's update). */
void mch_stats_add(mch_stats *s, size_t i, double x);
/* Folds b into a, cell by cell (Chan, Golub and LeVeque: delta = mean_b - mean_a; mean = mean_a
 * + delta n_b / n; M2 = M2_a + M2_b + delta^2 n_a n_b / n). Both have the same cells. */
void mch_stats_fold(mch_stats *a, const mch_stats *b);
/* The sample standard deviation of cell i; NAN when n < 2. */
double mch_stats_std(const mch_stats *s, size_t i);

/* Exact sums: a 128-bit two's complement integer (hi, lo) counting units of 2^-40, so sums of
 * any number of values in any order or grouping are equal bit for bit. A value must be below
 * 2^22 in magnitude (mch_xsum_quantize refuses it otherwise). */
typedef struct {
    int64_t hi;
    uint64_t lo;
} mch_xsum;
#define MCH_XSUM_FRAC_BITS 40
#define MCH_XSUM_MAX 4194304.0 /* 2^22 */
/* v rounded to the nearest unit into *q; 1 when |v| >= MCH_XSUM_MAX or v is not finite. */
int mch_xsum_quantize(double v, int64_t *q);
void mch_xsum_add(mch_xsum *s, int64_t q, unsigned times); /* s += times * q */
double mch_xsum_value(mch_xsum s);                         /* the sum, rounded to a double */

/* The Poisson(1) weight of pair pair_id in bootstrap replicate b (1..B), a function of (seed,
 * pair_id, b) alone (docs/STATISTICS.md gives the generator); 0..20. */
unsigned mch_poisson_weight(uint64_t seed, uint64_t pair_id, uint32_t b);
/* w[0] = 1 (the estimate itself), w[b] = mch_poisson_weight(seed, pair_id, b) for b = 1..B. */
void mch_bootstrap_weights(uint64_t seed, uint64_t pair_id, uint32_t B, uint8_t *w);

/* The estimates of a set of cells (components): the mean of ratios (Welford over the pairs'
 * effects) and, per replicate b = 0..B, the exact sums of w_b (patched - baseline) and w_b
 * (perturbed - baseline): replicate 0 (weights 1) gives the ratio of means, replicates 1..B the
 * Poisson bootstrap. num and den are cell-major: index cell * (B + 1) + b. */
typedef struct {
    size_t cells;
    uint32_t B;
    mch_stats mor;
    mch_xsum *num, *den;
} mch_est;
mch_status mch_est_init(mch_est *e, size_t cells, uint32_t B, mch_err *err); /* zeroed */
void mch_est_deinit(mch_est *e);
/* Adds one pair to a cell: its effect, its quantized patched - baseline and perturbed -
 * baseline, and its weights w[0..B] (mch_bootstrap_weights). */
void mch_est_add(mch_est *e, size_t cell, double effect, int64_t qnum, int64_t qden,
                 const uint8_t *w);
/* a += b, cell by cell (same cells and B). */
void mch_est_fold(mch_est *a, const mch_est *b);
/* Replicate b's ratio of sums (b = 0: the ratio of means); NAN when its denominator is 0. */
double mch_est_ratio(const mch_est *e, size_t cell, uint32_t b);
/* The percentile interval at level (numpy.percentile's linear rule at (1 - level) / 2 and
 * (1 + level) / 2) of the finite replicate ratios 1..B; scratch holds B doubles. @return 0, or
 * 1 when fewer than 2 replicates are finite (no interval). */
int mch_est_interval(const mch_est *e, size_t cell, double level, double *scratch, double *lo,
                     double *hi);

#define MCH_CMAP_FORMAT "mechir-circuit/2"
#define MCH_CMAP_MAX_BYTES ((size_t)1 << 30)
/* The most strata a map holds: relevance grades + rank buckets of 10 + 2 directions (a pair counts
 * in one of each kind). 4096 leaves room for rank depths to 40,000 (TREC runs: 1,000, 100
 * buckets) and keeps a merge's work and a report's pages bounded (docs/STATISTICS.md). */
#define MCH_CMAP_MAX_STRATA 4096

/* *sum += x; 1 (and *sum unchanged) when the sum does not fit 64 bits. */
static inline int mch_u64_add(uint64_t *sum, uint64_t x)
{
    if (x > UINT64_MAX - *sum) return 1;
    *sum += x;
    return 0;
}

typedef struct {
    char *name; /* "relevance=1", "rank=1-10", "direction=with" */
    uint64_t pairs;
    mch_est heads;  /* (L, NH) */
    mch_est blocks; /* (3, L, R) */
} mch_cmap_stratum;

/* A circuit map. R = MCH_ROLE_COUNT token roles, named by mch_role_name in order. Every mch_est
 * has B = spec.bootstrap replicates. */
typedef struct {
    mch_job_spec spec; /* what it was computed from (deterministic fields only) */
    uint64_t pairs_total, pairs_used, pairs_skipped, pairs_failed;
    uint64_t pairs_with, pairs_against; /* not failed, by the direction of the score change */
    mch_est heads;                      /* (L, NH) */
    mch_est blocks;                     /* (3, L, R): resid_pre, attn_out, mlp_out x layer x role */
    mch_est hpz;                        /* (K, R) head-pos hook_z by role */
    mch_est hpp;                        /* (K, R) head-pos hook_pattern by role */
    mch_est qkv;                        /* (3, L, NH) hook_q, hook_k, hook_v of a head */
    mch_est pattern;                    /* (L, NH) a head's whole hook_pattern */
    mch_est rmid;                       /* (L, R) hook_resid_mid by role */
    /* verify_top: exact effects of the verified components and their estimates over the same
     * pairs (a cell's n: the pairs where it was verified); vrank (1 cell): per-pair Spearman
     * correlation of estimated and exact effects of the verified components. */
    mch_est vheads, vheads_est;   /* (L, NH) */
    mch_est vblocks, vblocks_est; /* (3, L, R) */
    mch_stats vrank;
    mch_cmap_stratum *strata; /* (n_strata) */
    size_t n_strata;
    uint64_t *pair_ids; /* (n_pair_ids) sorted, unique: the pairs covered (used or skipped) */
    size_t n_pair_ids;
    char **sites; /* (n_sites) sorted: provenance */
    size_t n_sites;
    char **provenance; /* (n_provenance) sorted, unique: "SITE\tBLAS description" */
    size_t n_provenance;
} mch_cmap;
/* The estimates of a map, in this order (MCH_CMAP_EST of them). */
enum { MCH_CMAP_EST = 11 };
/* Pointers to m's estimates: heads, blocks, hpz, hpp, vheads, vheads_est, vblocks,
 * vblocks_est, qkv, pattern, rmid. */
void mch_cmap_ests(mch_cmap *m, mch_est *out[MCH_CMAP_EST]);
/* The cells of each of a map's estimates for a spec (order of mch_cmap_ests): those of a sweep
 * that does not run, and the verified ones without verify_top, are 0. */
void mch_cmap_cells(const mch_job_spec *spec, size_t cells[MCH_CMAP_EST]);
void mch_cmap_deinit(mch_cmap *m);
mch_status mch_cmap_pack(const mch_cmap *m, uint8_t **out, size_t *len, mch_err *err);
/* Unpacks an untrusted map and validates it before use: format, layer and head counts, every
 * statistics array's length, counts that add up without wrapping (used + skipped + failed =
 * total = the number of pair ids; with + against <= used + skipped; each cell's n and each
 * stratum's pairs <= used, the strata of one kind together <= used), finite means and min_delta,
 * non-negative M2, sorted unique pair ids, heads inside the model, at most MCH_CMAP_MAX_STRATA
 * strata with unique names of the kinds mch_cmap_acc writes, and every string valid UTF-8.
 * Messages start with name and name the field. */
mch_status mch_cmap_unpack(mch_cmap *m, const uint8_t *buf, size_t len, const char *name,
                           mch_err *err);

#endif
