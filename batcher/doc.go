// Package batcher groups inference jobs into batches for an inference
// worker. It is pure Go and knows nothing of NATS or of models: a job is an
// Item[T] with a Key (model and precision), a number of rows, the bytes it
// holds, a priority, an optional deadline and the caller's Value of type T.
//
// # Flush rules
//
// Items are queued per key; items of different keys never share a batch. A
// key is flushed when any of these holds:
//
//   - full: at least Config.MaxBatchRows of its rows are queued. Only full
//     batches are formed; the remainder stays queued.
//   - delay: its oldest item arrived Config.MaxDelay ago or more. All its
//     queued rows are flushed, in as many batches as needed.
//   - deadline: one of its items has a deadline within Config.DeadlineSlack
//     of now. All its queued rows are flushed, as for delay.
//
// Within a key, a batch takes the highest-priority items first and, among
// equal priorities, the earliest added. Low-priority items cannot starve:
// however many high-priority items overtake them in full batches, they
// still make their key flush once they have waited MaxDelay, and that
// flush takes every queued row.
//
// # Split and reassembly
//
// A batch holds at most MaxBatchRows rows, as Parts: each Part is rows
// [Start, Start+Rows) of one item, placed at rows [Offset, Offset+Rows) of
// the batch. An item that does not fit in what is left of a batch is split:
// its first rows fill the batch and the rest stays at the head of its key,
// priority and arrival unchanged, for the next batch. An item therefore
// spans one or more batches, possibly in several Run rounds; its parts come
// in row order. The consumer copies each part's output rows from the batch
// (at Offset) to the item's output (at Start) and counts the rows it has
// completed: that accounting is the consumer's.
//
// # Two layers
//
// Queue is the deterministic core: a data structure that is told the time
// (Add, Ready, Next, Drain take it as an argument) and starts no goroutine,
// so tests drive it with explicit times. Batcher runs a Queue on the real
// clock: Run sleeps until Queue.Next or the next Add, sends due batches on
// the Batches channel, and on Close or the end of its context drains every
// queued item (Reason FlushDrain) before closing that channel. Run blocks
// until each batch is read: the worker relies on the drain to finish the
// jobs it holds, so it reads Batches to the end.
//
// # Bound
//
// A Batcher holds at most about Config.MaxQueuedRows rows and
// Config.MaxQueuedBytes bytes (by the items' Bytes): Add blocks while the
// rows or bytes queued, plus those formed into batches not yet read from
// Batches, reach either bound. An item's bytes are freed with the batch
// that holds its last rows. A slow reader therefore slows Add, which slows
// whoever pulls jobs. An item larger than the room left is still admitted
// while the Batcher is below the bound, so a job bigger than the bound
// cannot deadlock; the bound is then exceeded by at most that item.
//
// # Isolation
//
// Key.Isolate, when set, gives an item a lane (and so batches) of its own;
// the worker uses it for jobs it suspects of having killed a worker.
package batcher
