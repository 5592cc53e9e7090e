package cuda_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// The language-model tests beyond the shared suite (kerneltest.RunLM, run
// by TestConformance): the CUDA backend's Step against the CPU backend's
// emulation of the same precision and against the float64 reference
// (cpu.LMReference), on more models and batch shapes. They skip without a
// device.

// lmRefBands are the accepted relative L2 errors of all-position logits
// against LMReference: the CPU backend's own bands (kernels/cpu's
// lmBands, about 3× its measured errors), since CUDA follows the same
// numerics. The lower bounds are dropped: a backend may be more accurate.
var lmRefBands = map[precision.Format]float64{
	precision.FP32: 2e-6,
	precision.TF32: 1.8e-3,
	precision.FP16: 4.7e-3,
	precision.BF16: 1.6e-2,
	precision.FP8:  1.7e-1,
	precision.FP4:  4.7e-1,
}

// lmEmuBands are the accepted relative L2 distances between CUDA's logits
// and the CPU emulation's at the same precision. Derivation: the two differ
// first by the order of float sums (cuBLASLt, float attention instead of
// the CPU's double): about 1e-7 relative per layer. Such a difference
// flips a rounding of an activation (to the linear's operand format, or
// of K and V to the cache's format) with probability about 1e-7 / (the
// format's relative step), and a flip moves that value by one step:
//
//	fp32   no rounding to flip: ~1e-6 after two layers and the head  → 1e-5
//	tf32   steps of 2^-11 (operands; fp32 cache), as fp16            → 2e-3
//	fp16   steps of 2^-11, and the bf16 cache's 2^-8                  → 2e-3
//	bf16   steps of 2^-8 everywhere                                   → 5e-3
//	fp4    bf16 activations: as bf16; its weights are identical bytes → 5e-3
//	fp8    E4M3 steps of 2^-4, and fp8 tensor cores accumulate unlike
//	       fp32 (~1.2e-4 per product, docs/precision.md): many flips,
//	       each 6 %; 2e-2 measured through two tensor-model layers     → 6e-2
//
// These are derived, not yet measured on a GPU: the tests log every
// measured value so the first GPU run can tighten them.
var lmEmuBands = map[precision.Format]float64{
	precision.FP32: 1e-5,
	precision.TF32: 2e-3,
	precision.FP16: 2e-3,
	precision.BF16: 5e-3,
	precision.FP8:  6e-2,
	precision.FP4:  5e-3,
}

// lmTestModel is a random model of the suite.
type lmTestModel struct {
	name string
	m    *lm.Model
}

// lmTestConfigs are the models beyond kerneltest's three (LMModel: llama
// with llama3 RoPE scaling and a tied head stored as bf16, qwen2 with q/k/v
// biases, qwen3 with q/k norms and head_dim ≠ hidden/heads): one with
// widths that no fp8 tensor-core kernel and no fast NVFP4 path takes
// (stored as f16, 3 query heads per KV head), and one with the attention
// shape of Llama-3.1-8B (head_dim 128, 4 query heads per KV head, an
// untied head).
func lmTestConfigs() []struct {
	name  string
	c     lm.Config
	dtype string
} {
	odd := lm.Config{Arch: lm.Llama, Hidden: 72, Layers: 2, Heads: 3, KVHeads: 1, HeadDim: 24, Intermediate: 100, Vocab: 250,
		RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 512, BOS: lm.NoToken}
	wide := lm.Config{Arch: lm.Llama, Hidden: 128, Layers: 1, Heads: 8, KVHeads: 2, HeadDim: 128, Intermediate: 256, Vocab: 512,
		RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 1024, BOS: lm.NoToken,
		RopeScaling: &lm.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 256}}
	return []struct {
		name  string
		c     lm.Config
		dtype string
	}{{"odd", odd, model.DTypeF16}, {"wide", wide, model.DTypeBF16}}
}

