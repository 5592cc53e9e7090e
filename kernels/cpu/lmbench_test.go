package cpu_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// BenchmarkLMDecode measures decode steps: batch sequences, each with 64
// tokens of context already in the cache, feeding one token per step (the
// same position again each iteration, so the context stays 64). Models: the
// tests' tiny llama (0.1 M parameters) and a small one (hidden 256, 4
// layers, vocab 4096: 4.2 M parameters).
//
//	go test ./kernels/cpu -run '^$' -bench LMDecode
func BenchmarkLMDecode(b *testing.B) {
	small := lm.Config{Arch: lm.Llama, Hidden: 256, Layers: 4, Heads: 8, KVHeads: 4, HeadDim: 32, Intermediate: 768,
		Vocab: 4096, RMSEps: 1e-5, RopeTheta: 5e5, MaxPositions: 2048, BOS: lm.NoToken}
	dir := filepath.Join(b.TempDir(), "small")
	if err := lm.Synth(dir, lm.SynthConfig{Config: small, DType: model.DTypeBF16}); err != nil {
		b.Fatal(err)
	}
	smallModel, err := lm.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	be := newBackend(b, 0)
	const context = 64
	for _, mc := range []struct {
		name string
		m    *lm.Model
	}{{"tiny", kt.LMModel(b, lm.Llama)}, {"small", smallModel}} {
		for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
			for _, batch := range []int{1, 8} {
				b.Run(fmt.Sprintf("%s/%s/batch=%d", mc.name, p, batch), func(b *testing.B) {
					s := kt.NewSession(b, be, mc.m, p, batch*(context/16+1))
					seqs := make([]kernels.Seq, batch)
					for i := range seqs {
						blocks := s.Alloc(context + 1)
						s.Step(kernels.Seq{Tokens: kt.RandTokens(uint64(i), context, mc.m.Config.Vocab), Blocks: blocks})
						seqs[i] = kernels.Seq{Tokens: []int32{1}, Pos: context, Blocks: blocks, Want: kernels.WantSample}
					}
					b.ReportAllocs()
					for b.Loop() {
						s.Step(seqs...)
					}
					b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		}
	}
}
