package quality_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/logtest"
	"github.com/gearbox-inference/gearbox/internal/natstest"
	"github.com/gearbox-inference/gearbox/internal/promtest"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

type world struct {
	t    *testing.T
	srv  *server.Server
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	subj gearbox.Subjects
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, srv: natstest.Start(t), subj: gearbox.DefaultSubjects}
	w.js = w.connect()
	if err := gearbox.Provision(context.Background(), w.js, w.subj, gearbox.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.kv, err = gearbox.PolicyStore(context.Background(), w.js, w.subj, 1, false); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) connect() jetstream.JetStream {
	js, err := jetstream.New(natstest.Connect(w.t, w.srv))
	if err != nil {
		w.t.Fatal(err)
	}
	return js
}

// runner starts a controller named name on its own connection; stop ends it.
func (w *world) runner(name string) (stop func()) {
	js := w.connect()
	kv, err := gearbox.PolicyStore(context.Background(), js, w.subj, 1, false)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := &quality.Runner{JS: js, Subjects: w.subj, KV: kv, Name: name, Rules: quality.Rules{Cooldown: time.Nanosecond},
		Log: zerolog.New(zerolog.NewTestWriter(w.t)).Level(zerolog.WarnLevel)}
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			w.t.Errorf("runner %s: %v", name, err)
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	w.t.Cleanup(stop)
	return stop
}

// publish stores n reports for model served at served with error se and
// candidate (the next rung) error ce.
func (w *world) publish(model string, n int, served precision.Format, se, ce float64) {
	w.t.Helper()
	cand, _ := precision.Next(precision.DefaultLadder, served)
	for range n {
		w.publishReport(model, served, gearbox.QualityMetrics{RelL2: se}, cand, gearbox.QualityMetrics{RelL2: ce})
	}
}

// publishReport stores one report for model; cand "": none.
func (w *world) publishReport(model string, served precision.Format, sm gearbox.QualityMetrics, cand precision.Format, cm gearbox.QualityMetrics) {
	w.t.Helper()
	r := &gearbox.QualityReport{Model: model, Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
		Served: served, ServedMetrics: sm, Reference: "fp64", Worker: "x", Rows: 16}
	if cand != "" {
		r.Candidate, r.CandidateMetrics = cand, &cm
	}
	msg, err := gearbox.NewMsg(w.subj.Quality(model), r, gearbox.Msgpack)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.js.PublishMsg(context.Background(), msg); err != nil {
		w.t.Fatal(err)
	}
}

// history is model's stored policies, oldest first.
func (w *world) history(model string) []gearbox.PrecisionPolicy {
	es, err := w.kv.History(context.Background(), model)
	if err != nil {
		return nil
	}
	var ps []gearbox.PrecisionPolicy
	for _, e := range es {
		p, err := gearbox.DecodePolicy(e.Value())
		if err != nil {
			w.t.Fatal(err)
		}
		ps = append(ps, *p)
	}
	return ps
}

// waitHistory waits until model has n stored policies and returns them.
func (w *world) waitHistory(model string, n int) []gearbox.PrecisionPolicy {
	w.t.Helper()
	var h []gearbox.PrecisionPolicy
	waitFor(w.t, fmt.Sprintf("%d policies of %s", n, model), func() bool {
		h = w.history(model)
		return len(h) >= n
	})
	return h
}

// waitFor polls cond until it holds, failing after 30 s (a bound for a
// loaded machine, never a wait the test relies on).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func precisions(ps []gearbox.PrecisionPolicy) string {
	var s []string
	for _, p := range ps {
		s = append(s, string(p.Precision))
	}
	return strings.Join(s, " ")
}

