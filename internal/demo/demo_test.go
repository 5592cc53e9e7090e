package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox/internal/demo"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
)

// TestDemo runs a small demo end to end: every job is answered, the invalid
// ones (and only they) with errors, and the summary table is printed.
func TestDemo(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := demo.Run(context.Background(), demo.Config{Jobs: 600, Workers: 2, BadEvery: 50, Dir: t.TempDir(), Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if got := sum.Results(); got != 600 {
		t.Errorf("answered %d jobs; want 600", got)
	}
	if got := sum.Errors(); got != 12 {
		t.Errorf("%d error results; want 12 (every 50th job is invalid)", got)
	}
	if got := sum.Unexpected(); got != 0 {
		t.Errorf("%d results did not match their job", got)
	}
	var out bytes.Buffer
	sum.Print(&out)
	for _, want := range []string{"jobs answered", "latency p50", "rows per batch", "auto  → fp32", "shape_mismatch", "unknown_model", "bad_request"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
