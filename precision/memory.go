package precision

// WeightBytes returns the bytes a [rows, cols] weight (a linear layer's
// [N, K]) takes on the device at f, scales and padding included:
//
//	fp32, tf32  4 × rows × cols
//	bf16, fp16  2 × rows × cols
//	fp8         FP8Bytes(rows, cols, true): per-channel scales
//	fp4         NVFP4Bytes(rows, cols)
//
// It is 0 for a value that is not a concrete format or a negative
// dimension.
func WeightBytes(f Format, rows, cols int) int64 {
	if rows < 0 || cols < 0 {
		return 0
	}
	n := int64(rows) * int64(cols)
	switch f {
	case FP32, TF32:
		return 4 * n
	case BF16, FP16:
		return 2 * n
	case FP8:
		return FP8Bytes(rows, cols, true)
	case FP4:
		return NVFP4Bytes(rows, cols)
	}
	return 0
}

// FP8Bytes returns the bytes of an FP8Tensor [rows, cols]: one byte per
// element plus a float32 scale per row (perChannel) or one for the tensor.
func FP8Bytes(rows, cols int, perChannel bool) int64 {
	if rows < 0 || cols < 0 {
		return 0
	}
	scales := int64(1)
	if perChannel {
		scales = int64(rows)
	}
	return int64(rows)*int64(cols) + 4*scales
}

// NVFP4Bytes returns the bytes of an NVFP4 [rows, cols]: per row
// PaddedCols/2 data bytes and PaddedCols/16 E4M3 scales (4.5 bits per
// element), plus the float32 tensor scale.
func NVFP4Bytes(rows, cols int) int64 {
	if rows < 0 || cols < 0 {
		return 0
	}
	pc := int64(PaddedCols(cols, NVFP4Block))
	return int64(rows)*(pc/2+pc/NVFP4Block) + 4
}

// MXFP4Bytes returns the bytes of an MXFP4 [rows, cols]: per row
// PaddedCols/2 data bytes and PaddedCols/32 E8M0 scales (4.25 bits per
// element).
func MXFP4Bytes(rows, cols int) int64 {
	if rows < 0 || cols < 0 {
		return 0
	}
	pc := int64(PaddedCols(cols, MXFP4Block))
	return int64(rows) * (pc/2 + pc/MXFP4Block)
}
