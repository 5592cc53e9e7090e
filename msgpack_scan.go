package gearbox

import (
	"errors"
	"fmt"
	"math"
)

// MaxDepth is the deepest nesting of maps and arrays a msgpack payload may
// have. A job needs 3 (job → input → shape); the rest leaves room for
// fields of later versions that a decoder skips.
const MaxDepth = 16

// errMsgpackDepth is wrapped by scanMsgpack for a payload nested deeper than
// its limit.
var errMsgpackDepth = errors.New("nested too deeply")

// mpKind is the kind of one msgpack value.
type mpKind uint8

const (
	mpNil mpKind = iota
	mpBool
	mpInt   // signed; value in i
	mpUint  // unsigned; value in u
	mpFloat // value in f
	mpStr   // n bytes follow
	mpBin   // n bytes follow
	mpArray // n values follow
	mpMap   // n key/value pairs follow
	mpExt   // n bytes follow (after the type byte)
)

func (k mpKind) String() string {
	return [...]string{"nil", "bool", "integer", "integer", "float", "string", "bin", "array", "map", "ext"}[k]
}

// mpHead is the header of one msgpack value: its kind, scalar value or
// length.
type mpHead struct {
	kind mpKind
	b    bool
	i    int64
	u    uint64
	f    float64
	n    int // bytes of a str/bin/ext, values of an array, pairs of a map
}

// mpReader reads msgpack values from a payload that scanMsgpack accepted:
// every length fits in what is left, so reads never run past the end, and
// nothing it returns needs more memory than the payload holds.
type mpReader struct {
	b []byte
	i int
}

// head reads the header of the next value. Its str, bin and ext bytes and
// its array or map elements follow.
func (r *mpReader) head() (mpHead, error) {
	if r.i >= len(r.b) {
		return mpHead{}, errors.New("unexpected end of data")
	}
	c := r.b[r.i]
	r.i++
	switch {
	case c <= 0x7f:
		return mpHead{kind: mpInt, i: int64(c)}, nil
	case c >= 0xe0:
		return mpHead{kind: mpInt, i: int64(int8(c))}, nil
	case c&0xf0 == 0x80:
		return mpHead{kind: mpMap, n: int(c & 0x0f)}, nil
	case c&0xf0 == 0x90:
		return mpHead{kind: mpArray, n: int(c & 0x0f)}, nil
	case c&0xe0 == 0xa0:
		return mpHead{kind: mpStr, n: int(c & 0x1f)}, nil
	}
	// size reads an n-byte big-endian length or value.
	size := func(n int) (uint64, error) {
		if len(r.b)-r.i < n {
			return 0, errors.New("unexpected end of data")
		}
		var v uint64
		for _, x := range r.b[r.i : r.i+n] {
			v = v<<8 | uint64(x)
		}
		r.i += n
		return v, nil
	}
	lenOf := func(kind mpKind, bytes int) (mpHead, error) {
		v, err := size(bytes) // at most 32 bits: fits an int
		return mpHead{kind: kind, n: int(v)}, err
	}
	switch c {
	case 0xc0:
		return mpHead{kind: mpNil}, nil
	case 0xc2, 0xc3:
		return mpHead{kind: mpBool, b: c == 0xc3}, nil
	case 0xc4, 0xc5, 0xc6:
		return lenOf(mpBin, 1<<(c-0xc4))
	case 0xc7, 0xc8, 0xc9:
		h, err := lenOf(mpExt, 1<<(c-0xc7))
		h.n++ // the type byte
		return h, err
	case 0xca:
		v, err := size(4)
		return mpHead{kind: mpFloat, f: float64(math.Float32frombits(uint32(v)))}, err
	case 0xcb:
		v, err := size(8)
		return mpHead{kind: mpFloat, f: math.Float64frombits(v)}, err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := size(1 << (c - 0xcc))
		return mpHead{kind: mpUint, u: v}, err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		v, err := size(n)
		shift := 64 - 8*n
		return mpHead{kind: mpInt, i: int64(v<<shift) >> shift}, err // sign-extend
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return mpHead{kind: mpExt, n: 1 + 1<<(c-0xd4)}, nil
	case 0xd9, 0xda, 0xdb:
		return lenOf(mpStr, 1<<(c-0xd9))
	case 0xdc, 0xdd:
		return lenOf(mpArray, 2<<(c-0xdc))
	case 0xde, 0xdf:
		return lenOf(mpMap, 2<<(c-0xde))
	}
	return mpHead{}, fmt.Errorf("byte 0x%02x at offset %d is not a msgpack type", c, r.i-1)
}

// bytes returns the next n bytes (a str, bin or ext body) without copying.
func (r *mpReader) bytes(n int) ([]byte, error) {
	if len(r.b)-r.i < n {
		return nil, errors.New("unexpected end of data")
	}
	b := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return b, nil
}

// skip skips the body of a value whose header was h, iteratively (the
// depth was bounded by scanMsgpack, but skip needs no stack either way).
func (r *mpReader) skip(h mpHead) error {
	pending := 0 // values still to skip
	for {
		switch h.kind {
		case mpStr, mpBin, mpExt:
			if _, err := r.bytes(h.n); err != nil {
				return err
			}
		case mpArray:
			pending += h.n
		case mpMap:
			pending += 2 * h.n
		}
		if pending == 0 {
			return nil
		}
		pending--
		var err error
		if h, err = r.head(); err != nil {
			return err
		}
	}
}

// scanMsgpack checks that data is exactly one well-formed msgpack value
// nested at most maxDepth deep, whose every declared length fits in the
// bytes that remain (every element takes at least one byte). A payload that
// passes can be decoded with memory bounded by its size. It uses no
// recursion.
func scanMsgpack(data []byte, maxDepth int) error {
	r := mpReader{b: data}
	// open[d] is the number of values still to read in the container at
	// depth d+1; the top level expects exactly one value.
	open := make([]int, 0, 8)
	left := 1
	for {
		for left == 0 {
			if len(open) == 0 {
				if r.i != len(data) {
					return fmt.Errorf("%d bytes of trailing data after the value", len(data)-r.i)
				}
				return nil
			}
			left, open = open[len(open)-1], open[:len(open)-1]
		}
		at := r.i
		h, err := r.head()
		if err != nil {
			return err
		}
		left--
		rest := len(data) - r.i
		switch h.kind {
		case mpStr, mpBin, mpExt:
			if h.n > rest {
				return fmt.Errorf("%s at offset %d declares %d bytes; only %d follow", h.kind, at, h.n, rest)
			}
			r.i += h.n
		case mpArray, mpMap:
			n := h.n
			if h.kind == mpMap {
				n *= 2
			}
			if n > rest {
				return fmt.Errorf("%s at offset %d declares %d elements; only %d bytes follow", h.kind, at, h.n, rest)
			}
			if n == 0 {
				continue
			}
			if len(open)+1 > maxDepth {
				return fmt.Errorf("%w: more than %d levels of maps and arrays", errMsgpackDepth, maxDepth)
			}
			open = append(open, left)
			left = n
		}
	}
}
