package lmbench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// ErrInvalidConfig is wrapped by the errors of a Config that cannot run.
var ErrInvalidConfig = errors.New("lmbench: invalid config")

// Model is one language model of the workload.
type Model struct {
	// Dir is its checkpoint directory (Hugging Face layout; see
	// lm.Load). Required.
	Dir string
	// MaxKL is its quality target: the largest mean per-token KL (nats)
	// against the reference the auto phase may serve, set as the policy's
	// max_error. In (0, 1]. Required.
	MaxKL float64
	// Label names its role in the tables ("tight", "loose"); optional.
	Label string
}

// The phases a run may have (Config.Phases), run in this order.
const (
	// PhaseAuto serves every job at precision auto, the quality loop live.
	PhaseAuto = "auto"
	// PhasePinned serves every job pinned at Config.Pinned, no quality
	// loop.
	PhasePinned = "pinned"
	// PhaseBare runs the pinned phase's jobs (the same sequences, at the
	// same precision, with the same in-flight limit) straight through the
	// engines a worker would start, with no queue: the bare engine loop
	// the worker's queue overhead is measured against. It needs
	// PhasePinned.
	PhaseBare = "bare"
)

// phaseOrder is the order phases run in.
var phaseOrder = []string{PhaseAuto, PhasePinned, PhaseBare}

// Config configures a run. Zero fields take the defaults in comments.
type Config struct {
	// Backend is the device the workers and the bare phase run on;
	// required unless Backends is set. It must run language models.
	Backend kernels.Backend
	// Backends, when set, are several devices (one backend per GPU) that
	// the workers spread over: worker i runs on Backends[i mod
	// len(Backends)]. Backend is then Backends[0], where the bare phase
	// runs.
	Backends []kernels.Backend
	Models   []Model // at least one; distinct model names
	Jobs     int     // jobs of each phase (default 200)
	Seed     uint64  // the job list's seed (default 1)
	// PromptMin and PromptMax bound each prompt's length in tokens,
	// drawn uniformly (default 64 and 2,048).
	PromptMin, PromptMax int
	// OutputMin and OutputMax bound each job's max_tokens, drawn
	// uniformly (default 16 and 512).
	OutputMin, OutputMax int
	// InFlight is the most jobs published and not yet answered (default
	// 64): the producer waits for a result before publishing more. A
	// policy change applies to auto jobs admitted after it, so this also
	// bounds how many jobs run at a precision the controller has left.
	InFlight int
	// Temperature is every job's temperature (default 0: greedy); above
	// 0 each job samples with a seed of its own, the same in both phases.
	Temperature float64
	// Workers is how many workers share the backend, or Backends in turn
	// (default 1), each on its own connection.
	Workers int
	// Worker is the template of the workers' configuration (streams, KV
	// cache, token budget); its Quality is replaced by Quality in the
	// auto phase and by no checks at all in the pinned one.
	Worker worker.Config
	// Quality is the auto phase's quality loop (Sample or Interval must
	// be set, and Control on).
	Quality quality.Config
	// Start is the precision the auto phase's policies start at (default
	// bf16); Pinned the pinned phase's jobs' precision (default bf16).
	Start, Pinned precision.Format
	// Phases are the phases to run, of PhaseAuto, PhasePinned and
	// PhaseBare, each at most once; they run in that order (default auto
	// and pinned).
	Phases []string
	// NoWarmPass skips the warm pass: with PhaseBare, the bare loop runs
	// the jobs once, untimed, before the pinned phase (default), so that
	// the per-shape set-up a backend does on first meeting a step's size
	// (the CUDA backend's GEMM plans) is not charged to the phase that
	// happens to run first.
	NoWarmPass bool
	// Slices cuts each phase into this many equal slices for the
	// precision mix (default 10).
	Slices int
	// StoreDir holds the embedded server's JetStream files (default: a
	// temporary directory, removed after the run).
	StoreDir string
	// Energy, when set, reads a cumulative energy counter in joules (the
	// GPU's, from NVML).
	Energy func() (float64, error)
	// Progress, when set, receives a line per step of the run.
	Progress io.Writer
	// Profile, when set, is called as each phase's clock starts, with the
	// phase's name; the function it returns is called as the clock stops
	// (for a CPU profile or an execution trace of the timed part alone).
	Profile func(phase string) (stop func() error, err error)
	// Timeout bounds each phase, warm-up included (default 30 minutes).
	Timeout time.Duration
}

