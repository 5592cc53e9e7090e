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
)

// demoFlags are the demo's flags.
type demoFlags struct {
	jobs, workers, rows, bad int
	dims                     string
	rate, maxErr, sample     float64
	cooldown                 time.Duration
}

func newDemoCmd(a *app) *cobra.Command {
	var f demoFlags
	c := &cobra.Command{
		Use:   "demo",
		Short: "Embedded NATS, in-process workers, real load, then a summary",
		Long: `Starts an embedded NATS server (on GEARBOX_EMBEDDED_LISTEN) and in-process
workers, synthesises a model, publishes jobs with a mix of requested
precisions (a few invalid on purpose), and prints throughput, latency,
batching, errors and the quality loop's policy changes.`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), &a.cfg, a.log, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := c.Flags()
	fs.IntVar(&f.jobs, "jobs", 50000, "jobs to publish")
	fs.IntVar(&f.workers, "workers", 2, "workers to run in this process")
	fs.IntVar(&f.rows, "rows", 8, "rows per job are drawn from 1..rows")
	fs.StringVar(&f.dims, "dims", "64,256,256,10", "the synthesised model's widths: input, then each layer's output")
	fs.IntVar(&f.bad, "bad-every", 250, "every Nth job is invalid on purpose (0: none)")
	fs.Float64Var(&f.rate, "rate", 0, "publish at this many jobs/s (0: as fast as the stream takes them, a burst)")
	fs.Float64Var(&f.maxErr, "max-error", 0.25, "the demo model's accuracy target (relative L2 error); its fp8 error is about 0.07 (0.1 at worst), fp4's 0.27")
	fs.Float64Var(&f.sample, "sample", 0.25, "fraction of batches the quality loop checks (GEARBOX_QUALITY_SAMPLE is for workers)")
	fs.DurationVar(&f.cooldown, "cooldown", time.Second, "least time between a policy change and the next step down")
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
	// A short run: check more batches and let the policy move sooner than
	// a production worker would.
	wc.Quality.Sample, wc.Quality.Control, wc.Quality.Rules.Cooldown = f.sample, true, f.cooldown
	listen := cfg.EmbeddedListen
	fmt.Fprintf(stderr, "gearbox demo: %d jobs, %d workers on %s, model %s, embedded NATS on %s\n",
		f.jobs, f.workers, backend.Name(), f.dims, listen)
	sum, err := demo.Run(ctx, demo.Config{
		Jobs: f.jobs, Workers: f.workers, MaxRows: f.rows, Dims: ds, BadEvery: bad, Rate: f.rate, MaxError: f.maxErr,
		Listen: listen, Worker: wc, Backend: backend, Progress: stderr, Log: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	sum.Print(stdout)
	if n := sum.Unexpected(); n > 0 {
		return fmt.Errorf("%d results did not match their jobs", n)
	}
	return nil
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
