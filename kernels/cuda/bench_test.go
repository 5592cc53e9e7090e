package cuda_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cuda"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// BenchmarkForward is the whole Forward (host copies, upload, every layer,
// download) of a 1024→4096→1024 gelu MLP, per precision and batch size,
// replaying CUDA graphs (the default).
func BenchmarkForward(b *testing.B) {
	g, err := cudaBackend()
	if err != nil {
		b.Skipf("no CUDA device: %v", err)
	}
	benchForward(b, g)
}

// BenchmarkForwardEager is BenchmarkForward without CUDA graphs.
func BenchmarkForwardEager(b *testing.B) {
	g, err := cuda.New(cuda.Config{NoGraphs: true})
	if err != nil {
		b.Skipf("no CUDA device: %v", err)
	}
	defer g.Close()
	benchForward(b, g)
}

// BenchmarkForwardCallers is BenchmarkForward's 16- and 256-row batches
// from 1, 2 and 4 goroutines calling Forward at once, sharing b.N: with
// more than one, batches are in flight together (Config.InFlight).
func BenchmarkForwardCallers(b *testing.B) {
	g, err := cudaBackend()
	if err != nil {
		b.Skipf("no CUDA device: %v", err)
	}
	m, err := model.Synth(model.SynthConfig{Name: "bench", Dims: []int{1024, 4096, 1024}, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, rows := range []int{16, 256} {
		in := kt.RandInput(r, rows*1024, 0, 1)
		for _, p := range []precision.Format{precision.BF16, precision.FP8} {
			for _, callers := range []int{1, 2, 4} {
				b.Run(fmt.Sprintf("rows=%d/%s/callers=%d", rows, p, callers), func(b *testing.B) {
					ctx := context.Background()
					for range 3 { // upload, plans, graphs
						if _, err := g.Forward(ctx, m, p, in, rows); err != nil {
							b.Fatal(err)
						}
					}
					var left atomic.Int64
					left.Store(int64(b.N))
					var wg sync.WaitGroup
					b.ResetTimer()
					for range callers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for left.Add(-1) >= 0 {
								if _, err := g.Forward(ctx, m, p, in, rows); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		}
	}
}

func benchForward(b *testing.B, g kernels.Backend) {
	m, err := model.Synth(model.SynthConfig{Name: "bench", Dims: []int{1024, 4096, 1024}, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, rows := range []int{1, 16, 256, 2048} {
		in := kt.RandInput(r, rows*1024, 0, 1)
		for _, p := range precision.All {
			b.Run(fmt.Sprintf("rows=%d/%s", rows, p), func(b *testing.B) {
				ctx := context.Background()
				if _, err := g.Forward(ctx, m, p, in, rows); err != nil { // upload, plans
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					if _, err := g.Forward(ctx, m, p, in, rows); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
