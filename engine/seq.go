package engine

import (
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// Task is what a sequence asks of the model.
type Task uint8

// The tasks (see the package doc).
const (
	Generate Task = iota
	Embed
	Score
)

// The reasons a generation ends.
const (
	FinishStop     = "stop"     // an end-of-sequence token, or the caller's Token said stop
	FinishLength   = "length"   // MaxTokens, or the model's context
	FinishDeadline = "deadline" // the deadline passed
)

// Token is one generated token with its log-probability under the model
// and, when asked for, the most likely alternatives.
type Token struct {
	ID      int32
	Logprob float32
	Top     []kernels.TokenLogprob
}

// Seq is one sequence. The caller fills its exported fields and hands it
// to Scheduler.Add or Engine.Add; from then on the engine owns it.
type Seq struct {
	Task   Task
	Prompt []int32
	// MaxTokens is the most tokens a generation produces (≥ 1).
	MaxTokens int
	Sampling  kernels.Sampling
	// EOS are the tokens that end a generation (not part of its tokens).
	EOS      []int32
	Priority int
	Deadline time.Time // the zero time: none

	// Token, when set, is called with each generated token, on the
	// engine's goroutine, as soon as it is sampled: returning true ends
	// the generation (FinishStop), as a stop string does. It must be
	// quick and must not call the engine.
	Token func(Token) (stop bool)
	// Done is called once, when the sequence ends, with its outcome; on
	// the engine's goroutine, after the step.
	Done func(*Outcome)

	tokens    []int32 // the prompt, then the generated tokens
	fed       int     // tokens whose K and V are in the cache
	table     []int32 // block table
	keys      []blockKey
	sealed    int    // leading blocks of table written (ready, or private)
	order     uint64 // admission order
	running   bool   // prefilled: decoding one token a step
	gen       []Token
	sampled   int // tokens sampled, the end-of-sequence one included
	logprobs  []float32
	added     time.Time
	first     time.Time
	preempted int
	waiting   bool // in the scheduler's waiting queue
	acct      acct // what it adds to Committed while waiting (committed.go)
}

// Outcome is how a sequence ended.
type Outcome struct {
	// Tokens are the generated tokens, without an end-of-sequence token.
	Tokens []Token
	// Reason is FinishStop, FinishLength or FinishDeadline for a
	// generation; empty for embed and score.
	Reason string
	// Sampled counts the tokens sampled, an end-of-sequence token included.
	Sampled int
	// Logprobs (score) are the log-probabilities of the prompt's tokens
	// after the first, each given those before it.
	Logprobs []float32
	// Hidden (embed) is the last prompt row's final-normed hidden state.
	Hidden []float32
	// Added is when the sequence was added, FirstToken when its first
	// token was sampled (or, for embed and score, when it finished), Ended
	// when it ended.
	Added, FirstToken, Ended time.Time
	// Preempted counts the times the sequence was preempted and
	// recomputed.
	Preempted int
	// Err is set when a step holding the sequence failed: nothing else is.
	Err error
}
