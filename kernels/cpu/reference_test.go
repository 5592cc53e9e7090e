package cpu_test

import (
	"math"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
)

// TestReferenceByHand checks the reference itself against values worked out
// by hand (or with a calculator), one op at a time.
func TestReferenceByHand(t *testing.T) {
	one := func(op model.Op, w, b []float32, eps float64) *model.Model {
		l := model.Layer{Op: op, In: 3, Out: 3, Eps: eps}
		if w != nil {
			l.Weight = &model.Tensor{Data: w}
		}
		if b != nil {
			l.Bias = &model.Tensor{Data: b}
		}
		return &model.Model{InputFeatures: 3, OutputFeatures: 3, Layers: []model.Layer{l}}
	}
	s3 := math.Sqrt(1.5) // layernorm of 1, 2, 3: ±1/√(2/3)
	tests := []struct {
		name string
		m    *model.Model
		in   []float64
		want []float64
	}{
		{
			name: "linear",
			m: &model.Model{InputFeatures: 3, OutputFeatures: 2, Layers: []model.Layer{{
				Op: model.Linear, In: 3, Out: 2,
				Weight: &model.Tensor{Data: []float32{1, 2, 3, -1, 0, 0.5}}, // [Out, In]
				Bias:   &model.Tensor{Data: []float32{10, 20}},
			}}},
			in:   []float64{1, 1, 2, 0, 1, -2},
			want: []float64{1 + 2 + 6 + 10, -1 + 0 + 1 + 20, 0 + 2 - 6 + 10, 0 + 0 - 1 + 20},
		},
		{"relu", one(model.ReLU, nil, nil, 0), []float64{-1, 0, 2.5}, []float64{0, 0, 2.5}},
		{"gelu", one(model.GELU, nil, nil, 0), []float64{-1, 0, 1}, []float64{-0.15865525393145707, 0, 0.8413447460685429}},
		{"silu", one(model.SiLU, nil, nil, 0), []float64{-1, 0, 1}, []float64{-0.2689414213699951, 0, 0.7310585786300049}},
		{"tanh", one(model.Tanh, nil, nil, 0), []float64{-1, 0, 1}, []float64{-0.7615941559557649, 0, 0.7615941559557649}},
		{"softmax", one(model.Softmax, nil, nil, 0), []float64{1000, 1000 + math.Ln2, 1000 - 800}, []float64{1.0 / 3, 2.0 / 3, 0}},
		{"layernorm", one(model.LayerNorm, nil, nil, 0), []float64{1, 2, 3}, []float64{-s3, 0, s3}},
		{"layernorm-affine", one(model.LayerNorm, []float32{2, 3, 4}, []float32{1, 1, 1}, 0), []float64{1, 2, 3}, []float64{1 - 2*s3, 1, 1 + 4*s3}},
		{"layernorm-eps", one(model.LayerNorm, nil, nil, 1.0/3), []float64{1, 2, 3}, []float64{-1, 0, 1}},
		{"rmsnorm", one(model.RMSNorm, nil, nil, 0), []float64{3, 4, 0}, []float64{3 / math.Sqrt(25.0/3), 4 / math.Sqrt(25.0/3), 0}},
		{"rmsnorm-weight-eps", one(model.RMSNorm, []float32{1, 2, 3}, nil, 1), []float64{1, 1, 1}, []float64{1 / math.Sqrt(2), 2 / math.Sqrt(2), 3 / math.Sqrt(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := len(tt.in) / tt.m.InputFeatures
			got, err := cpu.Reference(tt.m, tt.in, rows)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d values, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-12*math.Max(1, math.Abs(tt.want[i])) {
					t.Errorf("value %d: got %.17g, want %.17g", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReferenceGELUTail(t *testing.T) {
	// 1 + erf(x/√2) cancels to nothing here; erfc keeps the digits.
	m := &model.Model{InputFeatures: 1, OutputFeatures: 1, Layers: []model.Layer{{Op: model.GELU, In: 1, Out: 1}}}
	got, err := cpu.Reference(m, []float64{-10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := -10 * 7.6198530241605e-24 // x·Φ(x), Φ(−10) from a normal table
	if math.Abs(got[0]-want) > 1e-9*math.Abs(want) {
		t.Errorf("gelu(-10) = %g, want %g", got[0], want)
	}
}
