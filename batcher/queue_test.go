package batcher_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/batcher"
)

// t0 is the fake clock's origin; tests pass t0 plus offsets as "now".
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const ms = time.Millisecond

var (
	keyM = batcher.Key{Model: "m", Precision: "bf16"}
	keyN = batcher.Key{Model: "n", Precision: "bf16"}
)

func newQueue(t testing.TB, cfg batcher.Config) *batcher.Queue[string] {
	t.Helper()
	q, err := batcher.NewQueue[string](cfg)
	if err != nil {
		t.Fatalf("NewQueue(%+v): %v", cfg, err)
	}
	return q
}

// item returns an item of key m named name (its Value).
func item(name string, rows int) *batcher.Item[string] {
	return &batcher.Item[string]{Key: keyM, Rows: rows, Value: name}
}

// describe renders batches as "key reason name:start+rows@offset ...".
func describe(bs []batcher.Batch[string]) []string {
	var out []string
	for _, b := range bs {
		s := []string{b.Key.String(), b.Reason.String()}
		for _, p := range b.Parts {
			s = append(s, fmt.Sprintf("%v:%d+%d@%d", p.Item.Value, p.Start, p.Rows, p.Offset))
		}
		out = append(out, strings.Join(s, " "))
	}
	return out
}

// checkBatches checks what every batch must satisfy: parts of its key,
// contiguous offsets from 0, Rows their sum and at most max, and IDs
// increasing.
func checkBatches(t *testing.T, bs []batcher.Batch[string], max int) {
	t.Helper()
	for i, b := range bs {
		off := 0
		for j, p := range b.Parts {
			if p.Item.Key != b.Key {
				t.Errorf("batch %d part %d: key %s; want %s", b.ID, j, p.Item.Key, b.Key)
			}
			if p.Offset != off {
				t.Errorf("batch %d part %d: Offset %d; want %d", b.ID, j, p.Offset, off)
			}
			if p.Rows <= 0 || p.Start < 0 || p.Start+p.Rows > p.Item.Rows {
				t.Errorf("batch %d part %d: rows [%d,%d) of an item of %d rows", b.ID, j, p.Start, p.Start+p.Rows, p.Item.Rows)
			}
			off += p.Rows
		}
		if b.Rows != off {
			t.Errorf("batch %d: Rows %d; want sum of parts %d", b.ID, b.Rows, off)
		}
		if b.Rows > max || b.Rows == 0 {
			t.Errorf("batch %d: Rows %d; want 1..%d", b.ID, b.Rows, max)
		}
		if i > 0 && b.ID <= bs[i-1].ID {
			t.Errorf("batch IDs %d then %d; want increasing", bs[i-1].ID, b.ID)
		}
	}
}

func checkNext(t *testing.T, q *batcher.Queue[string], want time.Time) {
	t.Helper()
	got, ok := q.Next()
	if !ok || !got.Equal(want) {
		t.Errorf("Next() = %v, %v; want %v, true", got.Sub(t0), ok, want.Sub(t0))
	}
}

func checkReady(t *testing.T, q *batcher.Queue[string], now time.Time, max int, want ...string) []batcher.Batch[string] {
	t.Helper()
	bs := q.Ready(now)
	checkBatches(t, bs, max)
	if got := describe(bs); !slices.Equal(got, want) {
		t.Errorf("Ready(t0+%v):\ngot  %q\nwant %q", now.Sub(t0), got, want)
	}
	return bs
}

func TestQueueFlushFull(t *testing.T) {
	tests := []struct {
		name  string
		items []*batcher.Item[string]
		want  []string
		left  int
	}{
		{"below", []*batcher.Item[string]{item("a", 3)}, nil, 3},
		{"exact", []*batcher.Item[string]{item("a", 4)}, []string{"m/bf16 full a:0+4@0"}, 0},
		{"exact from several", []*batcher.Item[string]{item("a", 1), item("b", 3)}, []string{"m/bf16 full a:0+1@0 b:0+3@1"}, 0},
		{"over in one add", []*batcher.Item[string]{item("a", 10)}, []string{"m/bf16 full a:0+4@0", "m/bf16 full a:4+4@0"}, 2},
		{"over from several", []*batcher.Item[string]{item("a", 3), item("b", 3)}, []string{"m/bf16 full a:0+3@0 b:0+1@3"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, batcher.Config{MaxBatchRows: 4, MaxDelay: 5 * ms})
			for _, it := range tt.items {
				q.Add(it, t0)
			}
			checkReady(t, q, t0, 4, tt.want...)
			if got := q.Rows(); got != tt.left {
				t.Errorf("Rows() = %d; want %d", got, tt.left)
			}
			if tt.left > 0 {
				checkNext(t, q, t0.Add(5*ms)) // the remainder keeps its arrival
			} else if _, ok := q.Next(); ok {
				t.Errorf("Next() ok on an empty queue; want false")
			}
			checkReady(t, q, t0, 4) // nothing more at the same instant
		})
	}
}

