package precision

import "math"

// RoundTF32 rounds x to tf32: a float32 with 10 explicit mantissa bits (the
// low 13 bits zero), to nearest with ties away from zero, as PTX
// cvt.rna.tf32.f32 does; Gearbox's own CUDA kernels use that instruction.
// Subnormals round the same way; finite values that round past the largest
// tf32 value become ±Inf; ±Inf stays ±Inf; a NaN stays a NaN, made quiet.
//
// cuBLAS does not specify how its tf32 GEMMs convert fp32 operands;
// conformance tolerances allow for the difference.
func RoundTF32(x float32) float32 {
	b := math.Float32bits(x)
	if b&0x7f800000 == 0x7f800000 {
		if b&0x007fffff != 0 {
			return math.Float32frombits((b | 0x00400000) &^ 0x1fff)
		}
		return x
	}
	return math.Float32frombits((b + 0x1000) &^ 0x1fff)
}

// RoundTF32Slice sets dst[i] = RoundTF32(src[i]) for every i of src. dst may
// be src (in place); it panics if dst is shorter than src.
func RoundTF32Slice(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = RoundTF32(x)
	}
}
