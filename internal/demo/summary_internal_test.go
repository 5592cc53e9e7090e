package demo

import (
	"strings"
	"testing"
	"time"
)

// TestBacklog: the summary says when its latency is queueing, because
// jobs were published faster than they were served, and only then.
func TestBacklog(t *testing.T) {
	tests := []struct {
		name      string
		rate      float64
		published time.Duration
		want      string // "" for no note
	}{
		{"burst", 0, time.Second, "the 1000 jobs were published in 1.00s (1000 jobs/s, a burst), faster than the workers served them (100 jobs/s)"},
		{"paced too fast", 500, 2 * time.Second, "jobs were published at 500 jobs/s, faster than the workers served them (100 jobs/s)"},
		{"paced below the serving rate", 95, 10500 * time.Millisecond, ""},
		{"published as fast as served", 0, 9500 * time.Millisecond, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSummary(1000)
			s.n, s.rate, s.published, s.elapsed = 1000, tt.rate, tt.published, 10*time.Second
			got := strings.ReplaceAll(s.backlog(), "\n\t", " ")
			if tt.want == "" {
				if got != "" {
					t.Errorf("backlog() = %q; want none", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) || !strings.Contains(got, "with --rate below 100, latency is service time") {
				t.Errorf("backlog() = %q; want it to say %q and how to measure service latency", got, tt.want)
			}
		})
	}
}
