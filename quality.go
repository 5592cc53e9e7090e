package gearbox

import (
	"errors"
	"fmt"
	"time"

	"github.com/gearbox-inference/gearbox/precision"
)

// QualityReport is one sampled check of a batch, published to
// gearbox.quality.<model> (stream GEARBOX_QUALITY) in the encoding of
// Content-Type, like jobs: msgpack by default. Workers write it; the
// precision controller and `gearbox quality` read it. See docs/wire.md.
type QualityReport struct {
	Model string `json:"model" msgpack:"model"`
	// Digest names the model version checked.
	Digest string `json:"digest,omitempty" msgpack:"digest,omitempty"`
	// Ladder, Initial and MaxError are the model's own (from its
	// manifest), so the controller needs nothing but reports to decide.
	Ladder   []precision.Format `json:"ladder" msgpack:"ladder"`
	Initial  precision.Format   `json:"initial" msgpack:"initial"`
	MaxError float64            `json:"max_error" msgpack:"max_error"`
	// Metric names what MaxError bounds and the controller judges:
	// MetricRelL2 (also when empty) or MetricKL.
	Metric string `json:"metric,omitempty" msgpack:"metric,omitempty"`
	// Served is the precision the batch ran at; ServedMetrics compares its
	// outputs with the reference.
	Served        precision.Format `json:"served" msgpack:"served"`
	ServedMetrics QualityMetrics   `json:"served_metrics" msgpack:"served_metrics"`
	// Candidate is the next-cheaper rung of the ladder, run in shadow on
	// the same rows (not served); empty when Served is the cheapest rung
	// or the device cannot run it.
	Candidate        precision.Format `json:"candidate,omitempty" msgpack:"candidate,omitempty"`
	CandidateMetrics *QualityMetrics  `json:"candidate_metrics,omitempty" msgpack:"candidate_metrics,omitempty"`
	// Reference is what both were compared with: for a tensor model "fp64"
	// (the CPU backend's float64 forward pass) or "fp32" (the same device
	// at fp32); for a language model the precision of its teacher-forced
	// reference run (the checkpoint's dtype unless its model.json says).
	// For a language model a report checks one generated sequence: Batch
	// is its job's id, BatchRows and Rows are 1, Tokens its generated
	// tokens, each judged by its next-token distribution.
	Reference string `json:"reference" msgpack:"reference"`
	Worker    string `json:"worker" msgpack:"worker"`
	Device    string `json:"device" msgpack:"device"`
	Batch     string `json:"batch" msgpack:"batch"`
	BatchRows int    `json:"batch_rows" msgpack:"batch_rows"`
	// Rows is how many of the batch's rows were checked (a random subset).
	Rows int `json:"rows" msgpack:"rows"`
	// Tokens is how many generated positions a language model's check
	// judged; absent for tensor models.
	Tokens int       `json:"tokens,omitempty" msgpack:"tokens,omitempty"`
	Time   time.Time `json:"time" msgpack:"time"`
}

// The metrics a model's quality target may name (QualityReport.Metric,
// model.json's quality.metric).
const (
	// MetricRelL2 is the relative L2 error of the outputs (for a language
	// model, of the logits): tensor models' metric.
	MetricRelL2 = "rel_l2"
	// MetricKL is the mean per-token KL divergence of the next-token
	// distribution from the reference's, in nats: language models'
	// default.
	MetricKL = "kl"
)

// Error is the report's error at a precision by its metric: m's KL for
// MetricKL, else its RelL2.
func (r *QualityReport) Error(m *QualityMetrics) float64 {
	if r.Metric == MetricKL && m.KL != nil {
		return *m.KL
	}
	return m.RelL2
}

// QualityMetrics compares outputs with the reference over the rows checked.
type QualityMetrics struct {
	// RelL2 is ‖y − ref‖₂ / ‖ref‖₂ over all the rows checked (for a
	// language model, over the logits of every position judged): the
	// quantity a tensor model's max_error bounds.
	RelL2 float64 `json:"rel_l2" msgpack:"rel_l2"`
	// KL is, for a language model, the mean over the positions judged of
	// the KL divergence KL(reference ‖ y) of the next-token distributions,
	// in nats: the quantity its max_error bounds by default. Absent for
	// tensor models.
	KL *float64 `json:"kl,omitempty" msgpack:"kl,omitempty"`
	// MaxAbs is the largest |y − ref| of any element.
	MaxAbs float64 `json:"max_abs" msgpack:"max_abs"`
	// Cosine is the mean over rows of the cosine similarity of y and ref.
	Cosine float64 `json:"cosine" msgpack:"cosine"`
	// Top1 is the fraction of rows whose arg-max equals the reference's;
	// set only when the model's output is a class vector (its last layer
	// is a softmax), and for a language model (the positions whose most
	// likely next token is the reference's).
	Top1 *float64 `json:"top1,omitempty" msgpack:"top1,omitempty"`
	// NonFinite counts NaN and ±Inf values in y where the fp32 run of the
	// same rows is finite: values only this precision lost. A report with
	// any rules its precision out for the model.
	NonFinite int `json:"non_finite" msgpack:"non_finite"`
	// OutOfRange counts the values left out of every metric because the
	// input drives them beyond what float32 carries: the fp32 run is not
	// finite there, or the reference is not (or exceeds float32's range).
	// They say something about the input, not about the precision.
	OutOfRange int `json:"out_of_range,omitempty" msgpack:"out_of_range,omitempty"`
}

// Validate checks what a controller relies on: it returns an error naming
// the first problem.
func (r *QualityReport) Validate() error {
	switch {
	case r.Model == "":
		return errors.New("quality report names no model")
	case !r.Served.Valid():
		return fmt.Errorf("quality report for %s: served precision %q is not a format", r.Model, r.Served)
	case r.Candidate != "" && !r.Candidate.Valid():
		return fmt.Errorf("quality report for %s: candidate precision %q is not a format", r.Model, r.Candidate)
	case (r.Candidate == "") != (r.CandidateMetrics == nil):
		return fmt.Errorf("quality report for %s: candidate and candidate metrics must come together", r.Model)
	case !r.Initial.Valid():
		return fmt.Errorf("quality report for %s: initial precision %q is not a format", r.Model, r.Initial)
	case r.Metric != "" && r.Metric != MetricRelL2 && r.Metric != MetricKL:
		return fmt.Errorf("quality report for %s: metric %q is not %s or %s", r.Model, r.Metric, MetricRelL2, MetricKL)
	case !(r.MaxError > 0):
		return fmt.Errorf("quality report for %s: max_error %g must be > 0", r.Model, r.MaxError)
	}
	if err := precision.ValidateLadder(r.Ladder); err != nil {
		return fmt.Errorf("quality report for %s: %w", r.Model, err)
	}
	return nil
}

// DecodeQualityReport decodes and validates a quality report.
func DecodeQualityReport(data []byte, e Encoding) (*QualityReport, error) {
	var r QualityReport
	if err := e.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("malformed %s quality report: %w", e, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}
