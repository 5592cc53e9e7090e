package gearbox_test

import (
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestQualityReportMetric: a report names rel_l2 (or nothing) or kl, and
// its error is by that metric.
func TestQualityReportMetric(t *testing.T) {
	kl := 0.003
	m := gearbox.QualityMetrics{RelL2: 0.2, KL: &kl}
	for _, c := range []struct {
		metric string
		want   float64
		err    string
	}{
		{"", 0.2, ""},
		{gearbox.MetricRelL2, 0.2, ""},
		{gearbox.MetricKL, 0.003, ""},
		{"ppl", 0, `metric "ppl" is not rel_l2 or kl`},
	} {
		r := &gearbox.QualityReport{Model: "m", Served: precision.BF16, Initial: precision.FP32, MaxError: 0.01,
			Ladder: []precision.Format{precision.FP32, precision.BF16}, Metric: c.metric, ServedMetrics: m}
		err := r.Validate()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("metric %q: %v; want an error containing %q", c.metric, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("metric %q: %v", c.metric, err)
		}
		if got := r.Error(&r.ServedMetrics); got != c.want {
			t.Errorf("metric %q: error %g; want %g", c.metric, got, c.want)
		}
	}
}
