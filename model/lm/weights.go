package lm

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/gearbox-inference/gearbox/model"
)

// Weights are a model's tensors, bound by their checkpoint names and kept
// as stored (model.RawTensor: raw little-endian bytes of F32, F16 or BF16).
type Weights struct {
	Embed  *model.RawTensor // model.embed_tokens.weight [vocab, hidden]
	Layers []Layer
	Norm   *model.RawTensor // model.norm.weight [hidden]
	// Head is lm_head.weight [vocab, hidden], or Embed itself when the
	// config ties them.
	Head *model.RawTensor
}

// Layer is one decoder layer's tensors (model.layers.N.…).
type Layer struct {
	AttnNorm   *model.RawTensor // input_layernorm.weight [hidden]
	Q, K, V, O Linear           // self_attn.{q,k,v,o}_proj
	// QNorm and KNorm are self_attn.{q,k}_norm.weight [head_dim] (qwen3);
	// nil for the other architectures.
	QNorm, KNorm   *model.RawTensor
	MLPNorm        *model.RawTensor // post_attention_layernorm.weight [hidden]
	Gate, Up, Down Linear           // mlp.{gate,up,down}_proj
}

// Linear is a projection y = x·Weightᵀ + Bias, stored as PyTorch's
// nn.Linear stores it.
type Linear struct {
	Weight *model.RawTensor // [out, in]
	Bias   *model.RawTensor // [out], or nil
}

// Out is the projection's output width; In its input width.
func (l Linear) Out() int { return l.Weight.Shape[0] }

// In is the projection's input width.
func (l Linear) In() int { return l.Weight.Shape[1] }

// Linears returns the layer's seven projections in checkpoint order: q,
// k, v, o, gate, up, down.
func (l *Layer) Linears() []*Linear {
	return []*Linear{&l.Q, &l.K, &l.V, &l.O, &l.Gate, &l.Up, &l.Down}
}

// located is a tensor and the file that holds it.
type located struct {
	t    *model.RawTensor
	file string // as errors name it
}

// binder takes the tensors an architecture expects, by name, out of a
// checkpoint's, checking each shape.
type binder struct {
	tensors map[string]located
	used    map[string]bool
	missing string // where a missing tensor was looked for, for errors
	err     error
}

// take returns the tensor called name, of the given shape; the first
// failure is kept in b.err and later calls return nil.
func (b *binder) take(name string, shape ...int) *model.RawTensor {
	if b.err != nil {
		return nil
	}
	l, ok := b.tensors[name]
	if !ok {
		b.err = fmt.Errorf("%w: tensor %q is missing from %s", ErrTensorMismatch, name, b.missing)
		return nil
	}
	b.used[name] = true
	if !slices.Equal(l.t.Shape, shape) {
		b.err = fmt.Errorf("%s: %w: tensor %q has shape %v, want %v", l.file, ErrTensorMismatch, name, l.t.Shape, shape)
		return nil
	}
	return l.t
}

// linear takes a projection's weight [out, in] and, if bias, its bias
// [out].
func (b *binder) linear(prefix string, out, in int, bias bool) Linear {
	l := Linear{Weight: b.take(prefix+".weight", out, in)}
	if bias {
		l.Bias = b.take(prefix+".bias", out)
	}
	return l
}

// bindWeights binds the tensors c's architecture expects. Every tensor of
// the checkpoint must be one of them. Errors wrap ErrTensorMismatch and
// name the tensor and, where it exists, its file; missing names where the
// tensors were looked for.
func bindWeights(c *Config, tensors map[string]located, missing string) (Weights, error) {
	b := &binder{tensors: tensors, used: make(map[string]bool, len(tensors)), missing: missing}
	h, q, kv := c.Hidden, c.QDim(), c.KVDim()
	w := Weights{Embed: b.take("model.embed_tokens.weight", c.Vocab, h), Layers: make([]Layer, c.Layers)}
	for i := range w.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := Layer{
			AttnNorm: b.take(p+"input_layernorm.weight", h),
			Q:        b.linear(p+"self_attn.q_proj", q, h, c.QKVBias),
			K:        b.linear(p+"self_attn.k_proj", kv, h, c.QKVBias),
			V:        b.linear(p+"self_attn.v_proj", kv, h, c.QKVBias),
			O:        b.linear(p+"self_attn.o_proj", h, q, c.OBias),
			MLPNorm:  b.take(p+"post_attention_layernorm.weight", h),
			Gate:     b.linear(p+"mlp.gate_proj", c.Intermediate, h, false),
			Up:       b.linear(p+"mlp.up_proj", c.Intermediate, h, false),
			Down:     b.linear(p+"mlp.down_proj", h, c.Intermediate, false),
		}
		if c.QKNorm {
			l.QNorm = b.take(p+"self_attn.q_norm.weight", c.HeadDim)
			l.KNorm = b.take(p+"self_attn.k_norm.weight", c.HeadDim)
		}
		w.Layers[i] = l
	}
	w.Norm = b.take("model.norm.weight", h)
	if c.TieEmbeddings {
		w.Head = w.Embed
		// Some checkpoints store the tied head anyway: a copy of the
		// embedding, bit for bit, is harmless; anything else is not.
		if l, ok := tensors["lm_head.weight"]; ok && w.Embed != nil && l.t.DType == w.Embed.DType &&
			slices.Equal(l.t.Shape, w.Embed.Shape) && bytes.Equal(l.t.Data, w.Embed.Data) {
			b.used["lm_head.weight"] = true
		}
	} else {
		w.Head = b.take("lm_head.weight", c.Vocab, h)
	}
	if b.err != nil {
		return Weights{}, b.err
	}
	var extra []string
	for name := range tensors {
		if !b.used[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		name := extra[0]
		return Weights{}, fmt.Errorf("%s: %w: tensor %q is not part of the model%s",
			tensors[name].file, ErrTensorMismatch, name, whyExtra(c, name))
	}
	return w, nil
}

// whyExtra explains, where it can, why config.json leaves no place for
// tensor name.
func whyExtra(c *Config, name string) string {
	switch {
	case name == "lm_head.weight" && c.TieEmbeddings:
		return " (tie_word_embeddings is true: the head is the embedding, and this tensor differs from it)"
	case strings.HasSuffix(name, "_proj.bias") && strings.Contains(name, ".self_attn."):
		return fmt.Sprintf(" (%s with attention_bias %v has no such bias)", c.Arch, c.QKVBias)
	case strings.HasSuffix(name, "_norm.weight") && strings.Contains(name, ".self_attn."):
		return fmt.Sprintf(" (%s has no per-head q/k norms)", c.Arch)
	case strings.HasPrefix(name, "model.layers."):
		return fmt.Sprintf(" (%s with num_hidden_layers %d)", c.Arch, c.Layers)
	}
	return ""
}
