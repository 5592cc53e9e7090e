package cpu_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmBands are the accepted relative L2 errors of all-position logits
// against LMReference, decoding 40 random tokens on each architecture's
// random model (kt.LMConfig), about 3× either side of what was measured
// (amd64, Go 1.26; the range over the three architectures in the
// comment). fp16 is above tf32 because its KV cache is bf16; fp8's and
// fp4's is E4M3 (kernels.KVFormat).
var lmBands = map[precision.Format][2]float64{
	precision.FP32: {0, 2e-6},        // 1.74e-7 – 1.79e-7
	precision.TF32: {1.2e-4, 1.8e-3}, // 3.76e-4 – 5.77e-4
	precision.FP16: {4.5e-4, 4.7e-3}, // 1.35e-3 – 1.57e-3
	precision.BF16: {1.0e-3, 1.6e-2}, // 3.16e-3 – 5.25e-3
	precision.FP8:  {1.7e-2, 1.7e-1}, // 5.46e-2 – 6.04e-2 (fp8 KV cache; bf16 KV: 5.30e-2 – 5.78e-2)
	precision.FP4:  {4.7e-2, 4.7e-1}, // 0.141 – 0.160 (fp8 KV cache; bf16 KV: 0.141 – 0.157)
}

// TestLMAgainstReference decodes a sequence at every precision, through
// the paged cache, and compares every position's logits with the float64
// reference.
func TestLMAgainstReference(t *testing.T) {
	b := newBackend(t, 0)
	for _, a := range lm.Archs {
		m := kt.LMModel(t, a)
		toks := kt.RandTokens(1, 40, m.Config.Vocab)
		ref, err := cpu.LMReference(m, toks)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range precision.All {
			got := kt.NewSession(t, b, m, p, 8).DecodeLogits(toks)
			e := kt.RelL2(got, ref)
			t.Logf("%s at %s: relative L2 error %.3g against the reference", a, p, e)
			if band := lmBands[p]; !(e >= band[0] && e <= band[1]) {
				t.Errorf("%s at %s: relative L2 error %.3g against the reference; want in [%.2g, %.2g]", a, p, e, band[0], band[1])
			}
			if p == precision.FP32 {
				if mr, at := kt.MaxRel(got, ref); mr > 3e-6 {
					t.Errorf("%s at fp32: largest error %.3g at position %d token %d; want ≤ 3e-6", a, mr, at/m.Config.Vocab, at%m.Config.Vocab)
				}
			}
		}
	}
}

// TestLMPagedDecodeEqualsPrefill: the logits after decoding a sequence
// token by token through the paged cache are bit for bit those of a
// prefill of the whole prefix, in one step or in chunks.
func TestLMPagedDecodeEqualsPrefill(t *testing.T) {
	b := newBackend(t, 0)
	for _, a := range lm.Archs {
		m := kt.LMModel(t, a)
		vocab := m.Config.Vocab
		toks := kt.RandTokens(2, 37, vocab)
		for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
			s := kt.NewSession(t, b, m, p, 64)
			decoded := s.DecodeLogits(toks)
			for _, n := range []int{1, 2, 16, 17, 37} {
				if got := s.PrefillLogits(toks[:n]); !slices.Equal(got, decoded[(n-1)*vocab:n*vocab]) {
					t.Errorf("%s at %s: prefill of %d tokens differs from decoding them", a, p, n)
				}
			}
			// Chunks of 5, each step writing the cache the next one reads.
			blocks := s.Alloc(len(toks))
			var last []float32
			for pos := 0; pos < len(toks); pos += 5 {
				chunk := toks[pos:min(pos+5, len(toks))]
				last = s.Step(kernels.Seq{Tokens: chunk, Pos: pos, Blocks: blocks, Want: kernels.WantLogits})[0].Logits
			}
			if !slices.Equal(last, decoded[(len(toks)-1)*vocab:]) {
				t.Errorf("%s at %s: chunked prefill differs from decoding", a, p)
			}
		}
	}
}