// TestRunnersWriteOncePerChange: three controllers replay the same reports;
// each change is stored once; a controller started later, or after a
// manual change, decides as the others would have. It waits on conditions
// only: each change is checked by what it records (writer, sequence,
// evidence), never by letting time pass.
func TestRunnersWriteOncePerChange(t *testing.T) {
	w := newWorld(t)
	announced, err := w.js.Conn().SubscribeSync(w.subj.Policy("m"))
	if err != nil {
		t.Fatal(err)
	}
	stop := map[string]func(){}
	for _, name := range []string{"a", "b", "c"} {
		stop[name] = w.runner(name)
	}
	w.publish("m", 20, precision.FP32, 1e-7, 1e-4) // → tf32 at 20
	w.publish("m", 20, precision.TF32, 1e-4, 1e-3) // → bf16 at 40
	h := w.waitHistory("m", 2)
	if got := precisions(h); got != "tf32 bf16" || h[0].Seq != 20 || h[1].Seq != 40 {
		t.Fatalf("history %q at %d, %d; want \"tf32 bf16\" at 20, 40 (one write per change)", got, h[0].Seq, h[1].Seq)
	}
	// Every change, the manual one below too, is announced once. (Writers
	// on different connections may announce out of revision order; a
	// controller stopped between its write and its announcement would
	// not announce, so wait for them before stopping any.)
	announcements := map[int]gearbox.PrecisionPolicy{}
	waitAnnounced := func(n int) {
		t.Helper()
		for len(announcements) < n {
			m, err := announced.NextMsg(30 * time.Second)
			if err != nil {
				t.Fatalf("announcements %v: %v", announcements, err)
			}
			rev, _ := strconv.Atoi(m.Header.Get(quality.HeaderPolicyRevision))
			p, err := gearbox.DecodePolicy(m.Data)
			if _, dup := announcements[rev]; err != nil || rev < 1 || dup {
				t.Fatalf("announcement of revision %d (seen %v): %+v, %v", rev, announcements, p, err)
			}
			announcements[rev] = *p
		}
	}
	waitAnnounced(2)
	// Every controller stops; a late starter alone replays the whole
	// stream and makes the next change exactly as they would have.
	for _, name := range []string{"a", "b", "c"} {
		stop[name]()
	}
	w.runner("d")
	w.publish("m", 20, precision.BF16, 3e-3, 0.04) // fp8 at 0.04 ≤ 0.05 → fp8 at 60
	h = w.waitHistory("m", 3)
	if got := precisions(h); got != "tf32 bf16 fp8" || h[2].By != "d" || h[2].Seq != 60 || h[2].Evidence.FirstSeq != 41 {
		t.Fatalf("history %q, the last by %q at %d on %+v; want \"tf32 bf16 fp8\", by d at 60 on reports 41–60",
			got, h[2].By, h[2].Seq, h[2].Evidence)
	}

	// A manual change is adopted by all, a controller with state and
	// another starting after it; the evidence restarts after it.
	w.runner("e")
	set, _, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", gearbox.PrecisionPolicy{}, func(p *gearbox.PrecisionPolicy) error {
		p.Precision = precision.TF32
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.publish("m", 20, precision.TF32, 1e-4, 1e-3)
	h = w.waitHistory("m", 5)
	if got := precisions(h); got != "tf32 bf16 fp8 tf32 bf16" {
		t.Fatalf("history %q", got)
	}
	if e := h[4].Evidence; e == nil || e.Samples != 20 || e.FirstSeq != set.Seq+1 || h[4].Seq != set.Seq+20 {
		t.Fatalf("change at %d on %+v; want at %d on the 20 reports after the manual set at %d", h[4].Seq, e, set.Seq+20, set.Seq)
	}
	waitAnnounced(5)
	for rev, p := range announcements {
		if rev > 5 || p.Precision != h[rev-1].Precision || p.Seq != h[rev-1].Seq {
			t.Errorf("announced revision %d: %s at %d", rev, p.Precision, p.Seq)
		}
	}
	if got := precisions(w.history("m")); got != "tf32 bf16 fp8 tf32 bf16" {
		t.Fatalf("history %q after the announcements", got)
	}
}

