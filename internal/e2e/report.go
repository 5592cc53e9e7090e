package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

var nan = math.NaN()

// Report is a run's measurements, ready for a table or JSON.
type Report struct {
	Date         time.Time `json:"date"`
	Device       string    `json:"device"`        // the backends' names, comma-separated
	GPU          string    `json:"gpu,omitempty"` // set by the caller when it knows
	Go           string    `json:"go"`
	CPUs         int       `json:"cpus"`
	Dims         []int     `json:"dims"`
	Digest       string    `json:"model_digest"`
	RowsPerJob   int       `json:"rows_per_job"`
	Jobs         int       `json:"jobs"`
	MaxBatchRows int       `json:"max_batch_rows"`
	Workers      int       `json:"workers"`
	BareCallers  int       `json:"bare_callers"`
	Reps         int       `json:"reps"`
	// RawStreams is Config.RawStreams, and RawStreamsConsumers how many
	// consumers its side ran (absent with 1 stream).
	RawStreams          int `json:"raw_streams,omitempty"`
	RawStreamsConsumers int `json:"raw_streams_consumers,omitempty"`
	// InputDType and OutputDType are the jobs' input tensors' element
	// type and their output_dtype.
	InputDType  gearbox.DType `json:"input_dtype"`
	OutputDType gearbox.DType `json:"output_dtype"`
	Results     []Result      `json:"results"`
}

// Result is one precision's medians.
type Result struct {
	Precision precision.Format `json:"precision"`
	Bare      Side             `json:"bare"`
	Worker    Side             `json:"worker"`
	// Raw is the raw-JetStream side (Config.Raw): the same jobs through
	// the same server and consumer with no worker; absent when not run.
	Raw *Side `json:"raw,omitempty"`
	// RawStreams is the raw side over Config.RawStreams streams each way
	// (lanes.go); absent with one.
	RawStreams *Side `json:"raw_streams,omitempty"`
	// Ratio is the worker's median jobs/s over the bare loop's.
	Ratio float64 `json:"ratio"`
	// WorkerOverRaw is the worker's median jobs/s over the raw side's;
	// absent when the raw side was not run.
	WorkerOverRaw float64 `json:"worker_over_raw,omitempty"`
	// BareStages is where the bare loop's time went and the device's
	// ceiling (stages.go); absent where the backend does not time its
	// stages.
	BareStages *Stages `json:"bare_stages,omitempty"`
}

// Side is one side's medians over the repetitions, and each repetition's
// jobs/s.
type Side struct {
	JobsPerSec float64 `json:"jobs_per_s"`
	RowsPerSec float64 `json:"rows_per_s"`
	// JoulesPer1kJobs is absent when no energy counter was read.
	JoulesPer1kJobs *float64 `json:"joules_per_1k_jobs,omitempty"`
	// MeanBatchRows is absent for the raw side, which forms no batches.
	MeanBatchRows float64   `json:"mean_batch_rows,omitempty"`
	Runs          []float64 `json:"runs_jobs_per_s"`
}

func newReport(cfg Config, m *model.Model) *Report {
	r := &Report{
		Date: time.Now().UTC(), Device: kernels.Names(cfg.Backends...), Go: runtime.Version(), CPUs: runtime.NumCPU(),
		Dims: cfg.Dims, Digest: m.Digest, RowsPerJob: cfg.RowsPerJob, Jobs: cfg.Jobs,
		MaxBatchRows: cfg.Worker.MaxBatchRows, Workers: cfg.Workers, BareCallers: cfg.BareCallers, Reps: cfg.Reps,
		InputDType: cfg.InputDType, OutputDType: cfg.OutputDType,
	}
	if cfg.RawStreams > 1 {
		r.RawStreams, r.RawStreamsConsumers = cfg.RawStreams, cfg.rawConsumers()
	}
	return r
}

