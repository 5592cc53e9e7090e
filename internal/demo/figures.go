package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gearbox-inference/gearbox/internal/plots"
	"github.com/gearbox-inference/gearbox/precision"
)

// The pictures a run writes (WritePlots), by name without extension.
const (
	// TensorPolicyPlot: the precision the tensor model's auto jobs were
	// served at over the run, against its target, with the quality
	// reports' errors.
	TensorPolicyPlot = "demo-tensor-policy"
	// TensorPrecisionsPlot: the tensor run's results and latency per
	// precision run.
	TensorPrecisionsPlot = "demo-tensor-precisions"
	// LMPrecisionsPlot: the language-model run's tokens/s, time to first
	// token and agreement with the reference, per precision.
	LMPrecisionsPlot = "demo-lm-precisions"
	// LMPolicyPlot: the language model's walk, the precision its auto
	// jobs were served at over time, with the KL of the checked ones,
	// against its target.
	LMPolicyPlot = "demo-lm-policy"
)

// WritePlots writes the run's pictures into dir (created if need be), as
// ext files (".png" or ".svg"), and returns their paths.
func (r *Report) WritePlots(dir, ext string) ([]string, error) {
	if ext != ".png" && ext != ".svg" {
		return nil, fmt.Errorf("demo: plots: %q is not .png or .svg", ext)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: plots: %w", err)
	}
	var files []string
	write := func(name string, draw func(string) error) error {
		path := filepath.Join(dir, name+ext)
		if err := draw(path); err != nil {
			return fmt.Errorf("demo: plot %s: %w", path, err)
		}
		files = append(files, path)
		return nil
	}
	if s := r.Tensor; s != nil {
		if err := write(TensorPolicyPlot, func(p string) error { return plots.WriteTimeline(p, s.timeline()) }); err != nil {
			return nil, err
		}
		if err := write(TensorPrecisionsPlot, func(p string) error { return plots.WriteBars(p, s.bars()...) }); err != nil {
			return nil, err
		}
	}
	if s := r.LM; s != nil {
		if err := write(LMPrecisionsPlot, func(p string) error { return plots.WriteBars(p, s.bars()...) }); err != nil {
			return nil, err
		}
		if t, ok := s.walk.timeline(s.model, s.ladder, s.metric, s.maxError, s.reference); ok {
			if err := write(LMPolicyPlot, func(p string) error { return plots.WriteTimeline(p, t) }); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// timeline is the tensor model's policy over the run.
func (s *Summary) timeline() plots.Timeline {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.model
	t := plots.Timeline{Title: fmt.Sprintf("model %s: the precision of auto jobs, and its error in the quality reports", m.Name),
		Metric: "relative L2 error", Target: m.Quality.MaxError, End: s.elapsed.Seconds(),
		Steps: []plots.Step{{At: 0, Precision: string(m.Precision.Initial)}}}
	for _, p := range m.Precision.Ladder {
		t.Ladder = append(t.Ladder, string(p))
	}
	for _, c := range s.changes {
		t.Steps = append(t.Steps, plots.Step{At: c.at.Seconds(), Precision: string(c.p.Precision)})
	}
	// The reports of batches at the policy's precision: the error auto
	// jobs were served with (explicit jobs' batches are checked too).
	for _, r := range s.reports {
		served := m.Precision.Initial
		for _, c := range s.changes {
			if c.at <= r.at {
				served = c.p.Precision
			}
		}
		if r.served == served {
			t.Errors = append(t.Errors, plots.Point{At: r.at.Seconds(), Value: r.relL2})
		}
	}
	return t
}

// timeline is the walk's policy, and the error of every checked auto job
// (the reference's own, 0, is off the log scale); false when there was no
// walk.
func (w *walk) timeline(model string, ladder []precision.Format, metric string, maxError float64, ref precision.Format) (plots.Timeline, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start.IsZero() || w.skipped != "" {
		return plots.Timeline{}, false
	}
	t := plots.Timeline{Title: fmt.Sprintf("model %s: the precision of auto jobs in the walk, and their %s", model, metric),
		Metric: metric + " vs " + string(ref), Target: maxError, End: w.end.Seconds()}
	for _, p := range ladder {
		t.Ladder = append(t.Ladder, string(p))
	}
	for _, c := range w.changes {
		t.Steps = append(t.Steps, plots.Step{At: c.at.Seconds(), Precision: string(c.p.Precision)})
	}
	for _, r := range w.reports {
		t.Errors = append(t.Errors, plots.Point{At: r.at.Seconds(), Value: r.r.Error(&r.r.ServedMetrics)})
		t.End = max(t.End, r.at.Seconds()) // checks finish after their jobs
	}
	return t, true
}

// bars are the tensor run's jobs per precision run, and the backend's
// speed at each: rows per second of compute, and the median batch's
// compute time (latency without the queueing of the burst).
func (s *Summary) bars() []plots.Bars {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs := map[precision.Format]int{}
	for k, n := range s.ran {
		jobs[k[1]] += n
	}
	rows, secs := map[precision.Format]int{}, map[precision.Format]float64{}
	times := map[precision.Format][]time.Duration{}
	for _, b := range s.computed {
		rows[b.p] += b.rows
		secs[b.p] += b.ms / 1e3
		times[b.p] = append(times[b.p], msDuration(b.ms))
	}
	n := plots.Bars{Title: "tensor jobs answered, by precision run", YLabel: "jobs"}
	speed := plots.Bars{Title: "compute throughput", YLabel: "rows/s"}
	lat := plots.Bars{Title: "batch compute time, p50", YLabel: "ms"}
	for _, p := range precision.All {
		if jobs[p] == 0 {
			continue
		}
		n.Labels, speed.Labels, lat.Labels = append(n.Labels, string(p)), append(speed.Labels, string(p)), append(lat.Labels, string(p))
		n.Values = append(n.Values, float64(jobs[p]))
		speed.Values = append(speed.Values, float64(rows[p])/secs[p])
		lat.Values = append(lat.Values, ms(percentile(times[p], 0.5)))
	}
	return []plots.Bars{n, speed, lat}
}

// bars are the language-model run's measures per precision.
func (s *LMSummary) bars() []plots.Bars {
	stats := s.Stats()
	gen := plots.Bars{Title: fmt.Sprintf("%s: generated tokens/s", s.model), YLabel: "tokens/s"}
	ttft := plots.Bars{Title: "time to first token, p50", YLabel: "ms"}
	itl := plots.Bars{Title: "time per generated token, p50", YLabel: "ms"}
	agree := plots.Bars{Title: fmt.Sprintf("tokens agreeing with %s", stats[0].Precision), YLabel: "%"}
	for _, st := range stats {
		l := string(st.Precision)
		for _, b := range []*plots.Bars{&gen, &ttft, &itl, &agree} {
			b.Labels = append(b.Labels, l)
		}
		gen.Values = append(gen.Values, st.GeneratedPerSecond())
		ttft.Values = append(ttft.Values, ms(st.TTFT50))
		itl.Values = append(itl.Values, ms(st.ITL50))
		agree.Values = append(agree.Values, 100*st.Agreement)
	}
	return []plots.Bars{gen, ttft, itl, agree}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
