package kerneltest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// LMConfig returns a small config of architecture a (hidden 64, 2 layers,
// 4 heads over 2 KV heads, vocab 256, 512 positions): llama with llama3
// RoPE scaling and tied embeddings, qwen2 with q/k/v biases, qwen3 with
// q/k norms and a head_dim other than hidden/heads.
func LMConfig(a lm.Arch) lm.Config {
	c := lm.Config{
		Arch: a, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 160, Vocab: 256,
		RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 512, BOS: lm.NoToken,
	}
	switch a {
	case lm.Llama:
		c.RopeScaling = &lm.RopeScaling{Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}
		c.TieEmbeddings = true
	case lm.Qwen2:
		c.QKVBias = true
	case lm.Qwen3:
		c.HeadDim = 32
		c.QKNorm = true
	}
	return c
}

// lmModels loads one random model per architecture (llama stored as BF16,
// the others F32), once per test binary: they are immutable.
var lmModels = sync.OnceValues(func() (map[lm.Arch]*lm.Model, error) {
	ms := map[lm.Arch]*lm.Model{}
	// lm.Load reads every file into memory, so the checkpoints can go as
	// soon as they are loaded.
	root, err := os.MkdirTemp("", "gearbox-lm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	for i, a := range lm.Archs {
		dtype := model.DTypeF32
		if a == lm.Llama {
			dtype = model.DTypeBF16
		}
		dir := filepath.Join(root, string(a))
		if err := lm.Synth(dir, lm.SynthConfig{Config: LMConfig(a), DType: dtype, Seed: uint64(i + 1)}); err != nil {
			return nil, err
		}
		if ms[a], err = lm.Load(dir); err != nil {
			return nil, err
		}
	}
	return ms, nil
})

// LMModel returns the random model of architecture a with LMConfig(a)
// (llama's weights stored as BF16, the others' as F32), the same pointer
// on every call in a test binary.
func LMModel(tb testing.TB, a lm.Arch) *lm.Model {
	tb.Helper()
	ms, err := lmModels()
	if err != nil {
		tb.Fatal(err)
	}
	return ms[a]
}

// RandTokens returns n token ids below vocab from seed.
func RandTokens(seed uint64, n, vocab int) []int32 {
	r := rand.New(rand.NewPCG(seed, 99))
	ts := make([]int32, n)
	for i := range ts {
		ts[i] = int32(r.IntN(vocab))
	}
	return ts
}

// RunLM runs the language-model part of the suite against b, which must
// implement kernels.LM (Run calls it for those that do), each part a
// subtest:
//
//	reference  each architecture's LMModel decoded token by token, at
//	           every precision b runs: every position's logits within
//	           LMTolerance of cpu.LMReference
//	outputs    greedy sampling picks the argmax of the logits with its
//	           log-probability; teacher-forced log-probabilities are those
//	           of the decoded logits, and so are the logits of the last
//	           Seq.LogitRows rows of a prefill; the hidden state has
//	           hidden_size values; a sequence that asks for nothing gets
//	           nothing
//	errors     precisions b does not run, broken batches and block counts
//	           (kernels.ErrInvalidBatch), a cache of another model, a
//	           cancelled context
//	evict      EvictLM between steps changes no logits
func RunLM(t *testing.T, b kernels.Backend) {
	lmb, ok := b.(kernels.LM)
	if !ok {
		t.Fatalf("%s (%T) is not a kernels.LM", b.Name(), b)
	}
	t.Run("reference", func(t *testing.T) {
		for _, a := range lm.Archs {
			m := LMModel(t, a)
			toks := RandTokens(1, 24, m.Config.Vocab)
			ref, err := cpu.LMReference(m, toks)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range supported(b) {
				got := NewSession(t, lmb, m, p, 8).DecodeLogits(toks)
				e := RelL2(got, ref)
				t.Logf("%s at %s: rel L2 vs reference %.3g (tolerance %.3g)", a, p, e, LMTolerance(p))
				if !(e <= LMTolerance(p)) {
					t.Errorf("%s at %s: rel L2 vs reference = %.3g, want <= %.3g", a, p, e, LMTolerance(p))
				}
			}
		}
	})
	t.Run("outputs", func(t *testing.T) { testLMOutputs(t, lmb) })
	t.Run("errors", func(t *testing.T) { testLMErrors(t, b, lmb) })
	t.Run("evict", func(t *testing.T) {
		m := LMModel(t, lm.Qwen3)
		for _, p := range supported(b) {
			s := NewSession(t, lmb, m, p, 2)
			toks := []int32{5, 6, 7}
			before := s.Step(kernels.Seq{Tokens: toks, Blocks: s.Alloc(3), Want: kernels.WantLogits})[0].Logits
			lmb.EvictLM(m)
			after := s.Step(kernels.Seq{Tokens: toks, Blocks: s.Alloc(3), Want: kernels.WantLogits})[0].Logits
			if !slices.Equal(before, after) {
				t.Errorf("logits at %s changed after EvictLM: rel L2 %g", p, RelL2(after, Widen(before)))
			}
		}
		lmb.EvictLM(m)
		lmb.EvictLM(LMModel(t, lm.Llama))
	})
}

