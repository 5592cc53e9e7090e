package model

import (
	"math"

	"github.com/x448/float16"
)

// The safetensors dtypes a weight tensor may be stored as (Tensor.DType).
// Every one widens to float32 exactly.
const (
	DTypeF32  = "F32"
	DTypeF16  = "F16"  // IEEE 754 half precision
	DTypeBF16 = "BF16" // bfloat16: the top 16 bits of a float32
)

// DTypeSize is the number of bytes of one element of dtype, or 0 if dtype is
// not one of DTypeF32, DTypeF16 and DTypeBF16.
func DTypeSize(dtype string) int {
	switch dtype {
	case DTypeF32:
		return 4
	case DTypeF16, DTypeBF16:
		return 2
	}
	return 0
}

// RoundToDType returns v rounded to the nearest value of dtype (ties to
// even), as float32. For F32 it returns v. A finite v may round to an
// infinity (F16 overflows past 65504); callers that need finite weights must
// check. It panics on an unknown dtype.
func RoundToDType(v float32, dtype string) float32 {
	switch dtype {
	case DTypeF32:
		return v
	case DTypeF16:
		return float16.Fromfloat32(v).Float32()
	case DTypeBF16:
		return bf16ToF32(f32ToBF16(v))
	}
	panic("model.RoundToDType: unknown dtype " + dtype)
}

// bf16ToF32 widens a bfloat16 exactly: its bits are the high half of the
// float32's.
func bf16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// f32ToBF16 rounds v to bfloat16, to nearest with ties to even. NaN stays a
// (quiet) NaN.
func f32ToBF16(v float32) uint16 {
	bits := math.Float32bits(v)
	if v != v {
		return uint16(bits>>16) | 0x0040
	}
	bits += 0x7FFF + (bits>>16)&1
	return uint16(bits >> 16)
}
