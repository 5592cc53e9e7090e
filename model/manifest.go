package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/gearbox-inference/gearbox/precision"
)

// Defaults of the manifest's optional fields.
const (
	DefaultMaxError     = 0.02 // quality.max_error
	DefaultLayerNormEps = 1e-5 // eps of a layernorm layer
	DefaultRMSNormEps   = 1e-6 // eps of an rmsnorm layer
)

// Limits on a manifest.
const (
	// MaxManifestSize is the largest model.json the loaders read, in bytes.
	MaxManifestSize = 16 << 20
	// MaxFeatures is the largest input_features a manifest may give.
	MaxFeatures = 1 << 24
	// maxVersionLen is the longest version string.
	maxVersionLen = 128
)

// Ops lists every layer operation.
var Ops = []Op{Linear, ReLU, GELU, SiLU, Tanh, Softmax, LayerNorm, RMSNorm}

// Manifest is model.json as written: the JSON fields, before defaults. See
// docs/models.md for the format.
type Manifest struct {
	// Name names the model in job subjects (gearbox.jobs.<name>); see
	// ValidName. It wins over the name of the model's directory.
	Name string `json:"name"`
	// Version is free text (at most 128 bytes), for people.
	Version string `json:"version,omitempty"`
	// InputFeatures is the width of an input row: 1 to MaxFeatures.
	InputFeatures int `json:"input_features"`
	// Layers are the steps of the forward pass, in order; at least one.
	Layers []ManifestLayer `json:"layers"`
	// Quality is optional; see ManifestQuality for its default.
	Quality *ManifestQuality `json:"quality,omitempty"`
	// Precision is optional; see ManifestPrecision for its defaults.
	Precision *ManifestPrecision `json:"precision,omitempty"`
}

// ManifestLayer is one entry of the manifest's layers.
type ManifestLayer struct {
	Op Op `json:"op"`
	// Weight names a tensor of model.safetensors: required for linear,
	// layernorm and rmsnorm, not allowed for other ops.
	Weight string `json:"weight,omitempty"`
	// Bias names a tensor: optional for linear, required for layernorm, not
	// allowed for other ops.
	Bias string `json:"bias,omitempty"`
	// Eps is for layernorm (default DefaultLayerNormEps) and rmsnorm
	// (default DefaultRMSNormEps) only; it must be > 0.
	Eps *float64 `json:"eps,omitempty"`
}

// ManifestQuality is the manifest's quality target.
type ManifestQuality struct {
	// Metric is what MaxError bounds: "rel_l2", the only metric of tensor
	// models (language models may name "kl"), if given.
	Metric string `json:"metric,omitempty"`
	// MaxError is the largest relative L2 error accepted, in (0, 1];
	// DefaultMaxError if absent.
	MaxError *float64 `json:"max_error,omitempty"`
}

// ManifestPrecision is the manifest's precision policy.
type ManifestPrecision struct {
	// Initial is the precision the model starts at: fp32 if empty. It must
	// be on the ladder.
	Initial string `json:"initial,omitempty"`
	// Ladder is the order of precisions the model may move down, most
	// accurate first: precision.DefaultLadder if absent. It must start with
	// fp32 and name each format at most once.
	Ladder []string `json:"ladder,omitempty"`
}

// ParseManifest decodes model.json strictly (unknown fields and trailing
// data are errors) and validates it. Errors wrap ErrInvalidManifest and name
// the layer at fault by index and op.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, mfErrorf("%d bytes is over the limit of %d", len(data), MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, mfErrorf("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, mfErrorf("data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the rules of the format that need no weights: the name,
// input width, each layer's op and fields, the quality target and the
// precision policy. Errors wrap ErrInvalidManifest.
func (m *Manifest) Validate() error {
	if !ValidName(m.Name) {
		return mfErrorf("name %q must be 1 to 64 of a-z, A-Z, 0-9, _ and -", m.Name)
	}
	if len(m.Version) > maxVersionLen {
		return mfErrorf("version is %d bytes, over the limit of %d", len(m.Version), maxVersionLen)
	}
	if m.InputFeatures <= 0 || m.InputFeatures > MaxFeatures {
		return mfErrorf("input_features %d must be 1 to %d", m.InputFeatures, MaxFeatures)
	}
	if len(m.Layers) == 0 {
		return mfErrorf("no layers")
	}
	usedBy := make(map[string]int) // tensor name → layer index
	for i, l := range m.Layers {
		if err := l.validate(); err != nil {
			return mfErrorf("layer %d (%s): %v", i, l.Op, err)
		}
		for _, name := range []string{l.Weight, l.Bias} {
			if name == "" {
				continue
			}
			if j, ok := usedBy[name]; ok {
				return mfErrorf("layer %d (%s): tensor %q is already used by layer %d (%s)", i, l.Op, name, j, m.Layers[j].Op)
			}
			usedBy[name] = i
		}
	}
	if _, err := m.maxError(); err != nil {
		return err
	}
	if _, err := m.precisionConfig(); err != nil {
		return err
	}
	return nil
}

