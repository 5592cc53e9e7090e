#!/usr/bin/env python3
"""Decode tokens/s of transformers' generate on a random model with
Llama-3.1-8B's shapes in bf16 — the baseline beside Gearbox's TestLMBench
(kernels/cuda, -lmbench) in docs/benchmarks.md.

For each (prompt, batch): generate 1 token (the prefill) and 1+S tokens,
greedy, no stop token, SDPA attention and the default dynamic KV cache, or
with --static transformers' static cache, whose decode step generate
compiles with torch.compile (transformers' default compile config for a
static cache); decode tokens/s = batch * S / (t[1+S] - t[1]), median of
--reps, after an untimed warm-up that pays for the compilation.

    python3 bench/lm_transformers.py --json out.json
    python3 bench/lm_transformers.py --static --batches 1,8 --prompts 2048 --json static.json
"""
import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def llama31_8b():
    return LlamaConfig(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=1, eos_token_id=2, pad_token_id=0)


def timed(model, ids, new, cache):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    kw = {"cache_implementation": "static"} if cache == "static" else {}
    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                   min_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0, **kw)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--prompts", default="128,2048")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--static", action="store_true", help="static KV cache, decode step compiled")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(llama31_8b()).to(torch.bfloat16).eval()
    # A model cast in memory keeps bf16-rounded RoPE frequencies; the
    # timing does not care.
    print(f"torch {torch.__version__} transformers {transformers.__version__} "
          f"{torch.cuda.get_device_name()} params {sum(p.numel() for p in model.parameters())/1e9:.2f} B",
          flush=True)
    rows = []
    for prompt in [int(x) for x in args.prompts.split(",")]:
        for batch in [int(x) for x in args.batches.split(",")]:
            ids = torch.randint(3, 128000, (batch, prompt), device="cuda")
            cache = "static" if args.static else "dynamic"
            row = {"prompt": prompt, "batch": batch, "steps": args.steps, "cache": cache}
            try:
                # Warm-up of both lengths (static: a cache and a compiled step each).
                row["warmup_s"] = timed(model, ids, 1, cache) + timed(model, ids, 1 + args.steps, cache)
                pre, full = [], []
                for _ in range(args.reps):
                    pre.append(timed(model, ids, 1, cache))
                    full.append(timed(model, ids, 1 + args.steps, cache))
                dt = statistics.median(full) - statistics.median(pre)
                row["prefill_s"] = statistics.median(pre)
                row["decode_tok_s"] = batch * args.steps / dt
                row["step_ms"] = 1e3 * dt / args.steps
            except torch.OutOfMemoryError as e:
                row["error"] = "out of memory: " + str(e).splitlines()[0]
            del ids
            torch.cuda.empty_cache()
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                       "device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
