package e2e

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/kernels/cuda"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// bareStages sums the repetitions' stage times and gives them per batch;
// the ceiling is jobs over the device's busy time.
func TestBareStages(t *testing.T) {
	st := func(batches int64, total, a, busy time.Duration) *kernels.StageTimes {
		return &kernels.StageTimes{Batches: batches, Total: total, DeviceBusy: busy, DeviceBatches: batches,
			Stages: []kernels.Stage{{Name: "a", Time: a}, {Name: "other", Time: total - a}}}
	}
	// 2 repetitions: 400 jobs in 10 batches, then 800 in 20; 30 ms of
	// host time, 6 ms of device time.
	runs := []run{
		{jobs: 400, stages: st(10, 10*time.Millisecond, 4*time.Millisecond, 2*time.Millisecond)},
		{jobs: 800, stages: st(20, 20*time.Millisecond, 8*time.Millisecond, 4*time.Millisecond)},
	}
	got := bareStages(runs, 100_000, 1)
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }
	switch {
	case got == nil:
		t.Fatal("no stages")
	case got.Batches != 30 || !near(got.HostUs, 1000) || !near(got.DeviceUs, 200):
		t.Errorf("%d batches, host %v µs, device %v µs a batch; want 30, 1000, 200", got.Batches, got.HostUs, got.DeviceUs)
	case len(got.Stages) != 2 || got.Stages[0].Name != "a" || !near(got.Stages[0].Us, 400) || !near(got.Stages[1].Us, 600):
		t.Errorf("stages %+v; want a 400 µs, other 600 µs", got.Stages)
	case !near(got.Ceiling, 1200/0.006) || !near(got.BareOverCeiling, 100_000/(1200/0.006)):
		t.Errorf("ceiling %v jobs/s, bare/ceiling %v; want 1,200 jobs over 6 ms and 100,000 over that", got.Ceiling, got.BareOverCeiling)
	}
	// Two devices sharing the batches: both busy all the time.
	if got2 := bareStages(runs, 100_000, 2); got2 == nil || !near(got2.Ceiling, 2*1200/0.006) {
		t.Errorf("two devices: %+v; want twice the one device's ceiling", got2)
	}
	// No device clock: host stages only.
	runs[0].stages.DeviceBusy, runs[0].stages.DeviceBatches = 0, 0
	runs[1].stages.DeviceBusy, runs[1].stages.DeviceBatches = 0, 0
	if got := bareStages(runs, 1, 1); got == nil || got.DeviceUs != 0 || got.Ceiling != 0 {
		t.Errorf("without device time: %+v; want host stages, no ceiling", got)
	}
	// A backend that does not time its stages.
	if got := bareStages([]run{{jobs: 400}}, 1, 1); got != nil {
		t.Errorf("untimed runs: %+v; want nil", got)
	}
}

// On a backend that does not time its stages (the CPU), the report has none
// and its table says so.
func TestRunNoStages(t *testing.T) {
	be, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rep, err := Run(context.Background(), Config{
		Backend: be, Dims: []int{8, 8}, Precisions: []precision.Format{precision.FP32},
		RowsPerJob: 2, Jobs: 10, Reps: 1, Timeout: time.Minute, MinTime: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results[0].BareStages != nil {
		t.Errorf("bare stages %+v on the CPU; want none", rep.Results[0].BareStages)
	}
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "bare loop per batch: n/a (backend cpu does not time its stages)") {
		t.Errorf("table lacks the stages' n/a:\n%s", &out)
	}
}

// On the CUDA backend (a GPU, or the emulator: kernels/cuda/emu) every
// bare batch is timed: its stages add up to its host time and the device
// ceiling is jobs over the device's busy time.
func TestRunStagesCUDA(t *testing.T) {
	be, err := cuda.New(cuda.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	defer be.Close()
	rep, err := Run(context.Background(), Config{
		Backend: be, Dims: []int{8, 16, 8}, Precisions: []precision.Format{precision.FP32},
		RowsPerJob: 2, Jobs: 16, Reps: 1, BareCallers: 2, Timeout: time.Minute, MinTime: time.Millisecond,
		Worker: worker.Config{Config: batcher.Config{MaxBatchRows: 16, MaxDelay: 20 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	st := r.BareStages
	if st == nil {
		t.Fatal("no bare stages on the CUDA backend")
	}
	// 32 rows in batches of 16: 2 batches a pass.
	if st.Batches < 2 || st.Batches%2 != 0 {
		t.Errorf("%d batches; want 2 a pass", st.Batches)
	}
	sum := 0.0
	for _, s := range st.Stages {
		sum += s.Us
	}
	if math.Abs(sum-st.HostUs) > 1e-6*st.HostUs || st.HostUs <= 0 {
		t.Errorf("stages %+v add up to %v µs; want the host time %v µs", st.Stages, sum, st.HostUs)
	}
	if st.DeviceUs <= 0 || st.Ceiling <= 0 || math.Abs(st.BareOverCeiling-r.Bare.JobsPerSec/st.Ceiling) > 1e-9 {
		t.Errorf("device %v µs, ceiling %v, bare/ceiling %v; want > 0 and bare %v over the ceiling", st.DeviceUs, st.Ceiling, st.BareOverCeiling, r.Bare.JobsPerSec)
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"device busy", "ceiling jobs/s", "bare/ceiling", "stage_in"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, &out)
		}
	}
}
