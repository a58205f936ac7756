/* Private to proto/msg*.c: the generated protobuf-c types and the helpers the message files
 * share. Nothing outside proto/ includes this (the build does not give it the generated
 * include directory). */
#ifndef MCH_MSG_PB_H
#define MCH_MSG_PB_H

#include "mechir.pb-c.h"
#include "msg.h"

/* Packs any message into a malloc'd buffer. */
mch_status msg_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len, mch_err *err);

/* A string for packing: NULL packs as the empty string. */
static inline char *msg_s(const char *s)
{
    return (char *)(s ? s : "");
}

/* Whether every string under m (nested messages included) is valid UTF-8: 0, or 1 with why as
 * "PREFIX.field[i].name is not valid UTF-8 (byte N)" (prefix "" for none). */
int msg_utf8_check(const ProtobufCMessage *m, const char *prefix, char *why, size_t len);

/* The spec as generated fields pointing into s (nothing copied), without the input files: a
 * circuit map never records them; mch_job_spec_pack adds them. */
void msg_spec_to_pb(const mch_job_spec *s, Mechir__JobSpec *m);
/* Validates a generated spec (ranges, sweeps, heads inside the model): 0, or 1 with why as
 * "spec: ...". */
int msg_spec_check(const Mechir__JobSpec *m, char *why, size_t len);
/* Copies a generated spec into s (which must not own anything); no validation. */
mch_status msg_spec_from_pb(mch_job_spec *s, const Mechir__JobSpec *m, mch_err *err);

#endif
