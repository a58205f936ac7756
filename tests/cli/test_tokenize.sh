#!/bin/sh
# `mechir tokenize` end to end: ids, tokens and token types against the Hugging Face goldens of
# tests/data/tokenizers (tokenize_check.py), then its refusals: bad lines named FILE:LINE,
# unsupported tokenizer.json parts named by their JSON path, nothing on stdout, exit 1 or 2.
set -u
MECHIR=$1
DATA=$2
HERE=$(dirname "$0")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { # description, then a command that must succeed
    d=$1; shift
    if "$@"; then echo "ok - $d"; else echo "FAIL - $d"; fails=$((fails + 1)); fi
}
# A command that must fail with status $2 printing nothing on stdout and a stderr line holding $3.
refuse() {
    d=$1; want=$2; text=$3; shift 3
    "$@" > "$T/out" 2> "$T/err"
    st=$?
    if [ "$st" -eq "$want" ] && [ ! -s "$T/out" ] && grep -qF -- "$text" "$T/err"; then
        echo "ok - $d"
    else
        echo "FAIL - $d (status $st, stderr: $(cat "$T/err"))"; fails=$((fails + 1))
    fi
}

check "goldens of the three fixture tokenizers" /usr/bin/python3 "$HERE/tokenize_check.py" \
    "$MECHIR" "$DATA" "$T"

TOK=$DATA/tokenizers
printf '{"text": "fine"}\n{"txt": "no text"}\n' > "$T/bad.jsonl"
refuse "a line without text" 1 "bad.jsonl:2: \"text\" is missing" \
    "$MECHIR" tokenize --model "$TOK/bpe-roberta" --input "$T/bad.jsonl"
printf '{"query": "q", "text": 3}\n' > "$T/bad2.jsonl"
refuse "a pair whose text is a number" 1 "bad2.jsonl:1: \"text\" is not a string" \
    "$MECHIR" tokenize --model "$TOK/bpe-roberta" --input "$T/bad2.jsonl" --pair
printf '{"text": "a\\u0000b"}\n' > "$T/nul.jsonl"
refuse "a NUL in a text" 1 "nul.jsonl:1:" \
    "$MECHIR" tokenize --model "$TOK/bpe-roberta" --input "$T/nul.jsonl"
printf 'not json\n' > "$T/notjson.jsonl"
refuse "a line that is not JSON" 1 "notjson.jsonl:1: not a JSON object" \
    "$MECHIR" tokenize --model "$TOK/bpe-roberta" --input "$T/notjson.jsonl"
mkdir "$T/nfkc"
sed 's/"type":"BertNormalizer"/"type":"NFKC"/' "$TOK/wordpiece-cased/tokenizer.json" \
    > "$T/nfkc/tokenizer.json"
refuse "an unsupported normalizer" 1 "nfkc/tokenizer.json: normalizer.type 'NFKC' is not supported" \
    "$MECHIR" tokenize --model "$T/nfkc" --text hello
mkdir "$T/empty"
refuse "a directory without tokenizer files" 1 "no tokenizer.json, vocab.json + merges.txt, spiece.model" \
    "$MECHIR" tokenize --model "$T/empty" --text hello
refuse "--text with --input" 2 "either --text or --input" \
    "$MECHIR" tokenize --model "$TOK/bpe-roberta" --text a --input "$T/bad.jsonl"
refuse "a pair that --max-len cannot hold" 1 "--text:" \
    "$MECHIR" tokenize --model "$TOK/bpe-roberta" --text "two words" --max-len 1

# The old vocab.txt path: bert-base-uncased gives the ids the library gives (cases.jsonl there).
mkdir "$T/uncased"
cp "$DATA/tokenizer/bert-base-uncased-vocab.txt" "$T/uncased/vocab.txt"
got=$("$MECHIR" tokenize --model "$T/uncased" --text "what is the capital of france?" 2>/dev/null)
check "uncased vocab.txt" test "$got" = \
    '{"ids":[101,2054,2003,1996,3007,1997,2605,1029,102],"tokens":["[CLS]","what","is","the","capital","of","france","?","[SEP]"],"token_types":[0,0,0,0,0,0,0,0,0]}'

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
