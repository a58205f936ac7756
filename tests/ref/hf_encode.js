// The reference side of tokenizers_ref.sh: Hugging Face's tokenizers (the official Node binding,
// npm `tokenizers`, the version the fixtures were made with) encodes every line of a JSONL file,
// {"text"} alone or {"query", "text"} as a pair, with special tokens; prints {"ids", "types"} a
// line. usage: node hf_encode.js NODE_MODULES TOKENIZER.json IN.jsonl single|pair
'use strict';
const path = require('path');
const fs = require('fs');
const [modules, tokFile, inFile, mode] = process.argv.slice(2);
const { Tokenizer } = require(path.join(modules, 'tokenizers'));
const want = '0.23.2';
const have = require(path.join(modules, 'tokenizers', 'package.json')).version;
if (have !== want) {
  console.error(`hf_encode.js: npm tokenizers ${have}, the fixtures were made with ${want}`);
  process.exit(2);
}

async function main() {
  const tok = Tokenizer.fromFile(tokFile);
  const lines = fs.readFileSync(inFile, 'utf8').split('\n').filter((l) => l.length);
  const out = [];
  for (const line of lines) {
    const o = JSON.parse(line);
    const enc =
      mode === 'pair' ? await tok.encode(o.query, o.text) : await tok.encode(o.text, null);
    out.push(JSON.stringify({ ids: enc.getIds(), types: enc.getTypeIds() }));
  }
  fs.writeSync(1, out.join('\n') + '\n');
}
main().catch((e) => {
  console.error(`hf_encode.js: ${e}`);
  process.exit(1);
});
