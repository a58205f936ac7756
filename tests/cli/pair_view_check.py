#!/usr/bin/python3
"""Checks one pair's views (`mechir report --pairs ... --pair ID`) against the run's own JSON
and an independent reference; prints one "ok - ..." / "FAIL - ..." line per property and exits 1
on any failure.

  pair_view_check.py PAIRS.jsonl PAIR_ID VIEW_DIR MODEL_DIR [attention]

- blocks.svg, parsed with xml.etree: each panel (resid_pre, attn_out, mlp_out) has L x T cells
  whose data-v equals the pair's blocks[site][layer][position] in PAIRS.jsonl exactly (as Python
  reads both), whose <title> shows it with 6 significant digits, row 0 drawn lowest and
  position 0 leftmost; the x labels are the pair's tokens, looked up here in MODEL_DIR/vocab.txt
  by the ids of PAIRS.jsonl (the perturbed token below where the ids differ, nowhere else);
- with "attention": the attention_L.H.svg files are those of the pair's three heads of largest
  |effect| in PAIRS.jsonl (or of the heads given in $HEADS), and every cell of the baseline and
  perturbed panels equals the attention pattern of a float64 torch forward of the model
  (tests/ref/atp_qk_ref.py's BERT, written from the model's definition) of the same ids, token
  types taken from the ids here (0 up to the first [SEP], then 1), to 2e-6; that forward gives
  the pair's two scores of PAIRS.jsonl to 1e-4; each row of a pattern sums to 1; the difference
  panel is perturbed - baseline; the labels are the tokens.
"""
import json
import math
import os
import re
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "{http://www.w3.org/2000/svg}"
fails = 0


def check(desc, ok, detail=""):
    global fails
    print(("ok - " if ok else "FAIL - ") + desc + ("" if ok else "  " + str(detail)))
    fails += 0 if ok else 1


def find_pair(path, pid):
    with open(path, encoding="utf-8") as f:
        for line in f:
            # "-0" (a patched score equal to the baseline's, less a little) stays -0.0, as the
            # view prints it
            d = json.loads(line, parse_int=lambda t: -0.0 if t == "-0" else int(t))
            if d["pair_id"] == pid:
                return d
    raise SystemExit("pair %s not in %s" % (pid, path))


def panels(svg_path):
    root = ET.parse(svg_path).getroot()
    out = {}
    for g in root.iter(NS + "g"):
        if g.get("class") == "panel":
            out[g.get("data-panel")] = g
    return out


def cells(g):
    got = {}
    for r in g.iter(NS + "rect"):
        if r.get("class") != "cell":
            continue
        key = (int(r.get("data-r")), int(r.get("data-c")))
        title = r.find(NS + "title").text
        got[key] = (float(r.get("data-v")), float(r.get("y")), float(r.get("x")), title)
    return got


def labels(g, cls, run=None):
    out = {}
    for t in g.iter(NS + "text"):
        if t.get("class") == cls and (run is None or t.get("data-run") == run):
            out[int(t.get("data-c" if cls == "xlab" else "data-r"))] = t.text or ""
    return out


def check_tokens(desc, g, want_b, want_p):
    """x labels: baseline tokens at every position, perturbed ones where they differ."""
    T = len(want_b)
    lb = labels(g, "xlab", "baseline")
    lp = labels(g, "xlab", "perturbed")
    bad = [t for t in range(T) if lb.get(t) != want_b[t]]
    check("%s: the %d baseline labels are the pair's tokens" % (desc, T),
          len(lb) == T and not bad, bad[:3] and [(t, lb.get(t), want_b[t]) for t in bad[:3]])
    diff = [t for t in range(T) if want_p[t] != want_b[t]]
    check("%s: perturbed labels exactly where the ids differ (%s), with the perturbed tokens"
          % (desc, diff), sorted(lp) == diff and all(lp[t] == want_p[t] for t in diff), lp)


