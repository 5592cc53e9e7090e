package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// The executor runs the batcher's batches in three stages, one goroutine
// each, joined by channels that keep the batches in order: gather copies a
// batch's live rows into an input buffer, compute runs the backend, finish
// scatters the output back into the jobs. While the backend computes batch
// N, batch N+1 is gathered and batch N−1 finished. A job whose last rows
// are done is answered (answer) by one of Codecs encoders, or by finish
// itself when its result is under inlineBytes or an error.
//
// Only finish writes a task's batch-time state (rows done, first error,
// output, the release of its model), so a job split over two batches in
// the pipeline at once needs no lock; gather reads only what admission
// fixed before the task reached the batcher.

// pass is one batch on its way through the executor's stages.
type pass struct {
	b       batcher.Batch[*task]
	id      string
	drop    bool                  // hard stop: compute and answer nothing
	expired []batcher.Part[*task] // parts past their deadline at gather: not computed
	live    []batcher.Part[*task] // parts computed; Offset is within in
	rows    int                   // rows of live
	m       *model.Model          // the version the batch runs
	prec    precision.Format
	in      []float32      // an input buffer, from gather until compute gives it back
	out     []float32      // the output rows
	outBuf  bool           // out is an output buffer of the stages', until finish gives it back
	err     error          // Forward failed
	refused *gearbox.Error // an isolated job that may not run again
	start   time.Time
	compute time.Duration
}

// inputBuffers is how many input buffers the stages share: one being
// gathered, one computing, one spare; and as many output buffers (with a
// kernels.IntoForwarder backend): one computing, one waiting for finish,
// one being finished.
const inputBuffers = 3

// execute runs the batcher's batches until the batcher is drained and
// closed and every job they completed has been answered.
func (w *Worker) execute(ctx context.Context) {
	free := make(chan []float32, inputBuffers)
	for range inputBuffers {
		free <- nil
	}
	// A backend that writes into the caller's slice gets output buffers
	// too, which finish gives back: no allocation per batch.
	into, _ := w.backend.(kernels.IntoForwarder)
	var outs chan []float32
	if into != nil {
		outs = make(chan []float32, inputBuffers)
		for range inputBuffers {
			outs <- nil
		}
	}
	gathered := make(chan *pass)    // unbuffered: gather is one batch ahead
	computed := make(chan *pass, 1) // finish may lag one batch behind
	done := make(chan *task, w.cfg.Codecs)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(gathered)
		for b := range w.batch.Batches() {
			gathered <- w.gather(ctx, b, free)
		}
	})
	wg.Go(func() {
		defer close(computed)
		for p := range gathered {
			w.compute(ctx, p, into, outs)
			if p.in != nil {
				free <- p.in
				p.in = nil
			}
			computed <- p
		}
	})
	wg.Go(func() {
		defer close(done)
		for p := range computed {
			w.finish(ctx, p, func(t *task) {
				// A small result is cheaper to encode than to hand over.
				if t.err != nil || 4*t.rows*t.model.OutputFeatures < inlineBytes {
					w.answer(ctx, t)
				} else {
					done <- t
				}
			})
			if p.outBuf {
				outs <- p.out // finish copied the rows into their jobs
			}
		}
	})
	for range w.cfg.Codecs {
		wg.Go(func() {
			for t := range done {
				w.answer(ctx, t)
			}
		})
	}
	wg.Wait()
}

// gather sets aside b's expired parts and copies the rows of the others
// into an input buffer taken from free.
func (w *Worker) gather(ctx context.Context, b batcher.Batch[*task], free <-chan []float32) *pass {
	p := &pass{b: b, id: fmt.Sprintf("%s-%d", w.cfg.Name, b.ID), prec: precision.Format(b.Key.Precision)}
	if ctx.Err() != nil {
		p.drop = true
		return p
	}
	now := w.nowFn()
	p.live = make([]batcher.Part[*task], 0, len(b.Parts))
	for _, part := range b.Parts {
		t := part.Item.Value
		if d := t.job.DeadlineTime(); !d.IsZero() && !now.Before(d) {
			p.expired = append(p.expired, part)
			continue
		}
		part.Offset = p.rows // offsets within the computed rows
		p.live = append(p.live, part)
		p.rows += part.Rows
	}
	if p.rows == 0 {
		return p
	}
	// Every task of the batch holds its model version until finish has
	// seen its last part, so the first live one's is held until then.
	p.m = p.live[0].Item.Value.model
	fin := p.m.InputFeatures
	in := (<-free)[:0]
	for _, part := range p.live {
		t := part.Item.Value
		in = append(in, t.in[part.Start*fin:(part.Start+part.Rows)*fin]...)
	}
	p.in = in
	return p
}

