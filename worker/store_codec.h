/* The value codec of the activation cache (docs/CACHE.md, "Chunk"): float32 to a chunk's dtype
 * (bf16 and fp16 round to nearest, ties to even) laid out as byte planes, and back. Shared by the
 * store, the .npy writer (f32 without planes: little-endian floats) and
 * bench/bench_cache_codec.c. Pure functions: no allocation, no failure. */
#ifndef MCH_STORE_CODEC_H
#define MCH_STORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "act_store.h"

/* Bytes of one value stored as dt: 4 for f32, 2 for bf16 and fp16. */
size_t mch_store_dtype_bytes(mch_store_dtype dt);

/* src (n floats) -> dst (n * mch_store_dtype_bytes(dt) bytes): each value converted to dt, then
 * with shuffle as planes (byte b of value i at b * n + i, b = 0 the least significant), without
 * it value after value, little-endian. The store always shuffles. */
void mch_store_encode_values(mch_store_dtype dt, int shuffle, const float *src, size_t n,
                             unsigned char *dst);

/* The inverse of mch_store_encode_values: dst gets n floats. Exact for every value the encoder
 * can produce. */
void mch_store_decode_values(mch_store_dtype dt, int shuffle, const unsigned char *src, size_t n,
                             float *dst);

/* The float32 bits that decode(encode(x)) gives for the float32 bits x: x itself for f32, x
 * rounded to the nearest bf16 or fp16 otherwise (NaN stays NaN, quietened). */
uint32_t mch_store_round_bits(mch_store_dtype dt, uint32_t x);

#endif
