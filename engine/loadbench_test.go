package engine

import (
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// BenchmarkFullLoadHost is the scheduler's host work over a whole
// full-load run as TestEngineBench (kernels/cuda) runs it on the GPU:
// 2,048 sequences of 1,000 prompt and 1,000 generated tokens, a cache for
// 512 of them, later ones added as room frees (Engine.Add's rule), every
// step planned and applied with sampled tokens. It reports the host's
// time a step, split by steps that prefilled and steps that only decoded.
func BenchmarkFullLoadHost(b *testing.B) {
	const conc, total, prompt, gen = 512, 2048, 1000, 1000
	per := (prompt + gen + kernels.KVBlockSize) / kernels.KVBlockSize
	now := time.Unix(0, 0)
	outs := make([]kernels.SeqOut, 2048)
	for b.Loop() {
		s := NewScheduler(Config{TokenBudget: 2048, MaxSeqs: conc}, conc*per, kernels.KVBlockSize, prompt+gen)
		added, tok := 0, int32(0)
		var preT, decT time.Duration
		preN, decN := 0, 0
		for added < total || s.Len() > 0 {
			for added < total && (s.Len() == 0 || s.committed(&Seq{Prompt: make([]int32, prompt), MaxTokens: gen}) <= s.Capacity()) {
				p := make([]int32, prompt)
				for j := range p {
					p[j] = int32(added*prompt + j)
				}
				if err := s.Add(&Seq{Prompt: p, MaxTokens: gen}, now); err != nil {
					b.Fatal(err)
				}
				added++
			}
			t0 := time.Now()
			bt := s.Plan(now)
			if bt == nil {
				b.Fatal("nothing planned with sequences queued")
			}
			for k := range bt.Seqs {
				tok++
				outs[k].Token = tok % 30000
			}
			pre := s.decodes < len(bt.Seqs)
			s.Apply(outs[:len(bt.Seqs)], now)
			s.Ended()
			if d := time.Since(t0); pre {
				preT, preN = preT+d, preN+1
			} else {
				decT, decN = decT+d, decN+1
			}
		}
		b.ReportMetric(float64(preT.Microseconds())/float64(max(preN, 1)), "µs/prefill-step")
		b.ReportMetric(float64(decT.Microseconds())/float64(max(decN, 1)), "µs/decode-step")
		b.ReportMetric(float64(preN+decN), "steps")
	}
}