// lmTestModels loads the suite's models once per test binary.
var lmTestModels = sync.OnceValues(func() ([]lmTestModel, error) {
	root, err := os.MkdirTemp("", "gearbox-cuda-lm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	var ms []lmTestModel
	for i, tc := range lmTestConfigs() {
		dir := filepath.Join(root, tc.name)
		if err := lm.Synth(dir, lm.SynthConfig{Config: tc.c, DType: tc.dtype, Seed: uint64(i + 11)}); err != nil {
			return nil, fmt.Errorf("%s: %w", tc.name, err)
		}
		m, err := lm.Load(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tc.name, err)
		}
		ms = append(ms, lmTestModel{tc.name, m})
	}
	return ms, nil
})

// lmModelsT returns kerneltest's three models and lmTestConfigs'.
func lmModelsT(t testing.TB) []lmTestModel {
	t.Helper()
	ms, err := lmTestModels()
	if err != nil {
		t.Fatal(err)
	}
	var all []lmTestModel
	for _, a := range lm.Archs {
		all = append(all, lmTestModel{string(a), kt.LMModel(t, a)})
	}
	return append(all, ms...)
}

func lmModelNamed(t testing.TB, name string) *lm.Model {
	t.Helper()
	for _, tm := range lmModelsT(t) {
		if tm.name == name {
			return tm.m
		}
	}
	t.Fatalf("no test model %q", name)
	return nil
}

// gpuLM returns the CUDA backend as a kernels.LM, or skips.
func gpuLM(t testing.TB) kernels.LM {
	t.Helper()
	return gpu(t).(kernels.LM)
}

var cpuLMBackend = sync.OnceValues(func() (*cpu.Backend, error) { return cpu.New(cpu.Config{}) })

