package batcher

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Batcher drives a Queue with the real clock: Add queues items, Run flushes
// batches onto the Batches channel as the Queue's rules make them due. Add,
// Close and Rows are safe for concurrent use.
type Batcher[T any] struct {
	cfg  Config
	now  func() time.Time // the clock; time.Now outside tests
	out  chan Batch[T]
	wake chan struct{} // an Add happened; buffered 1
	done chan struct{} // closed by Close

	closeOnce sync.Once
	running   atomic.Bool

	mu       sync.Mutex
	q        *Queue[T]
	inflight int           // rows in batches formed but not yet delivered
	inBytes  int           // their Bytes
	closed   bool          // Add takes no more items
	room     chan struct{} // closed when rows drop below the bound; nil when nobody waits
	onBlock  func()        // called when Add is about to wait for room; tests only
}

// New returns a Batcher that forms batches by cfg, after defaults. It
// returns an error wrapping ErrInvalidConfig if cfg is unusable. Call Run to
// start it.
func New[T any](cfg Config) (*Batcher[T], error) {
	q, err := NewQueue[T](cfg)
	if err != nil {
		return nil, err
	}
	return &Batcher[T]{
		cfg:  q.Config(),
		now:  time.Now,
		out:  make(chan Batch[T]),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		q:    q,
	}, nil
}

// Add queues it, setting it.Arrived. While Rows is at least MaxQueuedRows,
// or Bytes at least MaxQueuedBytes, it blocks until room frees up; an item
// larger than the room left is still admitted once both are below their
// bounds, so no job is too large to run.
//
// Add returns ctx.Err() if ctx ends first, ErrClosed if the Batcher is or
// becomes closed before it takes the item, and an error wrapping
// ErrInvalidItem for a nil item, one without rows or one already added. On
// an error the item is not queued.
func (b *Batcher[T]) Add(ctx context.Context, it *Item[T]) error {
	if err := checkItem(it); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		if b.hasRoom() {
			err := b.q.check(it)
			if err == nil {
				b.q.add(it, b.now())
			}
			b.mu.Unlock()
			if err == nil {
				select {
				case b.wake <- struct{}{}:
				default:
				}
			}
			return err
		}
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room, hook := b.room, b.onBlock
		b.mu.Unlock()
		if hook != nil {
			hook()
		}
		select {
		case <-room:
		case <-b.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Batches returns the channel Run delivers batches on. It is unbuffered: a
// slow reader holds Run back, the rows it has not delivered count against
// MaxQueuedRows, and so Add blocks. Run closes it when it returns; read it
// to the end.
func (b *Batcher[T]) Batches() <-chan Batch[T] { return b.out }

// Rows returns the rows held: queued, or formed into batches that Run has
// not yet delivered. Add blocks while it is at least MaxQueuedRows.
func (b *Batcher[T]) Rows() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.q.Rows() + b.inflight
}

// Bytes returns the bytes held, as Rows does the rows. Add blocks while it is
// at least MaxQueuedBytes.
func (b *Batcher[T]) Bytes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.q.Bytes() + b.inBytes
}

// Close stops the Batcher taking items: Add returns ErrClosed from now on,
// blocked calls included. Run then drains the queue onto Batches and closes
// it. Close does not wait for that; it is idempotent and safe to call
// before, during or after Run.
func (b *Batcher[T]) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.done)
	})
}

// Run flushes batches onto Batches as they become due, until Close is
// called or ctx ends. Then it closes the Batcher, drains every queued item
// onto Batches as FlushDrain batches, closes the channel and returns: nil
// after Close, or ctx.Err() if ctx had ended.
//
// Every item Add accepted is delivered, even after ctx ends: Run blocks
// sending until each batch is read, so the reader must range over Batches
// to the end (discarding what it will not compute) for Run to return. Run
// may be called once; a second call returns ErrRunning.
func (b *Batcher[T]) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-b.done:
			return b.shutdown(ctx)
		case <-ctx.Done():
			return b.shutdown(ctx)
		default:
		}
		b.mu.Lock()
		now := b.now()
		batches := b.q.Ready(now)
		next, ok := b.q.Next()
		b.hold(batches)
		b.mu.Unlock()
		if len(batches) > 0 {
			b.send(batches)
			continue // time passed while sending: look again
		}
		var fire <-chan time.Time
		if ok {
			timer.Reset(next.Sub(now))
			fire = timer.C
		}
		select {
		case <-b.wake:
		case <-fire:
		case <-b.done:
		case <-ctx.Done():
		}
		timer.Stop()
	}
}

// shutdown closes the Batcher, delivers every queued row and closes the
// Batches channel.
func (b *Batcher[T]) shutdown(ctx context.Context) error {
	err := ctx.Err()
	b.Close()
	b.mu.Lock()
	batches := b.q.Drain(b.now())
	b.hold(batches)
	b.mu.Unlock()
	b.send(batches)
	close(b.out)
	return err
}

// send delivers batches in order, releasing their rows from the bound as
// each is read.
func (b *Batcher[T]) send(batches []Batch[T]) {
	for _, bt := range batches {
		b.out <- bt
		b.mu.Lock()
		b.inflight -= bt.Rows
		b.inBytes -= bt.Bytes
		if b.room != nil && b.hasRoom() {
			close(b.room)
			b.room = nil
		}
		b.mu.Unlock()
	}
}

// hold counts batches formed but not yet delivered against the bounds.
func (b *Batcher[T]) hold(batches []Batch[T]) {
	for _, bt := range batches {
		b.inflight += bt.Rows
		b.inBytes += bt.Bytes
	}
}

// hasRoom reports whether the Batcher is below both its bounds; b.mu is
// held.
func (b *Batcher[T]) hasRoom() bool {
	return b.q.Rows()+b.inflight < b.cfg.MaxQueuedRows && b.q.Bytes()+b.inBytes < b.cfg.MaxQueuedBytes
}
