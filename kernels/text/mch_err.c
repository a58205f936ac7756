/* Error reporting: the first failure wins and keeps its message. */
#include "mch_err.h"

#include <cjson/cJSON.h>
#include <stdio.h>

mch_status mch_fail(mch_err *err, mch_status code, const char *fmt, ...)
{
    if (!err || err->code != MCH_OK) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *mch_status_name(mch_status code)
{
    switch (code) {
    case MCH_OK:
        return "ok";
    case MCH_ERR_NOMEM:
        return "out of memory";
    case MCH_ERR_IO:
        return "I/O";
    case MCH_ERR_FORMAT:
        return "format";
    case MCH_ERR_SHAPE:
        return "shape";
    case MCH_ERR_ARG:
        return "argument";
    case MCH_ERR_ZSTD:
        return "zstd";
    case MCH_ERR_PROTO:
        return "protobuf";
    case MCH_ERR_MPI:
        return "MPI";
    case MCH_ERR_UNSUPPORTED:
        return "unsupported";
    }
    return "unknown";
}

cJSON *mch_json_parse_exact(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) return NULL;
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(j);
            return NULL;
        }
    return j;
}
