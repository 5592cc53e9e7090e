package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/demo"
)

func runDemo(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	jobs := fs.Int("jobs", 50000, "jobs to publish")
	workers := fs.Int("workers", 2, "workers to run in this process")
	rows := fs.Int("rows", 8, "rows per job are drawn from 1..rows")
	dims := fs.String("dims", "64,256,256,10", "the synthesised model's widths: input, then each layer's output")
	bad := fs.Int("bad-every", 250, "every Nth job is invalid on purpose (0: none)")
	rate := fs.Float64("rate", 0, "publish at this many jobs/s (0: as fast as the stream takes them, a burst)")
	maxErr := fs.Float64("max-error", 0.25, "the demo model's accuracy target (relative L2 error); its fp8 error is about 0.07 (0.1 at worst), fp4's 0.27")
	sample := fs.Float64("sample", 0.25, "fraction of batches the quality loop checks (GEARBOX_QUALITY_SAMPLE is for workers)")
	cooldown := fs.Duration("cooldown", time.Second, "least time between a policy change and the next step down")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ds, err := parseDims(*dims)
	if err != nil {
		return err
	}
	if *bad == 0 {
		*bad = -1
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
	wc.Quality.Sample, wc.Quality.Control, wc.Quality.Rules.Cooldown = *sample, true, *cooldown
	listen := cfg.EmbeddedListen
	fmt.Fprintf(os.Stderr, "gearbox demo: %d jobs, %d workers on %s, model %s, embedded NATS on %s\n",
		*jobs, *workers, backend.Name(), *dims, listen)
	sum, err := demo.Run(ctx, demo.Config{
		Jobs: *jobs, Workers: *workers, MaxRows: *rows, Dims: ds, BadEvery: *bad, Rate: *rate, MaxError: *maxErr,
		Listen: listen, Worker: wc, Backend: backend, Progress: os.Stderr, Log: log,
	})
	if err != nil {
		return err
	}
	fmt.Println()
	sum.Print(os.Stdout)
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
