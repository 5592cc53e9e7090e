package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

func TestPrintPolicy(t *testing.T) {
	var b bytes.Buffer
	printPolicy(&b, 3, &gearbox.PrecisionPolicy{
		Model: "demo", Precision: precision.FP8, Floor: precision.FP4, Ceiling: precision.FP32, MaxError: 0.1,
		Reason:   "fp8 error upper bound 0.04 over 20 reports is within 0.5 × max_error 0.1",
		Evidence: &gearbox.Evidence{Precision: precision.FP8, Samples: 20, Workers: 3, UpperBound: 0.04, Mean: 0.03, FirstSeq: 10, LastSeq: 29},
		Measured: map[precision.Format]float64{precision.BF16: 0.004, precision.FP8: 0.04},
		Excluded: []precision.Format{precision.FP4},
		Seq:      29, By: "w1", UpdatedAt: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC),
	}, nil)
	for _, want := range []string{"demo (revision 3)", "fp8 [floor fp4, ceiling fp32]", "max_error  0.1", "20 reports from 3 workers (seq 10–29)",
		"bf16 0.004, fp8 0.04", "[fp4] (non-finite outputs where fp32 is finite)", "by         w1 at"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPolicyGetShowsWhyTheControllerHolds: `policy get` shows the
// controller's view, replayed from the reports: before any policy is
// stored, and after a precision is ruled out.
func TestPolicyGetShowsWhyTheControllerHolds(t *testing.T) {
	srv := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	subj := gearbox.DefaultSubjects
	ctx := context.Background()
	if err := gearbox.Provision(ctx, js, subj, gearbox.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int, candNonFinite int) {
		t.Helper()
		for range n {
			r := &gearbox.QualityReport{Model: "m", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
				Served: precision.FP32, ServedMetrics: gearbox.QualityMetrics{RelL2: 1e-7}, Reference: "fp64", Worker: "w", Rows: 16,
				Candidate: precision.TF32, CandidateMetrics: &gearbox.QualityMetrics{RelL2: 1e-4, NonFinite: candNonFinite}}
			msg, err := gearbox.NewMsg(subj.Quality("m"), r, gearbox.Msgpack)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := []string{"GEARBOX_NATS_URL=" + srv.ClientURL()}
	get := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, append([]string{"policy", "get"}, args...)...)
		if code != 0 {
			t.Fatalf("policy get %q: exit status %d: %s", args, code, stderr)
		}
		return stdout
	}
	if code, _, stderr := runCLI(t, env, "policy", "get", "m"); code != 1 || !strings.Contains(stderr, "no policy and no quality reports") {
		t.Fatalf("no policy, no reports: exit status %d, %s", code, stderr)
	}

	publish(5, 0)
	out := strings.Join(strings.Fields(get("m")), " ") // columns aside
	for _, want := range []string{"m (no policy stored: the manifest's)", "holding fp32 (evidence): tf32 has 5 of the 20 reports a step down needs",
		"window tf32: 5 reports"} {
		if !strings.Contains(out, want) {
			t.Errorf("before any policy, output lacks %q:\n%s", want, out)
		}
	}

	// A controller rules tf32 out (a stored change); the next report holds.
	kv, err := gearbox.PolicyStore(ctx, js, subj, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- (&quality.Runner{JS: js, Subjects: subj, KV: kv, Name: "w", Log: zerolog.Nop()}).Run(rctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	publish(1, 3)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if e, err := kv.Get(ctx, "m"); err == nil {
			p, err := gearbox.DecodePolicy(e.Value())
			if err != nil || !slices.Equal(p.Excluded, []precision.Format{precision.TF32}) || p.Precision != precision.FP32 {
				t.Fatalf("stored %+v, %v; want fp32 with tf32 excluded", p, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no policy stored 30 s after tf32 produced non-finite outputs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	publish(1, 0)
	out = strings.Join(strings.Fields(get("m")), " ")
	for _, want := range []string{"m (revision 1)", "reason tf32 ruled out: 3 non-finite outputs where fp32 is finite (report 6)",
		"excluded [tf32]", "holding fp32 (ruled_out): tf32, the next cheaper rung, is ruled out", "[report seq 7]"} {
		if !strings.Contains(out, want) {
			t.Errorf("after tf32 was ruled out, output lacks %q:\n%s", want, out)
		}
	}
	var line struct {
		Revision   uint64          `json:"revision"`
		Excluded   []string        `json:"excluded"`
		Controller *quality.Status `json:"controller"`
	}
	if err := json.Unmarshal([]byte(get("m", "--json")), &line); err != nil {
		t.Fatal(err)
	}
	if line.Revision != 1 || len(line.Excluded) != 1 || line.Controller == nil || line.Controller.Hold != quality.HoldRuledOut {
		t.Errorf("--json: %+v", line)
	}
}
