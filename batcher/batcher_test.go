package batcher_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/batcher"
)

// patience bounds every wait for the Batcher's goroutine. It only turns a
// hang into a failure: no test's outcome depends on how long things take.
const patience = 10 * time.Second

// start returns a running Batcher, the cancel of Run's context and Run's
// result. Cleanup stops it, reads Batches to the end and waits for Run.
func start(t *testing.T, cfg batcher.Config, setup ...func(*batcher.Batcher[string])) (*batcher.Batcher[string], context.CancelFunc, <-chan error) {
	t.Helper()
	b, err := batcher.New[string](cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	for _, f := range setup {
		f(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		errc <- b.Run(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		collect(t, b)
		select {
		case <-stopped:
		case <-time.After(patience):
			t.Errorf("Run did not return after cancel")
		}
	})
	return b, cancel, errc
}

// recv returns the next batch.
func recv(t *testing.T, b *batcher.Batcher[string]) batcher.Batch[string] {
	t.Helper()
	select {
	case bt, ok := <-b.Batches():
		if !ok {
			t.Fatalf("Batches closed; want a batch")
		}
		return bt
	case <-time.After(patience):
		t.Fatalf("no batch after %v", patience)
	}
	panic("unreachable")
}

// collect reads Batches until it is closed.
func collect(t *testing.T, b *batcher.Batcher[string]) []batcher.Batch[string] {
	t.Helper()
	var bs []batcher.Batch[string]
	for {
		select {
		case bt, ok := <-b.Batches():
			if !ok {
				return bs
			}
			bs = append(bs, bt)
		case <-time.After(patience):
			t.Fatalf("Batches not closed after %v", patience)
		}
	}
}

func runErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(patience):
		t.Fatalf("Run did not return after %v", patience)
	}
	return nil
}

func add(t *testing.T, b *batcher.Batcher[string], its ...*batcher.Item[string]) {
	t.Helper()
	for _, it := range its {
		if err := b.Add(context.Background(), it); err != nil {
			t.Fatalf("Add(%v): %v", it.Value, err)
		}
	}
}

// addAsync calls Add in a goroutine and returns its result.
func addAsync(ctx context.Context, b *batcher.Batcher[string], it *batcher.Item[string]) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- b.Add(ctx, it) }()
	return errc
}

func signal(ch chan<- struct{}) func(*batcher.Batcher[string]) {
	return func(b *batcher.Batcher[string]) {
		batcher.SetOnBlock(b, func() { ch <- struct{}{} })
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("%s: not after %v", what, patience)
	}
}

