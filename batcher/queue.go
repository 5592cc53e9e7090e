package batcher

import (
	"container/heap"
	"time"
)

// Queue is the deterministic core of the batcher: it holds items per key
// and forms batches when asked, at the time it is told. It starts no
// goroutine and reads no clock, so it can be driven with explicit times. It
// is not safe for concurrent use; Batcher drives one from a goroutine.
//
// Adding an item costs O(log n) in the items of its key, and forming
// batches O(log n) per part; Ready and Next cost O(log k) in the keys, plus
// the batches formed.
type Queue[T any] struct {
	cfg   Config
	lanes map[Key]*lane[T]
	due   laneHeap[T] // every lane with rows queued, soonest due first
	full  []*lane[T]  // lanes that reached MaxBatchRows since the last Ready
	rows  int
	bytes int
	seq   uint64 // last item sequence number given
	lseq  uint64 // last lane sequence number given
	id    uint64 // last batch ID given
}

// NewQueue returns an empty queue that forms batches by cfg, after
// defaults. It returns an error wrapping ErrInvalidConfig if cfg is
// unusable.
func NewQueue[T any](cfg Config) (*Queue[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Queue[T]{cfg: cfg.WithDefaults(), lanes: map[Key]*lane[T]{}}, nil
}

// Config returns the queue's configuration, defaults filled in.
func (q *Queue[T]) Config() Config { return q.cfg }

// Add queues it under its key and sets it.Arrived to now. It never blocks
// and never rejects for lack of room: the bound on queued rows is the
// Batcher's to enforce. It panics with an error wrapping ErrInvalidItem if
// it is nil, has no rows or was added before.
func (q *Queue[T]) Add(it *Item[T], now time.Time) {
	if err := q.check(it); err != nil {
		panic(err)
	}
	q.add(it, now)
}

// check reports why it cannot be added.
func (q *Queue[T]) check(it *Item[T]) error {
	if err := checkItem(it); err != nil {
		return err
	}
	if it.seq != 0 {
		return errAddedTwice(it)
	}
	return nil
}

func (q *Queue[T]) add(it *Item[T], now time.Time) {
	q.seq++
	it.seq = q.seq
	it.Arrived = now
	l := q.lanes[it.Key]
	if l == nil {
		q.lseq++
		l = newLane[T](it.Key, q.lseq)
		q.lanes[it.Key] = l
	}
	l.push(it)
	q.rows += it.Rows
	q.bytes += it.Bytes
	due := l.dueAt(q.cfg.MaxDelay, q.cfg.DeadlineSlack)
	switch {
	case l.idx < 0:
		l.due = due
		heap.Push(&q.due, l)
	case !due.Equal(l.due):
		l.due = due
		heap.Fix(&q.due, l.idx)
	}
	if l.rows >= q.cfg.MaxBatchRows && !l.full {
		l.full = true
		q.full = append(q.full, l)
	}
}

// Ready returns every batch that must flush at now, in this order:
//
//   - each key due at now, soonest due first: a key whose oldest item
//     arrived at or before now-MaxDelay (Reason FlushDelay) or, failing
//     that, with an item whose deadline is at or before now+DeadlineSlack
//     (FlushDeadline), flushes all its queued rows, in as many batches of
//     at most MaxBatchRows as needed;
//   - then each other key with at least MaxBatchRows rows queued, in the
//     order they filled up, flushes full batches while it has that many
//     (FlushFull), leaving the remainder queued.
//
// Ready returns nil when nothing is to flush.
func (q *Queue[T]) Ready(now time.Time) []Batch[T] {
	var out []Batch[T]
	for len(q.due) > 0 && !q.due[0].due.After(now) {
		l := q.due[0]
		reason := FlushDelay
		if l.delayDue(q.cfg.MaxDelay).After(now) {
			reason = FlushDeadline
		}
		out = q.flushAll(out, l, reason, now)
	}
	for i, l := range q.full {
		q.full[i] = nil
		l.full = false
		if l.idx < 0 {
			continue // flushed whole above
		}
		for l.rows >= q.cfg.MaxBatchRows {
			out = append(out, q.form(l, FlushFull, now))
		}
		if l.rows == 0 {
			q.removeLane(l)
			continue
		}
		l.due = l.dueAt(q.cfg.MaxDelay, q.cfg.DeadlineSlack)
		heap.Fix(&q.due, l.idx)
	}
	q.full = q.full[:0]
	return out
}

// Next returns the earliest time at which Ready will flush a key for its
// delay or a deadline, and false if the queue is empty. A key that is full
// is ready at once, whatever Next says.
func (q *Queue[T]) Next() (time.Time, bool) {
	if len(q.due) == 0 {
		return time.Time{}, false
	}
	return q.due[0].due, true
}

// Drain returns batches holding every queued row, with Reason FlushDrain,
// keys in the order they are due, and leaves the queue empty.
func (q *Queue[T]) Drain(now time.Time) []Batch[T] {
	var out []Batch[T]
	for len(q.due) > 0 {
		out = q.flushAll(out, q.due[0], FlushDrain, now)
	}
	for i, l := range q.full {
		q.full[i] = nil
		l.full = false
	}
	q.full = q.full[:0]
	return out
}

// Rows returns the number of queued rows not yet placed in a batch.
func (q *Queue[T]) Rows() int { return q.rows }

// Bytes returns the Bytes of the queued items not wholly placed in batches.
func (q *Queue[T]) Bytes() int { return q.bytes }

// flushAll appends batches holding all of l's rows to out and removes l.
func (q *Queue[T]) flushAll(out []Batch[T], l *lane[T], reason Reason, now time.Time) []Batch[T] {
	for l.rows > 0 {
		out = append(out, q.form(l, reason, now))
	}
	q.removeLane(l)
	return out
}

// form takes one batch of at most MaxBatchRows rows from l.
func (q *Queue[T]) form(l *lane[T], reason Reason, now time.Time) Batch[T] {
	parts, rows, bytes := l.take(q.cfg.MaxBatchRows)
	q.rows -= rows
	q.bytes -= bytes
	q.id++
	return Batch[T]{ID: q.id, Key: l.key, Parts: parts, Rows: rows, Bytes: bytes, Formed: now, Reason: reason}
}

func (q *Queue[T]) removeLane(l *lane[T]) {
	heap.Remove(&q.due, l.idx)
	delete(q.lanes, l.key)
}
