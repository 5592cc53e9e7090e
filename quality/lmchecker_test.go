package quality

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cpu"
	"github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// gocoderSequence loads the shipped Go-code model with reference ref and
// returns it with a prompt and the CPU backend's greedy continuation of n
// tokens at bf16.
func gocoderSequence(t *testing.T, b *cpu.Backend, ref precision.Format, n int) (*lm.Model, []int32, []int32) {
	t.Helper()
	m, err := lm.Load("../testdata/models/gocoder")
	if err != nil {
		t.Fatal(err)
	}
	m.Quality.Reference = ref
	prompt := kerneltest.RandTokens(3, 12, m.Config.Vocab)
	gen := kerneltest.NewSession(t, b, m, precision.BF16, (len(prompt)+n)/16+1).Generate(prompt, n)
	return m, prompt, gen
}

// klByDecoding is the mean KL of the next-token distributions of the
// generated positions at p from those at ref, with logits decoded token by
// token and the KL summed from probabilities (not log-softmax): an
// independent route to what Check measures.
func klByDecoding(t *testing.T, b *cpu.Backend, m *lm.Model, ref, p precision.Format, prompt, gen []int32) float64 {
	t.Helper()
	toks := append(append([]int32{}, prompt...), gen[:len(gen)-1]...)
	v := m.Config.Vocab
	blocks := (len(toks)+15)/16 + 1
	lr := kerneltest.NewSession(t, b, m, ref, blocks).DecodeLogits(toks)
	lp := kerneltest.NewSession(t, b, m, p, blocks).DecodeLogits(toks)
	probs := func(l []float32) []float64 {
		hi := math.Inf(-1)
		for _, x := range l {
			hi = math.Max(hi, float64(x))
		}
		ps, sum := make([]float64, len(l)), 0.0
		for i, x := range l {
			ps[i] = math.Exp(float64(x) - hi)
			sum += ps[i]
		}
		for i := range ps {
			ps[i] /= sum
		}
		return ps
	}
	var total float64
	for pos := len(prompt) - 1; pos < len(toks); pos++ {
		pr, pq := probs(lr[pos*v:(pos+1)*v]), probs(lp[pos*v:(pos+1)*v])
		for i := range pr {
			if pr[i] > 0 {
				total += pr[i] * math.Log(pr[i]/pq[i])
			}
		}
	}
	return total / float64(len(gen))
}

