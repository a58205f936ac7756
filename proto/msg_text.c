/* The UTF-8 of every string a message holds, nested messages included, walked through the
 * generated descriptors: a string field added to mechir.proto is checked without being listed.
 * Decoded text reaches circuit.json, pairs.jsonl, HTML and SVG, which must be valid UTF-8. */
#include "msg_pb.h"

#include <stdio.h>
#include <string.h>

#include "utf8.h"

/* Appends ".name" or ".name[i]" (rep) to path[0..used); @return the new length, at most cap - 1. */
static size_t path_push(char *path, size_t cap, size_t used, const char *name, int rep, size_t i)
{
    int n = rep ? snprintf(path + used, cap - used, "%s%s[%zu]", used ? "." : "", name, i)
                : snprintf(path + used, cap - used, "%s%s", used ? "." : "", name);
    size_t end = used + (n > 0 ? (size_t)n : 0);
    return end < cap ? end : cap - 1;
}

/* 1 with why filled at the first invalid string under m; path[0..used) names m. */
static int walk(const ProtobufCMessage *m, char *path, size_t cap, size_t used, char *why,
                size_t len)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *at = (const char *)m + fd->offset;
        int rep = fd->label == PROTOBUF_C_LABEL_REPEATED;
        size_t n = rep ? *(const size_t *)((const char *)m + fd->quantifier_offset) : 1;
        void *const *items = rep ? *(void *const *const *)at : (void *const *)at;
        for (size_t i = 0; i < n; i++) {
            if (!items[i]) continue;
            size_t end = path_push(path, cap, used, fd->name, rep, i);
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (walk(items[i], path, cap, end, why, len)) return 1;
                continue;
            }
            const char *s = items[i];
            size_t bad = 0;
            if (!mch_utf8_valid(s, strlen(s), &bad))
                return snprintf(why, len, "%s is not valid UTF-8 (byte %zu)", path, bad + 1), 1;
        }
    }
    return 0;
}

int msg_utf8_check(const ProtobufCMessage *m, const char *prefix, char *why, size_t len)
{
    char path[160];
    size_t used = (size_t)snprintf(path, sizeof path, "%s", prefix);
    return walk(m, path, sizeof path, used < sizeof path ? used : sizeof path - 1, why, len);
}