func TestQueueFlushDelay(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 8, MaxDelay: 5 * ms})
	a, b := item("a", 2), item("b", 1)
	q.Add(a, t0)
	q.Add(b, t0.Add(2*ms))
	if !a.Arrived.Equal(t0) || !b.Arrived.Equal(t0.Add(2*ms)) {
		t.Errorf("Arrived = %v, %v; want t0, t0+2ms", a.Arrived, b.Arrived)
	}
	checkNext(t, q, t0.Add(5*ms))
	checkReady(t, q, t0.Add(5*ms-1), 8)
	bs := checkReady(t, q, t0.Add(5*ms), 8, "m/bf16 delay a:0+2@0 b:0+1@2")
	if len(bs) == 1 && !bs[0].Formed.Equal(t0.Add(5*ms)) {
		t.Errorf("Formed = %v; want t0+5ms", bs[0].Formed)
	}
	if got := q.Rows(); got != 0 {
		t.Errorf("Rows() = %d; want 0", got)
	}
	if _, ok := q.Next(); ok {
		t.Errorf("Next() ok after the flush; want false")
	}
}

func TestQueueFlushDeadline(t *testing.T) {
	tests := []struct {
		name     string
		cfg      batcher.Config
		deadline time.Duration // of item b, from t0
		wantNext time.Duration
		want     string
	}{
		{"within slack", batcher.Config{MaxDelay: time.Second, DeadlineSlack: 10 * ms}, 100 * ms, 90 * ms,
			"m/bf16 deadline a:0+1@0 b:0+1@1"},
		{"slack defaults to MaxDelay", batcher.Config{MaxDelay: time.Second}, 1500 * ms, 500 * ms,
			"m/bf16 deadline a:0+1@0 b:0+1@1"},
		{"delay comes first", batcher.Config{MaxDelay: 5 * ms, DeadlineSlack: 10 * ms}, time.Second, 5 * ms,
			"m/bf16 delay a:0+1@0 b:0+1@1"},
		{"already late", batcher.Config{MaxDelay: time.Second}, 0, -time.Second,
			"m/bf16 deadline a:0+1@0 b:0+1@1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, tt.cfg)
			q.Add(item("a", 1), t0)
			b := item("b", 1)
			b.Deadline = t0.Add(tt.deadline)
			q.Add(b, t0)
			due := t0.Add(tt.wantNext)
			checkNext(t, q, due)
			checkReady(t, q, due.Add(-1), 256)
			checkReady(t, q, due, 256, tt.want)
		})
	}
}

// TestQueueSplitReassemble splits an item of 10 rows over batches of 4,
// computes the batches out of order and reassembles each item's output by
// Part.Start and Part.Offset.
func TestQueueSplitReassemble(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 4, MaxDelay: 5 * ms})
	a, b := item("a", 10), item("b", 3)
	q.Add(a, t0)
	q.Add(b, t0)
	bs := checkReady(t, q, t0, 4,
		"m/bf16 full a:0+4@0",
		"m/bf16 full a:4+4@0",
		"m/bf16 full a:8+2@0 b:0+2@2")
	bs = append(bs, checkReady(t, q, t0.Add(5*ms), 4, "m/bf16 delay b:2+1@0")...)

	// Row r of item i holds 100*i+r; the "model" maps x to 3x+1.
	input := func(it *batcher.Item[string], r int) int { return 100*len(it.Value) + r }
	out := map[*batcher.Item[string]][]int{a: make([]int, a.Rows), b: make([]int, b.Rows)}
	done := map[*batcher.Item[string]]int{} // rows copied out
	for _, bt := range slices.Backward(bs) {
		in := make([]int, bt.Rows)
		for _, p := range bt.Parts {
			for r := range p.Rows {
				in[p.Offset+r] = input(p.Item, p.Start+r)
			}
		}
		res := make([]int, len(in))
		for i, x := range in {
			res[i] = 3*x + 1
		}
		for _, p := range bt.Parts {
			copy(out[p.Item][p.Start:p.Start+p.Rows], res[p.Offset:p.Offset+p.Rows])
			done[p.Item] += p.Rows
		}
	}
	for _, it := range []*batcher.Item[string]{a, b} {
		if got := done[it]; got != it.Rows {
			t.Errorf("item %v: %d rows computed; want %d", it.Value, got, it.Rows)
		}
		for r, got := range out[it] {
			if want := 3*input(it, r) + 1; got != want {
				t.Errorf("item %v row %d = %d; want %d", it.Value, r, got, want)
			}
		}
	}
}

