package batcher_test

import (
	"fmt"
	"time"

	"github.com/gearbox-inference/gearbox/batcher"
)

// A job of 10 rows is split over batches of at most 4 rows; a smaller job
// of the same key fills the rest of the last one when the delay is up.
func ExampleQueue() {
	q, err := batcher.NewQueue[string](batcher.Config{MaxBatchRows: 4, MaxDelay: 5 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	key := batcher.Key{Model: "mlp", Precision: "bf16"}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	q.Add(&batcher.Item[string]{Key: key, Rows: 10, Value: "big"}, start)
	q.Add(&batcher.Item[string]{Key: key, Rows: 1, Value: "small"}, start)

	show := func(bs []batcher.Batch[string]) {
		for _, b := range bs {
			fmt.Printf("batch %d %s %s:", b.ID, b.Key, b.Reason)
			for _, p := range b.Parts {
				fmt.Printf(" %v[%d:%d]→%d", p.Item.Value, p.Start, p.Start+p.Rows, p.Offset)
			}
			fmt.Println()
		}
	}
	show(q.Ready(start))
	next, _ := q.Next()
	fmt.Println("next flush after", next.Sub(start))
	show(q.Ready(next))
	// Output:
	// batch 1 mlp/bf16 full: big[0:4]→0
	// batch 2 mlp/bf16 full: big[4:8]→0
	// next flush after 5ms
	// batch 3 mlp/bf16 delay: big[8:10]→0 small[0:1]→2
}
