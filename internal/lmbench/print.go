package lmbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/gearbox-inference/gearbox/precision"
)

// Print writes the report as tables: the models, the phases side by side
// with the headline ratios and the queue overhead, then per phase the precision mix over time,
// the policy changes and the quality windows.
func (r *Report) Print(w io.Writer) {
	temp := "greedy"
	if r.Temperature > 0 {
		temp = fmt.Sprintf("temperature %g, a seed per job", r.Temperature)
	}
	fmt.Fprintf(w, "bench lm: %s, %d jobs a phase (prompts of %d–%d tokens, outputs of %d–%d, seed %d, ≤ %d in flight, %s), %d worker(s)\n\n",
		r.device(), r.Jobs, r.PromptMin, r.PromptMax, r.OutputMin, r.OutputMax, r.Seed, r.InFlight, temp, r.Workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\trole\tarch\tlayers\thidden\tvocab\tparams\tKL target\treference\tladder\tpush")
	for _, m := range r.Models {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%g\t%s\t%s\t%.1fs\n", m.Name, or(m.Label, "-"), m.Arch, m.Layers, m.Hidden, m.Vocab,
			params(m.Params), m.MaxKL, m.Reference, formats(m.Ladder), m.PushSeconds)
	}
	tw.Flush()
	if r.phase(PhaseAuto) != nil {
		q := r.Quality
		budget := "unbounded"
		if q.Budget > 0 {
			budget = fmt.Sprintf("%g of the time", q.Budget)
		}
		fmt.Fprintf(w, "auto phase's quality loop: sample %g, interval %gs, checks %s, window %d, a step down on %d reports within %g × target, cooldown %gs\n",
			q.Sample, q.IntervalS, budget, q.Window, q.MinSamples, q.Margin, q.CooldownS)
	}
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tjobs\tseconds\tjobs/s\toutput tokens\toutput tok/s\tJ/1k jobs\tviolations\t")
	for _, ph := range r.Phases {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.3g\t%d\t%.4g\t%s\t%d\t\n", ph.Name, ph.Answered, ph.Seconds, ph.JobsPerSec,
			ph.OutputTokens, ph.OutputTokensPerSec, joules(ph.JoulesPer1kJobs), ph.Violations)
	}
	tw.Flush()
	if a, p := r.phase(PhaseAuto), r.phase(PhasePinned); a != nil && p != nil {
		e := "J/1k jobs: energy " + a.Energy
		if j := r.Ratio.JoulesPer1kJobs; j != nil {
			e = fmt.Sprintf("J/1k jobs %.2f×", *j)
		}
		fmt.Fprintf(w, "\nheadline, %s / %s: jobs/s %.2f×, output tok/s %.2f×, %s; %d quality window(s) over target\n",
			a.Name, p.Name, r.Ratio.JobsPerSec, r.Ratio.OutputTokensPerSec, e, r.Violations)
	}
	if o := r.Overhead; o != nil {
		fmt.Fprintf(w, "\nqueue overhead, worker at %s / bare engine loop: output tok/s %.3f×, jobs/s %.3f×; same tokens in %d of %d jobs\n",
			o.Worker, o.OutputTokensPerSec, o.JobsPerSec, o.SameTokens, o.Jobs)
		for _, ph := range r.Phases {
			if ph.Engines != nil && (ph.Name == o.Worker || ph.Name == o.Bare) {
				ph.Engines.print(w, &ph)
			}
		}
	}
	for _, ph := range r.Phases {
		ph.print(w, r.Models)
	}
}

func (ph *Phase) print(w io.Writer, models []ModelInfo) {
	fmt.Fprintf(w, "\n%s phase: jobs served per precision", ph.Name)
	for _, m := range ph.Models {
		fmt.Fprintf(w, "; %s %s", m.Name, mix(m.Precisions))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "  slice (s)"
	for _, m := range models {
		head += "\t" + m.Name
	}
	fmt.Fprintln(tw, head)
	for _, s := range ph.Mix {
		line := fmt.Sprintf("  %.3g–%.3g", s.FromS, s.ToS)
		for _, m := range models {
			line += "\t" + or(mix(s.Jobs[m.Name]), "-")
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if len(ph.Policies) > 0 {
		fmt.Fprintln(w, "  policy changes:")
		for _, p := range ph.Policies {
			fmt.Fprintf(w, "    +%.2fs %s → %s by %s: %s\n", p.AtS, p.Model, p.Precision, p.By, p.Reason)
		}
	}
	for _, f := range ph.Final {
		if f.Hold == "" {
			fmt.Fprintf(w, "  %s ends at %s\n", f.Model, f.Precision)
			continue
		}
		fmt.Fprintf(w, "  %s ends at %s, holding (%s): %s\n", f.Model, f.Precision, f.Hold, f.Reason)
	}
	if ph.Precision == precision.Auto {
		fmt.Fprintf(w, "  language-model checks took %.2fs (%.0f %% of the phase's %.2fs, summed over the workers)\n",
			ph.CheckSeconds, 100*ph.CheckSeconds/ph.Seconds, ph.Seconds)
	}
	if len(ph.Windows) == 0 {
		if ph.Precision == precision.Auto {
			fmt.Fprintf(w, "  no quality reports (%d)\n", ph.Reports)
		}
		return
	}
	fmt.Fprintf(w, "  quality windows (%d reports; served: what jobs got, candidate: the next rung in shadow,\n"+
		"  controller: the window a policy change rested on):\n", ph.Reports)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    model\trole\tprecision\tseconds\treports\tmean\tmax\ttarget\t")
	for _, x := range ph.Windows {
		mark := "inside"
		if !x.Inside {
			mark = "OVER"
			if x.Role == "candidate" {
				mark = "over (not served)"
			}
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%.3g–%.3g\t%d\t%.3g\t%.3g\t%g %s\t%s\n", x.Model, x.Role, x.Precision, x.FromS, x.ToS,
			x.Reports, x.Mean, x.Max, x.Target, x.Metric, mark)
	}
	tw.Flush()
}

func (r *Report) device() string {
	if r.GPU != "" {
		return r.Device + " (" + r.GPU + ")"
	}
	return r.Device
}

// mix writes jobs per precision, most accurate first: "bf16 12, fp8 30".
func mix(m map[precision.Format]int) string {
	var ps []precision.Format
	for p := range m {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b precision.Format) int {
		return slices.Index(precision.All, a) - slices.Index(precision.All, b)
	})
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s %d", p, m[p]))
	}
	return strings.Join(parts, ", ")
}

func formats(ps []precision.Format) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}

func params(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fk", float64(n)/1e3)
}

func joules(j *float64) string {
	if j == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.4g", *j)
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