func TestQueueMixedBatch(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 8, MaxDelay: 5 * ms})
	for _, it := range []*batcher.Item[string]{item("a", 1), item("b", 2), item("c", 3)} {
		q.Add(it, t0)
	}
	bs := checkReady(t, q, t0.Add(5*ms), 8, "m/bf16 delay a:0+1@0 b:0+2@1 c:0+3@3")
	if len(bs) == 1 && bs[0].Rows != 6 {
		t.Errorf("Rows = %d; want 6", bs[0].Rows)
	}
}

func TestQueueKeyIsolation(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 4, MaxDelay: 5 * ms})
	a, b := item("a", 3), item("b", 3)
	b.Key = keyN
	q.Add(a, t0)
	q.Add(b, t0.Add(3*ms))
	checkReady(t, q, t0.Add(3*ms), 4) // 6 rows, but no key has 4
	checkNext(t, q, t0.Add(5*ms))
	checkReady(t, q, t0.Add(5*ms), 4, "m/bf16 delay a:0+3@0")
	if got := q.Rows(); got != 3 {
		t.Errorf("Rows() = %d; want 3", got)
	}
	checkNext(t, q, t0.Add(8*ms))
	checkReady(t, q, t0.Add(8*ms), 4, "n/bf16 delay b:0+3@0")
}

func TestQueuePriority(t *testing.T) {
	tests := []struct {
		name  string
		prios []int // of items a, b, c, ... added in that order
		want  string
	}{
		{"high added last goes first", []int{0, 1, 5}, "m/bf16 delay c:0+1@0 b:0+1@1 a:0+1@2"},
		{"fifo among equals", []int{0, 0, 0}, "m/bf16 delay a:0+1@0 b:0+1@1 c:0+1@2"},
		{"mixed", []int{0, 2, 0, 2, -1}, "m/bf16 delay b:0+1@0 d:0+1@1 a:0+1@2 c:0+1@3 e:0+1@4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, batcher.Config{MaxBatchRows: 8, MaxDelay: 5 * ms})
			for i, p := range tt.prios {
				it := item(string(rune('a'+i)), 1)
				it.Priority = p
				q.Add(it, t0.Add(time.Duration(i)))
			}
			checkReady(t, q, t0.Add(5*ms), 8, tt.want)
		})
	}
}

// TestQueuePrioritySplit checks that a split item stays at the head of its
// key: the rest of it goes before lower-priority items.
func TestQueuePrioritySplit(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 2, MaxDelay: 5 * ms})
	lo, hi := item("lo", 1), item("hi", 3)
	hi.Priority = 1
	q.Add(lo, t0)
	q.Add(hi, t0)
	checkReady(t, q, t0, 2, "m/bf16 full hi:0+2@0", "m/bf16 full hi:2+1@0 lo:0+1@1")
}

// TestQueueNoStarvation keeps a key full of high-priority items: the old
// low-priority item goes out once it has waited MaxDelay.
func TestQueueNoStarvation(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 2, MaxDelay: 5 * ms})
	q.Add(item("old", 1), t0)
	for i := 1; i <= 5; i++ {
		now := t0.Add(time.Duration(i) * ms)
		for j := range 2 {
			it := item(fmt.Sprintf("h%d%c", i, 'a'+j), 1)
			it.Priority = 9
			q.Add(it, now)
		}
		if i < 5 {
			checkReady(t, q, now, 2, fmt.Sprintf("m/bf16 full h%da:0+1@0 h%db:0+1@1", i, i))
			checkNext(t, q, t0.Add(5*ms))
		}
	}
	checkReady(t, q, t0.Add(5*ms), 2, "m/bf16 delay h5a:0+1@0 h5b:0+1@1", "m/bf16 delay old:0+1@0")
	if got := q.Rows(); got != 0 {
		t.Errorf("Rows() = %d; want 0", got)
	}
}