func TestBatcherFlushDelay(t *testing.T) {
	b, _, _ := start(t, batcher.Config{MaxBatchRows: 8, MaxDelay: ms})
	a := item("a", 2)
	add(t, b, a)
	bt := recv(t, b)
	if got, want := describe([]batcher.Batch[string]{bt}), []string{"m/bf16 delay a:0+2@0"}; !slices.Equal(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
	if bt.Formed.Before(a.Arrived.Add(ms)) {
		t.Errorf("Formed %v before Arrived %v + MaxDelay", bt.Formed, a.Arrived)
	}
}

func TestBatcherFlushFull(t *testing.T) {
	b, _, _ := start(t, batcher.Config{MaxBatchRows: 4, MaxDelay: time.Hour})
	add(t, b, item("a", 1), item("b", 3))
	if got, want := describe([]batcher.Batch[string]{recv(t, b)}), []string{"m/bf16 full a:0+1@0 b:0+3@1"}; !slices.Equal(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestBatcherAddBlocksWhenFull(t *testing.T) {
	blocked := make(chan struct{}, 1)
	b, _, errc := start(t, batcher.Config{MaxBatchRows: 4, MaxQueuedRows: 4, MaxDelay: time.Hour}, signal(blocked))
	add(t, b, item("a", 4))
	if got := b.Rows(); got != 4 {
		t.Errorf("Rows() = %d; want 4", got)
	}
	added := addAsync(context.Background(), b, item("b", 1))
	waitFor(t, blocked, "Add blocking")
	select {
	case err := <-added:
		t.Fatalf("Add returned %v with the batcher full; want it to block", err)
	default:
	}

	if got, want := describe([]batcher.Batch[string]{recv(t, b)}), []string{"m/bf16 full a:0+4@0"}; !slices.Equal(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
	select {
	case err := <-added:
		if err != nil {
			t.Errorf("Add after room freed: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("Add still blocked after the batch was read")
	}

	b.Close()
	if got, want := describe(collect(t, b)), []string{"m/bf16 drain b:0+1@0"}; !slices.Equal(got, want) {
		t.Errorf("drained %q; want %q", got, want)
	}
	if err := runErr(t, errc); err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
}

// TestBatcherAddBlocksOnBytes: the bound holds in bytes as in rows, and a
// batch frees the bytes of the items it completes when it is read.
func TestBatcherAddBlocksOnBytes(t *testing.T) {
	blocked := make(chan struct{}, 1)
	b, _, _ := start(t, batcher.Config{MaxBatchRows: 4, MaxQueuedRows: 100, MaxQueuedBytes: 1000, MaxDelay: time.Hour}, signal(blocked))
	a := item("a", 4)
	a.Bytes = 1000
	add(t, b, a)
	added := addAsync(context.Background(), b, item("b", 1))
	waitFor(t, blocked, "Add blocking on bytes")
	select {
	case err := <-added:
		t.Fatalf("Add returned %v with 1000 of 1000 bytes held; want it to block", err)
	default:
	}
	if got, want := describe([]batcher.Batch[string]{recv(t, b)}), []string{"m/bf16 full a:0+4@0"}; !slices.Equal(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
	select {
	case err := <-added:
		if err != nil {
			t.Errorf("Add after the bytes were freed: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("Add still blocked after the batch was read")
	}
}

// TestBatcherIsolate: items whose keys differ only in Isolate never share
// a batch.
func TestBatcherIsolate(t *testing.T) {
	b, _, _ := start(t, batcher.Config{MaxBatchRows: 8, MaxDelay: time.Hour})
	a, c := item("a", 1), item("c", 1)
	iso := item("i", 1)
	iso.Key.Isolate = 42
	add(t, b, a, iso, c)
	b.Close()
	want := []string{"m/bf16 drain a:0+1@0 c:0+1@1", "m/bf16#42 drain i:0+1@0"}
	if got := describe(collect(t, b)); !slices.Equal(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}

// TestBatcherHugeItem adds an item over the bound to an empty batcher: it
// is admitted, and its batches hold later Adds back until read.
func TestBatcherHugeItem(t *testing.T) {
	blocked := make(chan struct{}, 1)
	b, _, _ := start(t, batcher.Config{MaxBatchRows: 4, MaxQueuedRows: 4, MaxDelay: time.Hour}, signal(blocked))
	add(t, b, item("a", 10))
	added := addAsync(context.Background(), b, item("b", 1))
	waitFor(t, blocked, "Add blocking")
	var got []batcher.Batch[string]
	for range 2 {
		select {
		case err := <-added:
			t.Fatalf("Add returned %v with %d rows held; want it to block", err, b.Rows())
		default:
		}
		got = append(got, recv(t, b))
	}
	select {
	case err := <-added:
		if err != nil {
			t.Errorf("Add after room freed: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("Add still blocked after the batches were read")
	}
	b.Close()
	got = append(got, collect(t, b)...)
	want := []string{"m/bf16 full a:0+4@0", "m/bf16 full a:4+4@0", "m/bf16 drain a:8+2@0 b:0+1@2"}
	if !slices.Equal(describe(got), want) {
		t.Errorf("got %q; want %q", describe(got), want)
	}
}

func TestBatcherStopDrains(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(b *batcher.Batcher[string], cancel context.CancelFunc)
		wantErr error
	}{
		{"Close", func(b *batcher.Batcher[string], _ context.CancelFunc) { b.Close() }, nil},
		{"cancel", func(_ *batcher.Batcher[string], cancel context.CancelFunc) { cancel() }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, cancel, errc := start(t, batcher.Config{MaxBatchRows: 4, MaxDelay: time.Hour})
			// No key reaches MaxBatchRows, so nothing flushes before the stop.
			c, d := item("c", 2), item("d", 3)
			d.Key = keyN
			add(t, b, item("a", 1), d, c)
			tt.stop(b, cancel)
			want := []string{"m/bf16 drain a:0+1@0 c:0+2@1", "n/bf16 drain d:0+3@0"}
			if got := describe(collect(t, b)); !slices.Equal(got, want) {
				t.Errorf("drained %q; want %q", got, want)
			}
			if err := runErr(t, errc); !errors.Is(err, tt.wantErr) {
				t.Errorf("Run = %v; want %v", err, tt.wantErr)
			}
			if err := b.Add(context.Background(), item("late", 1)); !errors.Is(err, batcher.ErrClosed) {
				t.Errorf("Add after stop = %v; want ErrClosed", err)
			}
			b.Close() // idempotent
		})
	}
}

// TestBatcherBlockedAddReturns checks that an Add waiting for room gives up
// on Close and on the end of its context, and queues nothing.
func TestBatcherBlockedAddReturns(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(b *batcher.Batcher[string], cancelAdd context.CancelFunc)
		wantErr error
	}{
		{"Close", func(b *batcher.Batcher[string], _ context.CancelFunc) { b.Close() }, batcher.ErrClosed},
		{"ctx", func(_ *batcher.Batcher[string], cancelAdd context.CancelFunc) { cancelAdd() }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocked := make(chan struct{}, 1)
			b, _, _ := start(t, batcher.Config{MaxBatchRows: 4, MaxQueuedRows: 4, MaxDelay: time.Hour}, signal(blocked))
			add(t, b, item("a", 4))
			ctx, cancelAdd := context.WithCancel(context.Background())
			defer cancelAdd()
			added := addAsync(ctx, b, item("b", 1))
			waitFor(t, blocked, "Add blocking")
			tt.stop(b, cancelAdd)
			select {
			case err := <-added:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Add = %v; want %v", err, tt.wantErr)
				}
			case <-time.After(patience):
				t.Fatalf("Add still blocked")
			}
			b.Close()
			// Run may have formed a's batch before Close or drain it after.
			got := describe(collect(t, b))
			full, drain := []string{"m/bf16 full a:0+4@0"}, []string{"m/bf16 drain a:0+4@0"}
			if !slices.Equal(got, full) && !slices.Equal(got, drain) {
				t.Errorf("delivered %q; want %q or %q", got, full, drain)
			}
		})
	}
}

func TestBatcherAddErrors(t *testing.T) {
	b, _, _ := start(t, batcher.Config{MaxDelay: time.Hour})
	if err := b.Add(context.Background(), item("none", 0)); !errors.Is(err, batcher.ErrInvalidItem) {
		t.Errorf("Add of 0 rows = %v; want ErrInvalidItem", err)
	}
	if err := b.Add(context.Background(), nil); !errors.Is(err, batcher.ErrInvalidItem) {
		t.Errorf("Add(nil) = %v; want ErrInvalidItem", err)
	}
	a := item("a", 1)
	add(t, b, a)
	if err := b.Add(context.Background(), a); !errors.Is(err, batcher.ErrInvalidItem) {
		t.Errorf("second Add of one item = %v; want ErrInvalidItem", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Add(ctx, item("b", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled ctx = %v; want context.Canceled", err)
	}
	if got := b.Rows(); got != 1 {
		t.Errorf("Rows() = %d; want 1", got)
	}
}

func TestBatcherRunOnce(t *testing.T) {
	b, err := batcher.New[string](batcher.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.Run(context.Background()); err != nil { // drains nothing, returns
		t.Errorf("Run after Close = %v; want nil", err)
	}
	if _, ok := <-b.Batches(); ok {
		t.Errorf("Batches open after Run returned")
	}
	if err := b.Run(context.Background()); !errors.Is(err, batcher.ErrRunning) {
		t.Errorf("second Run = %v; want ErrRunning", err)
	}
}

func TestBatcherClock(t *testing.T) {
	b, _, _ := start(t, batcher.Config{MaxDelay: time.Hour}, func(b *batcher.Batcher[string]) {
		batcher.SetNow(b, func() time.Time { return t0 })
	})
	a := item("a", 3)
	add(t, b, a)
	if !a.Arrived.Equal(t0) {
		t.Errorf("Arrived = %v; want %v", a.Arrived, t0)
	}
	b.Close()
	bs := collect(t, b)
	if len(bs) != 1 || !bs[0].Formed.Equal(t0) {
		t.Errorf("got %q; want one batch formed at t0", describe(bs))
	}
}

// TestBatcherConcurrent runs producers against a reader and checks that
// every row of every item is delivered once, in order.
func TestBatcherConcurrent(t *testing.T) {
	const producers, each = 8, 200
	b, _, errc := start(t, batcher.Config{MaxBatchRows: 16, MaxQueuedRows: 32, MaxDelay: ms})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				it := &batcher.Item[string]{
					Key:      batcher.Key{Model: fmt.Sprint("m", p%3), Precision: "bf16"},
					Rows:     1 + (p*each+i)%23,
					Priority: i % 4,
					Value:    fmt.Sprint(p, "/", i),
				}
				if i%5 == 0 {
					it.Deadline = time.Now().Add(time.Duration(i%3) * ms)
				}
				if err := b.Add(context.Background(), it); err != nil {
					t.Errorf("Add: %v", err)
					return
				}
			}
		})
	}
	closed := make(chan struct{})
	go func() {
		wg.Wait()
		b.Close()
		close(closed)
	}()

	next := map[*batcher.Item[string]]int{}
	completed := 0
	var bs []batcher.Batch[string]
	for bt := range b.Batches() {
		bs = append(bs, bt)
		for _, p := range bt.Parts {
			if p.Start != next[p.Item] {
				t.Errorf("item %v: part at row %d; want %d", p.Item.Value, p.Start, next[p.Item])
			}
			next[p.Item] = p.Start + p.Rows
			if next[p.Item] == p.Item.Rows {
				completed++
			}
		}
	}
	<-closed
	checkBatches(t, bs, 16)
	if completed != producers*each || len(next) != producers*each {
		t.Errorf("%d items completed, %d seen; want %d", completed, len(next), producers*each)
	}
	for it, n := range next {
		if n != it.Rows {
			t.Errorf("item %v: %d rows delivered; want %d", it.Value, n, it.Rows)
		}
	}
	if err := runErr(t, errc); err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
}
