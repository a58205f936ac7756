// Writes tests/data/tokenizer/punct-cases.jsonl: every ASCII punctuation character (33-47,
// 58-64, 91-96, 123-126) alone, repeated, inside and around words, next to digits and accents,
// with the ids of the real Hugging Face tokenizer (the Rust library through its Node binding),
// set up as BertTokenizer for bert-base-uncased: BERT normalizer (clean text, Chinese
// characters, strip accents, lowercase), BERT pre-tokenizer, WordPiece ("##", [UNK], 100
// characters a word), [CLS] a [SEP] (b [SEP]). Same fields as cases.jsonl. Not run by the build:
//
//   mkdir -p /tmp/hf-tok && (cd /tmp/hf-tok && npm install tokenizers)
//   NODE_PATH=/tmp/hf-tok/node_modules node tests/unit/make_punct_cases.js \
//     tests/data/tokenizer/bert-base-uncased-vocab.txt > tests/data/tokenizer/punct-cases.jsonl
'use strict';
const { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer, bertProcessing } =
  require('tokenizers');

async function main() {
  const vocabPath = process.argv[2];
  if (!vocabPath) {
    console.error('usage: node make_punct_cases.js VOCAB.txt > punct-cases.jsonl');
    process.exit(2);
  }
  const model = await WordPiece.fromFile(vocabPath, {
    unkToken: '[UNK]',
    continuingSubwordPrefix: '##',
    maxInputCharsPerWord: 100,
  });
  const tok = new Tokenizer(model);
  tok.setNormalizer(bertNormalizer({
    cleanText: true, handleChineseChars: true, stripAccents: true, lowercase: true,
  }));
  tok.setPreTokenizer(bertPreTokenizer());
  tok.setPostProcessor(bertProcessing(['[SEP]', tok.tokenToId('[SEP]')],
                                      ['[CLS]', tok.tokenToId('[CLS]')]));

  const punct = [];
  const ranges = [[33, 47], [58, 64], [91, 96], [123, 126]];
  for (const [lo, hi] of ranges)
    for (let c = lo; c <= hi; c++) punct.push(String.fromCharCode(c));
  if (punct.length !== 32) throw new Error('expected 32 ASCII punctuation characters');

  // Three cases per character, two texts each: seven contexts in all.
  const cases = [];
  for (const p of punct) {
    cases.push([p, `foo${p}bar Baz${p}${p}Qux`]);
    cases.push([`${p}${p}${p} x ${p} y`, `${p}start end${p} 3${p}14 ${p}9`]);
    cases.push([`Café${p}Naïve ÉCOLE${p}`, `a${p}b${p}c ${p}${p} the${p}${p}${p}cat`]);
  }
  // Every character together, with and without spaces, and inside one long word.
  const all = punct.join('');
  cases.push([all, punct.join(' ')]);
  cases.push([`word${punct.join('word')}word`, `x${all}y ${all}${all}`]);

  for (const [a, b] of cases) {
    const single = await tok.encode(a);
    const pair = await tok.encode(a, b);
    process.stdout.write(JSON.stringify({
      text_a: a,
      text_b: b,
      single_ids: single.getIds(),
      pair_ids: pair.getIds(),
      pair_type_ids: pair.getTypeIds(),
    }) + '\n');
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
