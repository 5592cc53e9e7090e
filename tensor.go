package gearbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unsafe"

	"github.com/x448/float16"

	"github.com/gearbox-inference/gearbox/precision"
)

// DType is the element type of a Tensor on the wire.
type DType string

// The tensor element types.
const (
	F32  DType = "f32"
	F16  DType = "f16"
	BF16 DType = "bf16"
)

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// Tensor is a 2-D array [rows, features] of little-endian, row-major
// elements. In JSON, Data is base64; a JSON tensor may give Values (a flat
// array of numbers) instead of Data, and the worker writes Values in JSON
// results.
type Tensor struct {
	DType DType  `json:"dtype" msgpack:"dtype"`
	Shape []int  `json:"shape" msgpack:"shape"`
	Data  []byte `json:"data,omitempty" msgpack:"data"`
}

// NewTensor returns an f32 tensor of shape [rows, features] holding values
// (which must have rows*features elements).
func NewTensor(rows, features int, values []float32) Tensor {
	if len(values) != rows*features {
		panic(fmt.Sprintf("gearbox.NewTensor: %d values for shape [%d, %d]", len(values), rows, features))
	}
	data := make([]byte, 4*len(values))
	if littleEndian {
		copy(data, asBytes(values))
	} else {
		for i, v := range values {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
	}
	return Tensor{DType: F32, Shape: []int{rows, features}, Data: data}
}

// NewTensorAs is NewTensor with the values stored as dtype (f32, bf16 or
// f16; rounded to nearest even).
func NewTensorAs(rows, features int, values []float32, dtype DType) Tensor {
	switch dtype {
	case BF16, F16:
		data := make([]byte, 2*len(values))
		for i, v := range values {
			h := precision.EncodeBF16(v)
			if dtype == F16 {
				h = precision.EncodeFP16(v)
			}
			binary.LittleEndian.PutUint16(data[2*i:], h)
		}
		return Tensor{DType: dtype, Shape: []int{rows, features}, Data: data}
	}
	return NewTensor(rows, features, values)
}

// IsZero reports whether the tensor is absent: no dtype, shape or data.
func (t Tensor) IsZero() bool { return t.DType == "" && t.Shape == nil && t.Data == nil }

// Rows is the tensor's first dimension, or 0 if it is not 2-D.
func (t *Tensor) Rows() int {
	if len(t.Shape) != 2 {
		return 0
	}
	return t.Shape[0]
}

// Features is the tensor's second dimension, or 0 if it is not 2-D.
func (t *Tensor) Features() int {
	if len(t.Shape) != 2 {
		return 0
	}
	return t.Shape[1]
}

// Check reports (as a bad_request *Error) a tensor that is not 2-D with
// positive dims, has an unknown dtype, or whose data length does not match
// its shape. It does not look at the values.
func (t *Tensor) Check() error {
	if t.DType.Size() == 0 {
		return Errorf(CodeBadRequest, "tensor dtype %q is not one of f32, f16, bf16", t.DType)
	}
	if len(t.Shape) != 2 {
		return Errorf(CodeBadRequest, "tensor shape %v must be [rows, features]", t.Shape)
	}
	if t.Shape[0] <= 0 || t.Shape[1] <= 0 {
		return Errorf(CodeBadRequest, "tensor shape %v must have positive dimensions", t.Shape)
	}
	n := int64(t.Shape[0]) * int64(t.Shape[1])
	if n > math.MaxInt32 || int64(len(t.Data)) != n*int64(t.DType.Size()) {
		return Errorf(CodeBadRequest, "tensor data is %d bytes; shape %v of %s needs %d", len(t.Data), t.Shape, t.DType, n*int64(t.DType.Size()))
	}
	return nil
}

// Float32s decodes the tensor into dst (grown as needed) as float32 and
// returns it. F16 and BF16 widen exactly. It fails with a bad_request
// *Error if the tensor is malformed or holds a NaN or infinity (naming the
// first one's row and column).
func (t *Tensor) Float32s(dst []float32) ([]float32, error) {
	if err := t.Check(); err != nil {
		return dst, err
	}
	n := t.Shape[0] * t.Shape[1]
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n] // one allocation at most, on the per-job path
	out := dst[start:]
	d := t.Data
	switch t.DType {
	case F32:
		if littleEndian {
			copy(asBytes(out), d) // the wire's bytes are the host's float32s
			break
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(d[2*i:])).Float32()
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
	}
	// NaN and ±Inf are the float32s whose exponent bits are all ones.
	for i, b := range asBits(out) {
		if b&0x7f800000 == 0x7f800000 {
			return dst[:start], Errorf(CodeBadRequest, "input has a non-finite value (%v) at row %d, feature %d", out[i], i/t.Shape[1], i%t.Shape[1])
		}
	}
	return dst, nil
}

