package precision

import (
	"fmt"
	"math"
	"sync"

	"github.com/gearbox-inference/gearbox/internal/par"
)

// PaddedCols returns cols rounded up to a multiple of block: the row length a
// block-scaled tensor stores (NVFP4Block or MXFP4Block).
func PaddedCols(cols, block int) int {
	return (cols + block - 1) / block * block
}

// blockAt returns block b of row in blocks of len(buf) values: a slice of
// row, or, for a short last block, its values zero-padded into buf.
func blockAt(row []float32, b int, buf []float32) []float32 {
	n := len(buf)
	x := row[b*n : min((b+1)*n, len(row))]
	if len(x) == n {
		return x
	}
	clear(buf)
	copy(buf, x)
	return buf
}

// checkShape checks that data holds rows × cols values.
func checkShape(data []float32, rows, cols int) error {
	if rows < 0 || cols < 0 {
		return fmt.Errorf("%w: [%d, %d] has a negative dimension", ErrShape, rows, cols)
	}
	if cols != 0 && rows > math.MaxInt/cols || len(data) != rows*cols {
		return fmt.Errorf("%w: %d values for [%d, %d]", ErrShape, len(data), rows, cols)
	}
	return nil
}

// abs32 returns |x| (clearing the sign bit, so NaN stays NaN).
func abs32(x float32) float32 {
	return math.Float32frombits(math.Float32bits(x) &^ 0x80000000)
}

// Amax returns the largest magnitude in x, 0 for an empty x. NaNs are
// skipped (validation keeps them out anyway); an Inf gives +Inf.
func Amax(x []float32) float32 {
	var m float32
	for _, v := range x {
		if a := abs32(v); a > m {
			m = a
		}
	}
	return m
}

// parGrain is the least a goroutine of a large quantization works on, in
// elements: about a tenth of a millisecond.
const parGrain = 1 << 16

// grainRows is the least rows of cols elements a goroutine of a large
// quantization works on.
func grainRows(cols int) int { return max(1, parGrain/max(cols, 1)) }

// parAmax is Amax over several cores for a large x (the same value: max
// is exact, whatever the order).
func parAmax(x []float32) float32 {
	var mu sync.Mutex
	var m float32
	par.For(len(x), parGrain, func(lo, hi int) {
		a := Amax(x[lo:hi])
		mu.Lock()
		m = max(m, a)
		mu.Unlock()
	})
	return m
}

// grow returns dst resliced to n values, reallocated when its capacity is
// smaller.
func grow(dst []float32, n int) []float32 {
	if cap(dst) < n {
		return make([]float32, n)
	}
	return dst[:n]
}
