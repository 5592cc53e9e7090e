// Package demo runs Gearbox end to end in one process: an embedded
// JetStream server, workers, a synthesised model, a load generator that
// publishes real jobs (with a few deliberately invalid ones), and a summary
// of what came back; then, optionally, generate jobs for a real language
// model at each precision of its ladder, side by side, and the walk of its
// precision policy down the ladder on the quality loop's KL reports. It
// backs "gearbox demo" and its test.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/worker"
)

// Config configures a demo run. Zero fields take the defaults in comments.
type Config struct {
	Jobs    int   // jobs to publish (default 50,000; negative: no tensor run)
	Workers int   // workers in the process (default 2)
	MaxRows int   // rows per job, uniform in 1..MaxRows (default 8)
	Dims    []int // model widths (default 64,256,256,10)
	// MaxError is the model's accuracy target (default the manifest's,
	// model.DefaultMaxError).
	MaxError float64
	// BadEvery makes every BadEvery-th job invalid (wrong width, NaN input,
	// unknown model, in turn) to show the error path; 0 means 250, -1 none.
	BadEvery int
	// Rate paces publishing at this many jobs per second (0: as fast as
	// the stream accepts, a burst whose latency is mostly queueing).
	Rate float64
	Seed uint64
	// Listen is where the embedded server listens ("" in-process only).
	Listen string
	// Dir holds the server's data (default: a temporary directory, removed).
	Dir string
	// Worker is the template of every worker's configuration.
	Worker  worker.Config
	Backend kernels.Backend
	// Progress, when set, receives a progress bar.
	Progress io.Writer
	Log      zerolog.Logger
	// Timeout bounds the wait for each run's results (default 5 minutes).
	Timeout time.Duration
	// LM, when set, adds the language-model run after the tensor run.
	LM *LMConfig
}

func (c *Config) defaults() {
	if c.Jobs == 0 {
		c.Jobs = 50000
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.MaxRows == 0 {
		c.MaxRows = 8
	}
	if c.Dims == nil {
		c.Dims = []int{64, 256, 256, 10}
	}
	if c.BadEvery == 0 {
		c.BadEvery = 250
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
}

// mix is the precisions the load generator asks for, in turn.
var mix = []precision.Format{precision.Auto, precision.Auto, precision.FP32, precision.TF32, precision.BF16, precision.FP16, precision.FP8, precision.FP4}

// Report is what a demo run measured.
type Report struct {
	// Tensor is the tensor run's summary; nil when it was not run
	// (Config.Jobs < 0).
	Tensor *Summary
	// LM is the language-model run's; nil without Config.LM.
	LM *LMSummary
}

// Unexpected is the number of results, of either run, that did not match
// what their job called for.
func (r *Report) Unexpected() int {
	n := 0
	if r.Tensor != nil {
		n += r.Tensor.Unexpected()
	}
	if r.LM != nil {
		n += r.LM.Unexpected()
	}
	return n
}

// Print writes each run's summary.
func (r *Report) Print(w io.Writer) {
	if r.Tensor != nil {
		r.Tensor.Print(w)
	}
	if r.LM != nil {
		if r.Tensor != nil {
			fmt.Fprintln(w)
		}
		r.LM.Print(w)
	}
}

// Run runs the demo: the tensor run, then the language-model run, on one
// embedded server and the same workers.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if cfg.Backend == nil {
		return nil, errors.New("demo: no backend")
	}
	m, err := model.Synth(model.SynthConfig{Name: "demo", Dims: cfg.Dims, Act: model.GELU, Seed: int64(cfg.Seed), MaxError: cfg.MaxError})
	if err != nil {
		return nil, err
	}
	models := worker.NewModels(m)
	var lmm *lm.Model
	if cfg.LM != nil {
		if lmm, err = cfg.LM.load(cfg.Backend); err != nil {
			return nil, err
		}
		if err := models.PutLM(lmm); err != nil {
			return nil, err
		}
	}
	c, err := startCluster(ctx, cfg, models)
	if err != nil {
		return nil, err
	}
	defer c.close()

	rep := &Report{}
	if cfg.Jobs >= 0 {
		sum := newSummary(cfg.Jobs)
		sum.rate, sum.model = cfg.Rate, m
		c.track(m.Name, sum.policy)
		if err := load(ctx, cfg, c.client, m, sum, c.runErr); err != nil {
			return nil, err
		}
		rep.Tensor = sum
	}
	if lmm != nil {
		if rep.LM, err = runLM(ctx, cfg, c, lmm); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// load publishes the jobs, follows the results and summarises them.
func load(ctx context.Context, cfg Config, client *gearbox.Client, m *model.Model, sum *Summary, runErr <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	go func() {
		for r, err := range client.QualityReports(ctx, m.Name, true) {
			if err != nil {
				return // the summary lacks a picture's dots, nothing more
			}
			sum.report(r, time.Now())
		}
	}()
	got := make(chan struct{})
	var followErr error
	go func() {
		defer close(got)
		seen := 0
		for r, err := range client.Results(ctx, "*", true) {
			if err != nil {
				followErr = err
				return
			}
			if sum.add(r, time.Now()) {
				seen++
			}
			if seen == cfg.Jobs {
				return
			}
		}
	}()

	rng := rand.New(rand.NewPCG(cfg.Seed, 2))
	start := time.Now()
	sum.begin(start)
	stopBar := sum.progress(cfg.Progress, cfg.Jobs)
	defer stopBar()
	for i := range cfg.Jobs {
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		j, bad := job(i, cfg, m, rng)
		sum.sent(i, j, bad, time.Now())
		var err error
		for attempt := 0; ; attempt++ {
			if _, err = client.SubmitAsync(j); err == nil || attempt == 50 {
				break
			}
			// Too many unacknowledged publishes: wait for the stream.
			select {
			case <-client.JetStream().PublishAsyncComplete():
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("publish job %d: %w", i, err)
		}
	}
	sum.published = time.Since(start)
	select {
	case <-got:
	case err := <-runErr:
		return fmt.Errorf("worker: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("waiting for results: %w (%d of %d received)", ctx.Err(), sum.count(), cfg.Jobs)
	}
	if followErr != nil {
		return followErr
	}
	sum.finish(time.Since(start))
	return nil
}

// job makes job i: random rows, the precision mix, and every BadEvery-th
// one invalid in one of three ways.
func job(i int, cfg Config, m *model.Model, rng *rand.Rand) (*gearbox.Job, bool) {
	rows := 1 + rng.IntN(cfg.MaxRows)
	feats := m.InputFeatures
	j := &gearbox.Job{ID: "demo-" + strconv.Itoa(i), Model: m.Name, Precision: mix[i%len(mix)]}
	bad := cfg.BadEvery > 0 && i%cfg.BadEvery == cfg.BadEvery-1
	kind := (i / max(cfg.BadEvery, 1)) % 3
	if bad && kind == 0 {
		feats++ // shape_mismatch
	}
	vals := make([]float32, rows*feats)
	for k := range vals {
		vals[k] = float32(rng.NormFloat64())
	}
	if bad && kind == 1 {
		vals[rng.IntN(len(vals))] = float32(math.NaN()) // bad_request
	}
	if bad && kind == 2 {
		j.Model = "no-such-model" // unknown_model
	}
	j.Input = gearbox.NewTensor(rows, feats, vals)
	return j, bad
}

// jobIndex parses the index out of a demo job id.
func jobIndex(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, "demo-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}
