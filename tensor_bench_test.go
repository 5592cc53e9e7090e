package gearbox_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox"
)

// A 16-row job of 1,024 features: 64 KiB of f32.
//
//	go test -run '^$' -bench 'Tensor' -count 5 .
func benchValues() []float32 {
	v := make([]float32, 16*1024)
	for i := range v {
		v[i] = float32(i%2001-1000) / 999
	}
	return v
}

func BenchmarkTensorEncode(b *testing.B) {
	v := benchValues()
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		_ = gearbox.NewTensor(16, 1024, v)
	}
}

func BenchmarkTensorDecode(b *testing.B) {
	t := gearbox.NewTensor(16, 1024, benchValues())
	dst := make([]float32, 0, 16*1024)
	b.SetBytes(int64(len(t.Data)))
	for b.Loop() {
		var err error
		if dst, err = t.Float32s(dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
