package lm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// Metric is how the quality loop measures a language model's error against
// the reference.
type Metric string

// The metrics.
const (
	// KL is the mean per-token KL divergence of the served precision's
	// next-token distribution from the reference's, in nats.
	KL Metric = "kl"
	// RelL2 is the relative L2 error of the logits.
	RelL2 Metric = "rel_l2"
)

// Defaults of model.json's quality target for language models.
const (
	DefaultMetric = KL
	// DefaultMaxKL is the default bound for KL: about what 8-bit weights
	// cost a well-trained model (llama.cpp measures 0.0014 for q8_0 and
	// 0.031 for a 4-bit k-quant on Llama-3-8B).
	DefaultMaxKL = 0.01
	// maxKL bounds a KL target: beyond it the target means nothing.
	maxKL = 10
	// maxVersionLen is the longest version, as for tensor models.
	maxVersionLen = 128
)

// Quality is a language model's accuracy target: the largest error, by
// Metric, the quality loop accepts at a served precision, measured against
// the teacher-forced run at Reference (empty: the checkpoint's dtype; see
// Model.Reference).
type Quality struct {
	Metric    Metric
	MaxError  float64
	Reference precision.Format
}

// Manifest is the optional Gearbox model.json beside a checkpoint, as
// written. Unlike a tensor model's, it describes no layers: config.json
// does.
type Manifest struct {
	// Name names the model in job subjects; the checkpoint directory's
	// name if empty. See model.ValidName.
	Name string `json:"name,omitempty"`
	// Version is free text (at most 128 bytes), for people.
	Version string `json:"version,omitempty"`
	// Quality is optional; see ManifestQuality.
	Quality *ManifestQuality `json:"quality,omitempty"`
	// Precision is optional, with the tensor models' rules and defaults
	// (model.ManifestPrecision).
	Precision *model.ManifestPrecision `json:"precision,omitempty"`
}

// ManifestQuality is model.json's quality target for a language model.
type ManifestQuality struct {
	// Metric is "kl" (the default) or "rel_l2".
	Metric Metric `json:"metric,omitempty"`
	// MaxError is the bound: in (0, 10] for kl (default DefaultMaxKL), in
	// (0, 1] for rel_l2 (default model.DefaultMaxError).
	MaxError *float64 `json:"max_error,omitempty"`
	// Reference is the precision the quality loop's reference runs at (a
	// format: fp32, tf32, bf16, fp16, fp8 or fp4); the checkpoint's dtype
	// if absent.
	Reference precision.Format `json:"reference,omitempty"`
}

// ParseManifest decodes a language model's model.json strictly (unknown
// fields and trailing data are errors) and validates it. Errors wrap
// model.ErrInvalidManifest and name the field.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > model.MaxManifestSize {
		return nil, mfErrorf("%d bytes is over the limit of %d", len(data), model.MaxManifestSize)
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
	if m.Name != "" && !model.ValidName(m.Name) {
		return nil, mfErrorf("name %q must be 1 to 64 of a-z, A-Z, 0-9, _ and -", m.Name)
	}
	if len(m.Version) > maxVersionLen {
		return nil, mfErrorf("version is %d bytes, over the limit of %d", len(m.Version), maxVersionLen)
	}
	if _, err := m.quality(); err != nil {
		return nil, err
	}
	if _, err := m.Precision.Config(); err != nil {
		return nil, err
	}
	return &m, nil
}

// quality is the quality target, defaulted and checked.
func (m *Manifest) quality() (Quality, error) {
	q := Quality{Metric: DefaultMetric}
	var bound *float64
	if m.Quality != nil {
		if m.Quality.Metric != "" {
			q.Metric = m.Quality.Metric
		}
		bound = m.Quality.MaxError
		if r := m.Quality.Reference; r != "" {
			if !r.Valid() {
				return Quality{}, mfErrorf("quality.reference %q is not a precision (fp32, tf32, bf16, fp16, fp8 or fp4)", r)
			}
			q.Reference = r
		}
	}
	var hi float64
	switch q.Metric {
	case KL:
		q.MaxError, hi = DefaultMaxKL, maxKL
	case RelL2:
		q.MaxError, hi = model.DefaultMaxError, 1
	default:
		return Quality{}, mfErrorf("quality.metric %q is not kl or rel_l2", q.Metric)
	}
	if bound != nil {
		if e := *bound; !(e > 0 && e <= hi) || math.IsInf(e, 0) {
			return Quality{}, mfErrorf("quality.max_error %v must be in (0, %v] for %s", e, hi, q.Metric)
		}
		q.MaxError = *bound
	}
	return q, nil
}

func mfErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{model.ErrInvalidManifest}, args...)...)
}

// Reference is the precision the quality loop's teacher-forced reference
// runs at: model.json's quality.reference, else the checkpoint's own dtype
// (that of its embedding: fp32 for F32, bf16 for BF16, fp16 for F16).
func (m *Model) Reference() precision.Format {
	if m.Quality.Reference != "" {
		return m.Quality.Reference
	}
	switch m.Weights.Embed.DType {
	case model.DTypeBF16:
		return precision.BF16
	case model.DTypeF16:
		return precision.FP16
	}
	return precision.FP32
}
