/* `mechir report`'s files for a circuit map, written from the validated map alone:
 * - heads.svg, blocks.svg, head_pos.svg: heatmaps on a diverging scale centred on 0; a first row
 *   of the ratio of means Σ(patched − baseline) / Σ(perturbed − baseline) (the cell's <title>:
 *   value, bootstrap percentile interval when the map has replicates, n), a second row of the mean
 *   of ratios (title: mean, std, n); strata.svg: the heads' ratio of means per stratum;
 * - components.csv and .json: every component with pairs (heads, blocks by role, head-pos cells),
 *   both estimates and both intervals (bootstrap percentile; normal approximation mean ± z·std/√n
 *   at the map's level);
 * - top.txt and index.html: components ranked by the ratio of means; index.html also shows the
 *   map's provenance, the pair counts, the heatmaps and a table per kind of stratum.
 * Every string from the map is escaped in HTML and SVG. */
#ifndef MCH_REPORT_H
#define MCH_REPORT_H

#include "msg.h"

/* Writes the report files into dir, which is replaced as a whole (common/outdir.h): a reader
 * sees the old report or the new one, a failure (a full disk) leaves the old one untouched, and
 * an existing dir holding anything but report files is refused. top: how many components top.txt
 * and index.html list. @return MCH_OK, or an error naming the file. */
mch_status mch_report_write(const mch_cmap *m, const char *dir, int top, mch_err *err);

#endif
