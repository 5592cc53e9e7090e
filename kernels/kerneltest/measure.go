package kerneltest

import (
	"math"
	"math/rand/v2"
)

// RandInput returns n values, normal with standard deviation scale around
// offset.
func RandInput(r *rand.Rand, n int, offset, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(offset + scale*r.NormFloat64())
	}
	return x
}

// Widen converts x to float64.
func Widen(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// RelL2 returns ‖got − want‖₂ / ‖want‖₂ (‖got‖₂ for a zero want). A NaN
// in got makes it NaN, which no tolerance check passes.
func RelL2(got []float32, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - w
		num += d * d
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// MaxRel returns the largest |got − want| / (|want| + rms(want)) and its
// index: an elementwise relative error that does not blow up where an output
// happens to cross zero.
func MaxRel(got []float32, want []float64) (float64, int) {
	var ss float64
	for _, w := range want {
		ss += w * w
	}
	rms := math.Sqrt(ss / float64(max(1, len(want))))
	worst, at := 0.0, -1
	for i, w := range want {
		d := math.Abs(float64(got[i]) - w)
		if d == 0 {
			continue
		}
		e := d / (math.Abs(w) + rms)
		if !(e <= worst) { // catches NaN too
			worst, at = e, i
		}
	}
	return worst, at
}
