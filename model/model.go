// Package model loads, validates and synthesises the models Gearbox serves.
//
// A model is a directory holding model.json (the manifest: name, input width,
// a list of layers, quality target, precision ladder) and model.safetensors
// (the weights). See docs/models.md for the format. Workers load models from a
// directory of model directories or from the NATS object store bucket
// gearbox_models, so scaled-out workers need no shared disk.
package model

import "github.com/gearbox-inference/gearbox/precision"

// Op is a layer operation, as named in model.json.
type Op string

// The layer operations.
const (
	Linear    Op = "linear"
	ReLU      Op = "relu"
	GELU      Op = "gelu" // exact (erf) form, as PyTorch's default
	SiLU      Op = "silu"
	Tanh      Op = "tanh"
	Softmax   Op = "softmax" // over the features of each row
	LayerNorm Op = "layernorm"
	RMSNorm   Op = "rmsnorm"
)

// Model is a loaded, validated model. It is immutable once loaded and safe
// for concurrent use; backends key their per-model caches on its pointer.
type Model struct {
	Name           string
	Version        string
	InputFeatures  int
	OutputFeatures int // width of the last layer's output
	Layers         []Layer
	Quality        Quality
	Precision      PrecisionConfig
	// Digest is the hex SHA-256 of model.json followed by model.safetensors:
	// it names this exact version of the model.
	Digest string
}

// Layer is one step of the forward pass. In and Out are its feature widths.
type Layer struct {
	Op      Op
	In, Out int
	// Weight is [Out, In] for linear (like PyTorch nn.Linear) and [In] for
	// layernorm and rmsnorm; nil for activations.
	Weight *Tensor
	// Bias is [Out] for linear (optional) and [In] for layernorm.
	Bias *Tensor
	// Eps is the normalisation epsilon of layernorm and rmsnorm.
	Eps float64
}

// Tensor is a named weight tensor, decoded to float32 (F16 and BF16 widen
// exactly). DType records how it was stored in the safetensors file.
type Tensor struct {
	Name  string
	DType string // "F32", "F16" or "BF16"
	Shape []int
	Data  []float32
}

// Quality is the model's accuracy target.
type Quality struct {
	// MaxError is the largest relative L2 error (against the reference) the
	// model accepts at a served precision.
	MaxError float64
}

// PrecisionConfig is the precision section of the model's manifest: the
// ladder the controller moves on, most accurate first, and the rung its
// auto jobs start at before the model has a gearbox.PrecisionPolicy.
type PrecisionConfig struct {
	Initial precision.Format
	Ladder  []precision.Format
}
