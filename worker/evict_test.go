package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// heldCPU is the CPU backend with a gate before Forward: while the gate is
// shut, a pass signals entered and waits. It embeds *cpu.Backend, so
// Evict and every other method are the CPU backend's own.
type heldCPU struct {
	*cpu.Backend
	entered chan *model.Model
	mu      sync.Mutex
	gate    chan struct{} // nil: open
}

func (h *heldCPU) shut() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

func (h *heldCPU) open() {
	h.mu.Lock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
	h.mu.Unlock()
}

func (h *heldCPU) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	if gate != nil {
		h.entered <- m
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Backend.Forward(ctx, m, p, in, rows)
}

// TestReplacedVersionsAreEvicted pushes a model again and again while a
// job of the version being replaced is computing, with every batch checked
// by the quality loop (whose shadow runs convert weights too). The
// replaced version's converted weights stay while its job runs, and are
// gone once the job and its check are done; at the end the backend holds
// nothing of any version. Before versions were counted, every version
// pushed stayed cached for the life of the worker.
func TestReplacedVersionsAreEvicted(t *testing.T) {
	e := setup(t, gearbox.StreamsConfig{})
	first := e.push(1) // the bucket exists before Follow watches it
	e.followStore()
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := &heldCPU{Backend: b, entered: make(chan *model.Model, 1)}
	e.start("w", worker.Config{Quality: quality.Config{Sample: 1}}, h)
	ctx := context.Background()

	served := uint64(0)
	// checked waits until every job served has its quality report.
	checked := func() {
		t.Helper()
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if n := e.streamMsgs(gearbox.DefaultSubjects.QualityStream()); n != served {
				return fmt.Errorf("%d quality reports, want %d", n, served)
			}
			return nil
		})
	}
	// serve runs one bf16 job (the CPU converts weights below fp32) on e.m
	// and waits for its quality report.
	serve := func(id string) {
		t.Helper()
		j := e.job(id, 2, served+1)
		j.Precision = precision.BF16
		r, err := e.client.Do(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.outputErr(j, r, 2e-2); err != nil {
			t.Fatal(err)
		}
		served++
		checked()
	}
	// current waits until the worker's model set has version v, and
	// returns it.
	current := func(v *model.Model) *model.Model {
		t.Helper()
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			m, err := e.models.Get(ctx, v.Name)
			if err != nil || m.Digest != v.Digest {
				return fmt.Errorf("model set has %v (%v), want digest %s", m, err, v.Digest)
			}
			return nil
		})
		return v
	}

	e.m = current(first)
	serve("v1")
	for v := int64(2); v <= 5; v++ {
		old := e.m
		cached := b.CachedWeights() // old's: bf16, and the check's shadow precision
		if cached == 0 {
			t.Fatalf("version %d served a bf16 job and nothing is cached", v-1)
		}
		h.shut()
		j := e.job(fmt.Sprintf("v%d-held", v-1), 2, uint64(v))
		j.Precision = precision.BF16
		done := make(chan error, 1)
		go func() {
			r, err := e.client.Do(ctx, j)
			if err == nil {
				err = e.outputErr(j, r, 2e-2) // e.m is old until this returns
			}
			done <- err
		}()
		if m := <-h.entered; m.Digest != old.Digest {
			t.Fatalf("the held pass runs %s@%s, want the version before %d", m.Name, m.Digest[:12], v)
		}
		next := current(e.push(v))
		if n := b.CachedWeights(); n != cached {
			t.Errorf("version %d swapped in while version %d's job computes: %d weight sets cached, want %d (the old version's, still in use)", v, v-1, n, cached)
		}
		h.open()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		served++
		checked()
		// The job ended and its check ran: nothing uses the old version,
		// and the new one has not run yet.
		if n := b.CachedWeights(); n != 0 {
			t.Errorf("version %d's job and check done: %d weight sets cached, want 0", v-1, n)
		}
		e.m = next
		serve(fmt.Sprintf("v%d", v))
	}
	// A version replaced while nothing uses it is evicted at once.
	e.m = current(e.push(6))
	if n := b.CachedWeights(); n != 0 {
		t.Errorf("version 5 replaced while idle: %d weight sets cached, want 0", n)
	}
}
