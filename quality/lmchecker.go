package quality

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// lmCheck is one sampled finished sequence, copied out of its job.
type lmCheck struct {
	m         *lm.Model
	served    precision.Format
	job       string
	prompt    []int32
	generated []int32
}

// LMChecker samples language models' finished generations and checks
// them off the serving path: Offer copies a sampled sequence's tokens and
// returns at once; Run re-runs each teacher-forced at the reference
// precision, at the precision it was served at and at the next cheaper
// rung of the ladder (in shadow), and publishes a report comparing their
// next-token distributions.
type LMChecker struct {
	cfg     Config
	backend kernels.Backend
	lm      kernels.LM
	worker  string
	publish func(context.Context, *gearbox.QualityReport) error
	log     zerolog.Logger

	queue chan *lmCheck
	*sampler
	warmed map[warmKey]bool // Run's goroutine only

	// nowFn reads the clock that times checks; waitFn rests for d or
	// until ctx ends (tests replace both).
	nowFn  func() time.Time
	waitFn func(ctx context.Context, d time.Duration)
}

// ErrNoLM is returned by NewLMChecker for a backend that runs no language
// models (it does not implement kernels.LM).
var ErrNoLM = errors.New("quality: the backend runs no language models")

// NewLMChecker returns a checker of sequences generated on backend (which
// must implement kernels.LM) by worker, which hands each report to
// publish. It shares cfg's sample rate, interval, queue length and
// metrics with the tensor models' Checker; Budget bounds its checks alone;
// Rows and Hold do not apply.
func NewLMChecker(cfg Config, backend kernels.Backend, worker string, publish func(context.Context, *gearbox.QualityReport) error, log zerolog.Logger) (*LMChecker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lmb, ok := backend.(kernels.LM)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoLM, backend.Name())
	}
	cfg = cfg.WithDefaults()
	return &LMChecker{
		cfg: cfg, backend: backend, lm: lmb, worker: worker, publish: publish, log: log,
		queue: make(chan *lmCheck, cfg.Queue), sampler: newSampler(cfg), warmed: map[warmKey]bool{},
		nowFn: time.Now, waitFn: wait,
	}, nil
}

// wait returns after d, or as soon as ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Offer considers a finished generation for a check: prompt and generated
// are its tokens, generated at precision served for job. It copies them
// when the sequence is sampled and returns without waiting; when the
// queue is full the sequence is not checked (counted as dropped).
func (c *LMChecker) Offer(now time.Time, m *lm.Model, served precision.Format, job string, prompt, generated []int32) {
	if len(prompt) == 0 || len(generated) == 0 || !c.draw(now, m.Name) {
		return
	}
	ck := &lmCheck{m: m, served: served, job: job, prompt: slices.Clone(prompt), generated: slices.Clone(generated)}
	select {
	case c.queue <- ck:
		c.checked(now, m.Name)
	default:
		c.cfg.Metrics.count(m.Name, "dropped")
	}
}

// Run performs queued checks until ctx ends. Under Config.Budget it rests
// after each check, so that checks take at most that share of its time.
func (c *LMChecker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case ck := <-c.queue:
			c.warm(ctx, ck.m, ck.served)
			if ctx.Err() != nil {
				return
			}
			start := c.nowFn()
			r, err := c.Check(ctx, ck.m, ck.served, ck.prompt, ck.generated)
			if err == nil {
				r.Batch = ck.job
				err = c.publish(ctx, r)
			}
			if err != nil && ctx.Err() != nil {
				return
			}
			d := c.nowFn().Sub(start)
			c.cfg.Metrics.done(c.log, ck.m.Name, ck.job, r, err)
			c.cfg.Metrics.spent(ck.m.Name, d)
			if rest := c.rest(d); rest > 0 {
				c.waitFn(ctx, rest)
			}
		}
	}
}

// warm has the backend convert or upload the weights a check of m served
// at served runs on (kernels.WarmLM), once for each model and precision,
// before the check's clock starts: a one-time cost of the worker's, and a
// wait behind other weights' conversion on the same device, that timed
// with the check would rest the checker nine times as long under the
// default budget. Only rungs warmed without error are remembered (a
// failure is left to the check); the worker never evicts a language model.
func (c *LMChecker) warm(ctx context.Context, m *lm.Model, served precision.Format) {
	ref, cand := c.rungs(m, served)
	for _, p := range []precision.Format{ref, served, cand} {
		k := warmKey{m, p}
		if p == "" || c.warmed[k] || ctx.Err() != nil {
			continue
		}
		if err := kernels.WarmLM(ctx, c.lm, m, p); err != nil {
			c.log.Debug().Err(err).Str("model", m.Name).Str("precision", string(p)).Msg("quality check: warming up")
			continue
		}
		c.warmed[k] = true
	}
}

// warmKey is a model's weights at a precision, warmed by LMChecker.warm.
type warmKey struct {
	m *lm.Model
	p precision.Format
}

// rungs returns the precisions besides served that a check of m runs: the
// reference (fp32 where the backend cannot run m's) and the next cheaper
// rung after served that the backend runs ("" if none).
func (c *LMChecker) rungs(m *lm.Model, served precision.Format) (ref, cand precision.Format) {
	ref = m.Reference()
	if !kernels.Supports(c.backend, ref) {
		ref = precision.FP32
	}
	if next, ok := precision.Next(m.Precision.Ladder, served); ok && kernels.Supports(c.backend, next) {
		cand = next
	}
	return ref, cand
}

