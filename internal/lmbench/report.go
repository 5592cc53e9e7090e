package lmbench

import (
	"encoding/json"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
)

// Report is a run's measurements, ready for a table or JSON.
type Report struct {
	Date   time.Time   `json:"date"`
	Device string      `json:"device"`
	GPU    string      `json:"gpu,omitempty"` // set by the caller when it knows
	Go     string      `json:"go"`
	CPUs   int         `json:"cpus"`
	Models []ModelInfo `json:"models"`
	// The workload, the same in both phases.
	Jobs        int     `json:"jobs"`
	Seed        uint64  `json:"seed"`
	PromptMin   int     `json:"prompt_min"`
	PromptMax   int     `json:"prompt_max"`
	OutputMin   int     `json:"output_min"`
	OutputMax   int     `json:"output_max"`
	InFlight    int     `json:"in_flight"`
	Temperature float64 `json:"temperature"`
	Workers     int     `json:"workers"`
	// Quality is the auto phase's quality loop.
	Quality QualitySettings `json:"quality"`
	// Phases are those run, in their order: auto, the pinned precision,
	// bare.
	Phases []Phase `json:"phases"`
	// Ratio is auto over pinned; zero without both.
	Ratio Ratio `json:"ratio"`
	// Overhead is the queue's cost: the pinned phase's figures against
	// the bare engine loop's on the same jobs; absent without both.
	Overhead *Overhead `json:"overhead,omitempty"`
	// Violations counts the served and controller windows over their
	// target, in both phases.
	Violations int `json:"violations"`
}

// ModelInfo describes a model of the workload.
type ModelInfo struct {
	Name        string             `json:"name"`
	Label       string             `json:"label,omitempty"`
	Dir         string             `json:"dir"`
	Digest      string             `json:"digest"`
	Arch        string             `json:"arch"`
	Layers      int                `json:"layers"`
	Hidden      int                `json:"hidden"`
	Vocab       int                `json:"vocab"`
	Context     int                `json:"context"`
	Params      int64              `json:"params"`
	WeightBytes int64              `json:"weight_bytes"`
	MaxKL       float64            `json:"max_kl"`
	Ladder      []precision.Format `json:"ladder"`
	Reference   precision.Format   `json:"reference"`
	PushSeconds float64            `json:"push_s"`
}

// QualitySettings are the auto phase's quality loop settings.
type QualitySettings struct {
	Sample    float64 `json:"sample"`
	IntervalS float64 `json:"interval_s"`
	// Budget is the share of the time language-model checks may take (0:
	// unbounded).
	Budget     float64 `json:"budget"`
	Window     int     `json:"window"`
	MinSamples int     `json:"min_samples"`
	Margin     float64 `json:"margin"`
	CooldownS  float64 `json:"cooldown_s"`
}

// Phase is one phase's measurements.
type Phase struct {
	Name string `json:"name"`
	// Precision is what every job asked for (auto, or the pinned one).
	Precision precision.Format `json:"precision"`
	Jobs      int              `json:"jobs"`
	Answered  int              `json:"answered"`
	// Seconds runs from the first job's publish to the last result.
	Seconds            float64 `json:"seconds"`
	JobsPerSec         float64 `json:"jobs_per_s"`
	PromptTokens       int     `json:"prompt_tokens"`
	OutputTokens       int     `json:"output_tokens"`
	OutputTokensPerSec float64 `json:"output_tokens_per_s"`
	// Joules and JoulesPer1kJobs are absent when no energy counter was
	// read; Energy then says so.
	Joules          *float64 `json:"joules,omitempty"`
	JoulesPer1kJobs *float64 `json:"joules_per_1k_jobs,omitempty"`
	Energy          string   `json:"energy,omitempty"`
	// Models are the per-model counts.
	Models []ModelPhase `json:"models"`
	// Mix is the precision mix over time.
	Mix []Slice `json:"mix"`
	// Policies are the policy changes seen during the phase.
	Policies []PolicyChange `json:"policies,omitempty"`
	// Reports counts the quality reports of the phase's jobs; Windows
	// cuts them per model, role and precision.
	Reports    int      `json:"reports"`
	Windows    []Window `json:"windows,omitempty"`
	Violations int      `json:"violations"`
	// CheckSeconds is the time the workers' language-model checks took
	// (gearbox_quality_check_seconds_total), summed over the workers, of
	// the checks that ended while the clock ran; 0 without a quality
	// loop.
	CheckSeconds float64 `json:"check_seconds"`
	// Final is the controllers' view at the phase's end (auto only).
	Final []Final `json:"final,omitempty"`
	// ToEngineMs, InEngineMs and BackMs split a job's mean time from its
	// publish to its answer: until its engine took it (results'
	// queued_ms), in the engine (compute_ms) and from its end until the
	// answer was read. The bare phase, with no queue, has only
	// InEngineMs.
	ToEngineMs float64 `json:"to_engine_ms"`
	InEngineMs float64 `json:"in_engine_ms"`
	BackMs     float64 `json:"back_ms"`
	// Engines is what the engines did while the clock ran; absent where
	// they could not be read.
	Engines *Engines `json:"engines,omitempty"`
	// Tokens are each job's generated tokens, by the job's index in the
	// list (nil for a job not answered); not in the JSON.
	Tokens [][]int32 `json:"-"`
}

// ModelPhase is one model's share of a phase.
type ModelPhase struct {
	Name         string                   `json:"name"`
	Jobs         int                      `json:"jobs"`
	OutputTokens int                      `json:"output_tokens"`
	Precisions   map[precision.Format]int `json:"precisions"` // jobs served at each
}

