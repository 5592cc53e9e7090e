package precision_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

// FuzzQuantizers feeds arbitrary float32 bit patterns (NaN and Inf
// included) to every tensor quantizer: none may panic, and finite inputs of
// moderate size must dequantize to finite values.
func FuzzQuantizers(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f}, uint8(2)) // 1, NaN
	f.Add([]byte{0, 0, 0x80, 0x7f, 0, 0, 0x80, 0xff}, uint8(1)) // +Inf, -Inf
	f.Add(make([]byte, 4*40), uint8(5))
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0x7f, 0x7f, 0, 0, 0, 0x80}, uint8(3)) // subnormal, max, -0
	f.Fuzz(func(t *testing.T, b []byte, cols uint8) {
		n := len(b) / 4
		w := make([]float32, n)
		finite := true
		for i := range w {
			w[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			if v := float64(w[i]); math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e30 {
				finite = false
			}
		}
		c := int(cols)%40 + 1
		rows := n / c
		w = w[:rows*c]
		check := func(name string, d []float32) {
			if len(d) != len(w) {
				t.Fatalf("%s: %d values; want %d", name, len(d), len(w))
			}
			if !finite {
				return
			}
			for i, v := range d {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s: finite %g dequantized to %g", name, w[i], v)
				}
			}
		}
		nv, err := precision.QuantizeNVFP4(w, rows, c)
		if err != nil {
			t.Fatal(err)
		}
		check("nvfp4", nv.Dequantize(nil))
		mx, err := precision.QuantizeMXFP4(w, rows, c)
		if err != nil {
			t.Fatal(err)
		}
		check("mxfp4", mx.Dequantize(nil))
		for m := range []int{0, 3} {
			pc, err := precision.QuantizeFP8PerChannel(w, rows, c, m)
			if err != nil {
				t.Fatal(err)
			}
			check("fp8 per channel", pc.Dequantize(nil))
			pt, err := precision.QuantizeFP8PerTensor(w, rows, c, m)
			if err != nil {
				t.Fatal(err)
			}
			check("fp8 per tensor", pt.Dequantize(nil))
		}
		r := make([]float32, len(w))
		precision.RoundBF16Slice(r, w)
		precision.RoundFP16Slice(r, w)
		precision.RoundTF32Slice(r, w)
		precision.RoundE4M3Slice(r, w, precision.FP8Scale(precision.Amax(w), 0))
	})
}
