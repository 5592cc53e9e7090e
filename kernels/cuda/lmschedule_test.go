//go:build cgo

package cuda_test

import (
	"math"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cuda"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestLMScheduleInvariant decodes lmTestConfigs' models (head dims 24 and
// 128) at bf16, fp16, fp8 and fp4 on the shared backend, which replays
// CUDA graphs and launches with programmatic dependent launch, and on one
// with neither: the kernels and their arithmetic are the same, only when
// and how they are launched differs, so every position's logits must be
// the same bits. Where they are not, it says from which position and
// which of the two (graphs, PDL) alone reproduces the difference: a
// kernel that reads memory its predecessor has not finished writing, or a
// captured step that differs from the eager one.
func TestLMScheduleInvariant(t *testing.T) {
	g := gpuLM(t)
	open := func(c cuda.Config) kernels.LM {
		b, err := cuda.New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	plain := open(cuda.Config{NoGraphs: true, NoPDL: true})
	var graphsOnly, pdlOnly kernels.LM // opened if needed
	const n = 24                       // positions: two eager steps, then graph replays
	for _, tc := range lmTestConfigs() {
		m := lmModelNamed(t, tc.name)
		v := m.Config.Vocab
		toks := kt.RandTokens(3, n, v)
		// first is the first position whose logits differ, or -1.
		first := func(a, b []float32) (int, float64) {
			for p := range n {
				var d, s float64
				same := true
				for i := p * v; i < (p+1)*v; i++ {
					x, y := float64(a[i]), float64(b[i])
					same = same && math.Float32bits(a[i]) == math.Float32bits(b[i])
					d, s = d+(x-y)*(x-y), s+y*y
				}
				if !same {
					return p, math.Sqrt(d / s)
				}
			}
			return -1, 0
		}
		for _, p := range []precision.Format{precision.BF16, precision.FP16, precision.FP8, precision.FP4} {
			want := kt.NewSession(t, plain, m, p, 4).DecodeLogits(toks)
			got := kt.NewSession(t, g, m, p, 4).DecodeLogits(toks)
			pos, e := first(got, want)
			if pos < 0 {
				continue
			}
			if graphsOnly == nil {
				graphsOnly, pdlOnly = open(cuda.Config{NoPDL: true}), open(cuda.Config{NoGraphs: true})
			}
			pg, _ := first(kt.NewSession(t, graphsOnly, m, p, 4).DecodeLogits(toks), want)
			pp, _ := first(kt.NewSession(t, pdlOnly, m, p, 4).DecodeLogits(toks), want)
			t.Errorf("%s at %s: logits with graphs and PDL differ from eager launches without PDL from position %d (rel L2 %.3g there); first differing position with graphs alone %d, with PDL alone %d (-1: none)",
				tc.name, p, pos, e, pg, pp)
		}
	}
}
