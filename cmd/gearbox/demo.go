package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/internal/demo"
	"github.com/gearbox-inference/gearbox/precision"
)

// demoFlags are the demo's flags.
type demoFlags struct {
	jobs, workers, rows, bad int
	minSamples               int
	dims                     string
	rate, maxErr, sample     float64
	cooldown                 time.Duration
	lmDir                    string
	lmPrompts, lmTokens      int
	lmWalk                   int
	lmPrecisions             string
	plots                    string
}

func newDemoCmd(a *app) *cobra.Command {
	var f demoFlags
	c := &cobra.Command{
		Use:   "demo",
		Short: "Embedded NATS, in-process workers, real load, then a summary",
		Long: `Starts an embedded NATS server (on GEARBOX_EMBEDDED_LISTEN) and in-process
workers, synthesises a model, publishes jobs with a mix of requested
precisions (a few invalid on purpose), and prints throughput, latency,
batching, errors and the quality loop's policy changes.

Then the same workers serve the Go-code language model Gearbox ships
(testdata/models/gocoder, or --lm-model): greedy completions of the first
lines of held-out Go files from the local toolchain, at each precision of
the model's ladder in turn, with tokens/s, time to first token, and each
precision's completion of one prompt side by side with its agreement with
fp32. Then the walk: the model's policy is set to fp32 and precision-auto
jobs follow until the quality loop, judging KL per token against fp32,
holds the policy at the cheapest rung within its target (bf16 on the
shipped model), each step with its evidence. --jobs 0 runs only the
language model; --lm-prompts 0 skips it, --lm-walk 0 the walk.`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), &a.cfg, a.log, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := c.Flags()
	fs.IntVar(&f.jobs, "jobs", 50000, "tensor jobs to publish (0: no tensor run)")
	fs.IntVar(&f.workers, "workers", 2, "workers to run in this process")
	fs.IntVar(&f.rows, "rows", 8, "rows per job are drawn from 1..rows")
	fs.StringVar(&f.dims, "dims", "64,256,256,10", "the synthesised model's widths: input, then each layer's output")
	fs.IntVar(&f.bad, "bad-every", 250, "every Nth job is invalid on purpose (0: none)")
	fs.Float64Var(&f.rate, "rate", 0, "publish at this many jobs/s (0: as fast as the stream takes them, a burst)")
	fs.Float64Var(&f.maxErr, "max-error", 0.25, "the demo model's accuracy target (relative L2 error); its fp8 error is about 0.07 (0.1 at worst), fp4's 0.27")
	fs.Float64Var(&f.sample, "sample", 0.25, "fraction of batches the quality loop checks (GEARBOX_QUALITY_SAMPLE is for workers)")
	fs.DurationVar(&f.cooldown, "cooldown", time.Second, "least time between a policy change and the next step down")
	fs.IntVar(&f.minSamples, "min-samples", 10, "quality reports of the next cheaper rung a step down needs (GEARBOX_QUALITY_MIN_SAMPLES is for workers)")
	fs.StringVar(&f.lmDir, "lm-model", "", "the language model's checkpoint directory (default: the shipped "+demo.ModelDir+", found from the working directory or the source tree)")
	fs.IntVar(&f.lmPrompts, "lm-prompts", 16, "prompts for the language model, each run at every precision (0: no language-model run)")
	fs.IntVar(&f.lmTokens, "lm-tokens", 64, "tokens each completion may generate")
	fs.IntVar(&f.lmWalk, "lm-walk", 480, "most precision-auto jobs of the language model's walk down its ladder (0: no walk)")
	fs.StringVar(&f.lmPrecisions, "lm-precisions", "", "precisions the language model runs, the reference first (default: the model's ladder)")
	fs.StringVar(&f.plots, "plots", "", "write the run's plots (PNG) into this directory")
	return c
}

func runDemo(ctx context.Context, cfg *config, log zerolog.Logger, f demoFlags, stdout, stderr io.Writer) error {
	ds, err := parseDims(f.dims)
	if err != nil {
		return err
	}
	bad := f.bad
	if bad == 0 {
		bad = -1
	}
	jobs := f.jobs
	if jobs == 0 {
		jobs = -1 // no tensor run
	}
	lmc, err := demoLM(f, stderr)
	if err != nil {
		return err
	}
	subj, err := cfg.subjects()
	if err != nil {
		return err
	}
	backend, err := openBackend(cfg.Device, log)
	if err != nil {
		return err
	}
	defer backend.Close()
	if cfg.LogLevel == "info" { // keep the demo's screen for the summary
		log = log.Level(zerolog.WarnLevel)
	}
	wc := cfg.worker(subj)
	wc.Logger = &log
	// A short run: check more batches, with no bound on the checks' time,
	// and let the policy move sooner than a production worker would.
	wc.Quality.Sample, wc.Quality.Budget, wc.Quality.Control, wc.Quality.Rules.Cooldown = f.sample, 0, true, f.cooldown
	wc.Quality.Rules.MinSamples = f.minSamples
	listen := cfg.EmbeddedListen
	runs := fmt.Sprintf("%d jobs of model %s", f.jobs, f.dims)
	if jobs < 0 {
		runs = "no tensor jobs"
	}
	if lmc != nil {
		runs += ", then language model " + lmc.Dir
	}
	fmt.Fprintf(stderr, "gearbox demo: %s; %d workers on %s, embedded NATS on %s\n", runs, f.workers, backend.Name(), listen)
	rep, err := demo.Run(ctx, demo.Config{
		Jobs: jobs, Workers: f.workers, MaxRows: f.rows, Dims: ds, BadEvery: bad, Rate: f.rate, MaxError: f.maxErr,
		Listen: listen, Worker: wc, Backend: backend, Progress: stderr, Log: log, LM: lmc,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	rep.Print(stdout)
	if f.plots != "" {
		files, err := rep.WritePlots(f.plots, ".png")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nplots: %s\n", strings.Join(files, ", "))
	}
	if n := rep.Unexpected(); n > 0 {
		return fmt.Errorf("%d results did not match their jobs", n)
	}
	return nil
}

// demoLM is the demo's language-model run, or nil for none: without
// --lm-model, the shipped model where it can be found (else a note, and no
// run).
func demoLM(f demoFlags, stderr io.Writer) (*demo.LMConfig, error) {
	if f.lmPrompts <= 0 {
		return nil, nil
	}
	dir := f.lmDir
	if dir == "" {
		d, err := demo.FindModel()
		if err != nil {
			fmt.Fprintf(stderr, "gearbox demo: %v; no language-model run (--lm-model DIR names one)\n", err)
			return nil, nil
		}
		dir = d
	}
	walk := f.lmWalk
	if walk == 0 {
		walk = -1 // no walk
	}
	c := &demo.LMConfig{Dir: dir, Prompts: f.lmPrompts, MaxTokens: f.lmTokens, Walk: walk}
	if f.lmPrecisions != "" {
		for _, s := range strings.Split(f.lmPrecisions, ",") {
			p, err := precision.Parse(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("--lm-precisions: %w", err)
			}
			c.Precisions = append(c.Precisions, p)
		}
	}
	return c, nil
}

func parseDims(s string) ([]int, error) {
	var ds []int
	for _, f := range strings.Split(s, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--dims %q: %q is not a positive width", s, f)
		}
		ds = append(ds, d)
	}
	if len(ds) < 2 {
		return nil, fmt.Errorf("--dims %q: need an input width and at least one layer", s)
	}
	return ds, nil
}
