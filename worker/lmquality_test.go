package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// gocoderAt loads a copy of the shipped Go-code model (its own, so the
// test may change it) judged against an fp32 reference and starting at
// initial.
func gocoderAt(t *testing.T, initial precision.Format) func() (*lm.Model, error) {
	return func() (*lm.Model, error) {
		m, err := lm.Load("../testdata/models/gocoder")
		if err != nil {
			return nil, err
		}
		m.Quality.Reference = precision.FP32
		m.Precision.Initial = initial
		return m, nil
	}
}

// lmJobs submits n generate jobs to model at p, sampled (temperature 0.8,
// a seed per job id) so that the sequences differ, 4 tokens each.
func (e *env) lmJobs(model string, p precision.Format, n int, next *atomic.Int64) {
	e.t.Helper()
	for range n {
		i := next.Add(1)
		j := &gearbox.Job{ID: fmt.Sprintf("%s-%d", model, i), Model: model, Precision: p,
			LMRequest: gearbox.LMRequest{Prompt: goPrompts[int(i)%len(goPrompts)], MaxTokens: lmPtr(4), Temperature: lmPtr(0.8)}}
		if _, err := e.client.Submit(context.Background(), j); err != nil {
			e.t.Fatal(err)
		}
	}
}

// reports reads the quality reports of model stored so far.
func (e *env) reports(model string) []*gearbox.QualityReport {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := e.client.Subjects()
	cons, err := e.js.OrderedConsumer(ctx, s.QualityStream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.Quality(model)}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*gearbox.QualityReport
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			r, err := gearbox.DecodeQualityReport(m.Data(), gearbox.EncodingOf(m.Headers()))
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, r)
		}
		if n == 0 {
			return out
		}
	}
}

// TestLMQualityReports: generations of the shipped model at fp32 and at fp8,
// through a real server and worker, are checked teacher-forced against
// fp32: at fp32 the KL is 0 exactly, at fp8 above 0, and fp4 (the shadow
// rung below fp8) is further off than fp8.
func TestLMQualityReports(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	m := e.withLM(gocoderAt(t, precision.FP32))
	e.start("w", worker.Config{KVBytes: 8 << 20, Quality: quality.Config{Sample: 1, Queue: 16}}, nil)
	var next atomic.Int64
	e.lmJobs(m.Name, precision.FP32, 2, &next)
	e.lmJobs(m.Name, precision.FP8, 2, &next)
	e.results(4)
	var rs []*gearbox.QualityReport
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if rs = e.reports(m.Name); len(rs) < 4 {
			return fmt.Errorf("%d reports; want 4", len(rs))
		}
		return nil
	})
	for _, r := range rs {
		s, c := r.ServedMetrics, r.CandidateMetrics
		if r.Metric != gearbox.MetricKL || r.Reference != "fp32" || r.Tokens < 1 || r.Rows != 1 || s.KL == nil || s.Top1 == nil || c == nil || c.KL == nil {
			t.Fatalf("report of %s: metric %q, reference %q, %d tokens, %d rows, served %+v, candidate %+v", r.Batch, r.Metric, r.Reference, r.Tokens, r.Rows, s, c)
		}
		t.Logf("%s at %s, %d tokens: KL %.3g, top1 %.2f, rel L2 %.3g; shadow %s: KL %.3g, top1 %.2f, rel L2 %.3g",
			r.Batch, r.Served, r.Tokens, *s.KL, *s.Top1, s.RelL2, r.Candidate, *c.KL, *c.Top1, c.RelL2)
		switch r.Served {
		case precision.FP32:
			if *s.KL != 0 || *s.Top1 != 1 || s.RelL2 != 0 || r.Candidate != precision.TF32 {
				t.Errorf("%s at fp32: KL %g, top1 %g, rel L2 %g, shadow %s; want 0, 1, 0, tf32", r.Batch, *s.KL, *s.Top1, s.RelL2, r.Candidate)
			}
		case precision.FP8:
			if !(*s.KL > 0 && *c.KL > *s.KL) || r.Candidate != precision.FP4 {
				t.Errorf("%s at fp8: KL %g, shadow %s KL %g; want fp4 > fp8 > 0", r.Batch, *s.KL, r.Candidate, *c.KL)
			}
		default:
			t.Errorf("report of %s served at %s", r.Batch, r.Served)
		}
	}
}

