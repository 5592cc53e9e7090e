package batcher

import (
	"strconv"
	"time"
)

// Part is a contiguous run of one item's rows inside a batch: rows
// [Start, Start+Rows) of Item are rows [Offset, Offset+Rows) of the batch.
type Part[T any] struct {
	Item   *Item[T]
	Start  int // first row of the item in this part
	Rows   int // number of rows, > 0
	Offset int // first row of this part inside the batch
}

// Batch is a flushed group of parts sharing one key. Its parts' Offsets are
// contiguous from 0, and Rows, their sum, is at most Config.MaxBatchRows.
type Batch[T any] struct {
	ID    uint64 // unique per Queue (and so per Batcher), increasing from 1
	Key   Key
	Parts []Part[T]
	Rows  int
	// Bytes is the Bytes of the items whose last rows are in this batch:
	// what the batch frees from MaxQueuedBytes when it is delivered.
	Bytes  int
	Formed time.Time // the time passed to Ready or Drain
	Reason Reason    // why the batch was flushed
}

// Reason says why a batch was flushed.
type Reason int

// The reasons a batch is flushed.
const (
	// FlushFull: its key had at least MaxBatchRows rows queued.
	FlushFull Reason = iota
	// FlushDelay: the oldest item of its key had waited MaxDelay.
	FlushDelay
	// FlushDeadline: an item of its key was within DeadlineSlack of its
	// deadline, before the key's MaxDelay was up.
	FlushDeadline
	// FlushDrain: the queue was drained (Queue.Drain, or a Batcher
	// stopping).
	FlushDrain
)

var reasonNames = [...]string{
	FlushFull:     "full",
	FlushDelay:    "delay",
	FlushDeadline: "deadline",
	FlushDrain:    "drain",
}

// String returns "full", "delay", "deadline" or "drain".
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}
