// Package pull reads a JetStream pull consumer through a buffer that cannot
// overflow.
//
// nats.go's Messages iterator delivers pull replies into a channel the size
// of its message limit, and the server's status messages (idle heartbeats,
// request timeouts) share that channel with the jobs. When the reader
// stalls under backpressure, statuses fill the slots the jobs were counted
// into, and a job the server delivers then is dropped as a slow consumer:
// it stays ack-pending, taking a MaxAckPending slot, until AckWait
// redelivers it. A Loop instead keeps one Fetch request open at a time, with
// its own channel of its own size, and asks only for what its buffer has
// room for: every job the server delivers has a place to wait. One at a
// time, because the server deals messages round-robin over a consumer's
// open requests, and requests read by goroutines of their own would hand
// them on out of stream order.
package pull

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrDone is what Next returns once a Loop has been drained or stopped and
// every message it received has been read.
var ErrDone = errors.New("pull: done")

// Options sets the bounds of a Loop.
type Options struct {
	// Max is the most messages requested or waiting to be read at once
	// (≥ 1). A new request is sent when at least half of it is free.
	Max int
	// MaxBytes bounds the bytes of one request (0: no bound). The server
	// never delivers a message larger than it. A request it ends early
	// frees its other messages only once the reader has taken what it
	// delivered, so what waits is about two requests' bytes at most.
	MaxBytes int
	// Expiry is the life of one request at the server (≥ 1 ms). A Loop
	// being drained waits for its open request to expire or fill.
	Expiry time.Duration
	// OnError, when set, is told of errors that do not end the Loop: a
	// request the server refused ("Exceeded MaxRequestBatch"), a leader
	// change. The Loop backs off after each.
	OnError func(error)
}

// Loop keeps a pull request open on a consumer while its buffer has room.
type Loop struct {
	cons jetstream.Consumer
	opt  Options
	out  chan item // room for every message requested

	mu   sync.Mutex
	free int   // messages neither requested nor waiting in out
	err  error // why the Loop ended, when not drained or stopped

	wake   chan struct{} // a release happened
	drain  chan struct{} // closed by Drain
	dOnce  sync.Once
	cancel context.CancelFunc
	fails  int // requests ended by an error since the last clean one (run's)
}

// Start starts pulling from cons. Cancelling ctx is the same as Stop.
func Start(ctx context.Context, cons jetstream.Consumer, opt Options) (*Loop, error) {
	if opt.Max < 1 || opt.Expiry < time.Millisecond || opt.MaxBytes < 0 {
		return nil, fmt.Errorf("pull: max %d must be ≥ 1, expiry %v ≥ 1ms and max bytes %d ≥ 0", opt.Max, opt.Expiry, opt.MaxBytes)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Loop{
		cons: cons, opt: opt,
		out:  make(chan item, opt.Max),
		free: opt.Max,
		wake: make(chan struct{}, 1), drain: make(chan struct{}),
		cancel: cancel,
	}
	go l.run(ctx)
	return l, nil
}

// Next returns the next message, waiting for one. After Drain or Stop it
// returns the messages already received, then ErrDone. If the consumer is
// gone (jetstream.ErrConsumerDeleted, jetstream.ErrConsumerNotFound) or the
// connection closed, it returns that error once the buffer is read.
func (l *Loop) Next() (jetstream.Msg, error) {
	if it, ok := <-l.out; ok {
		l.release(it.req.take())
		return it.msg, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	return nil, ErrDone
}

// item is a message and the request that delivered it.
type item struct {
	msg jetstream.Msg
	req *request
}

// request is one pull request's count of the messages it delivered and of
// those the reader has taken. What it was asked for and did not deliver is
// free again once the request has ended and the reader has taken all it
// delivered: a request ended early by its byte bound then asks for more
// only as its bytes are taken, so the buffer holds at most about two
// requests' bytes.
type request struct {
	mu                      sync.Mutex
	asked, delivered, taken int
	ended                   bool
}

// deliver counts a message about to be handed to the reader.
func (r *request) deliver() {
	r.mu.Lock()
	r.delivered++
	r.mu.Unlock()
}

// take counts a message taken by the reader and returns how many messages
// that frees.
func (r *request) take() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taken++
	if r.ended && r.taken == r.delivered {
		return 1 + r.asked - r.delivered
	}
	return 1
}

// end marks the request ended and returns how many messages that frees.
func (r *request) end() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	if r.taken == r.delivered {
		return r.asked - r.delivered
	}
	return 0
}

