package quality

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// feed drives a controller with hand-made reports, one second of stream time
// apart, and records the decisions as if each write landed.
type feed struct {
	t   *testing.T
	c   *Controller
	seq uint64
	at  time.Time
	rev uint64
	got []*Decision
}

func newFeed(t *testing.T, r Rules) *feed {
	t.Helper()
	c, err := NewController(r)
	if err != nil {
		t.Fatal(err)
	}
	return &feed{t: t, c: c, at: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
}

// report sends a report for model "m" (ladder fp32 tf32 bf16 fp8 fp4,
// max_error 0.1) served at served with error se, and if cand is set its
// candidate with error ce. It returns the decision, if any.
func (f *feed) report(served precision.Format, se float64, cand precision.Format, ce float64) *Decision {
	f.t.Helper()
	f.seq++
	f.at = f.at.Add(time.Second)
	r := &gearbox.QualityReport{
		Model: "m", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
		Served: served, ServedMetrics: gearbox.QualityMetrics{RelL2: se},
		Worker: "w" + string(rune('a'+f.seq%3)),
	}
	if cand != "" {
		r.Candidate, r.CandidateMetrics = cand, &gearbox.QualityMetrics{RelL2: ce}
	}
	if se < 0 {
		r.ServedMetrics = gearbox.QualityMetrics{NonFinite: 3}
	}
	if cand != "" && ce < 0 {
		r.CandidateMetrics = &gearbox.QualityMetrics{NonFinite: 1}
	}
	if err := r.Validate(); err != nil {
		f.t.Fatal(err)
	}
	d := f.c.Observe(f.seq, f.at, r)
	if d != nil {
		if d.Rev != f.rev {
			f.t.Fatalf("decision at seq %d based on revision %d, want %d", f.seq, d.Rev, f.rev)
		}
		f.rev++
		f.c.Written(d, f.rev)
		f.got = append(f.got, d)
	}
	return d
}

func (f *feed) precision() precision.Format {
	p, _, ok := f.c.Policy("m")
	if !ok {
		return precision.FP32 // the manifest's initial precision
	}
	return p.Precision
}

// good sends n reports at the current precision whose candidate (next
// rung) has error ce and served error se.
func (f *feed) good(n int, se, ce float64) *Decision {
	var last *Decision
	for range n {
		cur := f.precision()
		cand, _ := precision.Next(precision.DefaultLadder, cur)
		if d := f.report(cur, se, cand, ce); d != nil {
			last = d
		}
	}
	return last
}

func TestStepDownOnlyWithEnoughEvidence(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Nanosecond})
	// 19 good candidate reports: not enough.
	for i := range 19 {
		if d := f.report(precision.FP32, 1e-7, precision.TF32, 1e-4); d != nil {
			t.Fatalf("report %d: stepped to %s with %d samples", i+1, d.Policy.Precision, i+1)
		}
	}
	d := f.report(precision.FP32, 1e-7, precision.TF32, 1e-4)
	if d == nil || d.Policy.Precision != precision.TF32 || d.Direction() != "down" {
		t.Fatalf("20th report: decision %+v, want down to tf32", d)
	}
	if e := d.Policy.Evidence; e.Samples != 20 || e.UpperBound != 1e-4 || e.Workers != 3 || e.FirstSeq != 1 || e.LastSeq != 20 {
		t.Fatalf("evidence %+v", e)
	}
	if d.Policy.Seq != 20 || d.Policy.Measured[precision.TF32] != 1e-4 || d.Policy.Measured[precision.FP32] != 1e-7 {
		t.Fatalf("policy %+v", d.Policy)
	}
	// The statistics restart at the change: 19 more bf16 reports are not enough.
	if d := f.good(19, 1e-4, 1e-3); d != nil {
		t.Fatalf("stepped to %s on 19 fresh samples", d.Policy.Precision)
	}
	if d := f.good(1, 1e-4, 1e-3); d == nil || d.Policy.Precision != precision.BF16 {
		t.Fatalf("decision %+v, want bf16", d)
	}
}

