package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/internal/promtest"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// loop is a quality-loop test world: env plus models with chosen targets
// and helpers to drive traffic and read the policy bucket.
type loop struct {
	*env
	kv    jetstream.KeyValue
	mu    sync.Mutex
	sent  map[string]*gearbox.Job
	count int
}

func newLoop(t *testing.T) *loop {
	e := setup(t, gearbox.StreamsConfig{})
	kv, err := gearbox.PolicyStore(context.Background(), e.js, e.client.Subjects(), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	return &loop{env: e, kv: kv, sent: map[string]*gearbox.Job{}}
}

// addModel adds a 64→128→32 GELU MLP with max_error maxErr. On the CPU
// backend its errors against float64 are about: tf32 4e-4, bf16 3.5e-3,
// fp8 4e-2, fp4 1.3e-1 (`gearbox model inspect --error`).
func (l *loop) addModel(name string, maxErr float64) *model.Model {
	m, err := model.Synth(model.SynthConfig{Name: name, Dims: []int{64, 128, 32}, Act: model.GELU, Seed: 3, MaxError: maxErr})
	if err != nil {
		l.t.Fatal(err)
	}
	l.models.Put(m)
	return m
}

// qcfg is the worker configuration of these tests: every batch checked,
// a short cooldown.
func qcfg() worker.Config {
	return worker.Config{
		Config: batcher.Config{MaxBatchRows: 32, MaxDelay: time.Millisecond},
		Quality: quality.Config{
			Sample: 1, Rows: 32, Control: true,
			Rules: quality.Rules{Cooldown: 50 * time.Millisecond},
		},
	}
}

// send submits n auto jobs of 4 rows to m and returns their ids.
func (l *loop) send(m *model.Model, n int) map[string]bool {
	l.t.Helper()
	ids := map[string]bool{}
	var futs []jetstream.PubAckFuture
	for range n {
		l.mu.Lock()
		l.count++
		id := fmt.Sprintf("%s-%d", m.Name, l.count)
		l.mu.Unlock()
		vals := randVals(4*m.InputFeatures, uint64(l.count))
		j := &gearbox.Job{ID: id, Model: m.Name, Input: gearbox.NewTensor(4, m.InputFeatures, vals)}
		f, err := l.client.SubmitAsync(j)
		if err != nil {
			l.t.Fatal(err)
		}
		futs = append(futs, f)
		l.mu.Lock()
		l.sent[id] = j
		l.mu.Unlock()
		ids[id] = true
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			l.t.Fatal(err)
		}
	}
	return ids
}

// policy reads model's policy, or the zero Policy.
func (l *loop) policy(model string) (gearbox.PrecisionPolicy, uint64) {
	e, err := l.kv.Get(context.Background(), model)
	if err != nil {
		return gearbox.PrecisionPolicy{}, 0
	}
	p, err := gearbox.DecodePolicy(e.Value())
	if err != nil {
		l.t.Fatal(err)
	}
	return *p, e.Revision()
}

// history returns every revision of model's policy, by revision.
func (l *loop) history(model string) map[uint64]gearbox.PrecisionPolicy {
	es, err := l.kv.History(context.Background(), model)
	if err != nil {
		l.t.Fatal(err)
	}
	h := map[uint64]gearbox.PrecisionPolicy{}
	for _, e := range es {
		p, err := gearbox.DecodePolicy(e.Value())
		if err != nil {
			l.t.Fatal(err)
		}
		h[e.Revision()] = *p
	}
	return h
}

