package lm_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
)

// Real configs as published (transformers 4), and one as transformers 5
// writes it (rope_parameters, dtype).
const (
	llama31Config = `{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256}`
	qwen25Config = `{
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936}`
	qwen3Config = `{
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}`
	llamaV5Config = `{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1,
  "dtype": "float32", "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
  "intermediate_size": 128, "max_position_embeddings": 256, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
  "num_key_value_heads": 2, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
  "rope_parameters": {"factor": 4.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 64, "rope_theta": 10000.0, "rope_type": "llama3"},
  "tie_word_embeddings": true, "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 300}`
)

func TestParseConfigReal(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       lm.Config
	}{
		{"llama-3.1-8b", llama31Config, lm.Config{
			Arch: lm.Llama, Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 14336,
			Vocab: 128256, RMSEps: 1e-5, RopeTheta: 500000, MaxPositions: 131072, DType: model.DTypeBF16,
			RopeScaling: &lm.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192},
			BOS:         128000, EOS: []int32{128001, 128008, 128009},
		}},
		{"qwen2.5-0.5b", qwen25Config, lm.Config{
			Arch: lm.Qwen2, Hidden: 896, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64, Intermediate: 4864,
			Vocab: 151936, RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 32768, TieEmbeddings: true,
			QKVBias: true, DType: model.DTypeBF16, BOS: 151643, EOS: []int32{151643},
		}},
		{"qwen3-0.6b", qwen3Config, lm.Config{
			Arch: lm.Qwen3, Hidden: 1024, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128, Intermediate: 3072,
			Vocab: 151936, RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 40960, TieEmbeddings: true,
			QKNorm: true, DType: model.DTypeBF16, BOS: 151643, EOS: []int32{151645},
		}},
		{"transformers-5", llamaV5Config, lm.Config{
			Arch: lm.Llama, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 128,
			Vocab: 300, RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 256, TieEmbeddings: true, DType: model.DTypeF32,
			RopeScaling: &lm.RopeScaling{Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64},
			BOS:         1, EOS: []int32{2},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lm.ParseConfig([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestConfigEncodeRoundTrip(t *testing.T) {
	for _, a := range lm.Archs {
		c := tiny(a)
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := lm.ParseConfig(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", a, err, data)
		}
		if !reflect.DeepEqual(*back, c) {
			t.Errorf("%s: round trip gave %+v; want %+v", a, *back, c)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := tiny(lm.Qwen2)
	llama := tiny(lm.Llama)
	yarn := map[string]any{"rope_type": "yarn", "factor": 4.0}
	llama3 := map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		msg  string // a substring of the error
	}{
		{"empty", nil, lm.ErrInvalidConfig, "not a JSON object"},
		{"array", []byte(`[1]`), lm.ErrInvalidConfig, "not a JSON object"},
		{"bad json", []byte(`{"model_type":`), lm.ErrInvalidConfig, "not valid JSON"},
		{"too large", []byte(`{"x":"` + strings.Repeat("a", lm.MaxConfigSize) + `"}`), lm.ErrInvalidConfig, "over the limit"},
		{"wrong type", configJSON(t, base, map[string]any{"hidden_size": "big"}), lm.ErrInvalidConfig, "hidden_size: JSON string"},
		{"fractional int", configJSON(t, base, map[string]any{"vocab_size": 50.5}), lm.ErrInvalidConfig, "vocab_size"},
		{"no model_type", configJSON(t, base, map[string]any{"model_type": nil}), lm.ErrInvalidConfig, "model_type is missing"},
		{"model_type", configJSON(t, base, map[string]any{"model_type": "mistral"}), lm.ErrUnsupported, `model_type "mistral" is not supported`},
		{"moe model_type", configJSON(t, base, map[string]any{"model_type": "qwen2_moe"}), lm.ErrUnsupported, `model_type "qwen2_moe"`},
		{"architectures", configJSON(t, base, map[string]any{"architectures": []string{"Qwen2ForSequenceClassification"}}), lm.ErrUnsupported, `architectures[0] "Qwen2ForSequenceClassification" is not supported (want Qwen2ForCausalLM)`},
		{"no hidden_size", configJSON(t, base, map[string]any{"hidden_size": nil}), lm.ErrInvalidConfig, "hidden_size is missing"},
		{"no num_hidden_layers", configJSON(t, base, map[string]any{"num_hidden_layers": nil}), lm.ErrInvalidConfig, "num_hidden_layers is missing"},
		{"no vocab_size", configJSON(t, base, map[string]any{"vocab_size": nil}), lm.ErrInvalidConfig, "vocab_size is missing"},
		{"num_experts", configJSON(t, base, map[string]any{"num_experts": 8}), lm.ErrUnsupported, "num_experts 8: mixture-of-experts"},
		{"num_local_experts", configJSON(t, base, map[string]any{"num_local_experts": 8}), lm.ErrUnsupported, "num_local_experts 8"},
		{"n_routed_experts", configJSON(t, base, map[string]any{"n_routed_experts": 64}), lm.ErrUnsupported, "n_routed_experts 64"},
		{"num_experts_per_tok", configJSON(t, base, map[string]any{"num_experts_per_tok": 2}), lm.ErrUnsupported, "num_experts_per_tok 2"},
		{"use_sliding_window", configJSON(t, base, map[string]any{"use_sliding_window": true, "sliding_window": 4096}), lm.ErrUnsupported, "use_sliding_window is true"},
		{"layer_types", configJSON(t, base, map[string]any{"layer_types": []string{"full_attention", "sliding_attention"}}), lm.ErrUnsupported, `layer_types[1] "sliding_attention" is not supported (want full_attention)`},
		{"layer_types length", configJSON(t, base, map[string]any{"layer_types": []string{"full_attention"}}), lm.ErrInvalidConfig, "layer_types has 1 entries"},
		{"rope yarn", configJSON(t, base, map[string]any{"rope_scaling": yarn}), lm.ErrUnsupported, `rope_scaling.rope_type "yarn" is not supported (want llama3)`},
		{"rope linear (old key)", configJSON(t, base, map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2.0}}), lm.ErrUnsupported, `rope_scaling.rope_type "linear"`},
		{"rope_parameters yarn", configJSON(t, base, map[string]any{"rope_parameters": merge(yarn, map[string]any{"rope_theta": 1e6})}), lm.ErrUnsupported, `rope_parameters.rope_type "yarn"`},
		{"rope not object", configJSON(t, base, map[string]any{"rope_scaling": 8}), lm.ErrInvalidConfig, "rope_scaling is not an object"},
		{"rope type not string", configJSON(t, base, map[string]any{"rope_scaling": map[string]any{"rope_type": 3}}), lm.ErrInvalidConfig, "rope_scaling.rope_type is not a string"},
		{"llama3 missing factor", configJSON(t, llama, map[string]any{"rope_scaling": merge(llama3, map[string]any{"factor": nil})}), lm.ErrInvalidConfig, "rope_scaling.factor is missing"},
		{"llama3 extra key", configJSON(t, llama, map[string]any{"rope_scaling": merge(llama3, map[string]any{"attention_factor": 1.2})}), lm.ErrUnsupported, "rope_scaling.attention_factor is not supported"},
		{"llama3 bad number", configJSON(t, llama, map[string]any{"rope_scaling": merge(llama3, map[string]any{"factor": "8"})}), lm.ErrInvalidConfig, "rope_scaling.factor is not a number"},
		{"llama3 factor < 1", configJSON(t, llama, map[string]any{"rope_scaling": merge(llama3, map[string]any{"factor": 0.5})}), lm.ErrInvalidConfig, "rope_scaling.factor 0.5"},
		{"llama3 high <= low", configJSON(t, llama, map[string]any{"rope_scaling": merge(llama3, map[string]any{"high_freq_factor": 1.0})}), lm.ErrInvalidConfig, "high_freq_factor"},
		{"llama3 fractional original", configJSON(t, llama, map[string]any{"rope_scaling": merge(llama3, map[string]any{"original_max_position_embeddings": 8192.5})}), lm.ErrInvalidConfig, "original_max_position_embeddings 8192.5"},
		{"default with factor", configJSON(t, base, map[string]any{"rope_scaling": map[string]any{"rope_type": "default", "factor": 2.0}}), lm.ErrInvalidConfig, `rope_scaling.factor is given, but rope_type is "default"`},
		{"partial rotary", configJSON(t, base, map[string]any{"partial_rotary_factor": 0.5}), lm.ErrUnsupported, "partial_rotary_factor 0.5"},
		{"partial rotary inside", configJSON(t, base, map[string]any{"rope_parameters": map[string]any{"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.25}}), lm.ErrUnsupported, "rope_parameters.partial_rotary_factor 0.25"},
		{"rope_theta", configJSON(t, base, map[string]any{"rope_theta": 0}), lm.ErrInvalidConfig, "rope_theta 0"},
		{"hidden_act", configJSON(t, base, map[string]any{"hidden_act": "gelu"}), lm.ErrUnsupported, `hidden_act "gelu" is not supported (want silu)`},
		{"mlp_bias", configJSON(t, llama, map[string]any{"mlp_bias": true}), lm.ErrUnsupported, "mlp_bias is true"},
		{"quantized", configJSON(t, base, map[string]any{"quantization_config": map[string]any{"quant_method": "gptq", "bits": 4}}), lm.ErrUnsupported, "quantization_config"},
		{"torch_dtype", configJSON(t, base, map[string]any{"torch_dtype": "int8"}), lm.ErrUnsupported, `torch_dtype "int8"`},
		{"dtype", configJSON(t, base, map[string]any{"dtype": "float8_e4m3fn"}), lm.ErrUnsupported, `dtype "float8_e4m3fn"`},
		{"kv heads", configJSON(t, base, map[string]any{"num_attention_heads": 6, "num_key_value_heads": 4, "head_dim": 8}), lm.ErrInvalidConfig, "num_attention_heads 6 is not a multiple of num_key_value_heads 4"},
		{"kv heads above heads", configJSON(t, base, map[string]any{"num_key_value_heads": 8}), lm.ErrInvalidConfig, "not a multiple"},
		{"hidden not divisible", configJSON(t, base, map[string]any{"hidden_size": 30, "head_dim": nil}), lm.ErrInvalidConfig, "hidden_size 30 is not a multiple of num_attention_heads 4"},
		{"odd head_dim", configJSON(t, base, map[string]any{"head_dim": 7}), lm.ErrInvalidConfig, "head_dim 7 must be even"},
		{"zero hidden", configJSON(t, base, map[string]any{"hidden_size": 0}), lm.ErrInvalidConfig, "hidden_size 0 must be 1 to"},
		{"zero heads", configJSON(t, base, map[string]any{"num_attention_heads": 0, "head_dim": nil}), lm.ErrInvalidConfig, "num_attention_heads 0"},
		{"huge vocab", configJSON(t, base, map[string]any{"vocab_size": 1 << 30}), lm.ErrInvalidConfig, "vocab_size 1073741824"},
		{"huge layers", configJSON(t, base, map[string]any{"num_hidden_layers": 5000}), lm.ErrInvalidConfig, "num_hidden_layers 5000"},
		{"rms eps", configJSON(t, base, map[string]any{"rms_norm_eps": 0}), lm.ErrInvalidConfig, "rms_norm_eps 0"},
		{"max positions", configJSON(t, base, map[string]any{"max_position_embeddings": -1}), lm.ErrInvalidConfig, "max_position_embeddings -1"},
		{"bos out of vocab", configJSON(t, base, map[string]any{"bos_token_id": 50}), lm.ErrInvalidConfig, "bos_token_id 50 is not a token id (vocab_size 50)"},
		{"bos list", configJSON(t, base, map[string]any{"bos_token_id": []int{1}}), lm.ErrInvalidConfig, "bos_token_id [1] is not a token id"},
		{"eos negative", configJSON(t, base, map[string]any{"eos_token_id": []int{2, -1}}), lm.ErrInvalidConfig, "eos_token_id[1] -1 is not a token id"},
		{"eos string", configJSON(t, base, map[string]any{"eos_token_id": "2"}), lm.ErrInvalidConfig, "eos_token_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lm.ParseConfig(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestParseConfigDefaults checks the defaults transformers uses for
// absent fields.
func TestParseConfigDefaults(t *testing.T) {
	c, err := lm.ParseConfig([]byte(`{"model_type":"llama","hidden_size":64,"num_hidden_layers":1,
		"num_attention_heads":4,"intermediate_size":96,"vocab_size":10}`))
	if err != nil {
		t.Fatal(err)
	}
	want := lm.Config{Arch: lm.Llama, Hidden: 64, Layers: 1, Heads: 4, KVHeads: 4, HeadDim: 16, Intermediate: 96,
		Vocab: 10, RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 2048, BOS: lm.NoToken}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
}

// TestInvFreq checks RoPE's frequencies: plain ones are θ^(−2i/d); llama3
// keeps the high frequencies, divides the low ones by the factor and
// interpolates between; the float32 variant stays within float32 rounding
// of the exact one.
func TestInvFreq(t *testing.T) {
	c, err := lm.ParseConfig([]byte(llama31Config))
	if err != nil {
		t.Fatal(err)
	}
	s := c.RopeScaling
	plain := *c
	plain.RopeScaling = nil
	base, scaled, f32 := plain.InvFreq64(), c.InvFreq64(), c.InvFreq32()
	if len(base) != c.HeadDim/2 || len(scaled) != c.HeadDim/2 || len(f32) != c.HeadDim/2 {
		t.Fatalf("lengths %d, %d, %d; want %d", len(base), len(scaled), len(f32), c.HeadDim/2)
	}
	var kept, divided, between int
	for i := range base {
		if want := math.Pow(c.RopeTheta, -float64(2*i)/float64(c.HeadDim)); math.Abs(base[i]-want) > 1e-15*want {
			t.Errorf("plain invFreq[%d] = %v; want %v", i, base[i], want)
		}
		wave := 2 * math.Pi / base[i]
		switch {
		case wave < float64(s.OriginalMaxPositions)/s.HighFreqFactor:
			kept++
			if scaled[i] != base[i] {
				t.Errorf("invFreq[%d] (wavelength %.0f) = %v; want unchanged %v", i, wave, scaled[i], base[i])
			}
		case wave > float64(s.OriginalMaxPositions)/s.LowFreqFactor:
			divided++
			if want := base[i] / s.Factor; scaled[i] != want {
				t.Errorf("invFreq[%d] (wavelength %.0f) = %v; want %v / %v", i, wave, scaled[i], base[i], s.Factor)
			}
		default:
			between++
			if !(scaled[i] < base[i] && scaled[i] > base[i]/s.Factor) {
				t.Errorf("invFreq[%d] (wavelength %.0f) = %v; want between %v and %v", i, wave, scaled[i], base[i]/s.Factor, base[i])
			}
		}
		if d := math.Abs(float64(f32[i])-scaled[i]) / scaled[i]; d > 1e-6 {
			t.Errorf("InvFreq32[%d] = %v; want within 1e-6 of %v (off by %.2g)", i, f32[i], scaled[i], d)
		}
	}
	if kept == 0 || divided == 0 || between == 0 {
		t.Errorf("%d kept, %d divided, %d interpolated: want some of each for Llama 3.1", kept, divided, between)
	}
}
