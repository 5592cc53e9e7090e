//go:build cgo

package cuda

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestTimeStages: with timing on, every Forward is counted, from one caller
// or several; its stages are named in order, none negative, the named ones
// most of the wall time; every batch has its GPU time. With timing off nothing is
// counted, and each TimeStages starts the sums again.
func TestTimeStages(t *testing.T) {
	b := newTestBackend(t, Config{})
	m := inflightModel(t)
	cs := inflightCases(t, b, m) // serial calls, untimed
	if got := b.TimeStages(true); got.Batches != 0 || got.DeviceBatches != 0 || got.Total != 0 {
		t.Errorf("TimeStages after untimed calls = %+v; want nothing counted", got)
	}
	for _, callers := range []int{1, 4} {
		t.Run(fmt.Sprintf("callers=%d", callers), func(t *testing.T) {
			runConcurrent(t, b, m, cs, callers, 2, nil)
			checkStages(t, b.TimeStages(true), int64(callers*2*len(cs)))
		})
	}
	b.TimeStages(false)
	runConcurrent(t, b, m, cs[:2], 1, 1, nil)
	if got := b.TimeStages(false); got.Batches != 0 || got.DeviceBatches != 0 || got.Total != 0 || got.DeviceBusy != 0 {
		t.Errorf("TimeStages after calls with timing off = %+v; want nothing counted", got)
	}
}

func checkStages(t *testing.T, got kernels.StageTimes, calls int64) {
	t.Helper()
	if got.Batches != calls || got.DeviceBatches != calls {
		t.Errorf("%d batches, %d with GPU time; want %d each", got.Batches, got.DeviceBatches, calls)
	}
	if got.Total <= 0 || got.DeviceBusy <= 0 {
		t.Errorf("total %v, GPU busy %v; want both > 0", got.Total, got.DeviceBusy)
	}
	var names []string
	for _, s := range got.Stages {
		names = append(names, s.Name)
		if s.Time < 0 {
			t.Errorf("stage %s: %v; want ≥ 0", s.Name, s.Time)
		}
	}
	if fmt.Sprint(names) != "[slot stage_in queue launch wait stage_out other]" {
		t.Errorf("stages %v; want slot, stage_in, queue, launch, wait, stage_out, other", names)
	}
	// "other" is the total less the named stages (so the stages add up by
	// construction): checks and releasing the slot, far less than the
	// stages timed.
	if o := got.Stages[len(got.Stages)-1].Time; o > got.Total/2 {
		t.Errorf("other %v of %v; want the named stages to hold most of the time", o, got.Total)
	}
}

// BenchmarkTimeStages is a small Forward (16 rows, 48→96→40, bf16) with
// stage timing off and on, from 1 and 4 callers: what the timing costs.
func BenchmarkTimeStages(b *testing.B) {
	be, err := New(Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Skipf("no CUDA device: %v", err)
	}
	defer be.Close()
	m, err := model.Synth(model.SynthConfig{Name: "stages", Dims: []int{48, 96, 40}, Seed: 11})
	if err != nil {
		b.Fatal(err)
	}
	const rows = 16
	in := make([]float32, rows*m.InputFeatures)
	for i := range in {
		in[i] = float32(i%7) / 7
	}
	ctx := context.Background()
	for range 3 { // weights, plans, graphs
		if _, err := be.Forward(ctx, m, precision.BF16, in, rows); err != nil {
			b.Fatal(err)
		}
	}
	for _, callers := range []int{1, 4} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("callers=%d/timed=%v", callers, on), func(b *testing.B) {
				be.TimeStages(on)
				defer be.TimeStages(false)
				var wg sync.WaitGroup
				per := b.N/callers + 1
				b.ResetTimer()
				for range callers {
					wg.Go(func() {
						for range per {
							if _, err := be.Forward(ctx, m, precision.BF16, in, rows); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		}
	}
}

// BenchmarkStageClock is the clock alone, as a Forward uses it: six laps,
// a mark, the GPU time and the total, timing off (a nil clock) and on.
func BenchmarkStageClock(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("timed=%v", on), func(b *testing.B) {
			var s stageStats
			s.on.Store(on)
			for b.Loop() {
				c := s.clock()
				c.mark()
				for st := range stageCount {
					c.lap(st)
				}
				c.deviceBusy(time.Microsecond)
				c.done()
			}
		})
	}
}