// Drain stops sending requests. The open one delivers until it fills or
// expires (at most Expiry); Next returns what it delivers, then ErrDone.
// Nothing the server sends is dropped.
func (l *Loop) Drain() { l.dOnce.Do(func() { close(l.drain) }) }

// Stop ends every request now. Messages in flight to it are dropped and
// redelivered by the server after AckWait; Next returns ErrDone once the
// buffer is read.
func (l *Loop) Stop() { l.cancel() }

// run sends a request whenever the last one has ended and half the buffer
// is free, until drained, stopped or ended by an error; then it closes out.
func (l *Loop) run(ctx context.Context) {
	defer close(l.out)
	for {
		n, ok := l.reserve(ctx)
		if !ok || !l.backOff(ctx) {
			return
		}
		// The request's context outlives its expiry at the server, so the
		// server's timeout, not the client's, ends it (FetchContext gives
		// the server 90 % of the time left, at most a second less).
		rctx, done := context.WithTimeout(ctx, l.requestTimeout())
		opts := []jetstream.FetchOpt{jetstream.FetchContext(rctx)}
		if l.opt.MaxBytes > 0 {
			opts = append(opts, jetstream.FetchMaxBytes(l.opt.MaxBytes))
		}
		b, err := l.cons.Fetch(n, opts...)
		if err != nil {
			l.release(n)
		} else {
			r := &request{asked: n}
			for m := range b.Messages() {
				r.deliver()
				l.out <- item{m, r} // never blocks: n slots were reserved for it
			}
			l.release(r.end())
			err = b.Error()
		}
		done()
		if !l.settle(err) {
			return // the consumer or the connection is gone
		}
	}
}

func (l *Loop) requestTimeout() time.Duration {
	t := l.opt.Expiry * 10 / 9
	return min(t, l.opt.Expiry+time.Second)
}

// reserve waits until at least half the buffer is free and takes all of it;
// it returns false once the Loop is drained or stopped.
func (l *Loop) reserve(ctx context.Context) (int, bool) {
	low := (l.opt.Max + 1) / 2
	for {
		select {
		case <-l.drain:
			return 0, false
		case <-ctx.Done():
			return 0, false
		default:
		}
		l.mu.Lock()
		if n := l.free; n >= low {
			l.free = 0
			l.mu.Unlock()
			return n, true
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-l.drain:
			return 0, false
		case <-ctx.Done():
			return 0, false
		}
	}
}

func (l *Loop) release(n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	l.free += n
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// backOff waits after failed requests: 50 ms after the first, doubling, at
// most Expiry. It returns false when the Loop is drained or stopped.
func (l *Loop) backOff(ctx context.Context) bool {
	f := l.fails
	if f == 0 {
		return true
	}
	d := min(50*time.Millisecond<<min(f-1, 16), max(l.opt.Expiry, 50*time.Millisecond))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.drain:
		return false
	case <-ctx.Done():
		return false
	}
}

// settle records how a request ended. It returns false when the Loop must
// end: the consumer or the connection is gone.
func (l *Loop) settle(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Filled, expired at the server, stopped, or its reply lost (the
		// client's timeout, a second later): none is the consumer's fault.
		l.fails = 0
		return true
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound),
		errors.Is(err, nats.ErrConnectionClosed):
		l.fail(err)
		return false
	case errors.Is(err, nats.ErrNoResponders):
		// Nothing serves the consumer's pull subject: it does not exist
		// (or its leader is between elections; binding again finds out).
		l.fail(fmt.Errorf("%w: %w", jetstream.ErrConsumerNotFound, err))
		return false
	}
	l.fails++
	if l.opt.OnError != nil {
		l.opt.OnError(err)
	}
	return true
}

func (l *Loop) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}
