package precision

import "math"

// MaxMargin is the largest fp8 scaling margin the quantizers accept.
const MaxMargin = 8

// FP8Scale returns the fp8 E4M3 scale for data whose largest magnitude is
// amax, with a Transformer-Engine-style safety margin: the scale maps amax to
// 448 / 2^margin, leaving headroom for values a little larger than the ones
// seen. It is amax × 2^margin / 448 correctly rounded to float32 (computed
// in float64 and rounded once more, which for a division gives the same
// result; it equals the IEEE float32 division (amax × 2^margin) / 448
// whenever amax × 2^margin does not overflow float32).
// An amax of 0 gives 1, so that zeros quantize to zeros; a scale that would
// underflow to 0 (amax below about 3e-43) is 2^-149, the smallest float32,
// so that no element is divided by zero. An amax of +Inf gives +Inf: the
// tensor (or row) it scales dequantizes to NaN. Margins outside
// 0..MaxMargin are clamped to it. Elements quantize as
// EncodeE4M3(x / scale) and dequantize as DecodeE4M3(q) × scale.
func FP8Scale(amax float32, margin int) float32 {
	if amax == 0 {
		return 1
	}
	m := min(max(margin, 0), MaxMargin)
	return max(float32(math.Ldexp(float64(amax), m)/E4M3Max), 0x1p-149)
}
