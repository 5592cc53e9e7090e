#!/usr/bin/env python3
"""Train gocoder: the small Go-code language model Gearbox ships.

A Llama-architecture causal LM (about 3 million parameters) with its own
byte-level BPE tokenizer of 4,096 tokens, trained for a few minutes on one
GPU on the Go toolchain's own source tree (non-test .go files of
$GOROOT/src). About 2 % of the files, chosen by a hash of their path, are
held out: they are never trained on, and they give the prompts of the demo
and the quality measurements.

Everything the checkpoint needs is written to --out, as a Hugging Face
causal-LM directory that Gearbox loads (docs/models-lm.md):

  config.json, generation_config.json, model.safetensors (bf16),
  tokenizer.json, tokenizer_config.json, model.json (Gearbox: name,
  quality target, ladder), heldout.txt (the held-out files),
  golden.json (transformers' own greedy continuations and last-position
  logits for a few held-out prompts, from the shipped bf16 weights
  computed in fp32), train.log

Run on the GPU host (torch, transformers and tokenizers; no network), with
the Go sources packed here by testdata/models/pack_gosrc.sh:

  python3 testdata/models/train_gocoder.py --src gosrc.tar.xz --out $OUT/gocoder --minutes 4

The result is committed under testdata/models/gocoder (about 6 MB).
"""

import argparse
import hashlib
import io
import json
import math
import os
import random
import tarfile
import time

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM

EOT = "<|endoftext|>"
VOCAB = 4096
CTX = 512
HELDOUT_PERCENT = 2


def log(out, *args):
    line = " ".join(str(a) for a in args)
    print(line, flush=True)
    with open(os.path.join(out, "train.log"), "a") as f:
        f.write(line + "\n")


def heldout(path):
    h = hashlib.sha256(path.encode()).digest()
    return h[0] * 100 // 256 < HELDOUT_PERCENT


def read_sources(src):
    files = {}
    with tarfile.open(src) as tf:
        for m in tf:
            if m.isfile() and m.name.endswith(".go"):
                files[m.name.lstrip("./")] = tf.extractfile(m).read().decode("utf-8", "replace")
    return files


