package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/internal/e2e"
	"github.com/gearbox-inference/gearbox/precision"
)

// benchE2E runs the worker with the embedded server against the bare
// backend loop on the same batches (internal/e2e), per precision.
func benchE2E(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("bench e2e", flag.ContinueOnError)
	dims := fs.String("dims", "1024,4096,1024", "the synthesised model's widths: input, then each layer's output")
	precs := fs.String("precisions", "", "comma-separated precisions (default: every one the backend supports)")
	rows := fs.Int("rows", 16, "rows per job")
	jobs := fs.Int("jobs", 2000, "jobs per repetition")
	batchRows := fs.Int("max-batch-rows", cfg.MaxBatchRows, "most rows in a batch (default GEARBOX_MAX_BATCH_ROWS)")
	workers := fs.Int("workers", 1, "workers sharing the backend")
	reps := fs.Int("reps", 3, "repetitions of each side; medians are reported")
	minTime := fs.Duration("min-time", time.Second, "least time of one bare repetition (it repeats the batches until then)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (bare and worker sides) to this file")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gearbox bench e2e [flags]\n\nThe worker, on its own embedded NATS server (GEARBOX_NATS_URL is not used), vs\nBackend.Forward in a loop, on the same batches, per precision, on GEARBOX_DEVICE.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ds, err := parseDims(*dims)
	if err != nil {
		return err
	}
	var ps []precision.Format
	if *precs != "" {
		for _, s := range strings.Split(*precs, ",") {
			p, err := precision.Parse(s)
			if err != nil || !p.Valid() {
				return fmt.Errorf("--precisions: %q is not a concrete precision", s)
			}
			ps = append(ps, p)
		}
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
	bc := e2e.Config{
		Backend: backend, Dims: ds, Precisions: ps, RowsPerJob: *rows, Jobs: *jobs,
		Reps: *reps, MinTime: *minTime, Workers: *workers, Worker: cfg.worker(subj), Progress: os.Stderr,
	}
	bc.Worker.MaxBatchRows = *batchRows
	gpu := openGPUMon(backend.Name(), log)
	if gpu != nil {
		defer gpu.Close()
		bc.Energy = gpu.Energy
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := e2e.Run(ctx, bc)
	if err != nil {
		return err
	}
	if gpu != nil {
		rep.GPU = gpu.Name()
	}
	fmt.Println()
	rep.Print(os.Stdout)
	if *jsonOut != "" {
		f, err := os.Create(*jsonOut)
		if err != nil {
			return err
		}
		if err := rep.WriteJSON(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}