func TestStepDownNeedsMargin(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Nanosecond})
	// Candidate errors of 0.06 meet max_error 0.1 but not 0.5 × 0.1.
	if d := f.good(100, 1e-7, 0.06); d != nil {
		t.Fatalf("stepped down to %s at 0.6 × max_error", d.Policy.Precision)
	}
	// One bad report in the window blocks the step until it leaves the window (50).
	f = newFeed(t, Rules{Cooldown: time.Nanosecond})
	f.good(10, 1e-7, 1e-4)
	f.good(1, 1e-7, 0.07)
	if d := f.good(49, 1e-7, 1e-4); d != nil {
		t.Fatalf("stepped down at seq %d with a bad report in the window", f.seq)
	}
	if d := f.good(1, 1e-7, 1e-4); d == nil {
		t.Fatal("no step down once the bad report left the window")
	}
}

func TestStepUpAtOnce(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Hour})
	f.good(20, 1e-7, 1e-4) // → tf32, cooldown starts
	if f.precision() != precision.TF32 {
		t.Fatalf("at %s", f.precision())
	}
	// One served report over max_error steps up at once, cooldown or not.
	d := f.report(precision.TF32, 0.2, precision.BF16, 0.3)
	if d == nil || d.Direction() != "up" || d.Policy.Precision != precision.FP32 {
		t.Fatalf("decision %+v, want up to fp32", d)
	}
	if d.Policy.Evidence.UpperBound != 0.2 || d.Policy.Evidence.Precision != precision.TF32 {
		t.Fatalf("evidence %+v", d.Policy.Evidence)
	}
	// At the ceiling a breach changes nothing.
	if d := f.report(precision.FP32, 0.5, precision.TF32, 0.5); d != nil {
		t.Fatalf("stepped %+v above the ceiling", d.Policy)
	}
}

func TestCooldownDelaysStepDown(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: 60 * time.Second})
	f.good(20, 1e-7, 1e-4) // → tf32 at t=20s (no cooldown before the first change)
	if f.precision() != precision.TF32 {
		t.Fatalf("at %s", f.precision())
	}
	changed := f.seq
	// Reports come a second apart: the next step down waits for 60 s of
	// stream time even though 20 samples arrive after 20 s.
	for f.precision() == precision.TF32 {
		f.good(1, 1e-4, 1e-3)
		if f.seq > 200 {
			t.Fatal("never stepped down")
		}
	}
	if got := f.seq - changed; got != 60 {
		t.Fatalf("stepped down %d reports (seconds) after the change, want 60", got)
	}
}

func TestFloorAndCeiling(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Nanosecond})
	f.good(1, 1e-7, 1e-4)
	p, rev, _ := f.c.Policy("m")
	p.Floor, p.Ceiling = precision.BF16, precision.TF32
	p.Seq = f.seq
	p.By = "manual"
	f.c.Adopt(rev+1, p)
	f.rev = rev + 1
	// fp32 is above the ceiling: the next report moves it to tf32.
	d := f.report(precision.FP32, 1e-7, precision.TF32, 1e-4)
	if d == nil || d.Policy.Precision != precision.TF32 {
		t.Fatalf("decision %+v, want tf32 (the ceiling)", d)
	}
	for range 200 {
		f.good(1, 1e-4, 1e-4)
	}
	if f.precision() != precision.BF16 {
		t.Fatalf("at %s, want bf16 (the floor)", f.precision())
	}
	// A breach at bf16 goes to tf32, never above the ceiling.
	f.report(precision.BF16, 0.5, precision.FP8, 0.5)
	f.report(precision.TF32, 0.5, precision.BF16, 0.5)
	if f.precision() != precision.TF32 {
		t.Fatalf("at %s, want tf32", f.precision())
	}
}

