package model

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/x448/float16"

	"github.com/gearbox-inference/gearbox/internal/par"
)

// MaxHeaderSize is the largest safetensors JSON header ReadSafetensors
// accepts, in bytes (the limit of the reference implementation).
const MaxHeaderSize = 100_000_000

// metadataKey is the header entry that holds free-form string metadata
// rather than a tensor.
const metadataKey = "__metadata__"

// tensorHeader is one tensor's entry in a safetensors header.
type tensorHeader struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ReadSafetensors decodes a complete safetensors file held in data: an
// 8-byte little-endian header length N, N bytes of JSON header, then the
// byte buffer the header's data_offsets index. It returns the tensors sorted
// by name, each decoded to float32, and the header's __metadata__ (nil if
// absent).
//
// It checks the file as ParseSafetensors does, then widens every weight
// exactly. Errors wrap ErrInvalidSafetensors and name the tensor at fault.
func ReadSafetensors(data []byte) ([]*Tensor, map[string]string, error) {
	raw, metadata, err := ParseSafetensors(data)
	if err != nil {
		return nil, nil, err
	}
	tensors := make([]*Tensor, len(raw))
	for i, r := range raw {
		tensors[i] = &Tensor{Name: r.Name, DType: r.DType, Shape: r.Shape, Data: r.Float32(nil)}
	}
	return tensors, metadata, nil
}

// ParseSafetensors checks a complete safetensors file held in data and
// returns its tensors as stored, sorted by name: each RawTensor's Data is a
// slice of data (nothing is copied or widened), and the header's
// __metadata__ (nil if absent).
//
// Every rule is checked before anything is allocated from a size the file
// claims: the header is at most MaxHeaderSize bytes and fits the file; each
// dtype is F32, F16 or BF16; each tensor's bytes are exactly its shape's
// element count times its dtype's size; the tensors tile the buffer in
// order, without overlaps or holes; and every weight is finite. Errors wrap
// ErrInvalidSafetensors and name the tensor at fault.
func ParseSafetensors(data []byte) ([]*RawTensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, stErrorf("file is %d bytes, too short for the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, nil, stErrorf("header length %d is over the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, nil, stErrorf("header length %d is more than the %d bytes that follow it", n, len(data)-8)
	}
	header, buf := data[8:8+n], data[8+n:]
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, stErrorf("header does not start with '{'")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, nil, stErrorf("header is not a JSON object: %v", err)
	}

	var metadata map[string]string
	type entry struct {
		name       string
		dtype      string
		shape      []int
		begin, end int64
	}
	entries := make([]entry, 0, len(raw))
	for name, msg := range raw {
		if name == metadataKey {
			if err := json.Unmarshal(msg, &metadata); err != nil {
				return nil, nil, stErrorf("%s is not an object of strings: %v", metadataKey, err)
			}
			continue
		}
		if name == "" {
			return nil, nil, stErrorf("tensor with an empty name")
		}
		var h tensorHeader
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			return nil, nil, stErrorf("tensor %q: bad header entry: %v", name, err)
		}
		size := DTypeSize(h.DType)
		if size == 0 {
			return nil, nil, stErrorf("tensor %q: dtype %q is not supported (want F32, F16 or BF16)", name, h.DType)
		}
		if h.Shape == nil {
			return nil, nil, stErrorf("tensor %q: no shape", name)
		}
		if len(h.DataOffsets) != 2 {
			return nil, nil, stErrorf("tensor %q: data_offsets has %d values, want 2", name, len(h.DataOffsets))
		}
		begin, end := h.DataOffsets[0], h.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(buf)) {
			return nil, nil, stErrorf("tensor %q: data_offsets [%d, %d] are not within the %d-byte buffer", name, begin, end, len(buf))
		}
		// The element count, bounded by what the buffer could hold so that
		// the product cannot overflow.
		limit := int64(len(buf)) / int64(size)
		elems := int64(1)
		shape := make([]int, len(h.Shape))
		for i, d := range h.Shape {
			if d < 0 {
				return nil, nil, stErrorf("tensor %q: shape %v has a negative dimension", name, h.Shape)
			}
			shape[i] = int(d)
		}
		if slices.Contains(h.Shape, 0) {
			elems = 0
		} else {
			for _, d := range h.Shape {
				if d > limit || elems > limit/d {
					return nil, nil, stErrorf("tensor %q: shape %v has more elements than the %d-byte buffer holds", name, h.Shape, len(buf))
				}
				elems *= d
			}
		}
		if end-begin != elems*int64(size) {
			return nil, nil, stErrorf("tensor %q: data_offsets [%d, %d] span %d bytes, want %d for %s %v", name, begin, end, end-begin, elems*int64(size), h.DType, h.Shape)
		}
		entries = append(entries, entry{name: name, dtype: h.DType, shape: shape, begin: begin, end: end})
	}

	// The tensors must tile the buffer: in offset order, each starts where
	// the last ended, and the last ends at the end of the buffer.
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), strings.Compare(a.name, b.name))
	})
	pos := int64(0)
	for i, e := range entries {
		switch {
		case e.begin < pos:
			return nil, nil, stErrorf("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.name, e.begin, e.end, entries[i-1].name, pos)
		case e.begin > pos:
			return nil, nil, stErrorf("tensor %q: data_offsets [%d, %d] leave bytes [%d, %d] of the buffer unused", e.name, e.begin, e.end, pos, e.begin)
		}
		pos = e.end
	}
	if pos != int64(len(buf)) {
		return nil, nil, stErrorf("buffer bytes [%d, %d] belong to no tensor", pos, len(buf))
	}

	// Every weight is read once here: a checkpoint of billions is checked
	// on every core, and the first bad tensor in buffer order reported.
	tensors := make([]*RawTensor, len(entries))
	bad := make([]int, len(entries))
	par.For(len(entries), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			e := entries[i]
			tensors[i] = &RawTensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: buf[e.begin:e.end:e.end]}
			bad[i] = firstNonFinite(tensors[i].Data, e.dtype)
		}
	})
	for i, t := range tensors {
		if bad[i] >= 0 {
			return nil, nil, stErrorf("tensor %q: element %d is %v; weights must be finite", t.Name, bad[i], t.At(bad[i]))
		}
	}
	slices.SortFunc(tensors, func(a, b *RawTensor) int { return strings.Compare(a.Name, b.Name) })
	return tensors, metadata, nil
}

