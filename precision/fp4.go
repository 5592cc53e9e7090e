package precision

import "math"

// E2M1Max is the largest magnitude of fp4 E2M1.
const E2M1Max = 6

// e2m1Values decodes every 4-bit E2M1 code: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}.
var e2m1Values = func() (t [16]float32) {
	for c, v := range [8]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6} {
		t[c] = v
		t[c|8] = float32(math.Copysign(float64(v), -1)) // -0 for code 8
	}
	return t
}()

// The float32 bits of E2M1's midpoints; a midpoint rounds to the value
// whose code is even.
const (
	e2m1Mid0 = 0x3e800000 // 0.25: tie → 0
	e2m1Mid1 = 0x3f400000 // 0.75: tie → 1
	e2m1Mid2 = 0x3fa00000 // 1.25: tie → 1
	e2m1Mid3 = 0x3fe00000 // 1.75: tie → 2
	e2m1Mid4 = 0x40200000 // 2.5: tie → 2
	e2m1Mid5 = 0x40600000 // 3.5: tie → 4
	e2m1Mid6 = 0x40a00000 // 5: tie → 4
)

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// EncodeE2M1 converts x to a 4-bit fp4 E2M1 code (1-2-1: sign in bit 3),
// rounding to nearest, ties to even (0.25 → 0, 0.75 → 1, 1.25 → 1,
// 1.75 → 2, 2.5 → 2, 3.5 → 4, 5 → 4). It saturates: magnitudes above 6,
// ±Inf included, become ±6. E2M1 has no NaN: a NaN becomes ±6 (its sign
// kept), as CUDA's conversion does. -0 stays -0 (code 8).
func EncodeE2M1(x float32) uint8 {
	b := math.Float32bits(x)
	a := b & 0x7fffffff
	// float32 bits order like magnitudes, so the code is the number of
	// midpoints below a (a midpoint itself counts when it rounds up).
	c := b2u(a > e2m1Mid0) + b2u(a >= e2m1Mid1) + b2u(a > e2m1Mid2) + b2u(a >= e2m1Mid3) +
		b2u(a > e2m1Mid4) + b2u(a >= e2m1Mid5) + b2u(a > e2m1Mid6)
	return uint8(b>>28)&8 | c
}

// DecodeE2M1 returns the float32 value of the E2M1 code in the low 4 bits
// of c (exact).
func DecodeE2M1(c uint8) float32 { return e2m1Values[c&0xf] }
