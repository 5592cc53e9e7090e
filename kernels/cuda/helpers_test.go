package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gearbox-inference/gearbox/model"
)

// layerSpec describes one layer of a test model.
type layerSpec struct {
	op     model.Op
	out    int
	noBias bool
	noW    bool
}

func lin(out int) layerSpec           { return layerSpec{op: model.Linear, out: out} }
func linNoBias(out int) layerSpec     { return layerSpec{op: model.Linear, out: out, noBias: true} }
func act(op model.Op) layerSpec       { return layerSpec{op: op} }
func norm(op model.Op) layerSpec      { return layerSpec{op: op} }
func plainNorm(op model.Op) layerSpec { return layerSpec{op: op, noBias: true, noW: true} }

// buildModel returns a model of in input features and the given layers with
// random parameters: linear weights uniform in ±1/√in, norm weights near 1,
// biases near 0.
func buildModel(r *rand.Rand, in int, specs ...layerSpec) *model.Model {
	m := &model.Model{Name: "test", InputFeatures: in}
	width := in
	for i, s := range specs {
		l := model.Layer{Op: s.op, In: width, Out: width}
		switch s.op {
		case model.Linear:
			l.Out = s.out
			bound := 1 / math.Sqrt(float64(width))
			l.Weight = tensor(fmt.Sprintf("l%d.weight", i), l.Out*l.In, func() float64 { return bound * (2*r.Float64() - 1) })
			if !s.noBias {
				l.Bias = tensor(fmt.Sprintf("l%d.bias", i), l.Out, func() float64 { return bound * (2*r.Float64() - 1) })
			}
		case model.LayerNorm, model.RMSNorm:
			l.Eps = 1e-5
			if !s.noW {
				l.Weight = tensor(fmt.Sprintf("l%d.weight", i), width, func() float64 { return 1 + 0.1*r.NormFloat64() })
			}
			if s.op == model.LayerNorm && !s.noBias {
				l.Bias = tensor(fmt.Sprintf("l%d.bias", i), width, func() float64 { return 0.1 * r.NormFloat64() })
			}
		}
		m.Layers = append(m.Layers, l)
		width = l.Out
	}
	m.OutputFeatures = width
	return m
}

func tensor(name string, n int, gen func() float64) *model.Tensor {
	t := &model.Tensor{Name: name, DType: "F32", Shape: []int{n}, Data: make([]float32, n)}
	for i := range t.Data {
		t.Data[i] = float32(gen())
	}
	return t
}

// randInput returns n values, normal with standard deviation scale around
// offset.
func randInput(r *rand.Rand, n int, offset, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(offset + scale*r.NormFloat64())
	}
	return x
}

func widen(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// relL2 returns ‖got − want‖₂ / ‖want‖₂ (NaN never passes a <= check).
func relL2(got []float32, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - w
		num += d * d
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
