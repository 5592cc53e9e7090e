package lmbench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/internal/lmbench"
	"github.com/gearbox-inference/gearbox/internal/lmfixtures"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// config is a small run on the fixtures: the quality loop checks every
// generation and steps on two reports, so the auto phase walks.
func config(t *testing.T, root string) lmbench.Config {
	t.Helper()
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return lmbench.Config{
		Backend: b,
		Models: []lmbench.Model{
			{Dir: filepath.Join(root, "llama"), MaxKL: 0.001, Label: "tight"},
			{Dir: filepath.Join(root, "qwen2"), MaxKL: 0.5, Label: "loose"},
		},
		Jobs: 60, PromptMin: 4, PromptMax: 24, OutputMin: 2, OutputMax: 12, InFlight: 4, Slices: 4,
		Worker:  worker.Config{KVBytes: 4 << 20},
		Quality: quality.Config{Sample: 1, Queue: 16, Control: true, Rules: quality.Rules{Window: 4, MinSamples: 2, Cooldown: time.Millisecond}},
		Timeout: 2 * time.Minute,
	}
}

// run runs cfg and returns the report and its tables, which it logs.
func run(t *testing.T, cfg lmbench.Config) (*lmbench.Report, *bytes.Buffer) {
	t.Helper()
	rep, err := lmbench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	return rep, &out
}

