package worker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// TestBatchmatesDoNotChangeAResult: fp8 jobs queued before the worker
// starts run in one batch with a job of 3e38s (finite, so the wire takes
// it; it overflows float32 in the first layer). Every other job's output is
// exactly what the job gets alone (the backend run on its rows only), and
// within fp8's error of the float64 reference: a job's result does not
// depend on which jobs share its batch.
func TestBatchmatesDoNotChangeAResult(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	ctx := context.Background()
	var jobs []*gearbox.Job
	for i := range 6 {
		j := e.job(fmt.Sprintf("mate-%d", i), 1+i%3, uint64(40+i))
		j.Precision = precision.FP8
		jobs = append(jobs, j)
	}
	huge := make([]float32, 2*e.m.InputFeatures)
	for i := range huge {
		huge[i] = 3e38
		if i%3 == 0 {
			huge[i] = -3e38
		}
	}
	jobs = slices.Insert(jobs, 3, &gearbox.Job{ID: "huge", Model: e.m.Name, Precision: precision.FP8,
		Input: gearbox.NewTensor(2, e.m.InputFeatures, huge)})
	for _, j := range jobs {
		if _, err := e.client.Submit(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	e.start("w", worker.Config{Config: batcher.Config{MaxBatchRows: 64, MaxDelay: 200 * time.Millisecond}}, nil)
	byID := map[string]*gearbox.Result{}
	for _, r := range e.results(len(jobs)) {
		byID[r.ID] = r
	}
	if r := byID["huge"]; r == nil || r.Batch == "" {
		t.Fatalf("result of the 3e38 job: %+v", r)
	}
	for _, j := range jobs {
		r := byID[j.ID]
		if r == nil {
			t.Fatalf("no result for %s", j.ID)
		}
		if r.Batch != byID["huge"].Batch {
			t.Fatalf("job %s ran in batch %s (%d rows), the 3e38 job in %s: the test needs them together",
				j.ID, r.Batch, r.BatchRows, byID["huge"].Batch)
		}
		if j.ID == "huge" {
			continue
		}
		if r.Error != nil || r.Precision != precision.FP8 {
			t.Fatalf("job %s: precision %s, error %v; want fp8", j.ID, r.Precision, r.Error)
		}
		in, _ := j.Input.Values()
		alone, err := e.backend.Forward(ctx, e.m, precision.FP8, in, j.Input.Rows())
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Output.Values()
		if err != nil { // a NaN or Inf the row alone does not have
			t.Errorf("job %s in a batch of %d rows with the 3e38 job: %v; alone: %v", j.ID, r.BatchRows, err, alone)
			continue
		}
		if !slices.Equal(got, alone) {
			t.Errorf("job %s in a batch of %d rows with the 3e38 job: %v; alone: %v", j.ID, r.BatchRows, got, alone)
		}
		e.checkOutput(j, r, 3*precision.ErrorBound(precision.FP8))
	}
}
