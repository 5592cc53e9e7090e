package worker

import (
	"context"
	"sync"
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
type admission struct {
	decode chan *task
	fifo   chan *task
	wg     sync.WaitGroup
}

// startAdmission starts the decoders and the adder. On a hard stop (ctx
// ends), jobs not yet in the batcher are dropped unacked.
func (w *Worker) startAdmission(ctx context.Context) *admission {
	a := &admission{decode: make(chan *task, w.cfg.Codecs), fifo: make(chan *task, w.cfg.Codecs)}
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
			<-t.decoded
			switch {
			case !t.admitted: // ended by its decoder
			case stopped:
				w.untrack(t)
				w.releaseModel(t)
			default:
				stopped = w.enqueue(ctx, t) != nil
			}
		}
	})
	return a
}

// submit admits t, waiting while the admission is full. It returns an
// error only on a hard stop; t is then dropped unacked.
func (a *admission) submit(ctx context.Context, t *task) error {
	select {
	case a.fifo <- t:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.decode <- t // the decoders never wait on the adder
	return nil
}

// stop waits until every job submitted is enqueued, ended or dropped.
// Nothing may be submitted after it.
func (a *admission) stop() {
	close(a.fifo)
	close(a.decode)
	a.wg.Wait()
}