func TestRun(t *testing.T) {
	cfg := config(t, lmfixtures.Unpack(t))
	rep, out := run(t, cfg)

	if len(rep.Phases) != 2 || rep.Phases[0].Name != "auto" || rep.Phases[1].Name != "bf16" {
		t.Fatalf("phases %v; want auto, then bf16", rep.Phases)
	}
	names := []string{"llama", "qwen2"}
	for _, ph := range rep.Phases {
		if ph.Jobs != cfg.Jobs || ph.Answered != cfg.Jobs {
			t.Errorf("%s: %d of %d jobs answered; want %d sent and answered", ph.Name, ph.Answered, ph.Jobs, cfg.Jobs)
		}
		if !(ph.Seconds > 0 && ph.JobsPerSec > 0 && ph.OutputTokensPerSec > 0) {
			t.Errorf("%s: %.3gs, %.3g jobs/s, %.3g tok/s; want all > 0", ph.Name, ph.Seconds, ph.JobsPerSec, ph.OutputTokensPerSec)
		}
		if ph.JoulesPer1kJobs != nil || ph.Energy == "" {
			t.Errorf("%s: energy %v, %q; want none on the CPU, and a note saying so", ph.Name, ph.JoulesPer1kJobs, ph.Energy)
		}
		jobs, tokens, served := 0, 0, map[string]map[precision.Format]int{}
		for i, m := range ph.Models {
			if m.Name != names[i] {
				t.Errorf("%s: model %d is %s; want %s", ph.Name, i, m.Name, names[i])
			}
			jobs += m.Jobs
			tokens += m.OutputTokens
			n := 0
			for p, k := range m.Precisions {
				if !p.Valid() || k < 1 {
					t.Errorf("%s: %s served %d jobs at %q", ph.Name, m.Name, k, p)
				}
				if ph.Name == "bf16" && p != precision.BF16 {
					t.Errorf("bf16 phase: %s served %d jobs at %s", m.Name, k, p)
				}
				n += k
			}
			if n != m.Jobs {
				t.Errorf("%s: %s's precisions count %d jobs; want its %d", ph.Name, m.Name, n, m.Jobs)
			}
			served[m.Name] = m.Precisions
		}
		if jobs != ph.Answered || tokens != ph.OutputTokens {
			t.Errorf("%s: models count %d jobs, %d tokens; the phase %d, %d", ph.Name, jobs, tokens, ph.Answered, ph.OutputTokens)
		}
		if got, want := ph.JobsPerSec, float64(ph.Answered)/ph.Seconds; got != want {
			t.Errorf("%s: %g jobs/s; want %g", ph.Name, got, want)
		}
		// The mix covers the phase, and counts each job once, at a
		// precision that served its model.
		if len(ph.Mix) != cfg.Slices || ph.Mix[0].FromS != 0 || ph.Mix[len(ph.Mix)-1].ToS != ph.Seconds {
			t.Errorf("%s: %d slices from %v to %v; want %d over [0, %g]", ph.Name, len(ph.Mix), ph.Mix[0].FromS, ph.Mix[len(ph.Mix)-1].ToS, cfg.Slices, ph.Seconds)
		}
		inMix := 0
		for _, s := range ph.Mix {
			for m, ps := range s.Jobs {
				for p, k := range ps {
					if served[m][p] == 0 {
						t.Errorf("%s: slice %g–%g has %d %s jobs at %s, which served none", ph.Name, s.FromS, s.ToS, k, m, p)
					}
					inMix += k
				}
			}
		}
		if inMix != ph.Answered {
			t.Errorf("%s: the mix counts %d jobs; want %d", ph.Name, inMix, ph.Answered)
		}
	}

	auto, pinned := rep.Phases[0], rep.Phases[1]
	if auto.Reports == 0 || len(auto.Windows) == 0 || len(auto.Final) != 2 {
		t.Errorf("auto: %d reports, %d windows, %d final policies; want reports from checking every job, windows of them, 2 policies",
			auto.Reports, len(auto.Windows), len(auto.Final))
	}
	if pinned.Reports != 0 || len(pinned.Windows) != 0 {
		t.Errorf("bf16: %d reports; want none (no quality loop)", pinned.Reports)
	}
	if !(auto.CheckSeconds > 0) || pinned.CheckSeconds != 0 || !strings.Contains(out.String(), "language-model checks took") {
		t.Errorf("check seconds: auto %g, bf16 %g, or the auto phase's line missing; want > 0 with checks of every job, 0 without", auto.CheckSeconds, pinned.CheckSeconds)
	}
	over, reports := 0, 0
	for _, w := range auto.Windows {
		if w.Reports < 1 || w.Reports > 4 || w.Max < w.Mean || (w.Max <= w.Target) != w.Inside {
			t.Errorf("window %+v: want 1 to 4 reports, max ≥ mean, inside = max ≤ target", w)
		}
		if w.Role == "served" {
			reports += w.Reports
		}
		if w.Role != "candidate" && !w.Inside {
			over++
		}
	}
	if reports != auto.Reports || over != auto.Violations || rep.Violations != auto.Violations {
		t.Errorf("served windows hold %d reports, %d over; the phase says %d reports, %d violations (report: %d)", reports, over, auto.Reports, auto.Violations, rep.Violations)
	}
	// The loose model walks down from bf16 on its reports.
	if p := auto.Final[1].Precision; p != precision.FP8 && p != precision.FP4 {
		t.Errorf("qwen2, KL target 0.5, ends the auto phase at %s; want below bf16", p)
	}
	if r := rep.Ratio.JobsPerSec; r != auto.JobsPerSec/pinned.JobsPerSec || rep.Ratio.JoulesPer1kJobs != nil {
		t.Errorf("ratio %v; want jobs/s %g and no energy ratio", rep.Ratio, auto.JobsPerSec/pinned.JobsPerSec)
	}
	if !strings.Contains(out.String(), "headline, auto / bf16") || !strings.Contains(out.String(), "unavailable") {
		t.Errorf("the table lacks the headline or the energy note:\n%s", out.String())
	}

	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back lmbench.Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("the JSON does not decode: %v", err)
	}
	if len(back.Phases) != 2 || back.Phases[0].Answered != cfg.Jobs || !slices.EqualFunc(back.Models, rep.Models, func(a, b lmbench.ModelInfo) bool { return a.Name == b.Name }) {
		t.Errorf("decoded JSON %+v differs from the report", back)
	}
}