func cpuLM(t testing.TB) kernels.LM {
	t.Helper()
	b, err := cpuLMBackend()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// worstRow describes where two sets of rows (vocab values each) differ
// most: the row with the largest relative L2 distance and its largest
// element difference.
func worstRow(got, want []float32, vocab int) string {
	wr, we := -1, -1.0
	for r := 0; r*vocab < len(want); r++ {
		if e := kt.RelL2(got[r*vocab:(r+1)*vocab], kt.Widen(want[r*vocab:(r+1)*vocab])); !(e <= we) {
			wr, we = r, e
		}
	}
	if wr < 0 {
		return "no rows"
	}
	g, w := got[wr*vocab:(wr+1)*vocab], want[wr*vocab:(wr+1)*vocab]
	at, d := 0, -1.0
	for i := range w {
		if x := math.Abs(float64(g[i] - w[i])); !(x <= d) {
			at, d = i, x
		}
	}
	return fmt.Sprintf("worst position %d (rel L2 %.3g): token %d = %g, want %g", wr, we, at, g[at], w[at])
}

// TestLMAgainstCPU decodes 40 tokens through the paged cache at every
// precision on every test model and compares every position's logits with
// the CPU backend's emulation of the same precision and with the float64
// reference.
func TestLMAgainstCPU(t *testing.T) {
	g, c := gpuLM(t), cpuLM(t)
	for _, tm := range lmModelsT(t) {
		m, v := tm.m, tm.m.Config.Vocab
		toks := kt.RandTokens(1, 40, v)
		ref, err := cpu.LMReference(m, toks)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range precision.All {
			got := kt.NewSession(t, g, m, p, 8).DecodeLogits(toks)
			want := kt.NewSession(t, c, m, p, 8).DecodeLogits(toks)
			eRef, eCPU, eEmu := kt.RelL2(got, ref), kt.RelL2(want, ref), kt.RelL2(got, kt.Widen(want))
			t.Logf("%-5s %-4s vs reference %.3g (cpu %.3g, band %.2g); vs cpu emulation %.3g (band %.2g)", tm.name, p, eRef, eCPU, lmRefBands[p], eEmu, lmEmuBands[p])
			if !(eRef <= lmRefBands[p]) {
				t.Errorf("%s at %s: logits vs float64 reference rel L2 %.3g, want <= %.2g (cpu: %.3g)", tm.name, p, eRef, lmRefBands[p], eCPU)
			}
			if !(eEmu <= lmEmuBands[p]) {
				t.Errorf("%s at %s: logits vs CPU emulation rel L2 %.3g, want <= %.2g; %s", tm.name, p, eEmu, lmEmuBands[p], worstRow(got, want, v))
			}
		}
	}
}

// TestLMPrefillDecode: the last logits of a prefill of n tokens, in one
// step or in chunks of 5, agree with decoding the same tokens one by one
// (cuBLASLt's kernels depend on the number of rows, so only within the
// emulation bands; the attention, norms and conversions are row by row).
func TestLMPrefillDecode(t *testing.T) {
	g := gpuLM(t)
	for _, tm := range lmModelsT(t) {
		m, v := tm.m, tm.m.Config.Vocab
		toks := kt.RandTokens(2, 37, v)
		for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
			s := kt.NewSession(t, g, m, p, 64)
			decoded := s.DecodeLogits(toks)
			check := func(what string, got, want []float32) {
				e := kt.RelL2(got, kt.Widen(want))
				t.Logf("%-5s %-4s %s: rel L2 %.3g to decoding (bit-identical: %v)", tm.name, p, what, e, slices.Equal(got, want))
				if !(e <= lmEmuBands[p]) {
					t.Errorf("%s at %s: %s differs from decoding the same tokens: rel L2 %.3g, want <= %.2g; %s", tm.name, p, what, e, lmEmuBands[p], worstRow(got, want, v))
				}
			}
			for _, n := range []int{1, 2, 16, 17, 37} {
				check(fmt.Sprintf("prefill of %d tokens", n), s.PrefillLogits(toks[:n]), decoded[(n-1)*v:n*v])
			}
			blocks := s.Alloc(len(toks))
			var last []float32
			for pos := 0; pos < len(toks); pos += 5 {
				chunk := toks[pos:min(pos+5, len(toks))]
				last = s.Step(kernels.Seq{Tokens: chunk, Pos: pos, Blocks: blocks, Want: kernels.WantLogits})[0].Logits
			}
			check("prefill in chunks of 5", last, decoded[(len(toks)-1)*v:])
		}
	}
}

