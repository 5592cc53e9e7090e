//go:build cgo

package cuda

import (
	"context"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
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

// BenchmarkPlanCreate is what a step of a row count not met before costs
// the host before its first launch: cuBLASLt plans for Llama-3.1-8B's
// four layer GEMMs and its head, each op one new row count (a
// continuous-batching run of 1,000 in / 1,000 out meets ~340 counts,
// engine's BenchmarkFullLoadHost). Needs a device.
func BenchmarkPlanCreate(b *testing.B) {
	be, err := New(Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Skipf("no CUDA device: %v", err)
	}
	defer be.Close()
	shapes := [][2]int{{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}} // n, k
	for _, p := range []precision.Format{precision.FP8, precision.BF16} {
		b.Run(p.String(), func(b *testing.B) {
			err := be.do(context.Background(), func(d *devState) error {
				ws, err := cuMalloc(4 * 128256)
				if err != nil {
					return err
				}
				defer cuFree(ws)
				const most = 2560
				if err := d.growScaleVec(most); err != nil {
					return err
				}
				dl := &devLayer{wscale: ws}
				rows := 0
				for b.Loop() {
					rows = rows%most + 1
					if rows == 1 {
						b.StopTimer()
						d.evictPlans(0)
						b.StartTimer()
					}
					for _, sh := range shapes {
						if _, err := d.plan(planKey{p: p, rows: rows, n: sh[0], k: sh[1]}, dl); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
