//go:build cgo

package cuda

import (
	"context"
	"sync"
)

// Batches in flight. A tensor model's Forward takes a slot of its batch
// size's bucket for the length of the call. The slot owns the batch's
// pinned staging buffers, device activations (actBuf), the CUDA graphs
// captured on them and an event recorded after the batch's download. The
// caller copies its input into the slot's pinned memory, the device
// goroutine only queues the upload, the layers (or the graph) and the
// download, then records the event; the caller waits for the event and
// copies the output out on its own goroutine. With Config.InFlight slots a
// bucket, that many callers overlap their host work with each other's GPU
// work.
//
// Ownership: a slot taken by acquire belongs to its caller until release;
// the device goroutine changes a slot's buffers only while queueing that
// caller's batch, or while the slot is free (dropIdle, close), holding the
// bucket's lock so that nobody takes it meanwhile. A slot's last batch has
// completed when it is released (its caller waited for the event), so a
// free slot's buffers can be freed at once.

// slot is one batch in flight.
type slot struct {
	buf   *actBuf // nil until first use; see the ownership note above
	done  cuEvent // recorded after the batch's download (created with buf)
	event bool    // done exists
	start cuEvent // recorded before the batch's upload while stages are timed (stages.go)
	timed bool    // start exists
}

// slotPool holds the slots of one bucket.
type slotPool struct {
	sem  chan struct{} // a token per slot taken
	mu   sync.Mutex
	free []*slot // last in, first out: serial calls reuse one slot (and its graphs)
	all  []*slot
}

// slots is every bucket's slots.
type slots struct {
	n      int // slots a bucket
	mu     sync.Mutex
	closed bool
	pools  map[int]*slotPool
}

func newSlots(n int) *slots { return &slots{n: n, pools: map[int]*slotPool{}} }

// acquire takes a slot of bucket bk, waiting while all are in flight. It
// returns ctx.Err() if ctx ends first and ErrClosed once close has begun.
func (s *slots) acquire(ctx context.Context, bk int) (*slot, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	p := s.pools[bk]
	if p == nil {
		p = &slotPool{sem: make(chan struct{}, s.n)}
		for range s.n {
			sl := &slot{}
			p.all = append(p.all, sl)
			p.free = append(p.free, sl)
		}
		s.pools[bk] = p
	}
	s.mu.Unlock()
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		<-p.sem
		return nil, ErrClosed
	}
	p.mu.Lock()
	sl := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.mu.Unlock()
	return sl, nil
}

// release gives back a slot of bucket bk taken by acquire.
func (s *slots) release(bk int, sl *slot) {
	s.mu.Lock()
	p := s.pools[bk]
	s.mu.Unlock()
	p.mu.Lock()
	p.free = append(p.free, sl)
	p.mu.Unlock()
	<-p.sem
}

// close makes acquire fail with ErrClosed and waits until every slot is
// released; the device goroutine may then free them all.
func (s *slots) close() {
	s.mu.Lock()
	s.closed = true
	pools := make([]*slotPool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, p := range pools {
		for range s.n {
			p.sem <- struct{}{}
		}
	}
}

// each calls fn for every free slot (every slot after close), holding its
// bucket's lock so that none is taken meanwhile. Device goroutine only.
func (s *slots) each(fn func(*slot)) {
	s.mu.Lock()
	pools := make([]*slotPool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		for _, sl := range p.free {
			fn(sl)
		}
		p.mu.Unlock()
	}
}
