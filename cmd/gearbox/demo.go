package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/demo"
)

func runDemo(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	jobs := fs.Int("jobs", 20000, "jobs to publish")
	workers := fs.Int("workers", 2, "workers to run in this process")
	rows := fs.Int("rows", 8, "rows per job are drawn from 1..rows")
	dims := fs.String("dims", "64,256,256,10", "the synthesised model's widths: input, then each layer's output")
	bad := fs.Int("bad-every", 250, "every Nth job is invalid on purpose (0: none)")
	rate := fs.Float64("rate", 0, "publish at this many jobs/s (0: as fast as the stream takes them, a burst)")
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
	listen := cfg.EmbeddedListen
	fmt.Fprintf(os.Stderr, "gearbox demo: %d jobs, %d workers on %s, model %s, embedded NATS on %s\n",
		*jobs, *workers, backend.Name(), *dims, listen)
	sum, err := demo.Run(ctx, demo.Config{
		Jobs: *jobs, Workers: *workers, MaxRows: *rows, Dims: ds, BadEvery: *bad, Rate: *rate,
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
