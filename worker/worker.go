package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

// Worker pulls jobs from the shared consumer and answers them.
//
// The path of a job: the pull goroutine hands it to the admission, whose
// decoders decode and check it in parallel and whose adder adds it to the
// batcher in pull order; the batcher's goroutine forms batches; the
// executor's stages gather, compute and finish them, overlapping one
// batch's Forward with the next one's gathering and the last one's
// scattering, and as each job's last rows are done an encoder publishes
// its answer (end); the ack goroutine waits for the publishes to be stored
// and settles the job (ack, or Term for dead letters), handing answers
// whose publish failed to retry goroutines of their own.
type Worker struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	backend kernels.Backend
	caps    precision.Capabilities
	models  *Models
	replies replyPolicy
	log     zerolog.Logger
	met     *Metrics
	nowFn   func() time.Time

	policies *quality.PolicyCache
	policyKV jetstream.KeyValue
	checker  *quality.Checker
	// lmChecker checks sampled generations (nil: quality loop off, or a
	// backend without language models).
	lmChecker *quality.LMChecker
	attempts  attempts

	batch      *batcher.Batcher[*task]
	acks       chan *pending // answers published, waiting to be stored
	retrying   sync.WaitGroup
	retrySlots chan struct{} // bounds the answers retried at once
	ackWait    time.Duration

	// maxDeliver is the deliveries a failing job gets (Config.Streams);
	// consumerMaxDeliver the consumer's own limit, if it has one.
	maxDeliver         int
	consumerMaxDeliver int

	engines   engines        // language-model engines
	lmRunning sync.WaitGroup // language-model jobs in an engine

	ready      atomic.Bool  // bound and serving
	ackWaiting atomic.Int64 // unix nanoseconds since the ack loop waits on a publish; 0 when not

	mu       sync.Mutex
	inflight map[*task]struct{}
	running  bool
	graceful chan struct{} // closed by Shutdown
	done     chan struct{} // closed when Run returns
	shutOnce sync.Once
}

// New returns a worker on nc running jobs on backend with the models in
// models. Call Run to start it.
func New(nc *nats.Conn, backend kernels.Backend, models *Models, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// An async publish whose acknowledgement never comes (its stream's
	// leader died with it, while the worker's own server stayed up) fails
	// after publishTimeout and is retried like any failed publish: without
	// the timeout the ack loop would wait for it for ever, and every later
	// answer behind it.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*cfg.MaxQueuedRows+256),
		jetstream.WithPublishAsyncTimeout(publishTimeout(cfg.Streams.WithDefaults().AckWait)))
	if err != nil {
		return nil, err
	}
	b, err := batcher.New[*task](cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	replies, err := newReplyPolicy(cfg.ReplyPrefixes, cfg.Subjects)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:        cfg,
		nc:         nc,
		js:         js,
		backend:    backend,
		caps:       backend.Capabilities(),
		models:     models,
		replies:    replies,
		log:        cfg.Logger.With().Str("worker", cfg.Name).Logger(),
		met:        cfg.Metrics,
		nowFn:      time.Now,
		batch:      b,
		acks:       make(chan *pending, 4096),
		retrySlots: make(chan struct{}, 256),
		maxDeliver: cfg.Streams.WithDefaults().MaxDeliver,
		inflight:   map[*task]struct{}{},
		graceful:   make(chan struct{}),
		done:       make(chan struct{}),
	}
	if cfg.Quality.Enabled() {
		qc := cfg.Quality
		qc.Hold = models.hold // a check keeps its batch's model version
		if w.checker, err = quality.NewChecker(qc, backend, cfg.Name, w.publishReport, w.log); err != nil {
			return nil, err
		}
	}
	if w.lmChecker, err = w.newLMChecker(); err != nil {
		return nil, err
	}
	models.evictFrom(backend)
	if w.met != nil {
		w.met.engines.add(&w.engines)
	}
	return w, nil
}

// Name is the worker's name, as written in its results.
func (w *Worker) Name() string { return w.cfg.Name }