// TestLMLongContext prefills 300 tokens of the model with Llama-3.1-8B's
// attention shape (three attention splits), scoring every token, then
// decodes 20 more, against the CPU. A step of 300 rows takes the paths
// of large batches: fp8's cuBLASLt outer-vector scales (per channel, per
// token) with the bias fused, fp4's bf16 GEMM with per-channel tensor
// scales in the epilogue.
func TestLMLongContext(t *testing.T) {
	g, c := gpuLM(t), cpuLM(t)
	m := lmModelNamed(t, "wide")
	v := m.Config.Vocab
	toks := kt.RandTokens(3, 320, v)
	for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
		gs, cs := kt.NewSession(t, g, m, p, 32), kt.NewSession(t, c, m, p, 32)
		gb, cb := gs.Alloc(len(toks)), cs.Alloc(len(toks))
		seq := func(blocks []int32) kernels.Seq {
			return kernels.Seq{Tokens: toks[:300], Blocks: blocks, Want: kernels.WantLogits | kernels.WantLogprobs | kernels.WantTarget, Target: toks[300]}
		}
		got, want := gs.Step(seq(gb))[0], cs.Step(seq(cb))[0]
		if len(got.Logprobs) != 300 {
			t.Fatalf("%s: %d log-probabilities, want 300 (299 scored tokens and the target)", p, len(got.Logprobs))
		}
		e := kt.RelL2(got.Logprobs, kt.Widen(want.Logprobs))
		t.Logf("wide %s: prefill of 300: log-probabilities rel L2 %.3g to cpu; last logits %.3g", p, e, kt.RelL2(got.Logits, kt.Widen(want.Logits)))
		if !(e <= 2*lmEmuBands[p]) {
			i := 0
			for j := range got.Logprobs {
				if math.Abs(float64(got.Logprobs[j]-want.Logprobs[j])) > math.Abs(float64(got.Logprobs[i]-want.Logprobs[i])) {
					i = j
				}
			}
			t.Errorf("wide at %s: teacher-forced log-probabilities rel L2 %.3g to cpu, want <= %.2g; worst at position %d: %g, want %g", p, e, 2*lmEmuBands[p], i, got.Logprobs[i], want.Logprobs[i])
		}
		var gl, cl []float32
		for i := 300; i < len(toks); i++ {
			s := func(blocks []int32) kernels.Seq {
				return kernels.Seq{Tokens: toks[i : i+1], Pos: i, Blocks: blocks, Want: kernels.WantLogits}
			}
			gl = append(gl, gs.Step(s(gb))[0].Logits...)
			cl = append(cl, cs.Step(s(cb))[0].Logits...)
		}
		e = kt.RelL2(gl, kt.Widen(cl))
		t.Logf("wide %s: decode at 300..319: logits rel L2 %.3g to cpu", p, e)
		if !(e <= lmEmuBands[p]) {
			t.Errorf("wide at %s: decode after a 300-token prefill: logits rel L2 %.3g to cpu, want <= %.2g; %s (position 0 = 300)", p, e, lmEmuBands[p], worstRow(gl, cl, v))
		}
	}
}

// TestLMMixedBatch runs one step holding a prefill that samples (with its
// logits and hidden state), a decode step with alternatives, a
// teacher-forced chunk with a target and a sequence that wants only its
// hidden state, on scrambled block tables, on both backends, and compares
// every output.
func TestLMMixedBatch(t *testing.T) {
	g, c := gpuLM(t), cpuLM(t)
	for _, tm := range lmModelsT(t) {
		m, v := tm.m, tm.m.Config.Vocab
		for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
			run := func(b kernels.LM) []kernels.SeqOut {
				s := kt.NewSession(t, b, m, p, 24)
				a, bb, cc, d := s.Alloc(20), s.Alloc(10), s.Alloc(12), s.Alloc(6)
				prior := kt.RandTokens(4, 9, v)
				s.Step(kernels.Seq{Tokens: prior, Blocks: bb}) // B's prompt, a step before
				return s.Step(
					kernels.Seq{Tokens: kt.RandTokens(5, 20, v), Blocks: a, Want: kernels.WantSample | kernels.WantLogits | kernels.WantHidden},
					kernels.Seq{Tokens: []int32{7}, Pos: 9, Blocks: bb, Want: kernels.WantSample, Sampling: kernels.Sampling{TopLogprobs: 5}},
					kernels.Seq{Tokens: kt.RandTokens(6, 12, v), Blocks: cc, Want: kernels.WantLogprobs | kernels.WantTarget, Target: 3},
					kernels.Seq{Tokens: kt.RandTokens(7, 6, v), Blocks: d, Want: kernels.WantHidden},
				)
			}
			got, want := run(g), run(c)
			band := lmEmuBands[p]
			name := fmt.Sprintf("%s at %s", tm.name, p)
			cmp := func(what string, x, y []float32, tol float64) {
				if len(x) != len(y) {
					t.Errorf("%s: %s: %d values, want %d", name, what, len(x), len(y))
					return
				}
				e := kt.RelL2(x, kt.Widen(y))
				t.Logf("%s: %s rel L2 %.3g to cpu", name, what, e)
				if !(e <= tol) {
					t.Errorf("%s: %s rel L2 %.3g to cpu, want <= %.2g", name, what, e, tol)
				}
			}
			cmp("A's logits", got[0].Logits, want[0].Logits, band)
			cmp("A's hidden state", got[0].Hidden, want[0].Hidden, band)
			cmp("C's log-probabilities", got[2].Logprobs, want[2].Logprobs, 2*band)
			cmp("D's hidden state", got[3].Hidden, want[3].Hidden, band)
			// The sampled tokens are the argmax of each backend's own logits,
			// so they agree where the logits do; at fp32 exactly.
			if got[0].Token != kernels.Argmax(got[0].Logits) {
				t.Errorf("%s: A sampled %d greedily; its own logits' argmax is %d", name, got[0].Token, kernels.Argmax(got[0].Logits))
			}
			if p == precision.FP32 {
				for i := range 2 {
					if got[i].Token != want[i].Token {
						t.Errorf("%s: seq %d sampled %d, cpu %d", name, i, got[i].Token, want[i].Token)
					}
				}
				if len(got[1].Top) != 5 || got[1].Top[0].Token != got[1].Token {
					t.Errorf("%s: B's alternatives %v, want 5 starting with its token %d", name, got[1].Top, got[1].Token)
				}
				for j := range min(len(got[1].Top), len(want[1].Top)) {
					if got[1].Top[j].Token != want[1].Top[j].Token || math.Abs(float64(got[1].Top[j].Logprob-want[1].Top[j].Logprob)) > 1e-4 {
						t.Errorf("%s: B's alternative %d = %v, cpu %v", name, j, got[1].Top[j], want[1].Top[j])
					}
				}
			}
			if got[1].Logits != nil || got[3].Logits != nil || got[2].Hidden != nil || got[3].Logprobs != nil {
				t.Errorf("%s: outputs that were not asked for came back", name)
			}
		}
	}
}

