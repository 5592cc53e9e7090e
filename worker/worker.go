package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
type Worker struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	backend kernels.Backend
	caps    precision.Capabilities
	models  *Models
	log     zerolog.Logger
	met     *Metrics
	nowFn   func() time.Time

	policies *quality.Policies
	checker  *quality.Checker

	batch      *batcher.Batcher
	acks       chan *pending // results published, waiting for their acks
	ackWait    time.Duration
	maxDeliver int

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
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*cfg.MaxQueuedRows+256))
	if err != nil {
		return nil, err
	}
	b, err := batcher.New(batcher.Config{
		MaxBatchRows:  cfg.MaxBatchRows,
		MaxDelay:      cfg.MaxDelay,
		MaxQueuedRows: cfg.MaxQueuedRows,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Worker{
		cfg:      cfg,
		nc:       nc,
		js:       js,
		backend:  backend,
		caps:     capabilities(backend),
		models:   models,
		log:      cfg.Logger.With().Str("worker", cfg.Name).Logger(),
		met:      cfg.Metrics,
		nowFn:    time.Now,
		batch:    b,
		acks:     make(chan *pending, 4096),
		inflight: map[*task]struct{}{},
		graceful: make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

// capabilities is what backend can run: its own account if it gives one,
// else Native for every format it Supports.
func capabilities(b kernels.Backend) precision.Capabilities {
	if c, ok := b.(interface{ Capabilities() precision.Capabilities }); ok {
		return c.Capabilities()
	}
	var caps precision.Capabilities
	caps.Device = b.Name()
	for _, f := range precision.All {
		if b.Supports(f) {
			caps = caps.With(f, precision.Native)
		}
	}
	return caps
}

// Name is the worker's name, as written in its results.
func (w *Worker) Name() string { return w.cfg.Name }

// Run serves jobs until Shutdown completes (then it returns nil) or ctx
// ends (a hard stop: it returns ctx's error at once, publishing and acking
// nothing more; unacked jobs are redelivered after AckWait). Run may be
// called once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("worker: Run called twice")
	}
	w.running = true
	w.mu.Unlock()
	defer close(w.done)

	if w.cfg.Provision {
		if err := gearbox.Provision(ctx, w.js, w.cfg.Subjects, w.cfg.Streams); err != nil {
			return err
		}
	}
	cons, err := w.js.Consumer(ctx, w.cfg.Subjects.JobsStream(), w.cfg.Subjects.Consumer())
	if err != nil {
		return fmt.Errorf("bind consumer %s on %s: %w", w.cfg.Subjects.Consumer(), w.cfg.Subjects.JobsStream(), err)
	}
	info := cons.CachedInfo().Config
	w.ackWait, w.maxDeliver = info.AckWait, info.MaxDeliver
	if w.maxDeliver <= 0 {
		w.maxDeliver = 5 // unlimited redelivery: still give up on failing jobs
	}
	w.log.Info().Str("backend", w.backend.Name()).Str("consumer", w.cfg.Subjects.Consumer()).
		Dur("ack_wait", w.ackWait).Int("max_batch_rows", w.cfg.MaxBatchRows).
		Dur("max_delay", w.cfg.MaxDelay).Msg("worker started")

	sub, err := w.watchExhausted(ctx)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	// The quality loop's goroutines stop when Run returns, graceful or not.
	qctx, qstop := context.WithCancel(ctx)
	var qwg sync.WaitGroup
	defer qwg.Wait()
	defer qstop()
	if err := w.startQuality(qctx, &qwg); err != nil {
		return err
	}

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
	})
	wg.Go(func() { w.touchLoop(ctx, ackDone) })

	pullErr := w.pull(ctx, cons)
	// Pulling has stopped: on a graceful stop every job pulled is in the
	// batcher; close it so it flushes, then let the executor and the acker
	// finish.
	w.batch.Close()
	<-execDone
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
		w.met.inflight.Add(float64(t.rows()))
	}
}

func (w *Worker) untrack(t *task) {
	w.mu.Lock()
	_, ok := w.inflight[t]
	delete(w.inflight, t)
	w.mu.Unlock()
	if ok && w.met != nil {
		w.met.inflight.Sub(float64(t.rows()))
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
		now := w.nowFn()
		var due []*task
		w.mu.Lock()
		for t := range w.inflight {
			t.mu.Lock()
			if now.Sub(t.touched) >= every {
				t.touched = now
				due = append(due, t)
			}
			t.mu.Unlock()
		}
		w.mu.Unlock()
		for _, t := range due {
			if err := t.msg.InProgress(); err != nil {
				w.log.Debug().Err(err).Str("job", t.job.ID).Msg("in-progress")
			}
		}
	}
}
