package quality_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/internal/natstest"
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
// candidate error ce.
func (w *world) publish(model string, n int, served precision.Format, se, ce float64) {
	w.t.Helper()
	for range n {
		r := &gearbox.QualityReport{Model: model, Ladder: precision.DefaultLadder, Initial: precision.FP32, MaxError: 0.1,
			Served: served, ServedMetrics: gearbox.QualityMetrics{RelL2: se}, Reference: "fp64", Worker: "x", Rows: 16}
		if c, ok := precision.Next(precision.DefaultLadder, served); ok {
			r.Candidate, r.CandidateMetrics = c, &gearbox.QualityMetrics{RelL2: ce}
		}
		msg, err := gearbox.NewMsg(w.subj.Quality(model), r, gearbox.Msgpack)
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := w.js.PublishMsg(context.Background(), msg); err != nil {
			w.t.Fatal(err)
		}
	}
}

// history is model's stored policies, oldest first.
func (w *world) history(model string) []gearbox.Policy {
	es, err := w.kv.History(context.Background(), model)
	if err != nil {
		return nil
	}
	var ps []gearbox.Policy
	for _, e := range es {
		p, err := gearbox.DecodePolicy(e.Value())
		if err != nil {
			w.t.Fatal(err)
		}
		ps = append(ps, *p)
	}
	return ps
}

func (w *world) waitHistory(model string, n int) []gearbox.Policy {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := w.history(model)
		if len(h) >= n {
			time.Sleep(100 * time.Millisecond) // let any duplicate write show
			return w.history(model)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: %d policy writes after 10s; want %d", model, len(h), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func precisions(ps []gearbox.Policy) string {
	var s []string
	for _, p := range ps {
		s = append(s, string(p.Precision))
	}
	return strings.Join(s, " ")
}

// TestRunnersWriteOncePerChange: three controllers replay the same reports;
// each change is stored once; a controller started later, or after a
// manual change, agrees without writing.
func TestRunnersWriteOncePerChange(t *testing.T) {
	w := newWorld(t)
	announced, err := w.js.Conn().SubscribeSync(w.subj.Policy("m"))
	if err != nil {
		t.Fatal(err)
	}
	stopA := w.runner("a")
	w.runner("b")
	w.runner("c")
	w.publish("m", 20, precision.FP32, 1e-7, 1e-4) // → tf32
	w.publish("m", 20, precision.TF32, 1e-4, 1e-3) // → bf16
	h := w.waitHistory("m", 2)
	if got := precisions(h); got != "tf32 bf16" {
		t.Fatalf("history %q; want \"tf32 bf16\" (one write per change)", got)
	}
	// The writer of the last change stops; a late starter replays the
	// whole stream and must write nothing of what is already decided.
	stopA()
	w.runner("d")
	time.Sleep(200 * time.Millisecond)
	if got := precisions(w.history("m")); got != "tf32 bf16" {
		t.Fatalf("after a late start: history %q", got)
	}
	w.publish("m", 20, precision.BF16, 3e-3, 0.04) // fp8 at 0.04 ≤ 0.05 → fp8
	h = w.waitHistory("m", 3)
	if got := precisions(h); got != "tf32 bf16 fp8" {
		t.Fatalf("history %q; want \"tf32 bf16 fp8\"", got)
	}
	if h[2].By == "a" {
		t.Fatal("the stopped controller wrote")
	}

	// A manual change is adopted by all; the evidence restarts after it.
	_, _, err = quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", gearbox.Policy{}, func(p *gearbox.Policy) error {
		p.Precision = precision.TF32
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.publish("m", 19, precision.TF32, 1e-4, 1e-3)
	time.Sleep(200 * time.Millisecond)
	if got := precisions(w.history("m")); got != "tf32 bf16 fp8 tf32" {
		t.Fatalf("after the manual set and 19 reports: history %q", got)
	}
	w.publish("m", 1, precision.TF32, 1e-4, 1e-3)
	h = w.waitHistory("m", 5)
	if got := precisions(h); got != "tf32 bf16 fp8 tf32 bf16" {
		t.Fatalf("history %q", got)
	}
	if e := h[4].Evidence; e == nil || e.Samples != 20 || e.FirstSeq <= h[3].Seq {
		t.Fatalf("evidence %+v does not start after the manual set at seq %d", e, h[3].Seq)
	}
	// Every change, the manual one too, was announced once, in order.
	for rev := 1; rev <= 5; rev++ {
		m, err := announced.NextMsg(time.Second)
		if err != nil {
			t.Fatalf("announcement %d: %v", rev, err)
		}
		p, err := gearbox.DecodePolicy(m.Data)
		if err != nil || m.Header.Get(quality.HeaderPolicyRevision) != strconv.Itoa(rev) || p.Precision != h[rev-1].Precision {
			t.Fatalf("announcement %d: revision %q, policy %+v, err %v; want %s", rev, m.Header.Get(quality.HeaderPolicyRevision), p, err, h[rev-1].Precision)
		}
	}
	if m, err := announced.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("a sixth announcement: %s", m.Data)
	}
}

func TestSetPolicyValidates(t *testing.T) {
	w := newWorld(t)
	base := gearbox.Policy{Precision: precision.FP32, Floor: precision.FP4, Ceiling: precision.FP32}
	for _, c := range []struct {
		name string
		edit func(*gearbox.Policy)
		want string
	}{
		{"floor above ceiling", func(p *gearbox.Policy) { p.Floor, p.Ceiling = precision.TF32, precision.FP8 }, "more accurate than ceiling"},
		{"outside bounds", func(p *gearbox.Policy) { p.Precision, p.Floor = precision.FP4, precision.FP8 }, "outside"},
		{"not a format", func(p *gearbox.Policy) { p.Precision = "fp12" }, "must all be formats"},
		{"max error", func(p *gearbox.Policy) { p.MaxError = 2 }, "max_error"},
	} {
		_, _, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", base, func(p *gearbox.Policy) error { c.edit(p); return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v; want one mentioning %q", c.name, err, c.want)
		}
	}
	p, rev, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", base, func(p *gearbox.Policy) error {
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
	if _, _, err := quality.SetPolicy(context.Background(), w.js, w.subj, w.kv, "m", base, func(p *gearbox.Policy) error {
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
