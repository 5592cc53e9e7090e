package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// intoBackend is a backend that writes into the caller's slice
// (kernels.IntoForwarder, as the CUDA backend does) and counts its calls.
type intoBackend struct {
	kernels.Backend
	into, plain atomic.Int64
}

func (b *intoBackend) Forward(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int) ([]float32, error) {
	b.plain.Add(1)
	return b.Backend.Forward(ctx, m, p, in, rows)
}

func (b *intoBackend) ForwardInto(ctx context.Context, m *model.Model, p precision.Format, in []float32, rows int, out []float32) error {
	b.into.Add(1)
	y, err := b.Backend.Forward(ctx, m, p, in, rows)
	if err != nil {
		return err
	}
	if len(out) != len(y) {
		return fmt.Errorf("output buffer of %d values for %d", len(out), len(y))
	}
	copy(out, y)
	return nil
}

// TestOutputBuffers: with a backend that writes into the caller's slice,
// the executor computes every batch into its reused output buffers and
// never calls Forward, and every job still gets its own rows: many small
// batches of different sizes, each result checked against the float64
// reference.
func TestOutputBuffers(t *testing.T) {
	e := setup(t, gearbox.StreamsConfig{})
	b := &intoBackend{Backend: e.backend}
	e.start("w", worker.Config{Config: batcher.Config{MaxBatchRows: 8, MaxDelay: time.Millisecond}}, b)
	const jobs = 300
	sent := make(map[string]*gearbox.Job, jobs)
	for i := range jobs {
		j := e.job(fmt.Sprintf("job-%03d", i), 1+i%5, uint64(i))
		sent[j.ID] = j
		if _, err := e.client.SubmitAsync(j); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range e.results(jobs) {
		e.checkOutput(sent[r.ID], r, 1e-5)
	}
	if b.into.Load() == 0 || b.plain.Load() != 0 {
		t.Errorf("ForwardInto called %d times, Forward %d; want every batch through ForwardInto", b.into.Load(), b.plain.Load())
	}
}