func (c *Config) defaults() {
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&c.Jobs, 200)
	def(&c.PromptMin, 64)
	def(&c.PromptMax, 2048)
	def(&c.OutputMin, 16)
	def(&c.OutputMax, 512)
	def(&c.InFlight, 64)
	def(&c.Workers, 1)
	def(&c.Slices, 10)
	if len(c.Backends) == 0 && c.Backend != nil {
		c.Backends = []kernels.Backend{c.Backend}
	}
	if len(c.Backends) > 0 {
		c.Backend = c.Backends[0]
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start == "" {
		c.Start = precision.BF16
	}
	if c.Pinned == "" {
		c.Pinned = precision.BF16
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Minute
	}
	if len(c.Phases) == 0 {
		c.Phases = []string{PhaseAuto, PhasePinned}
	}
}

// runs reports whether the run has the phase.
func (c *Config) runs(phase string) bool { return slices.Contains(c.Phases, phase) }

// validate checks what needs no model; the lengths against each model's
// context are checked once the models are loaded (checkModel).
func (c *Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Backend == nil || slices.Contains(c.Backends, nil):
		return bad("no backend")
	case len(c.Models) == 0:
		return bad("no models")
	case c.Jobs < 1:
		return bad("jobs %d must be ≥ 1", c.Jobs)
	case c.PromptMin < 1 || c.PromptMax < c.PromptMin:
		return bad("prompt tokens %d to %d: want 1 ≤ min ≤ max", c.PromptMin, c.PromptMax)
	case c.OutputMin < 1 || c.OutputMax < c.OutputMin:
		return bad("output tokens %d to %d: want 1 ≤ min ≤ max", c.OutputMin, c.OutputMax)
	case c.InFlight < 1:
		return bad("in-flight limit %d must be ≥ 1", c.InFlight)
	case !(c.Temperature >= 0 && c.Temperature <= 100):
		return bad("temperature %g must be in [0, 100]", c.Temperature)
	case c.Workers < 1:
		return bad("workers %d must be ≥ 1", c.Workers)
	case c.Slices < 1:
		return bad("slices %d must be ≥ 1", c.Slices)
	}
	seen := map[string]bool{}
	for _, ph := range c.Phases {
		if !slices.Contains(phaseOrder, ph) {
			return bad("phase %q: want %s, %s or %s", ph, PhaseAuto, PhasePinned, PhaseBare)
		}
		if seen[ph] {
			return bad("phase %s given twice", ph)
		}
		seen[ph] = true
	}
	if seen[PhaseBare] && !seen[PhasePinned] {
		return bad("the bare phase needs the pinned phase: it measures the worker's against the bare engine loop on the same jobs")
	}
	if seen[PhaseAuto] {
		if !c.Quality.Enabled() || !c.Quality.Control {
			return bad("the auto phase needs the quality loop: a sample rate or interval, and the controller on")
		}
		if err := c.Quality.Validate(); err != nil {
			return bad("%v", err)
		}
	}
	for _, be := range c.Backends {
		if _, ok := be.(kernels.LM); !ok {
			return bad("backend %s runs no language models", be.Name())
		}
	}
	for _, p := range []struct {
		what string
		f    precision.Format
	}{{"start", c.Start}, {"pinned", c.Pinned}} {
		if !p.f.Valid() {
			return bad("%s precision %q is not a concrete precision", p.what, p.f)
		}
		for _, be := range c.Backends {
			if !kernels.Supports(be, p.f) {
				return bad("%s precision %s: backend %s does not run it", p.what, p.f, be.Name())
			}
		}
	}
	for i, m := range c.Models {
		if m.Dir == "" {
			return bad("model %d: no checkpoint directory", i+1)
		}
		if !(m.MaxKL > 0 && m.MaxKL <= 1) {
			return bad("model %s: KL target %g must be in (0, 1]", m.Dir, m.MaxKL)
		}
	}
	return nil
}
