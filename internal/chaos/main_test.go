package chaos_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/chaos"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/quality"
)

var (
	buildOnce sync.Once
	buildDir  string
	bins      chaos.Binaries
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds gearbox and natsd once for the test binary's run.
func binaries(t *testing.T) chaos.Binaries {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "gearbox-chaos-bin-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		bins, buildErr = chaos.Build(ctx, buildDir)
		t.Logf("built gearbox and natsd in %v", time.Since(start).Round(time.Millisecond))
		if bin := os.Getenv("GEARBOX_CHAOS_GEARBOX"); bin != "" && buildErr == nil {
			t.Logf("drilling %s (GEARBOX_CHAOS_GEARBOX), not the gearbox built from this tree", bin)
			bins.Gearbox = bin
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

// settle stops the fleet gracefully once its jobs are drained and reads
// the account of the streams.
func settle(ctx context.Context, t *testing.T, c *gearbox.Client, fleet *chaos.Fleet) *chaos.Account {
	t.Helper()
	if hard := fleet.Stop(30 * time.Second); hard > 0 {
		t.Errorf("%d worker(s) did not stop on SIGTERM within 30 s", hard)
	}
	acct, err := chaos.ReadAccount(ctx, c.JetStream(), c.Subjects())
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// idsOf lists the jobs' ids.
func idsOf(jobs []*gearbox.Job) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// settings are a drill's scale, from the environment.
type settings struct {
	jobs      int
	rate      float64
	killEvery time.Duration
	workers   int
}

func scale(t *testing.T) settings {
	t.Helper()
	s := settings{jobs: 3000, rate: 150, killEvery: 2 * time.Second, workers: 3}
	if v := os.Getenv("GEARBOX_CHAOS_JOBS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("GEARBOX_CHAOS_JOBS=%q: want a positive integer", v)
		}
		s.jobs = n
	}
	if v := os.Getenv("GEARBOX_CHAOS_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || !(r > 0) {
			t.Fatalf("GEARBOX_CHAOS_RATE=%q: want jobs per second > 0", v)
		}
		s.rate = r
	}
	if v := os.Getenv("GEARBOX_CHAOS_KILL_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("GEARBOX_CHAOS_KILL_EVERY=%q: want a positive duration", v)
		}
		s.killEvery = d
	}
	if v := os.Getenv("GEARBOX_CHAOS_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("GEARBOX_CHAOS_WORKERS=%q: want a positive integer", v)
		}
		s.workers = n
	}
	return s
}

// publishing is how long publishing s.jobs takes at s.rate.
func (s settings) publishing() time.Duration {
	return time.Duration(float64(s.jobs) / s.rate * float64(time.Second))
}

// drainTimeout bounds the wait, once every job is published, for the
// fleet to answer them: AckWait brings back what a killed worker held
// within seconds, and the fleet keeps up with the publishing rate.
func (s settings) drainTimeout() time.Duration { return 2*time.Minute + s.publishing()/2 }

// demoModel synthesises the drills' model, "demo" (16 → 32 → 8, GELU),
// and saves it under dir/demo for GEARBOX_MODELS=dir.
func demoModel(t *testing.T, dir string) *model.Model {
	t.Helper()
	m, err := model.Synth(model.SynthConfig{Name: "demo", Dims: []int{16, 32, 8}, Act: model.GELU, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Save(m, filepath.Join(dir, m.Name)); err != nil {
		t.Fatal(err)
	}
	return m
}

// connect connects to urls, retrying and reconnecting for ever: the test's
// producers and readers live through server restarts.
func connect(t *testing.T, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// provision provisions the streams through c, retrying while JetStream
// is starting (a cluster electing its meta leader).
func provision(t *testing.T, c *gearbox.Client, streams gearbox.StreamsConfig) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Provision(ctx, streams)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("provision: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jobs makes n valid jobs of 1 to 8 rows for m, with ids <prefix>-<i>.
func jobs(m *model.Model, prefix string, n int) []*gearbox.Job {
	out := make([]*gearbox.Job, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		rows := 1 + i%8
		vals := make([]float32, rows*m.InputFeatures)
		for k := range vals { // xorshift: cheap and reproducible
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			vals[k] = float32(int64(x>>11)%2000-1000) / 500
		}
		out[i] = &gearbox.Job{ID: fmt.Sprintf("%s-%06d", prefix, i), Model: m.Name, Input: gearbox.NewTensor(rows, m.InputFeatures, vals)}
	}
	return out
}

// outputErr compares a result's output with the float64 reference forward
// pass of m on the job's input: relative L2 error at most tol.
func outputErr(m *model.Model, j *gearbox.Job, r *gearbox.Result, tol float64) error {
	if r.Error != nil {
		return fmt.Errorf("job %s: %v", j.ID, r.Error)
	}
	in, err := j.Input.Values()
	if err != nil {
		return err
	}
	in64 := make([]float64, len(in))
	for i, v := range in {
		in64[i] = float64(v)
	}
	want, err := cpu.Reference(m, in64, j.Input.Rows())
	if err != nil {
		return err
	}
	got, err := r.Output.Values()
	if err != nil {
		return fmt.Errorf("job %s: output: %v", j.ID, err)
	}
	if len(got) != len(want) || r.Output.Rows() != j.Input.Rows() {
		return fmt.Errorf("job %s: output shape %v; want [%d, %d]", j.ID, r.Output.Shape, j.Input.Rows(), m.OutputFeatures)
	}
	if d := quality.Compare(got, want, 1, len(want), false).RelL2; !(d <= tol) || math.IsNaN(d) {
		return fmt.Errorf("job %s: relative L2 error %.3g against the float64 reference at %s; want ≤ %g", j.ID, d, r.Precision, tol)
	}
	return nil
}

// dumpStuck makes every worker of f write its goroutines' stacks and exit
// (for a drill whose jobs never drained), and logs the stacks that run
// worker code.
func dumpStuck(t *testing.T, f *chaos.Fleet) {
	t.Helper()
	for _, w := range f.Workers {
		w.Dump()
		t.Logf("---- %s: goroutines in package worker:\n%s", w.Name(), chaos.Goroutines(w.LogTail(100000), "gearbox/worker."))
	}
}

// logTails logs the end of every process's log, for a failed drill.
func logTails(t *testing.T, procs ...*chaos.Proc) {
	t.Helper()
	for _, p := range procs {
		t.Logf("---- %s (exits %v):\n%s", p.Name(), p.Exits(), p.LogTail(15))
	}
}
