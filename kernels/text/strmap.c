/* Open-addressing string map: power-of-two table of (hash, key offset, length, value), load
 * factor at most 1/2, keys stored NUL-terminated in one growing arena. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash; /* 0 = empty */
    size_t off, len;
    int64_t value;
} slot;

struct mch_strmap {
    slot *slots;
    size_t cap, n;
    char *arena;
    size_t arena_used, arena_cap;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

mch_strmap *mch_strmap_create(void)
{
    mch_strmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void mch_strmap_free(mch_strmap *m)
{
    if (!m) return;
    free(m->slots);
    free(m->arena);
    free(m);
}

static slot *find(const mch_strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (!s->hash) return s;
        if (s->hash == h && s->len == len && !memcmp(m->arena + s->off, key, len)) return s;
    }
}

static int grow(mch_strmap *m)
{
    size_t cap = m->cap * 2;
    slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return 0;
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->slots[i];
        if (!s->hash) continue;
        size_t j = s->hash & (cap - 1);
        while (ns[j].hash) j = (j + 1) & (cap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = cap;
    return 1;
}

int64_t *mch_strmap_put(mch_strmap *m, const char *key, size_t len, int *added)
{
    uint64_t h = hash_bytes(key, len);
    slot *s = find(m, key, len, h);
    if (added) *added = 0;
    if (s->hash) return &s->value;
    if (2 * (m->n + 1) > m->cap) {
        if (!grow(m)) return NULL;
        s = find(m, key, len, h);
    }
    if (m->arena_used + len + 1 > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap < m->arena_used + len + 1) cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a) return NULL;
        m->arena = a;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_used, key, len);
    m->arena[m->arena_used + len] = 0;
    *s = (slot){h, m->arena_used, len, 0};
    m->arena_used += len + 1;
    m->n++;
    if (added) *added = 1;
    return &s->value;
}

int64_t *mch_strmap_get(const mch_strmap *m, const char *key, size_t len)
{
    slot *s = find(m, key, len, hash_bytes(key, len));
    return s->hash ? &s->value : NULL;
}

void mch_strmap_clear(mch_strmap *m)
{
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
    m->arena_used = 0;
}

size_t mch_strmap_size(const mch_strmap *m)
{
    return m->n;
}

int mch_strmap_next(const mch_strmap *m, size_t *pos, const char **key, size_t *len, int64_t *value)
{
    while (*pos < m->cap) {
        const slot *s = &m->slots[(*pos)++];
        if (!s->hash) continue;
        *key = m->arena + s->off;
        *len = s->len;
        *value = s->value;
        return 1;
    }
    return 0;
}
