package e2e

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

func TestPackBatches(t *testing.T) {
	// Three distinct 2-row inputs of 2 features; 5 jobs cycle through them.
	inputs := [][]float32{{1, 1, 2, 2}, {3, 3, 4, 4}, {5, 5, 6, 6}}
	bs := packBatches(inputs, 5, 2, 2, 4)
	var rows []int
	var firsts []float32
	for _, b := range bs {
		rows = append(rows, b.rows)
		if len(b.in) != b.rows*2 {
			t.Errorf("batch of %d rows has %d values; want %d", b.rows, len(b.in), b.rows*2)
		}
		for r := range b.rows {
			firsts = append(firsts, b.in[2*r])
		}
	}
	if want := []int{4, 4, 2}; !slices.Equal(rows, want) {
		t.Errorf("batch rows %v; want %v", rows, want)
	}
	if want := []float32{1, 2, 3, 4, 5, 6, 1, 2, 3, 4}; !slices.Equal(firsts, want) {
		t.Errorf("rows in order %v; want %v", firsts, want)
	}
	// A job that straddles two batches is split, as the batcher does.
	bs = packBatches(inputs, 3, 2, 2, 3)
	if len(bs) != 2 || bs[0].rows != 3 || bs[1].rows != 3 || bs[1].in[0] != 4 {
		t.Errorf("split: %+v; want batches of 3 and 3 rows, the second starting at row value 4", bs)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v; want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

// counter is a cumulative energy source that gains 10 J each read: the
// test then knows the joules per 1,000 jobs each side must report.
type counter struct {
	mu sync.Mutex
	j  float64
}

func (c *counter) read() (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.j += 10
	return c.j, nil
}

func TestRun(t *testing.T) {
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	var e counter
	var progress strings.Builder
	rep, err := Run(context.Background(), Config{
		Backend: be, Dims: []int{16, 32, 8}, Precisions: []precision.Format{precision.FP32, precision.BF16},
		RowsPerJob: 3, Jobs: 60, Reps: 2, Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 32, MaxDelay: 50 * time.Millisecond}},
		Energy: e.read, Progress: &progress, Timeout: time.Minute, MinTime: time.Millisecond, Raw: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(progress.String(), " jobs/s"); got != 12 {
		t.Errorf("%d progress lines with jobs/s; want 12 (2 precisions × 2 reps × 3 sides):\n%s", got, &progress)
	}
	if len(rep.Results) != 2 || rep.Results[0].Precision != precision.FP32 || rep.Results[1].Precision != precision.BF16 {
		t.Fatalf("results %+v; want fp32 then bf16", rep.Results)
	}
	for _, r := range rep.Results {
		if r.Raw == nil {
			t.Fatalf("%s: no raw side", r.Precision)
		}
		if want := r.Worker.JobsPerSec / r.Raw.JobsPerSec; r.WorkerOverRaw != want {
			t.Errorf("%s: worker/raw %v; want %v", r.Precision, r.WorkerOverRaw, want)
		}
		for name, s := range map[string]Side{"bare": r.Bare, "worker": r.Worker, "raw": *r.Raw} {
			if s.JobsPerSec <= 0 || len(s.Runs) != 2 {
				t.Errorf("%s %s: %v jobs/s over %d runs; want > 0 over 2", r.Precision, name, s.JobsPerSec, len(s.Runs))
			}
			if math.Abs(s.RowsPerSec-3*s.JobsPerSec) > 1e-6*s.RowsPerSec {
				t.Errorf("%s %s: %v rows/s for %v jobs/s; want 3 rows a job", r.Precision, name, s.RowsPerSec, s.JobsPerSec)
			}
			// Two reads 10 J apart around 60 jobs: 10/60 × 1,000 J per
			// 1,000 jobs for the worker and raw; at most that for the bare loop,
			// whose repetitions may run more than one pass.
			const full = 10.0 / 60 * 1000
			j := s.JoulesPer1kJobs
			switch {
			case j == nil:
				t.Errorf("%s %s: no joules per 1k jobs", r.Precision, name)
			case name != "bare" && math.Abs(*j-full) > 1e-9, *j <= 0 || *j > full+1e-9:
				t.Errorf("%s %s: joules per 1k jobs %v; want %.2f (bare: at most)", r.Precision, name, *j, full)
			}
		}
		if want := r.Worker.JobsPerSec / r.Bare.JobsPerSec; r.Ratio != want {
			t.Errorf("%s: ratio %v; want %v", r.Precision, r.Ratio, want)
		}
		// 180 rows in batches of 32: five full and one of 20.
		if r.Bare.MeanBatchRows != 30 {
			t.Errorf("%s: bare mean batch %v rows; want 30", r.Precision, r.Bare.MeanBatchRows)
		}
		// With the queue full the worker forms mostly full batches
		// (MaxDelay may flush a few short ones while it starts pulling).
		if r.Worker.MeanBatchRows < 10 || r.Worker.MeanBatchRows > 32 {
			t.Errorf("%s: worker mean batch %v rows; want mostly full batches of up to 32", r.Precision, r.Worker.MeanBatchRows)
		}
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"worker/bare", "raw jobs/s", "worker/raw", "J/1k jobs", "fp32", "bf16"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRejects(t *testing.T) {
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	for name, c := range map[string]Config{
		"no backend":   {},
		"auto":         {Backend: be, Precisions: []precision.Format{precision.Auto}},
		"zero rows":    {Backend: be, RowsPerJob: -1},
		"no callers":   {Backend: be, BareCallers: -1},
		"input dtype":  {Backend: be, InputDType: "f8"},
		"output dtype": {Backend: be, OutputDType: "int4"},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%s: Run succeeded; want an error", name)
		}
	}
}

// The bare side repeats its batches until MinTime has passed, from one
// caller or several sharing the batches.
func TestBareMinTime(t *testing.T) {
	for _, callers := range []int{1, 3} {
		testBareMinTime(t, callers)
	}
}

func testBareMinTime(t *testing.T, callers int) {
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	cfg := Config{Backend: be, Dims: []int{8, 8}, RowsPerJob: 1, Jobs: 10, MinTime: 30 * time.Millisecond, BareCallers: callers}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	inputs := [][]float32{make([]float32, 8)}
	b := &bench{cfg: cfg, batches: packBatches(inputs, 10, 1, 8, 4)}
	if b.m, err = model.Synth(model.SynthConfig{Name: "t", Dims: cfg.Dims}); err != nil {
		t.Fatal(err)
	}
	r, err := b.bare(context.Background(), precision.FP32)
	if err != nil {
		t.Fatal(err)
	}
	if r.elapsed < cfg.MinTime || r.jobs%10 != 0 || r.jobs <= 10 {
		t.Errorf("%d caller(s): bare ran %v for %d jobs; want ≥ %v in several passes of 10", callers, r.elapsed, r.jobs, cfg.MinTime)
	}
	if !math.IsNaN(r.joules) {
		t.Errorf("joules %v with no energy source; want NaN", r.joules)
	}
}

// The raw side moves every job through the workers' stream and consumer
// exactly once: one result per job on the result stream, under the job's
// id, the size of the worker's result for it, and every job acked once,
// with nothing redelivered or left pending.
func TestRaw(t *testing.T) {
	ctx := context.Background()
	b := setup(t, Config{
		Dims: []int{16, 32, 8}, RowsPerJob: 3, Jobs: 50, Workers: 2, Raw: true, Timeout: time.Minute,
		Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 32, MaxDelay: 50 * time.Millisecond}},
	})
	cfg := b.cfg
	js := b.client.JetStream()

	// A worker's result for one job, to compare sizes with.
	if _, err := b.worker(ctx, precision.BF16, "size", 1, 0); err != nil {
		t.Fatal(err)
	}
	wsize := resultSizes(t, b)["bf16-size-0"]

	r, err := b.raw(ctx, precision.BF16, "t", cfg.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	if r.jobsPerSec() <= 0 || r.jobs != cfg.Jobs || r.acked != cfg.Jobs {
		t.Errorf("raw run %+v; want %d jobs, all acked once, at > 0 jobs/s", r, cfg.Jobs)
	}
	sizes := resultSizes(t, b)
	if len(sizes) != cfg.Jobs {
		t.Errorf("%d distinct results; want %d", len(sizes), cfg.Jobs)
	}
	for i := range cfg.Jobs {
		id := "bf16-t-" + strconv.Itoa(i)
		n, ok := sizes[id]
		switch {
		case !ok:
			t.Errorf("no result with Nats-Msg-Id %s", id)
		case n < wsize-16 || n > wsize+16:
			t.Errorf("result %s is %d bytes; want about the worker's %d", id, n, wsize)
		}
	}
	cons, err := js.Consumer(ctx, b.subj.JobsStream(), b.subj.Consumer())
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumRedelivered != 0 || ci.NumAckPending != 0 || ci.NumPending != 0 || ci.AckFloor.Stream != ci.Delivered.Stream {
		t.Errorf("consumer after the raw run: %d redelivered, %d unacked, %d pending, ack floor %d of %d delivered; want 0, 0, 0, all acked",
			ci.NumRedelivered, ci.NumAckPending, ci.NumPending, ci.AckFloor.Stream, ci.Delivered.Stream)
	}
}

// setup starts a bench of cfg on the CPU backend and its own embedded
// server, both stopped when the test ends.
func setup(t *testing.T, cfg Config) *bench {
	t.Helper()
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	cfg.Backend = be
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	b, cleanup, err := newBench(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return b
}

// resultSizes reads the whole result stream: each message's payload size
// by its Nats-Msg-Id, failing on a repeated id.
func resultSizes(t *testing.T, b *bench) map[string]int {
	t.Helper()
	sizes := map[string]int{}
	n := eachStored(t, b, b.subj.ResultsStream(), func(m *jetstream.RawStreamMsg) {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if _, dup := sizes[id]; dup {
			t.Errorf("two results with Nats-Msg-Id %q", id)
		}
		sizes[id] = len(m.Data)
	})
	if len(sizes) != n {
		t.Errorf("read %d results; the stream holds %d", len(sizes), n)
	}
	return sizes
}

// eachStored calls f with every message stream holds, in order, and
// returns how many it holds.
func eachStored(t *testing.T, b *bench, stream string, f func(*jetstream.RawStreamMsg)) int {
	t.Helper()
	ctx := context.Background()
	st, err := b.client.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		f(m)
	}
	return int(info.State.Msgs)
}
