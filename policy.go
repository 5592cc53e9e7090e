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

// PrecisionPolicy is a model's precision policy: the value of key <model>
// in the KV bucket gearbox_policy, always JSON. Workers serve the model's
// auto jobs at Precision; the controller moves Precision within [Floor,
// Ceiling] of the model's ladder from quality reports, by compare-and-swap.
// (The manifest's ladder it moves on is model.PrecisionConfig.) See
// docs/wire.md.
type PrecisionPolicy struct {
	Model     string           `json:"model"`
	Precision precision.Format `json:"precision"`
	// Floor is the cheapest rung allowed, Ceiling the most accurate.
	Floor   precision.Format `json:"floor"`
	Ceiling precision.Format `json:"ceiling"`
	// MaxError is the model's accuracy target (by the model's metric:
	// relative L2 against the reference, or a language model's KL); 0
	// means the manifest's.
	MaxError float64 `json:"max_error,omitempty"`
	// Reason says why the policy last changed, in words.
	Reason string `json:"reason"`
	// Evidence is the window statistics the change rested on.
	Evidence *Evidence `json:"evidence,omitempty"`
	// Measured is the last known error upper bound per precision (from the
	// windows at each change): jobs with a tighter max_error of their own
	// run no cheaper than the cheapest rung measured to meet it.
	Measured map[precision.Format]float64 `json:"measured,omitempty"`
	// Excluded lists precisions ruled out for the model (they produced
	// non-finite outputs where fp32 did not); only a manual set clears it.
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
	// UpperBound is the largest error in the window by the model's metric
	// (relative L2, or a language model's KL), Mean the mean; NonFinite
	// the count of non-finite values seen.
	UpperBound float64 `json:"upper_bound"`
	Mean       float64 `json:"mean"`
	NonFinite  int     `json:"non_finite,omitempty"`
	// FirstSeq and LastSeq bound the window in GEARBOX_QUALITY.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// ErrInvalidPolicy is wrapped by the errors of PrecisionPolicy.Validate and
// DecodePolicy.
var ErrInvalidPolicy = errors.New("invalid precision policy")

// Validate reports the first problem that makes p unfit to store: a
// precision, floor or ceiling that is not a format, a floor more accurate
// than the ceiling, a precision outside [floor, ceiling], or a max_error
// outside [0, 1]. Errors wrap ErrInvalidPolicy.
func (p *PrecisionPolicy) Validate() error {
	if err := p.validFormats(); err != nil {
		return err
	}
	switch {
	case p.Floor.MoreAccurate(p.Ceiling):
		return fmt.Errorf("%w: floor %s is more accurate than ceiling %s", ErrInvalidPolicy, p.Floor, p.Ceiling)
	case p.Precision.MoreAccurate(p.Ceiling) || p.Floor.MoreAccurate(p.Precision):
		return fmt.Errorf("%w: precision %s is outside [floor %s, ceiling %s]", ErrInvalidPolicy, p.Precision, p.Floor, p.Ceiling)
	case !(p.MaxError >= 0 && p.MaxError <= 1):
		return fmt.Errorf("%w: max_error %g must be in (0, 1] (0: the manifest's)", ErrInvalidPolicy, p.MaxError)
	}
	return nil
}

// validFormats is what reading a policy needs: its three precisions are
// formats.
func (p *PrecisionPolicy) validFormats() error {
	if !p.Precision.Valid() || !p.Floor.Valid() || !p.Ceiling.Valid() {
		return fmt.Errorf("%w: precision %q, floor %q and ceiling %q must all be formats", ErrInvalidPolicy, p.Precision, p.Floor, p.Ceiling)
	}
	return nil
}

// DecodePolicy decodes a policy from its KV value. It checks only that the
// precisions are formats: a stored policy that breaks its own bounds (one
// written to the bucket by hand) is still read, and the controller clamps
// its precision into them.
func DecodePolicy(data []byte) (*PrecisionPolicy, error) {
	var p PrecisionPolicy
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%w: malformed JSON: %w", ErrInvalidPolicy, err)
	}
	if err := p.validFormats(); err != nil {
		return nil, fmt.Errorf("policy for %q: %w", p.Model, err)
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
