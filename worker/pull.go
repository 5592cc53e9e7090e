package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/internal/pull"
	"github.com/gearbox-inference/gearbox/precision"
)

// pull reads jobs from the consumer and admits them until a graceful stop
// (it drains the prefetched jobs first) or a hard stop. If the consumer is
// deleted under it, it binds again (re-creating it when provisioning).
func (w *Worker) pull(ctx context.Context, cons jetstream.Consumer) error {
	adm := w.startAdmission(ctx)
	defer adm.stop() // every job pulled is in the batcher (or an engine) or dropped
	for {
		err := w.pullFrom(ctx, cons, adm)
		if !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		w.log.Warn().Err(err).Msg("consumer gone; binding again")
		w.ready.Store(false)
		if cons, err = w.bindConsumer(ctx); err != nil {
			return nil // stopped while binding
		}
		w.ready.Store(true)
	}
}

func (w *Worker) pullFrom(ctx context.Context, cons jetstream.Consumer, adm *admission) error {
	// At most Prefetch jobs are requested or wait in the client's buffer,
	// and at most PrefetchBytes are asked for at once; the batcher bounds
	// the rest. The buffer has room for every job requested (internal/pull).
	l, err := pull.Start(ctx, cons, pull.Options{
		Max: w.cfg.Prefetch, MaxBytes: w.cfg.PrefetchBytes, Expiry: w.cfg.PullExpiry,
		// A pull the server refused (say "Exceeded MaxRequestBatch")
		// is worth an operator's eye; the loop retries with backoff.
		OnError: func(err error) { w.log.Warn().Err(err).Msg("pull") },
	})
	if err != nil {
		return err
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-w.graceful:
			l.Drain() // the open requests still deliver, to Next
		case <-stopped:
			l.Stop()
		}
	}()
	for {
		msg, err := l.Next()
		if errors.Is(err, pull.ErrDone) {
			return ctx.Err() // nil after a graceful stop
		}
		if err != nil {
			return err // the consumer is gone (bind again) or the connection closed
		}
		if ctx.Err() != nil {
			return ctx.Err() // hard stop: leave it unacked
		}
		if err := adm.submit(ctx, w.newTask(msg)); err != nil {
			return err
		}
	}
}

// newTask is a pulled message's task, stamped with its arrival and its
// delivery metadata.
func (w *Worker) newTask(msg jetstream.Msg) *task {
	now := w.nowFn()
	t := &task{msg: msg, arrived: now, published: now}
	t.touched.Store(now.UnixNano())
	subj := msg.Subject()
	t.token = subj[strings.LastIndexByte(subj, '.')+1:]
	if meta, err := msg.Metadata(); err == nil {
		t.seq, t.delivered, t.published = meta.Sequence.Stream, meta.NumDelivered, meta.Timestamp
	}
	if t.delivered > 1 && w.met != nil {
		w.met.redeliver.Inc()
	}
	return t
}

// decode decodes and checks t's job (prepare). A job that can run is
// tracked; one that cannot is ended at once. It runs on one of the
// admission's decoders, or for a small job on the pull goroutine.
func (w *Worker) decode(ctx context.Context, t *task) {
	if t.decoded != nil {
		defer close(t.decoded)
	}
	end, ok := w.prepare(ctx, t)
	if !ok {
		w.end(ctx, t, end)
		return
	}
	t.admitted = true
	w.track(t)
	if w.met != nil {
		w.met.received.WithLabelValues(t.modelName()).Inc()
	}
}

