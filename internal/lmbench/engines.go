package lmbench

import (
	"fmt"
	"io"

	"github.com/gearbox-inference/gearbox/engine"
)

// Engines is what a phase's engines did while its clock ran, summed over
// them (engine.StepStats): how many steps, how full, and where each
// engine's time went.
type Engines struct {
	// Engines counts the engines (one per model and precision served).
	Engines       int `json:"engines"`
	Steps         int `json:"steps"`
	DecodeTokens  int `json:"decode_tokens"`
	PrefillTokens int `json:"prefill_tokens"`
	Preemptions   int `json:"preemptions"`
	// StepSeconds is the engines' time in the backend's steps,
	// IdleSeconds their time with no sequence to run; each engine's
	// phase time less both is its own work between steps (planning, and
	// the sequences' Token and Done callbacks: for the worker, its
	// results' encoding and publishing).
	StepSeconds float64 `json:"step_s"`
	IdleSeconds float64 `json:"idle_s"`
}

// engineTotals sums the engines' statistics.
func engineTotals(sts []engine.StepStats) Engines {
	e := Engines{Engines: len(sts)}
	for _, s := range sts {
		e.Steps += s.Steps
		e.DecodeTokens += s.DecodeTokens
		e.PrefillTokens += s.PrefillTokens
		e.Preemptions += s.Preemptions
		e.StepSeconds += s.StepSeconds
		e.IdleSeconds += s.IdleSeconds
	}
	return e
}

// since is what the engines did after the totals before.
func (e Engines) since(before Engines) *Engines {
	return &Engines{
		Engines: e.Engines, Steps: e.Steps - before.Steps, DecodeTokens: e.DecodeTokens - before.DecodeTokens,
		PrefillTokens: e.PrefillTokens - before.PrefillTokens, Preemptions: e.Preemptions - before.Preemptions,
		StepSeconds: e.StepSeconds - before.StepSeconds, IdleSeconds: e.IdleSeconds - before.IdleSeconds,
	}
}

// print writes one line of a phase's engine figures and its jobs' mean
// times.
func (e *Engines) print(w io.Writer, ph *Phase) {
	name, seconds := ph.Name, ph.Seconds
	steps := float64(max(e.Steps, 1))
	between := float64(e.Engines)*seconds - e.StepSeconds - e.IdleSeconds
	fmt.Fprintf(w, "  %s: %d engine(s), %d steps, %.1f decodes and %.1f prefill tokens a step, %d preemptions; of %.2f engine-seconds %.2f in steps, %.2f idle, %.2f between steps\n",
		name, e.Engines, e.Steps, float64(e.DecodeTokens)/steps, float64(e.PrefillTokens)/steps, e.Preemptions,
		float64(e.Engines)*seconds, e.StepSeconds, e.IdleSeconds, between)
	fmt.Fprintf(w, "    a job's mean time: %.1f ms to its engine, %.1f ms in it, %.1f ms back\n", ph.ToEngineMs, ph.InEngineMs, ph.BackMs)
}
