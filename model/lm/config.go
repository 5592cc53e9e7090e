package lm

import (
	"fmt"
	"math"

	"github.com/gearbox-inference/gearbox/model"
)

// Arch is a supported architecture, as config.json's model_type names it.
type Arch string

// The supported architectures.
const (
	Llama Arch = "llama" // Llama 2, 3, 3.1 (llama3 RoPE scaling), 3.2
	Qwen2 Arch = "qwen2" // Qwen2, Qwen2.5: q/k/v projections with bias
	Qwen3 Arch = "qwen3" // Qwen3 (dense): per-head q/k RMSNorm
)

// Archs lists the supported architectures.
var Archs = []Arch{Llama, Qwen2, Qwen3}

// CausalLM is the transformers class of a causal language model of
// architecture a, as config.json's architectures lists it.
func (a Arch) CausalLM() string {
	switch a {
	case Llama:
		return "LlamaForCausalLM"
	case Qwen2:
		return "Qwen2ForCausalLM"
	case Qwen3:
		return "Qwen3ForCausalLM"
	}
	return ""
}

// NoToken stands for an absent token id (a config without bos_token_id).
const NoToken int32 = -1

// Limits on a config. They bound what a hostile config.json can make a
// loader or backend allocate before any weight is read; the largest real
// models of the supported architectures are well inside them.
const (
	// MaxConfigSize is the largest config.json (and
	// generation_config.json) read, in bytes.
	MaxConfigSize = 1 << 20
	MaxHidden     = 1 << 16
	MaxLayers     = 1024
	MaxHeads      = 1024
	MaxHeadDim    = 1024
	// MaxIntermediate bounds intermediate_size.
	MaxIntermediate = 1 << 20
	MaxVocab        = 1 << 22
	MaxPositions    = 1 << 24
)

// Config is a causal language model's architecture, from config.json.
// ParseConfig fills in the defaults transformers uses for absent fields;
// Validate states the rules.
type Config struct {
	Arch         Arch
	Hidden       int // hidden_size
	Layers       int // num_hidden_layers
	Heads        int // num_attention_heads
	KVHeads      int // num_key_value_heads: Heads divides into KVHeads groups
	HeadDim      int // head_dim: hidden_size / num_attention_heads if absent
	Intermediate int // intermediate_size: the MLP's width
	Vocab        int // vocab_size
	RMSEps       float64
	// RopeTheta is RoPE's base.
	RopeTheta float64
	// RopeScaling is llama3 frequency scaling, or nil for plain RoPE.
	RopeScaling *RopeScaling
	// MaxPositions is max_position_embeddings: the longest sequence.
	MaxPositions int
	// TieEmbeddings: the head is the embedding matrix (no lm_head.weight).
	TieEmbeddings bool
	// QKVBias: q_proj, k_proj and v_proj have biases (always for qwen2;
	// attention_bias for llama and qwen3). OBias: o_proj has one
	// (attention_bias for llama and qwen3; never for qwen2).
	QKVBias, OBias bool
	// QKNorm: an RMSNorm over each head of q and k, before RoPE (qwen3).
	QKNorm bool
	// DType is torch_dtype as a safetensors dtype (model.DTypeF32, F16 or
	// BF16), or "" if config.json does not say. It is informational: each
	// tensor's own dtype is what counts.
	DType string
	// BOS is bos_token_id, or NoToken; EOS is eos_token_id (one id or a
	// list; nil if absent).
	BOS int32
	EOS []int32
}

// RopeScaling is Llama 3.1's RoPE frequency scaling (rope_type "llama3"):
// frequencies whose wavelength exceeds OriginalMaxPositions /
// LowFreqFactor are divided by Factor, those below OriginalMaxPositions /
// HighFreqFactor are kept, and those between are interpolated (see
// Config.InvFreq64).
type RopeScaling struct {
	Factor               float64
	LowFreqFactor        float64
	HighFreqFactor       float64
	OriginalMaxPositions int // original_max_position_embeddings
}