// TestRunBare: the pinned phase through the queue beside the bare phase,
// the same jobs straight through the engines: the report gives both
// phases' figures and their ratio, and every job generated the same
// greedy tokens in both (the CPU backend is batch-invariant, so they ran
// the same sequences whatever their batches).
func TestRunBare(t *testing.T) {
	cfg := config(t, lmfixtures.Unpack(t))
	cfg.Phases = []string{lmbench.PhaseBare, lmbench.PhasePinned} // run in their own order
	cfg.Jobs = 16
	var profiled []string
	cfg.Profile = func(phase string) (func() error, error) {
		profiled = append(profiled, phase+" start")
		return func() error { profiled = append(profiled, phase+" stop"); return nil }, nil
	}
	var progress bytes.Buffer
	cfg.Progress = &progress
	rep, out := run(t, cfg)
	// The warm pass runs the bare loop's jobs, untimed, before the pinned
	// phase.
	if w, p := strings.Index(progress.String(), "warm pass: 16 jobs"), strings.Index(progress.String(), "bf16 phase: warmed up"); w < 0 || p < w {
		t.Errorf("progress:\n%s\nwant the warm pass's 16 jobs before the pinned phase", progress.String())
	}

	if want := []string{"bf16 start", "bf16 stop", "bare start", "bare stop"}; !slices.Equal(profiled, want) {
		t.Errorf("Profile calls %q; want %q", profiled, want)
	}
	if len(rep.Phases) != 2 || rep.Phases[0].Name != "bf16" || rep.Phases[1].Name != "bare" {
		t.Fatalf("phases %v; want bf16, then bare", rep.Phases)
	}
	worker, bare := rep.Phases[0], rep.Phases[1]
	for _, ph := range rep.Phases {
		if ph.Answered != cfg.Jobs || ph.Precision != precision.BF16 || ph.Models[0].Precisions[precision.BF16]+ph.Models[1].Precisions[precision.BF16] != cfg.Jobs {
			t.Errorf("%s: %d of %d jobs answered, at %v; want all, at bf16", ph.Name, ph.Answered, cfg.Jobs, ph.Models)
		}
		if !(ph.JobsPerSec > 0 && ph.OutputTokensPerSec > 0) {
			t.Errorf("%s: %.3g jobs/s, %.3g tok/s; want both > 0", ph.Name, ph.JobsPerSec, ph.OutputTokensPerSec)
		}
		// The timed jobs' tokens, not the warm-up's: at most every output
		// token but each job's first (sampled by its last prefill) is a
		// decode (fewer after a preemption, whose recompute samples one).
		e := ph.Engines
		if e == nil || e.Engines != 2 || e.DecodeTokens < 1 || e.DecodeTokens > ph.OutputTokens-ph.Answered || e.PrefillTokens < 1 ||
			e.Steps < 1 || !(e.StepSeconds > 0) || e.IdleSeconds < 0 {
			t.Errorf("%s: engines %+v; want 2, 1 to %d decodes (output tokens less one a job), prefills, steps and their time",
				ph.Name, e, ph.OutputTokens-ph.Answered)
		}
		if !(ph.InEngineMs > 0) || ph.ToEngineMs < 0 || ph.BackMs < 0 {
			t.Errorf("%s: %.3g ms to the engine, %.3g in it, %.3g back; want time in it, none below 0", ph.Name, ph.ToEngineMs, ph.InEngineMs, ph.BackMs)
		}
	}
	if bare.ToEngineMs != 0 || bare.BackMs != 0 || !(worker.ToEngineMs > 0 && worker.BackMs > 0) {
		t.Errorf("to the engine and back: worker %.3g, %.3g ms; bare %.3g, %.3g; want time through the queue for the worker alone",
			worker.ToEngineMs, worker.BackMs, bare.ToEngineMs, bare.BackMs)
	}
	if worker.OutputTokens != bare.OutputTokens || worker.PromptTokens != bare.PromptTokens {
		t.Errorf("worker: %d prompt, %d output tokens; bare: %d, %d; want the same", worker.PromptTokens, worker.OutputTokens, bare.PromptTokens, bare.OutputTokens)
	}
	generated := 0
	for i := range cfg.Jobs {
		if worker.Tokens[i] == nil || !slices.Equal(worker.Tokens[i], bare.Tokens[i]) {
			t.Errorf("job %d: worker generated %v, bare engine %v; want the same", i, worker.Tokens[i], bare.Tokens[i])
		}
		if len(worker.Tokens[i]) > 0 {
			generated++
		}
	}
	if generated < cfg.Jobs/2 {
		t.Errorf("%d of %d jobs generated tokens; want most (the comparison means little on empty ones)", generated, cfg.Jobs)
	}
	o := rep.Overhead
	if o == nil {
		t.Fatal("no overhead in the report")
	}
	if o.Worker != "bf16" || o.Bare != "bare" || o.SameTokens != cfg.Jobs || o.Jobs != cfg.Jobs ||
		o.OutputTokensPerSec != worker.OutputTokensPerSec/bare.OutputTokensPerSec || o.JobsPerSec != worker.JobsPerSec/bare.JobsPerSec {
		t.Errorf("overhead %+v; want bf16 / bare, %d of %d same tokens, the phases' ratios", o, cfg.Jobs, cfg.Jobs)
	}
	if rep.Ratio != (lmbench.Ratio{}) {
		t.Errorf("ratio %+v without an auto phase; want none", rep.Ratio)
	}
	want := fmt.Sprintf("same tokens in %d of %d jobs", cfg.Jobs, cfg.Jobs)
	for _, line := range []string{"  bf16: 2 engine(s), ", "  bare: 2 engine(s), ", "a job's mean time: "} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the table lacks %q:\n%s", line, out.String())
		}
	}
	if !strings.Contains(out.String(), "queue overhead, worker at bf16 / bare engine loop") || !strings.Contains(out.String(), want) ||
		strings.Contains(out.String(), "headline") || strings.Contains(out.String(), "quality loop") {
		t.Errorf("the table lacks the overhead line (%q), or has a headline or quality settings:\n%s", want, out.String())
	}
}

