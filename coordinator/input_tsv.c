/* The TSV pairs reader: `qid<TAB>query<TAB>docno<TAB>text[<TAB>term]` a line (given pairs:
 * `qid<TAB>query<TAB>docno<TAB>text<TAB>perturbed[<TAB>pair_id]`), an optional header line whose
 * first field is "qid". One rule for `mechir pairs` and `mechir score --input` (which
 * sets four_columns and allow_duplicates). Records point into the current line. */
#include <string.h>

#include "input_internal.h"

static mch_status next_tsv(mch_input *in, const mch_record **rec, mch_err *err)
{
    for (;;) {
        char why[MCH_INPUT_WHY_BYTES];
        mch_input_line ln;
        mch_status st = mch_input_next_line(in->lines, &ln, err);
        if (st != MCH_OK || !ln.s) return st;
        if (mch_input_is_header(ln.s, ln.no, "qid")) continue;
        in->rep.units++;
        if (mch_input_bad_text(ln.s, ln.len, why, sizeof why)) {
            if ((st = mch_input_skip(in, 0, in->path, ln.no, err, "%s", why)) != MCH_OK) return st;
            continue;
        }
        char *f[6];
        int n = mch_input_split_tabs(ln.s, f, 6);
        int four = in->o.four_columns;
        if (in->o.given) {
            if (n < 5 || n > 6) {
                st = mch_input_skip(in, 0, in->path, ln.no, err,
                                    "expected 5 or 6 tab-separated columns (qid, query, docno, "
                                    "text, perturbed[, pair_id]), found %d",
                                    n);
                if (st != MCH_OK) return st;
                continue;
            }
            in->rec = (mch_record){.qid = f[0],
                                   .query = f[1],
                                   .docno = f[2],
                                   .text = f[3],
                                   .perturbed = f[4],
                                   .pair_key = n == 6 ? f[5] : NULL,
                                   .relevance = -1,
                                   .rank = -1,
                                   .file = in->path,
                                   .line = ln.no};
        } else if (n < 4 || n > (four ? 4 : 5)) {
            st = mch_input_skip(in, 0, in->path, ln.no, err,
                                "expected %s tab-separated columns%s, found %d",
                                four ? "4" : "4 or 5", four ? " (qid, query, docno, text)" : "", n);
            if (st != MCH_OK) return st;
            continue;
        } else {
            in->rec = (mch_record){.qid = f[0],
                                   .query = f[1],
                                   .docno = f[2],
                                   .text = f[3],
                                   .term = n == 5 && *f[4] ? f[4] : NULL,
                                   .relevance = -1,
                                   .rank = -1,
                                   .file = in->path,
                                   .line = ln.no};
        }
        if ((st = mch_input_offer(in, rec, err)) != MCH_OK || *rec) return st;
    }
}

mch_status mch_input_open_tsv(mch_input **out, const char *path, const mch_input_opts *o,
                              mch_err *err)
{
    return mch_input_open_lines(out, path, o, next_tsv, err);
}
