package model

import (
	"encoding/binary"
	"math"

	"github.com/x448/float16"

	"github.com/gearbox-inference/gearbox/internal/par"
)

// RawTensor is a tensor as a safetensors file stores it: its elements are
// the little-endian bytes of DType ("F32", "F16" or "BF16"), not yet
// widened, so a checkpoint in host memory takes no more than its file.
// ParseSafetensors returns them; backends convert or upload Data as they
// need. A RawTensor from a loaded model is read-only.
type RawTensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte // Len() × DTypeSize(DType) bytes
}

// Len is the number of elements: the product of Shape (0 for an unknown
// DType).
func (t *RawTensor) Len() int {
	size := DTypeSize(t.DType)
	if size == 0 {
		return 0
	}
	return len(t.Data) / size
}

// At returns element i widened to float32 (exactly).
func (t *RawTensor) At(i int) float32 {
	switch t.DType {
	case DTypeF32:
		return math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	case DTypeF16:
		return float16.Frombits(binary.LittleEndian.Uint16(t.Data[2*i:])).Float32()
	case DTypeBF16:
		return bf16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
	}
	panic("model: RawTensor.At: unknown dtype " + t.DType)
}

// Float32 writes the elements widened to float32 (exactly) into dst,
// reusing its storage when its capacity allows, and returns it.
func (t *RawTensor) Float32(dst []float32) []float32 {
	n := t.Len()
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	src := t.Data
	switch t.DType {
	case DTypeF32, DTypeF16, DTypeBF16:
	default:
		panic("model: RawTensor.Float32: unknown dtype " + t.DType)
	}
	par.For(n, 1<<16, func(lo, hi int) { widen(dst[lo:hi], src, lo, t.DType) })
	return dst
}

// widen writes elements lo… of src, stored as dtype, widened to float32
// into dst.
func widen(dst []float32, src []byte, lo int, dtype string) {
	switch dtype {
	case DTypeF32:
		src = src[4*lo:]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case DTypeF16:
		src = src[2*lo:]
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(src[2*i:])).Float32()
		}
	case DTypeBF16:
		src = src[2*lo:]
		for i := range dst {
			dst[i] = bf16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	}
}

// firstNonFinite returns the index of the first NaN or infinite element of
// data stored as dtype, or -1. It reads the exponent bits alone: no value
// is widened.
func firstNonFinite(data []byte, dtype string) int {
	switch dtype {
	case DTypeF32:
		for i := 0; i+4 <= len(data); i += 4 {
			if binary.LittleEndian.Uint32(data[i:])&0x7f800000 == 0x7f800000 {
				return i / 4
			}
		}
	case DTypeF16:
		for i := 0; i+2 <= len(data); i += 2 {
			if binary.LittleEndian.Uint16(data[i:])&0x7c00 == 0x7c00 {
				return i / 2
			}
		}
	case DTypeBF16:
		for i := 0; i+2 <= len(data); i += 2 {
			if binary.LittleEndian.Uint16(data[i:])&0x7f80 == 0x7f80 {
				return i / 2
			}
		}
	}
	return -1
}
