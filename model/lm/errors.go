package lm

import "errors"

// Errors returned (wrapped with %w, alongside the file and the field or
// tensor they concern) by the functions of this package. Test for them with
// errors.Is. A malformed model.json wraps model.ErrInvalidManifest and a
// malformed safetensors file model.ErrInvalidSafetensors, as for tensor
// models; a missing file wraps fs.ErrNotExist.
var (
	// ErrInvalidConfig: config.json or generation_config.json is not valid
	// JSON, lacks a required field, or has a value out of range or
	// inconsistent with another (heads not a multiple of the KV heads, ...).
	ErrInvalidConfig = errors.New("invalid config")

	// ErrUnsupported: config.json is well formed but describes a model
	// Gearbox does not run exactly: another model_type, mixture of experts,
	// sliding-window attention, a RoPE scaling other than llama3, an
	// activation other than silu, a quantized checkpoint, ...
	ErrUnsupported = errors.New("unsupported model")

	// ErrTensorMismatch: the checkpoint's tensors do not match config.json:
	// a tensor is missing, has the wrong shape, or is not part of the
	// architecture; or model.safetensors.index.json disagrees with its
	// shards.
	ErrTensorMismatch = errors.New("checkpoint tensors do not match config.json")
)
