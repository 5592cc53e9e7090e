package demo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox/internal/demo"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// TestDemo runs a small demo end to end: every job is answered, the invalid
// ones (and only they) with errors, the quality loop moves the policy, and
// the summary table is printed. The jobs are paced over about two seconds:
// a burst of 600 small jobs is answered in a fraction of that, before the
// quality reports have made their way through the controller and the
// policy bucket to the demo (CI, with -race on 2 busy cores, once saw no
// change at all).
func TestDemo(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := demo.Run(context.Background(), demo.Config{Jobs: 600, Workers: 2, BadEvery: 50, Dir: t.TempDir(), Backend: b,
		Worker:   worker.Config{Quality: quality.Config{Sample: 1, Control: true, Rules: quality.Rules{Cooldown: time.Millisecond, MinSamples: 3, Window: 3}}},
		MaxError: 0.2, Rate: 300})
	if err != nil {
		t.Fatal(err)
	}
	sum := rep.Tensor
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
	// Every batch is checked and 3 samples suffice: the policy leaves fp32.
	if ch := sum.PolicyChanges(); len(ch) == 0 || ch[0] != precision.TF32 {
		t.Errorf("policy changes %v; want a first step down to tf32", ch)
	}
	for _, want := range []string{"jobs answered", "latency p50", "rows per batch", "auto  → fp32", "shape_mismatch", "unknown_model", "bad_request",
		"precision policy", "→ tf32", "auto jobs by when they were answered"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	files, err := rep.WritePlots(filepath.Join(t.TempDir(), "plots"), ".png")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || filepath.Base(files[0]) != demo.TensorPolicyPlot+".png" || filepath.Base(files[1]) != demo.TensorPrecisionsPlot+".png" {
		t.Fatalf("plots %v; want the tensor run's two", files)
	}
	for _, f := range files {
		checkPNG(t, f)
	}
}
