package cpu

import "github.com/gearbox-inference/gearbox/model"

// Linear exposes the tiled matrix product to the benchmarks.
var Linear = linear

// SplitOp runs the non-linear layer l over threads goroutines whatever its
// size, so that BenchmarkOps can find where splitting starts to pay.
func SplitOp(threads int, l *model.Layer, dst, src []float32, rows int) {
	if f := elementwise(l.Op); f != nil {
		n := rows * l.In
		parallel(threads, n, func(lo, hi int) { f(dst[lo:hi], src[lo:hi]) })
		return
	}
	f, w := rowwise(l.Op), l.In
	parallel(threads, rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			f(l, dst[r*w:(r+1)*w], src[r*w:(r+1)*w])
		}
	})
}

// CostNs exposes the per-value cost estimates to BenchmarkOps.
var CostNs = costNs

// Quantizations returns how many weight sets (one per model and precision
// other than fp32) b has built.
func Quantizations(b *Backend) int64 { return b.quantizations.Load() }