// TestLMGreedyFP32: greedy generation at fp32 gives the CPU's tokens.
func TestLMGreedyFP32(t *testing.T) {
	g, c := gpuLM(t), cpuLM(t)
	for _, tm := range lmModelsT(t) {
		m := tm.m
		prompt := kt.RandTokens(8, 8, m.Config.Vocab)
		got := kt.NewSession(t, g, m, precision.FP32, 8).Generate(prompt, 32)
		want := kt.NewSession(t, c, m, precision.FP32, 8).Generate(prompt, 32)
		for i := range want {
			if got[i] != want[i] {
				// How close the CPU's two best logits were at that step says
				// whether this is a near-tie or a bug.
				all := append(slices.Clone(prompt), want[:i]...)
				l := kt.NewSession(t, c, m, precision.FP32, 8).PrefillLogits(all)
				ids := kernels.TopLogprobs(l, kernels.LogSumExp(l), 2)
				t.Errorf("%s: generated token %d is %d, cpu %d (cpu's two best: %v)", tm.name, i, got[i], want[i], ids)
				break
			}
		}
	}
}

// TestLMSampledFromOwnLogits: seeded sampling on the GPU picks what
// kernels.Sample picks from the logits the GPU returns, at several
// temperatures, top-k and top-p; the log-probability and alternatives are
// those of the same logits.
func TestLMSampledFromOwnLogits(t *testing.T) {
	g := gpuLM(t)
	m := lmModelNamed(t, "qwen3")
	s := kt.NewSession(t, g, m, precision.BF16, 64)
	prompt := kt.RandTokens(9, 12, m.Config.Vocab)
	for i, sp := range []kernels.Sampling{
		{Temperature: 1, Seed: 1, TopLogprobs: 3}, {Temperature: 0.7, TopK: 20, Seed: 2}, {Temperature: 1.3, TopP: 0.8, Seed: 3, TopLogprobs: 20},
		{Temperature: 0.9, TopK: 50, TopP: 0.95, Seed: 4}, {Temperature: 0, Seed: 5, TopLogprobs: 1},
	} {
		o := s.Step(kernels.Seq{Tokens: prompt, Blocks: s.Alloc(len(prompt)), Want: kernels.WantSample | kernels.WantLogits, Sampling: sp})[0]
		lse := kernels.LogSumExp(o.Logits)
		if want := kernels.Sample(o.Logits, sp, len(prompt)); o.Token != want {
			t.Errorf("case %d %+v: sampled %d, kernels.Sample of the returned logits gives %d", i, sp, o.Token, want)
		}
		if want := float32(float64(o.Logits[o.Token]) - lse); math.Abs(float64(o.Logprob-want)) > 1e-5 {
			t.Errorf("case %d: log-probability %g, want %g", i, o.Logprob, want)
		}
		top := kernels.TopLogprobs(o.Logits, lse, sp.TopLogprobs)
		if len(o.Top) != len(top) {
			t.Errorf("case %d: %d alternatives, want %d", i, len(o.Top), len(top))
			continue
		}
		for j := range top {
			if o.Top[j].Token != top[j].Token || math.Abs(float64(o.Top[j].Logprob-top[j].Logprob)) > 1e-5 {
				t.Errorf("case %d: alternative %d = %v, want %v", i, j, o.Top[j], top[j])
			}
		}
	}
}