func TestQueueDrain(t *testing.T) {
	q := newQueue(t, batcher.Config{MaxBatchRows: 4, MaxDelay: time.Second})
	var items []*batcher.Item[string]
	for i, rows := range []int{1, 9, 2, 3, 4} {
		it := item(fmt.Sprint("i", i), rows)
		it.Priority = i % 2
		if i%2 == 0 {
			it.Key = keyN
		}
		if i == 3 {
			it.Deadline = t0.Add(time.Hour)
		}
		items = append(items, it)
		q.Add(it, t0.Add(time.Duration(i)*ms))
	}
	bs := q.Ready(t0.Add(10 * ms))
	bs = append(bs, q.Drain(t0.Add(20*ms))...)
	checkBatches(t, bs, 4)
	for _, b := range bs {
		if b.Reason != batcher.FlushFull && b.Reason != batcher.FlushDrain {
			t.Errorf("batch %d: Reason %s; want full or drain", b.ID, b.Reason)
		}
	}
	next := map[*batcher.Item[string]]int{} // next row expected of each item
	for _, b := range bs {
		for _, p := range b.Parts {
			if p.Start != next[p.Item] {
				t.Errorf("item %v: part starts at %d; want %d", p.Item.Value, p.Start, next[p.Item])
			}
			next[p.Item] = p.Start + p.Rows
		}
	}
	for _, it := range items {
		if next[it] != it.Rows {
			t.Errorf("item %v: %d rows delivered; want %d", it.Value, next[it], it.Rows)
		}
	}
	if got := q.Rows(); got != 0 {
		t.Errorf("Rows() = %d; want 0", got)
	}
	if _, ok := q.Next(); ok {
		t.Errorf("Next() ok after Drain; want false")
	}
	if got := q.Drain(t0.Add(30 * ms)); got != nil {
		t.Errorf("second Drain = %q; want nil", describe(got))
	}

	// The queue is usable after a drain.
	q.Add(item("later", 1), t0.Add(40*ms))
	checkNext(t, q, t0.Add(40*ms+time.Second))
}

func TestQueueEmpty(t *testing.T) {
	q := newQueue(t, batcher.Config{})
	if _, ok := q.Next(); ok {
		t.Errorf("Next() ok on a new queue; want false")
	}
	if got := q.Ready(t0); got != nil {
		t.Errorf("Ready = %q; want nil", describe(got))
	}
	if got := q.Drain(t0); got != nil {
		t.Errorf("Drain = %q; want nil", describe(got))
	}
}

func TestQueueAddInvalid(t *testing.T) {
	added := item("a", 1)
	newQueue(t, batcher.Config{}).Add(added, t0)
	tests := []struct {
		name string
		it   *batcher.Item[string]
	}{
		{"nil", nil},
		{"no rows", item("a", 0)},
		{"negative rows", item("a", -1)},
		{"added twice", added},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, batcher.Config{})
			defer func() {
				err, _ := recover().(error)
				if !errors.Is(err, batcher.ErrInvalidItem) {
					t.Errorf("Add panicked with %v; want an error wrapping ErrInvalidItem", err)
				}
			}()
			q.Add(tt.it, t0)
		})
	}
}

func BenchmarkQueue(b *testing.B) {
	benches := []struct {
		keys, rows, maxRows int
	}{
		{1, 1, 256},
		{8, 4, 256},
		{64, 16, 256},
		{8, 1000, 256}, // every item split
	}
	for _, bb := range benches {
		b.Run(fmt.Sprintf("keys=%d/rows=%d", bb.keys, bb.rows), func(b *testing.B) {
			q := newQueue(b, batcher.Config{MaxBatchRows: bb.maxRows, MaxDelay: 5 * ms})
			keys := make([]batcher.Key, bb.keys)
			for i := range keys {
				keys[i] = batcher.Key{Model: fmt.Sprint("m", i), Precision: "bf16"}
			}
			now, n := t0, 0
			for b.Loop() {
				now = now.Add(time.Microsecond)
				q.Add(&batcher.Item[string]{Key: keys[n%bb.keys], Rows: bb.rows, Priority: n % 3}, now)
				q.Ready(now)
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
