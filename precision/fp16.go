package precision

import "math"

// EncodeFP16 converts x to IEEE binary16 (1-5-10) bits, rounding to nearest,
// ties to even, with subnormals. fp16 is not a scaled format here and does
// not saturate: values of magnitude 65520 and above become ±Inf, as IEEE
// says; ±Inf stays ±Inf; a NaN stays a NaN, made quiet. It gives the same
// bits as github.com/x448/float16's Fromfloat32 for every non-NaN input (the
// tests check all of them).
func EncodeFP16(x float32) uint16 {
	b := math.Float32bits(x)
	s := uint16(b>>16) & 0x8000
	a := b & 0x7fffffff
	switch {
	case a >= 0x38800000 && a < 0x477ff000: // normal: round to 10 mantissa bits
		a += 0xfff + (a>>13)&1
		return s | uint16(a>>13-112<<10)
	case a < 0x38800000: // subnormal: see RoundFP16
		v := float32(math.Float32frombits(a) + 0.5)
		return s | uint16(math.Float32bits(v)-0x3f000000)
	case a <= 0x7f800000: // overflow or Inf
		return s | 0x7c00
	}
	return s | 0x7e00 | uint16(a>>13)&0x3ff // NaN: quiet, top payload kept
}

// DecodeFP16 returns the float32 value of binary16 bits h (exact; a NaN
// comes back quiet).
func DecodeFP16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x3ff)
	switch e {
	case 0: // zero or subnormal: m × 2^-24, exact in float32
		v := float32(m) * 0x1p-24
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f:
		if m == 0 {
			return math.Float32frombits(sign | 0x7f800000)
		}
		return math.Float32frombits(sign | 0x7fc00000 | m<<13)
	}
	return math.Float32frombits(sign | (e+112)<<23 | m<<13)
}

// RoundFP16 rounds x to the nearest fp16 value, as
// DecodeFP16(EncodeFP16(x)).
func RoundFP16(x float32) float32 {
	b := math.Float32bits(x)
	a := b & 0x7fffffff
	switch {
	case a >= 0x38800000 && a < 0x477ff000:
		// 2^-14 ≤ |x| < 65520: fp16 normal range, the result stays finite.
		b += 0xfff + (b>>13)&1
		return math.Float32frombits(b &^ 0x1fff)
	case a < 0x38800000:
		// fp16 subnormal range: round |x| to a multiple of 2^-24. In
		// [0.5, 1) a float32's ulp is 2^-24, so adding 0.5 rounds there
		// (to even), and subtracting 0.5 again is exact.
		v := float32(math.Float32frombits(a) + 0.5)
		v = float32(v - 0.5)
		return math.Float32frombits(math.Float32bits(v) | b&0x80000000)
	}
	return DecodeFP16(EncodeFP16(x))
}

// RoundFP16Slice sets dst[i] = RoundFP16(src[i]) for every i of src. dst may
// be src (in place); it panics if dst is shorter than src.
func RoundFP16Slice(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = RoundFP16(x)
	}
}

// EncodeFP16Slice sets dst[i] = EncodeFP16(src[i]) for every i of src: the
// storage an fp16 tensor is uploaded as. It panics if dst is shorter than
// src.
func EncodeFP16Slice(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = EncodeFP16(x)
	}
}

// DecodeFP16Slice sets dst[i] = DecodeFP16(src[i]) for every i of src. It
// panics if dst is shorter than src.
func DecodeFP16Slice(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = DecodeFP16(h)
	}
}
