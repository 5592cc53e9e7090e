//go:build cgo

package cuda

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmTiny loads a small random model (qwen2: biases on q/k/v).
func lmTiny(t *testing.T) *lm.Model {
	t.Helper()
	return lmSynth(t, lm.Config{Arch: lm.Qwen2, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Intermediate: 160, Vocab: 300,
		RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 1024, BOS: lm.NoToken, QKVBias: true}, 5)
}

// lmSynth writes and loads a random model of c, stored as bf16.
func lmSynth(t *testing.T, c lm.Config, seed uint64) *lm.Model {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := lm.Synth(dir, lm.SynthConfig{Config: c, DType: model.DTypeBF16, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	m, err := lm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLMEvictFreesMemory follows a language model pushed again and again,
// as a worker does: each version decodes at bf16, fp8 and fp4 (weights
// uploaded, graphs captured), then the version it replaced is evicted. The
// device memory in use must come back to its level after the first version
// every time (each version holds about 70 MB of weights), and a cache's
// Close frees the cache. The device must be otherwise idle: cuMemGetInfo
// counts every process.
func TestLMEvictFreesMemory(t *testing.T) {
	b := newTestBackend(t, Config{})
	ctx := context.Background()
	state := func() (used uint64, weights int) {
		err := b.do(ctx, func(d *devState) error {
			if err := d.stream.sync(); err != nil {
				return err
			}
			free, total, err := cuMemInfo()
			used, weights = total-free, len(d.lm.weights)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return used, weights
	}
	formats := []precision.Format{precision.BF16, precision.FP8, precision.FP4}
	run := func(seed uint64) *lm.Model {
		m := lmSynth(t, lm.Config{Arch: lm.Llama, Hidden: 512, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 64, Intermediate: 2048,
			Vocab: 4096, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 1024, BOS: lm.NoToken}, seed)
		for _, p := range formats {
			kv, err := b.NewKVCache(m, p, 4)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 { // decode steps: the third and fourth replay a graph
				seq := kernels.Seq{Tokens: []int32{int32(i + 1)}, Pos: i, Blocks: []int32{2}, Want: kernels.WantSample}
				if _, err := b.Step(ctx, m, p, kv, &kernels.Batch{Seqs: []kernels.Seq{seq}}); err != nil {
					t.Fatalf("version %d at %s: %v", seed, p, err)
				}
			}
			kv.Close()
		}
		return m
	}
	cur := run(1)
	base, weights := state()
	t.Logf("one version at %v: %d weight sets, %d MiB of device memory in use", formats, weights, base>>20)
	const slack = 16 << 20 // well under one version's weights
	for v := uint64(2); v <= 4; v++ {
		next := run(v)
		grown, _ := state()
		b.EvictLM(cur)
		cur = next
		used, weights := state()
		t.Logf("version %d: %d MiB in use before evicting version %d, %d MiB after", v, grown>>20, v-1, used>>20)
		if used > base+slack {
			t.Errorf("version %d: %d MiB in use after evicting version %d, %d MiB after version 1; want it back within %d MiB", v, used>>20, v-1, base>>20, slack>>20)
		}
		if weights != len(formats) {
			t.Errorf("version %d: %d weight sets cached, want %d (the current version's)", v, weights, len(formats))
		}
		if grown <= used {
			t.Errorf("version %d: EvictLM freed nothing (%d MiB in use before, %d after)", v, grown>>20, used>>20)
		}
	}
	b.EvictLM(cur)
	if _, weights := state(); weights != 0 {
		t.Errorf("after evicting every version: %d weight sets; want none", weights)
	}
	// A cache's memory (64 MiB) comes back when it closes.
	kv, err := b.NewKVCache(cur, precision.BF16, 1024)
	if err != nil {
		t.Fatal(err)
	}
	open, _ := state()
	kv.Close()
	closed, _ := state()
	if kvb := kv.(*kvCache).bytes; open-closed < kvb {
		t.Errorf("closing a cache of %d bytes freed %d", kvb, open-closed)
	}
	seq := kernels.Seq{Tokens: []int32{1}, Blocks: []int32{0}}
	if _, err := b.Step(ctx, cur, precision.BF16, kv, &kernels.Batch{Seqs: []kernels.Seq{seq}}); err == nil {
		t.Error("Step on a closed cache succeeded")
	}
	b.Close()
	b.EvictLM(cur) // after Close: nothing to do, and no panic
	if err := kv.Close(); err != nil {
		t.Errorf("closing a closed cache after the backend's Close: %v", err)
	}
}

// TestLMChunking: attention run in chunks of rows (its scratch budget
// forced down to a few rows) and the head in chunks of logit rows give
// bit-identical results: chunking changes no sum.
func TestLMChunking(t *testing.T) {
	b := newTestBackend(t, Config{})
	m := lmTiny(t)
	v := m.Config.Vocab
	toks := make([]int32, 300)
	for i := range toks {
		toks[i] = int32((i*37 + 11) % v)
	}
	run := func() []kernels.SeqOut {
		kv, err := b.NewKVCache(m, precision.BF16, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		blocksA, blocksB := make([]int32, 19), make([]int32, 2)
		for i := range blocksA {
			blocksA[i] = int32(40 - i)
		}
		blocksB[0], blocksB[1] = 3, 7
		outs, err := b.Step(context.Background(), m, precision.BF16, kv, &kernels.Batch{Seqs: []kernels.Seq{
			{Tokens: toks, Blocks: blocksA, Want: kernels.WantLogprobs | kernels.WantTarget | kernels.WantSample | kernels.WantHidden | kernels.WantLogits, Target: 9,
				Sampling: kernels.Sampling{Temperature: 0.8, TopK: 30, Seed: 3, TopLogprobs: 4}},
			{Tokens: toks[:20], Blocks: blocksB, Want: kernels.WantSample | kernels.WantLogits | kernels.WantHidden},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	want := run()
	saved := [2]int{attnScratchBytes, logitsBytes}
	attnScratchBytes, logitsBytes = 3*4*3*(16+2)*4, 7*4*v // 3 rows per attention launch, 7 logit rows per head launch
	defer func() { attnScratchBytes, logitsBytes = saved[0], saved[1] }()
	got := run()
	for i := range want {
		g, w := got[i], want[i]
		if g.Token != w.Token || g.Logprob != w.Logprob || !slices.Equal(g.Logits, w.Logits) || !slices.Equal(g.Hidden, w.Hidden) ||
			!slices.Equal(g.Logprobs, w.Logprobs) || !slices.Equal(g.Top, w.Top) {
			t.Errorf("seq %d: outputs in chunks differ from one launch (token %d vs %d)", i, g.Token, w.Token)
		}
	}
}

// TestLMFP4Paths: fp4 on the NVFP4 kernels (per-channel tensor scales,
// gbx_nvfp4_gemm_tiled and gbx_nvfp4_gemm; gbx_nvfp4_gemm_wide where the
// weights are tiled) and on the dequantized-bf16 GEMM read the same weights,
// so their logits differ by the order of sums only. Two models: every
// projection's K a multiple of 128 (the kernel's tensor-core path, tiled
// weights: hidden 128, q 128, intermediate 256), and a narrow one whose
// down projection (32 × 2,048, tiled) is the only one on that path (the
// others on the exact CUDA-core path, row-major).
func TestLMFP4Paths(t *testing.T) {
	kernel := newTestBackend(t, Config{FP4SmallM: 1 << 20})
	wide := newTestBackend(t, Config{FP4SmallM: -1, FP4WideM: 1 << 20, FP4WideMinWeights: -1})
	gemm := newTestBackend(t, Config{FP4SmallM: -1, FP4WideM: -1})
	if err := kernel.do(context.Background(), func(d *devState) error { return d.k.load(modFP4) }); err != nil {
		t.Skipf("no NVFP4 kernel: %v", err)
	}
	for _, c := range []lm.Config{
		{Arch: lm.Qwen2, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, Intermediate: 256, Vocab: 300,
			RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 1024, BOS: lm.NoToken, QKVBias: true},
		{Arch: lm.Llama, Hidden: 32, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 16, Intermediate: 2048, Vocab: 300,
			RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 1024, BOS: lm.NoToken},
	} {
		m := lmSynth(t, c, 6)
		toks := []int32{5, 9, 200, 31, 7, 7, 150, 2, 99, 64, 11, 12}
		logits := func(b *Backend) []float32 {
			kv, err := b.NewKVCache(m, precision.FP4, 4)
			if err != nil {
				t.Fatal(err)
			}
			defer kv.Close()
			o, err := b.Step(context.Background(), m, precision.FP4, kv, &kernels.Batch{Seqs: []kernels.Seq{{Tokens: toks, Blocks: []int32{2}, Want: kernels.WantLogits}}})
			if err != nil {
				t.Fatal(err)
			}
			return o[0].Logits
		}
		g := logits(gemm)
		for _, k := range []struct {
			name string
			b    *Backend
		}{{"NVFP4 kernel", kernel}, {"wide NVFP4 kernel", wide}} {
			e := relL2(logits(k.b), g)
			t.Logf("hidden %d: fp4 %s vs bf16 GEMM: logits rel L2 %.3g", c.Hidden, k.name, e)
			if !(e <= 5e-3) {
				t.Errorf("hidden %d: fp4 logits on the %s vs the bf16 GEMM: rel L2 %.3g, want <= 5e-3", c.Hidden, k.name, e)
			}
		}
	}
}

// TestLMGraphReplay decodes three sequences for 16 steps across the
// context length where attention goes from one split to two, on a backend
// that replays CUDA graphs and on one without: every output is the same,
// bit for bit, and graphs were captured.
func TestLMGraphReplay(t *testing.T) {
	g := newTestBackend(t, Config{})
	eager := newTestBackend(t, Config{NoGraphs: true})
	m := lmTiny(t)
	v := m.Config.Vocab
	replays := 0
	run := func(b *Backend) [][]kernels.SeqOut {
		kv, err := b.NewKVCache(m, precision.BF16, 40)
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		seqs := make([]kernels.Seq, 3)
		for i := range seqs {
			blocks := []int32{int32(30 - 10*i), int32(31 - 10*i), int32(32 - 10*i), int32(33 - 10*i), int32(34 - 10*i), int32(35 - 10*i), int32(36 - 10*i), int32(37 - 10*i), int32(38 - 10*i), int32(39 - 10*i)}
			prompt := make([]int32, 118+i)
			for j := range prompt {
				prompt[j] = int32((j*13 + i*7) % v)
			}
			// The prompt (eager: not a decode step).
			if _, err := b.Step(context.Background(), m, precision.BF16, kv, &kernels.Batch{Seqs: []kernels.Seq{{Tokens: prompt, Blocks: blocks}}}); err != nil {
				t.Fatal(err)
			}
			seqs[i] = kernels.Seq{Tokens: []int32{int32(i + 1)}, Pos: len(prompt), Blocks: blocks,
				Want: kernels.WantSample | kernels.WantLogits, Sampling: kernels.Sampling{Temperature: 0.9, TopK: 40, Seed: uint64(i), TopLogprobs: 2}}
		}
		seqs[2].Want = kernels.WantSample
		var all [][]kernels.SeqOut
		for range 16 {
			outs, err := b.Step(context.Background(), m, precision.BF16, kv, &kernels.Batch{Seqs: seqs})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, outs)
			for i := range seqs {
				seqs[i].Pos++
				seqs[i].Tokens = []int32{outs[i].Token}
			}
		}
		if b == g {
			_ = b.do(context.Background(), func(d *devState) error { replays = d.lm.replays; return nil })
		}
		return all
	}
	got, want := run(g), run(eager)
	for s := range want {
		for i := range want[s] {
			x, y := got[s][i], want[s][i]
			if x.Token != y.Token || x.Logprob != y.Logprob || !slices.Equal(x.Logits, y.Logits) || !slices.Equal(x.Top, y.Top) {
				t.Fatalf("step %d seq %d: graph replay gives token %d (logprob %g), eager %d (%g)", s, i, x.Token, x.Logprob, y.Token, y.Logprob)
			}
		}
	}
	var on bool
	var gerr error
	_ = g.do(context.Background(), func(d *devState) error {
		on, gerr = d.useGraphs, d.lm.graphErr
		return nil
	})
	// Per number of attention splits: two eager steps, then replays (the
	// second shape's buffers grow, which drops the first shape's graph).
	t.Logf("%d of 16 decode steps replayed a graph (graphs on: %v, last capture error: %v)", replays, on, gerr)
	if on && replays < 8 {
		t.Errorf("%d of 16 decode steps replayed a graph, want at least 8 (last capture error: %v)", replays, gerr)
	}
}

// TestLMAttnRing decodes three sequences over an E4M3 cache (fp8) with
// gbx_attn_mma's _ring entry points in every attention launch that would
// take the plain ones, and with them off: every logit is the same bits,
// through contexts of several splits, each split more KV blocks a warp
// than the ring has slots.
func TestLMAttnRing(t *testing.T) {
	ring := newTestBackend(t, Config{})
	plain := newTestBackend(t, Config{})
	var major int
	for b, on := range map[*Backend]int{ring: 1, plain: -1} {
		_ = b.do(context.Background(), func(d *devState) error {
			d.attnRing, major = on, d.info.Major
			return nil
		})
	}
	if major < 9 {
		t.Skipf("compute capability %d: no _ring entry points", major)
	}
	m := lmSynth(t, lm.Config{Arch: lm.Llama, Hidden: 128, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 64, Intermediate: 128,
		Vocab: 300, RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 2048, BOS: lm.NoToken}, 7)
	v := m.Config.Vocab
	run := func(b *Backend) [][]float32 {
		kv, err := b.NewKVCache(m, precision.FP8, 3*32)
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		seqs := make([]kernels.Seq, 3)
		for i := range seqs {
			blocks := make([]int32, 32)
			for j := range blocks {
				blocks[j] = int32(3*j + 2 - i) // interleaved, out of order
			}
			prompt := make([]int32, 290+97*i)
			for j := range prompt {
				prompt[j] = int32((j*17 + i*5) % v)
			}
			if _, err := b.Step(context.Background(), m, precision.FP8, kv, &kernels.Batch{Seqs: []kernels.Seq{{Tokens: prompt, Blocks: blocks}}}); err != nil {
				t.Fatal(err)
			}
			seqs[i] = kernels.Seq{Tokens: []int32{int32(i + 1)}, Pos: len(prompt), Blocks: blocks, Want: kernels.WantLogits | kernels.WantSample}
		}
		var logits [][]float32
		for range 4 {
			outs, err := b.Step(context.Background(), m, precision.FP8, kv, &kernels.Batch{Seqs: seqs})
			if err != nil {
				t.Fatal(err)
			}
			for i := range seqs {
				logits = append(logits, outs[i].Logits)
				seqs[i].Pos++
				seqs[i].Tokens = []int32{outs[i].Token}
			}
		}
		return logits
	}
	got, want := run(ring), run(plain)
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("step %d sequence %d: logits with the _ring entry points differ from the plain ones' (rel L2 %.3g)", i/3, i%3, relL2(got[i], want[i]))
		}
	}
}

// TestLMAttnPrefillSteps prefills prompts through whole models with the
// prefill chunks' attention on gbx_attn_prefill (the default)
// and on the decode kernels, head dim 128 at bf16, fp16 and fp8 and 64 at bf16: the
// last position's logits agree within the attention's BF16 rounding, and
// are not the same bits (the prefill kernel ran: it sums in another
// order). Then a mixed step — two sequences decoding, then the chunk of a
// third — on both: the decoding rows' logits are the same bits (they stay
// on the decode kernels), the chunk's within the rounding.
func TestLMAttnPrefillSteps(t *testing.T) {
	b := newTestBackend(t, Config{})
	if m := b.Info().Major; m < 8 {
		t.Skipf("compute capability %d: gbx_attn_prefill needs 8.0", m)
	}
	ctx := context.Background()
	for dim, precs := range map[int][]precision.Format{64: {precision.BF16}, 128: {precision.BF16, precision.FP16, precision.FP8}} {
		m := lmSynth(t, lm.Config{Arch: lm.Llama, Hidden: 256, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: dim, Intermediate: 512,
			Vocab: 1024, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 1024, BOS: lm.NoToken}, uint64(dim))
		toks := kt.RandTokens(5, 150, m.Config.Vocab)
		for _, p := range precs {
			// Measured on the emulator: bf16 0.003–0.004, fp16 0.0006–0.0007,
			// fp8 0.018–0.034 (the attention's differences move the next
			// layers' E4M3 operands by a code here and there).
			tol := map[precision.Format]float64{precision.BF16: 1e-2, precision.FP16: 1e-2, precision.FP8: 6e-2}[p]
			// with runs f with prefill attention on or off, then as it was.
			with := func(on bool, f func()) {
				var was bool
				_ = b.do(ctx, func(d *devState) error { was, d.attnPrefill = d.attnPrefill, on; return nil })
				defer b.do(ctx, func(d *devState) error { d.attnPrefill = was; return nil })
				f()
			}
			run := func(on bool) (logits []float32) {
				with(on, func() { logits = kt.NewSession(t, b, m, p, 16).PrefillLogits(toks) })
				return logits
			}
			want, got := run(false), run(true)
			if slices.Equal(got, want) {
				t.Errorf("head dim %d at %s: the same bits with gbx_attn_prefill as without: did it run?", dim, p)
			}
			e := kt.RelL2(got, kt.Widen(want))
			t.Logf("head dim %d at %s: logits with gbx_attn_prefill rel L2 %.3g from the decode kernels'", dim, p, e)
			if !(e <= tol) {
				t.Errorf("head dim %d at %s: logits with gbx_attn_prefill rel L2 %.3g from the decode kernels', want <= %g", dim, p, e, tol)
			}
			// The decoding sequences' prompts are prefilled with it off
			// both times (their caches then hold the same bits).
			mixed := func(on bool) (outs []kernels.SeqOut) {
				s := kt.NewSession(t, b, m, p, 40)
				var seqs []kernels.Seq
				with(false, func() {
					for i := range 2 {
						blocks := s.Alloc(60)
						s.Step(kernels.Seq{Tokens: toks[10*i : 10*i+40], Blocks: blocks})
						seqs = append(seqs, kernels.Seq{Tokens: toks[100+i : 101+i], Pos: 40, Blocks: blocks, Want: kernels.WantLogits})
					}
				})
				seqs = append(seqs, kernels.Seq{Tokens: toks[:77], Blocks: s.Alloc(77), Want: kernels.WantLogits})
				with(on, func() { outs = s.Step(seqs...) })
				return outs
			}
			mw, mg := mixed(false), mixed(true)
			for i := range 2 {
				if !slices.Equal(mg[i].Logits, mw[i].Logits) {
					t.Errorf("head dim %d at %s, a mixed step: decoding sequence %d's logits differ with gbx_attn_prefill on", dim, p, i)
				}
			}
			if slices.Equal(mg[2].Logits, mw[2].Logits) {
				t.Errorf("head dim %d at %s, a mixed step: the chunk's logits the same bits with gbx_attn_prefill as without: did it run?", dim, p)
			}
			if e := kt.RelL2(mg[2].Logits, kt.Widen(mw[2].Logits)); !(e <= tol) {
				t.Errorf("head dim %d at %s, a mixed step: the chunk's logits rel L2 %.3g from the decode kernels', want <= %g", dim, p, e, tol)
			}
		}
	}
}

// TestLMPreload: once a language model's weights are loaded, none of its
// steps compiles a kernel module — a compile in mid-run holds every
// running sequence for seconds — on a backend whose cubin cache starts
// empty: after a first step of two prompts (its head runs on two rows) at
// bf16, fp8 and fp4, decode steps of one row (gbx_gemv; at fp4 the small
// NVFP4 kernel), a step of prompts and one of eight decoding rows compile
// nothing.
func TestLMPreload(t *testing.T) {
	b := newTestBackend(t, Config{})
	ctx := context.Background()
	compiles := func() (n int) {
		_ = b.do(ctx, func(d *devState) error { n = d.comp.compiles; return nil })
		return n
	}
	m := lmSynth(t, lm.Config{Arch: lm.Llama, Hidden: 256, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64, Intermediate: 512,
		Vocab: 512, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 1024, BOS: lm.NoToken}, 7)
	toks := kt.RandTokens(8, 200, m.Config.Vocab)
	for _, p := range []precision.Format{precision.BF16, precision.FP8, precision.FP4} {
		s := kt.NewSession(t, b, m, p, 40)
		var seqs []kernels.Seq
		for i := range 8 {
			seqs = append(seqs, kernels.Seq{Tokens: toks[20*i : 20*i+20], Blocks: s.Alloc(24), Want: kernels.WantSample})
		}
		s.Step(seqs[:2]...) // the weights load here
		before := compiles()
		decode := func(ss []kernels.Seq) {
			step := make([]kernels.Seq, len(ss))
			for i := range ss {
				n := ss[i].Pos + len(ss[i].Tokens)
				step[i] = kernels.Seq{Tokens: toks[n : n+1], Pos: n, Blocks: ss[i].Blocks, Want: kernels.WantSample}
				ss[i] = step[i]
			}
			s.Step(step...)
		}
		decode(seqs[:1])
		decode(seqs[:1])
		s.Step(seqs[2:]...)
		decode(seqs[1:2]) // seq 0 is two positions ahead
		decode(seqs[1:2])
		decode(seqs)
		if got := compiles() - before; got != 0 {
			t.Errorf("at %s: %d modules compiled by steps after the weights loaded; want 0", p, got)
		}
	}
}
