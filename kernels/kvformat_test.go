package kernels_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestKVBlockBytes: the KV cache's format per precision, and the bytes of
// one block at Llama-3.1-8B's shapes (32 layers, 8 KV heads of 128): fp8
// and fp4 store a byte a value and a float scale per head's row, so a
// budget holds about twice the tokens of bf16.
func TestKVBlockBytes(t *testing.T) {
	c := &lm.Config{Layers: 32, KVHeads: 8, HeadDim: 128}
	for _, tc := range []struct {
		p     precision.Format
		f     precision.Format
		bytes int64
	}{
		{precision.FP32, precision.FP32, 32 * 2 * 16 * 8 * 128 * 4},
		{precision.TF32, precision.FP32, 32 * 2 * 16 * 8 * 128 * 4},
		{precision.BF16, precision.BF16, 32 * 2 * 16 * 8 * 128 * 2},
		{precision.FP16, precision.BF16, 32 * 2 * 16 * 8 * 128 * 2},
		{precision.FP8, precision.FP8, 32 * 2 * 16 * 8 * (128 + 4)},
		{precision.FP4, precision.FP8, 32 * 2 * 16 * 8 * (128 + 4)},
	} {
		f := kernels.KVFormat(tc.p)
		if f != tc.f {
			t.Errorf("KVFormat(%s) = %s, want %s", tc.p, f, tc.f)
		}
		if got := kernels.KVBlockBytes(c, f); got != tc.bytes {
			t.Errorf("KVBlockBytes at %s = %d, want %d", tc.p, got, tc.bytes)
		}
	}
	budget := int64(40 << 30)
	bf, f8 := budget/kernels.KVBlockBytes(c, precision.BF16), budget/kernels.KVBlockBytes(c, precision.FP8)
	if r := float64(f8) / float64(bf); r < 1.9 {
		t.Errorf("a 40 GiB budget holds %d fp8 blocks and %d bf16 blocks (%.2f×), want at least 1.9×", f8, bf, r)
	}
}