// drive sends traffic to ms in rounds until done reports true, failing
// after max jobs per model.
func (l *loop) drive(max int, done func() bool, ms ...*model.Model) {
	l.t.Helper()
	for sent := 0; !done(); sent += 50 {
		if sent >= max {
			for _, m := range ms {
				p, _ := l.policy(m.Name)
				l.t.Logf("%s: %s (%s)", m.Name, p.Precision, p.Reason)
			}
			l.t.Fatalf("condition not reached after %d jobs per model", max)
		}
		for _, m := range ms {
			l.send(m, 50)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAgainstReference compares r's output with the float64 forward pass
// of its job, within a tolerance for the precision it ran at.
func (l *loop) checkAgainstReference(r *gearbox.Result) {
	l.t.Helper()
	tol := map[precision.Format]float64{precision.FP32: 1e-5, precision.TF32: 5e-3, precision.BF16: 3e-2, precision.FP8: 0.2}[r.Precision]
	l.mu.Lock()
	j := l.sent[r.ID]
	l.mu.Unlock()
	m, err := l.models.Get(context.Background(), r.Model)
	if err != nil || j == nil || tol == 0 {
		l.t.Fatalf("result %s (%s at %s): no job, model or tolerance", r.ID, r.Model, r.Precision)
	}
	in, _ := j.Input.Values()
	in64 := make([]float64, len(in))
	for i, v := range in {
		in64[i] = float64(v)
	}
	want, err := cpu.Reference(m, in64, j.Input.Rows())
	if err != nil {
		l.t.Fatal(err)
	}
	got, err := r.Output.Values()
	if err != nil {
		l.t.Fatal(err)
	}
	if d := relL2(got, want); d > tol {
		l.t.Fatalf("job %s at %s: error %.3g against float64; want ≤ %g", r.ID, r.Precision, d, tol)
	}
}

func TestQualityLoop(t *testing.T) {
	l := newLoop(t)
	a := l.addModel("loopa", 0.12) // fp8 passes (4e-2 ≤ 0.06), fp4 fails (1.3e-1 > 0.12)
	b := l.addModel("loopb", 0.02) // bf16 passes (3.5e-3 ≤ 0.01), fp8 fails
	ws := []*running{l.start("q1", qcfg(), nil), l.start("q2", qcfg(), nil), l.start("q3", qcfg(), nil)}

	at := func(m *model.Model, f precision.Format) func() bool {
		return func() bool { p, _ := l.policy(m.Name); return p.Precision == f }
	}
	both := func() bool { return at(a, precision.FP8)() && at(b, precision.BF16)() }
	l.drive(4000, both, a, b)

	// 5,000 more jobs of a (and some of b): the policies do not move.
	_, revA := l.policy(a.Name)
	_, revB := l.policy(b.Name)
	for range 10 {
		l.send(a, 500)
		l.send(b, 50)
	}
	total := l.count
	results := l.results(total)
	if p, rev := l.policy(a.Name); p.Precision != precision.FP8 || rev != revA {
		t.Fatalf("%s moved to %s (revision %d → %d): %s", a.Name, p.Precision, revA, rev, p.Reason)
	}
	if p, rev := l.policy(b.Name); p.Precision != precision.BF16 || rev != revB {
		t.Fatalf("%s moved to %s (revision %d → %d): %s", b.Name, p.Precision, revB, rev, p.Reason)
	}

	// Each model's history is its own walk down its ladder, one write per
	// change, whichever of the three workers made it.
	for _, c := range []struct {
		m    *model.Model
		want []precision.Format
	}{{a, []precision.Format{precision.TF32, precision.BF16, precision.FP8}}, {b, []precision.Format{precision.TF32, precision.BF16}}} {
		h := l.history(c.m.Name)
		var got []precision.Format
		for rev := uint64(1); rev <= uint64(len(h))+100; rev++ {
			if p, ok := h[rev]; ok {
				got = append(got, p.Precision)
				if p.Evidence == nil || p.Evidence.Samples < 20 || p.By == "" {
					t.Errorf("%s revision %d: evidence %+v by %q", c.m.Name, rev, p.Evidence, p.By)
				}
			}
		}
		// Revisions are per bucket, so the two models' interleave.
		if !slices.Equal(got, c.want) {
			t.Errorf("%s policy history %v; want %v", c.m.Name, got, c.want)
		}
	}

	// Every result ran at the precision of the policy it was chosen under;
	// none at fp4.
	hist := map[string]map[uint64]gearbox.PrecisionPolicy{a.Name: l.history(a.Name), b.Name: l.history(b.Name)}
	mix := map[string]map[precision.Format]int{a.Name: {}, b.Name: {}}
	for _, r := range results {
		if r.Error != nil {
			t.Fatalf("job %s: %v", r.ID, r.Error)
		}
		mix[r.Model][r.Precision]++
		want := precision.FP32
		if r.PolicyRev > 0 {
			p, ok := hist[r.Model][r.PolicyRev]
			if !ok {
				t.Fatalf("job %s: policy revision %d is not %s's", r.ID, r.PolicyRev, r.Model)
			}
			want = p.Precision
		}
		if r.Precision != want {
			t.Fatalf("job %s ran at %s under policy revision %d (%s)", r.ID, r.Precision, r.PolicyRev, want)
		}
		if mix[r.Model][r.Precision]%25 == 1 { // a sample of outputs against float64
			l.checkAgainstReference(r)
		}
	}
	if mix[a.Name][precision.FP4] > 0 || mix[b.Name][precision.FP4] > 0 {
		t.Fatalf("results served at fp4: %v", mix)
	}
	t.Logf("precision mix: %v", mix)

	// Stop the worker that wrote a's last change: the others still decide.
	// Tightening a's max_error below fp8's error moves it up within
	// MIN_SAMPLES reports.
	last, _ := l.policy(a.Name)
	for i, w := range ws {
		if w.w.Name() == last.By {
			if err := w.stop(t); err != nil {
				t.Fatal(err)
			}
			ws = slices.Delete(ws, i, i+1)
			break
		}
	}
	if len(ws) != 2 {
		t.Fatalf("no worker named %q", last.By)
	}
	set, setRev, err := quality.SetPolicy(context.Background(), l.js, l.client.Subjects(), l.kv, a.Name, gearbox.PrecisionPolicy{},
		func(p *gearbox.PrecisionPolicy) error { p.MaxError = 0.02; return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.drive(2000, func() bool { p, _ := l.policy(a.Name); return p.Precision != precision.FP8 }, a)
	up, upRev := l.policy(a.Name)
	if up.Precision != precision.BF16 || upRev != setRev+1 {
		t.Fatalf("after max_error 0.02: %s at revision %d; want bf16 at %d", up.Precision, upRev, setRev+1)
	}
	if up.By == last.By {
		t.Fatalf("change written by the stopped worker %s", up.By)
	}
	reports := up.Seq - set.Seq // reports of any model after the set, a bound on a's
	if e := up.Evidence; e == nil || e.Samples > 20 {
		t.Fatalf("step up rested on %+v; want at most MIN_SAMPLES (20) reports", e)
	}
	t.Logf("stepped up to bf16 %d stream reports after the set: %s", reports, up.Reason)

	// Workers apply the change to auto jobs within a second.
	time.Sleep(time.Second)
	late := l.send(a, 100)
	for _, r := range l.results(l.count) {
		if late[r.ID] && r.Precision != precision.BF16 {
			t.Fatalf("job %s submitted a second after the change ran at %s", r.ID, r.Precision)
		}
	}
}

// TestJobMaxErrorUsesMeasuredErrors: a job whose max_error is tighter than
// the model's runs no cheaper than the cheapest rung measured to meet it,
// even where the prior (precision.ErrorBound) would allow a cheaper one.
func TestJobMaxErrorUsesMeasuredErrors(t *testing.T) {
	l := newLoop(t)
	m := l.addModel("tight", 0.1)
	_, _, err := quality.SetPolicy(context.Background(), l.js, l.client.Subjects(), l.kv, m.Name,
		gearbox.PrecisionPolicy{Precision: precision.FP32, Floor: precision.FP4, Ceiling: precision.FP32},
		func(p *gearbox.PrecisionPolicy) error {
			p.Precision = precision.FP8
			// bf16 measured worse than its prior of 1e-2; tf32 better.
			p.Measured = map[precision.Format]float64{precision.FP8: 0.05, precision.BF16: 0.02, precision.TF32: 4e-4}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	l.start("t1", worker.Config{}, nil)
	for _, c := range []struct {
		maxErr float64
		want   precision.Format
	}{{0, precision.FP8}, {0.06, precision.FP8}, {0.03, precision.BF16}, {0.015, precision.TF32}, {1e-4, precision.FP32}} {
		j := &gearbox.Job{ID: fmt.Sprintf("t-%g", c.maxErr), Model: m.Name, MaxError: c.maxErr,
			Input: gearbox.NewTensor(1, m.InputFeatures, randVals(m.InputFeatures, 1))}
		r, err := l.client.Do(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		if r.Error != nil || r.Precision != c.want || r.PolicyRev != 1 {
			t.Errorf("max_error %g: ran at %s (policy rev %d, error %v); want %s under revision 1", c.maxErr, r.Precision, r.PolicyRev, r.Error, c.want)
		}
	}
}

// TestHugeInputDoesNotFreezeTheLoop is issue 10's scenario. A JSON job with
// finite inputs of 3e38 overflows float32 at every precision, fp32 included
// (the float64 reference is finite, and partly beyond float32's range), and
// its batch is checked like any other. That says something about the input,
// not about any precision: the model steps down exactly as a control model
// that never saw such a job.
func TestHugeInputDoesNotFreezeTheLoop(t *testing.T) {
	l := newLoop(t)
	huge := l.addModel("huge", 0.02) // tf32 (4e-4) and bf16 (3.5e-3) are within 0.5 × 0.02; fp8 (4e-2) is not
	control := l.addModel("control", 0.02)
	reg := prometheus.NewRegistry()
	cfg := qcfg()
	cfg.Quality.Metrics = quality.NewMetrics(reg)
	l.start("h1", cfg, nil)

	// The job as a producer without the Go client writes it: alone in its
	// batch, its check has nothing to judge.
	row := strings.TrimSuffix(strings.Repeat("3e38,", huge.InputFeatures), ",")
	res := l.sendJSON(huge, "huge-1", 1, row)
	t.Logf("3e38 job: precision %s, error %v", res.Precision, res.Error)
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if n := promtest.Value(t, reg, "gearbox_quality_checks_total", map[string]string{"model": "huge", "outcome": "out_of_range"}); n != 1 {
			return fmt.Errorf("%g out_of_range checks of huge; want 1", n)
		}
		return nil
	})
	// With an ordinary row in the same job, the check judges that row only.
	normal := make([]string, huge.InputFeatures)
	for i, v := range randVals(huge.InputFeatures, 1) {
		normal[i] = strconv.FormatFloat(float64(v), 'g', -1, 32)
	}
	l.sendJSON(huge, "huge-2", 2, row+","+strings.Join(normal, ","))
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mixed *gearbox.QualityReport
	for r, err := range l.client.QualityReports(rctx, huge.Name, true) {
		if err != nil {
			t.Fatal(err)
		}
		mixed = r
		break
	}
	if mixed == nil {
		t.Fatal("no quality report of the job with a 3e38 row")
	}
	for _, c := range []struct {
		role string
		m    *gearbox.QualityMetrics
	}{{"served", &mixed.ServedMetrics}, {"candidate", mixed.CandidateMetrics}} {
		if c.m == nil || c.m.NonFinite != 0 || c.m.OutOfRange != huge.OutputFeatures || !(c.m.RelL2 > 0 && c.m.RelL2 < 0.02) {
			t.Fatalf("%s metrics of the job with a 3e38 row: %+v; want %d out of range, no non-finite, the other row's error",
				c.role, c.m, huge.OutputFeatures)
		}
	}

	// Traffic that steps both models down twice.
	at := func(m *model.Model, f precision.Format) func() bool {
		return func() bool { p, _ := l.policy(m.Name); return p.Precision == f }
	}
	l.drive(2000, func() bool { return at(huge, precision.BF16)() && at(control, precision.BF16)() }, huge, control)
	for _, m := range []*model.Model{huge, control} {
		var got []precision.Format
		h := l.history(m.Name)
		for rev := uint64(1); rev < 100; rev++ {
			if p, ok := h[rev]; ok {
				got = append(got, p.Precision)
				if len(p.Excluded) > 0 {
					t.Errorf("%s: %v ruled out (%s)", m.Name, p.Excluded, p.Reason)
				}
			}
		}
		if want := []precision.Format{precision.TF32, precision.BF16}; !slices.Equal(got, want) {
			t.Errorf("%s: policies %v; want %v", m.Name, got, want)
		}
	}
}

// sendJSON publishes a JSON job of rows rows of m, values given as JSON
// text, with reply_to set, and returns its result.
func (l *loop) sendJSON(m *model.Model, id string, rows int, values string) *gearbox.Result {
	l.t.Helper()
	nc := l.js.Conn()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		l.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	msg := nats.NewMsg(l.client.Subjects().Jobs(m.Name))
	msg.Header.Set(gearbox.HeaderContentType, gearbox.ContentJSON)
	msg.Header.Set(jetstream.MsgIDHeader, id)
	msg.Data = fmt.Appendf(nil, `{"id":%q,"model":%q,"reply_to":%q,"input":{"shape":[%d,%d],"values":[%s]}}`,
		id, m.Name, inbox, rows, m.InputFeatures, values)
	if _, err := l.js.PublishMsg(context.Background(), msg); err != nil {
		l.t.Fatal(err)
	}
	rm, err := sub.NextMsg(30 * time.Second)
	if err != nil {
		l.t.Fatalf("no result for job %s: %v", id, err)
	}
	r, err := gearbox.DecodeResult(rm.Data, gearbox.EncodingOf(rm.Header))
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}
