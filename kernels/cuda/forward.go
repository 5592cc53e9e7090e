//go:build cgo

package cuda

import (
	"context"
	"errors"
	"fmt"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// forwardSplit runs forward and, when the device runs out of memory on a
// batch of more than one row, frees the pooled buffers and runs the two
// halves separately (recursively), logging the split. Every row's result
// is the same either way (fp8 scales activations per row).
func (d *devState) forwardSplit(ctx context.Context, b *Backend, m *model.Model, p precision.Format, in, out []float32, rows int) error {
	err := d.forward(ctx, m, p, in, out, rows)
	var we *weightsError
	if err == nil || !isOOM(err) || rows < 2 || errors.As(err, &we) {
		return err // splitting the batch does not shrink the weights
	}
	d.dropPools()
	h := rows / 2
	b.log.Warn().Str("device", b.name).Str("model", m.Name).Str("precision", string(p)).
		Int("rows", rows).Int("halves", h).Err(err).Msg("out of device memory; splitting the batch")
	nin, nout := m.InputFeatures, m.OutputFeatures
	if err := d.forwardSplit(ctx, b, m, p, in[:h*nin], out[:h*nout], h); err != nil {
		return err
	}
	return d.forwardSplit(ctx, b, m, p, in[h*nin:], out[h*nout:], rows-h)
}

// weightsError is a failure to convert or upload weights.
type weightsError struct{ err error }

func (e *weightsError) Error() string { return e.err.Error() }
func (e *weightsError) Unwrap() error { return e.err }

// forward runs m on rows rows: input to pinned memory, an async copy to the
// device, every layer on the stream, an async copy back, one synchronise.
// The second pass of the same (model, precision, rows) is captured into a
// CUDA graph and later ones replay it (graph.go).
func (d *devState) forward(ctx context.Context, m *model.Model, p precision.Format, in, out []float32, rows int) error {
	key := graphKey{m, p, rows}
	if g := d.graphs[key]; g != nil {
		return d.replay(g, in, out)
	}
	w, err := d.weightsFor(m, p)
	if err != nil {
		return &weightsError{err}
	}
	buf, err := d.buffers(rows, maxWidth(m))
	if err != nil {
		return err
	}
	copy(buf.hin.floats(len(in)), in)
	if _, err := d.enqueue(ctx, m, p, w, buf, rows); err != nil {
		_ = d.stream.sync()
		return err
	}
	if err := d.stream.sync(); err != nil {
		return err
	}
	copy(out, buf.hout.floats(len(out)))
	if d.useGraphs && d.graphSeen[key] >= 0 {
		if d.graphSeen[key]++; d.graphSeen[key] >= 2 {
			d.capture(key, w, buf)
		}
	}
	return nil
}

// enqueue queues a forward pass on the stream: the input from buf.hin, every
// layer, the output to buf.hout. It returns the activation buffer that
// holds the output. ctx is checked between layers.
func (d *devState) enqueue(ctx context.Context, m *model.Model, p precision.Format, w *devWeights, buf *actBuf, rows int) (int, error) {
	if err := d.stream.htodAsync(buf.a[0], buf.hin, 4*rows*m.InputFeatures); err != nil {
		return 0, err
	}
	cur := 0
	for i := 0; i < len(m.Layers); i++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		dl := &w.layers[i]
		src := buf.a[cur]
		switch dl.op {
		case model.Linear:
			// A relu right after a linear layer runs in its epilogue.
			relu := i+1 < len(m.Layers) && m.Layers[i+1].Op == model.ReLU
			if err := d.linear(dl, p, src, buf.a[1-cur], buf.conv, rows, relu); err != nil {
				return 0, fmt.Errorf("cuda: model %q layer %d (linear, %s): %w", m.Name, i, p, err)
			}
			cur = 1 - cur
			if relu {
				i++
			}
		default:
			if err := d.op(dl, src, rows); err != nil {
				return 0, fmt.Errorf("cuda: model %q layer %d (%s): %w", m.Name, i, dl.op, err)
			}
		}
	}
	if err := d.stream.dtohAsync(buf.hout, buf.a[cur], 4*rows*m.OutputFeatures); err != nil {
		return 0, err
	}
	return cur, nil
}

// op runs a layer other than linear in place on x (rows × dl.in values).
func (d *devState) op(dl *devLayer, x uint64, rows int) error {
	if act, ok := activationOf(dl.op); ok {
		return d.k.act(d.stream, x, x, rows*dl.in, act)
	}
	switch dl.op {
	case model.Softmax:
		return d.k.softmax(d.stream, x, x, rows, dl.in)
	case model.LayerNorm:
		return d.k.layerNorm(d.stream, x, x, rows, dl.in, dl.w, dl.bias, dl.eps)
	case model.RMSNorm:
		return d.k.rmsNorm(d.stream, x, x, rows, dl.in, dl.w, dl.eps)
	}
	return fmt.Errorf("unknown op %q", dl.op)
}
