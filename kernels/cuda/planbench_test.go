//go:build cgo

package cuda

import (
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
)

// BenchmarkStepHost is the host work of Step before the device's: the
// batch's check, its plan and the plan's packing into the pinned upload,
// for a decode step of 256 sequences at position 1,500 of Llama-3.1-8B
// (24,000 block ids). The GPU waits for it between steps. No device is
// needed.
func BenchmarkStepHost(b *testing.B) {
	const n, pos = 256, 1500
	m := &lm.Model{Name: "bench", Config: Llama31_8B}
	per := (pos + kvBlock) / kvBlock
	seqs := make([]kernels.Seq, n)
	for i := range seqs {
		bl := make([]int32, per)
		for j := range bl {
			bl[j] = int32(i*per + j)
		}
		seqs[i] = kernels.Seq{Tokens: []int32{1}, Pos: pos, Blocks: bl, Want: kernels.WantSample}
	}
	batch := &kernels.Batch{Seqs: seqs}
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if err := kernels.CheckStep(m, kvBlock, n*per, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plan", func(b *testing.B) {
		for b.Loop() {
			newLMPlan(seqs, m.Config.Vocab)
		}
	})
	p := newLMPlan(seqs, m.Config.Vocab)
	l := p.layout()
	buf := make([]byte, l.size)
	b.Run("pack", func(b *testing.B) {
		for b.Loop() {
			p.packInto(buf, l)
		}
	})
}
