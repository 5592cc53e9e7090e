package batcher

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// checkInvariants checks q's internal bookkeeping against its lanes.
func checkInvariants(t *testing.T, q *Queue[string]) {
	t.Helper()
	if len(q.lanes) != len(q.due) {
		t.Fatalf("%d lanes in the map, %d in the due heap", len(q.lanes), len(q.due))
	}
	rows := 0
	for i, l := range q.due {
		if l.idx != i || q.lanes[l.key] != l {
			t.Fatalf("lane %s: idx %d at %d, in map %v", l.key, l.idx, i, q.lanes[l.key] == l)
		}
		if l.rows <= 0 {
			t.Fatalf("lane %s kept with %d rows", l.key, l.rows)
		}
		if want := l.dueAt(q.cfg.MaxDelay, q.cfg.DeadlineSlack); !l.due.Equal(want) {
			t.Fatalf("lane %s: due %v; want %v", l.key, l.due, want)
		}
		if p := (i - 1) / 2; i > 0 && q.due.Less(i, p) {
			t.Fatalf("due heap out of order at %d", i)
		}
		left := 0
		for j, it := range l.prio.items {
			if it.idx[byPriority] != j {
				t.Fatalf("item idx %d at %d", it.idx[byPriority], j)
			}
			left += it.Rows - it.assigned
		}
		if left != l.rows || len(l.arrival.items) != len(l.prio.items) {
			t.Fatalf("lane %s: rows %d; items hold %d", l.key, l.rows, left)
		}
		rows += l.rows
	}
	if rows != q.rows {
		t.Fatalf("Rows() = %d; lanes hold %d", q.rows, rows)
	}
}

// TestQueueRandom drives a queue with random items and times and checks
// that Ready leaves no key due or full, every row is delivered once and in
// order, and the bookkeeping holds throughout.
func TestQueueRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q, err := NewQueue[string](Config{MaxBatchRows: 8, MaxDelay: 5 * time.Millisecond, DeadlineSlack: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	next := map[*Item[string]]int{}
	var items []*Item[string]
	deliver := func(bs []Batch[string]) {
		for _, b := range bs {
			if b.Rows > q.cfg.MaxBatchRows {
				t.Fatalf("batch of %d rows", b.Rows)
			}
			for _, p := range b.Parts {
				if p.Start != next[p.Item] {
					t.Fatalf("part at row %d; want %d", p.Start, next[p.Item])
				}
				next[p.Item] += p.Rows
			}
		}
	}
	for step := range 20000 {
		now = now.Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
		for range rng.IntN(4) {
			it := &Item[string]{
				Key:      Key{Model: fmt.Sprint("m", rng.IntN(5)), Precision: "bf16"},
				Rows:     1 + rng.IntN(12),
				Priority: rng.IntN(3),
			}
			if rng.IntN(4) == 0 {
				it.Deadline = now.Add(time.Duration(rng.IntN(10)) * time.Millisecond)
			}
			q.Add(it, now)
			items = append(items, it)
		}
		checkInvariants(t, q)
		if step%1000 == 999 {
			deliver(q.Drain(now))
		} else {
			deliver(q.Ready(now))
		}
		checkInvariants(t, q)
		if due, ok := q.Next(); ok && !due.After(now) {
			t.Fatalf("step %d: a key due at %v is left at %v", step, due, now)
		}
		for _, l := range q.lanes {
			if l.rows >= q.cfg.MaxBatchRows {
				t.Fatalf("step %d: lane %s left with %d rows", step, l.key, l.rows)
			}
		}
	}
	deliver(q.Drain(now))
	if len(q.lanes) != 0 || q.Rows() != 0 {
		t.Fatalf("after Drain: %d lanes, %d rows", len(q.lanes), q.Rows())
	}
	for _, it := range items {
		if next[it] != it.Rows {
			t.Fatalf("item delivered %d of %d rows", next[it], it.Rows)
		}
	}
}
