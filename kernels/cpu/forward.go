package cpu

import (
	"context"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// scratch holds the two buffers a forward pass alternates between, and a
// third that holds a copy of the caller's input rounded to a reduced
// precision. Buffers are pooled per Backend and grow to the largest pass
// seen.
type scratch struct {
	buf [3][]float32
}

// roundedIn is the scratch buffer for the rounded caller's input.
const roundedIn = 2

// get returns buffer i with length n, reallocating it only if it is too
// small.
func (s *scratch) get(i, n int) []float32 {
	if cap(s.buf[i]) < n {
		s.buf[i] = make([]float32, n)
	}
	return s.buf[i][:n]
}

// forward runs a checked model at precision p. ws holds the linear weights
// converted for p (by layer index); it is nil at fp32, which uses the
// model's weights as they are.
//
// Activations move between the input (read only), two scratch buffers and
// the output: linear layers write to a buffer other than their source, the
// other ops work in place once the values are in a scratch buffer, and the
// last layer writes straight into the output. Below fp32 a linear layer's
// input is first rounded to p: in place when it is in a scratch buffer
// (nothing else reads it), into the third scratch buffer when it is the
// caller's input.
func (b *Backend) forward(ctx context.Context, m *model.Model, p precision.Format, ws [][]float32, in []float32, rows int) ([]float32, error) {
	out := make([]float32, rows*m.OutputFeatures)
	if len(m.Layers) == 0 {
		copy(out, in)
		return out, nil
	}
	emulate := p != precision.FP32 && rows > 0
	var s *scratch
	if len(m.Layers) > 1 || emulate {
		s = b.scratch.Get().(*scratch)
		defer b.scratch.Put(s)
	}

	src, cur := in, -1 // cur: the scratch buffer src is, or -1 for in
	for i := range m.Layers {
		if i > 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		l := &m.Layers[i]
		var dst []float32
		next := cur
		switch {
		case i == len(m.Layers)-1:
			dst = out
		case l.Op == model.Linear || cur < 0:
			next = (cur + 1) % 2 // -1 → 0, 0 → 1, 1 → 0
			dst = s.get(next, rows*l.Out)
		default:
			dst = src[:rows*l.Out] // in place
		}
		var w []float32
		x := src
		if emulate && l.Op == model.Linear {
			w = ws[i]
			if cur < 0 {
				x = s.get(roundedIn, len(src))
			}
			b.roundActivations(p, x, src, l.In)
		}
		b.layer(l, w, dst, x, rows)
		src, cur = dst, next
	}
	return out, nil
}

// scratchNew returns an empty scratch; it is the pool's New function.
func scratchNew() any { return new(scratch) }

// layer computes one fp32 layer for rows rows from src into dst. A linear
// layer multiplies by weight, or by its own weight when weight is nil.
func (b *Backend) layer(l *model.Layer, weight, dst, src []float32, rows int) {
	if l.Op == model.Linear {
		if weight == nil {
			weight = l.Weight.Data
		}
		var bias []float32
		if l.Bias != nil {
			bias = l.Bias.Data
		}
		linear(b.threads, dst, src, weight, bias, rows, l.In, l.Out)
		return
	}
	n := rows * l.In
	work := float64(n) * costNs(l.Op)
	if f := elementwise(l.Op); f != nil {
		parallel(threadsFor(b.threads, work, n), n, func(lo, hi int) {
			f(dst[lo:hi], src[lo:hi])
		})
		return
	}
	f := rowwise(l.Op)
	w := l.In
	parallel(threadsFor(b.threads, work, rows), rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			f(l, dst[r*w:(r+1)*w], src[r*w:(r+1)*w])
		}
	})
}
