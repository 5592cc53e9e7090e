package lm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/gearbox-inference/gearbox/model"
)

// rawConfig is the part of config.json Gearbox reads. Pointers and raw
// messages tell an absent (or null) field from a zero one; every other
// field of the file is ignored.
type rawConfig struct {
	ModelType      *string         `json:"model_type"`
	Architectures  []string        `json:"architectures"`
	Hidden         *int            `json:"hidden_size"`
	Layers         *int            `json:"num_hidden_layers"`
	Heads          *int            `json:"num_attention_heads"`
	KVHeads        *int            `json:"num_key_value_heads"`
	HeadDim        *int            `json:"head_dim"`
	Intermediate   *int            `json:"intermediate_size"`
	Vocab          *int            `json:"vocab_size"`
	RMSEps         *float64        `json:"rms_norm_eps"`
	RopeTheta      *float64        `json:"rope_theta"`
	RopeScaling    json.RawMessage `json:"rope_scaling"`
	RopeParameters json.RawMessage `json:"rope_parameters"`
	PartialRotary  *float64        `json:"partial_rotary_factor"`
	MaxPositions   *int            `json:"max_position_embeddings"`
	Tie            *bool           `json:"tie_word_embeddings"`
	AttentionBias  *bool           `json:"attention_bias"`
	MLPBias        *bool           `json:"mlp_bias"`
	HiddenAct      *string         `json:"hidden_act"`
	TorchDType     *string         `json:"torch_dtype"`
	DType          *string         `json:"dtype"` // transformers 5's name for torch_dtype
	BOS            json.RawMessage `json:"bos_token_id"`
	EOS            json.RawMessage `json:"eos_token_id"`
	UseSliding     *bool           `json:"use_sliding_window"`
	LayerTypes     []string        `json:"layer_types"`
	Quantization   json.RawMessage `json:"quantization_config"`
	// Mixture-of-experts fields of other model types, checked in case a
	// config names a supported model_type but carries experts.
	NumExperts      *int `json:"num_experts"`
	NumLocalExperts *int `json:"num_local_experts"`
	NRoutedExperts  *int `json:"n_routed_experts"`
	ExpertsPerToken *int `json:"num_experts_per_tok"`
}

// defaultMaxPositions is transformers' max_position_embeddings default
// for each architecture.
var defaultMaxPositions = map[Arch]int{Llama: 2048, Qwen2: 32768, Qwen3: 32768}

// Defaults of config.json fields every architecture shares.
const (
	defaultRMSEps    = 1e-6
	defaultRopeTheta = 10000.0
)

