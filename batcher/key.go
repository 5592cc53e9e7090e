package batcher

import "strconv"

// Key groups items that may share a batch: one model at one precision.
// Items of different keys never share a batch.
type Key struct {
	Model     string
	Precision string
	// Isolate, when not zero, makes the key a lane of its own: an item
	// with a unique Isolate is batched alone. The worker isolates a job it
	// suspects of having killed a worker, so that it cannot take other
	// jobs down with it again.
	Isolate uint64
}

// String returns "model/precision", with "#isolate" when set.
func (k Key) String() string {
	if k.Isolate != 0 {
		return k.Model + "/" + k.Precision + "#" + strconv.FormatUint(k.Isolate, 10)
	}
	return k.Model + "/" + k.Precision
}
