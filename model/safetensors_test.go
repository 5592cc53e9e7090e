package model_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/model"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	for _, dtype := range []string{model.DTypeF32, model.DTypeF16, model.DTypeBF16} {
		t.Run(dtype, func(t *testing.T) {
			in := []*model.Tensor{tensor("b", 3, 4), tensor("a", 5), tensor("scalar"), tensor("empty", 0, 3)}
			for _, x := range in {
				x.DType = dtype
			}
			var buf bytes.Buffer
			if err := model.WriteSafetensors(&buf, in); err != nil {
				t.Fatal(err)
			}
			if n := binary.LittleEndian.Uint64(buf.Bytes()); n%8 != 0 {
				t.Errorf("header length %d; want a multiple of 8", n)
			}
			out, meta, err := model.ReadSafetensors(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if meta != nil {
				t.Errorf("metadata %v; want none", meta)
			}
			want := []*model.Tensor{in[1], in[0], in[3], in[2]} // by name
			if len(out) != len(want) {
				t.Fatalf("got %d tensors; want %d", len(out), len(want))
			}
			for i := range want {
				if !sameTensor(out[i], want[i]) {
					t.Errorf("tensor %d: got %+v; want %+v", i, out[i], want[i])
				}
			}

			// Writing what was read gives the same bytes, whatever the order.
			var again bytes.Buffer
			if err := model.WriteSafetensors(&again, []*model.Tensor{out[3], out[0], out[2], out[1]}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Error("rewriting the tensors read changed the file")
			}
		})
	}
}