// enqueue hands an admitted job to the batcher, or to its language-model
// engine. It returns an error only when the worker is stopping hard; the
// job is then dropped (redelivered after AckWait).
func (w *Worker) enqueue(ctx context.Context, t *task) error {
	if t.lm != nil {
		return w.startLM(ctx, t)
	}
	key := batcher.Key{Model: t.model.Name + "@" + t.model.Digest, Precision: string(t.prec)}
	if t.isolated {
		key.Isolate = t.seq
	}
	it := &item{Key: key, Rows: t.rows, Bytes: t.bytes, Priority: t.job.Priority, Deadline: t.job.DeadlineTime(), Value: t}
	if err := w.batch.Add(ctx, it); err != nil {
		w.untrack(t)
		w.releaseModel(t)
		// Only a hard stop gets here: the batcher is closed after pulling
		// ends. The job stays unacked and is redelivered.
		return err
	}
	return nil
}

// prepare decodes and checks t's job against its model and selects its
// precision. When the job cannot run, it returns how it ends and false.
// A panic here (a bug) ends the job with an internal error rather than the
// worker.
func (w *Worker) prepare(ctx context.Context, t *task) (end ending, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error().Interface("panic", r).Str("job", t.id()).Uint64("seq", t.seq).Msg("admitting a job panicked")
			end, ok = w.errorEnding(t, gearbox.Errorf(gearbox.CodeInternal, "worker fault while admitting the job: %v", r)), false
		}
	}()
	if e := w.check(ctx, t); e != nil {
		t.fail(e)
		if t.delivered > w.lastDelivery() {
			return w.giveUp(t, e), false
		}
		return w.errorEnding(t, e), false
	}
	if t.delivered > w.lastDelivery() {
		return w.giveUp(t, gearbox.Errorf(gearbox.CodeInternal, "job was delivered %d times and never answered (workers died holding it); gave up", t.delivered-1)), false
	}
	return ending{}, true
}

// lastDelivery is the last delivery at which a job is still run; past it,
// it is answered without running. The consumer's own limit, when it has one
// (it was not provisioned by Gearbox), is kept one short of, so the last
// delivery can still be answered.
func (w *Worker) lastDelivery() uint64 {
	last := uint64(giveUpFactor * w.maxDeliver)
	if w.consumerMaxDeliver > 0 {
		last = min(last, uint64(max(w.consumerMaxDeliver-1, 1)))
	}
	return last
}

// check decodes and checks t's job, filling in t, or says why it cannot
// run.
func (w *Worker) check(ctx context.Context, t *task) *gearbox.Error {
	data := t.msg.Data()
	if len(data) > w.cfg.MaxJobBytes {
		return gearbox.Errorf(gearbox.CodeTooLarge, "job payload is %d bytes; this worker takes at most %d", len(data), w.cfg.MaxJobBytes)
	}
	enc, err := gearbox.ParseEncoding(t.msg.Headers())
	t.enc = enc
	if err != nil {
		return gearbox.AsError(err)
	}
	job, err := gearbox.DecodeJob(data, enc)
	t.job = job
	if job != nil && job.ReplyTo != "" {
		// Even a job that failed to decode is answered at its reply_to,
		// if the reply policy allows it.
		if e := w.replies.check(job.ReplyTo); e == nil {
			t.replyTo = job.ReplyTo
		} else if err == nil {
			err = e
		}
	}
	if err != nil {
		return gearbox.AsError(err)
	}
	if err := gearbox.ValidToken(t.token); err != nil {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q: the last token of its subject must name a model: %v", job.ID, err)
	}
	if err := job.Validate(); err != nil {
		return gearbox.AsError(err)
	}
	if job.Model != t.token {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q names model %q but was published to %s", job.ID, job.Model, t.msg.Subject())
	}
	if s, ok, err := w.models.fetchLanguageModel(ctx, job.Model, w.log); err != nil {
		return gearbox.Errorf(gearbox.CodeInternal, "load language model %q: %v", job.Model, err)
	} else if ok {
		w.met.serving(s.m.Name, s.m.Version, s.m.Digest)
		return w.checkLM(t, s)
	}
	m, err := w.models.acquire(ctx, job.Model) // released as t ends (releaseModel)
	if err != nil {
		if errors.Is(err, ErrUnknownModel) {
			return gearbox.Errorf(gearbox.CodeUnknownModel, "model %q is not loaded by worker %s and not in the model store", job.Model, w.cfg.Name)
		}
		return gearbox.Errorf(gearbox.CodeInternal, "load model %q: %v", job.Model, err)
	}
	t.model = m
	w.met.serving(m.Name, m.Version, m.Digest)
	if job.IsLM() {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q gives a prompt, but %s is a tensor model: give input", job.ID, m.Name)
	}
	if f := job.Input.Features(); f != m.InputFeatures {
		return gearbox.Errorf(gearbox.CodeShapeMismatch, "job %q has %d input features; model %s takes %d", job.ID, f, m.Name, m.InputFeatures)
	}
	t.rows = job.Input.Rows()
	if t.rows > w.cfg.MaxJobRows {
		return gearbox.Errorf(gearbox.CodeTooLarge, "job %q has %d rows; this worker takes at most %d per job", job.ID, t.rows, w.cfg.MaxJobRows)
	}
	if d := job.DeadlineTime(); !d.IsZero() && !w.nowFn().Before(d) {
		return w.expired(t)
	}
	if t.in, err = job.Input.Float32s(nil); err != nil {
		return gearbox.Errorf(gearbox.CodeBadRequest, "job %q: %s", job.ID, gearbox.AsError(err).Message)
	}
	t.bytes = len(data) + 4*len(t.in)
	t.isolated = t.delivered > 1
	var e *gearbox.Error
	t.prec, e = w.selectPrecision(t)
	return e
}