// publishTimeout is how long an answer's publish may wait for its
// acknowledgement: a third of AckWait, between 2 and 10 seconds.
func publishTimeout(ackWait time.Duration) time.Duration {
	return min(max(ackWait/3, 2*time.Second), 10*time.Second)
}

// Healthy reports why the worker is stuck, or nil: its ack loop has waited
// on one publish for more than a minute (a publish times out after at most
// 10 s, so that is a bug, and a restart frees the jobs it holds).
func (w *Worker) Healthy() error {
	if since := w.ackWaiting.Load(); since != 0 {
		if d := w.nowFn().Sub(time.Unix(0, since)); d > time.Minute {
			return fmt.Errorf("worker %s: its ack loop has waited %v for one publish's acknowledgement", w.cfg.Name, d.Round(time.Second))
		}
	}
	return nil
}

// Ready reports why the worker is not serving jobs, or nil when it is:
// connected to NATS and bound to the consumer.
func (w *Worker) Ready() error {
	switch {
	case !w.nc.IsConnected():
		return fmt.Errorf("worker %s: not connected to NATS (%s)", w.cfg.Name, w.nc.Status())
	case !w.ready.Load():
		return fmt.Errorf("worker %s: not bound to consumer %s", w.cfg.Name, w.cfg.Subjects.Consumer())
	}
	return nil
}

