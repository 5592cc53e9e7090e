package gearbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	// NonFinite counts NaN and ±Inf values in y. A report with any makes
	// its precision unusable for the model.
	NonFinite int `json:"non_finite" msgpack:"non_finite"`
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

// Policy is a model's precision policy: the value of key <model> in the KV
// bucket gearbox_policy, always JSON. Workers serve the model's auto jobs at
// Precision; the controller moves Precision within [Floor, Ceiling] of the
// model's ladder from quality reports, by compare-and-swap. See docs/wire.md.
type Policy struct {
	Model     string           `json:"model"`
	Precision precision.Format `json:"precision"`
	// Floor is the cheapest rung allowed, Ceiling the most accurate.
	Floor   precision.Format `json:"floor"`
	Ceiling precision.Format `json:"ceiling"`
	// MaxError is the model's accuracy target (relative L2 against the
	// reference); 0 means the manifest's.
	MaxError float64 `json:"max_error,omitempty"`
	// Reason says why the policy last changed, in words.
	Reason string `json:"reason"`
	// Evidence is the window statistics the change rested on.
	Evidence *Evidence `json:"evidence,omitempty"`
	// Measured is the last known error upper bound per precision (from the
	// windows at each change): jobs with a tighter max_error of their own
	// run no cheaper than the cheapest rung measured to meet it.
	Measured map[precision.Format]float64 `json:"measured,omitempty"`
	// Excluded lists precisions ruled out for the model (non-finite
	// outputs were seen at them); only a manual set clears it.
	Excluded []precision.Format `json:"excluded,omitempty"`
	// Seq is the GEARBOX_QUALITY stream sequence the policy took effect
	// at: the controller judges only reports after it.
	Seq uint64 `json:"seq"`
	// By names who changed it: a worker's controller, or "manual".
	By        string    `json:"by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Evidence is the window of observations a policy change rested on.
type Evidence struct {
	Precision precision.Format `json:"precision"`
	// Samples is the number of reports in the window; Workers how many
	// distinct workers made them.
	Samples int `json:"samples"`
	Workers int `json:"workers"`
	// UpperBound is the largest relative L2 error in the window, Mean the
	// mean; NonFinite the count of non-finite values seen.
	UpperBound float64 `json:"upper_bound"`
	Mean       float64 `json:"mean"`
	NonFinite  int     `json:"non_finite,omitempty"`
	// FirstSeq and LastSeq bound the window in GEARBOX_QUALITY.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// DecodePolicy decodes a policy from its KV value.
func DecodePolicy(data []byte) (*Policy, error) {
	var p Policy
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("malformed policy: %w", err)
	}
	if !p.Precision.Valid() || !p.Floor.Valid() || !p.Ceiling.Valid() {
		return nil, fmt.Errorf("policy for %q: precision %q, floor %q and ceiling %q must all be formats", p.Model, p.Precision, p.Floor, p.Ceiling)
	}
	return &p, nil
}

// PolicyBucketConfig is the KV bucket of policies: a history of changes is
// kept for audit (`gearbox policy get --history`).
func (s Subjects) PolicyBucketConfig(replicas int) jetstream.KeyValueConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      s.PolicyBucket(),
		Description: "Gearbox precision policy per model",
		History:     64,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// PolicyStore opens the policy bucket, creating it if create is set.
func PolicyStore(ctx context.Context, js jetstream.JetStream, s Subjects, replicas int, create bool) (jetstream.KeyValue, error) {
	if create {
		kv, err := js.CreateOrUpdateKeyValue(ctx, s.PolicyBucketConfig(replicas))
		if err != nil {
			return nil, fmt.Errorf("policy bucket %s: %w", s.PolicyBucket(), err)
		}
		return kv, nil
	}
	kv, err := js.KeyValue(ctx, s.PolicyBucket())
	if err != nil {
		return nil, fmt.Errorf("policy bucket %s: %w", s.PolicyBucket(), err)
	}
	return kv, nil
}
