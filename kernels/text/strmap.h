/* A string -> int64 hash map (open addressing, keys copied into an arena). Used for word sets,
 * document frequencies and id joins. */
#ifndef MCH_STRMAP_H
#define MCH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mch_strmap mch_strmap;

mch_strmap *mch_strmap_create(void); /* NULL when out of memory */
void mch_strmap_free(mch_strmap *m); /* accepts NULL */

/* The slot of key (len bytes), inserted with value 0 when absent (*added = 1 then).
 * NULL when out of memory. The pointer is valid until the next insertion. */
int64_t *mch_strmap_put(mch_strmap *m, const char *key, size_t len, int *added);
/* The value of key, or NULL when absent. */
int64_t *mch_strmap_get(const mch_strmap *m, const char *key, size_t len);
size_t mch_strmap_size(const mch_strmap *m);
/* Removes every entry (keeps the memory). */
void mch_strmap_clear(mch_strmap *m);

/* Iterates entries in unspecified order: start with *pos = 0; returns 0 at the end. */
int mch_strmap_next(const mch_strmap *m, size_t *pos, const char **key, size_t *len,
                    int64_t *value);

#endif
