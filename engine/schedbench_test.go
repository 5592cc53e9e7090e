package engine

import (
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// BenchmarkDecodeStepHost is the scheduler's host work for one decode step
// of 256 sequences 1,000 to 3,000 tokens long (Plan, then Apply of sampled
// tokens): what the engine adds between two backend steps, with the GPU
// idle.
func BenchmarkDecodeStepHost(b *testing.B) {
	const n, prompt, gen = 256, 1000, 2000
	now := time.Unix(0, 0)
	outs := make([]kernels.SeqOut, n)
	// decoding returns a scheduler whose n sequences are all prefilled.
	decoding := func() *Scheduler {
		s := NewScheduler(Config{TokenBudget: 8192}, n*((prompt+gen)/kernels.KVBlockSize+1), kernels.KVBlockSize, prompt+gen)
		for i := range n {
			p := make([]int32, prompt)
			for j := range p {
				p[j] = int32(i*prompt + j)
			}
			if err := s.Add(&Seq{Prompt: p, MaxTokens: gen}, now); err != nil {
				b.Fatal(err)
			}
		}
		for len(s.waiting) > 0 {
			s.Apply(outs[:len(s.Plan(now).Seqs)], now)
		}
		return s
	}
	s := decoding()
	i := 0
	for b.Loop() {
		if len(s.running[0].gen) >= gen-1 {
			b.StopTimer()
			s = decoding()
			b.StartTimer()
		}
		if bt := s.Plan(now); len(bt.Seqs) != n {
			b.Fatalf("step %d: %d sequences, want a decode step of %d", i, len(bt.Seqs), n)
		}
		for k := range outs {
			outs[k].Token = int32(i % 1000)
		}
		s.Apply(outs, now)
		s.Ended()
		i++
	}
}
