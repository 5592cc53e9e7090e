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
	// Served is the precision the batch ran at; ServedMetrics compares its
	// outputs with the reference.
	Served        precision.Format `json:"served" msgpack:"served"`
	ServedMetrics QualityMetrics   `json:"served_metrics" msgpack:"served_metrics"`
	// Candidate is the next-cheaper rung of the ladder, run in shadow on
	// the same rows (not served); empty when Served is the cheapest rung
	// or the device cannot run it.
	Candidate        precision.Format `json:"candidate,omitempty" msgpack:"candidate,omitempty"`
	CandidateMetrics *QualityMetrics  `json:"candidate_metrics,omitempty" msgpack:"candidate_metrics,omitempty"`
	// Reference is what both were compared with: "fp64" (the CPU
	// backend's float64 forward pass) or "fp32" (the same device at fp32).
	Reference string `json:"reference" msgpack:"reference"`
	Worker    string `json:"worker" msgpack:"worker"`
	Device    string `json:"device" msgpack:"device"`
	Batch     string `json:"batch" msgpack:"batch"`
	BatchRows int    `json:"batch_rows" msgpack:"batch_rows"`
	// Rows is how many of the batch's rows were checked (a random subset).
	Rows int       `json:"rows" msgpack:"rows"`
	Time time.Time `json:"time" msgpack:"time"`
}

// QualityMetrics compares outputs with the reference over the rows checked.
type QualityMetrics struct {
	// RelL2 is ‖y − ref‖₂ / ‖ref‖₂ over all the rows checked: the quantity
	// a model's max_error bounds.
	RelL2 float64 `json:"rel_l2" msgpack:"rel_l2"`
	// MaxAbs is the largest |y − ref| of any element.
	MaxAbs float64 `json:"max_abs" msgpack:"max_abs"`
	// Cosine is the mean over rows of the cosine similarity of y and ref.
	Cosine float64 `json:"cosine" msgpack:"cosine"`
	// Top1 is the fraction of rows whose arg-max equals the reference's;
	// set only when the model's output is a class vector (its last layer
	// is a softmax).
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
