package main

import (
	"fmt"

	"github.com/gearbox-inference/gearbox/internal/e2e"
	"github.com/gearbox-inference/gearbox/internal/plots"
)

// plotE2E draws bench e2e's report: jobs/s of the worker and of the bare
// loop per precision, the worker's share of the bare rate, and joules per
// 1,000 jobs when the GPU's energy was read.
func plotE2E(path string, rep *e2e.Report) error {
	var labels []string
	var worker, bare, ratio, joules []float64
	for _, r := range rep.Results {
		labels = append(labels, string(r.Precision))
		worker = append(worker, r.Worker.JobsPerSec)
		bare = append(bare, r.Bare.JobsPerSec)
		ratio = append(ratio, r.Ratio)
		if r.Worker.JoulesPer1kJobs != nil {
			joules = append(joules, *r.Worker.JoulesPer1kJobs)
		}
	}
	bs := []plots.Bars{
		{Title: "worker", YLabel: "jobs/s", Labels: labels, Values: worker},
		{Title: "bare backend loop", YLabel: "jobs/s", Labels: labels, Values: bare},
		{Title: "worker / bare", YLabel: "ratio", Labels: labels, Values: ratio},
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
