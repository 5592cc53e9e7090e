package gearbox

import "github.com/gearbox-inference/gearbox/precision"

// Result answers one Job. On success Output holds [rows, outputs] as f32 and
// Error is nil; on failure Error is set and Output absent.
type Result struct {
	ID     string  `json:"id" msgpack:"id"`
	Model  string  `json:"model" msgpack:"model"`
	Output *Tensor `json:"output,omitempty" msgpack:"output,omitempty"`
	// Precision is the precision the forward pass actually ran at: never
	// auto, never a precision that was not run. Empty when nothing ran.
	Precision precision.Format `json:"precision,omitempty" msgpack:"precision,omitempty"`
	// PolicyRev is, for an auto job, the revision of the model's policy
	// (in the KV bucket gearbox_policy) its precision was chosen under; 0
	// when the model had no policy yet (the manifest's initial precision)
	// or the job asked for a precision.
	PolicyRev uint64 `json:"policy_rev,omitempty" msgpack:"policy_rev,omitempty"`
	// Worker names the worker that produced the result.
	Worker string `json:"worker" msgpack:"worker"`
	// Batch identifies the batch the job ran in; BatchRows is its size.
	// A job split across batches reports the first.
	Batch     string `json:"batch,omitempty" msgpack:"batch,omitempty"`
	BatchRows int    `json:"batch_rows,omitempty" msgpack:"batch_rows,omitempty"`
	// QueuedMs is the time from the job's publish (the stream's timestamp)
	// until its batch started computing; ComputeMs the batch's compute time.
	QueuedMs  float64 `json:"queued_ms" msgpack:"queued_ms"`
	ComputeMs float64 `json:"compute_ms" msgpack:"compute_ms"`
	// NonFinite counts the output values that are NaN or infinite: the
	// model overflowed on this input, at this precision. In JSON they are
	// the strings "NaN", "Infinity" and "-Infinity" among the numbers.
	NonFinite int    `json:"non_finite,omitempty" msgpack:"non_finite,omitempty"`
	Error     *Error `json:"error,omitempty" msgpack:"error,omitempty"`

	// Language-model results (docs/wire.md): the generated Text and
	// Tokens (not the prompt's), why generation ended, the tokens counted,
	// the log-probabilities asked for (a generate job's Logprobs > 0: one
	// per generated token; a score job: one per prompt token after the
	// first), and the time from the job's start of compute to its first
	// token. An embed job's embedding is Output.
	Text         string            `json:"text,omitempty" msgpack:"text,omitempty"`
	Tokens       []int32           `json:"tokens,omitempty" msgpack:"tokens,omitempty"`
	FinishReason string            `json:"finish_reason,omitempty" msgpack:"finish_reason,omitempty"`
	Usage        *Usage            `json:"usage,omitempty" msgpack:"usage,omitempty"`
	Logprobs     []TokenLogprob    `json:"logprobs,omitempty" msgpack:"logprobs,omitempty"`
	TTFTMs       float64           `json:"ttft_ms,omitempty" msgpack:"ttft_ms,omitempty"`
	Meta         map[string]string `json:"meta,omitempty" msgpack:"meta,omitempty"`
}
