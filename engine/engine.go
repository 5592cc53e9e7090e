package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// ErrClosed is returned by Add once the engine is closed.
var ErrClosed = errors.New("engine: closed")

// Engine runs the sequences of one model at one precision on a backend's
// KV cache, in continuous batches (see the package doc). Add is safe for
// concurrent use; Run runs the steps.
type Engine struct {
	backend kernels.LM
	m       *lm.Model
	p       precision.Format
	kv      kernels.KVCache
	now     func() time.Time

	mu      sync.Mutex
	sched   *Scheduler
	onStep  func(decoded, prefilled int, took time.Duration)
	wake    chan struct{} // an Add happened; buffered 1
	room    chan struct{} // closed when Committed drops; nil when nobody waits
	closed  bool          // Add takes no more
	done    chan struct{} // closed by Close
	ran     chan struct{} // closed when Run returns
	runs    bool          // Run was called
	freedKV bool
	steps   StepStats
	// idleSince is when Run began waiting with nothing to run; zero
	// while it runs.
	idleSince time.Time
}

// StepStats count what the engine has run.
type StepStats struct {
	Steps           int
	PrefillTokens   int
	DecodeTokens    int
	Preemptions     int
	ReusedTokens    int // prompt tokens taken from the prefix cache, not prefilled
	Running         int // sequences decoding after the last step
	Waiting         int // sequences waiting to be prefilled
	BlocksUsed      int // held by sequences (a shared block once)
	BlocksPeak      int // the most ever used, at a step's planning
	BlocksCached    int // held by none, kept for a later prompt with their prefix
	BlocksFree      int // neither
	LastStepSeconds float64
	// StepSeconds is the time spent in the backend's Step, IdleSeconds
	// the time Run waited with no sequence to run (so far, when it waits
	// now): Run's time less both
	// is its own work between steps (planning, applying outputs and the
	// sequences' Token and Done callbacks).
	StepSeconds, IdleSeconds float64
}

// New returns an engine for m at p on backend, with a KV cache of blocks
// blocks. Call Run to start it, Close to stop it and free the cache.
func New(backend kernels.LM, m *lm.Model, p precision.Format, blocks int, cfg Config) (*Engine, error) {
	kv, err := backend.NewKVCache(m, p, blocks)
	if err != nil {
		return nil, err
	}
	return &Engine{
		backend: backend, m: m, p: p, kv: kv, now: time.Now,
		sched:  NewScheduler(cfg, kv.Blocks(), kv.BlockSize(), m.Config.MaxPositions),
		onStep: cfg.OnStep,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		ran:    make(chan struct{}),
	}, nil
}

// Need is the most blocks q would hold (see Scheduler.Need).
func (e *Engine) Need(q *Seq) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sched.Need(q)
}

// Add queues q. While the sequences queued already commit the whole cache
// (Scheduler.Committed), it waits for room — backpressure, so the worker
// stops pulling rather than over-filling the cache — unless the engine is
// empty. It returns ctx's error, ErrClosed, or an error wrapping
// ErrTooLarge for a sequence that could never run.
func (e *Engine) Add(ctx context.Context, q *Seq) error {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return ErrClosed
		}
		if e.sched.Len() == 0 || e.sched.committed(q) <= e.sched.Capacity() {
			err := e.sched.Add(q, e.now())
			e.mu.Unlock()
			if err == nil {
				select {
				case e.wake <- struct{}{}:
				default:
				}
			}
			return err
		}
		if e.room == nil {
			e.room = make(chan struct{})
		}
		room := e.room
		e.mu.Unlock()
		select {
		case <-room:
		case <-e.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run runs steps while there are sequences, sleeping when there are none,
// until ctx ends or Close is called; then it ends the sequences it holds
// with ctx's error (or ErrClosed) and returns.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.runs {
		e.mu.Unlock()
		return errors.New("engine: Run called twice")
	}
	e.runs = true
	e.mu.Unlock()
	defer close(e.ran)
	for {
		e.mu.Lock()
		batch := e.sched.Plan(e.now())
		ended := e.sched.Ended()
		e.mu.Unlock()
		report(ended)
		if batch == nil {
			e.mu.Lock()
			e.idleSince = e.now()
			e.mu.Unlock()
			select {
			case <-e.wake:
				e.mu.Lock()
				e.steps.IdleSeconds += e.now().Sub(e.idleSince).Seconds()
				e.idleSince = time.Time{}
				e.mu.Unlock()
				continue
			case <-ctx.Done():
				return e.stop(ctx.Err())
			case <-e.done:
				return e.stop(ErrClosed)
			}
		}
		start := e.now()
		outs, err := e.backend.Step(ctx, e.m, e.p, e.kv, batch)
		now := e.now() // before the lock: a step's time is the backend's alone
		e.mu.Lock()
		decoded, prefilled := e.count(batch, now.Sub(start))
		if err != nil {
			e.sched.Fail(fmt.Errorf("step on %s at %s: %w", e.m.Name, e.p, err), now)
		} else {
			e.sched.Apply(outs, now)
		}
		ended = e.sched.Ended()
		e.freed()
		e.mu.Unlock()
		if e.onStep != nil {
			e.onStep(decoded, prefilled, now.Sub(start))
		}
		report(ended)
	}
}

// count updates the statistics for a step and returns the tokens it
// decoded and prefilled; e.mu is held.
func (e *Engine) count(b *kernels.Batch, took time.Duration) (decoded, prefilled int) {
	e.steps.Steps++
	decoded = e.sched.decodes
	for _, s := range b.Seqs[decoded:] {
		prefilled += len(s.Tokens)
	}
	e.steps.DecodeTokens += decoded
	e.steps.PrefillTokens += prefilled
	e.steps.LastStepSeconds = took.Seconds()
	e.steps.StepSeconds += took.Seconds()
	return decoded, prefilled
}

// freed wakes Adds waiting for room; e.mu is held.
func (e *Engine) freed() {
	if e.room != nil && e.sched.Committed() < e.sched.Capacity() {
		close(e.room)
		e.room = nil
	}
}

// stop ends every sequence held with err.
func (e *Engine) stop(err error) error {
	e.mu.Lock()
	e.closed = true
	now := e.now()
	for _, q := range append(append([]*Seq(nil), e.sched.running...), e.sched.waiting...) {
		e.sched.outcome[q] = &Outcome{Err: err}
		e.sched.end(q, "", now)
	}
	ended := e.sched.Ended()
	e.mu.Unlock()
	report(ended)
	return err
}

// Stats returns what the engine has run so far, and its queues now.
func (e *Engine) Stats() StepStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.steps
	if !e.idleSince.IsZero() {
		st.IdleSeconds += e.now().Sub(e.idleSince).Seconds()
	}
	st.Running, st.Waiting = len(e.sched.running), len(e.sched.waiting)
	st.BlocksFree, st.BlocksCached = len(e.sched.bl.free), e.sched.bl.cached
	st.BlocksUsed, st.BlocksPeak = e.sched.bl.Held(), e.sched.peak
	st.Preemptions, st.ReusedTokens = e.sched.preemptions, e.sched.reused
	return st
}

// Close stops the engine (Run returns, ending what it holds), waits for
// Run to return, and frees the cache. It is idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.freedKV {
		e.mu.Unlock()
		return nil
	}
	e.freedKV, e.closed = true, true
	runs := e.runs
	e.mu.Unlock()
	close(e.done)
	if runs {
		<-e.ran
	}
	return e.kv.Close()
}

func report(ended []Ended) {
	for _, x := range ended {
		if x.Seq.Done != nil {
			x.Seq.Done(x.Outcome)
		}
	}
}
