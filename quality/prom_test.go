package quality

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestErrorBucketsAreRound: the quality-error histogram's bounds are 1, 2
// and 5 per decade, each exactly its decimal value, so a target such as
// 0.01 or its half is a bound and dashboards show round numbers.
func TestErrorBucketsAreRound(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.errors.WithLabelValues("m", "fp32", "served", "rel_l2").Observe(1e-7)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() == "gearbox_quality_error" {
			for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				got = append(got, strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
			}
		}
	}
	want := []string{"1e-07", "2e-07", "5e-07", "1e-06", "2e-06", "5e-06", "1e-05", "2e-05", "5e-05",
		"0.0001", "0.0002", "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"}
	if len(got) != len(want) {
		t.Fatalf("buckets %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d: %s; want %s", i, got[i], want[i])
		}
	}
}
