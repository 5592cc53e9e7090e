package cuda

import (
	"encoding/binary"
	"math"
)

// args packs a kernel's arguments into one pointer-free byte buffer, each
// at its natural alignment; the C side builds the void* params[] array from
// the offsets (Go memory holding pointers must not cross into C). kinds
// records each argument's C type, for the tests that compare a launch with
// the kernel's signature.
type args struct {
	buf   []byte
	offs  []int
	kinds []argKind
}

// argKind is the C type of a kernel argument.
type argKind byte

// The argument kinds: a device pointer, a 32-bit integer (int, unsigned), a
// long long, a float and a double.
const (
	argPtr argKind = 'p'
	argI32 argKind = 'i'
	argI64 argKind = 'l'
	argF32 argKind = 'f'
	argF64 argKind = 'd'
)

func newArgs() *args {
	return &args{buf: make([]byte, 0, 128), offs: make([]int, 0, 16), kinds: make([]argKind, 0, 16)}
}

func (a *args) align(n int, k argKind) {
	for len(a.buf)%n != 0 {
		a.buf = append(a.buf, 0)
	}
	a.offs = append(a.offs, len(a.buf))
	a.kinds = append(a.kinds, k)
}

// ptr adds a device pointer.
func (a *args) ptr(p uint64) *args {
	a.align(8, argPtr)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, p)
	return a
}

// i32 adds an int.
func (a *args) i32(v int) *args {
	a.align(4, argI32)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(int32(v)))
	return a
}

// u32 adds an unsigned int.
func (a *args) u32(v uint32) *args {
	a.align(4, argI32)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, v)
	return a
}

// i64 adds a long long.
func (a *args) i64(v int) *args {
	a.align(8, argI64)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(int64(v)))
	return a
}

// f32 adds a float.
func (a *args) f32(v float32) *args {
	a.align(4, argF32)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, math.Float32bits(v))
	return a
}

// f64 adds a double.
func (a *args) f64(v float64) *args {
	a.align(8, argF64)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, math.Float64bits(v))
	return a
}
