/* The pieces every SVG figure of `mechir report` shares (the circuit map's heatmaps, report.c,
 * and one pair's views, pair_view.c): text escaped for XML, the diverging colour scale centred on
 * 0 (blue - white - red), positioned text, the document head holding the scale's gradient, and
 * the legend of the scale. Nothing here allocates or fails; output goes to a FILE. */
#ifndef MCH_SVG_H
#define MCH_SVG_H

#include <stdio.h>

/* Writes s as XML/HTML text or attribute content: < > & " ' as entities; control characters (not
 * allowed in XML 1.0) and bytes that are not UTF-8 as '?'. */
void mch_svg_esc(FILE *f, const char *s);

/* The colour of v on the scale [-max, max] (values beyond it take the end colours; max <= 0
 * gives white) as "#rrggbb" into out. */
void mch_svg_colour(double v, double max, char out[8]);

/* <text x y font-size ATTRS>s</text> with s escaped; attrs is raw markup (" text-anchor=...")
 * that must not hold text from an input. */
void mch_svg_text(FILE *f, int x, int y, int size, const char *attrs, const char *s);

/* Opens an SVG document of w x h pixels: the white background and the gradient "div" of the
 * scale (for mch_svg_legend). Close it with "</svg>\n". */
void mch_svg_begin(FILE *f, int w, int h);

/* The scale's bar (200 x 12 px at x, y) from -max to max, its three ticks, and label to its
 * right. */
void mch_svg_legend(FILE *f, int x, int y, double max, const char *label);

#endif
