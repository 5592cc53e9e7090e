package lm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/gearbox-inference/gearbox/model"
)

// SynthConfig describes a random checkpoint for tests, benchmarks and
// demos.
type SynthConfig struct {
	// Config is the architecture; it must pass Validate.
	Config Config
	// DType is how the weights are stored: model.DTypeF32 (the default),
	// F16 or BF16 (values are rounded to it).
	DType string
	// Seed: the same SynthConfig writes the same bytes.
	Seed uint64
	// Shards > 1 splits the weights into that many files listed by
	// model.safetensors.index.json; otherwise one model.safetensors.
	Shards int
	// Manifest, if not nil, is written as model.json.
	Manifest *Manifest
}

// Synth writes a checkpoint of random weights to dir (created if needed):
// config.json, the weights and, if asked, model.json. Embeddings are
// N(0, 1), projections N(0, 1/in) (so activations keep their scale through
// the layers), biases N(0, 0.1²), norm weights 1 + N(0, 0.1²) and an untied
// head N(0, 1/hidden), from math/rand/v2's PCG seeded by Seed.
//
// The weights are built in memory as float32 before they are written:
// Synth is for models of test size, not for billions of parameters.
func Synth(dir string, sc SynthConfig) error {
	c := &sc.Config
	cfg, err := c.Encode()
	if err != nil {
		return fmt.Errorf("lm: synth: %w", err)
	}
	dtype := sc.DType
	if dtype == "" {
		dtype = model.DTypeF32
	}
	if model.DTypeSize(dtype) == 0 {
		return fmt.Errorf("lm: synth: dtype %q is not F32, F16 or BF16", sc.DType)
	}
	r := rand.New(rand.NewPCG(sc.Seed, 0x6c6d))
	var tensors []*model.Tensor
	add := func(name string, std, mean float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		t := &model.Tensor{Name: name, DType: dtype, Shape: shape, Data: make([]float32, n)}
		for i := range t.Data {
			t.Data[i] = float32(mean + std*r.NormFloat64())
		}
		tensors = append(tensors, t)
	}
	linear := func(name string, out, in int, bias bool) {
		add(name+".weight", 1/math.Sqrt(float64(in)), 0, out, in)
		if bias {
			add(name+".bias", 0.1, 0, out)
		}
	}
	h := c.Hidden
	add("model.embed_tokens.weight", 1, 0, c.Vocab, h)
	for i := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", 0.1, 1, h)
		linear(p+"self_attn.q_proj", c.QDim(), h, c.QKVBias)
		linear(p+"self_attn.k_proj", c.KVDim(), h, c.QKVBias)
		linear(p+"self_attn.v_proj", c.KVDim(), h, c.QKVBias)
		linear(p+"self_attn.o_proj", h, c.QDim(), c.OBias)
		if c.QKNorm {
			add(p+"self_attn.q_norm.weight", 0.1, 1, c.HeadDim)
			add(p+"self_attn.k_norm.weight", 0.1, 1, c.HeadDim)
		}
		add(p+"post_attention_layernorm.weight", 0.1, 1, h)
		linear(p+"mlp.gate_proj", c.Intermediate, h, false)
		linear(p+"mlp.up_proj", c.Intermediate, h, false)
		linear(p+"mlp.down_proj", h, c.Intermediate, false)
	}
	add("model.norm.weight", 0.1, 1, h)
	if !c.TieEmbeddings {
		add("lm_head.weight", 1/math.Sqrt(float64(h)), 0, c.Vocab, h)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lm: synth: %w", err)
	}
	files := map[string][]byte{model.ConfigFile: cfg}
	if sc.Manifest != nil {
		mf, err := json.MarshalIndent(sc.Manifest, "", "  ")
		if err != nil {
			return fmt.Errorf("lm: synth: %w", err)
		}
		files[model.ManifestFile] = append(mf, '\n')
	}
	shards := max(sc.Shards, 1)
	weightMap := make(map[string]string, len(tensors))
	for s := range shards {
		name := WeightsFile
		if shards > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, shards)
		}
		var part []*model.Tensor
		for i := s; i < len(tensors); i += shards {
			part = append(part, tensors[i])
			weightMap[tensors[i].Name] = name
		}
		var buf bytes.Buffer
		if err := model.WriteSafetensors(&buf, part); err != nil {
			return fmt.Errorf("lm: synth: %w", err)
		}
		files[name] = buf.Bytes()
	}
	if shards > 1 {
		idx, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap}, "", "  ")
		if err != nil {
			return fmt.Errorf("lm: synth: %w", err)
		}
		files[IndexFile] = idx
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("lm: synth: %w", err)
		}
	}
	return nil
}