// result is p's medians; raw is empty when the raw side was not run;
// devices is how many backends ran the bare loop.
func result(p precision.Format, bare, raw, wrk []run, devices int) Result {
	res := Result{Precision: p, Bare: side(bare), Worker: side(wrk)}
	res.Ratio = res.Worker.JobsPerSec / res.Bare.JobsPerSec
	res.BareStages = bareStages(bare, res.Bare.JobsPerSec, devices)
	if len(raw) > 0 {
		s := side(raw)
		res.Raw = &s
		res.WorkerOverRaw = res.Worker.JobsPerSec / s.JobsPerSec
	}
	return res
}

func side(runs []run) Side {
	var jps, rps, jpk, mbr []float64
	for _, r := range runs {
		jps = append(jps, r.jobsPerSec())
		rps = append(rps, r.rowsPerSec())
		mbr = append(mbr, r.meanBatchRows)
		if !math.IsNaN(r.joules) {
			jpk = append(jpk, r.joules/float64(r.jobs)*1000)
		}
	}
	s := Side{Runs: append([]float64(nil), jps...), JobsPerSec: median(jps), RowsPerSec: median(rps), MeanBatchRows: median(mbr)}
	if len(jpk) > 0 {
		j := median(jpk)
		s.JoulesPer1kJobs = &j
	}
	return s
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "bench e2e: %s, model %v (%s), %d jobs × %d rows, %s in, %s out, max batch %d rows, %d worker(s), %d bare caller(s), median of %d\n\n",
		r.device(), r.Dims, r.Digest[:12], r.Jobs, r.RowsPerJob, r.InputDType, r.OutputDType, r.MaxBatchRows, r.Workers, r.BareCallers, r.Reps)
	energy, raw := false, false
	for _, res := range r.Results {
		energy = energy || res.Bare.JoulesPer1kJobs != nil || res.Worker.JoulesPer1kJobs != nil
		raw = raw || res.Raw != nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "precision\tbare jobs/s\tbare rows/s\tworker jobs/s\tworker rows/s\tworker/bare\trows/batch\t"
	if raw {
		head += "raw jobs/s\tworker/raw\t"
	}
	if r.RawStreams > 1 {
		head += fmt.Sprintf("raw×%d jobs/s\traw×%d/raw\t", r.RawStreams, r.RawStreams)
	}
	if energy {
		head += "bare J/1k jobs\tworker J/1k jobs\t"
	}
	fmt.Fprintln(tw, head)
	for _, res := range r.Results {
		line := fmt.Sprintf("%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.0f\t", res.Precision,
			res.Bare.JobsPerSec, res.Bare.RowsPerSec, res.Worker.JobsPerSec, res.Worker.RowsPerSec, res.Ratio, res.Worker.MeanBatchRows)
		switch {
		case res.Raw != nil:
			line += fmt.Sprintf("%.0f\t%.2f\t", res.Raw.JobsPerSec, res.WorkerOverRaw)
		case raw:
			line += "-\t-\t"
		}
		switch {
		case res.RawStreams != nil && res.Raw != nil:
			line += fmt.Sprintf("%.0f\t%.2f\t", res.RawStreams.JobsPerSec, res.RawStreams.JobsPerSec/res.Raw.JobsPerSec)
		case r.RawStreams > 1:
			line += "-\t-\t"
		}
		if energy {
			line += joules(res.Bare.JoulesPer1kJobs) + "\t" + joules(res.Worker.JoulesPer1kJobs) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if r.RawStreams > 1 {
		fmt.Fprintf(w, "\nraw×%d: the raw side's jobs spread over %d job streams and %d result streams, %d consumers\n",
			r.RawStreams, r.RawStreams, r.RawStreams, r.RawStreamsConsumers)
	}
	r.printStages(w)
}

func (r *Report) device() string {
	if r.GPU != "" {
		return r.Device + " (" + r.GPU + ")"
	}
	return r.Device
}

func joules(j *float64) string {
	if j == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *j)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
