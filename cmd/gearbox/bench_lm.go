package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/internal/lmbench"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmFlags are bench lm's flags.
type lmFlags struct {
	tight, loose, start, pinned, storeDir string
	jsonOut, plot, cpuProfile, trace      string
	phases                                []string
	tightKL, looseKL, temperature, sample float64
	budget                                float64
	jobs, promptMin, promptMax, outputMin int
	outputMax, inFlight, workers, slices  int
	minSamples                            int
	warmPass                              bool
	seed                                  uint64
	cooldown, timeout                     time.Duration
}

func newBenchLMCmd(a *app) *cobra.Command {
	var f lmFlags
	c := &cobra.Command{
		Use:   "lm --tight DIR --loose DIR [flags]",
		Short: "Two language models through the queue: precision auto vs pinned at bf16",
		Long: `A mixed generate workload on two language models (checkpoint directories, pushed
to the object store of an embedded NATS server; GEARBOX_NATS_URL is not used),
served by the worker on GEARBOX_DEVICE in two phases on the same seeded jobs:
every job at precision auto with the quality loop live (each model's policy
set to --start with its KL target), then every job at bf16 with no quality loop.
Reports jobs/s, output tokens/s, joules per 1,000 jobs (NVML, on a GPU), the
precision mix over time and every quality window against its target.
With GEARBOX_DEVICE=cuda (or auto) on a host of several GPUs, worker i runs
on GPU i mod the GPUs visible (--workers N: one on each of N GPUs), the bare
phase on the first, and the energy is the sum over the GPUs opened.

--phases picks the phases: auto, pinned (at --pinned, default bf16) and bare.
The bare phase runs the pinned phase's jobs (the same prompts, max_tokens,
sampling, precision and in-flight limit) straight through the engines a
worker starts, with no NATS: the report then gives the worker's output
tokens/s and jobs/s over the bare engine loop's (the queue overhead), and
how many jobs generated the same tokens in both, what each phase's engines
did (steps, tokens a step, time in steps, idle and between steps) and how a
job's time split (to its engine, in it, back). Before the pinned phase the
bare loop runs the jobs once untimed (--warm-pass=false skips it), so that
per-shape set-up on the GPU is paid before either clock.

The workers' other settings (KV cache, token budget, quality rules) come from
the GEARBOX_* variables; --quality-sample, --quality-budget,
--quality-cooldown and --quality-min-samples replace GEARBOX_QUALITY_SAMPLE,
_BUDGET, _COOLDOWN and _MIN_SAMPLES, whose defaults suit a worker that runs
for days, not minutes. The auto phase's report says how long its checks took.`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchLM(cmd.Context(), &a.cfg, a.log, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.tight, "tight", "", "checkpoint directory of the model with the tight quality target (required)")
	fs.StringVar(&f.loose, "loose", "", "checkpoint directory of the model with the loose quality target (required)")
	fs.Float64Var(&f.tightKL, "tight-kl", lm.DefaultMaxKL, "the tight model's target: mean per-token KL against its reference, in nats")
	fs.Float64Var(&f.looseKL, "loose-kl", 0.1, "the loose model's target, as --tight-kl")
	fs.IntVar(&f.jobs, "jobs", 200, "jobs of each phase, each for one of the two models at random")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the job list (models, prompt tokens, lengths)")
	fs.IntVar(&f.promptMin, "prompt-min", 64, "fewest prompt tokens of a job")
	fs.IntVar(&f.promptMax, "prompt-max", 2048, "most prompt tokens of a job")
	fs.IntVar(&f.outputMin, "output-min", 16, "least max_tokens of a job")
	fs.IntVar(&f.outputMax, "output-max", 512, "most max_tokens of a job")
	fs.IntVar(&f.inFlight, "in-flight", 64, "most jobs published and not yet answered")
	fs.Float64Var(&f.temperature, "temperature", 0, "jobs' temperature (0: greedy; otherwise a seed per job)")
	fs.IntVar(&f.workers, "workers", 1, "workers sharing the backend (with GEARBOX_DEVICE=cuda: spread over the GPUs; the bare phase runs on the first)")
	fs.IntVar(&f.slices, "slices", 10, "time slices of each phase in the precision mix")
	fs.StringVar(&f.start, "start", "bf16", "the precision the auto phase's policies start at")
	fs.StringVar(&f.pinned, "pinned", "bf16", "the precision of the pinned and bare phases' jobs")
	fs.StringSliceVar(&f.phases, "phases", []string{lmbench.PhaseAuto, lmbench.PhasePinned}, "phases to run, in the order auto, pinned, bare: bare is the pinned phase's jobs through the engines without the queue, and needs pinned")
	fs.BoolVar(&f.warmPass, "warm-pass", true, "with the bare phase, run its jobs once untimed before the pinned phase, so that per-shape set-up (GEMM plans) is paid before either clock")
	fs.Float64Var(&f.sample, "quality-sample", 0.25, "fraction of generations the auto phase checks")
	fs.Float64Var(&f.budget, "quality-budget", 0, "most fraction of the time a worker's checks may take (0: unbounded, so that reports come within seconds)")
	fs.DurationVar(&f.cooldown, "quality-cooldown", 10*time.Second, "least time between a policy change and a step down")
	fs.IntVar(&f.minSamples, "quality-min-samples", 0, "reports a step down needs (default GEARBOX_QUALITY_MIN_SAMPLES)")
	fs.StringVar(&f.storeDir, "store-dir", "", "directory for the embedded server's JetStream files (default: a temporary one, removed after)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Minute, "longest a phase may take, warm-up included")
	fs.StringVar(&f.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of each phase's timed part to this file, -<phase>-1 inserted before its extension")
	fs.StringVar(&f.trace, "trace", "", "write an execution trace of each phase's timed part to this file, -<phase>-1 inserted before its extension")
	fs.StringVar(&f.plot, "plot", "", "also draw the precision mix over time and the phases' bars to this file (.png or .svg)")
	return c
}

// benchLM runs internal/lmbench with the two models and the workers'
// settings from the environment.
func benchLM(ctx context.Context, cfg *config, log zerolog.Logger, f lmFlags, stdout, stderr io.Writer) error {
	if f.tight == "" || f.loose == "" {
		return usageError{errors.New("--tight and --loose are required: the two models' checkpoint directories")}
	}
	start, err := precision.Parse(f.start)
	if err != nil || !start.Valid() {
		return usageError{fmt.Errorf("--start %q is not a concrete precision", f.start)}
	}
	pinned, err := precision.Parse(f.pinned)
	if err != nil || !pinned.Valid() {
		return usageError{fmt.Errorf("--pinned %q is not a concrete precision", f.pinned)}
	}
	subj, err := cfg.subjects()
	if err != nil {
		return err
	}
	// With GEARBOX_DEVICE=cuda (or auto) worker i runs on GPU i mod the
	// GPUs visible, as in gearbox worker; the bare phase on the first.
	place, err := openBackends(cfg.Device, max(f.workers, 1), log)
	if err != nil {
		return err
	}
	defer place.Close()
	q := cfg.quality()
	q.Sample, q.Budget, q.Rules.Cooldown, q.Control = f.sample, f.budget, f.cooldown, true
	if f.minSamples != 0 {
		q.Rules.MinSamples = f.minSamples
	}
	bc := lmbench.Config{
		Backends: place.Backends,
		Models:   []lmbench.Model{{Dir: f.tight, MaxKL: f.tightKL, Label: "tight"}, {Dir: f.loose, MaxKL: f.looseKL, Label: "loose"}},
		Jobs:     f.jobs, Seed: f.seed, PromptMin: f.promptMin, PromptMax: f.promptMax, OutputMin: f.outputMin, OutputMax: f.outputMax,
		InFlight: f.inFlight, Temperature: f.temperature, Workers: f.workers, Slices: f.slices,
		Worker: cfg.worker(subj), Quality: q, Start: start, Pinned: pinned, Phases: f.phases, NoWarmPass: !f.warmPass, StoreDir: f.storeDir, Progress: stderr, Timeout: f.timeout,
	}
	if hook := workerHook(f.cpuProfile, f.trace); hook != nil {
		bc.Profile = func(phase string) (func() error, error) { return hook(precision.Format(phase), 1) }
	}
	gpus := openGPUMons(place.Backends, log)
	defer gpus.Close()
	bc.Energy = gpus.energy()
	rep, err := lmbench.Run(ctx, bc)
	if errors.Is(err, lmbench.ErrInvalidConfig) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	rep.GPU = gpus.name()
	return writeReport(stdout, rep, f.plot, func(path string) error { return plotLM(path, rep) }, f.jsonOut)
}
