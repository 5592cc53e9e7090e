package e2e

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gearbox-inference/gearbox/kernels"
)

// The bare loop's stages and the device's ceiling: where the backend times
// its Forward calls (kernels.StageTimer: the CUDA backend), timing is on
// for every bare repetition, and the result says where a Forward's host
// time went, stage by stage, and how long the device was busy: the jobs/s
// the device alone would allow is jobs over that busy time.

// Stages is the bare loop's Forward calls, timed stage by stage, summed
// over every bare repetition and given per batch (one Forward call).
type Stages struct {
	Batches int64 `json:"batches"`
	// HostUs is a Forward call's mean wall time in µs. With several bare
	// callers the calls overlap, so it exceeds the wall time per batch.
	HostUs float64 `json:"host_us_per_batch"`
	// Stages split HostUs, in order; they add up to it.
	Stages []StageUs `json:"stages"`
	// DeviceUs is the device's mean busy time per batch in µs; Ceiling the
	// jobs/s with the device busy all the time (jobs over the busy time;
	// with several devices, all of them busy, the batches spread evenly);
	// BareOverCeiling the bare loop's median jobs/s over Ceiling. Absent
	// where the backend has no device clock.
	DeviceUs        float64 `json:"device_busy_us_per_batch,omitempty"`
	Ceiling         float64 `json:"device_ceiling_jobs_per_s,omitempty"`
	BareOverCeiling float64 `json:"bare_over_ceiling,omitempty"`
}

// StageUs is one stage's mean time per batch in µs.
type StageUs struct {
	Name string  `json:"name"`
	Us   float64 `json:"us_per_batch"`
}

// timeStages turns the backends' stage timing on, where every one has it,
// and returns the function that turns it off and returns the sums over
// every backend (nil without).
func (b *bench) timeStages() func() *kernels.StageTimes {
	var sts []kernels.StageTimer
	for _, be := range b.cfg.Backends {
		st, ok := be.(kernels.StageTimer)
		if !ok {
			return func() *kernels.StageTimes { return nil }
		}
		sts = append(sts, st)
	}
	for _, st := range sts {
		st.TimeStages(true)
	}
	return func() *kernels.StageTimes {
		var sum kernels.StageTimes
		for _, st := range sts {
			addStages(&sum, st.TimeStages(false))
		}
		return &sum
	}
}

// addStages adds t to sum, stage by stage.
func addStages(sum *kernels.StageTimes, t kernels.StageTimes) {
	sum.Batches += t.Batches
	sum.Total += t.Total
	sum.DeviceBusy += t.DeviceBusy
	sum.DeviceBatches += t.DeviceBatches
	for i, s := range t.Stages {
		if i == len(sum.Stages) {
			sum.Stages = append(sum.Stages, kernels.Stage{Name: s.Name})
		}
		sum.Stages[i].Time += s.Time
	}
}

// bareStages sums the stages of the bare repetitions runs; nil when none
// was timed. bareJobsPerSec is the bare loop's median; devices how many
// backends share the batches (Config.Backends): the ceiling is theirs
// together, each busy all the time.
func bareStages(runs []run, bareJobsPerSec float64, devices int) *Stages {
	var sum kernels.StageTimes
	jobs := 0
	for _, r := range runs {
		if r.stages == nil {
			return nil
		}
		jobs += r.jobs
		addStages(&sum, *r.stages)
	}
	if len(runs) == 0 || sum.Batches == 0 {
		return nil
	}
	us := func(d time.Duration, n int64) float64 { return float64(d) / float64(time.Microsecond) / float64(n) }
	st := &Stages{Batches: sum.Batches, HostUs: us(sum.Total, sum.Batches)}
	for _, s := range sum.Stages {
		st.Stages = append(st.Stages, StageUs{Name: s.Name, Us: us(s.Time, sum.Batches)})
	}
	if sum.DeviceBatches > 0 && sum.DeviceBusy > 0 {
		st.DeviceUs = us(sum.DeviceBusy, sum.DeviceBatches)
		jobsPerBatch := float64(jobs) / float64(sum.Batches)
		st.Ceiling = float64(devices) * jobsPerBatch / (st.DeviceUs / 1e6)
		st.BareOverCeiling = bareJobsPerSec / st.Ceiling
	}
	return st
}

// printStages writes the bare loop's stages per precision, or says the
// backend does not time them.
func (r *Report) printStages(w io.Writer) {
	var names []string
	for _, res := range r.Results {
		if res.BareStages != nil {
			for _, s := range res.BareStages.Stages {
				names = append(names, s.Name)
			}
			break
		}
	}
	if names == nil {
		fmt.Fprintf(w, "\nbare loop per batch: n/a (backend %s does not time its stages)\n", r.Device)
		return
	}
	fmt.Fprintf(w, "\nbare loop per batch (µs; host stages per Forward call, %d caller(s)), device busy from CUDA events (upload start to download end):\n\n", r.BareCallers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "precision\tbatches\thost\t"
	for _, n := range names {
		head += n + "\t"
	}
	fmt.Fprintln(tw, head+"device busy\tceiling jobs/s\tbare/ceiling\t")
	for _, res := range r.Results {
		st := res.BareStages
		if st == nil {
			fmt.Fprintf(tw, "%s\tn/a\t\n", res.Precision)
			continue
		}
		line := fmt.Sprintf("%s\t%d\t%.1f\t", res.Precision, st.Batches, st.HostUs)
		for _, s := range st.Stages {
			line += fmt.Sprintf("%.1f\t", s.Us)
		}
		if st.DeviceUs > 0 {
			line += fmt.Sprintf("%.1f\t%.0f\t%.2f\t", st.DeviceUs, st.Ceiling, st.BareOverCeiling)
		} else {
			line += "n/a\tn/a\tn/a\t"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
