package cpu

import (
	"fmt"
	"math"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
)

// Reference runs m on rows rows of input in float64 and returns rows ×
// m.OutputFeatures values, row-major.
//
// Reference is the executable specification of the ops: plain loops in
// float64 over the model's float32 weights, written to be obviously correct
// rather than fast. Backends at every precision, their tests and the quality
// loop measure their error against it. It costs about rows × Σ(In × Out)
// multiply-adds done one at a time; for large layers, check a sample of rows.
//
// The ops, for each row x of a layer's input (n = len(x)):
//
//	linear     y[o] = Σ_i x[i]·W[o,i] + b[o]   (W is [Out, In]; b optional)
//	relu       y = max(x, 0)
//	gelu       y = x·Φ(x) = ½·x·(1 + erf(x/√2))
//	silu       y = x·σ(x) = x / (1 + e^−x)
//	tanh       y = tanh(x)
//	softmax    y = e^(x − max x) / Σ e^(x − max x)
//	layernorm  y = (x − μ)/√(σ² + eps)·w + b   (μ mean, σ² biased variance)
//	rmsnorm    y = x/√(Σx²/n + eps)·w
//
// A norm's missing weight counts as all ones and a missing bias as zeros.
func Reference(m *model.Model, in []float64, rows int) ([]float64, error) {
	if err := kernels.CheckForward(m, len(in), rows); err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	x := append([]float64(nil), in...)
	for _, l := range m.Layers {
		y := make([]float64, rows*l.Out)
		for r := range rows {
			refLayer(l, y[r*l.Out:(r+1)*l.Out], x[r*l.In:(r+1)*l.In])
		}
		x = y
	}
	return x, nil
}

// refLayer computes one row of layer l: y from x.
func refLayer(l model.Layer, y, x []float64) {
	n := float64(len(x))
	switch l.Op {
	case model.Linear:
		w := l.Weight.Data
		for o := range y {
			var s float64
			for i := range x {
				s += x[i] * float64(w[o*l.In+i])
			}
			y[o] = s + param(l.Bias, o, 0)
		}
	case model.ReLU:
		for i, v := range x {
			y[i] = math.Max(v, 0) // NaN stays NaN, as in PyTorch
		}
	case model.GELU:
		for i, v := range x {
			// erfc(−z) is 1 + erf(z) without the cancellation that makes
			// 1 + erf(z) lose every digit for large negative z.
			y[i] = 0.5 * v * math.Erfc(-v/math.Sqrt2)
		}
	case model.SiLU:
		for i, v := range x {
			y[i] = v / (1 + math.Exp(-v))
		}
	case model.Tanh:
		for i, v := range x {
			y[i] = math.Tanh(v)
		}
	case model.Softmax:
		hi := math.Inf(-1)
		for _, v := range x {
			hi = math.Max(hi, v)
		}
		var sum float64
		for i, v := range x {
			y[i] = math.Exp(v - hi)
			sum += y[i]
		}
		for i := range y {
			y[i] /= sum
		}
	case model.LayerNorm:
		var mean float64
		for _, v := range x {
			mean += v
		}
		mean /= n
		var variance float64
		for _, v := range x {
			variance += (v - mean) * (v - mean)
		}
		variance /= n
		for i, v := range x {
			y[i] = (v-mean)/math.Sqrt(variance+l.Eps)*param(l.Weight, i, 1) + param(l.Bias, i, 0)
		}
	case model.RMSNorm:
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		rms := math.Sqrt(ss/n + l.Eps)
		for i, v := range x {
			y[i] = v / rms * param(l.Weight, i, 1)
		}
	default:
		panic("cpu: unknown op " + string(l.Op)) // kernels.CheckForward rejects these
	}
}

// param returns t's i-th value, or def when t is nil.
func param(t *model.Tensor, i int, def float64) float64 {
	if t == nil {
		return def
	}
	return float64(t.Data[i])
}