// TestRunnerShowsHolds: why the controller holds is logged and exported
// when it changes, before the model has any policy; a precision ruled out
// is stored, announced and logged.
func TestRunnerShowsHolds(t *testing.T) {
	w := newWorld(t)
	reg := prometheus.NewRegistry()
	var logs logtest.Buffer
	r := &quality.Runner{JS: w.js, Subjects: w.subj, KV: w.kv, Name: "a", Rules: quality.Rules{Cooldown: time.Nanosecond},
		Log: zerolog.New(&logs), Metrics: quality.NewMetrics(reg)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	gauge := func(name, label, value string) float64 {
		return promtest.Value(t, reg, name, map[string]string{"model": "m", label: value})
	}
	w.publish("m", 5, precision.FP32, 1e-7, 1e-4)
	waitFor(t, "evidence hold", func() bool { return gauge("gearbox_policy_hold", "reason", "evidence") == 1 })
	if _, err := w.kv.Get(context.Background(), "m"); err == nil {
		t.Fatal("a policy after 5 reports")
	}
	w.publishReport("m", precision.FP32, gearbox.QualityMetrics{RelL2: 1e-7}, precision.TF32, gearbox.QualityMetrics{RelL2: 1e-4, NonFinite: 2})
	h := w.waitHistory("m", 1)
	if h[0].Precision != precision.FP32 || !slices.Equal(h[0].Excluded, []precision.Format{precision.TF32}) || !strings.Contains(h[0].Reason, "tf32 ruled out") {
		t.Fatalf("stored %+v; want fp32 with tf32 ruled out", h[0])
	}
	w.publish("m", 1, precision.FP32, 1e-7, 1e-4)
	waitFor(t, "ruled_out hold", func() bool { return gauge("gearbox_policy_hold", "reason", "ruled_out") == 1 })
	if g := gauge("gearbox_policy_excluded", "precision", "tf32"); g != 1 {
		t.Errorf("gearbox_policy_excluded{tf32} = %g; want 1", g)
	}
	if g := gauge("gearbox_policy_hold", "reason", "evidence"); g != 0 {
		t.Errorf("gearbox_policy_hold{evidence} = %g; want 0", g)
	}
	if g := promtest.Value(t, reg, "gearbox_policy_max_error", map[string]string{"model": "m"}); g != 0.1 {
		t.Errorf("gearbox_policy_max_error = %g; want the manifest's 0.1 the reports carry", g)
	}
	for _, want := range []string{`"direction":"none"`, `"excluded":["tf32"]`, `"message":"precision policy changed"`,
		`"hold":"ruled_out"`, `"message":"precision policy held"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

func TestSetPolicyValidates(t *testing.T) {
	w := newWorld(t)
	base := gearbox.PrecisionPolicy{Precision: precision.FP32, Floor: precision.FP4, Ceiling: precision.FP32}
	for _, c := range []struct {
		name string
		edit func(*gearbox.PrecisionPolicy)
		want string
	}{
		{"floor above ceiling", func(p *gearbox.PrecisionPolicy) { p.Floor, p.Ceiling = precision.TF32, precision.FP8 }, "more accurate than ceiling"},
		{"outside bounds", func(p *gearbox.PrecisionPolicy) { p.Precision, p.Floor = precision.FP4, precision.FP8 }, "outside"},
		{"not a format", func(p *gearbox.PrecisionPolicy) { p.Precision = "fp12" }, "must all be formats"},
		{"max error", func(p *gearbox.PrecisionPolicy) { p.MaxError = 2 }, "max_error"},
	} {
		_, _, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", base, func(p *gearbox.PrecisionPolicy) error { c.edit(p); return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v; want one mentioning %q", c.name, err, c.want)
		}
	}
	p, rev, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", base, func(p *gearbox.PrecisionPolicy) error {
		p.Precision, p.Floor, p.Ceiling = precision.BF16, precision.BF16, precision.BF16
		return nil
	})
	if err != nil || rev != 1 || p.By != "manual" || p.Precision != precision.BF16 {
		t.Fatalf("pin: %+v rev %d err %v", p, rev, err)
	}
	// A worker's view follows.
	pols, err := quality.WatchPolicies(context.Background(), w.kv, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := pols.Get("m"); !ok || e.Precision != precision.BF16 || e.Rev != 1 {
		t.Fatalf("watched %+v %v", e, ok)
	}
	if _, _, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", base, func(p *gearbox.PrecisionPolicy) error {
		p.Floor, p.Ceiling, p.Precision = precision.FP4, precision.FP32, precision.FP8
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		if e, _ := pols.Get("m"); e.Precision == precision.FP8 && e.Rev == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch did not see revision 2 within a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestInspect: the controller's view of one model, replayed from the
// stream: with no policy stored (and a change the KV does not hold), after
// a manual set, and of a model with neither.
func TestInspect(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, ok, err := quality.Inspect(ctx, w.js, w.subj, w.kv, "m", quality.Rules{}); ok || err != nil {
		t.Fatalf("a model with neither policy nor reports: known %v, error %v", ok, err)
	}
	w.publish("m", 20, precision.FP32, 1e-7, 1e-4) // → tf32 at 20, with no controller to write it
	w.publish("m", 5, precision.TF32, 1e-4, 1e-3)
	st, ok, err := quality.Inspect(ctx, w.js, w.subj, w.kv, "m", quality.Rules{})
	if err != nil || !ok {
		t.Fatalf("known %v, error %v", ok, err)
	}
	if st.Rev != 0 || len(st.Pending) != 1 || st.Pending[0].Precision != precision.TF32 || st.Pending[0].Seq != 20 ||
		st.Position != 25 || st.Hold != quality.HoldEvidence || st.Reason != "bf16 has 5 of the 20 reports a step down needs" {
		t.Fatalf("status %+v", st)
	}
	if _, _, err := quality.SetPolicy(ctx, w.js, w.subj, w.kv, "m", gearbox.PrecisionPolicy{Precision: precision.FP32, Floor: precision.FP4, Ceiling: precision.FP32},
		func(*gearbox.PrecisionPolicy) error { return nil }); err != nil {
		t.Fatal(err)
	}
	w.publish("m", 3, precision.FP32, 1e-7, 1e-4)
	st, _, err = quality.Inspect(ctx, w.js, w.subj, w.kv, "m", quality.Rules{})
	if err != nil || st.Rev != 1 || len(st.Pending) != 0 || st.Position != 28 || st.Reason != "tf32 has 3 of the 20 reports a step down needs" ||
		len(st.Windows) != 2 || st.Windows[1].FirstSeq != 26 {
		t.Fatalf("after a manual set: status %+v, error %v", st, err)
	}
}
