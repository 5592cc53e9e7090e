package cpu

import (
	"context"

	"github.com/gearbox-inference/gearbox/model"
)

// scratch holds the two buffers a forward pass alternates between. Buffers
// are pooled per Backend and grow to the largest pass seen.
type scratch struct {
	buf [2][]float32
}

// get returns buffer i with length n, reallocating it only if it is too
// small.
func (s *scratch) get(i, n int) []float32 {
	if cap(s.buf[i]) < n {
		s.buf[i] = make([]float32, n)
	}
	return s.buf[i][:n]
}

// forwardFP32 runs a checked model at fp32.
//
// Activations move between the input (read only), two scratch buffers and
// the output: linear layers write to a buffer other than their source, the
// other ops work in place once the values are in a scratch buffer, and the
// last layer writes straight into the output.
func (b *Backend) forwardFP32(ctx context.Context, m *model.Model, in []float32, rows int) ([]float32, error) {
	out := make([]float32, rows*m.OutputFeatures)
	if len(m.Layers) == 0 {
		copy(out, in)
		return out, nil
	}
	var s *scratch
	if len(m.Layers) > 1 {
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
		b.layer(l, dst, src, rows)
		src, cur = dst, next
	}
	return out, nil
}

// scratchNew returns an empty scratch; it is the pool's New function.
func scratchNew() any { return new(scratch) }

// layer computes one fp32 layer for rows rows from src into dst.
func (b *Backend) layer(l *model.Layer, dst, src []float32, rows int) {
	if l.Op == model.Linear {
		var bias []float32
		if l.Bias != nil {
			bias = l.Bias.Data
		}
		linear(b.threads, dst, src, l.Weight.Data, bias, rows, l.In, l.Out)
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
