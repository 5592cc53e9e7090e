#!/usr/bin/env python3
"""Write a random-initialised causal language model as a Hugging Face
checkpoint, for `gearbox bench lm` and other benchmarks: config.json,
generation_config.json and one model.safetensors, weights in bf16, no
tokenizer (Gearbox serves such a model to jobs that give prompt_tokens).

Shapes come from a preset, each flag overriding it, or from the flags
alone:

  llama-3.1-8b   32 layers, hidden 4096, MLP 14336, 32/8 heads, vocab 128,256, untied head (16 GB)
  llama-3.2-1b   16 layers, hidden 2048, MLP 8192, 32/8 heads, vocab 128,256, tied embeddings (2.5 GB)
  qwen2.5-0.5b   24 layers, hidden 896, MLP 4864, 14/2 heads, vocab 151,936, q/k/v biases, tied (1 GB)

The weights follow Gearbox's lm.Synth (model/lm/synth.go), as the test
fixtures do (testdata/lm/make_fixtures.py): embeddings N(0, 1), projections
N(0, 1/in), biases N(0, 0.1²), norm weights 1 + N(0, 0.1²), and the head
N(0, s²/hidden), where s is --logit-std: the logits' standard deviation for
a unit-RMS final hidden state (1 by default; a trained model's next-token
distributions are peakier, as larger values give). With tied embeddings
the one matrix is the head's, N(0, s²/hidden). Seeded by --seed (the same
seed, device and torch version write the same bytes).

Run where torch and transformers are installed (no network needed; a GPU
is used when there is one, else the CPU, slowly for billions of weights):

  python3 bench/make_random_lm.py --preset llama-3.1-8b --out /data/llama8b
  python3 bench/make_random_lm.py --preset llama-3.2-1b --out /data/llama1b --seed 2

The model's name in Gearbox is the output directory's base name (a-z, A-Z,
0-9, _ and -, at most 64), or --name, which writes a model.json.
"""

import argparse
import json
import math
import os
import re
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

V5 = int(transformers.__version__.split(".")[0]) >= 5

ARCHS = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}

LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}

PRESETS = {
    "llama-3.1-8b": dict(arch="llama", vocab=128256, hidden=4096, intermediate=14336, layers=32, heads=32,
                         kv_heads=8, head_dim=128, max_positions=131072, tied=False, rms_eps=1e-5,
                         rope_theta=500000.0, rope_scaling=dict(LLAMA3_ROPE, factor=8.0)),
    "llama-3.2-1b": dict(arch="llama", vocab=128256, hidden=2048, intermediate=8192, layers=16, heads=32,
                         kv_heads=8, head_dim=64, max_positions=131072, tied=True, rms_eps=1e-5,
                         rope_theta=500000.0, rope_scaling=dict(LLAMA3_ROPE, factor=32.0)),
    "qwen2.5-0.5b": dict(arch="qwen2", vocab=151936, hidden=896, intermediate=4864, layers=24, heads=14,
                         kv_heads=2, head_dim=64, max_positions=32768, tied=True, rms_eps=1e-6,
                         rope_theta=1000000.0, rope_scaling=None),
}

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def rope(theta, scaling):
    """RoPE settings in the config format of the installed transformers."""
    if V5:
        params = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            params.update(scaling)
        return {"rope_parameters": params}
    return {"rope_theta": theta, "rope_scaling": scaling}


