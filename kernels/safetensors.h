/* Reader for Hugging Face safetensors files.
 *
 * Format: 8 bytes little-endian u64 N, then N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data section; offsets are relative to the data section.
 * Every offset, size and shape is checked against the file size before any pointer into the
 * mapping is handed out, so a tensor's data[0 .. nbytes) is always inside the file. */
#ifndef MCH_SAFETENSORS_H
#define MCH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mch_err.h"

#define MCH_ST_MAX_DIMS 8

typedef enum {
    MCH_DT_F32,
    MCH_DT_F16,
    MCH_DT_BF16,
    MCH_DT_F64,
    MCH_DT_I64,
    MCH_DT_I32,
    MCH_DT_I16,
    MCH_DT_I8,
    MCH_DT_U8,
    MCH_DT_BOOL,
    MCH_DT_F8_E4M3,
    MCH_DT_F8_E5M2,
} mch_dtype;

typedef struct {
    char *name;
    mch_dtype dtype;
    int ndim;
    int64_t shape[MCH_ST_MAX_DIMS];
    size_t numel;
    size_t offset; /* into the data section */
    size_t nbytes;
    const void *data; /* into the mapping (or the caller's buffer for mch_st_parse) */
} mch_st_tensor;

typedef struct {
    char *path;
    void *map; /* NULL when the bytes belong to the caller */
    size_t map_len;
    size_t data_start; /* 8 + header length */
    mch_st_tensor *tensors;
    size_t n;
} mch_safetensors;

/* Maps path read-only and validates its header. On failure *out is untouched and err names the
 * file and the tensor or field. Close with mch_st_close. */
mch_status mch_st_open(mch_safetensors **out, const char *path, mch_err *err);

/* Validates bytes already in memory (kept by the caller while *out lives); name is used in
 * messages. The fuzz target calls this. */
mch_status mch_st_parse(mch_safetensors **out, const void *bytes, size_t len, const char *name,
                        mch_err *err);

void mch_st_close(mch_safetensors *st); /* accepts NULL */

/* The tensor with this exact name, or NULL. */
const mch_st_tensor *mch_st_find(const mch_safetensors *st, const char *name);

const char *mch_dtype_name(mch_dtype dt);
size_t mch_dtype_size(mch_dtype dt);

/* Checks that every float tensor (F32, F16, BF16, F64) holds only finite values, in name order;
 * *n_values (may be NULL) counts the values checked. @return MCH_OK, or MCH_ERR_FORMAT naming the
 * file, the first tensor holding a NaN or an infinity, the element's flat index and what it holds.
 */
mch_status mch_st_check_finite(const mch_safetensors *st, size_t *n_values, mch_err *err);

/* Converts n elements of a F32/F16/BF16 tensor's data to float. */
void mch_to_f32(float *out, const void *data, mch_dtype dt, size_t n);

#endif