// littleEndian reports whether the host stores a float32 as the wire does
// (little-endian IEEE 754): then tensors convert by copying memory.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// asBytes views v's memory as bytes.
func asBytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// asBits views v's memory as the float32s' bit patterns.
func asBits(v []float32) []uint32 {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(v))), len(v))
}

// Values decodes the tensor as float32; see Float32s.
func (t *Tensor) Values() ([]float32, error) { return t.Float32s(nil) }

// jsonTensor is Tensor's JSON form, with the values alternative.
type jsonTensor struct {
	DType  DType      `json:"dtype,omitempty"`
	Shape  []int      `json:"shape,omitempty"`
	Data   []byte     `json:"data,omitempty"`
	Values jsonValues `json:"values,omitempty"`
}

// jsonValues are a tensor's values in JSON: numbers, and the strings "NaN",
// "Infinity" and "-Infinity" for what JSON numbers cannot carry (a model's
// output can overflow; inputs must be finite, and jobs reject the strings).
type jsonValues []float64

// The JSON strings of the non-finite values.
const (
	jsonNaN    = "NaN"
	jsonInf    = "Infinity"
	jsonNegInf = "-Infinity"
)

func (vs jsonValues) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+12*len(vs))
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(v):
			b = append(b, `"`+jsonNaN+`"`...)
		case math.IsInf(v, 1):
			b = append(b, `"`+jsonInf+`"`...)
		case math.IsInf(v, -1):
			b = append(b, `"`+jsonNegInf+`"`...)
		default:
			b = strconv.AppendFloat(b, v, 'g', -1, 32)
		}
	}
	return append(b, ']'), nil
}

func (vs *jsonValues) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(jsonValues, len(raw))
	for i, r := range raw {
		if len(r) > 0 && r[0] == '"' {
			var s string
			_ = json.Unmarshal(r, &s)
			switch s {
			case jsonNaN:
				out[i] = math.NaN()
			case jsonInf:
				out[i] = math.Inf(1)
			case jsonNegInf:
				out[i] = math.Inf(-1)
			default:
				return fmt.Errorf("tensor value %d is the string %q; want a number, %q, %q or %q", i, s, jsonNaN, jsonInf, jsonNegInf)
			}
			continue
		}
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return fmt.Errorf("tensor value %d: %w", i, err)
		}
	}
	*vs = out
	return nil
}

// UnmarshalJSON accepts data (base64) or values (numbers, or the strings
// "NaN", "Infinity", "-Infinity"). With values, the dtype defaults to f32
// and the shape to [1, len(values)].
func (t *Tensor) UnmarshalJSON(b []byte) error {
	var j jsonTensor
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = Tensor{DType: j.DType, Shape: j.Shape, Data: j.Data}
	if j.Values == nil {
		return nil
	}
	if j.Data != nil {
		return fmt.Errorf("tensor has both data and values")
	}
	if t.DType == "" {
		t.DType = F32
	}
	if t.DType != F32 {
		return fmt.Errorf("tensor values need dtype f32, not %q", t.DType)
	}
	if t.Shape == nil {
		t.Shape = []int{1, len(j.Values)}
	}
	t.Data = make([]byte, 4*len(j.Values))
	for i, v := range j.Values {
		if math.Abs(v) > math.MaxFloat32 && !math.IsInf(v, 0) {
			return fmt.Errorf("tensor value %d (%g) is out of float32 range", i, v)
		}
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(float32(v)))
	}
	return nil
}

// MarshalJSON writes f32 tensors as values (numbers, with "NaN",
// "Infinity" and "-Infinity" for non-finite values), others as data
// (base64).
func (t Tensor) MarshalJSON() ([]byte, error) {
	j := jsonTensor{DType: t.DType, Shape: t.Shape}
	if t.DType == F32 && t.Check() == nil {
		n := len(t.Data) / 4
		j.Values = make(jsonValues, n)
		for i := range n {
			j.Values[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:])))
		}
	} else {
		j.Data = t.Data
	}
	return json.Marshal(j)
}

// NonFinite counts the tensor's NaN and infinite values (0 for a malformed
// tensor).
func (t *Tensor) NonFinite() int {
	if t.Check() != nil {
		return 0
	}
	n := 0
	switch t.DType {
	case F32:
		for i := 0; i < len(t.Data); i += 4 {
			if binary.LittleEndian.Uint32(t.Data[i:])&0x7f800000 == 0x7f800000 {
				n++
			}
		}
	case F16:
		for i := 0; i < len(t.Data); i += 2 {
			if binary.LittleEndian.Uint16(t.Data[i:])&0x7c00 == 0x7c00 {
				n++
			}
		}
	case BF16:
		for i := 0; i < len(t.Data); i += 2 {
			if binary.LittleEndian.Uint16(t.Data[i:])&0x7f80 == 0x7f80 {
				n++
			}
		}
	}
	return n
}
