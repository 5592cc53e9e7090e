package e2e

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// With --input-dtype bf16 and --output-dtype bf16 the jobs carry bf16
// inputs (half the bytes of f32), the bare loop computes on exactly the
// values the worker decodes from them, every job gets a bf16 result that
// is the bare loop's output to bf16 rounding, and the raw side's result is
// the size of the worker's.
func TestDTypes(t *testing.T) {
	ctx := context.Background()
	b := setup(t, Config{
		Dims: []int{64, 32, 48}, RowsPerJob: 3, Jobs: 40, Timeout: time.Minute,
		InputDType: gearbox.BF16, OutputDType: gearbox.BF16,
		Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 32, MaxDelay: 50 * time.Millisecond}},
	})
	cfg := b.cfg
	rows, in, out := cfg.RowsPerJob, b.m.InputFeatures, b.m.OutputFeatures
	p := precision.FP32

	// The stored jobs: bf16 inputs holding the bare loop's values exactly,
	// output_dtype bf16, and smaller than the same job in f32 by about
	// the input's 2 bytes a value.
	const queued = 4
	if err := b.fill(ctx, p, "size", queued); err != nil {
		t.Fatal(err)
	}
	n := eachStored(t, b, b.subj.JobsStream(), func(m *jetstream.RawStreamMsg) {
		j, err := gearbox.DecodeJob(m.Data, gearbox.EncodingOf(m.Header))
		if err != nil {
			t.Fatal(err)
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(j.ID, "fp32-size-"))
		if j.Input.DType != gearbox.BF16 || j.OutputDType != gearbox.BF16 {
			t.Errorf("job %s: input %s, output_dtype %q; want bf16 and bf16", j.ID, j.Input.DType, j.OutputDType)
		}
		vals, err := j.Input.Float32s(nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range vals {
			if v != b.inputs[i][k] {
				t.Fatalf("job %s value %d decodes to %v; the bare loop has %v", j.ID, k, v, b.inputs[i][k])
			}
		}
		f32 := *j
		f32.Input, f32.OutputDType = gearbox.NewTensor(rows, in, vals), ""
		full, err := gearbox.NewMsg(m.Subject, &f32, gearbox.Msgpack)
		if err != nil {
			t.Fatal(err)
		}
		if saved := len(full.Data) - len(m.Data); saved < 2*rows*in-32 || saved > 2*rows*in {
			t.Errorf("job %s is %d bytes, %d fewer than in f32; want about %d fewer", j.ID, len(m.Data), saved, 2*rows*in)
		}
	})
	if n != queued {
		t.Errorf("%d jobs stored; want %d", n, queued)
	}
	jobs, err := b.client.JetStream().Stream(ctx, b.subj.JobsStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	// The bare loop's outputs, job by job.
	var bare []float32
	for _, bt := range b.batches {
		o, err := cfg.Backend.Forward(ctx, b.m, p, bt.in, bt.rows)
		if err != nil {
			t.Fatal(err)
		}
		bare = append(bare, o...)
	}
	if _, err := b.worker(ctx, p, "t", cfg.Jobs, 0); err != nil {
		t.Fatal(err)
	}
	results := readResults(t, b)
	if len(results) != cfg.Jobs {
		t.Errorf("%d results; want one for each of %d jobs", len(results), cfg.Jobs)
	}
	wsize := 0
	for i := range cfg.Jobs {
		id := "fp32-t-" + strconv.Itoa(i)
		r, ok := results[id]
		if !ok {
			t.Errorf("no result for job %s", id)
			continue
		}
		if r.Output.DType != gearbox.BF16 {
			t.Errorf("job %s: output %s; want bf16", id, r.Output.DType)
			continue
		}
		wsize = max(wsize, r.size)
		got, err := r.Output.Float32s(nil)
		if err != nil {
			t.Fatal(err)
		}
		want := bare[i*rows*out : (i+1)*rows*out]
		for k := range got {
			// Rounding to bf16 moves a value by at most 2⁻⁹ of it.
			if d := math.Abs(float64(got[k] - want[k])); d > math.Abs(float64(want[k]))/256+1e-6 {
				t.Errorf("job %s value %d: worker %v, bare %v; want within bf16 rounding", id, k, got[k], want[k])
				break
			}
		}
	}

	if _, err := b.raw(ctx, p, "raw", 5); err != nil {
		t.Fatal(err)
	}
	for id, n := range resultSizes(t, b) {
		if n < wsize-16 || n > wsize+16 {
			t.Errorf("raw result %s is %d bytes; want about the worker's bf16 result, %d", id, n, wsize)
		}
	}
}

// stored is a result read back from the result stream and its size.
type stored struct {
	*gearbox.Result
	size int
}

// readResults decodes the whole result stream, by job id.
func readResults(t *testing.T, b *bench) map[string]stored {
	t.Helper()
	rs := map[string]stored{}
	eachStored(t, b, b.subj.ResultsStream(), func(m *jetstream.RawStreamMsg) {
		r, err := gearbox.DecodeResult(m.Data, gearbox.EncodingOf(m.Header))
		if err != nil {
			t.Fatal(err)
		}
		if r.Error != nil || r.Output == nil {
			t.Fatalf("result %s: error %v, output %v; want an output", r.ID, r.Error, r.Output)
		}
		rs[r.ID] = stored{r, len(m.Data)}
	})
	return rs
}
