package kerneltest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gearbox-inference/gearbox/model"
)

// Spec describes one layer of a test model; Build fills in widths and
// random parameters.
type Spec struct {
	op     model.Op
	out    int  // output width of a linear layer
	noBias bool // linear or layernorm without bias
	noW    bool // norm without weight
}

// Lin is a linear layer of out outputs, with a bias.
func Lin(out int) Spec { return Spec{op: model.Linear, out: out} }

// LinNoBias is a linear layer of out outputs without a bias.
func LinNoBias(out int) Spec { return Spec{op: model.Linear, out: out, noBias: true} }

// Act is a layer of any other op: an activation, softmax, or a norm with
// weight and bias.
func Act(op model.Op) Spec { return Spec{op: op} }

// PlainNorm is a norm layer with neither weight nor bias.
func PlainNorm(op model.Op) Spec { return Spec{op: op, noBias: true, noW: true} }

// Build returns a model of in input features and the given layers with
// random parameters from r: linear weights uniform in ±1/√in (PyTorch's
// default), norm weights near 1 and biases near 0.
func Build(r *rand.Rand, in int, specs ...Spec) *model.Model {
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
