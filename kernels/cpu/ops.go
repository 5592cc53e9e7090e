package cpu

import (
	"math"

	"github.com/gearbox-inference/gearbox/model"
)

// The fp32 ops other than linear. Each writes dst from src, which have the
// same length and may be the same slice. Transcendentals are evaluated in
// float64 and rounded once, so each result is within an ulp or so of the
// float64 Reference; row statistics accumulate in float64.

// elementwise returns the function applying op to each value, or nil if op
// is not elementwise.
func elementwise(op model.Op) func(dst, src []float32) {
	switch op {
	case model.ReLU:
		return relu
	case model.GELU:
		return gelu
	case model.SiLU:
		return silu
	case model.Tanh:
		return tanh
	}
	return nil
}

// rowwise returns the function applying l to one row, or nil if l's op does
// not work on whole rows.
func rowwise(op model.Op) func(l *model.Layer, dst, src []float32) {
	switch op {
	case model.Softmax:
		return softmax
	case model.LayerNorm:
		return layerNorm
	case model.RMSNorm:
		return rmsNorm
	}
	return nil
}

// costNs estimates the serial time per value of op, in nanoseconds, from
// BenchmarkOps on the development machine; it only decides when a layer is
// worth splitting across goroutines. The transcendentals are dear here (Go's
// math.Erfc, Exp and Tanh on random inputs): gelu and tanh cost more than a
// 64-wide dot product per value.
func costNs(op model.Op) float64 {
	switch op {
	case model.ReLU:
		return 0.5 // really ~1, but memory-bound: splitting gains little
	case model.GELU:
		return 60
	case model.SiLU:
		return 20
	case model.Tanh:
		return 45
	case model.Softmax:
		return 25
	case model.LayerNorm:
		return 5
	case model.RMSNorm:
		return 3
	}
	return 1
}

func relu(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = max(v, 0) // branch-free; NaN stays NaN, as in PyTorch
	}
}

func gelu(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		x := float64(v)
		// erfc(−z) = 1 + erf(z), without cancellation for negative x.
		dst[i] = float32(0.5 * x * math.Erfc(-x/math.Sqrt2))
	}
}

func silu(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		x := float64(v)
		dst[i] = float32(x / (1 + math.Exp(-x)))
	}
}

func tanh(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float32(math.Tanh(float64(v)))
	}
}

func softmax(_ *model.Layer, dst, src []float32) {
	dst = dst[:len(src)]
	hi := math.Inf(-1)
	for _, v := range src {
		hi = math.Max(hi, float64(v))
	}
	var sum float64
	for i, v := range src {
		e := math.Exp(float64(v) - hi)
		sum += e
		dst[i] = float32(e)
	}
	inv := 1 / sum
	for i, e := range dst {
		dst[i] = float32(float64(e) * inv)
	}
}

func layerNorm(l *model.Layer, dst, src []float32) {
	dst = dst[:len(src)]
	n := float64(len(src))
	var sum float64
	for _, v := range src {
		sum += float64(v)
	}
	mean := sum / n
	var ss float64
	for _, v := range src {
		d := float64(v) - mean
		ss += d * d
	}
	inv := 1 / math.Sqrt(ss/n+l.Eps)
	switch {
	case l.Weight != nil && l.Bias != nil:
		w, b := l.Weight.Data[:len(src)], l.Bias.Data[:len(src)]
		for i, v := range src {
			dst[i] = float32((float64(v)-mean)*inv*float64(w[i]) + float64(b[i]))
		}
	default:
		for i, v := range src {
			dst[i] = float32((float64(v)-mean)*inv*param(l.Weight, i, 1) + param(l.Bias, i, 0))
		}
	}
}

func rmsNorm(l *model.Layer, dst, src []float32) {
	var w []float32
	if l.Weight != nil {
		w = l.Weight.Data
	}
	rmsNormRow(dst, src, w, l.Eps)
}

// rmsNormRow is rmsnorm of one row with weight w (nil: all ones).
func rmsNormRow(dst, src, w []float32, eps float64) {
	dst = dst[:len(src)]
	var ss float64
	for _, v := range src {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(src))+eps)
	if w == nil {
		for i, v := range src {
			dst[i] = float32(float64(v) * inv)
		}
		return
	}
	w = w[:len(src)]
	for i, v := range src {
		dst[i] = float32(float64(v) * inv * float64(w[i]))
	}
}
