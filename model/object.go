package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ObjectStall is how long ReadObject waits for an object's next bytes
// before it gives up on a fetch that has stopped moving.
const ObjectStall = 30 * time.Second

// ErrStalled is returned (wrapped) by ReadObject when no bytes arrived for
// ObjectStall.
var ErrStalled = errors.New("object fetch stalled")

// ReadObject reads object name of obs whole (at most limit bytes when
// limit >= 0) and returns it with its info. However large the object, it
// is bounded only by ctx and by progress: it fails with ErrStalled when no
// bytes arrive for ObjectStall.
//
// nats.go's ObjectStore.Get, given a context without a deadline, bounds
// the whole read by the JetStream context's default API timeout (5 s): a
// language model of 16 GB failed to load ("nats: timeout") in the middle
// of its download. So the read gets a deadline of its own, far off, and a
// watchdog instead.
func ReadObject(ctx context.Context, obs jetstream.ObjectStore, name string, limit int64) ([]byte, *jetstream.ObjectInfo, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if _, ok := ctx.Deadline(); !ok {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, 100*365*24*time.Hour)
		defer stop()
	}
	// On a stall the watchdog cancels ctx and closes the result, which
	// unblocks a Read waiting for the next chunk.
	var mu sync.Mutex
	var res jetstream.ObjectResult
	watchdog := time.AfterFunc(ObjectStall, func() {
		cancel(fmt.Errorf("%w: no bytes of %s for %s", ErrStalled, name, ObjectStall))
		mu.Lock()
		defer mu.Unlock()
		if res != nil {
			_ = res.Close()
		}
	})
	defer watchdog.Stop()
	got, err := obs.Get(ctx, name)
	if err != nil {
		return nil, nil, stalled(ctx, err)
	}
	mu.Lock()
	res = got
	mu.Unlock()
	defer got.Close()
	info, err := got.Info()
	if err != nil {
		return nil, nil, stalled(ctx, err)
	}
	var r io.Reader = &progress{r: got, t: watchdog}
	if limit >= 0 {
		r = io.LimitReader(r, limit)
	}
	size := info.Size
	if limit >= 0 {
		size = min(size, uint64(limit))
	}
	buf := make([]byte, 0, min(size, 1<<40)+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, info, nil
		}
		if err != nil {
			return nil, nil, stalled(ctx, err)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// stalled returns the watchdog's error in place of err when the watchdog
// cancelled ctx.
func stalled(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
		return cause
	}
	return err
}

// progress resets the watchdog t whenever bytes arrive.
type progress struct {
	r io.Reader
	t *time.Timer
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.t.Reset(ObjectStall)
	}
	return n, err
}
