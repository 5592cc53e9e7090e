package cpu

import (
	"math"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// layer runs decoder layer i over every row of the step:
//
//	h = RMSNorm(x) → q, k, v = h·W_qkvᵀ (+ b) → per-head q/k RMSNorm (qwen3)
//	→ RoPE → K, V into the cache → attention → x += attn·W_oᵀ (+ b)
//	h = RMSNorm(x) → g, u = h·W_guᵀ → x += (SiLU(g)·u)·W_downᵀ
//
// The input of each linear is rounded to the precision's activation format
// first (roundRows). Every step works row by row, so a row's result does
// not depend on the other rows.
func (st *lmStep) layer(i int) {
	c, L, n, t := st.c, &st.w.layers[i], st.rows, st.b.threads
	hid, qd, kvd, inter := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate

	st.norm(st.h, st.x, L.attnNorm, hid)
	st.b.roundRows(st.p, st.h, hid)
	linear(t, st.qkv, st.h, L.qkv, L.qkvBias, n, hid, qd+2*kvd)
	st.qkRope(L)
	st.store(i)
	st.attention(i)
	st.b.roundRows(st.p, st.attn, qd)
	linear(t, st.out, st.attn, L.o, L.oBias, n, qd, hid)
	addInto(st.x, st.out)

	st.norm(st.h, st.x, L.mlpNorm, hid)
	st.b.roundRows(st.p, st.h, hid)
	linear(t, st.gu, st.h, L.gateUp, nil, n, hid, 2*inter)
	for r := range n {
		g, u := st.gu[r*2*inter:r*2*inter+inter], st.gu[r*2*inter+inter:(r+1)*2*inter]
		a := st.act[r*inter : (r+1)*inter]
		for j, v := range g {
			x := float64(v)
			a[j] = float32(x/(1+math.Exp(-x))) * u[j] // SiLU rounded, then the product rounded, as torch
		}
	}
	st.b.roundRows(st.p, st.act, inter)
	linear(t, st.out, st.act, L.down, nil, n, inter, hid)
	addInto(st.x, st.out)
}

// norm writes RMSNorm(src)·w of each row of width into dst.
func (st *lmStep) norm(dst, src, w []float32, width int) {
	eps := st.c.RMSEps
	parallel(threadsFor(st.b.threads, float64(st.rows*width)*costNs(model.RMSNorm), st.rows), st.rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rmsNormRow(dst[r*width:(r+1)*width], src[r*width:(r+1)*width], w, eps)
		}
	})
}

// addInto adds src to dst, elementwise in float32 (the residual add).
func addInto(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// roundRows rounds x, rows of width values, in place to p's format for a
// linear layer's input (roundActivations: fp8 with one scale per row, per
// token). fp32 leaves x alone.
func (b *Backend) roundRows(p precision.Format, x []float32, width int) {
	if p != precision.FP32 {
		b.roundActivations(p, x, x, width)
	}
}
