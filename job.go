package gearbox

import (
	"fmt"
	"math"
	"time"

	"github.com/gearbox-inference/gearbox/precision"
)

// Job is one inference request: rows of input for a tensor model, or, in
// its LMRequest fields, a prompt for a language model.
type Job struct {
	// ID identifies the job; required, at most MaxIDLen bytes. Producers
	// also set the Nats-Msg-Id header to it so a re-published job is
	// dropped as a duplicate. The result carries it back.
	ID string `json:"id" msgpack:"id"`
	// Model names the model; it must equal the subject's last token.
	Model string `json:"model" msgpack:"model"`
	// Input is [rows, features] with features = the model's input width.
	Input Tensor `json:"input,omitzero" msgpack:"input,omitempty"`
	// Precision is auto (the default: the model's policy) or a format name.
	Precision precision.Format `json:"precision,omitempty" msgpack:"precision,omitempty"`
	// MaxError, when set, is the job's own relative-error bound: the job
	// runs at no precision whose known error exceeds it.
	MaxError float64 `json:"max_error,omitempty" msgpack:"max_error,omitempty"`
	// Priority orders jobs within a batch key: higher first.
	Priority int `json:"priority,omitempty" msgpack:"priority,omitempty"`
	// Deadline (unix milliseconds), when set, is when the result stops
	// being useful: a job still waiting then gets an expired error.
	Deadline int64 `json:"deadline,omitempty" msgpack:"deadline,omitempty"`
	// ReplyTo, when set, is a core NATS subject that also receives the
	// result (in addition to the result stream).
	ReplyTo string `json:"reply_to,omitempty" msgpack:"reply_to,omitempty"`
	// Meta is echoed into the result unchanged.
	Meta map[string]string `json:"meta,omitempty" msgpack:"meta,omitempty"`
	// OutputDType is the element type of the result's output: f32 (the
	// default), or bf16 or f16 (rounded to nearest even) for half the
	// bytes. In JSON an f32 output is `values`; bf16 and f16 are `data`.
	OutputDType DType `json:"output_dtype,omitempty" msgpack:"output_dtype,omitempty"`
	// LMRequest holds a language-model job's fields instead of Input.
	LMRequest
}

// hasInput reports whether the job gives any of input's fields.
func (j *Job) hasInput() bool {
	return !j.Input.IsZero()
}

// DeadlineTime is the job's deadline, or the zero time if it has none.
func (j *Job) DeadlineTime() time.Time {
	if j.Deadline == 0 {
		return time.Time{}
	}
	return time.UnixMilli(j.Deadline)
}

// Validate checks everything about the job that needs no model: it returns
// a bad_request *Error naming the first problem. It does not decode the
// input's values (see Tensor.Float32s for the finiteness check).
func (j *Job) Validate() error {
	if j.ID == "" {
		return Errorf(CodeBadRequest, "job has no id")
	}
	if err := checkID(j.ID); err != nil {
		return Errorf(CodeBadRequest, "job %v", err)
	}
	if j.Model == "" {
		return Errorf(CodeBadRequest, "job %q names no model", j.ID)
	}
	if err := ValidToken(j.Model); err != nil {
		return Errorf(CodeBadRequest, "job %q: model: %v", j.ID, err)
	}
	if _, err := precision.Parse(string(j.Precision)); err != nil {
		return Errorf(CodeBadRequest, "job %q: %v", j.ID, err)
	}
	if j.MaxError < 0 || math.IsNaN(j.MaxError) || math.IsInf(j.MaxError, 0) {
		return Errorf(CodeBadRequest, "job %q: max_error %v must be a finite number ≥ 0", j.ID, j.MaxError)
	}
	if j.Deadline < 0 {
		return Errorf(CodeBadRequest, "job %q: deadline %d must be unix milliseconds", j.ID, j.Deadline)
	}
	if j.ReplyTo != "" {
		if err := checkReplyTo(j.ReplyTo); err != nil {
			return Errorf(CodeBadRequest, "job %q: reply_to: %v", j.ID, err)
		}
	}
	if err := checkMeta(j.Meta); err != nil {
		return Errorf(CodeBadRequest, "job %q: %v", j.ID, err)
	}
	if err := checkOutputDType(j.OutputDType); err != nil {
		return Errorf(CodeBadRequest, "job %q: %v", j.ID, err)
	}
	if j.IsLM() {
		if j.hasInput() {
			return Errorf(CodeBadRequest, "job %q gives both input (for a tensor model) and a prompt (for a language model)", j.ID)
		}
		if err := j.LMRequest.validate(); err != nil {
			return Errorf(CodeBadRequest, "job %q: %v", j.ID, err)
		}
		return nil
	}
	if err := j.Input.Check(); err != nil {
		return Errorf(CodeBadRequest, "job %q: input: %s", j.ID, AsError(err).Message)
	}
	return nil
}

// checkOutputDType accepts "" (f32), f32, bf16 and f16.
func checkOutputDType(d DType) error {
	if d != "" && d.Size() == 0 {
		return fmt.Errorf("output_dtype %q is not one of f32, bf16, f16", d)
	}
	return nil
}

// checkMeta applies DecodeJob's bounds on meta to a job built in Go.
func checkMeta(meta map[string]string) error {
	if len(meta) > MaxMetaEntries {
		return fmt.Errorf("meta has %d entries; at most %d", len(meta), MaxMetaEntries)
	}
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	if n > MaxMetaBytes {
		return fmt.Errorf("meta holds %d bytes of keys and values; at most %d", n, MaxMetaBytes)
	}
	return nil
}

// ValidSubject checks a publish subject: non-empty tokens, no wildcards or
// whitespace.
func ValidSubject(s string) error {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return fmt.Errorf("%s is not a valid subject", echo(s))
	}
	prev := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '*' || c == '>' || c <= ' ' || c == 0x7f || (c == '.' && prev == '.') {
			return fmt.Errorf("%s is not a valid subject", echo(s))
		}
		prev = c
	}
	return nil
}
