/* `mechir report`'s files for a circuit map: heads.svg and blocks.svg (heatmaps on a diverging
 * scale centred on 0, each cell's value and n in its <title>), components.csv and .json (every
 * component: mean, std, n, 95% confidence interval), top.txt and index.html. */
#ifndef MCH_REPORT_H
#define MCH_REPORT_H

#include "msg.h"

/* Writes the report files into dir (created if missing), each atomically; top: how many
 * components top.txt and index.html list. */
mch_status mch_report_write(const mch_cmap *m, const char *dir, int top, mch_err *err);

#endif