// TestLMBatchInvariance: a sequence's outputs do not depend on the other
// sequences of its steps (prefills and decodes of other lengths), nor on
// the number of threads.
func TestLMBatchInvariance(t *testing.T) {
	m := kt.LMModel(t, lm.Qwen3)
	vocab := m.Config.Vocab
	prompt := kt.RandTokens(3, 20, vocab)
	sampling := kernels.Sampling{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: 42, TopLogprobs: 3}
	want := kernels.WantSample | kernels.WantLogits | kernels.WantHidden
	// run generates 6 tokens after prompt with seq A, alone or beside two
	// others (B prefilling in chunks, C decoding), and returns A's outputs.
	run := func(b *cpu.Backend, p precision.Format, crowd bool) []kernels.SeqOut {
		s := kt.NewSession(t, b, m, p, 32)
		aBlocks, bBlocks, cBlocks := s.Alloc(32), s.Alloc(64), s.Alloc(32)
		other := kt.RandTokens(4, 60, vocab)
		if crowd {
			s.Step(kernels.Seq{Tokens: other[:9], Blocks: cBlocks})
		}
		var outs []kernels.SeqOut
		a := kernels.Seq{Tokens: prompt, Blocks: aBlocks, Want: want, Sampling: sampling}
		for i := range 6 {
			seqs := []kernels.Seq{a}
			if crowd {
				seqs = []kernels.Seq{
					{Tokens: other[i*7 : i*7+7], Pos: i * 7, Blocks: bBlocks, Want: kernels.WantLogprobs},
					a,
					{Tokens: other[9+i : 10+i], Pos: 9 + i, Blocks: cBlocks, Want: kernels.WantSample},
				}
			}
			o := s.Step(seqs...)
			out := o[slices.IndexFunc(seqs, func(q kernels.Seq) bool { return &q.Blocks[0] == &aBlocks[0] })]
			outs = append(outs, out)
			a = kernels.Seq{Tokens: []int32{out.Token}, Pos: a.Pos + len(a.Tokens), Blocks: aBlocks, Want: want, Sampling: sampling}
		}
		return outs
	}
	one, four := newBackend(t, 1), newBackend(t, 4)
	for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
		alone := run(one, p, false)
		for _, tc := range []struct {
			name string
			outs []kernels.SeqOut
		}{{"batched", run(one, p, true)}, {"4 threads", run(four, p, false)}, {"batched, 4 threads", run(four, p, true)}} {
			for i := range alone {
				x, y := alone[i], tc.outs[i]
				if x.Token != y.Token || x.Logprob != y.Logprob || !slices.Equal(x.Logits, y.Logits) || !slices.Equal(x.Hidden, y.Hidden) || !slices.Equal(x.Top, y.Top) {
					t.Errorf("%s, %s: step %d differs from the sequence alone (token %d vs %d)", p, tc.name, i, y.Token, x.Token)
				}
			}
		}
	}
}