def train_tokenizer(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def rope_kwargs(theta):
    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="tar.xz of $GOROOT/src .go files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--golden-only", action="store_true",
                    help="only rewrite golden.json of the model already in --out")
    args = ap.parse_args()
    if args.golden_only:
        files = read_sources(args.src)
        held = [n for n in sorted(files) if heldout(n)]
        tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        with open(os.path.join(args.out, "golden.json")) as f:
            ppl = json.load(f).get("perplexity")
        write_golden(args.out, files, held, tok, tok.token_to_id(EOT), "cuda", ppl)
        return
    os.makedirs(args.out, exist_ok=True)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()

    files = read_sources(args.src)
    names = sorted(files)
    train_names = [n for n in names if not heldout(n)]
    held_names = [n for n in names if heldout(n)]
    log(args.out, f"files: {len(names)} ({len(train_names)} train, {len(held_names)} held out)",
        f"torch {torch.__version__} transformers {transformers.__version__}")
    with open(os.path.join(args.out, "heldout.txt"), "w") as f:
        f.write("\n".join(held_names) + "\n")

    tok = train_tokenizer(files[n] for n in train_names)
    eot = tok.token_to_id(EOT)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": EOT, "eos_token": EOT, "unk_token": None, "pad_token": EOT,
                   "add_bos_token": False, "model_max_length": CTX * 2,
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)

    def encode_all(ns):
        ids = []
        for enc in tok.encode_batch([files[n] for n in ns]):
            ids.extend(enc.ids)
            ids.append(eot)
        return torch.tensor(ids, dtype=torch.long)

    train_ids = encode_all(train_names)
    held_ids = encode_all(held_names)
    log(args.out, f"tokens: {len(train_ids)} train, {len(held_ids)} held out;",
        f"{sum(len(files[n]) for n in train_names) / len(train_ids):.2f} bytes/token; t={time.time() - t0:.0f}s")

    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=192, intermediate_size=512, num_hidden_layers=6,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=CTX * 2,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=eot, eos_token_id=eot,
        pad_token_id=eot, hidden_act="silu", **rope_kwargs(10000.0),
    )
    dev = "cuda"
    model = LlamaForCausalLM(cfg).to(dev)
    nparams = sum(p.numel() for p in model.parameters())
    log(args.out, f"parameters: {nparams}")

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    train_gpu = train_ids.to(dev)
    batch, warmup = 96, 200
    budget = args.minutes * 60
    start, step = time.time(), 0
    model.train()
    while True:
        elapsed = time.time() - start
        if elapsed > budget:
            break
        frac = elapsed / budget
        lr = 3e-3 * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        ix = torch.randint(0, len(train_gpu) - CTX - 1, (batch,), device=dev)
        x = train_gpu[ix[:, None] + torch.arange(CTX + 1, device=dev)]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            log(args.out, f"step {step} loss {loss.item():.3f} lr {lr:.2e} t={time.time() - start:.0f}s")
        step += 1
    log(args.out, f"trained {step} steps × {batch} × {CTX} tokens in {time.time() - start:.0f}s")

    # Ship bf16; everything measured below uses exactly the shipped weights.
    model = model.to(torch.bfloat16).float().eval()

    @torch.no_grad()
    def perplexity(ids, windows=64):
        g = torch.Generator().manual_seed(7)
        nll, n = 0.0, 0
        for _ in range(windows):
            i = int(torch.randint(0, len(ids) - CTX - 1, (1,), generator=g))
            x = ids[i:i + CTX + 1].to(dev)[None]
            logits = model(input_ids=x[:, :-1]).logits
            nll += F.cross_entropy(logits.reshape(-1, VOCAB), x[0, 1:], reduction="sum").item()
            n += CTX
        return math.exp(nll / n)

    ppl_train, ppl_held = perplexity(train_ids), perplexity(held_ids)
    log(args.out, f"perplexity (bf16 weights, fp32 compute): train {ppl_train:.3f}, held out {ppl_held:.3f}")

    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    model = model.float()
    gpath = os.path.join(args.out, "generation_config.json")
    gen = {}
    if os.path.exists(gpath):
        with open(gpath) as f:
            gen = json.load(f)
    gen.update({"do_sample": False, "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot})
    with open(gpath, "w") as f:
        json.dump(gen, f, indent=2)
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump({"name": "gocoder", "version": time.strftime("%Y-%m-%d"),
                   "quality": {"metric": "kl", "max_error": 0.01},
                   "precision": {"initial": "bf16", "ladder": ["fp32", "tf32", "bf16", "fp8", "fp4"]}}, f, indent=2)

    write_golden(args.out, files, held_names, tok, eot, dev, {"train": ppl_train, "heldout": ppl_held})
    log(args.out, f"done in {time.time() - t0:.0f}s")


def write_golden(out, files, held_names, tok, eot, dev, perplexity):
    """golden.json: transformers' greedy continuations and last-position
    logits of the first lines of a few held-out files, computed in fp32 from
    the checkpoint as a user loads it (a model cast in memory would keep its
    RoPE frequencies rounded to bf16, which no loaded model has)."""
    model = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").to(dev).eval()
    golden = []
    for n in held_names[:6]:
        text = "\n".join(files[n].splitlines()[:12]) + "\n"
        ids = tok.encode(text).ids[:96]
        # Plain greedy decoding by full forward passes: argmax of the fp32
        # logits, lowest id on a tie, no end-of-text stop.
        cont, last = [], None
        with torch.no_grad():
            for _ in range(48):
                logits = model(input_ids=torch.tensor([ids + cont], device=dev)).logits[0, -1]
                if last is None:
                    last = logits.tolist()
                cont.append(int(torch.argmax(logits)))
        golden.append({"file": n, "prompt_ids": ids, "greedy_ids": cont,
                       "greedy_text": tok.decode(cont), "last_logits": last})
        log(out, f"--- {n}\n{text}>>> {tok.decode(cont)!r}")
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "perplexity": perplexity, "cases": golden}, f)


if __name__ == "__main__":
    main()
