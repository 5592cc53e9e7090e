package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/precision"
)

// BenchmarkPrefixSharing runs n sequences of one 1,000-token prefix and a
// distinct 32-token suffix, generating 16 tokens each (greedy), through a
// fresh engine per iteration on the CPU backend, with prefix sharing on
// and off: the time to finish them all, the prompt tokens prefilled and
// taken from the cache, and the most KV blocks held at once.
func BenchmarkPrefixSharing(b *testing.B) {
	m, err := synth(2048)
	if err != nil {
		b.Fatal(err)
	}
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		b.Fatal(err)
	}
	const prefix, suffix, gen = 1000, 32, 16
	for _, n := range []int{16} {
		reqs := sharedPrefix(n, prefix, suffix, gen)
		for i := range reqs {
			reqs[i].samp = kernels.Sampling{}
		}
		blocks := n * ((prefix + suffix + gen + kernels.KVBlockSize - 1) / kernels.KVBlockSize)
		for _, off := range []bool{false, true} {
			name := fmt.Sprintf("seqs=%d/sharing=on", n)
			if off {
				name = fmt.Sprintf("seqs=%d/sharing=off", n)
			}
			b.Run(name, func(b *testing.B) {
				var prefilled, reused, peak int
				for range b.N {
					e, err := engine.New(be, m, precision.FP32, blocks, engine.Config{NoPrefixCache: off})
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan struct{})
					go func() { defer close(done); _ = e.Run(ctx) }()
					generate(b, e, reqs)
					cancel()
					<-done
					st := e.Stats()
					prefilled += st.PrefillTokens
					reused += st.ReusedTokens
					peak = max(peak, st.BlocksPeak)
					_ = e.Close()
				}
				b.ReportMetric(float64(prefilled)/float64(b.N), "prefilled/op")
				b.ReportMetric(float64(reused)/float64(b.N), "reused/op")
				b.ReportMetric(float64(peak), "peak-blocks")
			})
		}
	}
}