def shapes(args):
    """The preset's shapes with the flags given over them; every one set."""
    s = dict(PRESETS[args.preset]) if args.preset else {"rope_scaling": None, "rms_eps": 1e-5, "rope_theta": 10000.0}
    for k in ("arch", "vocab", "hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim", "max_positions",
              "rope_theta", "rms_eps"):
        v = getattr(args, k)
        if v is not None:
            s[k] = v
    if args.tied is not None:
        s["tied"] = args.tied == "true"
    if "head_dim" not in s and "hidden" in s and "heads" in s:
        s["head_dim"] = s["hidden"] // s["heads"]
    missing = [k for k in ("arch", "vocab", "hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim",
                           "max_positions", "tied") if k not in s]
    if missing:
        sys.exit("make_random_lm: no --preset, and no --%s" % ", --".join(m.replace("_", "-") for m in missing))
    for k in ("vocab", "hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim", "max_positions"):
        if s[k] < 1:
            sys.exit(f"make_random_lm: --{k.replace('_', '-')} {s[k]} must be ≥ 1")
    if s["heads"] % s["kv_heads"]:
        sys.exit(f"make_random_lm: --heads {s['heads']} is not a multiple of --kv-heads {s['kv_heads']}")
    return s


def config(s):
    cls, _ = ARCHS[s["arch"]]
    kw = dict(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
              num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
              max_position_embeddings=s["max_positions"], rms_norm_eps=s["rms_eps"],
              tie_word_embeddings=s["tied"], hidden_act="silu", bos_token_id=1, eos_token_id=2,
              **rope(s["rope_theta"], s["rope_scaling"]))
    if s["head_dim"] != s["hidden"] // s["heads"]:  # only where it says something: as published configs do
        kw["head_dim"] = s["head_dim"]
    if s["arch"] == "qwen2":
        kw["use_sliding_window"] = False
    return cls(**kw)


def randomise(model, hidden, logit_std, tied):
    """lm.Synth's weights (see the module's doc), in place."""
    head = logit_std / math.sqrt(hidden)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p) * (head if tied else 1.0))
            elif name.startswith("lm_head"):
                p.copy_(torch.randn_like(p) * head)
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the checkpoint directory to write (created; must be empty or new)")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="shapes of a published model")
    ap.add_argument("--arch", choices=sorted(ARCHS))
    for k in ("vocab", "hidden", "intermediate", "layers", "heads", "kv-heads", "head-dim", "max-positions"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--tied", choices=("true", "false"), help="tie the head to the embeddings")
    ap.add_argument("--rope-theta", type=float)
    ap.add_argument("--rms-eps", type=float)
    ap.add_argument("--logit-std", type=float, default=1.0, help="std of the logits for a unit-RMS final hidden state")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--name", help="the model's name in Gearbox (written to model.json); default: --out's base name")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    s = shapes(args)
    name = args.name or os.path.basename(os.path.normpath(args.out))
    if not NAME.match(name):
        sys.exit(f"make_random_lm: model name {name!r} (the --out directory's base name, or --name) must be 1 to 64 "
                 "of a-z, A-Z, 0-9, _ and -")
    if not args.logit_std > 0:
        sys.exit(f"make_random_lm: --logit-std {args.logit_std} must be > 0")
    if os.path.isdir(args.out) and os.listdir(args.out):
        sys.exit(f"make_random_lm: {args.out} is not empty")

    t0 = time.time()
    torch.manual_seed(args.seed)
    cfg = config(s)
    _, model_cls = ARCHS[s["arch"]]
    with torch.device(args.device):
        model = model_cls(cfg).to(torch.bfloat16).eval()
    randomise(model, s["hidden"], args.logit_std, s["tied"])
    params = sum(p.numel() for p in model.parameters())
    os.makedirs(args.out, exist_ok=True)
    try:  # one model.safetensors, not shards
        model.save_pretrained(args.out, safe_serialization=True, max_shard_size="1000GB")
    except TypeError:
        model.save_pretrained(args.out, safe_serialization=True)
    if args.name:
        with open(os.path.join(args.out, "model.json"), "w") as f:
            json.dump({"name": args.name}, f)
    files = sorted(os.listdir(args.out))
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in files)
    print(f"{args.out}: {name}, {s['arch']} {s['layers']} layers, hidden {s['hidden']}, vocab {s['vocab']}, "
          f"{params / 1e9:.2f} B parameters, {size / 1e9:.2f} GB in {files}, {time.time() - t0:.0f}s "
          f"(torch {torch.__version__}, transformers {transformers.__version__}, {args.device})")


if __name__ == "__main__":
    main()
