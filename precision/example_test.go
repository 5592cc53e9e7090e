package precision_test

import (
	"errors"
	"fmt"

	"github.com/gearbox-inference/gearbox/precision"
)

func ExampleSelect() {
	h100 := precision.CUDACapabilities(9, 0)
	a100 := precision.CUDACapabilities(8, 0)
	ladder := precision.DefaultLadder

	// auto runs the model's current policy.
	f, _ := precision.Select(precision.Auto, precision.FP8, ladder, 0, h100)
	fmt.Println(f)
	// A tight max_error moves the job up the ladder.
	f, _ = precision.Select(precision.Auto, precision.FP8, ladder, 0.005, h100)
	fmt.Println(f)
	// An explicit precision the device cannot run is an error.
	_, err := precision.Select(precision.FP8, precision.FP32, ladder, 0, a100)
	fmt.Println(errors.Is(err, precision.ErrUnsupported), err)
	// Output:
	// fp8
	// tf32
	// true precision not supported: fp8 on cuda 8.0 (supports fp32, tf32, fp16, bf16, fp4)
}

func ExampleQuantizeNVFP4() {
	// Two blocks: 16 values, then a short block holding 0.5 alone. The
	// second block's scale (0.5/6)/s_t = 37.33 rounds to E4M3 36 (0x61), so
	// 0.5 comes back as 6 × 36 × s_t = 0.482.
	w := []float32{6, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0.5}
	q, _ := precision.QuantizeNVFP4(w, 1, len(w))
	fmt.Printf("data % x\nscales % x\ntensor scale %g\n", q.Data, q.Scales, q.TensorScale)
	fmt.Println(q.Dequantize(nil))
	// Output:
	// data 57 00 00 00 00 00 00 a0 07 00 00 00 00 00 00 00
	// scales 7e 61
	// tensor scale 0.002232143
	// [6.0000005 3.0000002 0 0 0 0 0 0 0 0 0 0 0 0 0 -1 0.48214287]
}

func ExampleEncodeE4M3() {
	for _, x := range []float32{1, 448, 1000, 0x1p-10} {
		c := precision.EncodeE4M3(x)
		fmt.Printf("%g → %#02x → %g\n", x, c, precision.DecodeE4M3(c))
	}
	// Output:
	// 1 → 0x38 → 1
	// 448 → 0x7e → 448
	// 1000 → 0x7e → 448
	// 0.0009765625 → 0x00 → 0
}
