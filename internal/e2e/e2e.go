// Package e2e measures the worker end to end against the bare backend: the
// same model, the same jobs and the same batches, once through an embedded
// JetStream server and a worker, once as a loop of Backend.Forward calls.
// The ratio of the two is what the worker's messaging, batching, encoding
// and acking cost. It backs "gearbox bench e2e".
//
// Each repetition of the worker side fills the job stream first and then
// starts a worker, timing from its start to the last result stored, so the
// producer's work is not counted and the worker runs saturated, as it does
// under a backlog. The bare side runs the batches the worker forms from a
// full queue: jobs × rows-per-job rows cut into MaxBatchRows-row batches
// (the batcher splits a job that does not fit), on inputs packed in advance.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/internal/embedded"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// Config configures a run. Zero fields take the defaults in comments.
type Config struct {
	Backend kernels.Backend // required
	// Dims are the synthesised model's widths (default 1024,4096,1024).
	Dims []int
	// Precisions to measure, each on its own (default: every format the
	// backend supports).
	Precisions []precision.Format
	RowsPerJob int // rows in every job (default 16)
	Jobs       int // jobs per repetition (default 2,000)
	Reps       int // repetitions of each side; medians are reported (default 3)
	// MinTime is the least time one bare repetition runs: it goes over the
	// batches as many times as that takes (default 1 s). The worker side
	// runs Jobs jobs once; a line on Progress says when that was shorter.
	MinTime time.Duration
	Workers int // workers sharing the backend (default 1)
	// BareCallers is how many goroutines call Backend.Forward in the bare
	// loop, sharing its batches (default 1: one after another, as one
	// worker's executor does); more shows what a backend that overlaps
	// concurrent calls can reach.
	BareCallers int
	Seed        uint64
	// Worker is the template of the workers' configuration; its
	// MaxBatchRows (default batcher.DefaultConfig's) also cuts the bare
	// loop's batches.
	Worker worker.Config
	// Energy, when set, reads a cumulative energy counter in joules (the
	// GPU's, from NVML); each side then reports joules per 1,000 jobs.
	Energy func() (float64, error)
	// Progress, when set, receives a line per measurement.
	Progress io.Writer
	// Timeout bounds one worker repetition (default 10 minutes).
	Timeout time.Duration
}

func (c *Config) defaults() error {
	if c.Backend == nil {
		return errors.New("e2e: no backend")
	}
	if c.Dims == nil {
		c.Dims = []int{1024, 4096, 1024}
	}
	if c.Precisions == nil {
		c.Precisions = c.Backend.Capabilities().Supported()
	}
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&c.RowsPerJob, 16)
	def(&c.Jobs, 2000)
	def(&c.Reps, 3)
	def(&c.Workers, 1)
	def(&c.BareCallers, 1)
	def(&c.Worker.MaxBatchRows, batcher.DefaultConfig().MaxBatchRows)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.MinTime == 0 {
		c.MinTime = time.Second
	}
	if c.RowsPerJob < 1 || c.Jobs < 1 || c.Reps < 1 || c.Workers < 1 || c.BareCallers < 1 || c.Worker.MaxBatchRows < 1 {
		return fmt.Errorf("e2e: rows per job %d, jobs %d, reps %d, workers %d, bare callers %d and max batch rows %d must all be ≥ 1",
			c.RowsPerJob, c.Jobs, c.Reps, c.Workers, c.BareCallers, c.Worker.MaxBatchRows)
	}
	for _, p := range c.Precisions {
		if !p.Valid() {
			return fmt.Errorf("e2e: %q is not a concrete precision", p)
		}
		if !kernels.Supports(c.Backend, p) {
			return fmt.Errorf("e2e: backend %s does not support %s", c.Backend.Name(), p)
		}
	}
	return nil
}

// inputPool is how many distinct job inputs are generated; jobs cycle
// through them.
const inputPool = 64

