package demo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/demo"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// TestLMWalk runs the language-model run with its walk on the CPU backend,
// every generation checked and a few reports a step: from fp32 the policy
// walks one rung at a time, each step on the next rung's KL within the
// margin, to bf16, and holds there because fp8's KL is over it (on the
// shipped model fp8's KL against fp32 is about 0.01, bf16's 4e-5).
func TestLMWalk(t *testing.T) {
	dir, err := demo.FindModel()
	if err != nil {
		t.Fatal(err)
	}
	m, err := lm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rules := quality.Rules{Window: 3, MinSamples: 3, Cooldown: time.Millisecond}
	rep, err := demo.Run(context.Background(), demo.Config{Jobs: -1, Workers: 1, Dir: t.TempDir(), Backend: b,
		Worker: worker.Config{Quality: quality.Config{Sample: 1, Queue: 1, Control: true, Rules: rules}},
		LM: &demo.LMConfig{Dir: dir, Prompts: 4, MaxTokens: 4, Precisions: []precision.Format{precision.FP32},
			Walk: 240, WalkTokens: 16, GoRoot: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Unexpected(); n != 0 {
		t.Errorf("%d results were errors, at another precision, or repeated", n)
	}
	w := rep.LM.Walk()
	if w.Skipped != "" {
		t.Fatalf("no walk: %s", w.Skipped)
	}
	st := w.Status
	t.Logf("%d auto jobs %v, %d reports; %s holding (%s): %s", w.Answered, w.Ran, len(w.Reports), st.Policy.Precision, st.Hold, st.Reason)
	if !w.Settled || st.Policy.Precision != precision.BF16 || st.Hold != quality.HoldMargin {
		t.Fatalf("the walk ended at %s holding %q (settled %v); want bf16, held by the margin", st.Policy.Precision, st.Hold, w.Settled)
	}

	// The walk: the policy the demo set, then one rung down at a time.
	bound := rules.WithDefaults().Margin * m.Quality.MaxError
	var got []precision.Format
	for i, p := range w.Policies {
		got = append(got, p.Precision)
		if i == 0 {
			if p.By != quality.ManualBy || p.Precision != precision.FP32 {
				t.Errorf("first policy %s by %s; want fp32, set by hand", p.Precision, p.By)
			}
			continue
		}
		if ev := p.Evidence; ev == nil || ev.Precision != p.Precision || ev.Samples < rules.MinSamples || !(ev.UpperBound <= bound) {
			t.Errorf("change to %s: evidence %+v; want ≥ %d reports of it with KL ≤ %g", p.Precision, p.Evidence, rules.MinSamples, bound)
		}
	}
	if want := []precision.Format{precision.FP32, precision.TF32, precision.BF16}; !slices.Equal(got, want) {
		t.Errorf("policies %v; want %v", got, want)
	}
	// It holds because fp8's KL is over the margin, in the reports.
	i := slices.IndexFunc(st.Windows, func(e gearbox.Evidence) bool { return e.Precision == precision.FP8 })
	if i < 0 || !(st.Windows[i].UpperBound > bound) || st.Windows[i].Samples < rules.MinSamples {
		t.Errorf("windows %+v; want fp8's, over %g", st.Windows, bound)
	}
	fp8 := 0
	for _, r := range w.Reports {
		if r.Metric != gearbox.MetricKL || r.Reference != string(precision.FP32) || r.ServedMetrics.KL == nil {
			t.Errorf("report of %s: metric %q against %q, kl %v; want KL against fp32", r.Batch, r.Metric, r.Reference, r.ServedMetrics.KL)
		}
		if r.Candidate == precision.FP8 && r.Error(r.CandidateMetrics) > bound {
			fp8++
		}
	}
	if fp8 == 0 {
		t.Errorf("no report has fp8's KL over %g", bound)
	}
	if w.Ran[precision.FP8] != 0 || w.Ran[precision.FP32] == 0 || w.Ran[precision.BF16] == 0 {
		t.Errorf("auto jobs ran at %v; want fp32 first, bf16 last, never fp8", w.Ran)
	}

	var out bytes.Buffer
	rep.Print(&out)
	for _, want := range []string{"→ fp32  by manual", "→ tf32  by demo-w", "→ bf16  by demo-w", "holds at bf16 (margin)", "fp8 kl upper bound"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	files, err := rep.WritePlots(t.TempDir(), ".png")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || filepath.Base(files[1]) != demo.LMPolicyPlot+".png" {
		t.Fatalf("plots %v; want the language model's two", files)
	}
	checkPNG(t, files[1])
}
