package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// objectStall is how long ReadObject waits for an object's next bytes
// before it gives up on a fetch that has stopped moving (ObjectStall; a
// variable for the tests).
var objectStall = ObjectStall

// ObjectStall is how long ReadObject waits for an object's next bytes
// before it gives up on a fetch that has stopped moving.
const ObjectStall = 30 * time.Second

// ErrStalled is returned (wrapped) by ReadObject when no bytes arrived for
// ObjectStall.
var ErrStalled = errors.New("object fetch stalled")

// testHookProgress, when set (tests), is called each time bytes arrive.
var testHookProgress func()

// ReadObject reads object name of obs whole (at most limit bytes when
// limit >= 0) and returns it with its info. However large the object, it
// is bounded only by ctx and by progress: it fails with ErrStalled when no
// bytes arrive for ObjectStall. The buffer is sized from the object's
// info, which Push wrote from the file's size.
//
// nats.go's ObjectStore.Get, given a context without a deadline, bounds
// the whole read by the JetStream context's default API timeout (5 s): a
// language model of 16 GB failed to load ("nats: timeout") in the middle
// of its download. Its reads wait until the context's deadline, read
// again at every call. So Get is given a context whose deadline is always
// ObjectStall ahead (or the caller's, if sooner): a read blocked on a
// stalled download returns within ObjectStall, and a watchdog, reset
// whenever bytes arrive, cancels the context once none came for that
// long; the caller's cancellation reaches a blocked read the same way.
// (A read whose deadline passes returns the pipe's timeout error, not
// (0, nil) as nats.go means it to: ReadObject reads again until the
// watchdog has spoken.)
func ReadObject(ctx context.Context, obs jetstream.ObjectStore, name string, limit int64) ([]byte, *jetstream.ObjectInfo, error) {
	base, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := objectStall
	watchdog := time.AfterFunc(stall, func() {
		cancel(fmt.Errorf("%w: no bytes of %s for %s", ErrStalled, name, stall))
	})
	defer watchdog.Stop()
	rctx := slidingDeadline{base, stall}
	res, err := obs.Get(rctx, name)
	if err != nil {
		return nil, nil, cause(base, err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return nil, nil, cause(base, err)
	}
	var r io.Reader = &progress{r: res, t: watchdog, stall: stall}
	size := info.Size
	if limit >= 0 {
		r = io.LimitReader(r, limit)
		size = min(size, uint64(limit))
	}
	if size > maxObjectBytes {
		return nil, nil, fmt.Errorf("model: object %s is %d bytes, over the %d ReadObject reads", name, size, uint64(maxObjectBytes))
	}
	buf := make([]byte, 0, size+1) // +1: EOF without growing
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, info, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && base.Err() == nil {
			continue // a read's deadline passed: the watchdog decides
		}
		if err != nil {
			return nil, nil, cause(base, err)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// maxObjectBytes bounds the size ReadObject believes an object's info
// about before it allocates for it.
const maxObjectBytes = 1 << 40

// cause returns why ctx ended (the watchdog's ErrStalled, or the caller's
// cancellation) in place of err when it has ended: the read's own error
// then only says how nats.go noticed.
func cause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// slidingDeadline is a context whose deadline is always stall from now,
// or its parent's, if sooner; Done, Err and Value are its parent's.
type slidingDeadline struct {
	context.Context
	stall time.Duration
}

func (c slidingDeadline) Deadline() (time.Time, bool) {
	d := time.Now().Add(c.stall)
	if pd, ok := c.Context.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

// progress resets the watchdog t whenever bytes arrive.
type progress struct {
	r     io.Reader
	t     *time.Timer
	stall time.Duration
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.t.Reset(p.stall)
		if testHookProgress != nil {
			testHookProgress()
		}
	}
	return n, err
}
