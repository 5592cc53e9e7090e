package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// BenchmarkFullLoadHost is the scheduler's host work over a whole
// full-load run as TestEngineBench (kernels/cuda) runs it on the GPU:
// 2,048 sequences of 1,000 prompt and 1,000 generated tokens, a cache for
// 512 of them, later ones added as room frees (Engine.Add's rule), every
// step planned and applied with sampled tokens; and the same with short
// prompts (32 tokens, 256 generated), where the waiting queue the rule
// admits is thousands deep. It reports the host's time a step, split by
// steps that prefilled and steps that only decoded, and the time of the
// admission checks (Add's and each step's).
func BenchmarkFullLoadHost(b *testing.B) {
	for _, c := range []struct{ conc, prompt, gen int }{{512, 1000, 1000}, {512, 32, 256}, {4096, 32, 256}} {
		b.Run(fmt.Sprintf("conc=%d,prompt=%d,gen=%d", c.conc, c.prompt, c.gen), func(b *testing.B) { fullLoadHost(b, c.conc, c.prompt, c.gen) })
	}
}

func fullLoadHost(b *testing.B, conc, prompt, gen int) {
	total := 4 * conc
	per := (prompt + gen + kernels.KVBlockSize) / kernels.KVBlockSize
	now := time.Unix(0, 0)
	outs := make([]kernels.SeqOut, 2048+conc)
	for b.Loop() {
		s := NewScheduler(Config{TokenBudget: 2048, MaxSeqs: conc}, conc*per, kernels.KVBlockSize, prompt+gen)
		added, tok := 0, int32(0)
		var preT, decT, admitT time.Duration
		preN, decN := 0, 0
		rowCounts := map[int]bool{} // a step's rows: a new count is a new GEMM shape (cuBLASLt plans) on the GPU
		for added < total || s.Len() > 0 {
			t0 := time.Now()
			for ; added < total; added++ {
				p := make([]int32, prompt)
				for j := range p {
					p[j] = int32(added*prompt + j)
				}
				q := &Seq{Prompt: p, MaxTokens: gen}
				if s.Len() > 0 && s.committed(q) > s.Capacity() {
					break // Engine.Add would wait for room
				}
				if err := s.Add(q, now); err != nil {
					b.Fatal(err)
				}
			}
			_ = s.Committed() // the engine's freed() after each step
			admitT += time.Since(t0)
			t0 = time.Now()
			bt := s.Plan(now)
			if bt == nil {
				b.Fatal("nothing planned with sequences queued")
			}
			rows := 0
			for k := range bt.Seqs {
				rows += len(bt.Seqs[k].Tokens)
				tok++
				outs[k].Token = tok % 30000
			}
			rowCounts[rows] = true
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
		b.ReportMetric(float64(len(rowCounts)), "row-counts")
		b.ReportMetric(float64(admitT.Microseconds())/float64(preN+decN), "µs-admission/step")
	}
}