// compute runs p's live rows on the backend. An isolated batch first
// records its attempt: here, with no other batch of this worker computing,
// so a death in another batch's Forward is not charged to it. With into
// (the backend as a kernels.IntoForwarder) the output goes to a buffer
// from outs, which finish gives back.
func (w *Worker) compute(ctx context.Context, p *pass, into kernels.IntoForwarder, outs chan []float32) {
	if p.drop || p.rows == 0 {
		return
	}
	if ctx.Err() != nil {
		p.drop = true
		return
	}
	if p.b.Key.Isolate != 0 {
		if p.refused = w.mayRunIsolated(ctx, p.live[0].Item.Value); p.refused != nil {
			return
		}
	}
	var out []float32
	if into != nil {
		n := p.rows * p.m.OutputFeatures
		if out = <-outs; cap(out) < n {
			out = make([]float32, n)
		}
		out, p.outBuf = out[:n], true
	}
	p.start = w.nowFn()
	p.out, p.err = w.forward(ctx, into, p.m, p.prec, p.in, p.rows, out)
	p.compute = w.nowFn().Sub(p.start)
	if p.err != nil {
		return
	}
	if w.checker != nil {
		w.checker.Offer(p.start, p.m, p.prec, p.id, p.in, p.out, p.rows)
	}
	if w.met != nil {
		w.met.batchRows.WithLabelValues(p.m.Name, string(p.prec)).Observe(float64(p.rows))
		w.met.computeSec.WithLabelValues(p.m.Name, string(p.prec)).Observe(p.compute.Seconds())
	}
}

// finish scatters p's output rows back into their jobs, or records why
// they failed, and passes every job p completes to done. On a hard stop it
// lets go of the jobs' model versions and answers nothing.
func (w *Worker) finish(ctx context.Context, p *pass, done func(*task)) {
	if p.drop || ctx.Err() != nil {
		for _, part := range p.b.Parts {
			w.releaseModel(part.Item.Value)
		}
		return
	}
	for _, part := range p.expired {
		t := part.Item.Value
		t.fail(w.expired(t))
		partDone(part, done)
	}
	switch {
	case p.refused != nil:
		for _, part := range p.live {
			t := part.Item.Value
			t.fail(p.refused)
			t.poison = true
			partDone(part, done)
		}
		return
	case p.err != nil:
		w.log.Error().Err(p.err).Str("batch", p.id).Str("model", p.m.Name).Str("precision", string(p.prec)).
			Int("rows", p.rows).Msg("forward failed")
		for _, part := range p.live {
			part.Item.Value.fail(gearbox.Errorf(gearbox.CodeInternal, "forward pass on %s failed: %v", w.backend.Name(), p.err))
			partDone(part, done)
		}
		return
	}
	fout := p.m.OutputFeatures
	for _, part := range p.live {
		t := part.Item.Value
		if t.err == nil { // else an earlier part failed: these rows are not used
			if t.out == nil {
				t.out = make([]float32, t.rows*fout)
			}
			copy(t.out[part.Start*fout:(part.Start+part.Rows)*fout], p.out[part.Offset*fout:(part.Offset+part.Rows)*fout])
		}
		if t.batch == "" {
			t.batch, t.batchRows = p.id, p.rows
			t.queued = p.start.Sub(t.published)
			if w.met != nil {
				w.met.queueSec.WithLabelValues(p.m.Name).Observe(t.queued.Seconds())
			}
		}
		t.compute += p.compute
		partDone(part, done)
	}
}

// partDone accounts for a part's rows and passes its job to done once
// every row of it is accounted for.
func partDone(p batcher.Part[*task], done func(*task)) {
	if t := p.Item.Value; t.partDone(p.Rows) {
		done(t)
	}
}

// forward runs the backend (into out with into, else a new slice), turning
// a panic in it into an error: the batch fails (and is retried, each job
// alone) instead of the worker.
func (w *Worker) forward(ctx context.Context, into kernels.IntoForwarder, m *model.Model, prec precision.Format, in []float32, rows int, out []float32) (res []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("backend panic: %v", r)
		}
	}()
	if into != nil {
		return out, into.ForwardInto(ctx, m, prec, in, rows, out)
	}
	return w.backend.Forward(ctx, m, prec, in, rows)
}

// mayRunIsolated records an isolated attempt of t (see attempts.go) and
// returns nil when t may run, or the error it fails with when a worker died
// computing it too often (poison).
func (w *Worker) mayRunIsolated(ctx context.Context, t *task) *gearbox.Error {
	if w.met != nil {
		w.met.isolated.Inc()
	}
	prior, err := w.attempts.start(ctx, t.seq)
	if err != nil {
		// Run it anyway: the delivery backstop still bounds it.
		w.log.Warn().Err(err).Uint64("seq", t.seq).Msg("record an isolated attempt")
		return nil
	}
	if prior < poisonAttempts {
		return nil
	}
	return gearbox.Errorf(gearbox.CodeInternal, "a worker died computing this job %d times; gave up", prior)
}

// answer ends a job whose every row is computed or failed: with its result,
// converted to the output dtype it asked for, or with its first error. It
// runs on one of the executor's encoders; on a hard stop it only lets go
// of the job's model version.
func (w *Worker) answer(ctx context.Context, t *task) {
	switch {
	case ctx.Err() != nil:
		w.releaseModel(t)
		return
	case t.err != nil && t.poison:
		w.end(ctx, t, w.giveUp(t, t.err))
		return
	case t.err != nil:
		w.end(ctx, t, w.errorEnding(t, t.err))
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