// Slice is one slice of a phase: the jobs answered in it, per model and
// precision served.
type Slice struct {
	FromS float64                             `json:"from_s"`
	ToS   float64                             `json:"to_s"`
	Jobs  map[string]map[precision.Format]int `json:"jobs"`
}

// PolicyChange is a model's policy as it changed.
type PolicyChange struct {
	AtS       float64          `json:"at_s"`
	Model     string           `json:"model"`
	Precision precision.Format `json:"precision"`
	By        string           `json:"by"`
	Reason    string           `json:"reason"`
}

// Window is a window of quality observations of one model and precision:
// role served or candidate (up to the controller's window size of
// consecutive reports' served precision, or their candidate: the next
// cheaper rung in shadow), or controller (the window a controller change
// rested on, its evidence). A served or controller window whose Max is
// over Target is a violation: a served job's KL over the target, or the
// precision being served measured over it (the controller then steps up).
type Window struct {
	Model     string           `json:"model"`
	Role      string           `json:"role"`
	Precision precision.Format `json:"precision"`
	Metric    string           `json:"metric"`
	FromS     float64          `json:"from_s"`
	ToS       float64          `json:"to_s"`
	Reports   int              `json:"reports"`
	Mean      float64          `json:"mean"`
	Max       float64          `json:"max"`
	Target    float64          `json:"target"`
	Inside    bool             `json:"inside"`
}

// Final is a model's policy at the end of the auto phase, and why the
// controller holds it there.
type Final struct {
	Model     string           `json:"model"`
	Precision precision.Format `json:"precision"`
	Hold      string           `json:"hold,omitempty"`
	Reason    string           `json:"reason,omitempty"`
}

// Ratio is the auto phase's figures over the pinned phase's.
type Ratio struct {
	JobsPerSec         float64 `json:"jobs_per_s"`
	OutputTokensPerSec float64 `json:"output_tokens_per_s"`
	// JoulesPer1kJobs is absent without energy figures.
	JoulesPer1kJobs *float64 `json:"joules_per_1k_jobs,omitempty"`
}

// Overhead is the pinned phase (the worker, through the queue) against
// the bare phase (the same jobs straight through the engines).
type Overhead struct {
	// Worker and Bare name the phases compared.
	Worker string `json:"worker"`
	Bare   string `json:"bare"`
	// JobsPerSec and OutputTokensPerSec are the worker's over the bare
	// loop's: 1 is no overhead.
	JobsPerSec         float64 `json:"jobs_per_s"`
	OutputTokensPerSec float64 `json:"output_tokens_per_s"`
	// SameTokens counts the jobs whose generated tokens are the same in
	// both (every job, when both ran the same sequences greedily on
	// batch-invariant kernels), of Jobs.
	SameTokens int `json:"same_tokens"`
	Jobs       int `json:"jobs"`
}

func newReport(cfg Config, models []ModelInfo) *Report {
	r := cfg.Quality.Rules.WithDefaults()
	return &Report{
		Date: time.Now().UTC(), Device: kernels.Names(cfg.Backends...), Go: runtime.Version(), CPUs: runtime.NumCPU(), Models: models,
		Jobs: cfg.Jobs, Seed: cfg.Seed, PromptMin: cfg.PromptMin, PromptMax: cfg.PromptMax, OutputMin: cfg.OutputMin,
		OutputMax: cfg.OutputMax, InFlight: cfg.InFlight, Temperature: cfg.Temperature, Workers: cfg.Workers,
		Quality: QualitySettings{Sample: cfg.Quality.Sample, IntervalS: cfg.Quality.Interval.Seconds(), Budget: cfg.Quality.Budget, Window: r.Window,
			MinSamples: r.MinSamples, Margin: r.Margin, CooldownS: r.Cooldown.Seconds()},
	}
}

// finish computes the ratios and the violations.
func (r *Report) finish() {
	a, p, bare := r.phase(PhaseAuto), r.phase(PhasePinned), r.phase(PhaseBare)
	if a != nil && p != nil {
		r.Ratio.JobsPerSec = a.JobsPerSec / p.JobsPerSec
		r.Ratio.OutputTokensPerSec = a.OutputTokensPerSec / p.OutputTokensPerSec
		if a.JoulesPer1kJobs != nil && p.JoulesPer1kJobs != nil {
			q := *a.JoulesPer1kJobs / *p.JoulesPer1kJobs
			r.Ratio.JoulesPer1kJobs = &q
		}
	}
	if p != nil && bare != nil {
		o := &Overhead{Worker: p.Name, Bare: bare.Name, JobsPerSec: p.JobsPerSec / bare.JobsPerSec,
			OutputTokensPerSec: p.OutputTokensPerSec / bare.OutputTokensPerSec, Jobs: r.Jobs}
		for i := range min(len(p.Tokens), len(bare.Tokens)) {
			if p.Tokens[i] != nil && slices.Equal(p.Tokens[i], bare.Tokens[i]) {
				o.SameTokens++
			}
		}
		r.Overhead = o
	}
	r.Violations = 0
	for _, ph := range r.Phases {
		r.Violations += ph.Violations
	}
}

// phase returns the phase of kind PhaseAuto, PhasePinned or PhaseBare;
// nil if the run had none.
func (r *Report) phase(kind string) *Phase {
	for i := range r.Phases {
		ph := &r.Phases[i]
		switch {
		case kind == PhaseAuto && ph.Name == PhaseAuto, kind == PhaseBare && ph.Name == PhaseBare,
			kind == PhasePinned && ph.Name != PhaseAuto && ph.Name != PhaseBare:
			return ph
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
