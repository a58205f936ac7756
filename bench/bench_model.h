/* Shared by the benchmarks: a deterministic random number stream and a writer for a random-weight
 * model directory in the shape of cross-encoder/ms-marco-MiniLM-L-6-v2, which the benchmarks then
 * load with mch_model_open exactly as mechir does. The stream is one global sequence, so a
 * benchmark that writes the model first and then draws token ids sees the same ids every run. */
#ifndef MCH_BENCH_MODEL_H
#define MCH_BENCH_MODEL_H

#include <stdint.h>

/* The shape of cross-encoder/ms-marco-MiniLM-L-6-v2. */
enum { SHAPE_C = 384, SHAPE_L = 6, SHAPE_NH = 12, SHAPE_FF = 1536, SHAPE_V = 30522 };
enum { SHAPE_MAXPOS = 512, SHAPE_TYPES = 2, SHAPE_LABELS = 1, N_SPECIAL = 5 };
/* Token ids of the generated vocab. */
enum { BENCH_ID_CLS = 2, BENCH_ID_SEP = 3 };

/* Monotonic wall-clock seconds. */
double mch_bench_now_s(void);
/* Median of v (n >= 1), sorting v in place. */
double mch_bench_median(double *v, int n);

/* Next value of the xorshift64* stream. */
uint64_t mch_bench_rng_next(void);
/* Uniform in [-a, a). */
float mch_bench_rng_uniform(float a);

/* Writes config.json, vocab.txt ([PAD] [UNK] [CLS] [SEP] [MASK], then "w5" .. "w30521") and an
 * F32 model.safetensors (weights uniform with BERT's std 0.02, LayerNorm 1 and 0) into the
 * existing directory dir. Returns 1, or 0 after a message on stderr prefixed with prog. */
int mch_bench_write_model(const char *dir, const char *prog);
/* Removes those three files and the directory (errors ignored). */
void mch_bench_remove_model(const char *dir);

#endif
