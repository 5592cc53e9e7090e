package batcher

import (
	"container/heap"
	"time"
)

// lane is the queue of one key: its items not yet wholly placed in batches,
// held in three heaps: by priority to form batches, by arrival for the
// MaxDelay rule and by deadline for the DeadlineSlack rule.
type lane[T any] struct {
	key  Key
	seq  uint64 // creation order, to break ties between lanes
	rows int    // rows queued, not yet placed in batches

	prio, arrival, deadline itemHeap[T]

	due  time.Time // when the lane must flush at the latest
	idx  int       // position in Queue.due; -1 once removed
	full bool      // listed in Queue.full
}

func newLane[T any](k Key, seq uint64) *lane[T] {
	return &lane[T]{
		key:      k,
		seq:      seq,
		prio:     itemHeap[T]{slot: byPriority, less: priorityLess[T]},
		arrival:  itemHeap[T]{slot: byArrival, less: arrivalLess[T]},
		deadline: itemHeap[T]{slot: byDeadline, less: deadlineLess[T]},
		idx:      -1,
	}
}

func (l *lane[T]) push(it *Item[T]) {
	it.idx = [3]int{-1, -1, -1}
	heap.Push(&l.prio, it)
	heap.Push(&l.arrival, it)
	if !it.Deadline.IsZero() {
		heap.Push(&l.deadline, it)
	}
	l.rows += it.Rows - it.assigned
}

// remove takes it, the head of the priority heap, out of every heap.
func (l *lane[T]) remove(it *Item[T]) {
	heap.Remove(&l.prio, it.idx[byPriority])
	heap.Remove(&l.arrival, it.idx[byArrival])
	if i := it.idx[byDeadline]; i >= 0 {
		heap.Remove(&l.deadline, i)
	}
}

// delayDue is when the lane's oldest item has waited delay; the lane must
// not be empty.
func (l *lane[T]) delayDue(delay time.Duration) time.Time {
	return l.arrival.top().Arrived.Add(delay)
}

// dueAt is the earliest time the lane must flush: its oldest item's
// arrival plus delay, or its earliest deadline less slack. The lane must
// not be empty.
func (l *lane[T]) dueAt(delay, slack time.Duration) time.Time {
	due := l.delayDue(delay)
	if l.deadline.Len() > 0 {
		if d := l.deadline.top().Deadline.Add(-slack); d.Before(due) {
			due = d
		}
	}
	return due
}

// take forms the parts of one batch of at most max rows, highest priority
// first. An item that does not fit is split: its first rows go in this
// batch and the rest stays at the head of the lane. bytes is the Bytes of
// the items the batch completes.
func (l *lane[T]) take(max int) (parts []Part[T], rows, bytes int) {
	for rows < max && l.prio.Len() > 0 {
		it := l.prio.top()
		left := it.Rows - it.assigned
		n := min(left, max-rows)
		parts = append(parts, Part[T]{Item: it, Start: it.assigned, Rows: n, Offset: rows})
		it.assigned += n
		rows += n
		l.rows -= n
		if n == left {
			l.remove(it)
			bytes += it.Bytes
		}
	}
	return parts, rows, bytes
}
