package worker

import (
	"context"
	"sync"
	"sync/atomic"
)

// admission decodes and checks pulled jobs on Codecs goroutines at once and
// hands them to the batcher, or to their engine, in the order they were
// pulled: arrival order, and so priority and MaxDelay within a lane, is the
// pull order whatever order the decoders finish in.
//
// The pull goroutine submits each task twice: to the decoders, and to the
// FIFO that one adder goroutine reads; the adder waits for the task at the
// FIFO's head to be decoded and enqueues it. Both channels are Codecs
// long, so at most 2 × Codecs decoded jobs wait beyond the batcher's bound,
// and a blocked batcher (its bound reached) backs up pulling.
//
// A job under inlineBytes is decoded on the pull goroutine itself, and when
// the adder has nothing in hand, enqueued there too: for a small job the
// hand-offs would cost more than the work they spread.
type admission struct {
	decode chan *task
	fifo   chan *task
	queued atomic.Int64 // tasks submitted to the FIFO and not yet through the adder
	wg     sync.WaitGroup
	w      *Worker
}

// inlineBytes is the payload below which a job is decoded on the pull
// goroutine and a result encoded on the finish stage's: a few microseconds
// of work, about what handing it to another goroutine costs.
const inlineBytes = 8 << 10

// startAdmission starts the decoders and the adder. On a hard stop (ctx
// ends), jobs not yet in the batcher are dropped unacked.
func (w *Worker) startAdmission(ctx context.Context) *admission {
	a := &admission{decode: make(chan *task, w.cfg.Codecs), fifo: make(chan *task, w.cfg.Codecs), w: w}
	for range w.cfg.Codecs {
		a.wg.Go(func() {
			for t := range a.decode {
				w.decode(ctx, t)
			}
		})
	}
	a.wg.Go(func() {
		stopped := false
		for t := range a.fifo {
			if t.decoded != nil { // nil: decoded by the pull goroutine
				<-t.decoded
			}
			switch {
			case !t.admitted: // ended by its decoder
			case stopped:
				w.untrack(t)
				w.releaseModel(t)
			default:
				stopped = w.enqueue(ctx, t) != nil
			}
			a.queued.Add(-1)
		}
	})
	return a
}

// submit admits t, waiting while the admission is full. It returns an
// error only on a hard stop; t is then dropped unacked.
func (a *admission) submit(ctx context.Context, t *task) error {
	small := len(t.msg.Data()) < inlineBytes
	if small {
		a.w.decode(ctx, t)
		// Only this goroutine adds to queued: at 0 the adder holds no
		// task, so enqueueing here keeps the pull order.
		if a.queued.Load() == 0 {
			if !t.admitted {
				return nil
			}
			return a.w.enqueue(ctx, t)
		}
	} else {
		t.decoded = make(chan struct{}) // before the adder can see t
	}
	a.queued.Add(1)
	select {
	case a.fifo <- t:
	case <-ctx.Done():
		a.queued.Add(-1)
		if t.admitted {
			a.w.untrack(t)
			a.w.releaseModel(t)
		}
		return ctx.Err()
	}
	if !small {
		a.decode <- t // the decoders never wait on the adder
	}
	return nil
}

// stop waits until every job submitted is enqueued, ended or dropped.
// Nothing may be submitted after it.
func (a *admission) stop() {
	close(a.fifo)
	close(a.decode)
	a.wg.Wait()
}
