package pull_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/internal/pull"
)

type env struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
	slow *atomic.Int32 // slow-consumer errors on the connection
}

// setup runs a server with stream S (subject s.>) and a durable pull
// consumer W, and publishes n messages of size bytes.
func setup(t *testing.T, cc jetstream.ConsumerConfig, n, size int) *env {
	t.Helper()
	srv := natstest.Start(t)
	var slow atomic.Int32
	nc := natstest.Connect(t, srv, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			slow.Add(1)
		}
	}))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	cc.Durable, cc.AckPolicy = "W", jetstream.AckExplicitPolicy
	if cc.AckWait == 0 {
		cc.AckWait = 30 * time.Second
	}
	cons, err := js.CreateConsumer(ctx, "S", cc)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, n, size)
	return &env{js: js, cons: cons, slow: &slow}
}

func publish(t *testing.T, js jetstream.JetStream, from, n, size int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		data := make([]byte, size)
		copy(data, fmt.Sprintf("m-%d", i))
		if _, err := js.Publish(context.Background(), "s.x", data); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := e.cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func start(t *testing.T, cons jetstream.Consumer, opt pull.Options) *pull.Loop {
	t.Helper()
	l, err := pull.Start(context.Background(), cons, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

// next reads one message or fails the test after 10 s.
func next(t *testing.T, l *pull.Loop) jetstream.Msg {
	t.Helper()
	type res struct {
		m   jetstream.Msg
		err error
	}
	c := make(chan res, 1)
	go func() { m, err := l.Next(); c <- res{m, err} }()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("Next: %v", r.err)
		}
		return r.m
	case <-time.After(10 * time.Second):
		t.Fatal("Next: nothing in 10 s")
		return nil
	}
}

// TestStalledReaderLosesNothing: a reader that stalls under backpressure
// for longer than a request lives (the worker's batcher full) gets every
// message once, at once, and the connection never drops one as a slow
// consumer. nats.go's Messages iterator in its place (PullMaxMessages 4,
// PullExpiry 4 s, PullHeartbeat 500 ms) dropped one here, m-16, and left it
// ack-pending until AckWait redelivered it 30 s later.
func TestStalledReaderLosesNothing(t *testing.T) {
	t.Parallel()
	const n = 40
	e := setup(t, jetstream.ConsumerConfig{MaxAckPending: 8}, n, 64)
	l := start(t, e.cons, pull.Options{Max: 4, Expiry: time.Second})
	seen := map[string]bool{}
	t0 := time.Now()
	for round := 0; len(seen) < n; round++ {
		var held []jetstream.Msg
		for range min(8, n-len(seen)) {
			m := next(t, l)
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if meta.NumDelivered != 1 || seen[string(m.Data()[:6])] {
				t.Fatalf("%q delivered %d times", m.Data()[:6], meta.NumDelivered)
			}
			seen[string(m.Data()[:6])] = true
			held = append(held, m)
		}
		if round < 2 {
			time.Sleep(1500 * time.Millisecond) // several request lives, holding MaxAckPending
		}
		for _, m := range held {
			if err := m.DoubleAck(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if round < 2 {
			time.Sleep(1500 * time.Millisecond) // not reading: the buffer fills
		}
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("40 messages took %v: something waited for AckWait", d)
	}
	if s := e.slow.Load(); s != 0 {
		t.Errorf("%d slow-consumer errors; want none", s)
	}
	if info := e.info(t); info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("%d ack pending, %d redelivered; want 0 and 0", info.NumAckPending, info.NumRedelivered)
	}
}

// TestStreamOrder: jobs reach the reader in stream order, also when a
// request is still open as the next is due (the server deals messages
// round-robin over a consumer's open requests): the worker's admission
// order, and with it priority within a lane, is the pull order.
func TestStreamOrder(t *testing.T) {
	t.Parallel()
	e := setup(t, jetstream.ConsumerConfig{}, 10, 64)
	l := start(t, e.cons, pull.Options{Max: 16, Expiry: 2 * time.Second})
	var last uint64
	read := func(n int) {
		for range n {
			m := next(t, l)
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if meta.Sequence.Stream <= last {
				t.Fatalf("stream sequence %d after %d", meta.Sequence.Stream, last)
			}
			last = meta.Sequence.Stream
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	read(8) // half the buffer free while the first request waits for 6 more
	time.Sleep(100 * time.Millisecond)
	publish(t, e.js, 10, 200, 64)
	read(202)
}

// TestDrainDeliversWhatWasSent: jobs published while a drain waits for the
// open requests are delivered to the draining reader, not dropped; Next
// then says ErrDone and nothing is left ack-pending.
func TestDrainDeliversWhatWasSent(t *testing.T) {
	t.Parallel()
	e := setup(t, jetstream.ConsumerConfig{}, 5, 64)
	l := start(t, e.cons, pull.Options{Max: 16, Expiry: time.Second})
	for range 5 {
		if err := next(t, l).Ack(); err != nil {
			t.Fatal(err)
		}
	}
	l.Drain()
	publish(t, e.js, 5, 3, 64) // the open request (16 asked, 5 given) takes them
	got := 5
	t0 := time.Now()
	for {
		m, err := l.Next()
		if errors.Is(err, pull.ErrDone) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(context.Background()); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("drain took %v; want at most the request's expiry (1 s) and its margin", d)
	}
	info := e.info(t)
	if info.NumAckPending != 0 || got+int(info.NumPending) != 8 {
		t.Errorf("after drain: %d read, %d pending, %d ack pending; want 8 in all and 0 ack pending", got, info.NumPending, info.NumAckPending)
	}
}

// TestMaxBytesBoundsWhatWaits: with a byte bound smaller than the backlog,
// a reader that does not read holds about one request's bytes, not Max
// messages' worth (the worker's memory bound for large jobs), and when it
// reads, every message arrives.
func TestMaxBytesBoundsWhatWaits(t *testing.T) {
	t.Parallel()
	const n = 30
	e := setup(t, jetstream.ConsumerConfig{}, n, 10<<10)
	l := start(t, e.cons, pull.Options{Max: 64, MaxBytes: 32 << 10, Expiry: time.Second})
	time.Sleep(1500 * time.Millisecond) // past a request's life
	// 3 messages of 10 KiB fit a request of 32 KiB; the next request is
	// sent only as they are read.
	if held := e.info(t).NumAckPending; held > 3 {
		t.Errorf("a reader that read nothing holds %d messages of 10 KiB with a bound of 32 KiB; want at most 3", held)
	}
	for range n {
		if err := next(t, l).Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConsumerDeleted: deleting the consumer ends Next with an error that
// says so, which the worker binds again on.
func TestConsumerDeleted(t *testing.T) {
	t.Parallel()
	e := setup(t, jetstream.ConsumerConfig{}, 1, 64)
	l := start(t, e.cons, pull.Options{Max: 4, Expiry: 2 * time.Second})
	if err := next(t, l).Ack(); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(context.Background(), "S", "W"); err != nil {
		t.Fatal(err)
	}
	_, err := l.Next()
	if !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("Next after the consumer was deleted: %v; want ErrConsumerDeleted or ErrConsumerNotFound", err)
	}
}

// TestStopEndsNext: Stop ends a Next that is waiting, at once.
func TestStopEndsNext(t *testing.T) {
	t.Parallel()
	e := setup(t, jetstream.ConsumerConfig{}, 0, 0)
	l := start(t, e.cons, pull.Options{Max: 4, Expiry: 30 * time.Second})
	time.AfterFunc(100*time.Millisecond, l.Stop)
	t0 := time.Now()
	if _, err := l.Next(); !errors.Is(err, pull.ErrDone) {
		t.Fatalf("Next after Stop: %v; want ErrDone", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Stop took %v to end Next", d)
	}
}

// TestRefusedRequestIsReported: a request the consumer refuses (above its
// MaxRequestBatch) is reported, not silently retried forever.
func TestRefusedRequestIsReported(t *testing.T) {
	t.Parallel()
	e := setup(t, jetstream.ConsumerConfig{MaxRequestBatch: 2}, 1, 64)
	reported := make(chan error, 16)
	start(t, e.cons, pull.Options{Max: 8, Expiry: time.Second, OnError: func(err error) {
		select {
		case reported <- err:
		default:
		}
	}})
	select {
	case err := <-reported:
		if err == nil {
			t.Fatal("reported a nil error")
		}
		t.Logf("reported: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a request above MaxRequestBatch was never reported")
	}
}
