package kernels

import (
	"context"
	"errors"

	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// ErrInvalidBatch is returned (wrapped, naming the sequence and field) by
// LM.Step when a batch breaks a rule of Seq, or names a cache of another
// model or precision; and by LM.NewKVCache for a bad block count.
var ErrInvalidBatch = errors.New("invalid language-model batch")

// LM is the optional language-model ability of a Backend, found by type
// assertion, as database/sql finds a driver's optional interfaces:
//
//	lmb, ok := backend.(kernels.LM)
//
// A backend that implements it runs causal language models (package
// model/lm) one engine step at a time over a paged KV cache. Like Forward,
// Step runs exactly at precision p or fails with ErrUnsupported, and may
// cache per-model state (weights converted or uploaded for p) keyed by the
// *lm.Model, until EvictLM.
type LM interface {
	// NewKVCache allocates a paged key/value cache for m at precision p:
	// blocks blocks of BlockSize tokens, each holding every layer's K and V
	// for its tokens. A cache is used by one goroutine at a time.
	NewKVCache(m *lm.Model, p precision.Format, blocks int) (KVCache, error)
	// Step runs one engine step: every sequence of b feeds its Tokens at
	// positions Pos, Pos+1, …, writes their K and V into its blocks, and
	// attends causally over everything before; it returns one SeqOut per
	// sequence, in order, holding what the sequence's Want asked for. kv
	// must come from NewKVCache(m, p, …). A sequence's outputs must not
	// depend on the other sequences of the step beyond the order of
	// floating-point sums (fp8 activations are scaled per token, not per
	// batch); the CPU backend's are bit-for-bit independent. Step honours
	// ctx.
	Step(ctx context.Context, m *lm.Model, p precision.Format, kv KVCache, b *Batch) ([]SeqOut, error)
	// EvictLM drops what the backend converted or uploaded for m at every
	// precision, for when m is unloaded; a later Step converts again.
	EvictLM(m *lm.Model)
}

// KVCache is a paged key/value cache from LM.NewKVCache.
type KVCache interface {
	// BlockSize is the number of tokens (positions) a block holds.
	BlockSize() int
	// Blocks is the number of blocks; block ids are 0 to Blocks()−1.
	Blocks() int
	// Close releases the cache's memory; the cache must not be used after.
	Close() error
}

// Want is a set of outputs a sequence asks a step for.
type Want uint8

// The outputs of a step, computed only for the sequences that ask.
const (
	// WantSample: sample the next token after the last row (SeqOut.Token,
	// Logprob and Top) by Seq.Sampling.
	WantSample Want = 1 << iota
	// WantLogits: the last row's logits (SeqOut.Logits, vocab values), or
	// the last Seq.LogitRows rows' (teacher-forced quality checks).
	WantLogits
	// WantLogprobs: teacher-forced scoring, the log-probability of each
	// Tokens[i+1] given the tokens before it (SeqOut.Logprobs,
	// len(Tokens)−1 values).
	WantLogprobs
	// WantTarget, with WantLogprobs: also the log-probability of Target
	// after the last row (appended to SeqOut.Logprobs), so that a sequence
	// scored in chunks scores every token.
	WantTarget
	// WantHidden: the last row's final-normed hidden state (SeqOut.Hidden,
	// hidden_size values), for embeddings.
	WantHidden

	wantAll = WantSample | WantLogits | WantLogprobs | WantTarget | WantHidden
)

// KVBlockSize is the number of tokens a block of a paged KV cache holds on
// every backend (vLLM's default page size): a block table means the same
// positions whichever backend runs it.
const KVBlockSize = 16

// LMHeadFormat is the precision a language model's head (and a tied
// embedding used as the head) runs at when its layers run at p: bf16 for
// fp8 and fp4, as published fp8 and 4-bit recipes keep it, p otherwise.
// Every backend follows it.
func LMHeadFormat(p precision.Format) precision.Format {
	if p == precision.FP8 || p == precision.FP4 {
		return precision.BF16
	}
	return p
}

// KVFormat is the format a language model's KV cache holds when its layers
// run at p, on every backend: FP32 at fp32 and tf32, BF16 at bf16 and fp16,
// and FP8 at fp8 and fp4 — E4M3 values, each (position, KV head) row of K
// and of V with its own float32 scale, FP8Scale(the row's amax, 0) =
// amax/448 (1 for a row of zeros), the values EncodeE4M3(x / scale), as
// package precision quantizes.
func KVFormat(p precision.Format) precision.Format {
	switch p {
	case precision.FP32, precision.TF32:
		return precision.FP32
	case precision.FP8, precision.FP4:
		return precision.FP8
	}
	return precision.BF16
}

// KVBlockBytes is the memory of one block of c's KV cache in format f
// (KVFormat): K and V of KVBlockSize positions for every layer, 4, 2 or 1
// bytes a value, and for FP8 a 4-byte scale per (position, KV head) row.
// Backends that store the format as it is (the CUDA backend) use exactly
// this; an engine's KV budget is counted in it.
func KVBlockBytes(c *lm.Config, f precision.Format) int64 {
	rows := int64(c.Layers) * 2 * KVBlockSize * int64(c.KVHeads)
	switch f {
	case precision.FP32:
		return rows * int64(c.HeadDim) * 4
	case precision.FP8:
		return rows * (int64(c.HeadDim) + 4)
	}
	return rows * int64(c.HeadDim) * 2
}

// MaxTopLogprobs is the largest Sampling.TopLogprobs.
const MaxTopLogprobs = 20

// Sampling says how to pick a sequence's next token (see Sample for the
// exact algorithm).
type Sampling struct {
	// Temperature 0 is greedy decoding (ties to the lowest token id);
	// otherwise the logits are divided by it. Finite and ≥ 0.
	Temperature float32
	// TopK > 0 keeps only the TopK most likely tokens; 0 is off.
	TopK int
	// TopP in (0, 1) keeps the smallest set of most likely tokens whose
	// probabilities sum to at least TopP; 0 and 1 are off.
	TopP float32
	// Seed makes sampling reproducible: the draw for the token at position
	// pos is SampleUniform(Seed, pos), whatever the batch.
	Seed uint64
	// TopLogprobs asks for that many most likely alternatives with their
	// log-probabilities (SeqOut.Top), 0 to MaxTopLogprobs.
	TopLogprobs int
}

// Seq is one sequence's part of a step.
type Seq struct {
	// Tokens are fed this step: a prompt chunk, or the last sampled
	// token; at least one.
	Tokens []int32
	// Pos is the position of Tokens[0]; positions before it must already
	// be in the cache (from earlier steps). Pos + len(Tokens) must not
	// exceed the model's MaxPositions.
	Pos int
	// Blocks is the block table: Blocks[i] holds positions [i·BlockSize,
	// (i+1)·BlockSize). It must cover Pos + len(Tokens) positions. A block
	// this step writes must not be written, or read, by another sequence
	// of the step.
	Blocks []int32
	// Want is the set of outputs asked for.
	Want Want
	// Sampling is used with WantSample.
	Sampling Sampling
	// Target is the token scored after the last row with WantTarget.
	Target int32
	// LogitRows, with WantLogits, is how many of the last rows return
	// their logits: 0 and 1 mean the last row only; at most len(Tokens).
	// A teacher-forced re-run of a generated sequence asks for the rows of
	// every generated position at once.
	LogitRows int
}

// Batch is one engine step's sequences.
type Batch struct {
	Seqs []Seq
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int32
	Logprob float32
}

// SeqOut is what a step returns for one sequence; fields its Want did not
// ask for are zero.
type SeqOut struct {
	// Token is the sampled next token and Logprob its log-probability
	// under the model (temperature 1, before top-k and top-p: the
	// distribution the quality loop compares).
	Token   int32
	Logprob float32
	// Top holds the Sampling.TopLogprobs most likely tokens, most likely
	// first (ties to the lowest id).
	Top []TokenLogprob
	// Logits are the last row's logits (WantLogits), or the last
	// Seq.LogitRows rows' in row order, [rows, vocab] row-major.
	Logits []float32
	// Logprobs are the teacher-forced log-probabilities (WantLogprobs).
	Logprobs []float32
	// Hidden is the last row's final-normed hidden state (WantHidden).
	Hidden []float32
}

// DeviceMemory is implemented by backends whose memory is their own (a
// GPU's), so that a worker can size KV caches from what is free.
type DeviceMemory interface {
	// MemoryInfo returns the device's free and total memory in bytes, as
	// the driver counts them (every process's allocations included), once
	// the backend's queued work is done.
	MemoryInfo(ctx context.Context) (free, total int64, err error)
}

// WarmLM makes b convert or upload m's weights for p (what its first Step
// would do) by running one token through a throwaway one-block cache: so
// that the time is not counted as a prompt's, and so that memory free
// afterwards is memory a KV cache can have.
func WarmLM(ctx context.Context, b LM, m *lm.Model, p precision.Format) error {
	kv, err := b.NewKVCache(m, p, 1)
	if err != nil {
		return err
	}
	_, err = b.Step(ctx, m, p, kv, &Batch{Seqs: []Seq{{Tokens: []int32{0}, Blocks: []int32{0}, Want: WantSample}}})
	if cerr := kv.Close(); err == nil {
		err = cerr
	}
	return err
}
