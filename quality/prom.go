package quality

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// Metrics are the quality loop's Prometheus metrics. One Metrics may be
// shared by several workers in a process.
type Metrics struct {
	errors   *prometheus.HistogramVec
	checks   *prometheus.CounterVec
	checkSec *prometheus.CounterVec
	changes  *prometheus.CounterVec
	policy   *prometheus.GaugeVec
	excluded *prometheus.GaugeVec
	target   *prometheus.GaugeVec
	hold     *prometheus.GaugeVec
}

// ErrorBuckets are the bucket bounds of gearbox_quality_error: 1, 2 and 5
// per decade from 1e-7 to 1, so a typical max_error (0.01, 0.02, 0.05,
// 0.1) and its half are bounds.
var ErrorBuckets = roundBuckets(-7, 0)

// roundBuckets returns 1, 2, 5 × 10^e for e from lo to hi, ending at
// 10^hi, each the float64 nearest its decimal value.
func roundBuckets(lo, hi int) []float64 {
	var bs []float64
	for e := lo; e <= hi; e++ {
		for _, m := range []int{1, 2, 5} {
			if e == hi && m > 1 {
				break
			}
			v, err := strconv.ParseFloat(fmt.Sprintf("%de%d", m, e), 64)
			if err != nil {
				panic(err) // unreachable: the text is a number
			}
			bs = append(bs, v)
		}
	}
	return bs
}

// NewMetrics creates the quality metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		errors: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gearbox_quality_error",
			Help:    "Error against the reference of sampled checks, by model, precision, role (served or candidate) and metric (rel_l2: relative L2 of the outputs, or of a language model's logits; kl: a language model's mean per-token KL divergence, in nats).",
			Buckets: ErrorBuckets,
		}, []string{"model", "precision", "role", "metric"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_quality_checks_total",
			Help: "Quality checks by model and outcome: published, dropped (the check queue was full), out_of_range (every output checked was beyond float32 at fp32: nothing to judge), failed.",
		}, []string{"model", "outcome"}),
		checkSec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_quality_check_seconds_total",
			Help: "Seconds spent running language models' quality checks (the re-runs, the comparison and the publish), by model; its rate is the share of the time checking takes, which GEARBOX_QUALITY_BUDGET bounds.",
		}, []string{"model"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_policy_changes_total",
			Help: "Precision policy changes written by this process's controller, by model and direction (up, down, or none: a precision ruled out).",
		}, []string{"model", "direction"}),
		policy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbox_policy_precision",
			Help: "1 for the precision each model's policy currently names, 0 for the others.",
		}, []string{"model", "precision"}),
		excluded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbox_policy_excluded",
			Help: "1 for each precision ruled out in a model's policy (non-finite outputs where fp32 is finite), 0 for the others.",
		}, []string{"model", "precision"}),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbox_policy_max_error",
			Help: "The accuracy target in force for each model (its policy's max_error, else its manifest's), in the model's quality metric: what gearbox_quality_error is held to.",
		}, []string{"model"}),
		hold: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbox_policy_hold",
			Help: "1 for the reason the controller holds a model's precision (off_ladder, ceiling, floor, ruled_out, evidence, margin, cooldown), 0 for the others; all 0 right after a change.",
		}, []string{"model", "reason"}),
	}
	reg.MustRegister(m.errors, m.checks, m.checkSec, m.changes, m.policy, m.excluded, m.target, m.hold)
	return m
}

// count counts a check of model with outcome; m may be nil.
func (m *Metrics) count(model, outcome string) {
	if m != nil {
		m.checks.WithLabelValues(model, outcome).Inc()
	}
}

// CheckSeconds is the counter of seconds spent in language-model checks of
// model.
func (m *Metrics) CheckSeconds(model string) prometheus.Counter {
	return m.checkSec.WithLabelValues(model)
}

// spent counts d spent checking model; m may be nil.
func (m *Metrics) spent(model string, d time.Duration) {
	if m != nil && d > 0 {
		m.checkSec.WithLabelValues(model).Add(d.Seconds())
	}
}

// done logs and counts the end of a check of model (of batch, or a
// sequence's job): err nil when report r was published. m may be nil.
func (m *Metrics) done(log zerolog.Logger, model, batch string, r *gearbox.QualityReport, err error) {
	outcome := "published"
	switch {
	case err == nil:
	case errors.Is(err, ErrOutOfRange):
		outcome = "out_of_range"
		log.Debug().Str("model", model).Str("batch", batch).Msg(err.Error())
	default:
		outcome = "failed"
		log.Warn().Err(err).Str("model", model).Str("batch", batch).Msg("quality check")
	}
	m.count(model, outcome)
	if m == nil || err != nil {
		return
	}
	observe := func(p precision.Format, role string, q *gearbox.QualityMetrics) {
		m.errors.WithLabelValues(r.Model, string(p), role, gearbox.MetricRelL2).Observe(q.RelL2)
		if q.KL != nil {
			m.errors.WithLabelValues(r.Model, string(p), role, gearbox.MetricKL).Observe(*q.KL)
		}
	}
	observe(r.Served, "served", &r.ServedMetrics)
	if r.CandidateMetrics != nil {
		observe(r.Candidate, "candidate", r.CandidateMetrics)
	}
}

// current shows the policy in force for its model.
func (m *Metrics) current(p *gearbox.PrecisionPolicy) {
	for _, f := range precision.All {
		m.policy.WithLabelValues(p.Model, string(f)).Set(indicator(f == p.Precision))
		m.excluded.WithLabelValues(p.Model, string(f)).Set(indicator(slices.Contains(p.Excluded, f)))
	}
}

// holding shows why the controller holds model's precision ("": it does
// not).
func (m *Metrics) holding(model string, h Hold) {
	for _, x := range Holds {
		m.hold.WithLabelValues(model, string(x)).Set(indicator(x == h))
	}
}

func indicator(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