// Run measures every precision and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m, err := model.Synth(model.SynthConfig{Name: "bench", Dims: cfg.Dims, Act: model.GELU, Seed: int64(cfg.Seed)})
	if err != nil {
		return nil, err
	}
	in := m.InputFeatures
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	inputs := make([][]float32, inputPool)
	for i := range inputs {
		inputs[i] = make([]float32, cfg.RowsPerJob*in)
		for k := range inputs[i] {
			inputs[i][k] = float32(rng.NormFloat64())
		}
	}
	batches := packBatches(inputs, cfg.Jobs, cfg.RowsPerJob, in, cfg.Worker.MaxBatchRows)

	dir, err := os.MkdirTemp("", "gearbox-bench-e2e-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("bench-e2e"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	subj := cfg.Worker.Subjects
	if subj.Prefix == "" {
		subj = gearbox.DefaultSubjects
	}
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(subj.Prefix))
	if err != nil {
		return nil, err
	}
	streams := cfg.Worker.Streams
	// Room for one repetition's backlog, whatever the deployment's limits.
	need := int64(cfg.Jobs) * int64(cfg.RowsPerJob*in*4+512)
	streams.JobsMaxBytes = max(streams.JobsMaxBytes, 2*need)
	streams.JobsMaxMsgs = max(streams.JobsMaxMsgs, 2*int64(cfg.Jobs))
	streams.MaxAckPending = max(streams.MaxAckPending, 2*cfg.Jobs)
	if err := client.Provision(ctx, streams); err != nil {
		return nil, err
	}
	dial := func(name string) (*nats.Conn, error) {
		return nats.Connect("", nats.InProcessServer(srv), nats.Name(name))
	}
	b := &bench{cfg: cfg, m: m, inputs: inputs, batches: batches, dial: dial, client: client, subj: subj, models: worker.NewModels(m)}

	rep := newReport(cfg, m)
	for _, p := range cfg.Precisions {
		// Warm up: the backend converts (or uploads) the weights for p on
		// first use, and may set up per batch size; neither side should
		// pay for that in its timed runs. The worker's warm-up also forms
		// the odd-sized batches a worker flushes at start.
		for _, bt := range []batch{batches[0], batches[len(batches)-1]} {
			if _, err := cfg.Backend.Forward(ctx, m, p, bt.in, bt.rows); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
		warm := min(cfg.Jobs, max(1, 4*cfg.Worker.MaxBatchRows/cfg.RowsPerJob))
		if _, err := b.worker(ctx, p, "warm", warm); err != nil {
			return nil, fmt.Errorf("%s worker warm-up: %w", p, err)
		}
		var bare, wrk []run
		for r := range cfg.Reps { // alternate, so drift hits both sides alike
			br, err := b.bare(ctx, p)
			if err != nil {
				return nil, fmt.Errorf("%s bare: %w", p, err)
			}
			bare = append(bare, br)
			b.progress("%-5s rep %d bare   %10.0f jobs/s", p, r+1, br.jobsPerSec())
			wr, err := b.worker(ctx, p, strconv.Itoa(r), cfg.Jobs)
			if err != nil {
				return nil, fmt.Errorf("%s worker: %w", p, err)
			}
			wrk = append(wrk, wr)
			b.progress("%-5s rep %d worker %10.0f jobs/s (%.0f rows a batch)", p, r+1, wr.jobsPerSec(), wr.meanBatchRows)
			if wr.elapsed < cfg.MinTime {
				b.progress("%-5s rep %d worker ran %v, under %v: raise the jobs for steadier figures", p, r+1, wr.elapsed.Round(time.Millisecond), cfg.MinTime)
			}
		}
		rep.add(p, bare, wrk)
	}
	return rep, nil
}

// batch is one bare-loop batch.
type batch struct {
	in   []float32
	rows int
}

// packBatches lays jobs × rowsPerJob rows (job i's input is
// inputs[i % len(inputs)]) end to end and cuts them into batches of
// maxRows rows, as the batcher does with a full queue.
func packBatches(inputs [][]float32, jobs, rowsPerJob, features, maxRows int) []batch {
	var out []batch
	cur := batch{in: make([]float32, 0, maxRows*features)}
	for j := range jobs {
		x := inputs[j%len(inputs)]
		for r := range rowsPerJob {
			cur.in = append(cur.in, x[r*features:(r+1)*features]...)
			cur.rows++
			if cur.rows == maxRows {
				out = append(out, cur)
				cur = batch{in: make([]float32, 0, maxRows*features)}
			}
		}
	}
	if cur.rows > 0 {
		out = append(out, cur)
	}
	return out
}

type bench struct {
	cfg     Config
	m       *model.Model
	inputs  [][]float32
	batches []batch
	// dial opens a connection to the embedded server: each worker has its
	// own, as in gearbox worker, apart from the producer's and the results
	// reader's (client's).
	dial   func(name string) (*nats.Conn, error)
	client *gearbox.Client
	subj   gearbox.Subjects
	models *worker.Models
}

func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, format+"\n", args...)
	}
}

// run is one timed repetition.
type run struct {
	jobs, rows    int
	elapsed       time.Duration
	joules        float64 // NaN when not measured
	meanBatchRows float64
}

func (r run) jobsPerSec() float64 { return float64(r.jobs) / r.elapsed.Seconds() }
func (r run) rowsPerSec() float64 { return float64(r.rows) / r.elapsed.Seconds() }

// energyMeter returns a function giving the joules used since it was
// called, or NaN when there is no counter or it fails.
func (b *bench) energyMeter() func() float64 {
	if b.cfg.Energy == nil {
		return func() float64 { return nan }
	}
	e0, err := b.cfg.Energy()
	return func() float64 {
		e1, err1 := b.cfg.Energy()
		if err != nil || err1 != nil {
			return nan
		}
		return e1 - e0
	}
}

