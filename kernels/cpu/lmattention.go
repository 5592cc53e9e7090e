package cpu

import (
	"math"
)

// ropeAngles writes RoPE's cos and sin for position pos, as transformers
// computes them in float32: the angle is the float32 product
// invFreq[i]·pos, and its cos and sin are rounded to float32.
func ropeAngles(cos, sin, invFreq []float32, pos int) {
	for i, f := range invFreq {
		a := float64(f * float32(pos))
		cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
}

// rope rotates one head x in place (transformers' rotate_half
// convention): the pairs (x[i], x[i+d/2]) by the angles of cos and sin.
// Each product is rounded before the sum, as torch's q·cos +
// rotate_half(q)·sin is.
func rope(x, cos, sin []float32) {
	half := len(x) / 2
	lo, hi := x[:half], x[half:2*half]
	for i, c := range cos[:half] {
		s := sin[i]
		a, b := lo[i], hi[i]
		lo[i] = float32(a*c) - float32(b*s)
		hi[i] = float32(b*c) + float32(a*s)
	}
}

// qkRope applies the per-head q and k RMSNorm (qwen3) and RoPE to every
// row's q and k heads, in place in st.qkv.
func (st *lmStep) qkRope(L *lmLayer) {
	c := st.c
	d, half, width := c.HeadDim, c.HeadDim/2, c.QDim()+2*c.KVDim()
	heads := c.Heads + c.KVHeads // q heads, then k heads
	parallel(threadsFor(st.b.threads, float64(st.rows*heads*d)*5, st.rows), st.rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			cos, sin := st.cos[r*half:(r+1)*half], st.sin[r*half:(r+1)*half]
			for h := range heads {
				x := st.qkv[r*width+h*d : r*width+(h+1)*d]
				w := L.qNorm
				if h >= c.Heads {
					w = L.kNorm
				}
				if w != nil {
					rmsNormRow(x, x, w, c.RMSEps)
				}
				rope(x, cos, sin)
			}
		}
	})
}

// store writes every row's k and v into the cache at its position, for
// layer.
func (st *lmStep) store(layer int) {
	c := st.c
	qd, kvd, width := c.QDim(), c.KVDim(), c.QDim()+2*c.KVDim()
	for r := range st.rows {
		blocks := st.seqs[st.seq[r]].Blocks
		row := st.qkv[r*width : (r+1)*width]
		st.kv.write(blocks, layer, 0, st.pos[r], row[qd:qd+kvd])
		st.kv.write(blocks, layer, 1, st.pos[r], row[qd+kvd:])
	}
}

// attention computes, for every row and query head, causal softmax
// attention over the cache's positions 0 to the row's own, with
// grouped-query heads (query head h reads KV head h / (Heads/KVHeads)),
// into st.attn. Scores, softmax and the weighted sum of V run in float64
// over the values the cache holds (an E4M3 cache's dequantized exactly)
// and are rounded once; each (row, KV head) is one task, so a row's
// result does not depend on the others.
func (st *lmStep) attention(layer int) {
	c := st.c
	d, width := c.HeadDim, c.QDim()+2*c.KVDim()
	group := c.Heads / c.KVHeads
	scale := 1 / math.Sqrt(float64(d))
	tasks := st.rows * c.KVHeads
	var work float64
	for r := range st.rows {
		work += float64(st.pos[r]+1) * float64(c.Heads*d) * 4 // ns, roughly
	}
	parallel(threadsFor(st.b.threads, work, tasks), tasks, func(lo, hi int) {
		var scores []float64 // [group, positions]
		acc := make([]float64, group*d)
		kv := make([]float64, d) // a position's K or V of the KV head
		sums := make([]float64, group)
		for task := lo; task < hi; task++ {
			r, g := task/c.KVHeads, task%c.KVHeads
			n := st.pos[r] + 1
			blocks := st.seqs[st.seq[r]].Blocks
			if cap(scores) < group*n {
				scores = make([]float64, group*n)
			}
			scores = scores[:group*n]
			q := st.qkv[r*width : r*width+c.QDim()]
			for j := range n {
				st.kv.head(kv, blocks, layer, 0, j, g)
				for h := range group {
					qh := q[(g*group+h)*d : (g*group+h+1)*d]
					var s float64
					for i, v := range kv {
						s += float64(qh[i]) * v
					}
					scores[h*n+j] = s * scale
				}
			}
			for h := range group {
				p := scores[h*n : (h+1)*n]
				hiScore := math.Inf(-1)
				for _, s := range p {
					hiScore = math.Max(hiScore, s)
				}
				var sum float64
				for j, s := range p {
					p[j] = math.Exp(s - hiScore)
					sum += p[j]
				}
				sums[h] = sum
			}
			clear(acc)
			for j := range n {
				st.kv.head(kv, blocks, layer, 1, j, g)
				for h := range group {
					w, a := scores[h*n+j], acc[h*d:(h+1)*d]
					for i, v := range kv {
						a[i] += w * v
					}
				}
			}
			for h := range group {
				out := st.attn[r*c.QDim()+(g*group+h)*d : r*c.QDim()+(g*group+h+1)*d]
				for i, a := range acc[h*d : (h+1)*d] {
					out[i] = float32(a / sums[h])
				}
			}
		}
	})
}
