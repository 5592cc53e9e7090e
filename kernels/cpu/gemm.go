package cpu

import (
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Why tiles: gonum's blas32.Gemm goes parallel by itself once C spans four
// 64×64 blocks, but it then also cuts K into 64-wide pieces, so each output
// is summed from many short dot products, and it starts a goroutine per
// block. Giving gonum one 64×64 tile of C at a time keeps each call on its
// serial path (one full-length dot product per output, which alone is up to
// 2× faster than gonum's serial product) and lets our own goroutines share
// the tiles. Measured on the 2-core development machine (virtualised Intel
// Xeon, gonum v0.17, Go 1.26), best of 9 interleaved runs, GFLOP/s:
//
//	rows×in×out     gonum 1 proc  gonum 2 procs  tiles, 1 goroutine  tiles, 2
//	1×64×256                 5.9            4.8                11.0       10.8
//	16×64×256               13.4           17.0                14.0       13.3
//	256×64×256              12.9           19.1                13.9       17.4
//	1×512×2048               5.6            6.3                10.7        9.8
//	16×512×2048              8.3            9.7                14.8       14.7
//	256×512×2048            12.0           17.0                18.8       29.6
//	1×2048×512               7.9            9.9                11.2       14.4
//	16×2048×512              6.8           12.0                13.4       27.4
//	256×2048×512            10.3           15.7                17.8       33.7
//	1×4096×4096              5.0            6.5                 5.0        9.9
//	16×4096×4096             9.5           17.5                15.6       31.0
//	64×4096×4096             8.7           14.8                18.7       37.1
//
// Tiles win everywhere except at K = 64, where there is little to sum and
// gonum's own split is slightly ahead. Tile shapes from 32×32 to 192×64, and
// cutting K into 512- or 1024-wide pieces, were all within noise of 64×64.
// BenchmarkGemm repeats the comparison (its numbers swing widely when the
// machine is shared).
const (
	tileRows = 64
	tileCols = 64

	// gemmMinParallel is the multiply-add count below which a product runs
	// on the calling goroutine: about 100–150 µs of work, the point where a
	// second goroutine starts to pay here (16×64×256 and 1×512×2048 gained
	// nothing from it; see parallelMinNs).
	gemmMinParallel = 1 << 20
)

// linear computes y = x·wᵀ + bias for rows rows: x is [rows, in], w is
// [out, in] and y is [rows, out], all row-major; bias is [out] or nil. It
// uses up to threads goroutines. Every output is one gonum dot product over
// the full row, so the result does not depend on threads or scheduling.
func linear(threads int, y, x, w, bias []float32, rows, in, out int) {
	nc := (out + tileCols - 1) / tileCols
	tiles := (rows + tileRows - 1) / tileRows * nc
	if rows*in*out < gemmMinParallel {
		threads = 1
	}
	threads = min(threads, tiles)

	var next atomic.Int64
	work := func() {
		for {
			t := int(next.Add(1)) - 1
			if t >= tiles {
				return
			}
			r0, c0 := t/nc*tileRows, t%nc*tileCols
			linearTile(y, x, w, bias, in, out, r0, min(r0+tileRows, rows), c0, min(c0+tileCols, out))
		}
	}
	if threads <= 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	for range threads - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// linearTile computes rows [r0, r1) and columns [c0, c1) of y.
func linearTile(y, x, w, bias []float32, in, out, r0, r1, c0, c1 int) {
	for r := r0; r < r1; r++ {
		yr := y[r*out+c0 : r*out+c1]
		if bias == nil {
			clear(yr)
		} else {
			copy(yr, bias[c0:c1])
		}
	}
	// β = 1 accumulates onto the bias just written: the bias add costs no
	// extra pass over y.
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: r1 - r0, Cols: in, Stride: in, Data: x[r0*in:]},
		blas32.General{Rows: c1 - c0, Cols: in, Stride: in, Data: w[c0*in:]},
		1,
		blas32.General{Rows: r1 - r0, Cols: c1 - c0, Stride: out, Data: y[r0*out+c0:]})
}