// WriteSafetensors writes tensors to w in the safetensors format, each stored
// as its DType (an empty DType means F32); it writes no __metadata__. The
// output is deterministic: tensors are laid out in name order, whatever the
// order of the slice, and the header is padded with spaces to a multiple of
// 8 bytes so that the buffer is aligned.
//
// F16 and BF16 round each value to nearest, ties to even, so a tensor
// decoded from such a file writes back bit for bit. It returns an error
// wrapping ErrInvalidSafetensors, and writes nothing, if a name is empty,
// repeated or __metadata__, a dtype unknown, a shape disagrees with the
// length of Data, or a value is (or rounds to) an infinity or NaN.
func WriteSafetensors(w io.Writer, tensors []*Tensor) error {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b *Tensor) int { return strings.Compare(a.Name, b.Name) })

	header := make(map[string]any, len(sorted))
	var offset int64
	for i, t := range sorted {
		if t == nil {
			return stErrorf("write: nil tensor")
		}
		if t.Name == "" || t.Name == metadataKey {
			return stErrorf("write: tensor name %q is not allowed", t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return stErrorf("write: tensor %q appears twice", t.Name)
		}
		dtype := storedDType(t)
		size := DTypeSize(dtype)
		if size == 0 {
			return stErrorf("write: tensor %q: dtype %q is not supported (want F32, F16 or BF16)", t.Name, t.DType)
		}
		elems := 1
		for _, d := range t.Shape {
			if d < 0 {
				return stErrorf("write: tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
			}
			elems *= d
		}
		if elems != len(t.Data) {
			return stErrorf("write: tensor %q: shape %v holds %d elements but Data has %d", t.Name, t.Shape, elems, len(t.Data))
		}
		for j, v := range t.Data {
			if !finite(RoundToDType(v, dtype)) {
				return stErrorf("write: tensor %q: element %d (%v) is not finite as %s", t.Name, j, v, dtype)
			}
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		end := offset + int64(elems*size)
		header[t.Name] = struct {
			DType       string   `json:"dtype"`
			Shape       []int    `json:"shape"`
			DataOffsets [2]int64 `json:"data_offsets"`
		}{dtype, shape, [2]int64{offset, end}}
		offset = end
	}

	var hb bytes.Buffer
	enc := json.NewEncoder(&hb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(header); err != nil { // sorts the keys
		return fmt.Errorf("%w: write: encoding header: %v", ErrInvalidSafetensors, err)
	}
	hb.Truncate(hb.Len() - 1) // Encode's newline
	for hb.Len()%8 != 0 {
		hb.WriteByte(' ')
	}

	var lenBytes [8]byte
	binary.LittleEndian.PutUint64(lenBytes[:], uint64(hb.Len()))
	if _, err := w.Write(lenBytes[:]); err != nil {
		return err
	}
	if _, err := w.Write(hb.Bytes()); err != nil {
		return err
	}
	var chunk []byte
	for _, t := range sorted {
		chunk = encodeTensor(chunk[:0], t.Data, storedDType(t))
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// storedDType is the dtype t is written as.
func storedDType(t *Tensor) string {
	if t.DType == "" {
		return DTypeF32
	}
	return t.DType
}

// encodeTensor appends data, rounded to dtype, to dst in little-endian order.
func encodeTensor(dst []byte, data []float32, dtype string) []byte {
	for _, v := range data {
		switch dtype {
		case DTypeF32:
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		case DTypeF16:
			dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(v).Bits())
		case DTypeBF16:
			dst = binary.LittleEndian.AppendUint16(dst, f32ToBF16(v))
		}
	}
	return dst
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

func stErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSafetensors}, args...)...)
}
