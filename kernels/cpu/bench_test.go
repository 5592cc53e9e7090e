package cpu_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels/cpu"
	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// flops counts the floating-point operations of a forward pass: two per
// multiply-add of the linear layers, which dominate.
func flops(m *model.Model, rows int) float64 {
	var f float64
	for _, l := range m.Layers {
		if l.Op == model.Linear {
			f += 2 * float64(rows) * float64(l.In) * float64(l.Out)
		}
	}
	return f
}

// BenchmarkForward runs whole fp32 forward passes of typical worker model
// shapes:
//
//	go test ./kernels/cpu -run '^$' -bench Forward
func BenchmarkForward(b *testing.B) {
	shapes := []struct {
		name   string
		in     int
		layers []kt.Spec
	}{
		{"64-256-10-gelu", 64, []kt.Spec{kt.Lin(256), kt.Act(model.GELU), kt.Lin(10)}},
		{"512-2048-512-gelu", 512, []kt.Spec{kt.Lin(2048), kt.Act(model.GELU), kt.Lin(512)}},
		{"4096-4096", 4096, []kt.Spec{kt.Lin(4096)}},
	}
	be := newBackend(b, 0)
	for _, s := range shapes {
		r := rand.New(rand.NewPCG(1, 1))
		m := kt.Build(r, s.in, s.layers...)
		for _, rows := range []int{1, 16, 256} {
			in := kt.RandInput(r, rows*s.in, 0, 1)
			b.Run(fmt.Sprintf("%s/rows=%d", s.name, rows), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := be.Forward(context.Background(), m, precision.FP32, in, rows); err != nil {
						b.Fatal(err)
					}
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(rows*b.N)/sec, "rows/s")
				b.ReportMetric(flops(m, rows)*float64(b.N)/sec/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkGemm compares ways of computing y = x·wᵀ, the linear layer, to
// justify the tiling in gemm.go:
//
//	gonum-1proc  blas32.Gemm with GOMAXPROCS=1: one core
//	gonum        blas32.Gemm as is: gonum's own parallel blocks
//	tiles-1      64×64 tiles on the calling goroutine
//	tiles        64×64 tiles over GOMAXPROCS goroutines (what Forward does)
//
//	go test ./kernels/cpu -run '^$' -bench Gemm -count 3
func BenchmarkGemm(b *testing.B) {
	shapes := [][3]int{ // rows, in, out
		{1, 64, 256}, {16, 64, 256}, {256, 64, 256},
		{1, 512, 2048}, {16, 512, 2048}, {256, 512, 2048},
		{16, 2048, 512}, {256, 2048, 512},
		{1, 4096, 4096}, {16, 4096, 4096}, {64, 4096, 4096},
	}
	for _, s := range shapes {
		rows, in, out := s[0], s[1], s[2]
		r := rand.New(rand.NewPCG(2, 2))
		x := kt.RandInput(r, rows*in, 0, 1)
		w := kt.RandInput(r, out*in, 0, 1)
		y := make([]float32, rows*out)
		gonum := func() {
			blas32.Gemm(blas.NoTrans, blas.Trans, 1,
				blas32.General{Rows: rows, Cols: in, Stride: in, Data: x},
				blas32.General{Rows: out, Cols: in, Stride: in, Data: w},
				0, blas32.General{Rows: rows, Cols: out, Stride: out, Data: y})
		}
		variants := []struct {
			name  string
			procs int
			fn    func()
		}{
			{"gonum-1proc", 1, gonum},
			{"gonum", 0, gonum},
			{"tiles-1", 0, func() { cpu.Linear(1, y, x, w, nil, rows, in, out) }},
			{"tiles", 0, func() { cpu.Linear(runtime.GOMAXPROCS(0), y, x, w, nil, rows, in, out) }},
		}
		for _, v := range variants {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", rows, in, out, v.name), func(b *testing.B) {
				if v.procs > 0 {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(v.procs))
				}
				for b.Loop() {
					v.fn()
				}
				b.ReportMetric(2*float64(rows*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkOps times each non-linear op on one goroutine and split over two,
// at sizes around the point where splitting starts to pay (parallel.go);
// est-µs is the serial time the cost model in ops.go predicts, which Forward
// compares with its 100 µs threshold.
//
//	go test ./kernels/cpu -run '^$' -bench Ops
func BenchmarkOps(b *testing.B) {
	const width = 256
	ops := []model.Op{model.ReLU, model.GELU, model.SiLU, model.Tanh, model.Softmax, model.LayerNorm, model.RMSNorm}
	for _, op := range ops {
		r := rand.New(rand.NewPCG(3, 3))
		m := kt.Build(r, width, kt.Act(op))
		l := &m.Layers[0]
		for _, rows := range []int{2, 8, 32, 128, 512} {
			n := rows * width
			src := kt.RandInput(r, n, 0, 2)
			dst := make([]float32, n)
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/n=%d/threads=%d", op, n, threads), func(b *testing.B) {
					for b.Loop() {
						cpu.SplitOp(threads, l, dst, src, rows)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/value")
					b.ReportMetric(float64(n)*cpu.CostNs(op)/1e3, "est-µs")
				})
			}
		}
	}
}

// BenchmarkForwardPrecision runs the synthesised 512→2048→512 gelu model on
// 64 rows at each precision: the cost of emulation (rounding the linear
// layers' inputs; the weights are converted once, before the timed loop).
//
//	go test ./kernels/cpu -run '^$' -bench ForwardPrecision
func BenchmarkForwardPrecision(b *testing.B) {
	const rows = 64
	be := newBackend(b, 0)
	m, in := synthMLP(b, rows)
	for _, p := range precision.All {
		b.Run(string(p), func(b *testing.B) {
			if _, err := be.Forward(context.Background(), m, p, in, rows); err != nil { // convert the weights
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.Forward(context.Background(), m, p, in, rows); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(rows*b.N)/sec, "rows/s")
			b.ReportMetric(flops(m, rows)*float64(b.N)/sec/1e9, "GFLOP/s")
		})
	}
}
