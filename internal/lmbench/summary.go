package lmbench

import (
	"math"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

// summary is the phase's throughput, energy, per-model counts, precision
// mix and policy changes.
func (pr *phaseRun) summary(b *bench, elapsed time.Duration, joules *float64) *Phase {
	ph := &Phase{Name: pr.spec.name, Precision: pr.spec.precision, Jobs: len(b.jobs), Answered: len(pr.answers),
		Seconds: elapsed.Seconds()}
	for _, m := range b.models {
		ph.Models = append(ph.Models, ModelPhase{Name: m.Name, Precisions: map[precision.Format]int{}})
	}
	slices := b.cfg.Slices
	width := elapsed / time.Duration(slices)
	for i := range slices {
		s := Slice{FromS: (time.Duration(i) * width).Seconds(), ToS: (time.Duration(i+1) * width).Seconds(), Jobs: map[string]map[precision.Format]int{}}
		if i == slices-1 {
			s.ToS = ph.Seconds
		}
		ph.Mix = append(ph.Mix, s)
	}
	for _, a := range pr.answers {
		ph.PromptTokens += a.prompt
		ph.OutputTokens += a.output
		mp := &ph.Models[a.model]
		mp.Jobs++
		mp.OutputTokens += a.output
		mp.Precisions[a.precision]++
		i := min(int(a.at/max(width, 1)), slices-1)
		name := b.models[a.model].Name
		if ph.Mix[i].Jobs[name] == nil {
			ph.Mix[i].Jobs[name] = map[precision.Format]int{}
		}
		ph.Mix[i].Jobs[name][a.precision]++
	}
	if n := len(pr.answers); n > 0 {
		var to, in, back time.Duration
		for _, a := range pr.answers {
			to, in, back = to+a.toEngine, in+a.inEngine, back+a.back
		}
		mean := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
		ph.ToEngineMs, ph.InEngineMs, ph.BackMs = mean(to), mean(in), mean(back)
	}
	ph.JobsPerSec = float64(ph.Answered) / ph.Seconds
	ph.OutputTokensPerSec = float64(ph.OutputTokens) / ph.Seconds
	if joules != nil {
		ph.Joules = joules
		j := *joules / float64(ph.Answered) * 1000
		ph.JoulesPer1kJobs = &j
	} else {
		ph.Energy = "unavailable: no energy counter on " + b.cfg.Backend.Name() + " (NVML reads a GPU's)"
	}
	for _, e := range pr.policies {
		p := e.v
		ph.Policies = append(ph.Policies, PolicyChange{AtS: e.at.Seconds(), Model: p.Model, Precision: p.Precision, By: p.By, Reason: p.Reason})
	}
	return ph
}

// setQuality cuts the phase's quality reports into windows of the
// controller's window size, per model, role and precision, in the order
// they came, adds the window each controller change rested on, and counts
// the served and controller windows over their model's target.
func (ph *Phase) setQuality(b *bench, pr *phaseRun, final []Final) {
	ph.Final = final
	ph.Reports = len(pr.reports)
	size := b.cfg.Quality.Rules.WithDefaults().Window
	target := map[string]float64{}
	for _, m := range b.models {
		target[m.Name] = m.MaxKL
	}
	type key struct {
		model, role string
		p           precision.Format
	}
	open := map[key]int{} // the index in ph.Windows of each key's open window
	add := func(at time.Duration, r *gearbox.QualityReport, role string, p precision.Format, m *gearbox.QualityMetrics) {
		k := key{r.Model, role, p}
		i, ok := open[k]
		if !ok || ph.Windows[i].Reports == size {
			ph.Windows = append(ph.Windows, Window{Model: r.Model, Role: role, Precision: p, Metric: metric(r), FromS: at.Seconds(), Target: target[r.Model]})
			i = len(ph.Windows) - 1
			open[k] = i
		}
		w := &ph.Windows[i]
		v := r.Error(m)
		w.Mean = (w.Mean*float64(w.Reports) + v) / float64(w.Reports+1)
		w.Max = max(w.Max, v)
		w.Reports++
		w.ToS = at.Seconds()
	}
	for _, e := range pr.reports {
		r := e.v
		add(e.at, r, "served", r.Served, &r.ServedMetrics)
		if r.Candidate != "" && r.CandidateMetrics != nil {
			add(e.at, r, "candidate", r.Candidate, r.CandidateMetrics)
		}
	}
	// The windows the controllers judged at each change: a step up is a
	// window of the served precision over the target (or a non-finite
	// value), however its reports came (a late check of a job served at
	// the previous rung counts for the rung now served).
	for _, e := range pr.policies {
		p, ev := e.v, e.v.Evidence
		if p.By == quality.ManualBy || ev == nil {
			continue
		}
		w := Window{Model: p.Model, Role: "controller", Precision: ev.Precision, Metric: gearbox.MetricKL, FromS: e.at.Seconds(), ToS: e.at.Seconds(),
			Reports: ev.Samples, Mean: ev.Mean, Max: ev.UpperBound, Target: target[p.Model]}
		if ev.NonFinite > 0 {
			w.Max = math.Inf(1)
		}
		ph.Windows = append(ph.Windows, w)
	}
	ph.Violations = 0
	for i := range ph.Windows {
		w := &ph.Windows[i]
		w.Inside = w.Max <= w.Target
		if w.Role != "candidate" && !w.Inside {
			ph.Violations++
		}
	}
}

// metric names a report's metric.
func metric(r *gearbox.QualityReport) string {
	if r.Metric == "" {
		return gearbox.MetricRelL2
	}
	return r.Metric
}
