package gearbox

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// Task is what a job asks of a language model.
type Task string

// The language-model tasks.
const (
	// Generate continues the prompt (the default).
	Generate Task = "generate"
	// Embed returns the pooled, L2-normalised last hidden state of the
	// prompt as Result.Output, f32 [1, hidden].
	Embed Task = "embed"
	// Score returns the log-probability of each of the prompt's own tokens
	// given the ones before it (teacher-forced), in Result.Logprobs.
	Score Task = "score"
)

// Bounds on a language-model job's fields.
const (
	// MaxStop is the most stop strings a job may give; MaxStopLen the
	// longest, in bytes.
	MaxStop    = 16
	MaxStopLen = 256
	// MaxLogprobs is the most alternatives per token a job may ask for.
	MaxLogprobs = 20
)

// LMRequest is the part of a Job for a causal language model: a job for
// such a model carries these instead of Input. Pointer fields are nil when
// absent: the model's generation_config.json then gives the default (else
// greedy decoding).
type LMRequest struct {
	// Task is generate (the default), embed or score.
	Task Task `json:"task,omitempty" msgpack:"task,omitempty"`
	// Prompt is the text to continue, embed or score; PromptTokens gives
	// it as token ids instead. Exactly one of the two.
	Prompt       string  `json:"prompt,omitempty" msgpack:"prompt,omitempty"`
	PromptTokens []int32 `json:"prompt_tokens,omitempty" msgpack:"prompt_tokens,omitempty"`
	// MaxTokens bounds the tokens generated (≥ 1; the prompt and they
	// must fit the model's context).
	MaxTokens *int `json:"max_tokens,omitempty" msgpack:"max_tokens,omitempty"`
	// Temperature 0 is greedy decoding; TopP in (0, 1] and TopK ≥ 0 (0:
	// off) restrict sampling.
	Temperature *float64 `json:"temperature,omitempty" msgpack:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty" msgpack:"top_p,omitempty"`
	TopK        *int     `json:"top_k,omitempty" msgpack:"top_k,omitempty"`
	// Seed makes sampling reproducible; absent, it is derived from the
	// job's id, so a redelivered job samples the same tokens.
	Seed *uint64 `json:"seed,omitempty" msgpack:"seed,omitempty"`
	// Stop ends generation before the first occurrence of any of these
	// strings in the generated text (which then excludes it).
	Stop []string `json:"stop,omitempty" msgpack:"stop,omitempty"`
	// Logprobs asks for that many most likely alternatives per generated
	// token, with their log-probabilities (0: none).
	Logprobs int `json:"logprobs,omitempty" msgpack:"logprobs,omitempty"`
	// Stream sends the text to ReplyTo as it is generated (StreamChunk
	// messages), before the result.
	Stream bool `json:"stream,omitempty" msgpack:"stream,omitempty"`
}

// IsLM reports whether the job is for a language model: it gives a task, a
// prompt or prompt tokens.
func (r *LMRequest) IsLM() bool {
	return r.Task != "" || r.Prompt != "" || r.PromptTokens != nil
}

// validate checks the fields that need no model (the worker checks token
// ids against the vocabulary and lengths against the context).
func (r *LMRequest) validate() error {
	switch r.Task {
	case "", Generate, Embed, Score:
	default:
		return fmt.Errorf("task %s is not one of generate, embed, score", echo(string(r.Task)))
	}
	if (r.Prompt == "") == (r.PromptTokens == nil) {
		return fmt.Errorf("give exactly one of prompt and prompt_tokens")
	}
	if r.PromptTokens != nil && len(r.PromptTokens) == 0 {
		return fmt.Errorf("prompt_tokens is empty")
	}
	if !utf8.ValidString(r.Prompt) {
		return fmt.Errorf("prompt is not valid UTF-8")
	}
	for i, t := range r.PromptTokens {
		if t < 0 {
			return fmt.Errorf("prompt_tokens[%d] = %d is negative", i, t)
		}
	}
	if r.MaxTokens != nil && *r.MaxTokens < 1 {
		return fmt.Errorf("max_tokens %d must be ≥ 1", *r.MaxTokens)
	}
	if t := r.Temperature; t != nil && (*t < 0 || math.IsNaN(*t) || math.IsInf(*t, 0)) {
		return fmt.Errorf("temperature %v must be a finite number ≥ 0", *t)
	}
	if p := r.TopP; p != nil && !(*p > 0 && *p <= 1) {
		return fmt.Errorf("top_p %v must be in (0, 1]", *p)
	}
	if k := r.TopK; k != nil && *k < 0 {
		return fmt.Errorf("top_k %d must be ≥ 0", *k)
	}
	if len(r.Stop) > MaxStop {
		return fmt.Errorf("stop has %d strings; at most %d", len(r.Stop), MaxStop)
	}
	for i, s := range r.Stop {
		if s == "" || len(s) > MaxStopLen || !utf8.ValidString(s) {
			return fmt.Errorf("stop[%d] must be 1 to %d bytes of UTF-8", i, MaxStopLen)
		}
	}
	if r.Logprobs < 0 || r.Logprobs > MaxLogprobs {
		return fmt.Errorf("logprobs %d must be 0 to %d", r.Logprobs, MaxLogprobs)
	}
	if r.Stream && r.Task != "" && r.Task != Generate {
		return fmt.Errorf("stream applies to generate jobs only")
	}
	return nil
}

// The finish reasons of a generate job.
const (
	FinishStop     = "stop"     // an end-of-sequence token or a stop string
	FinishLength   = "length"   // max_tokens, or the model's context
	FinishDeadline = "deadline" // the job's deadline passed: the text so far
)

// Usage counts a language-model job's tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens" msgpack:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens" msgpack:"completion_tokens"`
}

// TokenLogprob is a token with its log-probability under the model (at
// temperature 1, before top-k and top-p), and, when asked for, the most
// likely alternatives at its position.
type TokenLogprob struct {
	Token   int32          `json:"token" msgpack:"token"`
	Text    string         `json:"text,omitempty" msgpack:"text,omitempty"`
	Logprob float32        `json:"logprob" msgpack:"logprob"`
	Top     []TokenLogprob `json:"top,omitempty" msgpack:"top,omitempty"`
}

// StreamChunk is a piece of a streaming generate job's text, sent to its
// reply_to (core NATS, in the job's encoding, with the header
// Gearbox-Stream: chunk) as it is generated. Chunks of one job come in
// order, Index 0, 1, 2, …; concatenated, their Text is the result's Text.
// The result itself follows on reply_to (Gearbox-Stream: end) once it is
// stored. A chunk never ends inside a UTF-8 character.
type StreamChunk struct {
	ID     string  `json:"id" msgpack:"id"`
	Index  int     `json:"index" msgpack:"index"`
	Text   string  `json:"text" msgpack:"text"`
	Tokens []int32 `json:"tokens" msgpack:"tokens"`
}

// HeaderStream marks messages to a streaming job's reply_to: "chunk" for a
// StreamChunk, "end" for the result.
const HeaderStream = "Gearbox-Stream"