// Run serves jobs until Shutdown completes (then it returns nil) or ctx
// ends (a hard stop: it returns ctx's error at once, publishing and acking
// nothing more; unacked jobs are redelivered after AckWait). Until it can
// provision, bind the consumer and open the buckets it needs — NATS down,
// say — it retries with backoff, logging why, and Ready reports it. Run may
// be called once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("worker: Run called twice")
	}
	w.running = true
	w.mu.Unlock()
	defer close(w.done)

	if err := w.start(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil // Shutdown before the worker was up
	}
	cons, err := w.bindConsumer(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	info := cons.CachedInfo().Config
	w.ackWait, w.consumerMaxDeliver = info.AckWait, info.MaxDeliver
	if w.consumerMaxDeliver > 0 {
		w.log.Warn().Int("max_deliver", info.MaxDeliver).Msg("the consumer has a MaxDeliver of its own: a job whose last delivery goes to a worker that dies is answered only by the max-deliveries advisory; provision it with GEARBOX_PROVISION to leave the count to workers")
		sub, err := w.watchExhausted(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	w.ready.Store(true)
	defer w.ready.Store(false)
	w.log.Info().Str("backend", w.backend.Name()).Str("consumer", w.cfg.Subjects.Consumer()).
		Dur("ack_wait", w.ackWait).Int("max_batch_rows", w.cfg.MaxBatchRows).
		Dur("max_delay", w.cfg.MaxDelay).Msg("worker started")

	// Engines run until Run returns; a hard stop ends their sequences
	// unanswered (redelivered), a graceful one lets them finish first.
	w.engines.ctx, w.engines.stop = context.WithCancel(ctx)
	defer w.engines.stop()

	// The quality loop's goroutines stop when Run returns, graceful or not.
	qctx, qstop := context.WithCancel(ctx)
	var qwg sync.WaitGroup
	defer qwg.Wait()
	defer qstop()
	w.startQuality(qctx, &qwg)

	var wg sync.WaitGroup
	wg.Go(func() {
		// The batcher stops on Close (graceful) or ctx (hard), delivering
		// what it holds either way.
		_ = w.batch.Run(ctx)
	})
	execDone := make(chan struct{})
	wg.Go(func() {
		defer close(execDone)
		w.execute(ctx)
	})
	ackDone := make(chan struct{})
	wg.Go(func() {
		defer close(ackDone)
		w.ackLoop(ctx)
		w.retrying.Wait()
	})
	wg.Go(func() { w.touchLoop(ctx, ackDone) })

	pullErr := w.pull(ctx, cons)
	// Pulling has stopped: on a graceful stop every job pulled is in the
	// batcher; close it so it flushes, then let the executor and the acker
	// finish.
	w.batch.Close()
	<-execDone
	if ctx.Err() == nil {
		w.lmRunning.Wait() // graceful: every language-model job ends
	}
	w.engines.close()
	close(w.acks)
	<-ackDone
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if pullErr != nil {
		return pullErr
	}
	// Acks are fire-and-forget: make sure they have left before saying
	// the worker has stopped.
	if err := w.nc.FlushTimeout(5 * time.Second); err != nil {
		w.log.Warn().Err(err).Msg("flush acks")
	}
	w.log.Info().Msg("worker stopped")
	return nil
}

// start provisions (when configured) and opens the buckets the worker
// needs, retrying until it succeeds or the worker stops.
func (w *Worker) start(ctx context.Context) error {
	return w.retry(ctx, "start", func(actx context.Context) error {
		if w.cfg.Provision {
			if err := gearbox.Provision(actx, w.js, w.cfg.Subjects, w.cfg.Streams); err != nil {
				return err
			}
		}
		kv, err := gearbox.PolicyStore(actx, w.js, w.cfg.Subjects, w.cfg.Streams.Replicas, false)
		if err != nil {
			return fmt.Errorf("%w (provisioning creates it: run one worker with provisioning on, or gearbox.Provision)", err)
		}
		if w.policies == nil {
			// The watch lives as long as the worker, not this attempt.
			if w.policies, err = quality.WatchPolicies(ctx, kv, w.log); err != nil {
				return err
			}
			w.policyKV = kv
		}
		akv, err := w.js.KeyValue(actx, w.cfg.Subjects.AttemptsBucket())
		if err != nil {
			return fmt.Errorf("bucket %s: %w (provisioning creates it)", w.cfg.Subjects.AttemptsBucket(), err)
		}
		w.attempts = attempts{kv: akv}
		return nil
	})
}

// retry calls fn until it succeeds, backing off from 500 ms to 30 s and
// logging each failure, or until the worker stops: then it returns an
// error.
func (w *Worker) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	backoff := 500 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		w.log.Warn().Err(err).Dur("retry_in", backoff).Msg(what + " failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.graceful:
			return errors.New("worker stopped")
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Shutdown stops the worker gracefully: it stops pulling, finishes the jobs
// in flight, publishes their results and acks them, and returns when Run has
// returned or ctx ends (then Run's context must be cancelled to stop it
// hard).
func (w *Worker) Shutdown(ctx context.Context) error {
	w.shutOnce.Do(func() { close(w.graceful) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// track records t as in flight (for InProgress and the in-flight gauge).
func (w *Worker) track(t *task) {
	w.mu.Lock()
	w.inflight[t] = struct{}{}
	w.mu.Unlock()
	if w.met != nil {
		w.met.inflight.Add(float64(t.rows))
	}
}

// untrack forgets t; it may be called for a task never tracked.
func (w *Worker) untrack(t *task) {
	w.mu.Lock()
	_, ok := w.inflight[t]
	delete(w.inflight, t)
	w.mu.Unlock()
	if ok && w.met != nil {
		w.met.inflight.Sub(float64(t.rows))
	}
}

// touchLoop sends InProgress for jobs held longer than a third of AckWait,
// so slow batches are not redelivered elsewhere while still being worked on.
func (w *Worker) touchLoop(ctx context.Context, stop <-chan struct{}) {
	every := w.ackWait / 3
	if every <= 0 {
		every = 10 * time.Second
	}
	tick := time.NewTicker(every / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
		now := w.nowFn().UnixNano()
		var due []*task
		w.mu.Lock()
		for t := range w.inflight {
			if now-t.touched.Load() >= int64(every) {
				t.touched.Store(now)
				due = append(due, t)
			}
		}
		w.mu.Unlock()
		for _, t := range due {
			if err := t.msg.InProgress(); err != nil {
				w.log.Debug().Err(err).Str("job", t.id()).Msg("in-progress")
			}
		}
	}
}
