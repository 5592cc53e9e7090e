package cuda

import (
	"encoding/binary"
	"math"
)

// args packs a kernel's arguments into one pointer-free byte buffer, each
// at its natural alignment; the C side builds the void* params[] array from
// the offsets (Go memory holding pointers must not cross into C).
type args struct {
	name string
	buf  []byte
	offs []int
}

func newArgs(name string) *args {
	return &args{name: name, buf: make([]byte, 0, 128), offs: make([]int, 0, 16)}
}

func (a *args) align(n int) {
	for len(a.buf)%n != 0 {
		a.buf = append(a.buf, 0)
	}
	a.offs = append(a.offs, len(a.buf))
}

// ptr adds a device pointer.
func (a *args) ptr(p uint64) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, p)
	return a
}

// i32 adds an int.
func (a *args) i32(v int) *args {
	a.align(4)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(int32(v)))
	return a
}

// i64 adds a long long.
func (a *args) i64(v int) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, uint64(int64(v)))
	return a
}

// f32 adds a float.
func (a *args) f32(v float32) *args {
	a.align(4)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, math.Float32bits(v))
	return a
}

// f64 adds a double.
func (a *args) f64(v float64) *args {
	a.align(8)
	a.buf = binary.LittleEndian.AppendUint64(a.buf, math.Float64bits(v))
	return a
}
