/* UTF-8 validation through utf8proc (overlong forms, surrogates and code points past U+10FFFF
 * are invalid, as in Hugging Face's Rust tokenizers). */
#include "utf8.h"

#include <utf8proc.h>

int mch_utf8_valid(const char *s, size_t len, size_t *bad_at)
{
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        size_t left = len - i;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              left > 4 ? 4 : (utf8proc_ssize_t)left, &cp);
        if (k <= 0) {
            if (bad_at) *bad_at = i;
            return 0;
        }
        i += (size_t)k;
    }
    return 1;
}
