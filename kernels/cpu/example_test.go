package cpu_test

import (
	"context"
	"fmt"

	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func ExampleBackend_Forward() {
	// A 2→2 linear layer swapping its inputs and adding 1, then softmax.
	m := &model.Model{
		InputFeatures:  2,
		OutputFeatures: 2,
		Layers: []model.Layer{
			{Op: model.Linear, In: 2, Out: 2,
				Weight: &model.Tensor{Data: []float32{0, 1, 1, 0}},
				Bias:   &model.Tensor{Data: []float32{1, 1}}},
			{Op: model.Softmax, In: 2, Out: 2},
		},
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		panic(err)
	}
	out, err := b.Forward(context.Background(), m, precision.FP32, []float32{0, 0, 0, 1}, 2)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%.4f\n", out)

	ref, _ := cpu.Reference(m, []float64{0, 0, 0, 1}, 2)
	fmt.Printf("%.4f\n", ref)
	// Output:
	// [0.5000 0.5000 0.7311 0.2689]
	// [0.5000 0.5000 0.7311 0.2689]
}
