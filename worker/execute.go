package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// execute runs the batcher's batches, one at a time, until the batcher is
// drained and closed.
func (w *Worker) execute(ctx context.Context) {
	var in []float32
	for b := range w.batch.Batches() {
		if ctx.Err() != nil {
			// Hard stop: compute and answer nothing more, but let go of
			// the model versions.
			for _, p := range b.Parts {
				w.releaseModel(p.Item.Value)
			}
			continue
		}
		in = w.runBatch(ctx, b, in)
	}
}

// runBatch computes one batch and ends the jobs it completes. in is a
// reusable input buffer; the grown buffer is returned.
func (w *Worker) runBatch(ctx context.Context, b batcher.Batch[*task], in []float32) []float32 {
	now := w.nowFn()
	prec := precision.Format(b.Key.Precision)
	id := fmt.Sprintf("%s-%d", w.cfg.Name, b.ID)

	// Parts of jobs that expired or already failed are not computed.
	live := make([]batcher.Part[*task], 0, len(b.Parts))
	rows := 0
	for _, p := range b.Parts {
		t := p.Item.Value
		if d := t.job.DeadlineTime(); !d.IsZero() && !now.Before(d) {
			t.fail(w.expired(t))
		}
		if t.err != nil {
			w.partDone(ctx, p)
			continue
		}
		p.Offset = rows // offsets within the computed rows
		live = append(live, p)
		rows += p.Rows
	}
	if rows == 0 {
		return in
	}
	// The batch runs the version its first live job holds: the jobs ended
	// above may have released theirs.
	first := live[0].Item.Value
	m := first.model
	if b.Key.Isolate != 0 && !w.mayRunIsolated(ctx, first) {
		w.partDone(ctx, live[0])
		return in
	}
	fin, fout := m.InputFeatures, m.OutputFeatures
	in = in[:0]
	for _, p := range live {
		t := p.Item.Value
		in = append(in, t.in[p.Start*fin:(p.Start+p.Rows)*fin]...)
	}

	start := w.nowFn()
	out, err := w.forward(ctx, m, prec, in, rows)
	compute := w.nowFn().Sub(start)
	if err != nil {
		if ctx.Err() != nil { // hard stop
			for _, p := range live {
				w.releaseModel(p.Item.Value)
			}
			return in
		}
		w.log.Error().Err(err).Str("batch", id).Str("model", m.Name).Str("precision", string(prec)).
			Int("rows", rows).Msg("forward failed")
		for _, p := range live {
			p.Item.Value.fail(gearbox.Errorf(gearbox.CodeInternal, "forward pass on %s failed: %v", w.backend.Name(), err))
			w.partDone(ctx, p)
		}
		return in
	}
	if w.checker != nil {
		w.checker.Offer(start, m, prec, id, in, out, rows)
	}
	if w.met != nil {
		w.met.batchRows.WithLabelValues(m.Name, string(prec)).Observe(float64(rows))
		w.met.computeSec.WithLabelValues(m.Name, string(prec)).Observe(compute.Seconds())
	}
	for _, p := range live {
		t := p.Item.Value
		if t.out == nil {
			t.out = make([]float32, t.rows*fout)
		}
		copy(t.out[p.Start*fout:(p.Start+p.Rows)*fout], out[p.Offset*fout:(p.Offset+p.Rows)*fout])
		if t.batch == "" {
			t.batch, t.batchRows = id, rows
			t.queued = start.Sub(t.published)
			if w.met != nil {
				w.met.queueSec.WithLabelValues(m.Name).Observe(t.queued.Seconds())
			}
		}
		t.compute += compute
		w.partDone(ctx, p)
	}
	return in
}

// forward runs the backend, turning a panic in it into an error: the batch
// fails (and is retried, each job alone) instead of the worker.
func (w *Worker) forward(ctx context.Context, m *model.Model, prec precision.Format, in []float32, rows int) (out []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("backend panic: %v", r)
		}
	}()
	return w.backend.Forward(ctx, m, prec, in, rows)
}

// mayRunIsolated records an isolated attempt of t (see attempts.go) and
// reports whether t may run; when it may not, t has failed.
func (w *Worker) mayRunIsolated(ctx context.Context, t *task) bool {
	if w.met != nil {
		w.met.isolated.Inc()
	}
	prior, err := w.attempts.start(ctx, t.seq)
	if err != nil {
		// Run it anyway: the delivery backstop still bounds it.
		w.log.Warn().Err(err).Uint64("seq", t.seq).Msg("record an isolated attempt")
		return true
	}
	if prior < poisonAttempts {
		return true
	}
	t.fail(gearbox.Errorf(gearbox.CodeInternal, "a worker died computing this job %d times; gave up", prior))
	t.poison = true
	return false
}

// partDone accounts for a part's rows and ends its job once every row of it
// is accounted for.
func (w *Worker) partDone(ctx context.Context, p batcher.Part[*task]) {
	t := p.Item.Value
	if !t.partDone(p.Rows) {
		return
	}
	if t.err != nil {
		if t.poison {
			w.end(ctx, t, w.giveUp(t, t.err))
		} else {
			w.end(ctx, t, w.errorEnding(t, t.err))
		}
		return
	}
	out := gearbox.NewTensorAs(t.rows, t.model.OutputFeatures, t.out, t.job.OutputDType)
	r := &gearbox.Result{
		NonFinite: out.NonFinite(),
		ID:        t.job.ID,
		Model:     t.job.Model,
		Output:    &out,
		Precision: t.prec,
		PolicyRev: t.policyRev,
		Worker:    w.cfg.Name,
		Batch:     t.batch,
		BatchRows: t.batchRows,
		QueuedMs:  ms(t.queued),
		ComputeMs: ms(t.compute),
		Meta:      t.job.Meta,
	}
	t.out, t.in = nil, nil
	w.end(ctx, t, ending{result: r})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
