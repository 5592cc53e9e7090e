package cpu

import (
	"fmt"
	"sync"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// Emulation of the reduced precisions: the operands of every linear layer
// are rounded (or quantized and dequantized) exactly as the GPU's tensor
// cores would see them, then multiplied by the ordinary fp32 GEMM. Products
// of two operands of at most 11 significant bits are exact in float32, so
// the GEMM adds only float32 accumulation error, which is what tensor cores
// add too (they accumulate in at least fp32).

// weightKey names one model's linear weights at one precision.
type weightKey struct {
	m *model.Model
	p precision.Format
}

// weightSet is a model's weights converted for one precision, built once
// on first use: [][]float32 for a tensor model (its linear layers'), or
// *lmWeights for a language model.
type weightSet[T any] struct {
	once sync.Once
	w    T
	err  error
}

// converted returns the weights cached under key, calling build to make
// them on the first call for key. Concurrent first calls build them once;
// the others wait.
func converted[T any](b *Backend, key any, build func() (T, error)) (T, error) {
	v, ok := b.cache.Load(key)
	if !ok {
		v, _ = b.cache.LoadOrStore(key, new(weightSet[T]))
	}
	ws := v.(*weightSet[T])
	ws.once.Do(func() {
		b.quantizations.Add(1)
		ws.w, ws.err = build()
	})
	return ws.w, ws.err
}

// weights returns m's linear weights at p, quantized and dequantized to
// float32 (by layer index; nil for layers other than linear), building them
// on the first call for (m, p) and returning the cached set afterwards. p
// must not be FP32 (which uses the model's own weights).
func (b *Backend) weights(m *model.Model, p precision.Format) ([][]float32, error) {
	return converted(b, weightKey{m, p}, func() ([][]float32, error) { return quantizeWeights(m, p) })
}

// quantizeWeights returns, for each linear layer of m, its weight [Out, In]
// as the hardware holds it at p, dequantized to float32 (emulateWeight).
func quantizeWeights(m *model.Model, p precision.Format) ([][]float32, error) {
	out := make([][]float32, len(m.Layers))
	for i := range m.Layers {
		l := &m.Layers[i]
		if l.Op != model.Linear {
			continue
		}
		w, err := emulateWeight(p, nil, l.Weight.Data, l.Out, l.In)
		if err != nil {
			return nil, fmt.Errorf("cpu: model %q: layer %d: %w", m.Name, i, err)
		}
		out[i] = w
	}
	return out, nil
}

// emulateWeight writes into dst (allocated when nil; it may be src) the
// weight src [out, in] as the hardware holds it at p, dequantized to
// float32, and returns it:
//
//	tf32  RoundTF32 of each value
//	bf16  RoundBF16
//	fp16  RoundFP16
//	fp8   E4M3 with one scale per output channel (row), margin 0
//	fp4   NVFP4: E2M1 in blocks of 16 along In, E4M3 block scales, a
//	      float32 tensor scale
func emulateWeight(p precision.Format, dst, src []float32, out, in int) ([]float32, error) {
	if dst == nil {
		dst = make([]float32, len(src))
	}
	switch p {
	case precision.TF32:
		precision.RoundTF32Slice(dst, src)
	case precision.BF16:
		precision.RoundBF16Slice(dst, src)
	case precision.FP16:
		precision.RoundFP16Slice(dst, src)
	case precision.FP8:
		q, err := precision.QuantizeFP8PerChannel(src, out, in, 0)
		if err != nil {
			return nil, fmt.Errorf("fp8 weights: %w", err)
		}
		q.Dequantize(dst)
	case precision.FP4:
		q, err := precision.QuantizeNVFP4(src, out, in)
		if err != nil {
			return nil, fmt.Errorf("fp4 weights: %w", err)
		}
		// Dequantize writes Out × In values: the padding of each stored
		// row (up to a multiple of 16) is left out.
		q.Dequantize(dst)
	default:
		return nil, fmt.Errorf("cpu: no weight emulation for %q", p)
	}
	return dst, nil
}

// roundActivations writes into dst the linear layer input src, rows of
// width values, as the hardware's operand at p holds it: tf32, bf16 or fp16
// rounding; for fp8 E4M3 with one scale per row (per token),
// FP8Scale(amax of the row, the backend's margin), so that a row's result
// does not depend on the rows it is batched with (a row of zeros gets scale
// 1; a NaN is skipped by the amax and a row holding ±Inf gets scale +Inf,
// which makes that row, and only that row, NaN); for fp4 (weight-only
// 4-bit, bf16 activations) bf16 rounding. fp32 copies src. dst may be src.
func (b *Backend) roundActivations(p precision.Format, dst, src []float32, width int) {
	switch p {
	case precision.FP32:
		copy(dst, src)
	case precision.TF32:
		precision.RoundTF32Slice(dst, src)
	case precision.BF16, precision.FP4:
		precision.RoundBF16Slice(dst, src)
	case precision.FP16:
		precision.RoundFP16Slice(dst, src)
	case precision.FP8:
		for r := 0; r+width <= len(src); r += width {
			row := src[r : r+width]
			precision.RoundE4M3Slice(dst[r:r+width], row, precision.FP8Scale(precision.Amax(row), b.fp8Margin))
		}
	default:
		panic("cpu: roundActivations: no emulation for " + string(p))
	}
}

// Evict drops the weights the backend has converted for m at every
// precision (see kernels.Backend). A later Forward of m converts them
// again. It is safe to call concurrently with Forward: a pass already
// running keeps the weights it has.
func (b *Backend) Evict(m *model.Model) {
	for _, p := range precision.All {
		b.cache.Delete(weightKey{m, p})
	}
}
