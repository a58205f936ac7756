/* Temporary home of the codec benchmark, until it moves to bench/. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "act_store.h"
#include "store_codec.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

mch_status mch_store_bench(const float *data, size_t n, mch_store_dtype dt, int shuffle,
                           int zstd_level, int repeats, mch_store_bench_result *res, mch_err *err)
{
    memset(res, 0, sizeof *res);
    if (!n || n > MCH_STORE_MAX_RAW_BYTES / 4 || repeats < 1 || (unsigned)dt > MCH_STORE_F16)
        return mch_fail(err, MCH_ERR_ARG, "bench: %zu values, %d repeats, dtype %d out of range", n,
                        repeats, (int)dt);
    size_t plane_bytes = n * mch_store_dtype_bytes(dt), bound = ZSTD_compressBound(plane_bytes);
    unsigned char *planes = malloc(plane_bytes), *back = malloc(plane_bytes), *comp = malloc(bound);
    float *dec = malloc(n * sizeof *dec);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    mch_status st = MCH_OK;
    size_t z = 0;
    if (!planes || !back || !comp || !dec || !cctx || !dctx) {
        st = mch_fail(err, MCH_ERR_NOMEM, "bench: out of memory for %zu values", n);
        goto done;
    }
    double t0 = now_s();
    for (int r = 0; r < repeats && !st; r++) {
        mch_store_encode_values(dt, shuffle, data, n, planes);
        z = ZSTD_compressCCtx(cctx, comp, bound, planes, plane_bytes, zstd_level);
        if (ZSTD_isError(z)) st = mch_fail(err, MCH_ERR_ZSTD, "bench: %s", ZSTD_getErrorName(z));
    }
    double t1 = now_s();
    for (int r = 0; r < repeats && !st; r++) {
        size_t u = ZSTD_decompressDCtx(dctx, back, plane_bytes, comp, z);
        if (ZSTD_isError(u) || u != plane_bytes)
            st = mch_fail(err, MCH_ERR_ZSTD, "bench: decompress: %s",
                          ZSTD_isError(u) ? ZSTD_getErrorName(u) : "short");
        else
            mch_store_decode_values(dt, shuffle, back, n, dec);
    }
    double t2 = now_s();
    for (size_t i = 0; !st && i < n; i++) {
        uint32_t got = f32_bits(dec[i]), want = mch_store_round_bits(dt, f32_bits(data[i]));
        if (got != want)
            st = mch_fail(err, MCH_ERR_FORMAT, "bench: value %zu decoded as %08x, expected %08x", i,
                          (unsigned)got, (unsigned)want);
    }
    if (!st) {
        res->raw_bytes = (uint64_t)n * 4;
        res->stored_bytes = z;
        res->encode_s = (t1 - t0) / repeats;
        res->decode_s = (t2 - t1) / repeats;
    }
done:
    free(planes);
    free(back);
    free(comp);
    free(dec);
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    return st;
}
