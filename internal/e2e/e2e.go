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
	"cmp"
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
	"github.com/gearbox-inference/gearbox/internal/pull"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// Config configures a run. Zero fields take the defaults in comments.
type Config struct {
	// Backend is the device the workers and the bare loop run on;
	// required unless Backends is set.
	Backend kernels.Backend
	// Backends, when set, are several devices (one backend per GPU) that
	// the workers and the bare loop's callers spread over: worker i and
	// bare caller i run on Backends[i mod len(Backends)]. Backend is then
	// Backends[0].
	Backends []kernels.Backend
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
	Workers int // workers (default 1), sharing the backend (or Backends, in turn)
	// BareCallers is how many goroutines call Backend.Forward in the bare
	// loop, sharing its batches (default 1: one after another, as one
	// worker's executor does); more shows what a backend that overlaps
	// concurrent calls can reach, or, with Backends, what several GPUs
	// reach with one caller each.
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
	// Timeout bounds one worker or raw repetition (default 10 minutes).
	Timeout time.Duration
	// Raw adds the raw-JetStream side: the same jobs through the same
	// server, stream and consumer, with no decoding, batching or
	// inference (see bench.raw): the transport's ceiling.
	Raw bool
	// RawStreams, above 1, adds a second raw side that spreads the same
	// jobs over RawStreams lanes (lanes.go): as many job streams and as
	// many result streams, each with its own consumer, on the same server,
	// with max(Workers, RawStreams) raw consumers, consumer i on lane
	// i mod RawStreams. Needs Raw (default 1: the one raw side only).
	RawStreams int
	// WorkerHook, when set, is called as each timed worker repetition
	// starts (rep counts from 1; warm-ups are not timed) and the function
	// it returns as it ends, before the workers shut down: to trace or
	// profile the worker alone.
	WorkerHook func(p precision.Format, rep int) (stop func() error, err error)
	// InputDType is the element type of the jobs' input tensors: f32
	// (default), bf16 or f16. The inputs are rounded to it once, so the
	// bare loop computes on the very values the worker decodes.
	InputDType gearbox.DType
	// OutputDType is the jobs' output_dtype: f32 (default; the field is
	// left out), bf16 or f16. The raw side's result is then that size.
	OutputDType gearbox.DType
}

// checkDType accepts "" (f32), f32, bf16 and f16; what names the setting.
func checkDType(what string, d gearbox.DType) error {
	if d == "" || d.Size() != 0 {
		return nil
	}
	return fmt.Errorf("e2e: %s %q is not one of f32, bf16, f16", what, d)
}