// testLMOutputs checks each output against the logits it derives from, at
// fp32.
func testLMOutputs(t *testing.T, lmb kernels.LM) {
	m := LMModel(t, lm.Qwen2)
	c := &m.Config
	toks := RandTokens(5, 20, c.Vocab)
	s := NewSession(t, lmb, m, precision.FP32, 16)
	decoded := s.DecodeLogits(toks)
	logitsAt := func(i int) []float32 { return decoded[i*c.Vocab : (i+1)*c.Vocab] }

	n := len(toks) - 1
	o := s.Step(kernels.Seq{Tokens: toks[:n], Blocks: s.Alloc(n), Target: toks[n],
		Want:     kernels.WantLogprobs | kernels.WantTarget | kernels.WantSample | kernels.WantLogits | kernels.WantHidden,
		Sampling: kernels.Sampling{TopLogprobs: 5}})[0]
	if len(o.Logprobs) != n {
		t.Fatalf("%d log-probabilities; want %d (the tokens after the first, and the target)", len(o.Logprobs), n)
	}
	for i, lp := range o.Logprobs {
		l := logitsAt(i)
		if want := float64(l[toks[i+1]]) - kernels.LogSumExp(l); math.Abs(float64(lp)-want) > 1e-4 {
			t.Errorf("log-probability of token %d: %v; want %v (from the decoded logits)", i+1, lp, want)
		}
	}
	if len(o.Logits) != c.Vocab {
		t.Fatalf("%d logits; want vocab %d", len(o.Logits), c.Vocab)
	}
	if o.Token != kernels.Argmax(o.Logits) {
		t.Errorf("greedy token %d; want the argmax of its logits %d", o.Token, kernels.Argmax(o.Logits))
	}
	if want := float64(o.Logits[o.Token]) - kernels.LogSumExp(o.Logits); math.Abs(float64(o.Logprob)-want) > 1e-5 {
		t.Errorf("greedy token's log-probability %v; want %v", o.Logprob, want)
	}
	if len(o.Top) != 5 || o.Top[0].Token != o.Token {
		t.Errorf("top alternatives %v; want 5, the greedy token first", o.Top)
	}
	if len(o.Hidden) != c.Hidden {
		t.Errorf("hidden state of %d values; want %d", len(o.Hidden), c.Hidden)
	}
	// The logits of every row but the first, in one step beside another
	// sequence, are the decoded ones (the teacher-forced quality check).
	rows := n - 1
	outs := s.Step(kernels.Seq{Tokens: toks[:n], Blocks: s.Alloc(n), Want: kernels.WantLogits | kernels.WantLogprobs, LogitRows: rows},
		kernels.Seq{Tokens: toks[:4], Blocks: s.Alloc(4), Want: kernels.WantLogits})
	if len(outs[0].Logits) != rows*c.Vocab || len(outs[1].Logits) != c.Vocab {
		t.Fatalf("LogitRows %d: %d logits (and %d beside); want %d × vocab %d (and %d)", rows, len(outs[0].Logits), len(outs[1].Logits), rows, c.Vocab, c.Vocab)
	}
	want := decoded[(n-rows)*c.Vocab : n*c.Vocab]
	if e := RelL2(outs[0].Logits, Widen(want)); !(e <= 1e-5) {
		t.Errorf("LogitRows %d: rel L2 %.3g to the decoded logits of the same rows; want <= 1e-5", rows, e)
	}
	if e := RelL2(outs[1].Logits, Widen(logitsAt(3))); !(e <= 1e-5) {
		t.Errorf("the sequence beside LogitRows: rel L2 %.3g to its decoded logits; want <= 1e-5", e)
	}
	o = s.Step(kernels.Seq{Tokens: toks[:3], Blocks: s.Alloc(3)})[0]
	if o.Logits != nil || o.Logprobs != nil || o.Hidden != nil || o.Top != nil || o.Token != 0 || o.Logprob != 0 {
		t.Errorf("a sequence asking for nothing got %+v", o)
	}
}

