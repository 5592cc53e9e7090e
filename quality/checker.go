package quality

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// check is one sampled batch's rows, copied out of the batch.
type check struct {
	m         *model.Model
	release   func() // ends the check's hold on m
	served    precision.Format
	batch     string
	batchRows int
	in, out   []float32 // the checked rows' inputs and served outputs
	rows      int
}

// Checker samples batches and checks them off the serving path: Offer
// copies a sampled batch's rows and returns at once; Run does the checks
// and publishes a report for each.
type Checker struct {
	cfg     Config
	backend kernels.Backend
	worker  string
	publish func(context.Context, *gearbox.QualityReport) error
	log     zerolog.Logger

	queue chan *check
	*sampler
}

// NewChecker returns a checker of batches run on backend by worker, which
// hands each report to publish.
func NewChecker(cfg Config, backend kernels.Backend, worker string, publish func(context.Context, *gearbox.QualityReport) error, log zerolog.Logger) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Checker{
		cfg: cfg, backend: backend, worker: worker, publish: publish, log: log,
		queue: make(chan *check, cfg.Queue), sampler: newSampler(cfg),
	}, nil
}

// Offer considers a computed batch for a check: in and out are its rows'
// inputs and outputs at precision served. It copies what a check needs
// (at most Config.Rows random rows) and returns without waiting.
func (c *Checker) Offer(now time.Time, m *model.Model, served precision.Format, batch string, in, out []float32, rows int) {
	if !c.draw(now, m.Name) {
		return
	}
	n := min(rows, c.cfg.Rows)
	pick := c.perm(rows)[:n]

	fin, fout := m.InputFeatures, m.OutputFeatures
	ck := &check{m: m, served: served, batch: batch, batchRows: rows, rows: n,
		in: make([]float32, 0, n*fin), out: make([]float32, 0, n*fout)}
	for _, r := range pick {
		ck.in = append(ck.in, in[r*fin:(r+1)*fin]...)
		ck.out = append(ck.out, out[r*fout:(r+1)*fout]...)
	}
	ck.release = func() {}
	if c.cfg.Hold != nil {
		ck.release = c.cfg.Hold(m)
	}
	select {
	case c.queue <- ck:
		c.checked(now, m.Name)
	default:
		ck.release()
		c.cfg.Metrics.count(m.Name, "dropped")
	}
}

// drain gives up the queued checks, releasing their holds.
func (c *Checker) drain() {
	for {
		select {
		case ck := <-c.queue:
			ck.release()
		default:
			return
		}
	}
}

// ErrOutOfRange is returned by Checker.Check when no value of the rows
// checked can be judged: the input drives every output beyond what float32
// carries, at fp32 as at any precision. Such a check publishes no report.
var ErrOutOfRange = errors.New("quality check: every output checked is beyond float32 at fp32; nothing to judge")

// Run performs queued checks until ctx ends; then it gives up the checks
// still queued.
func (c *Checker) Run(ctx context.Context) {
	defer c.drain()
	for {
		select {
		case <-ctx.Done():
			return
		case ck := <-c.queue:
			r, err := c.Check(ctx, ck.m, ck.served, ck.in, ck.out, ck.rows)
			ck.release()
			if err == nil {
				r.Batch, r.BatchRows = ck.batch, ck.batchRows
				err = c.publish(ctx, r)
			}
			if err != nil && ctx.Err() != nil {
				return
			}
			c.cfg.Metrics.done(c.log, ck.m.Name, ck.batch, r, err)
		}
	}
}

// Check compares rows of served outputs (out, computed from in at served)
// with the reference, runs the next cheaper rung of m's ladder on the same
// rows in shadow, and returns the report (without batch fields). Outputs
// the input drives beyond float32 at fp32 are left out of both
// comparisons (see Compare and docs/quality.md); when that leaves nothing,
// it returns ErrOutOfRange.
func (c *Checker) Check(ctx context.Context, m *model.Model, served precision.Format, in, out []float32, rows int) (*gearbox.QualityReport, error) {
	if len(in) != rows*m.InputFeatures || len(out) != rows*m.OutputFeatures {
		return nil, errors.New("quality check: rows do not match the model's widths")
	}
	ref, kind, err := c.reference(ctx, m, in, rows)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	var cand precision.Format
	var candOut []float32
	if next, ok := precision.Next(m.Precision.Ladder, served); ok && kernels.Supports(c.backend, next) {
		if candOut, err = c.backend.Forward(ctx, m, next, in, rows); err != nil {
			return nil, fmt.Errorf("shadow run at %s: %w", next, err)
		}
		cand = next
	}
	fp32, err := c.fp32Run(ctx, m, served, kind, in, rows, out, candOut)
	if err != nil {
		return nil, fmt.Errorf("fp32 run: %w", err)
	}
	y := newYardstick(ref, fp32)
	if y.count == 0 {
		return nil, ErrOutOfRange
	}
	classes := len(m.Layers) > 0 && m.Layers[len(m.Layers)-1].Op == model.Softmax
	r := &gearbox.QualityReport{
		Model:         m.Name,
		Digest:        m.Digest,
		Ladder:        m.Precision.Ladder,
		Initial:       m.Precision.Initial,
		MaxError:      m.Quality.MaxError,
		Served:        served,
		ServedMetrics: y.compare(out, rows, m.OutputFeatures, classes),
		Reference:     kind,
		Worker:        c.worker,
		Device:        c.backend.Name(),
		Rows:          rows,
		Time:          time.Now().UTC(),
	}
	if cand != "" {
		cm := y.compare(candOut, rows, m.OutputFeatures, classes)
		r.Candidate, r.CandidateMetrics = cand, &cm
	}
	return r, nil
}

// fp32Run returns the fp32 outputs of the rows checked where judging them
// needs it, else nil: a non-finite output counts against its precision only
// where fp32 is finite. With an fp32 reference that is the reference
// itself, and at served fp32 the served outputs; otherwise the rows are run
// at fp32, only when served or candidate outputs hold a non-finite value.
func (c *Checker) fp32Run(ctx context.Context, m *model.Model, served precision.Format, kind string, in []float32, rows int, out, cand []float32) ([]float32, error) {
	switch {
	case kind == "fp32":
		return nil, nil
	case served == precision.FP32:
		return out, nil
	case allFinite(out) && allFinite(cand):
		return nil, nil
	}
	return c.backend.Forward(ctx, m, precision.FP32, in, rows)
}

func allFinite(vs []float32) bool {
	for _, v := range vs {
		if !finite32(v) {
			return false
		}
	}
	return true
}

// reference computes the yardstick: float64 where the backend offers it
// (kernels.Referencer), else the backend at fp32.
func (c *Checker) reference(ctx context.Context, m *model.Model, in []float32, rows int) ([]float64, string, error) {
	if rb, ok := c.backend.(kernels.Referencer); ok {
		ref, err := rb.Reference(ctx, m, in, rows)
		return ref, "fp64", err
	}
	out, err := c.backend.Forward(ctx, m, precision.FP32, in, rows)
	if err != nil {
		return nil, "", err
	}
	ref := make([]float64, len(out))
	for i, v := range out {
		ref[i] = float64(v)
	}
	return ref, "fp32", nil
}