// TestLMErrors: the CUDA backend's own errors, beyond the shared suite's
// (kerneltest's "errors"): caches of another backend, precision or model,
// closed caches, and shapes its kernels do not take.
func TestLMErrors(t *testing.T) {
	g := gpuLM(t)
	m, other := lmModelNamed(t, "llama"), lmModelNamed(t, "qwen2")
	kv := kt.NewSession(t, g, m, precision.BF16, 4).KV
	otherKV := kt.NewSession(t, g, other, precision.BF16, 4).KV
	fp32KV := kt.NewSession(t, g, m, precision.FP32, 4).KV
	closed, err := g.NewKVCache(m, precision.BF16, 4)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	cpuKV := kt.NewSession(t, cpuLM(t), m, precision.BF16, 4).KV
	ok := &kernels.Batch{Seqs: []kernels.Seq{{Tokens: []int32{1, 2}, Blocks: []int32{0}}}}
	for _, tc := range []struct {
		name string
		kv   kernels.KVCache
		msg  string
	}{
		{"cpu's cache", cpuKV, "not the CUDA backend's"},
		{"other model's cache", otherKV, "another model or precision"},
		{"other precision's cache", fp32KV, "another model or precision"},
		{"closed cache", closed, "closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Step(context.Background(), m, precision.BF16, tc.kv, ok)
			if !errors.Is(err, kernels.ErrInvalidBatch) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got error %v; want ErrInvalidBatch saying %q", err, tc.msg)
			}
		})
	}
	if _, err := g.NewKVCache(m, precision.BF16, 1<<40); !errors.Is(err, kernels.ErrInvalidBatch) {
		t.Errorf("NewKVCache(1<<40 blocks): got %v; want %v", err, kernels.ErrInvalidBatch)
	}
	// Shapes the attention kernel does not take.
	for _, edit := range []struct {
		field string
		f     func(c *lm.Config)
	}{
		{"head_dim 20", func(c *lm.Config) { c.HeadDim = 20 }},
		{"17 query heads per KV head", func(c *lm.Config) { c.Heads, c.KVHeads = 17, 1 }},
	} {
		bad := *m
		edit.f(&bad.Config)
		bad.Name = "unsupported"
		if _, err := g.NewKVCache(&bad, precision.BF16, 1); !errors.Is(err, kernels.ErrUnsupported) || !strings.Contains(err.Error(), edit.field) {
			t.Errorf("NewKVCache with %s: got %v; want ErrUnsupported naming it", edit.field, err)
		}
	}
	if out, err := g.Step(context.Background(), m, precision.BF16, kv, &kernels.Batch{}); err != nil || len(out) != 0 {
		t.Errorf("empty batch: %v, %v; want no outputs and no error", out, err)
	}
}
