/* UTF-8 validation for every text mechir reads (inputs, queries, vocabularies). */
#ifndef MCH_UTF8_H
#define MCH_UTF8_H

#include <stddef.h>

/* 1 when s[0..len) is valid UTF-8; otherwise 0 and *bad_at = offset of the first bad byte. */
int mch_utf8_valid(const char *s, size_t len, size_t *bad_at);

#endif