// ParseConfig decodes config.json. Fields Gearbox does not need are
// ignored; the ones it reads are checked and defaulted as transformers
// does, and then Validate runs. Errors name the field: they wrap
// ErrUnsupported for a model Gearbox does not run (another model_type,
// experts, sliding windows, a RoPE type other than default and llama3, an
// activation other than silu, a quantized checkpoint) and ErrInvalidConfig
// otherwise.
func ParseConfig(data []byte) (*Config, error) {
	var r rawConfig
	if err := decodeObject(data, &r); err != nil {
		return nil, err
	}
	if r.ModelType == nil {
		return nil, invalidf("model_type is missing")
	}
	c := &Config{Arch: Arch(*r.ModelType)}
	if c.Arch.CausalLM() == "" {
		return nil, unsupportedf("model_type %q is not supported (want llama, qwen2 or qwen3)", *r.ModelType)
	}
	for i, a := range r.Architectures {
		if a != c.Arch.CausalLM() {
			return nil, unsupportedf("architectures[%d] %q is not supported (want %s)", i, a, c.Arch.CausalLM())
		}
	}
	if err := r.checkUnsupported(c.Arch); err != nil {
		return nil, err
	}

	for _, f := range []struct {
		name string
		src  *int
		dst  *int
	}{
		{"hidden_size", r.Hidden, &c.Hidden},
		{"num_hidden_layers", r.Layers, &c.Layers},
		{"num_attention_heads", r.Heads, &c.Heads},
		{"intermediate_size", r.Intermediate, &c.Intermediate},
		{"vocab_size", r.Vocab, &c.Vocab},
	} {
		if f.src == nil {
			return nil, invalidf("%s is missing", f.name)
		}
		*f.dst = *f.src
	}
	c.KVHeads = deref(r.KVHeads, c.Heads)
	switch {
	case r.HeadDim != nil:
		c.HeadDim = *r.HeadDim
	case c.Heads > 0 && c.Hidden%c.Heads != 0:
		return nil, invalidf("hidden_size %d is not a multiple of num_attention_heads %d (and head_dim is absent)", c.Hidden, c.Heads)
	case c.Heads > 0:
		c.HeadDim = c.Hidden / c.Heads
	}
	if len(r.LayerTypes) > 0 && len(r.LayerTypes) != c.Layers {
		return nil, invalidf("layer_types has %d entries for num_hidden_layers %d", len(r.LayerTypes), c.Layers)
	}
	c.RMSEps = deref(r.RMSEps, defaultRMSEps)
	c.MaxPositions = deref(r.MaxPositions, defaultMaxPositions[c.Arch])
	c.TieEmbeddings = deref(r.Tie, false)
	switch c.Arch {
	case Qwen2:
		c.QKVBias = true // transformers' Qwen2Attention: always, whatever attention_bias says
	default:
		c.QKVBias = deref(r.AttentionBias, false)
		c.OBias = c.QKVBias
	}
	c.QKNorm = c.Arch == Qwen3

	var err error
	if c.RopeTheta, c.RopeScaling, err = r.rope(); err != nil {
		return nil, err
	}
	if c.DType, err = r.dtype(); err != nil {
		return nil, err
	}
	if c.BOS, err = parseID("bos_token_id", r.BOS); err != nil {
		return nil, err
	}
	if c.EOS, err = parseIDs("eos_token_id", r.EOS); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkUnsupported rejects the fields that describe computations Gearbox
// does not do.
func (r *rawConfig) checkUnsupported(a Arch) error {
	for _, f := range []struct {
		name string
		v    *int
	}{
		{"num_experts", r.NumExperts},
		{"num_local_experts", r.NumLocalExperts},
		{"n_routed_experts", r.NRoutedExperts},
		{"num_experts_per_tok", r.ExpertsPerToken},
	} {
		if f.v != nil && *f.v > 0 {
			return unsupportedf("%s %d: mixture-of-experts models are not supported", f.name, *f.v)
		}
	}
	if deref(r.UseSliding, false) {
		return unsupportedf("use_sliding_window is true: sliding-window attention is not supported")
	}
	for i, t := range r.LayerTypes {
		if t != "full_attention" {
			return unsupportedf("layer_types[%d] %q is not supported (want full_attention)", i, t)
		}
	}
	if act := deref(r.HiddenAct, "silu"); act != "silu" && act != "swish" {
		return unsupportedf("hidden_act %q is not supported (want silu)", act)
	}
	if deref(r.MLPBias, false) {
		return unsupportedf("mlp_bias is true: MLP biases are not supported by %s", a)
	}
	if p := r.PartialRotary; p != nil && *p != 1 {
		return unsupportedf("partial_rotary_factor %v is not supported (want 1)", *p)
	}
	if present(r.Quantization) {
		return unsupportedf("quantization_config: quantized checkpoints are not supported (Gearbox quantizes F32, F16 and BF16 weights itself)")
	}
	return nil
}

// The keys a RoPE dictionary (rope_scaling or rope_parameters) may hold.
var (
	ropeKeys   = []string{"rope_type", "type", "rope_theta", "partial_rotary_factor"}
	llama3Keys = []string{"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}
)

// rope returns RoPE's base and scaling. transformers 4 writes rope_theta
// beside rope_scaling; transformers 5 writes rope_parameters, which holds
// rope_theta itself. When both dictionaries are present, rope_parameters
// is read, as transformers 5 does.
func (r *rawConfig) rope() (float64, *RopeScaling, error) {
	theta := deref(r.RopeTheta, defaultRopeTheta)
	field, raw := "rope_parameters", r.RopeParameters
	if !present(raw) {
		field, raw = "rope_scaling", r.RopeScaling
	}
	if !present(raw) {
		return theta, nil, nil
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(raw, &d); err != nil {
		return 0, nil, invalidf("%s is not an object: %v", field, err)
	}
	var typ string
	for _, k := range []string{"type", "rope_type"} { // rope_type wins
		if v, ok := d[k]; ok {
			if err := json.Unmarshal(v, &typ); err != nil {
				return 0, nil, invalidf("%s.%s is not a string", field, k)
			}
		}
	}
	switch typ {
	case "", "default", "llama3":
	default:
		return 0, nil, unsupportedf("%s.rope_type %q is not supported (want llama3)", field, typ)
	}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if !slices.Contains(ropeKeys, k) && !(typ == "llama3" && slices.Contains(llama3Keys, k)) {
			if slices.Contains(llama3Keys, k) {
				return 0, nil, invalidf("%s.%s is given, but rope_type is %q", field, k, typ)
			}
			return 0, nil, unsupportedf("%s.%s is not supported", field, k)
		}
	}
	num := func(k string) (float64, bool, error) {
		v := d[k]
		if !present(v) {
			return 0, false, nil
		}
		var x float64
		if err := json.Unmarshal(v, &x); err != nil {
			return 0, false, invalidf("%s.%s is not a number", field, k)
		}
		return x, true, nil
	}
	if x, ok, err := num("rope_theta"); err != nil {
		return 0, nil, err
	} else if ok {
		theta = x
	}
	if x, ok, err := num("partial_rotary_factor"); err != nil {
		return 0, nil, err
	} else if ok && x != 1 {
		return 0, nil, unsupportedf("%s.partial_rotary_factor %v is not supported (want 1)", field, x)
	}
	if typ != "llama3" {
		return theta, nil, nil
	}
	var v [4]float64
	for i, k := range llama3Keys {
		x, ok, err := num(k)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			return 0, nil, invalidf("%s.%s is missing (rope_type llama3)", field, k)
		}
		v[i] = x
	}
	if v[3] != math.Trunc(v[3]) || !(v[3] >= 1 && v[3] <= MaxPositions) {
		return 0, nil, invalidf("%s.original_max_position_embeddings %v must be an integer from 1 to %d", field, v[3], MaxPositions)
	}
	return theta, &RopeScaling{Factor: v[0], LowFreqFactor: v[1], HighFreqFactor: v[2], OriginalMaxPositions: int(v[3])}, nil
}

// torchDTypes maps torch_dtype's names to safetensors dtypes.
var torchDTypes = map[string]string{
	"float32":  model.DTypeF32,
	"float16":  model.DTypeF16,
	"bfloat16": model.DTypeBF16,
}

// dtype is dtype (transformers 5) or torch_dtype, as a safetensors dtype.
func (r *rawConfig) dtype() (string, error) {
	field, v := "dtype", r.DType
	if v == nil {
		field, v = "torch_dtype", r.TorchDType
	}
	if v == nil {
		return "", nil
	}
	d, ok := torchDTypes[strings.TrimPrefix(*v, "torch.")]
	if !ok {
		return "", unsupportedf("%s %q is not supported (want float32, float16 or bfloat16)", field, *v)
	}
	return d, nil
}

// parseID decodes a token id field: absent or null is NoToken.
func parseID(field string, raw json.RawMessage) (int32, error) {
	if !present(raw) {
		return NoToken, nil
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil || id < 0 || id > math.MaxInt32 {
		return 0, invalidf("%s %s is not a token id", field, raw)
	}
	return int32(id), nil
}

// parseIDs decodes a field holding one token id or a list of them: absent,
// null or an empty list is nil.
func parseIDs(field string, raw json.RawMessage) ([]int32, error) {
	if !present(raw) {
		return nil, nil
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); t[0] != '[' {
		id, err := parseID(field, raw)
		return []int32{id}, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalidf("%s is not a list of token ids: %v", field, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	ids := make([]int32, len(list))
	for i, m := range list {
		id, err := parseID(fmt.Sprintf("%s[%d]", field, i), m)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// Encode returns c as config.json in transformers 4's format (rope_theta
// and rope_scaling at the top level), which transformers 4 and 5 both read;
// ParseConfig(Encode(c)) equals c. It fails as Validate does.
func (c *Config) Encode() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	j := map[string]any{
		"architectures":           []string{c.Arch.CausalLM()},
		"model_type":              c.Arch,
		"hidden_size":             c.Hidden,
		"num_hidden_layers":       c.Layers,
		"num_attention_heads":     c.Heads,
		"num_key_value_heads":     c.KVHeads,
		"head_dim":                c.HeadDim,
		"intermediate_size":       c.Intermediate,
		"vocab_size":              c.Vocab,
		"rms_norm_eps":            c.RMSEps,
		"rope_theta":              c.RopeTheta,
		"rope_scaling":            nil,
		"max_position_embeddings": c.MaxPositions,
		"tie_word_embeddings":     c.TieEmbeddings,
		"hidden_act":              "silu",
		"bos_token_id":            nil,
		"eos_token_id":            nil,
	}
	if s := c.RopeScaling; s != nil {
		j["rope_scaling"] = map[string]any{
			"rope_type":                        "llama3",
			"factor":                           s.Factor,
			"low_freq_factor":                  s.LowFreqFactor,
			"high_freq_factor":                 s.HighFreqFactor,
			"original_max_position_embeddings": s.OriginalMaxPositions,
		}
	}
	if c.Arch != Qwen2 {
		j["attention_bias"] = c.QKVBias
	} else {
		j["use_sliding_window"] = false
	}
	for name, d := range torchDTypes {
		if d == c.DType {
			j["torch_dtype"] = name
		}
	}
	if c.BOS != NoToken {
		j["bos_token_id"] = c.BOS
	}
	switch len(c.EOS) {
	case 0:
	case 1:
		j["eos_token_id"] = c.EOS[0]
	default:
		j["eos_token_id"] = c.EOS
	}
	out, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lm: encoding config.json: %w", err)
	}
	return append(out, '\n'), nil
}

// decodeObject decodes a JSON object of at most MaxConfigSize bytes into
// v, leniently (unknown fields are ignored). Errors wrap ErrInvalidConfig
// and name the field of a value of the wrong type.
func decodeObject(data []byte, v any) error {
	if len(data) > MaxConfigSize {
		return invalidf("%d bytes is over the limit of %d", len(data), MaxConfigSize)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return invalidf("not a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalidf("%s: JSON %s is not a valid %s", te.Field, te.Value, te.Type)
		}
		return invalidf("not valid JSON: %v", err)
	}
	return nil
}

// present reports whether a raw JSON field was given and is not null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// deref returns *p, or def when p is nil.
func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
