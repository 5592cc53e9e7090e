// Package lm loads causal language models from Hugging Face checkpoints:
// a directory with config.json, model.safetensors (or shards listed by
// model.safetensors.index.json), and optionally generation_config.json,
// tokenizer.json, tokenizer_config.json and a Gearbox model.json (name,
// version, quality target, precision ladder).
//
// Three architectures are read — llama (with Llama 3.1's llama3 RoPE
// scaling), qwen2 (q/k/v biases) and qwen3 (per-head q/k RMSNorm) — with
// grouped-query attention, RoPE, RMSNorm, a SiLU-gated MLP and tied or
// untied embeddings. Anything else (another model_type, mixture of experts,
// sliding windows, another RoPE scaling, ...) fails at load with an error
// naming the config.json field and wrapping ErrUnsupported.
//
// Weights stay in their stored dtype (F32, F16 or BF16) as raw bytes
// (model.RawTensor), bound to the Model by their checkpoint names: loading
// never widens a checkpoint to float32 on the host. Backends convert or
// upload them once per model and precision. Package kernels defines the
// language-model contract backends implement (kernels.LM).
//
// See docs/models-lm.md for the format and the rules.
package lm