func (w *Worker) expired(t *task) *gearbox.Error {
	return gearbox.Errorf(gearbox.CodeExpired, "job %q passed its deadline %s before it ran",
		t.job.ID, t.job.DeadlineTime().UTC().Format(time.RFC3339Nano))
}

// selectPrecision picks the precision t runs at (precision.Select): an
// explicit request the backend can run, or for auto the model's policy (the
// policy bucket's, else the manifest's initial precision), moved up the
// model's ladder while the job's own max_error is below a format's error —
// as measured by the quality loop where it has measured it. A request the
// backend cannot run is a bad_request naming what it supports: a job never
// silently runs at a precision it did not ask for, and its result names the
// precision run.
func (w *Worker) selectPrecision(t *task) (precision.Format, *gearbox.Error) {
	policy, measured := t.model.Precision.Initial, map[precision.Format]float64(nil)
	if e, ok := w.policies.Get(t.model.Name); ok {
		policy, measured = e.Precision, e.Measured
		if t.job.Precision == precision.Auto || t.job.Precision == "" {
			t.policyRev = e.Rev
		}
	}
	p, err := precision.SelectMeasured(t.job.Precision, policy, t.model.Precision.Ladder, t.job.MaxError, w.caps, measured)
	if err != nil {
		return "", gearbox.Errorf(gearbox.CodeBadRequest, "job %q: %v", t.job.ID, err)
	}
	return p, nil
}

// bindConsumer binds to the shared consumer, creating it when provisioning,
// retrying with backoff until it succeeds or the worker stops (then it
// returns an error).
func (w *Worker) bindConsumer(ctx context.Context) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	err := w.retry(ctx, "bind consumer", func(ctx context.Context) (err error) {
		if w.cfg.Provision {
			cons, err = w.js.CreateOrUpdateConsumer(ctx, w.cfg.Subjects.JobsStream(), w.cfg.Subjects.ConsumerConfig(w.cfg.Streams))
		} else {
			cons, err = w.js.Consumer(ctx, w.cfg.Subjects.JobsStream(), w.cfg.Subjects.Consumer())
		}
		if err != nil {
			return fmt.Errorf("consumer %s on %s: %w", w.cfg.Subjects.Consumer(), w.cfg.Subjects.JobsStream(), err)
		}
		return nil
	})
	return cons, err
}