func TestNonFiniteRulesOut(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Nanosecond})
	// A candidate with non-finite outputs is never stepped down to, even
	// with perfect reports later.
	f.report(precision.FP32, 1e-7, precision.TF32, -1)
	if d := f.good(100, 1e-7, 1e-5); d != nil {
		t.Fatalf("stepped down to %s after non-finite values", d.Policy.Precision)
	}
	// Served non-finite values step up at once and exclude the precision.
	f = newFeed(t, Rules{Cooldown: time.Nanosecond})
	f.good(20, 1e-7, 1e-4)
	f.good(20, 1e-4, 1e-3) // → bf16
	if f.precision() != precision.BF16 {
		t.Fatalf("at %s", f.precision())
	}
	d := f.report(precision.BF16, -1, precision.FP8, 0.01)
	if d == nil || d.Direction() != "up" || d.Policy.Precision != precision.TF32 {
		t.Fatalf("decision %+v, want up to tf32", d)
	}
	if len(d.Policy.Excluded) != 1 || d.Policy.Excluded[0] != precision.BF16 {
		t.Fatalf("excluded %v, want [bf16]", d.Policy.Excluded)
	}
	if d := f.good(200, 1e-4, 1e-3); d != nil {
		t.Fatalf("stepped to %s after bf16 was ruled out", d.Policy.Precision)
	}
}

func TestNoOscillation(t *testing.T) {
	// fp8 at 0.04, fp4 at 0.14, max_error 0.1: reaches fp8 and stays.
	errs := map[precision.Format]float64{precision.FP32: 1e-7, precision.TF32: 3e-4, precision.BF16: 3e-3, precision.FP8: 0.04, precision.FP4: 0.14}
	f := newFeed(t, Rules{Cooldown: 5 * time.Second})
	for range 5000 {
		cur := f.precision()
		cand, _ := precision.Next(precision.DefaultLadder, cur)
		f.report(cur, errs[cur], cand, errs[cand])
	}
	if f.precision() != precision.FP8 || len(f.got) != 3 {
		t.Fatalf("at %s after %d changes, want fp8 after 3", f.precision(), len(f.got))
	}
}

func TestDeterministicReplay(t *testing.T) {
	// Two controllers fed the same reports decide the same things at the
	// same sequences; one that starts from the policy at a change and the
	// reports after it continues identically.
	errs := map[precision.Format]float64{precision.FP32: 1e-7, precision.TF32: 3e-4, precision.BF16: 3e-3, precision.FP8: 0.04, precision.FP4: 0.14}
	a := newFeed(t, Rules{Cooldown: 3 * time.Second})
	var reports []*gearbox.QualityReport
	var times []time.Time
	for range 300 {
		cur := a.precision()
		cand, _ := precision.Next(precision.DefaultLadder, cur)
		e := errs[cand] * float64(1+a.seq%7) / 4
		a.report(cur, errs[cur], cand, e)
		reports = append(reports, &gearbox.QualityReport{Model: "m", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
			Served: cur, ServedMetrics: gearbox.QualityMetrics{RelL2: errs[cur]}, Candidate: cand, CandidateMetrics: &gearbox.QualityMetrics{RelL2: e}})
		times = append(times, a.at)
	}
	if len(a.got) < 2 {
		t.Fatalf("only %d changes", len(a.got))
	}
	// A late starter adopts the first change and replays after it.
	b, _ := NewController(Rules{Cooldown: 3 * time.Second})
	b.Replay(1, []PolicyEntry{{PrecisionPolicy: a.got[0].Policy, Rev: 1}})
	var got []*Decision
	for i := a.got[0].Policy.Seq; i < uint64(len(reports)); i++ {
		if d := b.Observe(i+1, times[i], reports[i]); d != nil {
			got = append(got, d)
		}
	}
	if len(got) != len(a.got)-1 {
		t.Fatalf("late starter made %d changes, want %d", len(got), len(a.got)-1)
	}
	for i, d := range got {
		w := a.got[i+1]
		if d.Policy.Seq != w.Policy.Seq || d.Policy.Precision != w.Policy.Precision || d.Policy.Reason != w.Policy.Reason {
			t.Fatalf("change %d: %s at %d (%s), want %s at %d (%s)", i, d.Policy.Precision, d.Policy.Seq, d.Policy.Reason,
				w.Policy.Precision, w.Policy.Seq, w.Policy.Reason)
		}
	}
}