// validate checks that l names the fields its op needs and no others.
func (l ManifestLayer) validate() error {
	var weight, bias, eps bool // which fields the op takes
	var needBias bool
	switch l.Op {
	case Linear:
		weight, bias = true, true
	case LayerNorm:
		weight, bias, eps, needBias = true, true, true, true
	case RMSNorm:
		weight, eps = true, true
	case ReLU, GELU, SiLU, Tanh, Softmax:
	default:
		return fmt.Errorf("unknown op (want one of %v)", Ops)
	}
	switch {
	case weight && l.Weight == "":
		return errors.New("no weight tensor named")
	case !weight && l.Weight != "":
		return fmt.Errorf("takes no weight, but names %q", l.Weight)
	case needBias && l.Bias == "":
		return errors.New("no bias tensor named")
	case !bias && l.Bias != "":
		return fmt.Errorf("takes no bias, but names %q", l.Bias)
	case !eps && l.Eps != nil:
		return errors.New("takes no eps")
	case l.Eps != nil && !(*l.Eps > 0):
		return fmt.Errorf("eps %v must be > 0", *l.Eps)
	case l.Weight != "" && l.Weight == l.Bias:
		return fmt.Errorf("weight and bias are both %q", l.Weight)
	}
	return nil
}

// eps is the layer's epsilon, defaulted; 0 for ops without one.
func (l ManifestLayer) eps() float64 {
	switch {
	case l.Eps != nil:
		return *l.Eps
	case l.Op == LayerNorm:
		return DefaultLayerNormEps
	case l.Op == RMSNorm:
		return DefaultRMSNormEps
	}
	return 0
}

// maxError is quality.max_error, defaulted and checked.
func (m *Manifest) maxError() (float64, error) {
	if m.Quality != nil && m.Quality.Metric != "" && m.Quality.Metric != "rel_l2" {
		return 0, mfErrorf("quality.metric %q: a tensor model's metric is rel_l2", m.Quality.Metric)
	}
	if m.Quality == nil || m.Quality.MaxError == nil {
		return DefaultMaxError, nil
	}
	e := *m.Quality.MaxError
	if !(e > 0 && e <= 1) {
		return 0, mfErrorf("quality.max_error %v must be in (0, 1]", e)
	}
	return e, nil
}

// precisionConfig is the precision section, defaulted and checked.
func (m *Manifest) precisionConfig() (PrecisionConfig, error) {
	return m.Precision.Config()
}

// Config returns the precision configuration p describes, with the defaults
// filled in (a nil p gives initial fp32 on precision.DefaultLadder), or an
// error wrapping ErrInvalidManifest that names the field at fault. Language
// models' manifests (package model/lm) share these rules.
func (p *ManifestPrecision) Config() (PrecisionConfig, error) {
	pol := PrecisionConfig{Initial: precision.FP32, Ladder: slices.Clone(precision.DefaultLadder)}
	if p == nil {
		return pol, nil
	}
	if p.Ladder != nil {
		if len(p.Ladder) == 0 {
			return PrecisionConfig{}, mfErrorf("precision.ladder is empty")
		}
		pol.Ladder = make([]precision.Format, len(p.Ladder))
		for i, s := range p.Ladder {
			f, err := parseFormat(s)
			if err != nil {
				return PrecisionConfig{}, mfErrorf("precision.ladder[%d]: %v", i, err)
			}
			if j := slices.Index(pol.Ladder[:i], f); j >= 0 {
				return PrecisionConfig{}, mfErrorf("precision.ladder[%d]: %s is already ladder[%d]", i, f, j)
			}
			pol.Ladder[i] = f
		}
		if pol.Ladder[0] != precision.FP32 {
			return PrecisionConfig{}, mfErrorf("precision.ladder starts with %s, want fp32", pol.Ladder[0])
		}
		// Most accurate first, as precision.Select climbs it.
		if err := precision.ValidateLadder(pol.Ladder); err != nil {
			return PrecisionConfig{}, mfErrorf("precision.ladder %v: %v", pol.Ladder, err)
		}
	}
	if p.Initial != "" {
		f, err := parseFormat(p.Initial)
		if err != nil {
			return PrecisionConfig{}, mfErrorf("precision.initial: %v", err)
		}
		if !slices.Contains(pol.Ladder, f) {
			return PrecisionConfig{}, mfErrorf("precision.initial %s is not on the ladder %v", f, pol.Ladder)
		}
		pol.Initial = f
	}
	return pol, nil
}

// parseFormat parses a concrete precision format: not auto, not empty.
func parseFormat(s string) (precision.Format, error) {
	f, err := precision.Parse(s)
	if err != nil || !f.Valid() {
		return "", fmt.Errorf("%w %q (want fp32, tf32, bf16, fp16, fp8 or fp4)", precision.ErrUnknown, s)
	}
	return f, nil
}

// ValidName reports whether name can name a model: 1 to 64 ASCII letters,
// digits, underscores and hyphens, so that it is one NATS subject token and
// a valid object name.
func ValidName(name string) bool {
	// "_invalid" is the stand-in token for jobs on subjects that name no
	// valid model (gearbox.InvalidToken).
	if len(name) == 0 || len(name) > 64 || name == "_invalid" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func mfErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidManifest}, args...)...)
}
