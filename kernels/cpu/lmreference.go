package cpu

import (
	"fmt"
	"math"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
)

// LMReference runs m over tokens, at positions 0 to len(tokens)−1, in
// float64 and returns every position's logits: len(tokens) × vocab values,
// row-major.
//
// It is the executable specification of the language-model forward pass:
// plain loops in float64 over the weights widened exactly from their
// stored dtype, no cache, no paging, RoPE from Config.InvFreq64. Backends
// at every precision and their tests measure their error against it. For
// each position x (the token's embedding), then each layer:
//
//	h = rmsnorm(x)·w_in                     rmsnorm(v) = v / √(Σv²/n + eps)
//	q = W_q·h + b_q, k = W_k·h + b_k, v = W_v·h + b_v   (biases if present)
//	per head: q_h = rmsnorm(q_h)·w_qn, k_h = rmsnorm(k_h)·w_kn   (qwen3)
//	per head: q_h, k_h rotated by RoPE at the position
//	a_h = Σ_{j ≤ pos} softmax_j(q_h·k_{j,g} / √d) · v_{j,g}     g = h / (Heads/KVHeads)
//	x += W_o·a (+ b_o)
//	h = rmsnorm(x)·w_post;  x += W_down·(silu(W_gate·h) ⊙ W_up·h)
//
// and finally logits = W_head·(rmsnorm(x)·w_norm).
func LMReference(m *lm.Model, tokens []int32) ([]float64, error) {
	c := &m.Config
	for i, t := range tokens {
		if t < 0 || int(t) >= c.Vocab {
			return nil, fmt.Errorf("cpu: token %d = %d is not a token id (vocab %d)", i, t, c.Vocab)
		}
	}
	n, hid, d := len(tokens), c.Hidden, c.HeadDim
	qd, group := c.QDim(), c.Heads/c.KVHeads
	w := &m.Weights
	// Each tensor is widened once per call.
	wide := make(map[*model.RawTensor][]float64)
	widen := func(t *model.RawTensor) []float64 {
		if t == nil {
			return nil
		}
		if _, ok := wide[t]; !ok {
			wide[t] = widen64(t)
		}
		return wide[t]
	}
	linear := func(l lm.Linear, x []float64) []float64 {
		return refLinear(widen(l.Weight), widen(l.Bias), x)
	}
	embed := widen(w.Embed)
	x := make([][]float64, n)
	for t, tok := range tokens {
		x[t] = append([]float64(nil), embed[int(tok)*hid:(int(tok)+1)*hid]...)
	}
	invFreq := c.InvFreq64()
	for _, l := range w.Layers {
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := range n {
			h := refRMSNorm(x[t], widen(l.AttnNorm), c.RMSEps)
			q[t], k[t], v[t] = linear(l.Q, h), linear(l.K, h), linear(l.V, h)
			for hd := range c.Heads {
				refHead(q[t][hd*d:(hd+1)*d], widen(l.QNorm), c.RMSEps, invFreq, t)
			}
			for g := range c.KVHeads {
				refHead(k[t][g*d:(g+1)*d], widen(l.KNorm), c.RMSEps, invFreq, t)
			}
		}
		for t := range n {
			a := make([]float64, qd)
			for hd := range c.Heads {
				g := hd / group
				qh := q[t][hd*d : (hd+1)*d]
				scores := make([]float64, t+1)
				hi := math.Inf(-1)
				for j := range t + 1 {
					var s float64
					for i := range d {
						s += qh[i] * k[j][g*d+i]
					}
					scores[j] = s / math.Sqrt(float64(d))
					hi = math.Max(hi, scores[j])
				}
				var sum float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - hi)
					sum += scores[j]
				}
				for j := range t + 1 {
					for i := range d {
						a[hd*d+i] += scores[j] / sum * v[j][g*d+i]
					}
				}
			}
			o := linear(l.O, a)
			for i := range hid {
				x[t][i] += o[i]
			}
			h := refRMSNorm(x[t], widen(l.MLPNorm), c.RMSEps)
			gate, up := linear(l.Gate, h), linear(l.Up, h)
			for i, g := range gate {
				gate[i] = g / (1 + math.Exp(-g)) * up[i]
			}
			down := linear(l.Down, gate)
			for i := range hid {
				x[t][i] += down[i]
			}
		}
	}
	norm, head := widen(w.Norm), widen(w.Head)
	logits := make([]float64, n*c.Vocab)
	for t := range n {
		h := refRMSNorm(x[t], norm, c.RMSEps)
		for o := range c.Vocab {
			var s float64
			for i, hv := range h {
				s += hv * head[o*hid+i]
			}
			logits[t*c.Vocab+o] = s
		}
	}
	return logits, nil
}

// refHead applies a head's optional RMSNorm (weight norm; nil for none)
// and RoPE at pos, in place.
func refHead(x, norm []float64, eps float64, invFreq []float64, pos int) {
	if norm != nil {
		copy(x, refRMSNorm(x, norm, eps))
	}
	half := len(x) / 2
	for i, f := range invFreq {
		s, c := math.Sincos(float64(pos) * f)
		a, b := x[i], x[i+half]
		x[i], x[i+half] = a*c-b*s, b*c+a*s
	}
}

// refRMSNorm returns x / √(Σx²/n + eps) · w.
func refRMSNorm(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	rms := math.Sqrt(ss/float64(len(x)) + eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v / rms * w[i]
	}
	return y
}

// refLinear returns w·x + b for a weight w [out, len(x)] and a bias b
// [out] (nil for none).
func refLinear(w, b, x []float64) []float64 {
	in := len(x)
	y := make([]float64, len(w)/in)
	for o := range y {
		var s float64
		for i, v := range x {
			s += w[o*in+i] * v
		}
		if b != nil {
			s += b[o]
		}
		y[o] = s
	}
	return y
}

// widen64 returns t's elements as float64 (exactly).
func widen64(t *model.RawTensor) []float64 {
	y := make([]float64, t.Len())
	for i := range y {
		y[i] = float64(t.At(i))
	}
	return y
}