func (c *Config) defaults() error {
	if len(c.Backends) == 0 && c.Backend != nil {
		c.Backends = []kernels.Backend{c.Backend}
	}
	if len(c.Backends) == 0 || slices.Contains(c.Backends, nil) {
		return errors.New("e2e: no backend")
	}
	c.Backend = c.Backends[0]
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
	def(&c.RawStreams, 1)
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
	if err := checkDType("input dtype", c.InputDType); err != nil {
		return err
	}
	if err := checkDType("output dtype", c.OutputDType); err != nil {
		return err
	}
	c.InputDType = cmp.Or(c.InputDType, gearbox.F32)
	c.OutputDType = cmp.Or(c.OutputDType, gearbox.F32)
	if c.RawStreams < 1 || c.RawStreams > 1 && !c.Raw {
		return fmt.Errorf("e2e: raw streams %d: want 1, or more with the raw side on", c.RawStreams)
	}
	if c.RowsPerJob < 1 || c.Jobs < 1 || c.Reps < 1 || c.Workers < 1 || c.BareCallers < 1 || c.Worker.MaxBatchRows < 1 {
		return fmt.Errorf("e2e: rows per job %d, jobs %d, reps %d, workers %d, bare callers %d and max batch rows %d must all be ≥ 1",
			c.RowsPerJob, c.Jobs, c.Reps, c.Workers, c.BareCallers, c.Worker.MaxBatchRows)
	}
	for _, p := range c.Precisions {
		if !p.Valid() {
			return fmt.Errorf("e2e: %q is not a concrete precision", p)
		}
		for _, b := range c.Backends {
			if !kernels.Supports(b, p) {
				return fmt.Errorf("e2e: backend %s does not support %s", b.Name(), p)
			}
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
	b, cleanup, err := newBench(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep := newReport(cfg, b.m)
	for _, p := range cfg.Precisions {
		res, err := b.precision(ctx, p)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

// newBench synthesises the model and its inputs, starts the embedded
// server and provisions its streams; cleanup stops the server and removes
// its files.
func newBench(ctx context.Context, cfg Config) (b *bench, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		slices.Reverse(undo)
		for _, f := range undo {
			f()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	m, err := model.Synth(model.SynthConfig{Name: "bench", Dims: cfg.Dims, Act: model.GELU, Seed: int64(cfg.Seed)})
	if err != nil {
		return nil, nil, err
	}
	in := m.InputFeatures
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	inputs := make([][]float32, inputPool)
	tensors := make([]gearbox.Tensor, inputPool)
	for i := range inputs {
		inputs[i] = make([]float32, cfg.RowsPerJob*in)
		for k := range inputs[i] {
			inputs[i][k] = float32(rng.NormFloat64())
		}
		// The values the worker decodes from the job: the bare loop
		// computes on the same.
		switch cfg.InputDType {
		case gearbox.BF16:
			precision.RoundBF16Slice(inputs[i], inputs[i])
		case gearbox.F16:
			precision.RoundFP16Slice(inputs[i], inputs[i])
		}
		tensors[i] = gearbox.NewTensorAs(cfg.RowsPerJob, in, inputs[i], cfg.InputDType)
	}
	batches := packBatches(inputs, cfg.Jobs, cfg.RowsPerJob, in, cfg.Worker.MaxBatchRows)

	dir, err := os.MkdirTemp("", "gearbox-bench-e2e-")
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	srv, err := embedded.Start(embedded.Config{Dir: dir})
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("bench-e2e"))
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, nc.Close)
	subj := cfg.Worker.Subjects
	if subj.Prefix == "" {
		subj = gearbox.DefaultSubjects
	}
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(subj.Prefix))
	if err != nil {
		return nil, nil, err
	}
	streams := cfg.Worker.Streams
	// Room for one repetition's backlog, whatever the deployment's limits.
	need := int64(cfg.Jobs) * int64(cfg.RowsPerJob*in*cfg.InputDType.Size()+512)
	streams.JobsMaxBytes = max(streams.JobsMaxBytes, 2*need)
	streams.JobsMaxMsgs = max(streams.JobsMaxMsgs, 2*int64(cfg.Jobs))
	streams.MaxAckPending = max(streams.MaxAckPending, 2*cfg.Jobs)
	if err := client.Provision(ctx, streams); err != nil {
		return nil, nil, err
	}
	var lanes []lane
	if cfg.RawStreams > 1 {
		if lanes, err = newLanes(ctx, nc, subj, streams, cfg.RawStreams); err != nil {
			return nil, nil, err
		}
	}
	dial := func(name string) (*nats.Conn, error) {
		return nats.Connect("", nats.InProcessServer(srv), nats.Name(name))
	}
	return &bench{cfg: cfg, m: m, inputs: inputs, tensors: tensors, batches: batches, dial: dial, client: client, subj: subj, lanes: lanes, models: worker.NewModels(m)}, cleanup, nil
}

// precision measures p: warm-up, then Reps repetitions of each side.
func (b *bench) precision(ctx context.Context, p precision.Format) (Result, error) {
	cfg := b.cfg
	batches, m := b.batches, b.m
	// Warm up: the backend converts (or uploads) the weights for p on
	// first use, and may set up per batch size; no side should pay for
	// that in its timed runs. The worker's warm-up also forms the
	// odd-sized batches a worker flushes at start.
	for _, be := range cfg.Backends {
		for _, bt := range []batch{batches[0], batches[len(batches)-1]} {
			if _, err := be.Forward(ctx, m, p, bt.in, bt.rows); err != nil {
				return Result{}, fmt.Errorf("%s on %s: %w", p, be.Name(), err)
			}
		}
	}
	warm := min(cfg.Jobs, max(1, 4*cfg.Worker.MaxBatchRows/cfg.RowsPerJob))
	if _, err := b.worker(ctx, p, "warm", warm, 0); err != nil {
		return Result{}, fmt.Errorf("%s worker warm-up: %w", p, err)
	}
	if cfg.Raw {
		if _, err := b.raw(ctx, p, "rawwarm", warm); err != nil {
			return Result{}, fmt.Errorf("%s raw warm-up: %w", p, err)
		}
	}
	if b.lanes != nil {
		if _, err := b.rawLanes(ctx, b.lanes, cfg.rawConsumers(), p, "lanewarm", warm); err != nil {
			return Result{}, fmt.Errorf("%s raw warm-up over %d streams: %w", p, len(b.lanes), err)
		}
	}
	var bare, raw, rawS, wrk []run
	for r := range cfg.Reps { // alternate, so drift hits every side alike
		br, err := b.bare(ctx, p)
		if err != nil {
			return Result{}, fmt.Errorf("%s bare: %w", p, err)
		}
		bare = append(bare, br)
		b.progress("%-5s rep %d bare   %10.0f jobs/s", p, r+1, br.jobsPerSec())
		if cfg.Raw {
			rr, err := b.raw(ctx, p, "raw"+strconv.Itoa(r), cfg.Jobs)
			if err != nil {
				return Result{}, fmt.Errorf("%s raw: %w", p, err)
			}
			raw = append(raw, rr)
			b.progress("%-5s rep %d raw    %10.0f jobs/s", p, r+1, rr.jobsPerSec())
		}
		if b.lanes != nil {
			rr, err := b.rawLanes(ctx, b.lanes, cfg.rawConsumers(), p, "lanes"+strconv.Itoa(r), cfg.Jobs)
			if err != nil {
				return Result{}, fmt.Errorf("%s raw over %d streams: %w", p, len(b.lanes), err)
			}
			rawS = append(rawS, rr)
			b.progress("%-5s rep %d raw×%d %10.0f jobs/s", p, r+1, len(b.lanes), rr.jobsPerSec())
		}
		wr, err := b.worker(ctx, p, strconv.Itoa(r), cfg.Jobs, r+1)
		if err != nil {
			return Result{}, fmt.Errorf("%s worker: %w", p, err)
		}
		wrk = append(wrk, wr)
		b.progress("%-5s rep %d worker %10.0f jobs/s (%.0f rows a batch)", p, r+1, wr.jobsPerSec(), wr.meanBatchRows)
		if wr.elapsed < cfg.MinTime {
			b.progress("%-5s rep %d worker ran %v, under %v: raise the jobs for steadier figures", p, r+1, wr.elapsed.Round(time.Millisecond), cfg.MinTime)
		}
	}
	res := result(p, bare, raw, wrk, len(cfg.Backends))
	if len(rawS) > 0 {
		s := side(rawS)
		res.RawStreams = &s
	}
	return res, nil
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
	cfg    Config
	m      *model.Model
	inputs [][]float32
	// tensors are inputs as the jobs carry them, in InputDType.
	tensors []gearbox.Tensor
	batches []batch
	// dial opens a connection to the embedded server: each worker has its
	// own, as in gearbox worker, apart from the producer's and the results
	// reader's (client's).
	dial   func(name string) (*nats.Conn, error)
	client *gearbox.Client
	subj   gearbox.Subjects
	lanes  []lane // the RawStreams lanes; nil with RawStreams 1
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
	acked         int                 // jobs acked (the raw side)
	stages        *kernels.StageTimes // the bare side's, where the backend times them (stages.go)
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
	stages := b.timeStages()
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
	return run{jobs: jobs, rows: jobs * b.cfg.RowsPerJob, elapsed: el, joules: energy(), stages: stages(),
		meanBatchRows: float64(b.cfg.Jobs*b.cfg.RowsPerJob) / float64(len(b.batches))}, nil
}

// barePass runs every batch once, from BareCallers goroutines, caller c
// on Backends[c mod len(Backends)]; a backend that can write into the
// caller's slice (kernels.IntoForwarder) gets one output buffer per caller,
// reused from batch to batch, as a serving loop would.
func (b *bench) barePass(ctx context.Context, p precision.Format) error {
	var next atomic.Int64
	errs := make([]error, b.cfg.BareCallers)
	var wg sync.WaitGroup
	for c := range b.cfg.BareCallers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			be := b.cfg.Backends[c%len(b.cfg.Backends)]
			into, _ := be.(kernels.IntoForwarder)
			var out []float32
			for i := int(next.Add(1) - 1); i < len(b.batches); i = int(next.Add(1) - 1) {
				bt := b.batches[i]
				var err error
				if into != nil {
					if n := bt.rows * b.m.OutputFeatures; cap(out) < n {
						out = make([]float32, n)
					}
					err = into.ForwardInto(ctx, b.m, p, bt.in, bt.rows, out[:cap(out)])
				} else {
					_, err = be.Forward(ctx, b.m, p, bt.in, bt.rows)
				}
				if err != nil {
					errs[c] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fill purges the result stream (keeping the disk use to one repetition's
// results) and fills the job stream with jobs jobs, the same jobs every
// side that goes through the queue sees; tag names the repetition in the
// job ids, which are fresh for each.
func (b *bench) fill(ctx context.Context, p precision.Format, tag string, jobs int) error {
	return b.fillLanes(ctx, []lane{b.main()}, p, tag, jobs)
}

// fillLanes is fill over several lanes' streams: job i goes to lane
// i mod len(lanes).
func (b *bench) fillLanes(ctx context.Context, lanes []lane, p precision.Format, tag string, jobs int) error {
	for _, l := range lanes {
		rs, err := l.client.JetStream().Stream(ctx, l.subj.ResultsStream())
		if err != nil {
			return err
		}
		if err := rs.Purge(ctx); err != nil {
			return err
		}
	}
	for i := range jobs {
		j := b.job(p, tag, i)
		l := lanes[i%len(lanes)]
		for {
			_, err := l.client.SubmitAsync(j)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return fmt.Errorf("publish job %d: %w", i, err)
			}
			select {
			case <-l.client.JetStream().PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	for _, l := range lanes {
		select {
		case <-l.client.JetStream().PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// job is the i-th job of the repetition tag at precision p: input
// i mod inputPool, in InputDType, asking for OutputDType.
func (b *bench) job(p precision.Format, tag string, i int) *gearbox.Job {
	j := &gearbox.Job{
		ID: fmt.Sprintf("%s-%s-%d", p, tag, i), Model: b.m.Name, Precision: p,
		Input: b.tensors[i%len(b.tensors)],
	}
	if b.cfg.OutputDType != gearbox.F32 {
		j.OutputDType = b.cfg.OutputDType
	}
	return j
}

// tally is what follow read from the result stream.
type tally struct {
	n       int
	batches map[string]int
	err     error
}

// follow reads lane l's (purged) result stream from its start until it
// holds jobs results, checking each: no error, precision p, RowsPerJob rows
// of OutputDType.
func (b *bench) follow(ctx context.Context, l lane, p precision.Format, jobs int) <-chan tally {
	done := make(chan tally, 1)
	go func() {
		t := tally{batches: map[string]int{}}
		defer func() { done <- t }()
		for r, err := range l.client.Results(ctx, b.m.Name, true) {
			switch {
			case err != nil:
				t.err = err
			case r.Error != nil:
				t.err = fmt.Errorf("job %s: %s: %s", r.ID, r.Error.Code, r.Error.Message)
			case r.Precision != p:
				t.err = fmt.Errorf("job %s ran at %s, asked %s", r.ID, r.Precision, p)
			case r.Output == nil || r.Output.Rows() != b.cfg.RowsPerJob:
				t.err = fmt.Errorf("job %s: output is not %d rows", r.ID, b.cfg.RowsPerJob)
			case r.Output.DType != b.cfg.OutputDType:
				t.err = fmt.Errorf("job %s: output is %s, asked %s", r.ID, r.Output.DType, b.cfg.OutputDType)
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
	return done
}

// crew is one side's goroutines, workers or raw consumers, each on a
// connection of its own, as in gearbox worker.
type crew struct {
	b    *bench
	hard context.Context // ends every member
	stop context.CancelFunc
	wg   sync.WaitGroup
	errs chan error
	nc   []*nats.Conn
}

func (b *bench) newCrew(ctx context.Context) *crew {
	hard, stop := context.WithCancel(ctx)
	return &crew{b: b, hard: hard, stop: stop, errs: make(chan error, b.cfg.Workers)}
}

// dial opens a member's connection, closed by close.
func (c *crew) dial(name string) (*nats.Conn, error) {
	nc, err := c.b.dial(name)
	if err == nil {
		c.nc = append(c.nc, nc)
	}
	return nc, err
}

// start runs f on a goroutine of its own until c.hard ends; an error it
// returns before then is wait's (a member started past the errors'
// buffer, all failing at once, gives up its error when c ends instead of
// blocking close).
func (c *crew) start(f func(context.Context) error) {
	c.wg.Go(func() {
		if err := f(c.hard); err != nil && c.hard.Err() == nil {
			select {
			case c.errs <- err:
			case <-c.hard.Done():
			}
		}
	})
}

// wait returns what follow read, or the first member's error.
func (c *crew) wait(done <-chan tally) (tally, error) {
	select {
	case t := <-done:
		return t, t.err
	case err := <-c.errs:
		return tally{}, err
	}
}

// close ends every member, waits for them and closes their connections.
func (c *crew) close() {
	c.stop()
	c.wg.Wait()
	for _, nc := range c.nc {
		nc.Close()
	}
}

// worker fills the job stream with jobs jobs, then starts the workers and
// times them until every result is stored. tag names the repetition in job
// ids and worker names; rep, from 1, is the timed repetition WorkerHook is
// told of (0: a warm-up, not hooked).
func (b *bench) worker(ctx context.Context, p precision.Format, tag string, jobs, rep int) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.fill(ctx, p, tag, jobs); err != nil {
		return run{}, err
	}
	done := b.follow(ctx, b.main(), p, jobs)

	stopHook := func() error { return nil }
	if b.cfg.WorkerHook != nil && rep > 0 {
		stop, err := b.cfg.WorkerHook(p, rep)
		if err != nil {
			return run{}, err
		}
		stopHook = stop
	}
	energy := b.energyMeter()
	start := time.Now()
	c := b.newCrew(ctx)
	defer c.close()
	var workers []*worker.Worker
	for i := range b.cfg.Workers {
		wc := b.cfg.Worker
		wc.Subjects, wc.Provision = b.subj, false
		wc.Name = fmt.Sprintf("bench-%s-%s-%d", p, tag, i)
		nc, err := c.dial(wc.Name)
		if err != nil {
			return run{}, errors.Join(err, stopHook())
		}
		w, err := worker.New(nc, b.cfg.Backends[i%len(b.cfg.Backends)], b.models, wc)
		if err != nil {
			return run{}, errors.Join(err, stopHook())
		}
		workers = append(workers, w)
		c.start(w.Run)
	}
	t, err := c.wait(done)
	el := time.Since(start)
	joules := energy()
	if err := errors.Join(err, stopHook()); err != nil {
		return run{}, err
	}
	for _, w := range workers {
		_ = w.Shutdown(ctx)
	}
	rows := 0
	for _, r := range t.batches {
		rows += r
	}
	return run{jobs: jobs, rows: jobs * b.cfg.RowsPerJob, elapsed: el, joules: joules,
		meanBatchRows: float64(rows) / float64(max(len(t.batches), 1))}, nil
}

// raw is the transport's ceiling on the worker's own traffic. It fills the
// job stream with the same jobs as the worker side (the same encoded
// messages), then starts Workers raw consumers, each on its own connection
// like a worker, pulling from the workers' shared durable consumer with
// the worker's prefetch limits. For every job a consumer publishes a
// result, asynchronously, with the job's Nats-Msg-Id as its own (as the
// worker does), and acks the job once the result's PubAck arrives. The
// result is one payload encoded in advance, the size of a worker's result
// for the job (a gearbox.Result of RowsPerJob × output-width values in
// OutputDType and the same fields), so nothing is decoded, batched, computed or encoded
// per job. The clock runs, as the worker side's does, from the consumers'
// start to the last result read back from the result stream; the run then
// waits, untimed, for every job's ack and for the consumer to hold no
// pending or unacked job.
func (b *bench) raw(ctx context.Context, p precision.Format, tag string, jobs int) (run, error) {
	return b.rawLanes(ctx, []lane{b.main()}, b.cfg.Workers, p, tag, jobs)
}

// rawLanes is raw over several lanes: job i through lane i mod
// len(lanes), consumers consumers, consumer i on lane i mod len(lanes).
func (b *bench) rawLanes(ctx context.Context, lanes []lane, consumers int, p precision.Format, tag string, jobs int) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.fillLanes(ctx, lanes, p, tag, jobs); err != nil {
		return run{}, err
	}
	tmpl := make([]*nats.Msg, len(lanes))
	for i, l := range lanes {
		var err error
		if tmpl[i], err = b.rawResult(p, l.subj); err != nil {
			return run{}, err
		}
	}
	done := b.followLanes(ctx, lanes, p, jobs)

	var acked atomic.Int64
	allAcked := make(chan struct{})
	onAck := func() {
		if acked.Add(1) == int64(jobs) {
			close(allAcked)
		}
	}
	energy := b.energyMeter()
	start := time.Now()
	c := b.newCrew(ctx)
	defer c.close()
	for i := range consumers {
		nc, err := c.dial(fmt.Sprintf("raw-%s-%s-%d", p, tag, i))
		if err != nil {
			return run{}, err
		}
		l, t := lanes[i%len(lanes)], tmpl[i%len(lanes)]
		c.start(func(ctx context.Context) error { return b.rawConsumer(ctx, nc, l.subj, t, onAck) })
	}
	if _, err := c.wait(done); err != nil {
		return run{}, err
	}
	el := time.Since(start)
	joules := energy()
	select {
	case <-allAcked:
	case err := <-c.errs:
		return run{}, err
	case <-ctx.Done():
		return run{}, fmt.Errorf("%d of %d jobs acked: %w", acked.Load(), jobs, ctx.Err())
	}
	c.close()
	for _, l := range lanes {
		if err := b.drained(ctx, l); err != nil {
			return run{}, err
		}
	}
	return run{jobs: jobs, rows: jobs * b.cfg.RowsPerJob, elapsed: el, joules: joules, acked: int(acked.Load())}, nil
}

// rawResult is the message the raw consumers publish for every job: a
// result like the worker's for a RowsPerJob-row job at precision p, its
// output in OutputDType, on subj's result subject.
func (b *bench) rawResult(p precision.Format, subj gearbox.Subjects) (*nats.Msg, error) {
	rows, out := b.cfg.RowsPerJob, b.m.OutputFeatures
	vals := make([]float32, rows*out)
	for i := range vals {
		vals[i] = float32(i%251) / 251
	}
	o := gearbox.NewTensorAs(rows, out, vals, b.cfg.OutputDType)
	r := &gearbox.Result{
		ID: fmt.Sprintf("%s-raw0-%d", p, b.cfg.Jobs), Model: b.m.Name, Output: &o, Precision: p,
		Worker: "bench-raw-0", Batch: "bench-raw-0-1", BatchRows: b.cfg.Worker.MaxBatchRows,
		QueuedMs: 1.5, ComputeMs: 0.5,
	}
	return gearbox.NewMsg(subj.Results(b.m.Name), r, gearbox.Msgpack)
}

// rawConsumer is one raw consumer (see raw) on nc of subj's job stream,
// until ctx ends: a goroutine pulls and publishes, another acks each job as
// its result's PubAck arrives, in order, as the worker's ack loop does.
func (b *bench) rawConsumer(ctx context.Context, nc *nats.Conn, subj gearbox.Subjects, tmpl *nats.Msg, onAck func()) error {
	wc := b.cfg.Worker
	bc := wc.Config.WithDefaults()
	prefetch, prefetchBytes := wc.Prefetch, wc.PrefetchBytes
	if prefetch == 0 {
		prefetch = 2 * bc.MaxBatchRows
	}
	if prefetchBytes == 0 {
		prefetchBytes = max(4*cmp.Or(wc.MaxJobBytes, worker.DefaultConfig().MaxJobBytes), 32<<20)
	}
	maxPending := 4*bc.MaxQueuedRows + 256
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, subj.JobsStream(), subj.Consumer())
	if err != nil {
		return err
	}
	// The worker's pull loop and limits (internal/pull).
	it, err := pull.Start(ctx, cons, pull.Options{Max: prefetch, MaxBytes: prefetchBytes,
		Expiry: cmp.Or(wc.PullExpiry, worker.DefaultConfig().PullExpiry)})
	if err != nil {
		return err
	}
	defer it.Stop()

	type pend struct {
		f   jetstream.PubAckFuture
		msg jetstream.Msg
	}
	// At most as many jobs in flight (pulled, result not yet stored) as a
	// worker admits (MaxQueuedRows): without that bound the consumers
	// outrun the result stream and the server refuses publishes (429).
	pending := make(chan pend, max(1, bc.MaxQueuedRows/max(1, b.cfg.RowsPerJob)))
	ackErr := make(chan error, 1)
	go func() {
		defer close(ackErr)
		for p := range pending {
			select {
			case <-p.f.Ok():
			case err := <-p.f.Err():
				// As the worker does: publish again, synchronously, with
				// the same message id, backing off (the server answers 429
				// when the stream falls behind).
				backoff := 100 * time.Millisecond
				if _, rerr := worker.PublishStored(ctx, js, p.f.Msg(), &backoff); rerr != nil {
					ackErr <- fmt.Errorf("result publish: %w (first: %w)", rerr, err)
					return
				}
			case <-ctx.Done():
				return
			}
			if err := p.msg.Ack(); err != nil {
				ackErr <- fmt.Errorf("ack: %w", err)
				return
			}
			onAck()
		}
	}()
	err = func() error {
		defer close(pending)
		for {
			msg, err := it.Next()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			m := &nats.Msg{Subject: tmpl.Subject, Data: tmpl.Data, Header: nats.Header{}}
			m.Header.Set(gearbox.HeaderContentType, tmpl.Header.Get(gearbox.HeaderContentType))
			m.Header.Set(jetstream.MsgIDHeader, msg.Headers().Get(jetstream.MsgIDHeader))
			var f jetstream.PubAckFuture
			for {
				if f, err = js.PublishMsgAsync(m); err == nil {
					break
				}
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					return fmt.Errorf("result publish: %w", err)
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					return nil
				}
			}
			select {
			case pending <- pend{f, msg}:
			case err := <-ackErr:
				return err
			case <-ctx.Done():
				return nil
			}
		}
	}()
	if err != nil {
		return err
	}
	return <-ackErr // nil once the ack goroutine is done
}

// drained waits until lane l's shared consumer holds no job that is
// pending or awaiting its ack: the raw side's acks are not confirmed by the
// server, and the next repetition must start from an empty queue.
func (b *bench) drained(ctx context.Context, l lane) error {
	cons, err := l.client.JetStream().Consumer(ctx, l.subj.JobsStream(), l.subj.Consumer())
	if err != nil {
		return err
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ci, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("consumer still holds %d pending and %d unacked jobs: %w", ci.NumPending, ci.NumAckPending, ctx.Err())
		}
	}
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
