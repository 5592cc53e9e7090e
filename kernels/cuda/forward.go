//go:build cgo

package cuda

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// forward runs m on rows rows and, when the device runs out of memory on
// a batch of more than one row, frees the free slots' buffers and runs the
// two halves separately (recursively), logging the split. Every row's
// result is the same either way (fp8 scales activations per row).
func (b *Backend) forward(ctx context.Context, m *model.Model, p precision.Format, in, out []float32, rows int, clk *stageClock) error {
	err := b.forwardSlot(ctx, m, p, in, out, rows, clk)
	var we *weightsError
	if err == nil || !isOOM(err) || rows < 2 || errors.As(err, &we) {
		return err // splitting the batch does not shrink the weights
	}
	if derr := b.do(ctx, func(d *devState) error { d.dropPools(); return nil }); derr != nil {
		return derr
	}
	h := rows / 2
	b.log.Warn().Str("device", b.name).Str("model", m.Name).Str("precision", string(p)).
		Int("rows", rows).Int("halves", h).Err(err).Msg("out of device memory; splitting the batch")
	nin, nout := m.InputFeatures, m.OutputFeatures
	if err := b.forward(ctx, m, p, in[:h*nin], out[:h*nout], h, clk); err != nil {
		return err
	}
	return b.forward(ctx, m, p, in[h*nin:], out[h*nout:], rows-h, clk)
}

// forwardSlot runs one batch in a slot of its bucket (slots.go): the input
// to the slot's pinned memory here, the device goroutine queues the pass
// and the slot's event, and here again the wait for the event and the
// output out of pinned memory. clk, when timing is on (stages.go), laps at
// the end of each of those stages.
func (b *Backend) forwardSlot(ctx context.Context, m *model.Model, p precision.Format, in, out []float32, rows int, clk *stageClock) error {
	clk.mark()
	bk := bucket(rows)
	sl, err := b.slots.acquire(ctx, bk)
	if err != nil {
		return err
	}
	defer b.slots.release(bk, sl)
	clk.lap(stageSlot)
	// The slot is ours: its buffers change only in our own queued work.
	staged := sl.buf != nil && sl.buf.width >= maxWidth(m)
	if staged {
		pcopy(sl.buf.hin.floats(len(in)), in)
	}
	clk.lap(stageIn)
	timed := clk != nil
	err = b.do(ctx, func(d *devState) error {
		clk.lap(stageQueue)
		return d.queue(ctx, sl, m, p, in, rows, staged, timed)
	})
	if err != nil {
		return err
	}
	clk.lap(stageLaunch)
	busy, err := b.wait(sl, timed)
	if err != nil {
		return err
	}
	clk.lap(stageWait)
	clk.deviceBusy(busy)
	pcopy(out, sl.buf.hout.floats(len(out)))
	clk.lap(stageOut)
	return nil
}

// wait blocks the calling goroutine until sl's batch has completed, with
// the device's context current on its thread. With timed (the batch was
// queued timed) it returns the GPU's time from sl's start event to its
// done event.
func (b *Backend) wait(sl *slot, timed bool) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.cuctx.setCurrent(); err != nil {
		return 0, err
	}
	if err := sl.done.sync(); err != nil || !timed {
		return 0, err
	}
	ms, err := sl.start.elapsed(sl.done)
	return time.Duration(float64(ms) * float64(time.Millisecond)), err
}

// weightsError is a failure to convert or upload weights.
type weightsError struct{ err error }

func (e *weightsError) Error() string { return e.err.Error() }
func (e *weightsError) Unwrap() error { return e.err }

// queue queues m on rows rows in slot sl: the upload from the slot's pinned
// input (copied there now unless staged), every layer, the download, then
// the slot's event; it does not wait. With timed, sl's start event is
// recorded first (stages.go). The second pass of the same (model,
// precision, rows, slot) is captured into a CUDA graph and later ones
// replay it (graph.go).
func (d *devState) queue(ctx context.Context, sl *slot, m *model.Model, p precision.Format, in []float32, rows int, staged, timed bool) error {
	if timed {
		e, err := sl.startEvent()
		if err != nil {
			return err
		}
		if err := e.record(d.stream); err != nil {
			return err
		}
	}
	key := graphKey{m, p, rows, sl}
	if g := d.graphs[key]; g != nil && staged {
		if err := g.exec.launch(d.stream); err != nil {
			return err
		}
		return sl.done.record(d.stream)
	}
	w, err := d.weightsFor(m, p)
	if err != nil {
		return &weightsError{err}
	}
	buf, err := d.slotBuffers(sl, rows, maxWidth(m))
	if err != nil {
		return err
	}
	if !staged {
		pcopy(buf.hin.floats(len(in)), in)
	}
	if _, err := d.enqueue(ctx, m, p, w, buf, rows); err != nil {
		_ = d.stream.sync()
		return err
	}
	if err := sl.done.record(d.stream); err != nil {
		_ = d.stream.sync()
		return err
	}
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