// bare runs every batch through Backend.Forward, from BareCallers
// goroutines that take the batches in turn (one: one after another, as
// the worker's executor does), and again until MinTime has passed.
func (b *bench) bare(ctx context.Context, p precision.Format) (run, error) {
	energy := b.energyMeter()
	start := time.Now()
	passes := 0
	for passes == 0 || time.Since(start) < b.cfg.MinTime {
		if err := b.barePass(ctx, p); err != nil {
			return run{}, err
		}
		passes++
	}
	el := time.Since(start)
	jobs := passes * b.cfg.Jobs
	return run{jobs: jobs, rows: jobs * b.cfg.RowsPerJob, elapsed: el, joules: energy(),
		meanBatchRows: float64(b.cfg.Jobs*b.cfg.RowsPerJob) / float64(len(b.batches))}, nil
}

// barePass runs every batch once, from BareCallers goroutines.
func (b *bench) barePass(ctx context.Context, p precision.Format) error {
	var next atomic.Int64
	errs := make([]error, b.cfg.BareCallers)
	var wg sync.WaitGroup
	for c := range b.cfg.BareCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(b.batches); i = int(next.Add(1) - 1) {
				bt := b.batches[i]
				if _, err := b.cfg.Backend.Forward(ctx, b.m, p, bt.in, bt.rows); err != nil {
					errs[c] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// worker fills the job stream with jobs jobs, then starts the workers and
// times them until every result is stored. tag names the repetition in job
// ids and worker names.
func (b *bench) worker(ctx context.Context, p precision.Format, tag string, jobs int) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	js := b.client.JetStream()
	rs, err := js.Stream(ctx, b.subj.ResultsStream())
	if err != nil {
		return run{}, err
	}
	if err := rs.Purge(ctx); err != nil { // keep the disk use to one repetition's results
		return run{}, err
	}
	feats := b.m.InputFeatures
	for i := range jobs {
		j := &gearbox.Job{
			ID: fmt.Sprintf("%s-%s-%d", p, tag, i), Model: b.m.Name, Precision: p,
			Input: gearbox.NewTensor(b.cfg.RowsPerJob, feats, b.inputs[i%len(b.inputs)]),
		}
		for {
			if _, err = b.client.SubmitAsync(j); err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return run{}, fmt.Errorf("publish job %d: %w", i, err)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return run{}, ctx.Err()
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return run{}, ctx.Err()
	}

	// Follow the (purged) result stream from its start.
	type tally struct {
		n       int
		batches map[string]int
		err     error
	}
	done := make(chan tally, 1)
	go func() {
		t := tally{batches: map[string]int{}}
		defer func() { done <- t }()
		for r, err := range b.client.Results(ctx, b.m.Name, true) {
			switch {
			case err != nil:
				t.err = err
			case r.Error != nil:
				t.err = fmt.Errorf("job %s: %s: %s", r.ID, r.Error.Code, r.Error.Message)
			case r.Precision != p:
				t.err = fmt.Errorf("job %s ran at %s, asked %s", r.ID, r.Precision, p)
			case r.Output == nil || r.Output.Rows() != b.cfg.RowsPerJob:
				t.err = fmt.Errorf("job %s: output is not %d rows", r.ID, b.cfg.RowsPerJob)
			}
			if t.err != nil {
				return
			}
			t.batches[r.Batch] = r.BatchRows
			if t.n++; t.n == jobs {
				return
			}
		}
		t.err = fmt.Errorf("%d of %d results: %w", t.n, jobs, ctx.Err())
	}()

	energy := b.energyMeter()
	start := time.Now()
	hard, hardStop := context.WithCancel(ctx)
	defer hardStop()
	var workers []*worker.Worker
	var wg sync.WaitGroup
	runErr := make(chan error, b.cfg.Workers)
	for i := range b.cfg.Workers {
		wc := b.cfg.Worker
		wc.Subjects, wc.Provision = b.subj, false
		wc.Name = fmt.Sprintf("bench-%s-%s-%d", p, tag, i)
		nc, err := b.dial(wc.Name)
		if err != nil {
			hardStop()
			wg.Wait()
			return run{}, err
		}
		defer nc.Close()
		w, err := worker.New(nc, b.cfg.Backend, b.models, wc)
		if err != nil {
			hardStop()
			wg.Wait()
			return run{}, err
		}
		workers = append(workers, w)
		wg.Go(func() {
			if err := w.Run(hard); err != nil && !errors.Is(err, context.Canceled) {
				runErr <- err
			}
		})
	}
	var t tally
	select {
	case t = <-done:
	case err := <-runErr:
		hardStop()
		wg.Wait()
		return run{}, err
	}
	el := time.Since(start)
	joules := energy()
	for _, w := range workers {
		_ = w.Shutdown(ctx)
	}
	hardStop()
	wg.Wait()
	if t.err != nil {
		return run{}, t.err
	}
	rows := 0
	for _, r := range t.batches {
		rows += r
	}
	return run{jobs: jobs, rows: jobs * b.cfg.RowsPerJob, elapsed: el, joules: joules,
		meanBatchRows: float64(rows) / float64(max(len(t.batches), 1))}, nil
}

// median of xs (NaN for none); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return nan
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
