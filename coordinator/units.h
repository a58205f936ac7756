/* Work units: the pairs not yet journaled, streamed from the pair source in windows of
 * MCH_WINDOW_PAIRS, each window sorted by token length (so a unit's pairs have similar shapes)
 * and cut into units of about half a second of work (1..256 pairs, from the measured time per
 * pair), or of a fixed size. */
#ifndef MCH_UNITS_H
#define MCH_UNITS_H

#include <stdint.h>

#include "msg.h"
#include "pairs_source.h"

#define MCH_WINDOW_PAIRS 512

typedef struct {
    mch_pair_source *src; /* owned: closed by mch_units_deinit */
    uint64_t next_index;  /* index of the next pair the source produces */
    const uint8_t *done;  /* (done_cap) 1 when the journal already has the pair */
    uint64_t done_cap;
    mch_pair_input *window; /* (MCH_WINDOW_PAIRS) */
    size_t n_window, pos_window;
    uint64_t next_unit_id;
    int unit_size;       /* 0: adaptive */
    double sec_per_pair; /* measured, for adaptive units */
    int exhausted;
    uint32_t mode; /* of every unit made (mch_unit_mode; 0: patch) */
} mch_unit_maker;

/* Takes src (closed on deinit, also after an error here); done may be NULL. */
mch_status mch_units_init(mch_unit_maker *um, mch_pair_source *src, const uint8_t *done,
                          uint64_t done_cap, int unit_size, mch_err *err);
void mch_units_deinit(mch_unit_maker *um); /* accepts NULL and zeroed */

/* The next unit (malloc'd; free with mch_unit_free), or NULL when every pair was handed out. */
mch_status mch_units_next(mch_unit_maker *um, mch_work_unit **out, mch_err *err);
void mch_unit_free(mch_work_unit *u); /* accepts NULL */

/* Records that a unit of pairs pairs took seconds (adaptive sizes follow a moving average). */
void mch_units_observe(mch_unit_maker *um, double seconds, size_t pairs);

#endif
