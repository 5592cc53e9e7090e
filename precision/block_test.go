package precision_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

// tensorCase is a named [rows, cols] tensor for the block-quantizer tests.
type tensorCase struct {
	name       string
	rows, cols int
	data       []float32
}

func randTensor(r *rand.Rand, rows, cols int, f func() float64) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(f())
	}
	return w
}

// tensorCases returns random tensors of awkward shapes and edge-case
// contents shared by the NVFP4 and MXFP4 tests.
func tensorCases() []tensorCase {
	r := rand.New(rand.NewPCG(1, 2))
	normal := func() float64 { return r.NormFloat64() }
	var cs []tensorCase
	for _, sh := range [][2]int{{1, 16}, {3, 37}, {8, 64}, {5, 1}, {4, 33}, {16, 200}, {2, 0}, {0, 5}} {
		cs = append(cs, tensorCase{"normal", sh[0], sh[1], randTensor(r, sh[0], sh[1], normal)})
	}
	// bf16 weights sit on rounding ties against their block scale often.
	bf := randTensor(r, 32, 96, func() float64 { return 0.02 * r.NormFloat64() })
	precision.RoundBF16Slice(bf, bf)
	cs = append(cs, tensorCase{"bf16 weights", 32, 96, bf})
	// Values on E2M1 midpoints times a power of two: exact ties.
	mids := []float64{0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6}
	cs = append(cs, tensorCase{"ties", 4, 64, randTensor(r, 4, 64, func() float64 {
		return mids[r.IntN(len(mids))] * math.Ldexp(1, r.IntN(6)-3) * float64(1-2*r.IntN(2))
	})})
	cs = append(cs, tensorCase{"zeros", 3, 48, make([]float32, 3*48)})
	outlier := randTensor(r, 4, 64, func() float64 { return 1e-3 * r.NormFloat64() })
	outlier[77] = 1e4
	cs = append(cs, tensorCase{"one huge outlier", 4, 64, outlier})
	// Blocks across the scale range: amax from 1e-30 to 1e30 by block.
	ranged := make([]float32, 2*512)
	for i := range ranged {
		ranged[i] = float32(r.NormFloat64() * math.Pow(10, float64(i/16%32-16)*2))
	}
	cs = append(cs, tensorCase{"scale range", 2, 512, ranged})
	// Large enough to be quantized on several cores, with a short last
	// block and the tensor's amax in its last rows.
	large := randTensor(r, 96, 4100, normal)
	large[95*4100+7] = 300
	cs = append(cs, tensorCase{"large", 96, 4100, large})
	cs = append(cs, tensorCase{"huge", 2, 48, randTensor(r, 2, 48, func() float64 { return 1e37 * r.NormFloat64() })})
	cs = append(cs, tensorCase{"tiny", 2, 48, randTensor(r, 2, 48, func() float64 { return 1e-38 * r.NormFloat64() })})
	one := make([]float32, 4*80)
	for i := 3 * 16; i < 4*16; i++ {
		one[80+i] = float32(r.NormFloat64())
	}
	cs = append(cs, tensorCase{"all blocks zero but one", 4, 80, one})
	return cs
}

// e2m1Ref returns the E2M1 code of float32 v by brute force.
func e2m1Ref(v float32) uint8 {
	c := uint8(gridE2M1.nearest(math.Abs(float64(v))))
	if math.Signbit(float64(v)) {
		c |= 8
	}
	return c
}

// nibble returns element i of a packed fp4 row.
func nibble(data []byte, i int) uint8 {
	return data[i/2] >> (4 * (i % 2)) & 0xf
}

// checkGrid checks that v (a dequantized element) is a nearest point to x
// of the grid {E2M1 values × d}: within half a step, or ±6d when x lies
// beyond it.
func checkGrid(t *testing.T, what string, x, v float32, d float64) {
	t.Helper()
	r := math.Abs(float64(x)) / d
	vals := gridE2M1.vals
	if r >= 6 {
		if math.Abs(math.Abs(float64(v))-6*d) > 1e-6*6*d {
			t.Errorf("%s: %g beyond the grid (6 × %g) dequantized to %g", what, x, d, v)
		}
		return
	}
	j := 0
	for vals[j+1] <= r {
		j++
	}
	step := (vals[j+1] - vals[j]) * d
	if err := math.Abs(float64(x) - float64(v)); err > step/2*(1+1e-6)+1e-45 {
		t.Errorf("%s: %g dequantized to %g, error %g > half step %g", what, x, v, err, step/2)
	}
}
