package quality

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbox-inference/gearbox/precision"
)

// Metrics are the quality loop's Prometheus metrics. One Metrics may be
// shared by several workers in a process.
type Metrics struct {
	errors  *prometheus.HistogramVec
	checks  *prometheus.CounterVec
	changes *prometheus.CounterVec
	policy  *prometheus.GaugeVec
}

// NewMetrics creates the quality metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		errors: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gearbox_quality_error",
			Help:    "Relative L2 error against the reference of sampled checks, by model, precision and role (served or candidate).",
			Buckets: prometheus.ExponentialBuckets(1e-7, 3.1623, 16), // 1e-7 … ~3
		}, []string{"model", "precision", "role"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_quality_checks_total",
			Help: "Quality checks by model and outcome: published, dropped (the check queue was full), failed.",
		}, []string{"model", "outcome"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gearbox_policy_changes_total",
			Help: "Precision policy changes written by this process's controller, by model and direction (up or down).",
		}, []string{"model", "direction"}),
		policy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gearbox_policy_precision",
			Help: "1 for the precision each model's policy currently names, 0 for the others.",
		}, []string{"model", "precision"}),
	}
	reg.MustRegister(m.errors, m.checks, m.changes, m.policy)
	return m
}

func (m *Metrics) current(model string, p precision.Format) {
	for _, f := range precision.All {
		v := 0.0
		if f == p {
			v = 1
		}
		m.policy.WithLabelValues(model, string(f)).Set(v)
	}
}
