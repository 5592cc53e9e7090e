package cpu

import (
	"fmt"
	"slices"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmKey names one language model's converted weights at one precision, in
// the same cache as the tensor models' (weightKey).
type lmKey struct {
	m *lm.Model
	p precision.Format
}

// lmWeights are a language model's weights as the CPU runs them at one
// precision: widened to float32, linear weights emulated at the
// precision's weight format (emulateWeight), and the projections that read
// the same input fused into one matrix.
type lmWeights struct {
	embed   []float32 // [vocab, hidden], in the activation format
	layers  []lmLayer
	norm    []float32 // [hidden]
	head    []float32 // [vocab, hidden], in the head's format; may be embed
	invFreq []float32 // RoPE's inverse frequencies, as transformers computes them
}

// lmLayer is one decoder layer's converted weights.
type lmLayer struct {
	attnNorm, mlpNorm []float32 // [hidden]
	qkv               []float32 // q, k and v stacked: [qDim + 2·kvDim, hidden]
	qkvBias           []float32 // [qDim + 2·kvDim], or nil
	o, oBias          []float32 // [hidden, qDim]; [hidden] or nil
	qNorm, kNorm      []float32 // [headDim] (qwen3), or nil
	gateUp            []float32 // gate and up stacked: [2·intermediate, hidden]
	down              []float32 // [hidden, intermediate]
}

// roundTable rounds a lookup table (the embedding) to p's activation
// format in place: bf16 at bf16, fp8 and fp4; fp16 at fp16; unchanged at
// fp32 and tf32 (a lookup does no arithmetic).
func roundTable(p precision.Format, t []float32) {
	switch p {
	case precision.BF16, precision.FP8, precision.FP4:
		precision.RoundBF16Slice(t, t)
	case precision.FP16:
		precision.RoundFP16Slice(t, t)
	}
}

// lmWeightsFor returns m's weights converted for p, building them on the
// first call for (m, p) and returning the cached set afterwards.
func (b *Backend) lmWeightsFor(m *lm.Model, p precision.Format) (*lmWeights, error) {
	return converted(b, lmKey{m, p}, func() (*lmWeights, error) { return convertLM(m, p) })
}

// EvictLM drops the weights the backend has converted for m at every
// precision. A later Step of m converts them again. It is safe to call
// concurrently with Step.
func (b *Backend) EvictLM(m *lm.Model) {
	for _, p := range precision.All {
		b.cache.Delete(lmKey{m, p})
	}
}

// convertLM converts m's weights for p.
func convertLM(m *lm.Model, p precision.Format) (*lmWeights, error) {
	w := &m.Weights
	c := &m.Config
	out := &lmWeights{
		embed:   w.Embed.Float32(nil),
		norm:    w.Norm.Float32(nil),
		layers:  make([]lmLayer, len(w.Layers)),
		invFreq: c.InvFreq32(),
	}
	var err error
	lin := func(f precision.Format, t *model.RawTensor) []float32 {
		if err != nil {
			return nil
		}
		x := t.Float32(nil)
		if f == precision.FP32 {
			return x
		}
		var e error
		if x, e = emulateWeight(f, x, x, t.Shape[0], t.Shape[1]); e != nil {
			err = fmt.Errorf("cpu: model %q: tensor %q: %w", m.Name, t.Name, e)
		}
		return x
	}
	vec := func(t *model.RawTensor) []float32 {
		if t == nil {
			return nil
		}
		return t.Float32(nil)
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		ll := lmLayer{
			attnNorm: vec(l.AttnNorm),
			mlpNorm:  vec(l.MLPNorm),
			qkv:      slices.Concat(lin(p, l.Q.Weight), lin(p, l.K.Weight), lin(p, l.V.Weight)),
			o:        lin(p, l.O.Weight),
			oBias:    vec(l.O.Bias),
			qNorm:    vec(l.QNorm),
			kNorm:    vec(l.KNorm),
			gateUp:   slices.Concat(lin(p, l.Gate.Weight), lin(p, l.Up.Weight)),
			down:     lin(p, l.Down.Weight),
		}
		if l.Q.Bias != nil {
			ll.qkvBias = slices.Concat(vec(l.Q.Bias), vec(l.K.Bias), vec(l.V.Bias))
		}
		out.layers[i] = ll
	}
	switch {
	case w.Head != w.Embed:
		out.head = lin(kernels.LMHeadFormat(p), w.Head)
	case p == precision.TF32:
		out.head = lin(p, w.Embed) // the table stays fp32; the head's operand is tf32
	default:
		// Tied, and the table's rounding (roundTable, below) is the head's
		// own: fp32 none, bf16 (also for fp8 and fp4, whose head is bf16)
		// and fp16 round to nearest even.
		out.head = out.embed
	}
	if err != nil {
		return nil, err
	}
	roundTable(p, out.embed)
	return out, nil
}