// TestLMQualityLoopWalksDown: auto generate jobs of the shipped model,
// starting at fp32, with the controller on: the policy walks down the
// ladder one rung at a time, each step on a window of KL within the margin
// of the bound, until the next rung's KL is over the margin (or the floor).
func TestLMQualityLoopWalksDown(t *testing.T) {
	t.Parallel()
	e := setup(t, gearbox.StreamsConfig{})
	m := e.withLM(gocoderAt(t, precision.FP32))
	rules := quality.Rules{Window: 3, MinSamples: 2, Cooldown: time.Millisecond}
	e.start("w", worker.Config{KVBytes: 8 << 20, Quality: quality.Config{Sample: 1, Queue: 8, Control: true, Rules: rules}}, nil)
	kv, err := gearbox.PolicyStore(context.Background(), e.js, e.client.Subjects(), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	bound := rules.WithDefaults().Margin * m.Quality.MaxError
	var next atomic.Int64
	var st quality.Status
	for round := 0; ; round++ {
		if round == 40 {
			t.Fatalf("after %d jobs the policy is %s, holding: %s (%s)", next.Load(), st.Policy.Precision, st.Hold, st.Reason)
		}
		e.lmJobs(m.Name, precision.Auto, 4, &next)
		e.results(int(next.Load()))
		checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if n := len(e.reports(m.Name)); n < 4*(round+1)/2 {
				return fmt.Errorf("%d reports after %d rounds", n, round+1)
			}
			return nil
		})
		var ok bool
		if st, ok, err = quality.Inspect(context.Background(), e.js, e.client.Subjects(), kv, m.Name, rules); err != nil || !ok {
			t.Fatalf("inspect: %v (found %v)", err, ok)
		}
		if st.Rev > 0 && len(st.Pending) == 0 && (st.Hold == quality.HoldMargin || st.Hold == quality.HoldFloor) {
			break
		}
	}
	t.Logf("after %d jobs: %s, holding %s: %s", next.Load(), st.Policy.Precision, st.Hold, st.Reason)

	// The walk: each change one rung down, on KL evidence within the margin.
	es, err := kv.History(context.Background(), m.Name)
	if err != nil {
		t.Fatal(err)
	}
	prev := precision.FP32
	for _, en := range es {
		p, err := gearbox.DecodePolicy(en.Value())
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := precision.Next(m.Precision.Ladder, prev); p.Precision != want {
			t.Errorf("revision %d: %s after %s; want one rung down, %s", en.Revision(), p.Precision, prev, want)
		}
		if ev := p.Evidence; ev == nil || ev.Precision != p.Precision || ev.Samples < rules.MinSamples || !(ev.UpperBound <= bound) {
			t.Errorf("revision %d to %s: evidence %+v; want ≥ %d samples with KL ≤ %g", en.Revision(), p.Precision, ev, rules.MinSamples, bound)
		}
		t.Logf("revision %d: %s (%s)", en.Revision(), p.Precision, p.Reason)
		prev = p.Precision
	}
	if prev != st.Policy.Precision {
		t.Errorf("the history ends at %s; the policy is %s", prev, st.Policy.Precision)
	}
	// It stops where the next rung misses the margin.
	if st.Hold == quality.HoldMargin {
		cand, _ := precision.Next(m.Precision.Ladder, st.Policy.Precision)
		for _, w := range st.Windows {
			if w.Precision == cand && !(w.UpperBound > bound) {
				t.Errorf("held at %s by the margin, but %s's KL upper bound %g is within %g", st.Policy.Precision, cand, w.UpperBound, bound)
			}
		}
	}
}