def check_blocks(pair, view, tok_b, tok_p, ids_differ):
    svg = os.path.join(view, "blocks.svg")
    ps = panels(svg)
    T = len(pair["baseline_ids"])
    L = len(pair["blocks"]["resid_pre"])
    compared = worst = 0
    for site in ("resid_pre", "attn_out", "mlp_out"):
        g = ps.get(site)
        check("blocks.svg has the %s panel" % site, g is not None)
        if g is None:
            continue
        got = cells(g)
        want = pair["blocks"][site]
        check("%s: %d x %d cells" % (site, L, T), len(got) == L * T, len(got))
        bad = []
        for l in range(L):
            for t in range(T):
                v, _, _, title = got[(l, t)]
                compared += 1
                if v != want[l][t]:
                    bad.append((l, t, v, want[l][t]))
                m = re.search(r": (\S+)$", title)
                if not m or m.group(1) != "%.6g" % want[l][t]:
                    bad.append((l, t, title))
                if "position %d " % t not in title or "layer %d " % l not in title:
                    bad.append((l, t, title))
        check("%s: every cell's data-v is the JSON value exactly, its title shows it" % site,
              not bad, bad[:3])
        ys = [got[(l, 0)][1] for l in range(L)]
        xs = [got[(0, t)][2] for t in range(T)]
        check("%s: layer 0 drawn lowest, layers upwards; positions left to right" % site,
              all(ys[i] > ys[i + 1] for i in range(L - 1))
              and all(xs[i] < xs[i + 1] for i in range(T - 1)))
        check_tokens(site, g, tok_b, tok_p)
        rows = labels(g, "ylab")
        check("%s: the rows are labelled 0..%d" % (site, L - 1),
              rows == {l: str(l) for l in range(L)}, rows)
    check("blocks.svg: %d values compared (3 x %d x %d)" % (compared, L, T),
          compared == 3 * L * T and compared > 0)


