package precision_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gearbox-inference/gearbox/precision"
)

// benchRows × benchCols is the benchmark tensor: 1M float32 values (4 MiB).
// Throughput (MB/s) counts float32 bytes: the input of a quantizer, the
// output of a dequantizer.
const benchRows, benchCols = 1024, 1024

func benchTensor() []float32 {
	r := rand.New(rand.NewPCG(7, 8))
	return randTensor(r, benchRows, benchCols, func() float64 { return 0.02 * r.NormFloat64() })
}

func BenchmarkQuantize(b *testing.B) {
	w := benchTensor()
	f32 := make([]float32, len(w))
	u16 := make([]uint16, len(w))
	u8 := make([]uint8, len(w))
	s := precision.FP8Scale(precision.Amax(w), 0)
	for _, bm := range []struct {
		name string
		fn   func()
	}{
		{"bf16/encode", func() { precision.EncodeBF16Slice(u16, w) }},
		{"bf16/round", func() { precision.RoundBF16Slice(f32, w) }},
		{"fp16/encode", func() { precision.EncodeFP16Slice(u16, w) }},
		{"fp16/round", func() { precision.RoundFP16Slice(f32, w) }},
		{"tf32/round", func() { precision.RoundTF32Slice(f32, w) }},
		{"e4m3/encode", func() { precision.EncodeE4M3Slice(u8, w, s) }},
		{"e4m3/round", func() { precision.RoundE4M3Slice(f32, w, s) }},
		{"fp8/per-tensor", func() { _, _ = precision.QuantizeFP8PerTensor(w, benchRows, benchCols, 0) }},
		{"fp8/per-channel", func() { _, _ = precision.QuantizeFP8PerChannel(w, benchRows, benchCols, 0) }},
		{"nvfp4", func() { _, _ = precision.QuantizeNVFP4(w, benchRows, benchCols) }},
		{"mxfp4", func() { _, _ = precision.QuantizeMXFP4(w, benchRows, benchCols) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(w)))
			for b.Loop() {
				bm.fn()
			}
		})
	}
}

func BenchmarkDequantize(b *testing.B) {
	w := benchTensor()
	dst := make([]float32, len(w))
	u16 := make([]uint16, len(w))
	precision.EncodeBF16Slice(u16, w)
	f16 := make([]uint16, len(w))
	precision.EncodeFP16Slice(f16, w)
	pt, _ := precision.QuantizeFP8PerTensor(w, benchRows, benchCols, 0)
	pc, _ := precision.QuantizeFP8PerChannel(w, benchRows, benchCols, 0)
	nv, _ := precision.QuantizeNVFP4(w, benchRows, benchCols)
	mx, _ := precision.QuantizeMXFP4(w, benchRows, benchCols)
	for _, bm := range []struct {
		name string
		fn   func()
	}{
		{"bf16", func() { precision.DecodeBF16Slice(dst, u16) }},
		{"fp16", func() { precision.DecodeFP16Slice(dst, f16) }},
		{"fp8/per-tensor", func() { pt.Dequantize(dst) }},
		{"fp8/per-channel", func() { pc.Dequantize(dst) }},
		{"nvfp4", func() { nv.Dequantize(dst) }},
		{"mxfp4", func() { mx.Dequantize(dst) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(w)))
			for b.Loop() {
				bm.fn()
			}
		})
	}
}
