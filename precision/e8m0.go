package precision

import "math"

// e8m0NaN is the E8M0 NaN.
const e8m0NaN = 0xff

// DecodeE8M0 returns the value of E8M0 bits c: 2^(c-127) for c in 0..254
// (2^-127 is a float32 subnormal, exact), NaN for 0xff.
func DecodeE8M0(c uint8) float32 {
	switch c {
	case e8m0NaN:
		return float32(math.NaN())
	case 0:
		return math.Float32frombits(0x00400000) // 2^-127
	}
	return math.Float32frombits(uint32(c) << 23)
}

// EncodeE8M0 returns the E8M0 bits of the smallest power of two not below
// |x|: it rounds up, the MX scale convention of this package (see
// MXScale). It clamps to 2^-127..2^127: 0 (and anything up to 2^-127) gives
// 0x00, anything above 2^127 (+Inf included) gives 0xfe. The sign is
// ignored. A NaN gives 0xff.
func EncodeE8M0(x float32) uint8 {
	a := math.Float32bits(x) & 0x7fffffff
	switch {
	case a > 0x7f800000:
		return e8m0NaN
	case a > 0x7f000000: // above 2^127
		return 0xfe
	case a <= 0x00400000: // up to 2^-127
		return 0
	case a < 0x00800000: // subnormal m × 2^-149, 2^22 < m < 2^23: rounds up to 2^-126
		return 1
	}
	e := a >> 23
	if a&0x7fffff != 0 {
		e++
	}
	return uint8(e)
}