def check_attention(pair, view, model_dir, tok_b, tok_p):
    sys.path.insert(0, os.path.join(HERE, "..", "ref"))
    import torch
    from atp_qk_ref import Bert

    heads = pair["heads"]
    NH = len(heads[0])
    if os.environ.get("HEADS"):
        want_heads = [tuple(int(x) for x in h.split(".")) for h in os.environ["HEADS"].split(",")]
    else:
        flat = sorted(range(len(heads) * NH),
                      key=lambda i: (-abs(heads[i // NH][i % NH]), i))
        want_heads = [(i // NH, i % NH) for i in flat[:3]]
    files = sorted(f for f in os.listdir(view) if f.startswith("attention_"))
    check("attention files are those of heads %s" % want_heads,
          files == sorted("attention_%d.%d.svg" % h for h in want_heads), files)

    model = Bert(model_dir)
    ids_b, ids_p = pair["baseline_ids"], pair["perturbed_ids"]
    sep = ids_b.index(102)  # [SEP] of the demo's vocabulary: the query segment ends there
    types = [0 if i <= sep else 1 for i in range(len(ids_b))]
    with torch.no_grad():
        sb, acts_b = model.forward(ids_b, types)
        sp, acts_p = model.forward(ids_p, types)
    check("the reference forward gives the pair's scores (types from the ids) to 1e-4",
          abs(float(sb) - pair["score_baseline"]) < 1e-4
          and abs(float(sp) - pair["score_perturbed"]) < 1e-4,
          (float(sb), pair["score_baseline"], float(sp), pair["score_perturbed"]))
    T = len(ids_b)
    compared = 0
    worst = 0.0
    for (l, h) in want_heads:
        path = os.path.join(view, "attention_%d.%d.svg" % (l, h))
        if not os.path.exists(path):
            continue
        ps = panels(path)
        check("attention_%d.%d.svg has the baseline, perturbed and difference panels" % (l, h),
              sorted(ps) == ["baseline", "difference", "perturbed"], sorted(ps))
        ref = {"baseline": acts_b[("pattern", l)][h], "perturbed": acts_p[("pattern", l)][h]}
        got = {k: cells(g) for k, g in ps.items()}
        for run in ("baseline", "perturbed"):
            c = got.get(run, {})
            check("head %d.%d %s: %d x %d cells" % (l, h, run, T, T), len(c) == T * T, len(c))
            err = 0.0
            rows_bad = []
            for i in range(T):
                s = 0.0
                for j in range(T):
                    v = c[(i, j)][0]
                    s += v
                    err = max(err, abs(v - float(ref[run][i, j])))
                    compared += 1
                if abs(s - 1) > 1e-5:
                    rows_bad.append((i, s))
            worst = max(worst, err)
            check("head %d.%d %s: every weight equals the float64 torch pattern (max error %.2e)"
                  % (l, h, run, err), err < 2e-6, err)
            check("head %d.%d %s: every query's row sums to 1 (1e-5)" % (l, h, run),
                  not rows_bad, rows_bad[:3])
            toks = tok_b if run == "baseline" else tok_p
            bad_t = [(i, j) for i in range(T) for j in range(T)
                     if not c[(i, j)][3].startswith("%s query %d '%s' key %d '%s': "
                                                    % (run, i, toks[i], j, toks[j]))]
            check("head %d.%d %s: every cell's title names its query and key tokens"
                  % (l, h, run), not bad_t, bad_t[:2])
            lx = labels(ps[run], "xlab", "baseline")
            ly = labels(ps[run], "ylab")
            check("head %d.%d %s: keys and queries labelled by the run's tokens" % (l, h, run),
                  lx == dict(enumerate(toks)) and ly == dict(enumerate(toks)))
            ys = [c[(i, 0)][1] for i in range(T)]
            check("head %d.%d %s: query 0 drawn lowest (MechIR's plotly heatmap)" % (l, h, run),
                  all(ys[i] > ys[i + 1] for i in range(T - 1)))
        d = got.get("difference", {})
        bad = [(k, v[0]) for k, v in d.items()
               if abs(v[0] - (got["perturbed"][k][0] - got["baseline"][k][0])) > 1e-7]
        check("head %d.%d difference: perturbed - baseline in every cell" % (l, h),
              len(d) == T * T and not bad, bad[:3])
    check("attention: %d weights compared with the reference (max error %.2e)"
          % (compared, worst), compared == 2 * len(want_heads) * T * T and compared > 0)


def main():
    pairs, pid, view, model_dir = sys.argv[1:5]
    attention = len(sys.argv) > 5 and sys.argv[5] == "attention"
    pair = find_pair(pairs, pid)
    if os.path.exists(os.path.join(model_dir, "vocab.txt")):
        with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
    else:  # a MonoT5: its pieces from python3-sentencepiece
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(
            model_file=os.path.join(model_dir, "spiece.model"))
        vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    tok_b = [vocab[i] for i in pair["baseline_ids"]]
    tok_p = [vocab[i] for i in pair["perturbed_ids"]]
    differ = [t for t, (a, b) in enumerate(zip(pair["baseline_ids"], pair["perturbed_ids"]))
              if a != b]
    check("pair %s: the ids differ at %s" % (pid, differ), len(differ) > 0)
    check_blocks(pair, view, tok_b, tok_p, differ)
    html = open(os.path.join(view, "index.html"), encoding="utf-8").read()
    check("index.html names the pair and embeds blocks.svg",
          pid in html and 'data="blocks.svg"' in html)
    if attention:
        check_attention(pair, view, model_dir, tok_b, tok_p)
        for f in os.listdir(view):
            if f.startswith("attention_"):
                check("index.html embeds %s" % f, 'data="%s"' % f in html)
    else:
        check("no attention figure without --model",
              not [f for f in os.listdir(view) if f.startswith("attention_")])
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