// TestRunBareNoWarmPass: NoWarmPass leaves the warm pass out.
func TestRunBareNoWarmPass(t *testing.T) {
	cfg := config(t, lmfixtures.Unpack(t))
	cfg.Phases, cfg.Jobs, cfg.NoWarmPass = []string{lmbench.PhasePinned, lmbench.PhaseBare}, 8, true
	var progress bytes.Buffer
	cfg.Progress = &progress
	rep, _ := run(t, cfg)
	if strings.Contains(progress.String(), "warm pass") || rep.Overhead == nil {
		t.Errorf("progress:\n%s\noverhead %+v; want no warm pass, and the overhead", progress.String(), rep.Overhead)
	}
}

// tensorOnly is a backend without the LM ability (a wrapper hides it).
type tensorOnly struct{ kernels.Backend }

// With two backends the workers spread over them (worker i on backend
// i mod 2) and the report names both.
func TestRunOnTwoBackends(t *testing.T) {
	cfg := config(t, lmfixtures.Unpack(t))
	second := config(t, "").Backend
	cfg.Backends, cfg.Backend = []kernels.Backend{cfg.Backend, second}, nil
	cfg.Workers, cfg.Jobs, cfg.Phases = 2, 20, []string{lmbench.PhasePinned}
	rep, _ := run(t, cfg)
	if rep.Device != "cpu,cpu" || len(rep.Phases) != 1 || rep.Phases[0].Answered != cfg.Jobs {
		t.Errorf("device %q, phases %+v; want cpu,cpu and %d jobs answered", rep.Device, rep.Phases, cfg.Jobs)
	}
}

func TestConfigErrors(t *testing.T) {
	root := lmfixtures.Unpack(t)
	for _, tc := range []struct {
		name string
		edit func(*lmbench.Config)
		want string
	}{
		{"prompt range", func(c *lmbench.Config) { c.PromptMin, c.PromptMax = 10, 5 }, "prompt tokens 10 to 5"},
		{"output range", func(c *lmbench.Config) { c.OutputMin = -1 }, "output tokens -1"},
		{"in flight", func(c *lmbench.Config) { c.InFlight = -2 }, "in-flight limit -2"},
		{"target", func(c *lmbench.Config) { c.Models[0].MaxKL = 2 }, "KL target 2"},
		{"no quality loop", func(c *lmbench.Config) { c.Quality = quality.Config{} }, "needs the quality loop"},
		{"context", func(c *lmbench.Config) { c.PromptMax = 250 }, "context is 256 tokens"},
		{"same model twice", func(c *lmbench.Config) { c.Models[1].Dir = c.Models[0].Dir }, "both model llama"},
		{"bare alone", func(c *lmbench.Config) { c.Phases = []string{"bare"} }, "the bare phase needs the pinned phase"},
		{"unknown phase", func(c *lmbench.Config) { c.Phases = []string{"pinned", "fast"} }, `phase "fast"`},
		{"phase twice", func(c *lmbench.Config) { c.Phases = []string{"pinned", "pinned"} }, "phase pinned given twice"},
		{"missing dir", func(c *lmbench.Config) { c.Models[1].Dir = filepath.Join(root, "nope") }, "nope"},
		{"a device without language models", func(c *lmbench.Config) {
			c.Backends = []kernels.Backend{c.Backend, tensorOnly{c.Backend}}
		}, "backend cpu runs no language models"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t, root)
			tc.edit(&cfg)
			_, err := lmbench.Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want one saying %q", err, tc.want)
			}
		})
	}
}
