package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	rtrace "runtime/trace"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/e2e"
	"github.com/gearbox-inference/gearbox/precision"
)

// e2eFlags are bench e2e's flags.
type e2eFlags struct {
	dims, precisions, jsonOut, cpuProfile, trace, plot string
	inputDType, outputDType                            string
	rows, jobs, batchRows, workers, reps               int
	bareCallers, rawStreams                            int
	minTime                                            time.Duration
	raw                                                bool
}

func newBenchE2ECmd(a *app) *cobra.Command {
	var f e2eFlags
	c := &cobra.Command{
		Use:   "e2e [flags]",
		Short: "The worker with the embedded server vs the bare backend loop",
		Long: `The worker, on its own embedded NATS server (GEARBOX_NATS_URL is not used), vs
Backend.Forward in a loop, on the same batches, per precision, on GEARBOX_DEVICE.
With GEARBOX_DEVICE=cuda (or auto) on a host of several GPUs, worker i and
bare caller i run on GPU i mod the GPUs visible: --workers N --bare-callers N
puts one of each on each of N GPUs, and the energy is the sum over the GPUs
opened.`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchE2E(cmd.Context(), &a.cfg, a.log, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.dims, "dims", "1024,4096,1024", "the synthesised model's widths: input, then each layer's output")
	fs.StringVar(&f.precisions, "precisions", "", "comma-separated precisions (default: every one the backend supports)")
	fs.IntVar(&f.rows, "rows", 16, "rows per job")
	fs.IntVar(&f.jobs, "jobs", 2000, "jobs per repetition")
	fs.IntVar(&f.batchRows, "max-batch-rows", 0, "most rows in a batch (default GEARBOX_MAX_BATCH_ROWS)")
	fs.IntVar(&f.workers, "workers", 1, "workers sharing the backend (with GEARBOX_DEVICE=cuda: spread over the GPUs)")
	fs.IntVar(&f.bareCallers, "bare-callers", 1, "goroutines calling Forward concurrently in the bare loop (with GEARBOX_DEVICE=cuda: spread over the GPUs)")
	fs.IntVar(&f.reps, "reps", 3, "repetitions of each side; medians are reported")
	fs.DurationVar(&f.minTime, "min-time", time.Second, "least time of one bare repetition (it repeats the batches until then)")
	fs.StringVar(&f.inputDType, "input-dtype", "f32", "element type of the jobs' input tensors: f32, bf16 or f16 (the inputs are rounded to it; the bare loop gets the same values)")
	fs.StringVar(&f.outputDType, "output-dtype", "f32", "the jobs' output_dtype: f32, bf16 or f16 (the raw side's result is that size)")
	fs.StringVar(&f.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&f.plot, "plot", "", "also draw jobs/s per precision, worker, bare and raw, to this file (.png or .svg)")
	fs.BoolVar(&f.raw, "raw", true, "also run the raw-JetStream side (the same jobs and result sizes with no worker: the transport's ceiling)")
	fs.IntVar(&f.rawStreams, "raw-streams", 1, "above 1, also run the raw side with its jobs spread over this many job and result streams (max(--workers, N) consumers)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of each timed worker repetition to this file, -<precision>-<rep> inserted before its extension")
	fs.StringVar(&f.trace, "trace", "", "write an execution trace (go tool trace) of each timed worker repetition to this file, -<precision>-<rep> inserted before its extension")
	return c
}

// benchE2E runs the worker with the embedded server against the bare
// backend loop on the same batches (internal/e2e), per precision.
func benchE2E(ctx context.Context, cfg *config, log zerolog.Logger, f e2eFlags, stdout, stderr io.Writer) error {
	ds, err := parseDims(f.dims)
	if err != nil {
		return err
	}
	var ps []precision.Format
	if f.precisions != "" {
		for _, s := range strings.Split(f.precisions, ",") {
			p, err := precision.Parse(s)
			if err != nil || !p.Valid() {
				return fmt.Errorf("--precisions: %q is not a concrete precision", s)
			}
			ps = append(ps, p)
		}
	}
	in, err := parseDType("--input-dtype", f.inputDType)
	if err != nil {
		return err
	}
	out, err := parseDType("--output-dtype", f.outputDType)
	if err != nil {
		return err
	}
	if f.rawStreams < 1 || f.rawStreams > 1 && !f.raw {
		return fmt.Errorf("--raw-streams: %d; want 1, or more with --raw", f.rawStreams)
	}
	subj, err := cfg.subjects()
	if err != nil {
		return err
	}
	// With GEARBOX_DEVICE=cuda (or auto) worker i and bare caller i run on
	// GPU i mod the GPUs visible, as in gearbox worker.
	place, err := openBackends(cfg.Device, max(f.workers, f.bareCallers, 1), log)
	if err != nil {
		return err
	}
	defer place.Close()
	bc := e2e.Config{
		Backends: place.Backends, Dims: ds, Precisions: ps, RowsPerJob: f.rows, Jobs: f.jobs,
		Reps: f.reps, MinTime: f.minTime, Workers: f.workers, BareCallers: f.bareCallers, Worker: cfg.worker(subj), Progress: stderr,
		Raw: f.raw, RawStreams: f.rawStreams, WorkerHook: workerHook(f.cpuProfile, f.trace), InputDType: in, OutputDType: out,
	}
	if f.batchRows != 0 {
		bc.Worker.MaxBatchRows = f.batchRows
	}
	gpus := openGPUMons(place.Backends, log)
	defer gpus.Close()
	bc.Energy = gpus.energy()
	rep, err := e2e.Run(ctx, bc)
	if err != nil {
		return err
	}
	rep.GPU = gpus.name()
	return writeReport(stdout, rep, f.plot, func(path string) error { return plotE2E(path, rep) }, f.jsonOut)
}

// parseDType is a tensor element type flag's value: f32, bf16 or f16.
func parseDType(flag, s string) (gearbox.DType, error) {
	if d := gearbox.DType(s); d.Size() != 0 {
		return d, nil
	}
	return "", fmt.Errorf("%s: %q is not one of f32, bf16, f16", flag, s)
}

// workerHook profiles and traces each timed worker repetition, into
// cpuProfile and trace (either may be empty) with -<precision>-<rep>
// inserted before their extensions; nil when both are empty.
func workerHook(cpuProfile, trace string) func(precision.Format, int) (func() error, error) {
	if cpuProfile == "" && trace == "" {
		return nil
	}
	return func(p precision.Format, rep int) (func() error, error) {
		var stops []func() error
		stop := func() error {
			var errs []error
			for _, s := range stops {
				errs = append(errs, s())
			}
			return errors.Join(errs...)
		}
		for _, o := range []struct {
			path  string
			start func(io.Writer) error
			stop  func()
		}{{cpuProfile, pprof.StartCPUProfile, pprof.StopCPUProfile}, {trace, rtrace.Start, rtrace.Stop}} {
			if o.path == "" {
				continue
			}
			ext := filepath.Ext(o.path)
			f, err := os.Create(fmt.Sprintf("%s-%s-%d%s", strings.TrimSuffix(o.path, ext), p, rep, ext))
			if err != nil {
				return nil, errors.Join(err, stop())
			}
			if err := o.start(f); err != nil {
				f.Close()
				return nil, errors.Join(err, stop())
			}
			stops = append(stops, func() error { o.stop(); return f.Close() })
		}
		return stop, nil
	}
}
