//go:build cgo

package cuda

import (
	"sync/atomic"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// Stage timing (kernels.StageTimer). While it is on, every tensor Forward
// takes a clock that laps at each stage's end and adds the lap to that
// stage's sum, and its batch records a second event, before the upload, so
// that the GPU's time from the upload's start to the download's end is
// read after the wait. While it is off, a Forward pays one atomic load.

// The stages of a tensor Forward, in order (docs/benchmarks.md).
const (
	stageSlot   = iota // waiting for a free slot of the batch's bucket
	stageIn            // copying the input into the slot's pinned memory
	stageQueue         // waiting for the device goroutine, busy queueing other calls
	stageLaunch        // queueing on the stream: a graph replay, or the upload, layers and download one by one
	stageWait          // waiting for the batch's event: its GPU work and the work queued before it
	stageOut           // copying the output out of pinned memory
	stageCount
)

var stageNames = [stageCount]string{"slot", "stage_in", "queue", "launch", "wait", "stage_out"}

// stageStats are the sums since the last TimeStages.
type stageStats struct {
	on            atomic.Bool
	batches       atomic.Int64
	total         atomic.Int64 // ns
	ns            [stageCount]atomic.Int64
	busy          atomic.Int64 // ns of GPU time
	deviceBatches atomic.Int64
}

// stageClock times one Forward's stages. A nil clock (timing off) does
// nothing.
type stageClock struct {
	s           *stageStats
	start, last time.Time
}

// clock returns a clock started now, or nil when timing is off.
func (s *stageStats) clock() *stageClock {
	if !s.on.Load() {
		return nil
	}
	now := time.Now()
	return &stageClock{s: s, start: now, last: now}
}

// lap adds the time since the previous lap (or mark) to stage's sum.
func (c *stageClock) lap(stage int) {
	if c == nil {
		return
	}
	now := time.Now()
	c.s.ns[stage].Add(int64(now.Sub(c.last)))
	c.last = now
}

// mark starts the next lap now: the time since the previous one is left
// to "other".
func (c *stageClock) mark() {
	if c != nil {
		c.last = time.Now()
	}
}

// deviceBusy adds one batch's GPU time.
func (c *stageClock) deviceBusy(d time.Duration) {
	if c != nil {
		c.s.busy.Add(int64(d))
		c.s.deviceBatches.Add(1)
	}
}

// done counts the Forward and its wall time.
func (c *stageClock) done() {
	if c != nil {
		c.s.total.Add(int64(time.Since(c.start)))
		c.s.batches.Add(1)
	}
}

// TimeStages turns the timing of tensor Forward calls on or off and returns
// what was timed since its previous call (kernels.StageTimer). The stages
// are slot, stage_in, queue, launch, wait, stage_out and other;
// DeviceBusy is the GPU's time from the start of each batch's upload to the
// end of its download, from CUDA events on the backend's one stream, where
// batches run one after another: so the sum is the time the stream was
// busy with them.
func (b *Backend) TimeStages(on bool) kernels.StageTimes {
	s := &b.stages
	s.on.Store(on)
	t := kernels.StageTimes{
		Batches: s.batches.Swap(0), Total: time.Duration(s.total.Swap(0)),
		DeviceBusy: time.Duration(s.busy.Swap(0)), DeviceBatches: s.deviceBatches.Swap(0),
	}
	other := t.Total
	for i, name := range stageNames {
		d := time.Duration(s.ns[i].Swap(0))
		other -= d
		t.Stages = append(t.Stages, kernels.Stage{Name: name, Time: d})
	}
	t.Stages = append(t.Stages, kernels.Stage{Name: "other", Time: other})
	return t
}

var _ kernels.StageTimer = (*Backend)(nil)

// startEvent returns sl's event recorded before its batch's upload,
// creating it on first use. Device goroutine only.
func (sl *slot) startEvent() (cuEvent, error) {
	if !sl.timed {
		e, err := cuEventCreate()
		if err != nil {
			return cuEvent{}, err
		}
		sl.start, sl.timed = e, true
	}
	return sl.start, nil
}
