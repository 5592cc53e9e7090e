package precision

import "math"

// EncodeBF16 converts x to bfloat16 (1-8-7) bits, rounding to nearest, ties
// to even. Finite values too large for bf16 become ±Inf (IEEE overflow);
// ±Inf stays ±Inf; a NaN stays a NaN, made quiet.
func EncodeBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040 // quiet NaN, sign and top payload kept
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// DecodeBF16 returns the float32 value of bfloat16 bits h (exact).
func DecodeBF16(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// RoundBF16 rounds x to the nearest bfloat16 value, as
// DecodeBF16(EncodeBF16(x)).
func RoundBF16(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return math.Float32frombits((b | 0x00400000) &^ 0xffff)
	}
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// RoundBF16Slice sets dst[i] = RoundBF16(src[i]) for every i of src. dst may
// be src (in place); it panics if dst is shorter than src.
func RoundBF16Slice(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = RoundBF16(x)
	}
}

// EncodeBF16Slice sets dst[i] = EncodeBF16(src[i]) for every i of src: the
// storage a bf16 tensor is uploaded as. It panics if dst is shorter than src.
func EncodeBF16Slice(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = EncodeBF16(x)
	}
}

// DecodeBF16Slice sets dst[i] = DecodeBF16(src[i]) for every i of src. It
// panics if dst is shorter than src.
func DecodeBF16Slice(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = DecodeBF16(h)
	}
}
