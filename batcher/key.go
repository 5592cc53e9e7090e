package batcher

// Key groups items that may share a batch: one model at one precision.
// Items of different keys never share a batch.
type Key struct {
	Model     string
	Precision string
}

// String returns "model/precision".
func (k Key) String() string { return k.Model + "/" + k.Precision }
