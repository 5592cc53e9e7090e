package main

import (
	"fmt"
	"strconv"

	"github.com/gearbox-inference/gearbox/internal/e2e"
	"github.com/gearbox-inference/gearbox/internal/lmbench"
	"github.com/gearbox-inference/gearbox/internal/plots"
	"github.com/gearbox-inference/gearbox/precision"
)

// plotE2E draws bench e2e's report: jobs/s of the worker, of the bare
// loop and (when it ran) of raw JetStream per precision, the worker's share
// of the bare and raw rates, and joules per 1,000 jobs when the GPU's
// energy was read.
func plotE2E(path string, rep *e2e.Report) error {
	var labels []string
	var worker, bare, ratio, raw, overRaw, joules []float64
	for _, r := range rep.Results {
		labels = append(labels, string(r.Precision))
		worker = append(worker, r.Worker.JobsPerSec)
		bare = append(bare, r.Bare.JobsPerSec)
		ratio = append(ratio, r.Ratio)
		if r.Raw != nil {
			raw = append(raw, r.Raw.JobsPerSec)
			overRaw = append(overRaw, r.WorkerOverRaw)
		}
		if r.Worker.JoulesPer1kJobs != nil {
			joules = append(joules, *r.Worker.JoulesPer1kJobs)
		}
	}
	bs := []plots.Bars{
		{Title: "worker", YLabel: "jobs/s", Labels: labels, Values: worker},
		{Title: "bare backend loop", YLabel: "jobs/s", Labels: labels, Values: bare},
		{Title: "worker / bare", YLabel: "ratio", Labels: labels, Values: ratio},
	}
	if len(raw) == len(labels) {
		bs = append(bs, plots.Bars{Title: "raw JetStream (the transport)", YLabel: "jobs/s", Labels: labels, Values: raw},
			plots.Bars{Title: "worker / raw", YLabel: "ratio", Labels: labels, Values: overRaw})
	}
	if len(joules) == len(labels) {
		bs = append(bs, plots.Bars{Title: "worker energy", YLabel: "J per 1,000 jobs", Labels: labels, Values: joules})
	}
	return plots.WriteBars(path, bs...)
}

// plotKernels draws bench kernels' results: for each weight shape, every
// path's TFLOP/s at the largest batch and weight GB/s at the smallest.
func plotKernels(path string, rep *kernelsReport, ms []int, shapes [][2]int) error {
	if len(ms) == 0 || len(shapes) == 0 {
		return fmt.Errorf("no cases to plot")
	}
	small, large := ms[0], ms[len(ms)-1]
	byKey, _ := rep.index()
	var bs []plots.Bars
	for _, s := range shapes {
		var labels []string
		var tflops, gbs []float64
		for _, r := range rep.Results {
			if r.M != large || r.N != s[0] || r.K != s[1] {
				continue
			}
			labels = append(labels, r.Path)
			tflops = append(tflops, r.TFLOPs)
			gbs = append(gbs, byKey[kernelKey{r.Path, small, s[0], s[1]}].WeightGB)
		}
		bs = append(bs,
			plots.Bars{Title: fmt.Sprintf("%dx%d, M=%d", s[0], s[1], large), YLabel: "TFLOP/s", Labels: labels, Values: tflops},
			plots.Bars{Title: fmt.Sprintf("%dx%d, M=%d", s[0], s[1], small), YLabel: "weight GB/s", Labels: labels, Values: gbs})
	}
	return plots.WriteBars(path, bs...)
}

// plotLM draws bench lm's report: each model's precision mix over the
// auto phase's time slices, then jobs/s and joules per 1,000 jobs (output
// tokens/s where no energy was read) of both phases.
func plotLM(path string, rep *lmbench.Report) error {
	if len(rep.Phases) == 0 {
		return fmt.Errorf("no phases to plot")
	}
	auto := rep.Phases[0]
	var mixes []plots.Mix
	for i, m := range rep.Models { // auto.Models are in the same order
		var ps []precision.Format
		for _, p := range precision.All {
			if auto.Models[i].Precisions[p] > 0 {
				ps = append(ps, p)
			}
		}
		mx := plots.Mix{Title: fmt.Sprintf("%s (%s, KL ≤ %g): %s phase", m.Name, m.Label, m.MaxKL, auto.Name)}
		for _, s := range auto.Mix {
			mx.Slices = append(mx.Slices, strconv.FormatFloat(s.FromS, 'g', 2, 64))
		}
		for _, p := range ps {
			mx.Precisions = append(mx.Precisions, string(p))
			row := make([]float64, len(auto.Mix))
			for k, s := range auto.Mix {
				row[k] = float64(s.Jobs[m.Name][p])
			}
			mx.Jobs = append(mx.Jobs, row)
		}
		mixes = append(mixes, mx)
	}
	var labels []string
	var jobs, energy, tokens []float64
	for _, ph := range rep.Phases {
		labels = append(labels, ph.Name)
		jobs = append(jobs, ph.JobsPerSec)
		tokens = append(tokens, ph.OutputTokensPerSec)
		if ph.JoulesPer1kJobs != nil {
			energy = append(energy, *ph.JoulesPer1kJobs)
		}
	}
	second := plots.Bars{Title: "output tokens/s (no energy counter)", YLabel: "tokens/s", Labels: labels, Values: tokens}
	if len(energy) == len(labels) {
		second = plots.Bars{Title: "energy", YLabel: "J per 1,000 jobs", Labels: labels, Values: energy}
	}
	return plots.WriteMix(path, mixes, plots.Bars{Title: "throughput", YLabel: "jobs/s", Labels: labels, Values: jobs}, second)
}
