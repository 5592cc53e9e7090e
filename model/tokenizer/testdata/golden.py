#!/usr/bin/env python3
"""Writes the golden file the Go tests of package tokenizer check against:
token ids and decoded texts from Hugging Face `tokenizers` for every text of
the corpus, with each tokenizer.

Run on a host with Python `tokenizers` (and, for an extra report,
`transformers`), from the repository root:

    python3 model/tokenizer/testdata/golden.py \
        --tokenizers model/tokenizer/testdata/hf \
        --corpus model/tokenizer/testdata/corpus \
        --out model/tokenizer/testdata/golden.json

--tokenizers is the directory fetch.sh fills (llama3/, qwen3/); the committed
fixtures (tiny/, tinygpt2/, llama31_post_processor.json) are read from beside
this script. The tokenizers:

    llama3    hf/llama3/tokenizer.json (Llama 3, its post-processor adds nothing)
    llama31   the same with Llama 3.1's post-processor (a BOS first)
    qwen3     hf/qwen3/tokenizer.json (NFC, one digit at a time)
    tiny      tiny/tokenizer.json (every added-token flag, a BOS/EOS template)
    tinygpt2  tinygpt2/tokenizer.json (GPT-2's ByteLevel pre-tokenizer)

The texts are each corpus file (sorted by name) whole, then each of its
lines (split after "\\n", empty ones dropped) — as the Go test reads them.

golden.mjs beside this script writes the same file with the npm binding of
the same Rust library, where Python tokenizers is not installed.
"""
import argparse
import json
import os
import random
import sys

from tokenizers import Tokenizer
import tokenizers


def corpus_texts(corpus):
    texts = []
    for name in sorted(os.listdir(corpus)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(corpus, name), encoding="utf-8", newline="") as f:
            text = f.read()
        texts.append(text)
        lines, start = [], 0
        for i, c in enumerate(text):
            if c == "\n":
                lines.append(text[start:i + 1])
                start = i + 1
        lines.append(text[start:])
        texts += [l for l in lines if l]
    return texts


def encode_all(tok, texts):
    out = {"encode": [], "encode_special": [], "decode": [], "decode_skip": []}
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        skip = tok.decode(ids, skip_special_tokens=True)
        out["encode"].append(ids)
        out["encode_special"].append(None if special == ids else special)
        out["decode"].append(None if dec == text else dec)
        out["decode_skip"].append(None if skip == dec else skip)
    return out


def decode_cases(tok, seed, n=300):
    """Random id sequences, biased to single-byte tokens so that characters
    are cut and joined in every way, and to added tokens."""
    vocab = tok.get_vocab(with_added_tokens=True)
    size = tok.get_vocab_size(with_added_tokens=True)
    byte_ids = [i for t, i in vocab.items() if len(t) == 1]
    added = sorted(tok.get_added_tokens_decoder().keys())
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(1, 8)):
            r = rng.random()
            if r < 0.6:
                ids.append(rng.choice(byte_ids))
            elif r < 0.85 or not added:
                ids.append(rng.randrange(size))
            else:
                ids.append(rng.choice(added))
        ids = [i for i in ids if tok.id_to_token(i) is not None]
        text = tok.decode(ids, skip_special_tokens=False)
        skip = tok.decode(ids, skip_special_tokens=True)
        cases.append({"ids": ids, "text": text, "skip": None if skip == text else skip})
    return cases


def transformers_report(path, texts, tok):
    """How transformers' AutoTokenizer on the same directory differs from
    tokenizers (for information: the Go code follows tokenizers). Never
    fails: an error is reported instead."""
    try:
        import transformers
        from transformers import AutoTokenizer
        auto = AutoTokenizer.from_pretrained(path)
        report = {"version": transformers.__version__, "class": type(auto).__name__,
                  "encode": 0, "encode_special": 0, "decode": 0, "examples": []}
        for text in texts:
            for key, special in (("encode", False), ("encode_special", True)):
                want = tok.encode(text, add_special_tokens=special).ids
                got = list(auto(text, add_special_tokens=special)["input_ids"])
                if got != want:
                    report[key] += 1
                    if len(report["examples"]) < 5:
                        report["examples"].append({"what": key, "text": text[:200],
                                                   "transformers": got[:40], "tokenizers": want[:40]})
            ids = tok.encode(text, add_special_tokens=False).ids
            got = auto.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            if got != tok.decode(ids, skip_special_tokens=False):
                report["decode"] += 1
                if len(report["examples"]) < 5:
                    report["examples"].append({"what": "decode", "text": text[:200], "transformers": got[:200]})
        return report
    except Exception as e:  # not installed, cannot load offline, another API
        return {"error": repr(e)}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizers", required=True, help="directory holding llama3/ and qwen3/ (what fetch.sh fills)")
    ap.add_argument("--corpus", required=True, help="directory of the corpus .txt files")
    ap.add_argument("--out", required=True, help="the golden JSON file to write")
    ap.add_argument("--fixtures", default=here, help="directory of tiny/, tinygpt2/ and llama31_post_processor.json")
    args = ap.parse_args()

    texts = corpus_texts(args.corpus)
    paths = {
        "llama3": os.path.join(args.tokenizers, "llama3", "tokenizer.json"),
        "qwen3": os.path.join(args.tokenizers, "qwen3", "tokenizer.json"),
        "tiny": os.path.join(args.fixtures, "tiny", "tokenizer.json"),
        "tinygpt2": os.path.join(args.fixtures, "tinygpt2", "tokenizer.json"),
    }
    toks = {name: Tokenizer.from_file(p) for name, p in paths.items()}
    with open(paths["llama3"], encoding="utf-8") as f:
        llama31 = json.load(f)
    with open(os.path.join(args.fixtures, "llama31_post_processor.json"), encoding="utf-8") as f:
        llama31["post_processor"] = json.load(f)
    toks["llama31"] = Tokenizer.from_str(json.dumps(llama31))

    golden = {
        "generator": "model/tokenizer/testdata/golden.py",
        "tokenizers_version": tokenizers.__version__,
        "python": sys.version.split()[0],
        "texts": texts,
        "tokenizers": {},
        "decode_cases": {},
        "transformers": {},
    }
    for seed, name in enumerate(sorted(toks)):
        golden["tokenizers"][name] = encode_all(toks[name], texts)
        golden["decode_cases"][name] = decode_cases(toks[name], seed)
    for name in ("llama3", "qwen3"):
        golden["transformers"][name] = transformers_report(os.path.dirname(paths[name]), texts, toks[name])

    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    n = sum(len(ids) for t in golden["tokenizers"].values() for ids in t["encode"])
    print(f"{args.out}: {len(texts)} texts, {len(toks)} tokenizers, {n} ids, {os.path.getsize(args.out)} bytes")
    for name, rep in golden["transformers"].items():
        print(f"transformers vs tokenizers, {name}: {json.dumps(rep)[:600]}")


if __name__ == "__main__":
    main()