func testLMErrors(t *testing.T, b kernels.Backend, lmb kernels.LM) {
	ctx := context.Background()
	m, other := LMModel(t, lm.Llama), LMModel(t, lm.Qwen2)
	p := supported(b)[0]
	for _, bad := range []precision.Format{precision.Auto, "fp64"} {
		if _, err := lmb.NewKVCache(m, bad, 4); !errors.Is(err, kernels.ErrUnsupported) {
			t.Errorf("NewKVCache at %q: %v; want ErrUnsupported", bad, err)
		}
	}
	for _, blocks := range []int{0, -1} {
		if _, err := lmb.NewKVCache(m, p, blocks); !errors.Is(err, kernels.ErrInvalidBatch) {
			t.Errorf("NewKVCache of %d blocks: %v; want ErrInvalidBatch", blocks, err)
		}
	}
	kv := NewSession(t, lmb, m, p, 4).KV
	otherKV := NewSession(t, lmb, other, p, 4).KV
	ok := kernels.Seq{Tokens: []int32{1, 2}, Blocks: []int32{0}}
	with := func(edit func(*kernels.Seq)) *kernels.Batch {
		s := ok
		edit(&s)
		return &kernels.Batch{Seqs: []kernels.Seq{s}}
	}
	for _, tc := range []struct {
		name  string
		p     precision.Format
		kv    kernels.KVCache
		batch *kernels.Batch
		want  error
	}{
		{"auto", precision.Auto, kv, with(func(*kernels.Seq) {}), kernels.ErrUnsupported},
		{"other model's cache", p, otherKV, with(func(*kernels.Seq) {}), kernels.ErrInvalidBatch},
		{"nil batch", p, kv, nil, kernels.ErrInvalidBatch},
		{"no tokens", p, kv, with(func(s *kernels.Seq) { s.Tokens = nil }), kernels.ErrInvalidBatch},
		{"token past the vocabulary", p, kv, with(func(s *kernels.Seq) { s.Tokens = []int32{1, 256} }), kernels.ErrInvalidBatch},
		{"past max positions", p, kv, with(func(s *kernels.Seq) { s.Pos = 511 }), kernels.ErrInvalidBatch},
		{"block id", p, kv, with(func(s *kernels.Seq) { s.Blocks = []int32{4} }), kernels.ErrInvalidBatch},
		{"blocks short", p, kv, with(func(s *kernels.Seq) { s.Blocks = nil }), kernels.ErrInvalidBatch},
		{"shared written block", p, kv, &kernels.Batch{Seqs: []kernels.Seq{ok, ok}}, kernels.ErrInvalidBatch},
		{"unknown want", p, kv, with(func(s *kernels.Seq) { s.Want = 1 << 7 }), kernels.ErrInvalidBatch},
		{"logit rows past the tokens", p, kv, with(func(s *kernels.Seq) { s.Want, s.LogitRows = kernels.WantLogits, 3 }), kernels.ErrInvalidBatch},
		{"negative logit rows", p, kv, with(func(s *kernels.Seq) { s.Want, s.LogitRows = kernels.WantLogits, -1 }), kernels.ErrInvalidBatch},
		{"logit rows without logits", p, kv, with(func(s *kernels.Seq) { s.LogitRows = 2 }), kernels.ErrInvalidBatch},
		{"temperature", p, kv, with(func(s *kernels.Seq) { s.Want, s.Sampling.Temperature = kernels.WantSample, -1 }), kernels.ErrInvalidBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := lmb.Step(ctx, m, tc.p, tc.kv, tc.batch); !errors.Is(err, tc.want) {
				t.Errorf("Step: %v; want %v", err, tc.want)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lmb.Step(cctx, m, p, kv, &kernels.Batch{Seqs: []kernels.Seq{ok}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Step with a cancelled context: %v; want context.Canceled", err)
	}
}

// Session drives one language model at one precision over one KV cache
// of a backend, handing out blocks in a scrambled order so that every
// block table is non-contiguous. It fails its test on any error.
type Session struct {
	t    testing.TB
	b    kernels.LM
	m    *lm.Model
	p    precision.Format
	KV   kernels.KVCache // closed when the test ends
	free []int32
}

// NewSession allocates a cache of blocks blocks for m at p on b.
func NewSession(t testing.TB, b kernels.LM, m *lm.Model, p precision.Format, blocks int) *Session {
	t.Helper()
	kv, err := b.NewKVCache(m, p, blocks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	free := make([]int32, blocks)
	for i, j := range rand.New(rand.NewPCG(uint64(blocks), 1)).Perm(blocks) {
		free[i] = int32(j)
	}
	return &Session{t: t, b: b, m: m, p: p, KV: kv, free: free}
}

// Alloc takes enough blocks for n positions.
func (s *Session) Alloc(n int) []int32 {
	bs := s.KV.BlockSize()
	k := (n + bs - 1) / bs
	if k > len(s.free) {
		s.t.Fatalf("out of KV blocks: want %d, %d free", k, len(s.free))
	}
	blocks := s.free[:k:k]
	s.free = s.free[k:]
	return blocks
}

// Step runs one step of seqs.
func (s *Session) Step(seqs ...kernels.Seq) []kernels.SeqOut {
	s.t.Helper()
	outs, err := s.b.Step(context.Background(), s.m, s.p, s.KV, &kernels.Batch{Seqs: seqs})
	if err != nil {
		s.t.Fatal(err)
	}
	return outs
}

// DecodeLogits feeds tokens one step each (a prefill of one token, then
// decode steps) and returns the logits after each: len(tokens) × vocab.
func (s *Session) DecodeLogits(tokens []int32) []float32 {
	blocks := s.Alloc(len(tokens))
	var out []float32
	for i, tok := range tokens {
		o := s.Step(kernels.Seq{Tokens: []int32{tok}, Pos: i, Blocks: blocks, Want: kernels.WantLogits})
		out = append(out, o[0].Logits...)
	}
	return out
}

// PrefillLogits feeds tokens in one step and returns the last row's
// logits.
func (s *Session) PrefillLogits(tokens []int32) []float32 {
	o := s.Step(kernels.Seq{Tokens: tokens, Blocks: s.Alloc(len(tokens)), Want: kernels.WantLogits})
	return o[0].Logits
}

// Generate decodes n tokens greedily after prompt (a prefill of prompt,
// then one step per token, through newly allocated blocks) and returns
// them.
func (s *Session) Generate(prompt []int32, n int) []int32 {
	blocks := s.Alloc(len(prompt) + n)
	seq := kernels.Seq{Tokens: prompt, Blocks: blocks, Want: kernels.WantSample}
	var out []int32
	for range n {
		tok := s.Step(seq)[0].Token
		out = append(out, tok)
		seq = kernels.Seq{Tokens: []int32{tok}, Pos: seq.Pos + len(seq.Tokens), Blocks: blocks, Want: kernels.WantSample}
	}
	return out
}