// TestLMOutputs checks each output against the logits it derives from:
// teacher-forced log-probabilities (with a target), greedy sampling, the
// top alternatives and the hidden state.
func TestLMOutputs(t *testing.T) {
	b := newBackend(t, 0)
	m := kt.LMModel(t, lm.Qwen2)
	c := &m.Config
	toks := kt.RandTokens(5, 25, c.Vocab)
	s := kt.NewSession(t, b, m, precision.FP32, 16)
	decoded := s.DecodeLogits(toks)
	logitsAt := func(i int) []float32 { return decoded[i*c.Vocab : (i+1)*c.Vocab] }

	n := len(toks) - 1
	o := s.Step(kernels.Seq{Tokens: toks[:n], Blocks: s.Alloc(n), Target: toks[n],
		Want:     kernels.WantLogprobs | kernels.WantTarget | kernels.WantSample | kernels.WantHidden,
		Sampling: kernels.Sampling{TopLogprobs: 5}})[0]
	if len(o.Logprobs) != n {
		t.Fatalf("%d log-probabilities; want %d (the tokens after the first, and the target)", len(o.Logprobs), n)
	}
	for i, lp := range o.Logprobs {
		l := logitsAt(i)
		if want := float32(float64(l[toks[i+1]]) - kernels.LogSumExp(l)); lp != want {
			t.Errorf("log-probability of token %d: %v; want %v", i+1, lp, want)
		}
	}
	last := logitsAt(n - 1)
	if o.Token != kernels.Argmax(last) || o.Logprob != float32(float64(last[o.Token])-kernels.LogSumExp(last)) {
		t.Errorf("greedy token %d (logprob %v); want the argmax %d", o.Token, o.Logprob, kernels.Argmax(last))
	}
	if len(o.Top) != 5 || o.Top[0].Token != o.Token || o.Top[0].Logprob != o.Logprob ||
		!slices.IsSortedFunc(o.Top, func(x, y kernels.TokenLogprob) int { return -cmpF(x.Logprob, y.Logprob) }) {
		t.Errorf("top alternatives %v; want 5, most likely (the greedy token) first", o.Top)
	}
	// The head applied to the hidden state gives the logits.
	if len(o.Hidden) != c.Hidden {
		t.Fatalf("hidden state of %d values; want %d", len(o.Hidden), c.Hidden)
	}
	head := m.Weights.Head
	want := make([]float64, c.Vocab)
	for v := range c.Vocab {
		for i, h := range o.Hidden {
			want[v] += float64(h) * float64(head.At(v*c.Hidden+i))
		}
	}
	if e := kt.RelL2(last, want); e > 1e-6 {
		t.Errorf("head · hidden differs from the logits by %.3g", e)
	}
	// A sequence asking for nothing gets nothing.
	if o := s.Step(kernels.Seq{Tokens: toks[:3], Blocks: s.Alloc(3)})[0]; !reflectZero(o) {
		t.Errorf("a sequence wanting nothing got %+v", o)
	}
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func reflectZero(o kernels.SeqOut) bool {
	return o.Token == 0 && o.Logprob == 0 && o.Top == nil && o.Logits == nil && o.Logprobs == nil && o.Hidden == nil
}

// TestLMGreedyMatchesReference: greedy generation at fp32 picks the
// reference's argmax at every step.
func TestLMGreedyMatchesReference(t *testing.T) {
	b := newBackend(t, 0)
	for _, a := range lm.Archs {
		m := kt.LMModel(t, a)
		prompt := kt.RandTokens(6, 8, m.Config.Vocab)
		gen := kt.NewSession(t, b, m, precision.FP32, 8).Generate(prompt, 24)
		all := append(slices.Clone(prompt), gen...)
		ref, err := cpu.LMReference(m, all[:len(all)-1])
		if err != nil {
			t.Fatal(err)
		}
		v := m.Config.Vocab
		for i, tok := range gen {
			row := ref[(len(prompt)-1+i)*v : (len(prompt)+i)*v]
			if best := argmax64(row); int32(best) != tok {
				t.Errorf("%s: generated token %d is %d; the reference's argmax is %d", a, i, tok, best)
				break
			}
		}
	}
}

func argmax64(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func TestLMStepErrors(t *testing.T) {
	b := newBackend(t, 0)
	m := kt.LMModel(t, lm.Llama)
	other := kt.LMModel(t, lm.Qwen2)
	kv, err := b.NewKVCache(m, precision.BF16, 4)
	if err != nil {
		t.Fatal(err)
	}
	otherKV, _ := b.NewKVCache(other, precision.BF16, 4)
	fp32KV, _ := b.NewKVCache(m, precision.FP32, 4)
	closed, _ := b.NewKVCache(m, precision.BF16, 4)
	closed.Close()
	ok := kernels.Seq{Tokens: []int32{1, 2}, Blocks: []int32{0}}
	seqs := func(s ...kernels.Seq) *kernels.Batch { return &kernels.Batch{Seqs: s} }
	with := func(edit func(*kernels.Seq)) *kernels.Batch {
		s := ok
		edit(&s)
		return seqs(s)
	}
	for _, tc := range []struct {
		name  string
		p     precision.Format
		kv    kernels.KVCache
		batch *kernels.Batch
		want  error
		msg   string
	}{
		{"precision", precision.Auto, kv, seqs(ok), kernels.ErrUnsupported, "auto"},
		{"other model's cache", precision.BF16, otherKV, seqs(ok), kernels.ErrInvalidBatch, "another model or precision"},
		{"other precision's cache", precision.BF16, fp32KV, seqs(ok), kernels.ErrInvalidBatch, "another model or precision"},
		{"closed cache", precision.BF16, closed, seqs(ok), kernels.ErrInvalidBatch, "closed"},
		{"nil batch", precision.BF16, kv, nil, kernels.ErrInvalidBatch, "nil"},
		{"no tokens", precision.BF16, kv, with(func(s *kernels.Seq) { s.Tokens = nil }), kernels.ErrInvalidBatch, "seq 0: no tokens"},
		{"token", precision.BF16, kv, with(func(s *kernels.Seq) { s.Tokens = []int32{1, 256} }), kernels.ErrInvalidBatch, "Tokens[1] = 256 is not a token id"},
		{"negative token", precision.BF16, kv, with(func(s *kernels.Seq) { s.Tokens = []int32{-1} }), kernels.ErrInvalidBatch, "Tokens[0] = -1"},
		{"negative pos", precision.BF16, kv, with(func(s *kernels.Seq) { s.Pos = -1 }), kernels.ErrInvalidBatch, "Pos -1"},
		{"past max positions", precision.BF16, kv, with(func(s *kernels.Seq) { s.Pos = 511 }), kernels.ErrInvalidBatch, "max_position_embeddings 512"},
		{"blocks short", precision.BF16, kv, with(func(s *kernels.Seq) { s.Pos = 15 }), kernels.ErrInvalidBatch, "1 blocks of 16 tokens do not cover positions up to 16"},
		{"block id", precision.BF16, kv, with(func(s *kernels.Seq) { s.Blocks = []int32{4} }), kernels.ErrInvalidBatch, "Blocks[0] = 4 is not a block of the cache (0 to 3)"},
		{"shared written block", precision.BF16, kv, seqs(ok, ok), kernels.ErrInvalidBatch, "seq 1: block 0 is also written by seq 0"},
		{"reads a block being written", precision.BF16, kv, seqs(ok, kernels.Seq{Tokens: []int32{3}, Pos: 16, Blocks: []int32{0, 1}}), kernels.ErrInvalidBatch, "seq 1: reads block 0, which seq 0 writes"},
		{"unknown want", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want = 1 << 7 }), kernels.ErrInvalidBatch, "unknown bits"},
		{"target alone", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want = kernels.WantTarget }), kernels.ErrInvalidBatch, "WantTarget without WantLogprobs"},
		{"target", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want, s.Target = kernels.WantLogprobs|kernels.WantTarget, 300 }), kernels.ErrInvalidBatch, "Target 300"},
		{"temperature", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want, s.Sampling.Temperature = kernels.WantSample, -1 }), kernels.ErrInvalidBatch, "Temperature -1"},
		{"NaN temperature", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want, s.Sampling.Temperature = kernels.WantSample, float32(math.NaN()) }), kernels.ErrInvalidBatch, "Temperature NaN"},
		{"top_k", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want, s.Sampling.TopK = kernels.WantSample, -2 }), kernels.ErrInvalidBatch, "TopK -2"},
		{"top_p", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want, s.Sampling.TopP = kernels.WantSample, 1.5 }), kernels.ErrInvalidBatch, "TopP 1.5"},
		{"top logprobs", precision.BF16, kv, with(func(s *kernels.Seq) { s.Want, s.Sampling.TopLogprobs = kernels.WantSample, 21 }), kernels.ErrInvalidBatch, "TopLogprobs 21"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Step(context.Background(), m, tc.p, tc.kv, tc.batch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Step(ctx, m, precision.BF16, kv, seqs(ok)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v; want %v", err, context.Canceled)
	}
	for _, blocks := range []int{0, -1, 1 << 40} {
		if _, err := b.NewKVCache(m, precision.BF16, blocks); !errors.Is(err, kernels.ErrInvalidBatch) {
			t.Errorf("NewKVCache(%d blocks): got %v; want %v", blocks, err, kernels.ErrInvalidBatch)
		}
	}
	if _, err := b.NewKVCache(m, "fp64", 1); !errors.Is(err, kernels.ErrUnsupported) {
		t.Errorf("NewKVCache(fp64): got %v; want %v", err, kernels.ErrUnsupported)
	}
	if out, err := b.Step(context.Background(), m, precision.BF16, kv, seqs()); err != nil || len(out) != 0 {
		t.Errorf("empty batch: %v, %v; want no outputs and no error", out, err)
	}
}

// TestLMWeightCache: weights are converted once per (model, precision),
// even by concurrent first steps, and again after EvictLM.
func TestLMWeightCache(t *testing.T) {
	b := newBackend(t, 0)
	m := kt.LMModel(t, lm.Qwen3)
	var wg sync.WaitGroup
	for range 4 {
		s := kt.NewSession(t, b, m, precision.FP8, 2)
		blocks := s.Alloc(3)
		wg.Go(func() {
			if _, err := b.Step(context.Background(), m, precision.FP8, s.KV, &kernels.Batch{Seqs: []kernels.Seq{{Tokens: []int32{1, 2, 3}, Blocks: blocks}}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := cpu.Quantizations(b); got != 1 {
		t.Errorf("%d conversions after four concurrent first steps; want 1", got)
	}
	s := kt.NewSession(t, b, m, precision.FP8, 2)
	before := s.PrefillLogits([]int32{5, 6})
	b.EvictLM(m)
	after := s.PrefillLogits([]int32{5, 6})
	if got := cpu.Quantizations(b); got != 2 {
		t.Errorf("%d conversions after EvictLM and a step; want 2", got)
	}
	if !slices.Equal(before, after) {
		t.Error("logits changed after the weights were converted again")
	}
}