// rest is how long to rest after a check that took d for checks to take
// Budget of the time: d·(1/Budget − 1), none when unbounded.
func (c *LMChecker) rest(d time.Duration) time.Duration {
	if b := c.cfg.Budget; b > 0 && b < 1 {
		return time.Duration(float64(d) * (1/b - 1))
	}
	return 0
}

// logitChunkBytes bounds the logits one teacher-forced step returns per
// precision: a long generation is re-run in chunks of positions (for a
// vocabulary of 128k, 128 positions a step).
var logitChunkBytes = 64 << 20

// Check re-runs the sequence prompt + generated teacher-forced on the
// backend at m's reference precision (Model.Reference, fp32 where the
// backend cannot run it), at served, and at the next cheaper rung of m's
// ladder after served that the backend runs, and returns the report
// (without Batch) comparing the next-token distributions of every
// generated position: served's against the reference, and the shadow
// rung's. Runs at the same precision are done once: served at the
// reference is compared with itself (KL 0 exactly).
func (c *LMChecker) Check(ctx context.Context, m *lm.Model, served precision.Format, prompt, generated []int32) (*gearbox.QualityReport, error) {
	n, vocab := len(generated), m.Config.Vocab
	if len(prompt) == 0 || n == 0 {
		return nil, errors.New("quality check: a sequence needs a prompt and a generated token")
	}
	ref, cand := c.rungs(m, served)
	// Row i of tokens predicts tokens[i+1]: the rows from first on predict
	// the generated tokens. The last generated token predicts nothing
	// judged, so it is not fed.
	tokens := slices.Concat(prompt, generated[:n-1])
	first := len(prompt) - 1
	runs := map[precision.Format]*teacherForced{}
	defer func() {
		for _, r := range runs {
			_ = r.kv.Close()
		}
	}()
	for _, p := range []precision.Format{ref, served, cand} {
		if _, ok := runs[p]; ok || p == "" {
			continue
		}
		r, err := c.newTeacherForced(m, p, len(tokens))
		if err != nil {
			return nil, fmt.Errorf("teacher-forced run at %s: %w", p, err)
		}
		runs[p] = r
	}
	chunk := max(1, logitChunkBytes/(4*vocab))
	var sv, cv logitStats
	for lo := 0; lo < len(tokens); {
		from := max(lo, first) // the first row whose logits are judged
		hi := min(len(tokens), from+chunk)
		logits := map[precision.Format][]float32{}
		for p, r := range runs {
			l, err := r.step(ctx, tokens[lo:hi], lo, hi-from)
			if err != nil {
				return nil, fmt.Errorf("teacher-forced run at %s: %w", p, err)
			}
			logits[p] = l
		}
		// The two comparisons are independent: side by side they keep the
		// cores busy where a chunk has fewer positions than the host has
		// cores (a short generation, a long one's last chunk).
		var wg sync.WaitGroup
		if cand != "" {
			wg.Go(func() { cv.add(logits[cand], logits[ref], hi-from, vocab) })
		}
		sv.add(logits[served], logits[ref], hi-from, vocab)
		wg.Wait()
		lo = hi
	}
	r := &gearbox.QualityReport{
		Model:         m.Name,
		Digest:        m.Digest,
		Ladder:        m.Precision.Ladder,
		Initial:       m.Precision.Initial,
		MaxError:      m.Quality.MaxError,
		Metric:        string(m.Quality.Metric),
		Served:        served,
		ServedMetrics: sv.metrics(),
		Reference:     string(ref),
		Worker:        c.worker,
		Device:        c.backend.Name(),
		BatchRows:     1,
		Rows:          1,
		Tokens:        n,
		Time:          time.Now().UTC(),
	}
	if cand != "" {
		cm := cv.metrics()
		r.Candidate, r.CandidateMetrics = cand, &cm
	}
	return r, nil
}

// teacherForced is one precision's re-run of a sequence: its own KV cache,
// fed in steps.
type teacherForced struct {
	lm     kernels.LM
	m      *lm.Model
	p      precision.Format
	kv     kernels.KVCache
	blocks []int32
}

// newTeacherForced allocates a cache for n positions of m at p.
func (c *LMChecker) newTeacherForced(m *lm.Model, p precision.Format, n int) (*teacherForced, error) {
	nb := (n + kernels.KVBlockSize - 1) / kernels.KVBlockSize
	kv, err := c.lm.NewKVCache(m, p, nb)
	if err != nil {
		return nil, err
	}
	blocks := make([]int32, nb)
	for i := range blocks {
		blocks[i] = int32(i)
	}
	return &teacherForced{lm: c.lm, m: m, p: p, kv: kv, blocks: blocks}, nil
}

// step feeds tokens at positions pos on and returns the logits of the last
// rows rows, [rows, vocab].
func (t *teacherForced) step(ctx context.Context, tokens []int32, pos, rows int) ([]float32, error) {
	b := &kernels.Batch{Seqs: []kernels.Seq{{Tokens: tokens, Pos: pos, Blocks: t.blocks, Want: kernels.WantLogits, LogitRows: rows}}}
	outs, err := t.lm.Step(ctx, t.m, t.p, t.kv, b)
	if err != nil {
		return nil, err
	}
	if len(outs) != 1 || len(outs[0].Logits) != rows*t.m.Config.Vocab {
		return nil, fmt.Errorf("the backend returned %d outputs for 1 sequence, or logits not for %d rows of %d", len(outs), rows, t.m.Config.Vocab)
	}
	return outs[0].Logits, nil
}
