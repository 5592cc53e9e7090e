#!/usr/bin/env python3
"""Golden fixtures for Gearbox's language-model tests, made by transformers.

Builds three tiny random-initialised causal language models with
transformers' own classes, saves each with save_pretrained (safetensors),
and records, for fixed token ids, transformers' fp32 logits at every
position and a greedy continuation of 32 tokens from generate():

  llama  LlamaConfig, llama3 RoPE scaling, tied embeddings, fp32 weights
  qwen2  Qwen2Config, q/k/v biases, untied head, fp32 weights
  qwen3  Qwen3Config, per-head q/k RMSNorm, head_dim != hidden/heads,
         bf16 weights (the logits are computed in fp32 from them)

Everything goes into ONE tar.gz (the path given by --out):

  <name>/config.json, generation_config.json, model.safetensors  (save_pretrained's files)
  <name>/fixture.json   input ids, greedy ids, the smallest top-1/top-2
                        logit gap along the greedy path, versions
  <name>/logits.f32     fp32 logits, [len(input ids), vocab], little-endian

Run on a host with torch and transformers (no network needed):

  python3 testdata/lm/make_fixtures.py --out $OUT/lm_fixtures.tar.gz

and commit the result as testdata/lm/fixtures.tar.gz; the Go tests in
kernels/cpu (lmgolden_test.go) read it.
"""

import argparse
import json
import math
import os
import struct
import tarfile
import tempfile

import torch
import transformers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

V5 = int(transformers.__version__.split(".")[0]) >= 5
VOCAB = 300
PROMPT_LEN = 24
GREEDY_LEN = 32


def rope(theta, scaling=None):
    """RoPE settings in the config format of the installed transformers."""
    if V5:
        params = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            params.update(scaling)
        return {"rope_parameters": params}
    return {"rope_theta": theta, "rope_scaling": scaling}


COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    bos_token_id=1,
    eos_token_id=2,
    hidden_act="silu",
)

MODELS = [
    (
        "llama",
        LlamaConfig,
        LlamaForCausalLM,
        dict(
            COMMON,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            **rope(
                10000.0,
                {
                    "rope_type": "llama3",
                    "factor": 4.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64,
                },
            ),
        ),
        torch.float32,
        11,
    ),
    (
        "qwen2",
        Qwen2Config,
        Qwen2ForCausalLM,
        dict(COMMON, rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False, **rope(1000000.0)),
        torch.float32,
        12,
    ),
    (
        "qwen3",
        Qwen3Config,
        Qwen3ForCausalLM,
        dict(
            COMMON,
            head_dim=32,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            attention_bias=False,
            use_sliding_window=False,
            **rope(1000000.0),
        ),
        torch.bfloat16,
        13,
    ),
]


def randomise(model, hidden):
    """Weights like Gearbox's lm.Synth: N(0, 1) embeddings, N(0, 1/in)
    projections, N(0, 0.1²) biases, 1 + N(0, 0.1²) norms, N(0, 1/hidden)
    head. transformers' own init (std 0.02, zero biases, unit norms) gives
    near-flat logits, whose greedy path would hinge on near-ties, and would
    leave biases and norm weights untested."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p))
            elif name.startswith("lm_head"):
                p.copy_(torch.randn_like(p) / math.sqrt(hidden))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))


def make(name, config_cls, model_cls, kwargs, dtype, seed, root):
    torch.manual_seed(seed)
    config = config_cls(**kwargs)
    try:
        config._attn_implementation = "eager"  # the most literal attention
    except Exception:
        pass
    model = model_cls(config).eval()
    randomise(model, config.hidden_size)
    if dtype != torch.float32:
        model = model.to(dtype)  # the weights as stored
    out = os.path.join(root, name)
    model.save_pretrained(out, safe_serialization=True)
    # Compute from the checkpoint as a user loads it, in fp32: exact on the
    # stored values. (Casting the model in memory back to fp32 would keep
    # its RoPE frequencies rounded to bf16, which no loaded model has.)
    model = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (1, PROMPT_LEN), generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
        model.generation_config.eos_token_id = None  # always 32 tokens
        model.generation_config.pad_token_id = 0
        gen = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=GREEDY_LEN,
            do_sample=False,
        )[0, PROMPT_LEN:]
        # How close the greedy path comes to a tie (top-1 minus top-2).
        full = model(input_ids=torch.cat([ids[0], gen]).unsqueeze(0)).logits[0].float()
        top2 = full[PROMPT_LEN - 1 : -1].topk(2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())

    flat = logits.contiguous().view(-1).tolist()
    with open(os.path.join(out, "logits.f32"), "wb") as f:
        f.write(struct.pack("<%df" % len(flat), *flat))
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(
            {
                "name": name,
                "dtype": str(dtype).replace("torch.", ""),
                "input_ids": ids[0].tolist(),
                "logits_shape": list(logits.shape),
                "greedy": gen.tolist(),
                "greedy_min_margin": margin,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            },
            f,
            indent=1,
        )
    print(f"{name}: {sorted(os.listdir(out))}, greedy margin {margin:.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the tar.gz to write")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as root:
        for spec in MODELS:
            make(*spec, root)
        with tarfile.open(args.out, "w:gz") as tar:
            for name, *_ in MODELS:
                tar.add(os.path.join(root, name), arcname=name)
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