// f16Ref decodes IEEE half-precision bits from first principles.
func f16Ref(b uint16) float64 {
	sign := 1.0
	if b&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(b>>10&0x1f), float64(b&0x3ff)
	if exp == 0 {
		return sign * math.Ldexp(mant/1024, -14)
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

// bf16Ref decodes bfloat16 bits from first principles.
func bf16Ref(b uint16) float64 {
	sign := 1.0
	if b&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(b>>7&0xff), float64(b&0x7f)
	if exp == 0 {
		return sign * math.Ldexp(mant/128, -126)
	}
	return sign * math.Ldexp(1+mant/128, exp-127)
}

// TestDecodeExact decodes every finite F16 and BF16 value and checks each
// against a first-principles decoding, and that writing it back as the
// same dtype gives the same bits.
func TestDecodeExact(t *testing.T) {
	for _, tc := range []struct {
		dtype  string
		expMax uint16 // the all-ones exponent field, which is Inf or NaN
		shift  int
		ref    func(uint16) float64
	}{
		{model.DTypeF16, 0x1f, 10, f16Ref},
		{model.DTypeBF16, 0xff, 7, bf16Ref},
	} {
		t.Run(tc.dtype, func(t *testing.T) {
			var bits []uint16
			for b := range 1 << 16 {
				if uint16(b)>>tc.shift&tc.expMax != tc.expMax {
					bits = append(bits, uint16(b))
				}
			}
			var buf []byte
			for _, b := range bits {
				buf = binary.LittleEndian.AppendUint16(buf, b)
			}
			header := fmt.Sprintf(`{"all":{"dtype":%q,"shape":[%d],"data_offsets":[0,%d]}}`, tc.dtype, len(bits), len(buf))
			ts, _, err := model.ReadSafetensors(rawSafetensors(header, buf))
			if err != nil {
				t.Fatal(err)
			}
			got := ts[0].Data
			for i, b := range bits {
				want := tc.ref(b)
				if float64(got[i]) != want || math.Signbit(float64(got[i])) != math.Signbit(want) {
					t.Fatalf("%s bits %#04x: got %v; want %v", tc.dtype, b, got[i], want)
				}
			}
			var out bytes.Buffer
			if err := model.WriteSafetensors(&out, ts); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(out.Bytes(), buf) {
				t.Errorf("writing the decoded %s values back changed their bits", tc.dtype)
			}
		})
	}
}

func TestRoundToDType(t *testing.T) {
	for _, tc := range []struct {
		dtype string
		in    float32
		want  float32
	}{
		{model.DTypeF32, 0.1, 0.1},
		{model.DTypeBF16, 1, 1},
		{model.DTypeBF16, 1 + 1.0/256, 1},                      // tie: to even (down)
		{model.DTypeBF16, 1 + 3.0/256, 1 + 4.0/256},            // tie: to even (up)
		{model.DTypeBF16, 1 + 1.0/256 + 1.0/4096, 1 + 1.0/128}, // above the tie
		{model.DTypeF16, 1 + 1.0/2048, 1},                      // tie: to even (down)
		{model.DTypeF16, 65504, 65504},
		{model.DTypeF16, 70000, float32(math.Inf(1))},
		{model.DTypeF16, -1e-8, float32(math.Copysign(0, -1))},
	} {
		got := model.RoundToDType(tc.in, tc.dtype)
		if math.Float32bits(got) != math.Float32bits(tc.want) {
			t.Errorf("RoundToDType(%v, %s) = %v; want %v", tc.in, tc.dtype, got, tc.want)
		}
	}
}

func TestReadSafetensorsErrors(t *testing.T) {
	f32s := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	one := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	hugeLen := binary.LittleEndian.AppendUint64(nil, 200_000_000)
	for _, tc := range []struct {
		name string
		data []byte
		want []string // substrings of the error
	}{
		{"empty", nil, []string{"too short"}},
		{"short", []byte{1, 2, 3}, []string{"too short"}},
		{"header over limit", append(hugeLen, "{}"...), []string{"over the limit"}},
		{"header past end", binary.LittleEndian.AppendUint64(nil, 100), []string{"header length 100", "0 bytes"}},
		{"not an object", rawSafetensors(`[1,2]`, nil), []string{"'{'"}},
		{"bad json", rawSafetensors(`{"a":`, nil), []string{"not a JSON object"}},
		{"trailing junk", rawSafetensors(`{}x`, nil), []string{"not a JSON object"}},
		{"bad metadata", rawSafetensors(`{"__metadata__":{"a":1}}`, nil), []string{"__metadata__"}},
		{"empty name", rawSafetensors(`{"":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32s(1)), []string{"empty name"}},
		{"unknown dtype", rawSafetensors(`{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{`"w"`, `"I64"`}},
		{"unknown field", rawSafetensors(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, f32s(1)), []string{`"w"`, "unknown field"}},
		{"no shape", rawSafetensors(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, f32s(1)), []string{`"w"`, "no shape"}},
		{"one offset", rawSafetensors(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, f32s(1)), []string{`"w"`, "2"}},
		{"negative dim", rawSafetensors(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32s(1)), []string{`"w"`, "negative"}},
		{"offsets past buffer", rawSafetensors(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}`, f32s(1, 2)), []string{`"w"`, "not within"}},
		{"offsets reversed", rawSafetensors(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}`, f32s(1, 2)), []string{`"w"`, "not within"}},
		{"size mismatch", rawSafetensors(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, f32s(1, 2)), []string{`"w"`, "want 4"}},
		{"huge shape", rawSafetensors(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, f32s(1, 2)), []string{`"w"`, "more elements"}},
		{"overlap", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32s(1, 2)), []string{`"b"`, "overlap", `"a"`}},
		{"hole", rawSafetensors(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32s(1, 2)), []string{`"a"`, "unused"}},
		{"trailing bytes", rawSafetensors(one, f32s(1, 2, 3)), []string{"[8, 12]", "no tensor"}},
		{"NaN", rawSafetensors(one, f32s(1, float32(math.NaN()))), []string{`"a"`, "element 1", "NaN"}},
		{"Inf", rawSafetensors(one, f32s(float32(math.Inf(-1)), 1)), []string{`"a"`, "element 0", "-Inf"}},
		{"F16 Inf", rawSafetensors(`{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, []byte{0x00, 0x7c}), []string{`"h"`, "+Inf"}},
		{"BF16 NaN", rawSafetensors(`{"h":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, []byte{0xc0, 0x7f}), []string{`"h"`, "NaN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := model.ReadSafetensors(tc.data)
			if !errors.Is(err, model.ErrInvalidSafetensors) {
				t.Fatalf("got error %v; want %v", err, model.ErrInvalidSafetensors)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	bad := func(mod func(*model.Tensor)) *model.Tensor {
		x := tensor("w", 2, 2)
		mod(x)
		return x
	}
	for _, tc := range []struct {
		name    string
		tensors []*model.Tensor
		want    string
	}{
		{"nil", []*model.Tensor{nil}, "nil"},
		{"empty name", []*model.Tensor{bad(func(x *model.Tensor) { x.Name = "" })}, `""`},
		{"metadata name", []*model.Tensor{bad(func(x *model.Tensor) { x.Name = "__metadata__" })}, "__metadata__"},
		{"duplicate", []*model.Tensor{tensor("w", 1), tensor("w", 2)}, "twice"},
		{"dtype", []*model.Tensor{bad(func(x *model.Tensor) { x.DType = "F64" })}, `"F64"`},
		{"shape", []*model.Tensor{bad(func(x *model.Tensor) { x.Shape = []int{3} })}, "Data has 4"},
		{"negative", []*model.Tensor{bad(func(x *model.Tensor) { x.Shape = []int{-2, -2} })}, "negative"},
		{"NaN", []*model.Tensor{bad(func(x *model.Tensor) { x.Data[3] = float32(math.NaN()) })}, "element 3"},
		{"F16 overflow", []*model.Tensor{bad(func(x *model.Tensor) { x.DType, x.Data[1] = model.DTypeF16, 1e6 })}, "element 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := model.WriteSafetensors(&buf, tc.tensors)
			if !errors.Is(err, model.ErrInvalidSafetensors) {
				t.Fatalf("got error %v; want %v", err, model.ErrInvalidSafetensors)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %s", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes; want none", buf.Len())
			}
		})
	}
}

func TestReadSafetensorsMetadata(t *testing.T) {
	data := rawSafetensors(`{"__metadata__":{"format":"pt","note":"hi"},"w":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}  `, []byte{0x80, 0x3f})
	ts, meta, err := model.ReadSafetensors(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"format": "pt", "note": "hi"}; !maps.Equal(meta, want) {
		t.Errorf("metadata %v; want %v", meta, want)
	}
	if len(ts) != 1 || ts[0].Data[0] != 1 {
		t.Errorf("tensors %+v; want w = [1]", ts)
	}
}

func TestWriteSafetensorsEmptyDTypeIsF32(t *testing.T) {
	x := tensor("w", 2)
	x.DType = ""
	var buf bytes.Buffer
	if err := model.WriteSafetensors(&buf, []*model.Tensor{x}); err != nil {
		t.Fatal(err)
	}
	ts, _, err := model.ReadSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := ts[0].DType; got != model.DTypeF32 {
		t.Errorf("dtype %q; want %q", got, model.DTypeF32)
	}
}

// TestParseSafetensorsRaw checks that the raw tensors are views of the file
// (no copy) that widen to exactly what ReadSafetensors decodes.
func TestParseSafetensorsRaw(t *testing.T) {
	in := []*model.Tensor{tensor("f32", 3, 4), tensor("f16", 5), tensor("bf16", 2, 3)}
	in[1].DType, in[2].DType = model.DTypeF16, model.DTypeBF16
	var buf bytes.Buffer
	if err := model.WriteSafetensors(&buf, in); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	raw, _, err := model.ParseSafetensors(file)
	if err != nil {
		t.Fatal(err)
	}
	decoded, _, err := model.ReadSafetensors(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range raw {
		d := decoded[i]
		if r.Name != d.Name || r.DType != d.DType || !slices.Equal(r.Shape, d.Shape) || r.Len() != len(d.Data) {
			t.Fatalf("raw %s %s %v (%d elements); want %s %s %v (%d)", r.Name, r.DType, r.Shape, r.Len(), d.Name, d.DType, d.Shape, len(d.Data))
		}
		if got := r.Float32(nil); !slices.Equal(got, d.Data) {
			t.Errorf("tensor %s: Float32 = %v; want %v", r.Name, got, d.Data)
		}
		for j, want := range d.Data {
			if got := r.At(j); got != want {
				t.Errorf("tensor %s: At(%d) = %v; want %v", r.Name, j, got, want)
			}
		}
	}
	// The tensors are views of the file: clearing it clears them.
	clear(file)
	for _, r := range raw {
		if slices.ContainsFunc(r.Data, func(b byte) bool { return b != 0 }) {
			t.Errorf("tensor %s: Data is a copy, not a view of the file", r.Name)
		}
	}
}

// TestParseSafetensorsFirstNonFinite: of several tensors holding a NaN or
// an infinity, the error names the first in the file.
func TestParseSafetensorsFirstNonFinite(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var ts []*model.Tensor
	for i := range 40 {
		ts = append(ts, &model.Tensor{Name: fmt.Sprintf("t%02d", i), Shape: []int{4}, Data: []float32{1, 2, 3, 4}})
	}
	var buf bytes.Buffer
	if err := model.WriteSafetensors(&buf, ts); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	start := len(data) - 40*16 // the buffer: 40 tensors of 16 bytes, in name order
	binary.LittleEndian.PutUint32(data[start+33*16+4:], math.Float32bits(float32(math.Inf(1))))
	binary.LittleEndian.PutUint32(data[start+11*16+8:], math.Float32bits(float32(math.NaN())))
	_, _, err := model.ParseSafetensors(data)
	if !errors.Is(err, model.ErrInvalidSafetensors) || !strings.Contains(err.Error(), `tensor "t11": element 2`) {
		t.Errorf("ParseSafetensors = %v; want ErrInvalidSafetensors naming tensor t11, element 2", err)
	}
}
