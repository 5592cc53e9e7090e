package batcher

import "container/heap"

// The heaps a lane keeps its items in; each is an index into Item.idx.
const (
	byPriority = iota // priority desc, then arrival order
	byArrival         // arrival time, then arrival order
	byDeadline        // deadline, then arrival order; only items with one
)

// itemHeap[T] is a binary min-heap of items under less. Each item records its
// position in it.idx[slot], so any item can be removed in O(log n).
type itemHeap[T any] struct {
	items []*Item[T]
	slot  int
	less  func(a, b *Item[T]) bool
}

var _ heap.Interface = (*itemHeap[int])(nil)

func (h *itemHeap[T]) Len() int           { return len(h.items) }
func (h *itemHeap[T]) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }

func (h *itemHeap[T]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].idx[h.slot] = i
	h.items[j].idx[h.slot] = j
}

func (h *itemHeap[T]) Push(x any) {
	it := x.(*Item[T])
	it.idx[h.slot] = len(h.items)
	h.items = append(h.items, it)
}

func (h *itemHeap[T]) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	it.idx[h.slot] = -1
	return it
}

// top returns the least item; the heap must not be empty.
func (h *itemHeap[T]) top() *Item[T] { return h.items[0] }

func priorityLess[T any](a, b *Item[T]) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.seq < b.seq
}

func arrivalLess[T any](a, b *Item[T]) bool {
	if !a.Arrived.Equal(b.Arrived) {
		return a.Arrived.Before(b.Arrived)
	}
	return a.seq < b.seq
}

func deadlineLess[T any](a, b *Item[T]) bool {
	if !a.Deadline.Equal(b.Deadline) {
		return a.Deadline.Before(b.Deadline)
	}
	return a.seq < b.seq
}

// laneHeap[T] orders a queue's lanes by the time they are due, then by
// creation order, recording each lane's position in lane.idx.
type laneHeap[T any] []*lane[T]

var _ heap.Interface = (*laneHeap[int])(nil)

func (h laneHeap[T]) Len() int { return len(h) }

func (h laneHeap[T]) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}

func (h laneHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *laneHeap[T]) Push(x any) {
	l := x.(*lane[T])
	l.idx = len(*h)
	*h = append(*h, l)
}

func (h *laneHeap[T]) Pop() any {
	old := *h
	n := len(old) - 1
	l := old[n]
	old[n] = nil
	*h = old[:n]
	l.idx = -1
	return l
}
