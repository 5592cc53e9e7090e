package batcher

import "container/heap"

// The heaps a lane keeps its items in; each is an index into Item.idx.
const (
	byPriority = iota // priority desc, then arrival order
	byArrival         // arrival time, then arrival order
	byDeadline        // deadline, then arrival order; only items with one
)

// itemHeap is a binary min-heap of items under less. Each item records its
// position in it.idx[slot], so any item can be removed in O(log n).
type itemHeap struct {
	items []*Item
	slot  int
	less  func(a, b *Item) bool
}

var _ heap.Interface = (*itemHeap)(nil)

func (h *itemHeap) Len() int           { return len(h.items) }
func (h *itemHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }

func (h *itemHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].idx[h.slot] = i
	h.items[j].idx[h.slot] = j
}

func (h *itemHeap) Push(x any) {
	it := x.(*Item)
	it.idx[h.slot] = len(h.items)
	h.items = append(h.items, it)
}

func (h *itemHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	it.idx[h.slot] = -1
	return it
}

// top returns the least item; the heap must not be empty.
func (h *itemHeap) top() *Item { return h.items[0] }

func priorityLess(a, b *Item) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.seq < b.seq
}

func arrivalLess(a, b *Item) bool {
	if !a.Arrived.Equal(b.Arrived) {
		return a.Arrived.Before(b.Arrived)
	}
	return a.seq < b.seq
}

func deadlineLess(a, b *Item) bool {
	if !a.Deadline.Equal(b.Deadline) {
		return a.Deadline.Before(b.Deadline)
	}
	return a.seq < b.seq
}

// laneHeap orders a queue's lanes by the time they are due, then by
// creation order, recording each lane's position in lane.idx.
type laneHeap []*lane

var _ heap.Interface = (*laneHeap)(nil)

func (h laneHeap) Len() int { return len(h) }

func (h laneHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}

func (h laneHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *laneHeap) Push(x any) {
	l := x.(*lane)
	l.idx = len(*h)
	*h = append(*h, l)
}

func (h *laneHeap) Pop() any {
	old := *h
	n := len(old) - 1
	l := old[n]
	old[n] = nil
	*h = old[:n]
	l.idx = -1
	return l
}