// QDim is the width of the query projection: Heads × HeadDim.
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the key and value projections: KVHeads × HeadDim.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Validate checks the rules a Config must follow, naming config.json's
// field at fault; errors wrap ErrInvalidConfig, or ErrUnsupported for an
// architecture Gearbox does not run. ParseConfig calls it; code that builds
// a Config by hand (Synth) should too.
func (c *Config) Validate() error {
	if c.Arch.CausalLM() == "" {
		return unsupportedf("model_type %q is not supported (want llama, qwen2 or qwen3)", c.Arch)
	}
	for _, f := range []struct {
		name    string
		v, hi   int
		minimum int
	}{
		{"hidden_size", c.Hidden, MaxHidden, 1},
		{"num_hidden_layers", c.Layers, MaxLayers, 1},
		{"num_attention_heads", c.Heads, MaxHeads, 1},
		{"num_key_value_heads", c.KVHeads, MaxHeads, 1},
		{"head_dim", c.HeadDim, MaxHeadDim, 2},
		{"intermediate_size", c.Intermediate, MaxIntermediate, 1},
		{"vocab_size", c.Vocab, MaxVocab, 1},
		{"max_position_embeddings", c.MaxPositions, MaxPositions, 1},
	} {
		if f.v < f.minimum || f.v > f.hi {
			return invalidf("%s %d must be %d to %d", f.name, f.v, f.minimum, f.hi)
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return invalidf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return invalidf("head_dim %d must be even (RoPE rotates pairs)", c.HeadDim)
	}
	if !(c.RMSEps > 0 && c.RMSEps < 1) {
		return invalidf("rms_norm_eps %v must be in (0, 1)", c.RMSEps)
	}
	if !(c.RopeTheta > 1 && c.RopeTheta < math.Inf(1)) {
		return invalidf("rope_theta %v must be a finite number > 1", c.RopeTheta)
	}
	if s := c.RopeScaling; s != nil {
		switch {
		case !(s.Factor >= 1 && s.Factor < math.Inf(1)):
			return invalidf("rope_scaling.factor %v must be a finite number >= 1", s.Factor)
		case !(s.LowFreqFactor > 0 && s.HighFreqFactor > s.LowFreqFactor && s.HighFreqFactor < math.Inf(1)):
			return invalidf("rope_scaling.low_freq_factor %v and high_freq_factor %v must satisfy 0 < low < high", s.LowFreqFactor, s.HighFreqFactor)
		case s.OriginalMaxPositions < 1 || s.OriginalMaxPositions > MaxPositions:
			return invalidf("rope_scaling.original_max_position_embeddings %d must be 1 to %d", s.OriginalMaxPositions, MaxPositions)
		}
	}
	switch c.Arch {
	case Qwen2:
		if !c.QKVBias || c.OBias {
			return invalidf("qwen2 has q/k/v biases and no o_proj bias (QKVBias true, OBias false)")
		}
	default:
		if c.QKVBias != c.OBias {
			return invalidf("%s has attention_bias on all of q/k/v/o or on none", c.Arch)
		}
	}
	if c.QKNorm != (c.Arch == Qwen3) {
		return invalidf("per-head q/k norms are qwen3's and only qwen3's")
	}
	switch c.DType {
	case "", model.DTypeF32, model.DTypeF16, model.DTypeBF16:
	default:
		return invalidf("dtype %q is not F32, F16 or BF16", c.DType)
	}
	if c.BOS != NoToken && (c.BOS < 0 || int(c.BOS) >= c.Vocab) {
		return invalidf("bos_token_id %d is not a token id (vocab_size %d)", c.BOS, c.Vocab)
	}
	for i, id := range c.EOS {
		if id < 0 || int(id) >= c.Vocab {
			return invalidf("eos_token_id[%d] %d is not a token id (vocab_size %d)", i, id, c.Vocab)
		}
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}
