package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// device is a CPU backend standing in for one GPU of several: it counts
// its forward passes, and each pass waits until the other device has run
// one too, so a side that ran on one device alone fails instead of passing
// by luck of scheduling.
type device struct {
	kernels.Backend
	calls  atomic.Int64
	called chan struct{}
	once   sync.Once
	other  *device
}

func (d *device) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	d.calls.Add(1)
	d.once.Do(func() { close(d.called) })
	select {
	case <-d.other.called:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("%p: the other device ran nothing in 10 s", d)
	}
	return d.Backend.Forward(ctx, m, p, in, rows)
}

// twoDevices returns two devices, each the other's.
func twoDevices(t *testing.T) (*device, *device) {
	t.Helper()
	var ds [2]*device
	for i := range ds {
		be, err := cpu.New(cpu.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		ds[i] = &device{Backend: be, called: make(chan struct{})}
	}
	ds[0].other, ds[1].other = ds[1], ds[0]
	return ds[0], ds[1]
}

// With Backends, the bare loop's callers and the workers spread over the
// devices: caller i and worker i on device i mod 2.
func TestSpreadOverBackends(t *testing.T) {
	ctx := context.Background()
	a, b := twoDevices(t)
	bn := setup(t, Config{
		Backends: []kernels.Backend{a, b}, Dims: []int{16, 32, 8}, RowsPerJob: 3, Jobs: 60,
		Workers: 2, BareCallers: 2, MinTime: time.Millisecond, Timeout: 30 * time.Second,
		// Small batches, queues and pulls, so one worker cannot take every job.
		Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 6, MaxQueuedRows: 12, MaxDelay: 10 * time.Millisecond}, Prefetch: 2},
	})
	if _, err := bn.bare(ctx, precision.FP32); err != nil {
		t.Fatal(err)
	}
	if a.calls.Load() == 0 || b.calls.Load() == 0 {
		t.Errorf("bare loop: %d and %d passes on the two devices; want both used", a.calls.Load(), b.calls.Load())
	}

	a2, b2 := twoDevices(t)
	bn.cfg.Backends = []kernels.Backend{a2, b2}
	if _, err := bn.worker(ctx, precision.FP32, "spread", bn.cfg.Jobs, 0); err != nil {
		t.Fatal(err)
	}
	if a2.calls.Load() == 0 || b2.calls.Load() == 0 {
		t.Errorf("workers: %d and %d passes on the two devices; want both used", a2.calls.Load(), b2.calls.Load())
	}
	if got := newReport(bn.cfg, bn.m).Device; got != "cpu,cpu" {
		t.Errorf("report device %q; want both devices named, cpu,cpu", got)
	}
}
