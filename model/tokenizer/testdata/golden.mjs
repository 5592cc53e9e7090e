// golden.mjs writes golden.json as golden.py does, with the Node binding of
// the same Rust tokenizers library (npm package "tokenizers"), for hosts
// without Python tokenizers. The random id sequences of decode_cases differ
// from golden.py's (another generator); the rest is the same. From the
// repository root:
//
//   npm install --prefix /tmp/tok tokenizers@0.23.2
//   NODE_PATH=/tmp/tok/node_modules node model/tokenizer/testdata/golden.mjs \
//       --tokenizers model/tokenizer/testdata/hf \
//       --corpus model/tokenizer/testdata/corpus \
//       --out model/tokenizer/testdata/golden.json
import { createRequire } from "module";
import fs from "fs";
import path from "path";
import { parseArgs } from "util";

const require = createRequire(path.join(process.env.NODE_PATH || ".", "x.js"));
const { Tokenizer } = require("tokenizers");
const version = require("tokenizers/package.json").version;
const here = path.dirname(new URL(import.meta.url).pathname);
const { values: args } = parseArgs({
  options: {
    tokenizers: { type: "string" },
    corpus: { type: "string" },
    out: { type: "string" },
    fixtures: { type: "string", default: here },
  },
});
if (!args.tokenizers || !args.corpus || !args.out) {
  console.error("usage: golden.mjs --tokenizers DIR --corpus DIR --out FILE [--fixtures DIR]");
  process.exit(2);
}

// corpusTexts: each .txt file (sorted by name) whole, then its lines split
// after "\n", empty ones dropped.
function corpusTexts(dir) {
  const texts = [];
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".txt")).sort()) {
    const text = fs.readFileSync(path.join(dir, name), "utf8");
    texts.push(text, ...text.split(/(?<=\n)/).filter((l) => l));
  }
  return texts;
}

const texts = corpusTexts(args.corpus);
const toks = {
  llama3: Tokenizer.fromFile(path.join(args.tokenizers, "llama3", "tokenizer.json")),
  qwen3: Tokenizer.fromFile(path.join(args.tokenizers, "qwen3", "tokenizer.json")),
  tiny: Tokenizer.fromFile(path.join(args.fixtures, "tiny", "tokenizer.json")),
  tinygpt2: Tokenizer.fromFile(path.join(args.fixtures, "tinygpt2", "tokenizer.json")),
};
const llama31 = JSON.parse(fs.readFileSync(path.join(args.tokenizers, "llama3", "tokenizer.json"), "utf8"));
llama31.post_processor = JSON.parse(fs.readFileSync(path.join(args.fixtures, "llama31_post_processor.json"), "utf8"));
toks.llama31 = Tokenizer.fromString(JSON.stringify(llama31));

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
let seed = 1; // a linear congruential generator: reproducible
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const pick = (a) => a[Math.floor(rand() * a.length)];

const golden = {
  generator: "model/tokenizer/testdata/golden.mjs",
  tokenizers_version: version,
  node: process.version,
  texts,
  tokenizers: {},
  decode_cases: {},
  transformers: {},
};
for (const name of Object.keys(toks).sort()) {
  const tok = toks[name];
  const r = { encode: [], encode_special: [], decode: [], decode_skip: [] };
  for (const text of texts) {
    const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    const special = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const dec = await tok.decode(ids, false);
    const skip = await tok.decode(ids, true);
    r.encode.push(ids);
    r.encode_special.push(same(special, ids) ? null : special);
    r.decode.push(dec === text ? null : dec);
    r.decode_skip.push(skip === dec ? null : skip);
  }
  golden.tokenizers[name] = r;
  // Random id sequences, biased to single-byte tokens (characters cut and
  // joined every way) and to added tokens.
  const all = tok.getVocab(true);
  const base = tok.getVocab(false);
  const size = tok.getVocabSize(true);
  const byteIds = Object.entries(all).filter(([t]) => [...t].length === 1).map(([, i]) => i);
  const added = Object.entries(all).filter(([t]) => !(t in base)).map(([, i]) => i);
  const cases = [];
  for (let c = 0; c < 300; c++) {
    let ids = [];
    for (let n = 1 + Math.floor(rand() * 8); n > 0; n--) {
      const x = rand();
      ids.push(x < 0.6 ? pick(byteIds) : x < 0.85 || !added.length ? Math.floor(rand() * size) : pick(added));
    }
    ids = ids.filter((i) => tok.idToToken(i) !== null);
    const text = await tok.decode(ids, false);
    const skip = await tok.decode(ids, true);
    cases.push({ ids, text, skip: skip === text ? null : skip });
  }
  golden.decode_cases[name] = cases;
}
fs.writeFileSync(args.out, JSON.stringify(golden) + "\n");
console.log(`${args.out}: ${texts.length} texts, ${Object.keys(toks).length} tokenizers, tokenizers ${version}, ${fs.statSync(args.out).size} bytes`);
