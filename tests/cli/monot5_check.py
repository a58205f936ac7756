"""mechir score and mechir tokenize --pair on a MonoT5 fixture against its golden.json (made by an
independent torch transcription of Hugging Face's modeling_t5 and the tokenizers library), and the
one-line refusals of what is not built for MonoT5 yet (runs: tests/mpi/t5.sh).
usage: monot5_check.py MECHIR MODEL_DIR TMPDIR"""
import json
import os
import shutil
import subprocess
import sys

mechir, model, tmp = sys.argv[1:4]
gold = json.load(open(os.path.join(model, "golden.json")))
cases = gold["cases"]
bad = 0
compared = 0


def fail(msg):
    global bad
    bad += 1
    print("  " + msg)


def run(*args):
    return subprocess.run([mechir, *args], capture_output=True, text=True)


# score: every case, one pair a call (its own max_len)
for i, c in enumerate(cases):
    r = run("score", "--model", model, "--query", c["query"], "--doc", c["doc"],
            "--max-len", str(c["max_len"]))
    if r.returncode != 0:
        fail(f"case {i}: score exit {r.returncode}: {r.stderr.strip()}")
        continue
    got, want = float(r.stdout), c["score"]
    compared += 1
    if abs(got - want) > 1e-5 + 1e-4 * abs(want):
        fail(f"case {i}: score {got!r}, golden {want!r}")

# score --input: the cases of max_len 128 in one file, in input order
tsv = os.path.join(tmp, "pairs.tsv")
rows = [c for c in cases if c["max_len"] == 128 and c["doc"].strip() and c["query"].strip()
        and not any(x in c["query"] + c["doc"] for x in "\t\n\r")]
with open(tsv, "w") as f:
    for i, c in enumerate(rows):
        f.write(f"q{i}\t{c['query']}\td{i}\t{c['doc']}\n")
r = run("score", "--model", model, "--input", tsv, "--max-len", "128")
lines = r.stdout.splitlines()
if r.returncode != 0 or len(lines) != len(rows):
    fail(f"score --input: exit {r.returncode}, {len(lines)} lines for {len(rows)}: {r.stderr}")
else:
    for i, (line, c) in enumerate(zip(lines, rows)):
        qid, docno, s = line.split("\t")
        compared += 1
        if (qid, docno) != (f"q{i}", f"d{i}") or abs(float(s) - c["score"]) > 1e-5 + 1e-4 * abs(c["score"]):
            fail(f"score --input line {i + 1}: {line!r}, golden {c['score']!r}")

# tokenize --pair: the prompt's ids, cut with </s> kept last (case 9 is cut at 300)
for ml in sorted({c["max_len"] for c in cases}):
    sel = [c for c in cases if c["max_len"] == ml]
    inp = os.path.join(tmp, f"tok{ml}.jsonl")
    with open(inp, "w") as f:
        for c in sel:
            f.write(json.dumps({"query": c["query"], "text": c["doc"]}) + "\n")
    r = run("tokenize", "--model", model, "--input", inp, "--pair", "--max-len", str(ml))
    got = [json.loads(x)["ids"] for x in r.stdout.splitlines()]
    if r.returncode != 0 or len(got) != len(sel):
        fail(f"tokenize --pair --max-len {ml}: exit {r.returncode}: {r.stderr.strip()}")
        continue
    for g, c in zip(got, sel):
        compared += len(c["input_ids"])
        if g != c["input_ids"]:
            fail(f"tokenize --pair --max-len {ml}: ids differ from the golden input_ids")

# what is not built for MonoT5 yet: one line naming the directory, exit 1
c0 = cases[0]
docs = os.path.join(tmp, "in.tsv")
with open(docs, "w") as f:
    f.write(f"q1\t{c0['query']}\td1\t{c0['doc']}\n")
refusals = [
    ("patch", ["patch", "--model", model, "--query", "a", "--baseline", "b c", "--perturbed",
               "b d", "--sweep", "head-pos", "--heads", "0.1"], "head-pos sweep is not supported"),
    ("run", ["run", "--model", model, "--input", docs, "--sweep", "heads", "--method", "atp",
             "--out", os.path.join(tmp, "run")], "a MonoT5 run does not take --method atp"),
]
for name, args, want in refusals:
    r = run(*args)
    err = r.stderr.strip()
    if r.returncode != 1 or want not in err or model not in err or "\n" in err or r.stdout:
        fail(f"{name}: exit {r.returncode}, stderr {err!r} (want one line with {want!r})")
    if os.path.exists(os.path.join(tmp, "run", "circuit.json")):
        fail(f"{name}: wrote a circuit map")

# mechir pairs on the prompt layout: the perturbed and baseline ids are the prompts of the document
# with " TERM" and " a" appended, as mechir tokenize --pair gives them (checked above)
short = [c for c in cases if c["max_len"] == 128 and len(c["input_ids"]) < 100 and c["doc"].strip()
         and not any(x in c["query"] + c["doc"] for x in "\t\n\r")]
inp = os.path.join(tmp, "pairs.tsv")
with open(inp, "w") as f:
    for i, c in enumerate(short):
        f.write(f"q{i}\t{c['query']}\td{i}\t{c['doc']}\n")
out = os.path.join(tmp, "pairs.jsonl")
r = run("pairs", "--model", model, "--input", inp, "--perturb", "inject", "--term", "package",
        "--max-len", "128", "-o", out)
pairs = [json.loads(x) for x in open(out)] if r.returncode == 0 else []
if len(pairs) != len(short) or not pairs:
    fail(f"pairs: exit {r.returncode}, {len(pairs)} pairs for {len(short)}: {r.stderr.strip()}")
for pr, c in zip(pairs, short):
    want = {}
    for side, add in (("perturbed_ids", " package"), ("baseline_ids", " a")):
        tin = os.path.join(tmp, "one.jsonl")
        with open(tin, "w") as f:
            f.write(json.dumps({"query": c["query"], "text": c["doc"] + add}) + "\n")
        t = run("tokenize", "--model", model, "--input", tin, "--pair", "--max-len", "128")
        want[side] = json.loads(t.stdout)["ids"] if t.returncode == 0 else None
        compared += len(pr[side])
        if pr[side] != want[side]:
            fail(f"pairs {pr['qid']}: {side} differ from the tokenized prompt")
    roles = pr["roles"]
    differ = [i for i, (b, p) in enumerate(zip(pr["baseline_ids"], pr["perturbed_ids"])) if b != p]
    injected = [i for i, r in enumerate(roles) if r == "injected"]
    if roles[-1] != "sep" or "cls" in roles or not differ or differ != injected:
        fail(f"pairs {pr['qid']}: roles {roles}")

# a config with an unknown feed_forward_proj: the file and the key, exit 1
broken = os.path.join(tmp, "broken")
shutil.copytree(model, broken)
cfg = json.load(open(os.path.join(broken, "config.json")))
cfg["feed_forward_proj"] = "gated-silu"
cfg.pop("dense_act_fn", None)
cfg.pop("is_gated_act", None)
json.dump(cfg, open(os.path.join(broken, "config.json"), "w"))
r = run("score", "--model", broken, "--query", "a", "--doc", "b")
err = r.stderr.strip()
if r.returncode != 1 or "config.json" not in err or "feed_forward_proj" not in err or "\n" in err:
    fail(f"unknown feed_forward_proj: exit {r.returncode}, stderr {err!r}")

print(f"  {os.path.basename(model)}: {compared} values compared, {bad} failures")
sys.exit(1 if bad or compared < len(cases) else 0)
