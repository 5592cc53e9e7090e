package batcher

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Item is one job handed to the batcher. The caller fills Key, Rows,
// Priority, Deadline and Value; the batcher sets Arrived. An Item is added
// once, and must not be copied after it is added.
type Item struct {
	Key      Key
	Rows     int       // rows of the job, > 0
	Priority int       // higher goes first within a key
	Deadline time.Time // the zero time means none
	Value    any       // the caller's payload, opaque to the batcher

	// Arrived is when the item was added, by the batcher's clock.
	Arrived time.Time

	seq      uint64       // arrival order in its queue, from 1; 0 until added
	assigned int          // rows already placed in batches
	idx      [3]int       // positions in its lane's heaps; -1 when absent
	done     atomic.Int64 // rows completed, see Done
}

// Done records that n more of the item's rows have been computed and
// reports whether that completes the item: it returns true to exactly one
// call, the one that brings the count of rows done to Rows or past it. It is
// safe for concurrent use. A non-positive n is ignored and reports false.
func (it *Item) Done(n int) bool {
	if n <= 0 {
		return false
	}
	total := it.done.Add(int64(n))
	rows := int64(it.Rows)
	return total >= rows && total-int64(n) < rows
}

// checkItem reports why it cannot be added, wrapping ErrInvalidItem.
func checkItem(it *Item) error {
	switch {
	case it == nil:
		return fmt.Errorf("%w: nil item", ErrInvalidItem)
	case it.Rows <= 0:
		return fmt.Errorf("%w: item of key %s has %d rows; want > 0", ErrInvalidItem, it.Key, it.Rows)
	}
	return nil
}

func errAddedTwice(it *Item) error {
	return fmt.Errorf("%w: item of key %s added twice", ErrInvalidItem, it.Key)
}