// TestLMCheck re-runs a generation of the shipped model teacher-forced: at
// the reference itself the served KL is 0 exactly; fp4 is further from the
// reference than fp8, and both are measured as decoding them token by
// token measures them.
func TestLMCheck(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, prompt, gen := gocoderSequence(t, b, precision.FP32, 12)
	c, err := NewLMChecker(Config{Sample: 1}, b, "w", nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	r, err := c.Check(ctx, m, precision.FP32, prompt, gen)
	if err != nil {
		t.Fatal(err)
	}
	if s := r.ServedMetrics; *s.KL != 0 || *s.Top1 != 1 || s.RelL2 != 0 {
		t.Errorf("fp32 against the fp32 reference: KL %g, top1 %g, rel L2 %g; want 0, 1, 0", *s.KL, *s.Top1, s.RelL2)
	}
	if r.Candidate != precision.TF32 || !(*r.CandidateMetrics.KL > 0) {
		t.Errorf("candidate %s KL %v; want tf32 > 0", r.Candidate, r.CandidateMetrics.KL)
	}
	if r.Metric != gearbox.MetricKL || r.Reference != "fp32" || r.Tokens != len(gen) || r.MaxError != 0.01 {
		t.Errorf("report metric %q, reference %q, tokens %d, max_error %g; want kl, fp32, %d, 0.01", r.Metric, r.Reference, r.Tokens, r.MaxError, len(gen))
	}
	if err := r.Validate(); err != nil {
		t.Error(err)
	}

	r, err = c.Check(ctx, m, precision.FP8, prompt, gen)
	if err != nil {
		t.Fatal(err)
	}
	fp8, fp4 := *r.ServedMetrics.KL, *r.CandidateMetrics.KL
	t.Logf("gocoder, %d generated tokens, against fp32: fp8 KL %.3g top1 %.3f rel L2 %.3g; fp4 KL %.3g top1 %.3f rel L2 %.3g",
		len(gen), fp8, *r.ServedMetrics.Top1, r.ServedMetrics.RelL2, fp4, *r.CandidateMetrics.Top1, r.CandidateMetrics.RelL2)
	if r.Candidate != precision.FP4 || !(fp4 > fp8 && fp8 > 0) {
		t.Errorf("KL fp8 %g, %s %g; want fp4 > fp8 > 0", fp8, r.Candidate, fp4)
	}
	for _, c := range []struct {
		p   precision.Format
		got float64
	}{{precision.FP8, fp8}, {precision.FP4, fp4}} {
		want := klByDecoding(t, b, m, precision.FP32, c.p, prompt, gen)
		if math.Abs(c.got-want) > 1e-6*want+1e-9 {
			t.Errorf("%s: KL %.9g teacher-forced; %.9g decoding token by token", c.p, c.got, want)
		}
	}
}

// TestLMCheckChunks: a generation re-run in many steps (a chunk of one
// position) measures what one step does.
func TestLMCheckChunks(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, prompt, gen := gocoderSequence(t, b, "", 6)
	c, err := NewLMChecker(Config{Sample: 1}, b, "w", nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	whole, err := c.Check(context.Background(), m, precision.FP8, prompt, gen)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Reference != "bf16" {
		t.Errorf("reference %s; want the checkpoint's bf16", whole.Reference)
	}
	defer func(n int) { logitChunkBytes = n }(logitChunkBytes)
	logitChunkBytes = 4 * m.Config.Vocab
	chunked, err := c.Check(context.Background(), m, precision.FP8, prompt, gen)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := whole.ServedMetrics, chunked.ServedMetrics; math.Abs(*a.KL-*b.KL) > 1e-12 || *a.Top1 != *b.Top1 || math.Abs(a.RelL2-b.RelL2) > 1e-12 {
		t.Errorf("chunked: KL %g top1 %g rel L2 %g; in one step %g, %g, %g", *b.KL, *b.Top1, b.RelL2, *a.KL, *a.Top1, a.RelL2)
	}
}

func TestNewLMCheckerNeedsLM(t *testing.T) {
	if _, err := NewLMChecker(Config{Sample: 1}, tensorOnly{}, "w", nil, zerolog.Nop()); err == nil {
		t.Error("a backend without kernels.LM: no error")
	}
}

// tensorOnly is a backend that runs no language models.
type tensorOnly struct{ kernels.Backend }

func (tensorOnly) Name() string { return "tensor-only" }

// TestLMOfferDropsWhenFull: Offer never waits; a sampled sequence that
// finds the queue full is counted as dropped.
func TestLMOfferDropsWhenFull(t *testing.T) {
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	met := NewMetrics(prometheus.NewRegistry())
	c, err := NewLMChecker(Config{Sample: 1, Queue: 2, Metrics: met}, b, "w", nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	m := &lm.Model{Name: "m"}
	for range 5 {
		c.Offer(time.Now(), m, precision.FP8, "job", []int32{1, 2}, []int32{3})
	}
	c.Offer(time.Now(), m, precision.FP8, "nothing generated", []int32{1, 2}, nil)
	if got := len(c.queue); got != 2 {
		t.Errorf("%d checks queued; want 2", got)
	}
	if got := testutil.ToFloat64(met.checks.WithLabelValues("m", "dropped")); got != 3 {
		t.Errorf("%g checks dropped; want 3", got)
	}
}

// budgetRun is an LMChecker running on a clock that moves only when a
// check publishes: check i takes took[i]. Each publish and each rest is
// sent on events, and Run stays in a rest until resumed (or its ctx ends).
type budgetRun struct {
	c      *LMChecker
	slow   *firstStepSlow
	met    *Metrics
	events chan budgetEvent
	resume chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// budgetEvent is a check published (published) or a rest of rest.
type budgetEvent struct {
	published bool
	rest      time.Duration
}

// startBudgetRun queues len(took) checks of the shipped model's sequence
// on a checker under budget and starts its Run; failAt, when ≥ 0, is the
// check whose publish fails. With realWait a rest, once sent on events,
// is the checker's own wait rather than one until resumed. The first step
// at each precision takes upload on the checker's clock (the weights'
// one-time conversion).
func startBudgetRun(t *testing.T, budget float64, took []time.Duration, failAt int, realWait bool, upload time.Duration) *budgetRun {
	t.Helper()
	b, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, prompt, gen := gocoderSequence(t, b, "", 3)
	h := &budgetRun{met: NewMetrics(prometheus.NewRegistry()), events: make(chan budgetEvent), resume: make(chan struct{}), done: make(chan struct{})}
	var mu sync.Mutex
	clock, published := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), 0
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(cancel)
	send := func(ctx context.Context, e budgetEvent) bool {
		select {
		case h.events <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	publish := func(ctx context.Context, r *gearbox.QualityReport) error {
		mu.Lock()
		i := published
		clock = clock.Add(took[i])
		published++
		mu.Unlock()
		send(ctx, budgetEvent{published: true})
		if i == failAt {
			return errors.New("publish refused")
		}
		return nil
	}
	slow := &firstStepSlow{Backend: b, upload: upload, seen: map[precision.Format]bool{}, advance: func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
	}}
	h.slow = slow
	h.c, err = NewLMChecker(Config{Sample: 1, Queue: len(took), Budget: budget, Metrics: h.met}, slow, "w", publish, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h.c.nowFn = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	h.c.waitFn = func(ctx context.Context, d time.Duration) {
		if !send(ctx, budgetEvent{rest: d}) {
			return
		}
		if realWait {
			wait(ctx, d)
			return
		}
		select {
		case <-h.resume:
		case <-ctx.Done():
		}
	}
	for i := range took {
		h.c.Offer(time.Now(), m, precision.FP8, fmt.Sprint("job-", i), prompt, gen)
	}
	go func() {
		defer close(h.done)
		h.c.Run(ctx)
	}()
	return h
}

// firstStepSlow is a CPU backend whose first step at a precision advances
// the checker's clock by upload: the time a GPU backend takes to quantize
// and upload a model's weights for a precision it has not run.
// It counts the one-token steps of kernels.WarmLM (warms).
type firstStepSlow struct {
	*cpu.Backend
	upload  time.Duration
	advance func(time.Duration)
	mu      sync.Mutex
	seen    map[precision.Format]bool
	warms   int
}

func (b *firstStepSlow) Step(ctx context.Context, m *lm.Model, p precision.Format, kv kernels.KVCache, batch *kernels.Batch) ([]kernels.SeqOut, error) {
	b.mu.Lock()
	if !b.seen[p] {
		b.seen[p] = true
		b.advance(b.upload)
	}
	if len(batch.Seqs) == 1 && len(batch.Seqs[0].Tokens) == 1 && batch.Seqs[0].Want == kernels.WantSample {
		b.warms++
	}
	b.mu.Unlock()
	return b.Backend.Step(ctx, m, p, kv, batch)
}

// next is Run's next event.
func (h *budgetRun) next(t *testing.T) budgetEvent {
	t.Helper()
	select {
	case e := <-h.events:
		return e
	case <-h.done:
		t.Fatal("Run returned")
	case <-time.After(time.Minute): // a guard against a hang, not a measure
		t.Fatal("no check published and no rest in a minute")
	}
	return budgetEvent{}
}

// stop ends Run's ctx and waits for Run to return.
func (h *budgetRun) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(time.Minute): // a guard against a hang, not a measure
		t.Fatal("Run did not return in a minute after its ctx ended")
	}
}

// TestLMBudgetRests: under a budget B, a check that took d is followed by
// a rest of d·(1/B − 1) before the next check is taken off the queue;
// unbounded (0) and a budget of 1 never rest.
func TestLMBudgetRests(t *testing.T) {
	took := []time.Duration{2 * time.Second, 5 * time.Second}
	for _, tc := range []struct {
		budget float64
		rests  []time.Duration
	}{
		{0.25, []time.Duration{6 * time.Second, 15 * time.Second}},
		{0.5, []time.Duration{2 * time.Second, 5 * time.Second}},
		{1, nil},
		{0, nil},
	} {
		t.Run(fmt.Sprint(tc.budget), func(t *testing.T) {
			h := startBudgetRun(t, tc.budget, took, -1, false, 0)
			for i := range took {
				if e := h.next(t); !e.published {
					t.Fatalf("check %d: a rest of %v before it was published", i, e.rest)
				}
				if tc.rests == nil {
					continue
				}
				e := h.next(t)
				if e.published {
					t.Fatalf("after check %d (%v): the next check published without a rest; want a rest of %v", i, took[i], tc.rests[i])
				}
				if e.rest != tc.rests[i] {
					t.Errorf("after check %d (%v): rest %v; want %v", i, took[i], e.rest, tc.rests[i])
				}
				if got, want := len(h.c.queue), len(took)-1-i; got != want {
					t.Errorf("during rest %d: %d checks queued; want %d (none taken while resting)", i, got, want)
				}
				h.resume <- struct{}{}
			}
			h.stop(t)
			select {
			case e := <-h.events:
				t.Errorf("after the last check: %+v", e)
			default:
			}
		})
	}
}

// TestLMBudgetRestsWithoutWarmUp: the weights a check is the first to
// need (its reference, served and shadow rungs, here an hour each to
// convert) are prepared before its clock starts: the rests after the
// checks, and the seconds they count, are their own 2 s and 3 s, not 3 h;
// and each rung is warmed once, not before every check (on a GPU each
// warm-up's cache, freed, drops the serving engines' CUDA graphs).
func TestLMBudgetRestsWithoutWarmUp(t *testing.T) {
	took := []time.Duration{2 * time.Second, 3 * time.Second}
	h := startBudgetRun(t, 0.5, took, -1, false, time.Hour)
	for i, d := range took {
		if e := h.next(t); !e.published {
			t.Fatalf("check %d: a rest of %v before it was published", i, e.rest)
		}
		if e := h.next(t); e.rest != d {
			t.Errorf("after a %v check of weights that took 3 h to convert: %+v; want a rest of %v", d, e, d)
		}
		h.resume <- struct{}{}
	}
	h.stop(t)
	if got := testutil.ToFloat64(h.met.CheckSeconds("gocoder")); got != 5 {
		t.Errorf("%g check seconds; want 5", got)
	}
	h.slow.mu.Lock()
	defer h.slow.mu.Unlock()
	if h.slow.warms != 3 {
		t.Errorf("%d warm-up steps for 2 checks of 3 rungs; want 3 (each rung once)", h.slow.warms)
	}
}

// TestLMBudgetRestEndsWithCtx: Run, resting after a check, returns as soon
// as its ctx ends, and takes no further check.
func TestLMBudgetRestEndsWithCtx(t *testing.T) {
	h := startBudgetRun(t, 0.25, []time.Duration{time.Hour, time.Hour}, -1, true, 0)
	if e := h.next(t); !e.published {
		t.Fatalf("a rest of %v before the first check", e.rest)
	}
	if e := h.next(t); e.rest != 3*time.Hour {
		t.Fatalf("after an hour's check: %+v; want a rest of 3h", e)
	}
	h.stop(t)
	if got := len(h.c.queue); got != 1 {
		t.Errorf("%d checks queued after Run returned; want the 1 it never took", got)
	}
}

// TestLMCheckSeconds: the time spent in each check, published or failed,
// adds to the model's gearbox_quality_check_seconds_total.
func TestLMCheckSeconds(t *testing.T) {
	h := startBudgetRun(t, 0, []time.Duration{2 * time.Second, 5500 * time.Millisecond}, 0, false, 0)
	for range 2 {
		h.next(t)
	}
	h.stop(t)
	if got := testutil.ToFloat64(h.met.CheckSeconds("gocoder")); got != 7.5 {
		t.Errorf("%g check seconds; want 7.5", got)
	}
	for outcome, want := range map[string]float64{"published": 1, "failed": 1} {
		if got := testutil.ToFloat64(h.met.checks.WithLabelValues("gocoder", outcome)); got != want {
			t.Errorf("%g checks %s; want %g", got, outcome, want)
		}
	}
}