func TestAdoptManualChangeRewinds(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Nanosecond})
	f.good(30, 1e-7, 1e-4) // → tf32 at 20, then 10 more
	p, rev, _ := f.c.Policy("m")
	p.Precision, p.MaxError, p.Seq, p.By = precision.FP32, 1e-5, 25, "manual"
	if from := f.c.Adopt(rev+1, p); from != 26 {
		t.Fatalf("replay from %d, want 26", from)
	}
	if f.c.Position("m") != 25 {
		t.Fatalf("position %d", f.c.Position("m"))
	}
	// A second manual change at the same point (no reports between) is
	// adopted too.
	p.MaxError = 0.5
	f.c.Adopt(rev+2, p)
	f.rev = rev + 2
	if q, r, _ := f.c.Policy("m"); q.MaxError != 0.5 || r != rev+2 {
		t.Fatalf("second manual set not adopted: %+v at %d", q, r)
	}
	// The same decision written by another controller (this one's write
	// lost the compare-and-swap) changes nothing but the revision.
	c, _ := NewController(Rules{Cooldown: time.Nanosecond})
	var d *Decision
	for i := uint64(1); d == nil; i++ {
		d = c.Observe(i, f.at, &gearbox.QualityReport{Model: "m", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
			Served: precision.FP32, Candidate: precision.TF32, CandidateMetrics: &gearbox.QualityMetrics{RelL2: 1e-4}})
	}
	other := d.Policy
	other.By = "another-worker"
	pos := c.Position("m")
	if from := c.Adopt(7, other); from != 0 || c.Position("m") != pos {
		t.Fatalf("replay from %d, position %d → %d for the decision held", from, pos, c.Position("m"))
	}
	if _, rev, _ := c.Policy("m"); rev != 7 {
		t.Fatalf("revision %d; want 7", rev)
	}
}

