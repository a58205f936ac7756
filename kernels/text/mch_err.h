/* Error reporting shared by every mechir module: a status code plus a one-line message that
 * names the object (file, tensor, key, line) and the numbers. The first failure keeps its
 * message as it travels up; the library never exits or prints. */
#ifndef MCH_ERR_H
#define MCH_ERR_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    MCH_OK = 0,
    MCH_ERR_NOMEM,
    MCH_ERR_IO,
    MCH_ERR_FORMAT,
    MCH_ERR_SHAPE,
    MCH_ERR_ARG,
    MCH_ERR_ZSTD,
    MCH_ERR_PROTO,
    MCH_ERR_MPI,
    MCH_ERR_UNSUPPORTED,
} mch_status;

typedef struct {
    mch_status code;
    char msg[512];
} mch_err;

/* The longest line any line-based input file may have by default (--max-line-bytes): the
 * input readers (coordinator/input.h) and the --df and --stopwords files. */
#define MCH_LINE_BYTES_DEFAULT ((size_t)64 << 20)

/* Records code and a printf-style message in err (which may be NULL) unless err already holds
 * an earlier failure. @return code, so callers can write `return mch_fail(err, ...)`. */
mch_status mch_fail(mch_err *err, mch_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a complete JSON text of len bytes: NULL when it is not JSON or anything but
 * whitespace follows the value (Hugging Face refuses trailing bytes too). Free with cJSON_Delete.
 */
struct cJSON *mch_json_parse_exact(const char *text, size_t len);

/* Checks the tree root that cJSON parsed from text[0..len) (white space may lead) for what cJSON
 * would change without a word, and keeps numbers exact (json_check.c):
 * - a string or key holding a NUL (\u0000 or a raw byte), which cJSON's strings would cut, is
 *   refused: `"text" holds a NUL character (\u0000)` (the key of the nearest member);
 * - an object with a repeated key, of which cJSON's lookups would see only the first, is refused:
 *   `duplicate key "qid"`;
 * - every number node gets its exact text in valuestring (cJSON leaves it NULL and frees it in
 *   cJSON_Delete), so an integer above 2^53 or a decimal is read from its text, not a double.
 * @return 0, or -1 with why set and *at (may be NULL) the 0-based byte offset of the fault. */
int mch_json_check(struct cJSON *root, const char *text, size_t len, size_t *at, char *why,
                   size_t why_cap);

/* 1 when s is the text of a JSON integer: an optional '-' and digits only (no fraction or
 * exponent). */
int mch_json_int_text(const char *s);

/* A short name for a status ("format", "I/O", ...). */
const char *mch_status_name(mch_status code);

#endif
