/* The shared SVG pieces of the report's figures (see svg.h). */
#include "svg.h"

#include <math.h>
#include <string.h>

#include "utf8.h"

void mch_svg_esc(FILE *f, const char *s)
{
    size_t n = strlen(s), bad = 0;
    for (size_t i = 0; i < n;) {
        size_t ok = mch_utf8_valid(s + i, n - i, &bad) ? n - i : bad;
        for (size_t j = i; j < i + ok; j++) {
            unsigned char c = (unsigned char)s[j];
            if (c == '<')
                fputs("&lt;", f);
            else if (c == '>')
                fputs("&gt;", f);
            else if (c == '&')
                fputs("&amp;", f);
            else if (c == '"')
                fputs("&quot;", f);
            else if (c == '\'')
                fputs("&#39;", f);
            else
                putc(c < 0x20 && c != '\t' && c != '\n' ? '?' : c, f);
        }
        i += ok;
        if (i < n) putc('?', f), i++;
    }
}

void mch_svg_colour(double v, double max, char out[8])
{
    double t = max > 0 ? v / max : 0;
    if (t > 1) t = 1;
    if (t < -1) t = -1;
    int r, g, b;
    if (t >= 0) { /* white -> #b2182b */
        r = (int)lround(255 + t * (178 - 255));
        g = (int)lround(255 + t * (24 - 255));
        b = (int)lround(255 + t * (43 - 255));
    } else { /* white -> #2166ac */
        r = (int)lround(255 - t * (33 - 255));
        g = (int)lround(255 - t * (102 - 255));
        b = (int)lround(255 - t * (172 - 255));
    }
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

void mch_svg_text(FILE *f, int x, int y, int size, const char *attrs, const char *s)
{
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"%d\"%s>", x, y, size, attrs);
    mch_svg_esc(f, s);
    fputs("</text>\n", f);
}

void mch_svg_begin(FILE *f, int w, int h)
{
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d "
            "%d\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
            "<defs><linearGradient id=\"div\" x1=\"0\" x2=\"1\"><stop offset=\"0\" "
            "stop-color=\"#2166ac\"/><stop offset=\"0.5\" stop-color=\"#ffffff\"/><stop "
            "offset=\"1\" stop-color=\"#b2182b\"/></linearGradient></defs>\n",
            w, h, w, h);
}

void mch_svg_legend(FILE *f, int x, int y, double max, const char *label)
{
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"200\" height=\"12\" fill=\"url(#div)\" "
            "stroke=\"#888888\"/>\n",
            x, y);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.3g</text>\n", x,
            y + 26, -max);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">0</text>\n",
            x + 100, y + 26);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.3g</text>\n",
            x + 200, y + 26, max);
    mch_svg_text(f, x + 210, y + 10, 10, "", label);
}
