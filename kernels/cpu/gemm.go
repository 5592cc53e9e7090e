package cpu

import (
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Why tiles: gonum's blas32.Gemm goes parallel by itself once C spans four
// 64×64 blocks, but it then also cuts K into 64-wide pieces and starts a
// goroutine per block, and on two cores it gains little over one core (at
// 16×2048×512 it was slower). Giving gonum one 64×64 tile of C at a time
// keeps each call on its serial path (a full-length dot product per output)
// and lets our own pool of goroutines share the tiles. Measured on the 2-core
// development machine (Intel Xeon, gonum v0.17, best of 7 interleaved runs,
// GFLOP/s, rows×in×out):
//
//	shape           gonum GOMAXPROCS=1  gonum (2 procs)  64×64 tiles, 2 goroutines
//	1×512×2048                     6.8              7.7                        15.9
//	16×512×2048                    6.3             11.8                        22.7
//	256×512×2048                   7.1             12.2                        22.2
//	16×2048×512                    9.7             10.7                        23.4
//	256×2048×512                  10.5             11.2                        24.4
//	1×4096×4096                    7.5              7.0                        16.0
//	16×4096×4096                   7.9             11.2                        21.2
//	64×4096×4096                   6.9             10.9                        23.1
//	512×1024×1024                    -             11.9                        24.7
//
// (The single-process column comes from a separate, noisier run.) Tile
// shapes from 32×32 to 192×64 and cutting K into 512- or 1024-wide pieces
// were all within noise of 64×64; BenchmarkGemm repeats the comparison.
const (
	tileRows = 64
	tileCols = 64

	// gemmMinParallel is the multiply-add count below which a product runs
	// on the calling goroutine: about 10–20 µs of work, where handing a
	// tile to a second goroutine stops paying for starting it.
	gemmMinParallel = 128 * 1024
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
