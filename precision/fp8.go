package precision

import "math"

// The largest finite magnitudes of the fp8 formats.
const (
	E4M3Max = 448   // fp8 E4M3 ("e4m3fn"): 1.75 × 2^8
	E5M2Max = 57344 // fp8 E5M2: 1.75 × 2^15
)

// fp8NaN is the NaN EncodeE4M3 and EncodeE5M2 return (S.1111.111 in E4M3;
// in E5M2 an exponent of all ones with a non-zero mantissa).
const fp8NaN = 0x7f

// e4m3Values and e5m2Values decode every fp8 byte.
var (
	e4m3Values = func() (t [256]float32) {
		for c := range 256 {
			e, m := (c>>3)&0xf, c&7
			var v float64
			switch {
			case e == 0xf && m == 7:
				v = math.NaN()
			case e == 0:
				v = math.Ldexp(float64(m), -9)
			default:
				v = math.Ldexp(float64(8+m), e-10)
			}
			if c&0x80 != 0 {
				v = -v
			}
			t[c] = float32(v)
		}
		return t
	}()
	e5m2Values = func() (t [256]float32) {
		for c := range 256 {
			e, m := (c>>2)&0x1f, c&3
			var v float64
			switch {
			case e == 0x1f && m == 0:
				v = math.Inf(1)
			case e == 0x1f:
				v = math.NaN()
			case e == 0:
				v = math.Ldexp(float64(m), -16)
			default:
				v = math.Ldexp(float64(4+m), e-17)
			}
			if c&0x80 != 0 {
				v = -v
			}
			t[c] = float32(v)
		}
		return t
	}()
)

// rneShift returns m / 2^sh rounded to nearest, ties to even, for m < 2^24
// and sh ≥ 1.
func rneShift(m, sh uint32) uint32 {
	if sh > 25 {
		return 0 // m < 2^24 ≤ half of 2^sh
	}
	q := m >> sh
	rem := m & (1<<sh - 1)
	half := uint32(1) << (sh - 1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	return q
}

// EncodeE4M3 converts x to fp8 E4M3 ("e4m3fn": 1-4-3, bias 7, no Inf, NaN
// S.1111.111), rounding to nearest, ties to even, with subnormals down to
// 2^-9. It saturates: magnitudes of 448 and above, ±Inf included, become
// ±448 (0x7e, 0xfe). -0 stays -0 (0x80). A NaN becomes 0x7f.
func EncodeE4M3(x float32) uint8 {
	b := math.Float32bits(x)
	s := uint8(b>>24) & 0x80
	a := b & 0x7fffffff
	switch {
	case a > 0x7f800000:
		return fp8NaN
	case a >= 0x43e00000: // 448
		return s | 0x7e
	case a >= 0x3c800000: // 2^-6, the smallest normal: round to 3 mantissa bits
		a += 0x7ffff + (a>>20)&1
		return s | uint8(a>>20-120<<3)
	case a < 0x00800000:
		return s // float32 subnormals are far below 2^-10
	}
	// Subnormal: a multiple of 2^-9, (a's significand) × 2^(E-150) / 2^-9.
	return s | uint8(rneShift(a&0x7fffff|0x800000, 141-a>>23))
}

// DecodeE4M3 returns the float32 value of fp8 E4M3 bits c (exact; 0x7f and
// 0xff are NaN).
func DecodeE4M3(c uint8) float32 { return e4m3Values[c] }

// EncodeE5M2 converts x to fp8 E5M2 (1-5-2, bias 15, IEEE Inf and NaN),
// rounding to nearest, ties to even, with subnormals down to 2^-16. It
// saturates: magnitudes of 57344 and above, ±Inf included, become ±57344
// (0x7b, 0xfb); it never returns Inf. -0 stays -0. A NaN becomes 0x7f.
func EncodeE5M2(x float32) uint8 {
	b := math.Float32bits(x)
	s := uint8(b>>24) & 0x80
	a := b & 0x7fffffff
	switch {
	case a > 0x7f800000:
		return fp8NaN
	case a >= 0x47600000: // 57344
		return s | 0x7b
	case a >= 0x38800000: // 2^-14, the smallest normal: round to 2 mantissa bits
		a += 0xfffff + (a>>21)&1
		return s | uint8(a>>21-112<<2)
	case a < 0x00800000:
		return s
	}
	// Subnormal: a multiple of 2^-16.
	return s | uint8(rneShift(a&0x7fffff|0x800000, 134-a>>23))
}

// DecodeE5M2 returns the float32 value of fp8 E5M2 bits c (exact).
func DecodeE5M2(c uint8) float32 { return e5m2Values[c] }

// EncodeE4M3Slice sets dst[i] = EncodeE4M3(src[i] / scale) for every i of
// src, the division an IEEE float32 division. It panics if dst is shorter
// than src.
func EncodeE4M3Slice(dst []uint8, src []float32, scale float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = EncodeE4M3(x / scale)
	}
}

// DecodeE4M3Slice sets dst[i] = DecodeE4M3(src[i]) × scale for every i of
// src. It panics if dst is shorter than src.
func DecodeE4M3Slice(dst []float32, src []uint8, scale float32) {
	dst = dst[:len(src)]
	for i, c := range src {
		dst[i] = e4m3Values[c] * scale
	}
}

// RoundE4M3Slice sets dst[i] = DecodeE4M3(EncodeE4M3(src[i] / scale)) ×
// scale for every i of src: what an fp8 operand scaled by scale holds. dst
// may be src (in place); it panics if dst is shorter than src.
func RoundE4M3Slice(dst, src []float32, scale float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = e4m3Values[EncodeE4M3(x/scale)] * scale
	}
}

// EncodeE5M2Slice sets dst[i] = EncodeE5M2(src[i] / scale) for every i of
// src. It panics if dst is shorter than src.
func EncodeE5M2Slice(dst []uint8, src []float32, scale float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = EncodeE5M2(x / scale)
	}
}

// DecodeE5M2Slice sets dst[i] = DecodeE5M2(src[i]) × scale for every i of
// src. It panics if dst is shorter than src.
func DecodeE5M2Slice(dst []float32, src []uint8, scale float32) {
	dst = dst[:len(src)]
	for i, c := range src {
		dst[i] = e5m2Values[c] * scale
	}
}
