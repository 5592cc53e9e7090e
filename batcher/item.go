package batcher

import (
	"fmt"
	"time"
)

// Item is one job handed to the batcher, carrying the caller's payload of
// type T. The caller fills Key, Rows, Bytes, Priority, Deadline and Value;
// the batcher sets Arrived. An Item is added once, and must not be copied
// after it is added.
type Item[T any] struct {
	Key      Key
	Rows     int       // rows of the job, > 0
	Bytes    int       // memory the job holds while queued, for MaxQueuedBytes; ≥ 0
	Priority int       // higher goes first within a key
	Deadline time.Time // the zero time means none
	Value    T         // the caller's payload, opaque to the batcher

	// Arrived is when the item was added, by the batcher's clock.
	Arrived time.Time

	seq      uint64 // arrival order in its queue, from 1; 0 until added
	assigned int    // rows already placed in batches
	idx      [3]int // positions in its lane's heaps; -1 when absent
}

// checkItem reports why it cannot be added, wrapping ErrInvalidItem.
func checkItem[T any](it *Item[T]) error {
	switch {
	case it == nil:
		return fmt.Errorf("%w: nil item", ErrInvalidItem)
	case it.Rows <= 0:
		return fmt.Errorf("%w: item of key %s has %d rows; want > 0", ErrInvalidItem, it.Key, it.Rows)
	case it.Bytes < 0:
		return fmt.Errorf("%w: item of key %s has %d bytes; want ≥ 0", ErrInvalidItem, it.Key, it.Bytes)
	}
	return nil
}

func errAddedTwice[T any](it *Item[T]) error {
	return fmt.Errorf("%w: item of key %s added twice", ErrInvalidItem, it.Key)
}