func TestRulesValidate(t *testing.T) {
	for _, r := range []Rules{{Window: 10, MinSamples: 11}, {Margin: 1.5}, {Margin: -1}, {Cooldown: -time.Second}, {Window: -1}} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
	if err := (Rules{}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestHolds: whenever a report changes nothing, the controller says why.
func TestHolds(t *testing.T) {
	pinned := func(f *feed, edit func(*gearbox.PrecisionPolicy)) {
		f.good(1, 1e-7, 1e-4)
		p, rev, _ := f.c.Policy("m")
		p.Seq, p.By = f.seq, ManualBy
		edit(&p)
		f.c.Adopt(rev+1, p)
		f.rev = rev + 1
	}
	for _, c := range []struct {
		name  string
		rules Rules
		run   func(f *feed)
		want  Hold
		words string
	}{
		{"too few reports", Rules{}, func(f *feed) { f.good(5, 1e-7, 1e-4) }, HoldEvidence, "tf32 has 5 of the 20 reports a step down needs"},
		{"candidate too close to the target", Rules{}, func(f *feed) { f.good(30, 1e-7, 0.06) }, HoldMargin,
			"tf32 error upper bound 0.06 over 30 reports exceeds 0.5 x max_error 0.1"},
		{"cooldown", Rules{Cooldown: time.Hour}, func(f *feed) { f.good(20, 1e-7, 1e-4); f.good(25, 1e-4, 1e-3) }, HoldCooldown,
			"bf16 qualifies; 25s of the 1h0m0s cooldown since the last change has passed"},
		{"floor", Rules{}, func(f *feed) {
			pinned(f, func(p *gearbox.PrecisionPolicy) { p.Floor = precision.FP32 })
			f.good(30, 1e-7, 1e-4)
		}, HoldFloor, "fp32 is the floor"},
		{"breach at the ceiling", Rules{}, func(f *feed) { f.report(precision.FP32, 0.5, precision.TF32, 0.5) }, HoldCeiling,
			"fp32 error upper bound 0.5 over 1 reports exceeds max_error 0.1, but nothing more accurate is allowed (ceiling fp32"},
		{"off the ladder", Rules{}, func(f *feed) {
			pinned(f, func(p *gearbox.PrecisionPolicy) { p.Precision = precision.FP16 })
			f.report(precision.FP16, 1e-3, precision.BF16, 1e-3)
		}, HoldOffLadder, "fp16 is not on the model's ladder"},
		{"candidate ruled out", Rules{}, func(f *feed) {
			f.report(precision.FP32, 1e-7, precision.TF32, -1)
			f.good(30, 1e-7, 1e-4)
		}, HoldRuledOut, "tf32, the next cheaper rung, is ruled out"},
	} {
		f := newFeed(t, c.rules)
		c.run(f)
		h, why := f.c.Holding("m")
		if h != c.want || !strings.Contains(why, c.words) {
			t.Errorf("%s: holding %q (%s); want %q (%s)", c.name, h, why, c.want, c.words)
		}
		// Reasons are stored in the policy bucket, whose values `nats kv
		// get` prints as text only when they are plain ASCII.
		for _, r := range why {
			if r > 0x7e {
				t.Errorf("%s: reason %q has the non-ASCII %q", c.name, why, r)
				break
			}
		}
		if st, ok := f.c.Status("m"); !ok || st.Hold != h || st.Reason != why || st.Position != f.seq {
			t.Errorf("%s: status %+v; want the hold at position %d", c.name, st, f.seq)
		}
	}
}

// TestRuleOutIsStored: a precision ruled out is a change of its own — the
// precision stays, the exclusion is written with its reason — so it
// outlives the reports it rests on.
func TestRuleOutIsStored(t *testing.T) {
	f := newFeed(t, Rules{Cooldown: time.Nanosecond})
	f.good(3, 1e-7, 1e-4)
	d := f.report(precision.FP32, 1e-7, precision.TF32, -1)
	if d == nil || d.Direction() != "none" || d.Policy.Precision != precision.FP32 || d.Policy.Seq != 4 {
		t.Fatalf("decision %+v; want fp32 kept at seq 4", d)
	}
	if !slices.Equal(d.Policy.Excluded, []precision.Format{precision.TF32}) ||
		d.Policy.Reason != "tf32 ruled out: 1 non-finite outputs where fp32 is finite (report 4)" {
		t.Fatalf("excluded %v, reason %q", d.Policy.Excluded, d.Policy.Reason)
	}
	// A late starter with only the stored policy holds it too.
	b, _ := NewController(Rules{Cooldown: time.Nanosecond})
	b.Replay(1, []PolicyEntry{{PrecisionPolicy: d.Policy, Rev: f.rev}})
	r := &gearbox.QualityReport{Model: "m", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
		Served: precision.FP32, Candidate: precision.TF32, CandidateMetrics: &gearbox.QualityMetrics{RelL2: 1e-5}}
	for seq := uint64(5); seq < 100; seq++ {
		if d := b.Observe(seq, f.at, r); d != nil {
			t.Fatalf("stepped to %s after tf32 was ruled out", d.Policy.Precision)
		}
	}
	if h, _ := b.Holding("m"); h != HoldRuledOut {
		t.Fatalf("holding %q; want %q", h, HoldRuledOut)
	}

	// A step up that also rules out the candidate says both.
	f = newFeed(t, Rules{Cooldown: time.Nanosecond})
	f.good(20, 1e-7, 1e-4) // → tf32
	d = f.report(precision.TF32, 0.5, precision.BF16, -1)
	if d == nil || d.Direction() != "up" || !slices.Equal(d.Policy.Excluded, []precision.Format{precision.BF16}) ||
		!strings.Contains(d.Policy.Reason, "tf32 error upper bound 0.5") || !strings.Contains(d.Policy.Reason, "; bf16 ruled out: 1 non-finite") {
		t.Fatalf("decision %+v; want up to fp32, saying bf16 is ruled out", d)
	}
	if p, _, _ := f.c.Policy("m"); p.Reason != d.Policy.Reason {
		t.Fatalf("controller holds reason %q; decided %q", p.Reason, d.Policy.Reason)
	}
}

// TestReplayStartsCold: when the stream has dropped reports a model's
// evidence may need, its step down waits for a full window.
func TestReplayStartsCold(t *testing.T) {
	r := &gearbox.QualityReport{Model: "m", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
		Served: precision.FP32, Candidate: precision.TF32, CandidateMetrics: &gearbox.QualityMetrics{RelL2: 1e-4}}
	at := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	stored := gearbox.PrecisionPolicy{Model: "m", Precision: precision.FP32, Floor: precision.FP4, Ceiling: precision.FP32, Seq: 10, By: "w"}
	for _, c := range []struct {
		name   string
		first  uint64
		stored []PolicyEntry
		want   int // reports until the step down
	}{
		{"nothing dropped", 1, nil, 20},
		{"dropped, no policy", 100, nil, 50},
		{"dropped before the policy", 5, []PolicyEntry{{stored, 1}}, 20},
		{"dropped after the policy", 100, []PolicyEntry{{stored, 1}}, 50},
	} {
		ctl, _ := NewController(Rules{Cooldown: time.Nanosecond})
		ctl.Replay(c.first, c.stored)
		n := 0
		for seq := max(c.first, ctl.Position("m")) + 1; ; seq++ {
			n++
			if d := ctl.Observe(seq, at.Add(time.Duration(seq)*time.Second), r); d != nil {
				break
			}
			if n > 100 {
				t.Fatalf("%s: no step down", c.name)
			}
		}
		if n != c.want {
			t.Errorf("%s: stepped down after %d reports; want %d", c.name, n, c.want)
		}
	}
}

// TestControllerJudgesTheReportsMetric: a language model's reports are
// judged by their KL, not by the logits' relative L2 they also carry; the
// rules are the same.
func TestControllerJudgesTheReportsMetric(t *testing.T) {
	c, err := NewController(Rules{Window: 3, MinSamples: 3, Cooldown: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	kl := func(v float64) *float64 { return &v }
	report := func(seq uint64, served precision.Format, skl float64, cand precision.Format, ckl float64) *Decision {
		r := &gearbox.QualityReport{
			Model: "lm", Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.01, Metric: gearbox.MetricKL,
			Served: served, ServedMetrics: gearbox.QualityMetrics{RelL2: 0.5, KL: kl(skl)},
			Candidate: cand, CandidateMetrics: &gearbox.QualityMetrics{RelL2: 0.5, KL: kl(ckl)}, Worker: "w",
		}
		return c.Observe(seq, at.Add(time.Duration(seq)*time.Second), r)
	}
	// KL 0.004 ≤ 0.5 × 0.01 (relative L2 0.5 would be far over).
	var d *Decision
	for seq := uint64(1); seq <= 3; seq++ {
		d = report(seq, precision.FP32, 0, precision.TF32, 0.004)
	}
	if d == nil || d.Policy.Precision != precision.TF32 || d.Policy.Evidence.UpperBound != 0.004 {
		t.Fatalf("decision %+v; want tf32 on KL upper bound 0.004", d)
	}
	if !strings.Contains(d.Policy.Reason, "tf32 kl upper bound 0.004") {
		t.Errorf("reason %q does not name the KL", d.Policy.Reason)
	}
	c.Written(d, 1)
	// KL 0.006: over the margin, held.
	for seq := uint64(4); seq <= 6; seq++ {
		if d := report(seq, precision.TF32, 0.004, precision.BF16, 0.006); d != nil {
			t.Fatalf("stepped to %s on KL 0.006 > 0.5 × 0.01", d.Policy.Precision)
		}
	}
	if h, _ := c.Holding("lm"); h != HoldMargin {
		t.Errorf("hold %q; want margin", h)
	}
	// Served KL 0.02 over the bound: up at once.
	if d := report(7, precision.TF32, 0.02, precision.BF16, 0.006); d == nil || d.Policy.Precision != precision.FP32 {
		t.Errorf("decision %+v; want up to fp32 on KL 0.02 > 0.01", d)
	}
}
