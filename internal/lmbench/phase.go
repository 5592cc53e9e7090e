package lmbench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
	"github.com/gearbox-inference/gearbox/worker"
)

// phaseSpec says how a phase runs.
type phaseSpec struct {
	name      string           // "auto", or the pinned precision
	precision precision.Format // what every job asks for
	quality   quality.Config   // the workers' quality loop
	// warm lists, per model, the precisions warmed up before the clock.
	warm [][]precision.Format
	auto bool // set the policies first
}

// autoSpec is the auto phase: policies at Start, the quality loop on,
// every rung from Start down warmed up (the controller may step down to
// any of them; a step up above Start pays its engine's start in the run).
func (b *bench) autoSpec() phaseSpec {
	s := phaseSpec{name: "auto", precision: precision.Auto, quality: b.cfg.Quality, auto: true}
	for _, m := range b.models {
		var ps []precision.Format
		if i := slices.Index(m.Ladder, b.cfg.Start); i >= 0 {
			for _, p := range m.Ladder[i:] {
				if kernels.Supports(b.cfg.Backend, p) {
					ps = append(ps, p)
				}
			}
		}
		s.warm = append(s.warm, ps)
	}
	return s
}

// pinnedSpec is the pinned phase: every job at Pinned, no quality loop.
func (b *bench) pinnedSpec() phaseSpec {
	s := phaseSpec{name: string(b.cfg.Pinned), precision: b.cfg.Pinned}
	for range b.models {
		s.warm = append(s.warm, []precision.Format{b.cfg.Pinned})
	}
	return s
}

// answer is a result as the phase saw it.
type answer struct {
	at        time.Duration // since the clock started
	model     int
	precision precision.Format
	prompt    int
	output    int
	// How the job's time from its publish to its answer split: to its
	// engine (the result's queued_ms), in it (compute_ms), and back from
	// the sequence's end to the answer read. The bare phase has only the
	// time in the engine.
	toEngine, inEngine, back time.Duration
}

// event is a quality report or a policy change, and when it came.
type event[T any] struct {
	at time.Duration
	v  T
}

// phaseRun is a phase in progress.
type phaseRun struct {
	spec     phaseSpec
	start    time.Time
	answers  []answer
	reports  []event[*gearbox.QualityReport]
	policies []event[*gearbox.PrecisionPolicy]
	tokens   [][]int32 // each job's generated tokens, by index
}

// phase runs one phase: its workers, the warm-up, the policies and the
// timed jobs.
func (b *bench) phase(ctx context.Context, spec phaseSpec) (*Phase, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	// The policies are set before the workers start, so that they serve
	// them from their first job, and again after the warm-up, so that the
	// evidence and the cooldown start with the timed jobs (the warm-up's
	// checks are left out: one per precision, too few for a step).
	if spec.auto {
		if err := b.setPolicies(ctx); err != nil {
			return nil, err
		}
	}
	// The checks' time is read off the quality metrics: the caller's, or
	// the phase's own.
	if spec.quality.Enabled() && spec.quality.Metrics == nil {
		spec.quality.Metrics = quality.NewMetrics(prometheus.NewRegistry())
	}
	runErr := make(chan error, b.cfg.Workers)
	stop, stats, err := b.startWorkers(spec, runErr)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	pr := &phaseRun{spec: spec, tokens: make([][]int32, len(b.jobs))}
	if err := b.warmUp(ctx, pr, runErr); err != nil {
		return nil, err
	}
	if spec.auto {
		if err := b.setPolicies(ctx); err != nil {
			return nil, err
		}
	}
	energy := b.energyMeter()
	before, checksBefore := stats(), b.checkSeconds(spec.quality.Metrics)
	stopProfile, err := b.profile(spec.name)
	if err != nil {
		return nil, err
	}
	if err := b.timed(ctx, pr, runErr); err != nil {
		return nil, errors.Join(err, stopProfile())
	}
	elapsed := time.Since(pr.start)
	checks := b.checkSeconds(spec.quality.Metrics) - checksBefore
	if err := stopProfile(); err != nil {
		return nil, err
	}
	joules := energy()
	ph := pr.summary(b, elapsed, joules)
	ph.Tokens = pr.tokens
	ph.Engines = stats().since(before)
	ph.CheckSeconds = checks
	var holds []Final
	if spec.auto {
		if holds, err = b.finals(ctx); err != nil {
			return nil, err
		}
	}
	stop()
	stopped = true
	// What the workers' checks published while they stopped.
drain:
	for {
		select {
		case r := <-b.reports:
			pr.report(r)
		default:
			break drain
		}
	}
	ph.setQuality(b, pr, holds)
	b.progress("%s phase: %d jobs in %.2fs: %.2f jobs/s, %.0f output tokens/s%s", spec.name, ph.Answered, ph.Seconds,
		ph.JobsPerSec, ph.OutputTokensPerSec, energyNote(ph))
	return ph, nil
}

// checkSeconds is the time the language-model checks of the run's models
// counted in met have taken so far; 0 where met is nil.
func (b *bench) checkSeconds(met *quality.Metrics) float64 {
	if met == nil {
		return 0
	}
	var s float64
	for _, m := range b.models {
		var d dto.Metric
		if err := met.CheckSeconds(m.Name).Write(&d); err == nil {
			s += d.GetCounter().GetValue()
		}
	}
	return s
}

// profile starts Config.Profile for the phase called name, if set, and
// returns what stops it.
func (b *bench) profile(name string) (stop func() error, err error) {
	if b.cfg.Profile == nil {
		return func() error { return nil }, nil
	}
	stop, err = b.cfg.Profile(name)
	if err != nil {
		return nil, fmt.Errorf("profile of the %s phase: %w", name, err)
	}
	return stop, nil
}

func energyNote(ph *Phase) string {
	if ph.JoulesPer1kJobs == nil {
		return ""
	}
	return fmt.Sprintf(", %.0f J per 1,000 jobs", *ph.JoulesPer1kJobs)
}

// startWorkers starts the phase's workers, each on its own connection;
// stop shuts them down gracefully and closes their connections; stats sums
// their engines' statistics so far.
func (b *bench) startWorkers(spec phaseSpec, runErr chan<- error) (stop func(), stats func() Engines, err error) {
	hard, hardStop := context.WithCancel(context.Background())
	var ws []*worker.Worker
	var closers []func()
	var wg sync.WaitGroup
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, w := range ws {
			_ = w.Shutdown(sctx)
		}
		hardStop()
		wg.Wait()
		for _, c := range closers {
			c()
		}
	}
	for i := range b.cfg.Workers {
		nc, err := b.connect(fmt.Sprintf("bench-lm-%s-%d", spec.name, i))
		if err != nil {
			stop()
			return nil, nil, err
		}
		closers = append(closers, nc.Close)
		wc := b.cfg.Worker
		wc.Subjects, wc.Provision, wc.Quality = b.subj, false, spec.quality
		wc.Name = fmt.Sprintf("%s-w%d", spec.name, i)
		if i > 0 {
			wc.Quality.Control = false // one controller is enough, as in `gearbox worker`
		}
		w, err := worker.New(nc, b.cfg.Backends[i%len(b.cfg.Backends)], b.set, wc)
		if err != nil {
			stop()
			return nil, nil, err
		}
		ws = append(ws, w)
		wg.Go(func() {
			if err := w.Run(hard); err != nil && !errors.Is(err, context.Canceled) {
				runErr <- fmt.Errorf("worker %s: %w", w.Name(), err)
			}
		})
	}
	stats = func() Engines {
		var sts []engine.StepStats
		for _, w := range ws {
			sts = append(sts, w.LMStats()...)
		}
		return engineTotals(sts)
	}
	return stop, stats, nil
}

// warmUp runs one short job per model and precision of the phase's warm
// list and waits for them: each model is fetched, each engine started and
// each precision's weights converted before the clock starts.
func (b *bench) warmUp(ctx context.Context, pr *phaseRun, runErr <-chan error) error {
	start := time.Now()
	want := map[string]string{} // job id → "model precision"
	for mi, ps := range pr.spec.warm {
		w := b.warmJob(mi)
		for _, p := range ps {
			j := w.request("warm-"+pr.spec.name+"-"+string(p)+"-"+strconv.Itoa(mi), 0, b.models[mi].Name, p, 0)
			if _, err := b.client.Submit(ctx, j); err != nil {
				return fmt.Errorf("warm-up job %s: %w", j.ID, err)
			}
			want[j.ID] = b.models[mi].Name + " " + string(p)
		}
	}
	// A model's first job fetches it and each precision's uploads its
	// weights: a large checkpoint takes minutes, so say where it is.
	b.progress("%s phase: warming up %d model precisions", pr.spec.name, len(want))
	tick := time.NewTicker(warmProgress)
	defer tick.Stop()
	for len(want) > 0 {
		select {
		case r := <-b.results:
			what, ok := want[r.ID]
			if !ok {
				continue
			}
			if r.Error != nil {
				return fmt.Errorf("warm-up job %s: %s: %s", r.ID, r.Error.Code, r.Error.Message)
			}
			delete(want, r.ID)
			b.progress("%s phase: warming up: %s ready at %.1fs", pr.spec.name, what, time.Since(start).Seconds())
		case <-tick.C:
			b.progress("%s phase: warming up: %.0fs, waiting for %s", pr.spec.name, time.Since(start).Seconds(),
				strings.Join(slices.Sorted(maps.Values(want)), ", "))
		case r := <-b.reports:
			_ = r // the checks of warm-up jobs are no part of the phase
		case <-b.policies:
		case err := <-b.followErr:
			return err
		case err := <-runErr:
			return err
		case <-ctx.Done():
			return fmt.Errorf("warm-up: %w (%d jobs unanswered)", ctx.Err(), len(want))
		}
	}
	b.progress("%s phase: warmed up in %.1fs", pr.spec.name, time.Since(start).Seconds())
	return nil
}

// warmProgress is how often the warm-up says which jobs it still waits for.
const warmProgress = 15 * time.Second

// warmJob is model mi's warm-up job: a prompt of PromptMin tokens, 2
// tokens out.
func (b *bench) warmJob(mi int) job {
	prompt := make([]int32, b.cfg.PromptMin)
	for k := range prompt {
		prompt[k] = int32(k % b.models[mi].Vocab)
	}
	return job{model: mi, prompt: prompt, maxTokens: 2}
}

// setPolicies sets each model's policy by hand: its target, precision
// Start, the whole ladder allowed.
func (b *bench) setPolicies(ctx context.Context) error {
	for _, m := range b.models {
		base := gearbox.PrecisionPolicy{Model: m.Name, Precision: b.cfg.Start, Floor: m.Ladder[len(m.Ladder)-1], Ceiling: m.Ladder[0]}
		_, _, err := quality.SetPolicy(ctx, b.client.JetStream(), b.subj, b.kv, m.Name, base, func(p *gearbox.PrecisionPolicy) error {
			p.Precision, p.Floor, p.Ceiling, p.MaxError = base.Precision, base.Floor, base.Ceiling, m.MaxKL
			p.Reason = fmt.Sprintf("set by bench lm: start at %s, KL target %g", base.Precision, m.MaxKL)
			return nil
		})
		if err != nil {
			return fmt.Errorf("policy of %s: %w", m.Name, err)
		}
	}
	return nil
}

// timed publishes the phase's jobs, at most InFlight unanswered, and
// collects their results, the quality reports and the policy changes
// until every job is answered.
func (b *bench) timed(ctx context.Context, pr *phaseRun, runErr <-chan error) error {
	n := len(b.jobs)
	done := make([]bool, n)
	sent := make([]time.Time, n)
	next, answered := 0, 0
	submit := func() error {
		j := &b.jobs[next]
		req := j.request(pr.spec.name, next, b.models[j.model].Name, pr.spec.precision, b.cfg.Temperature)
		sent[next] = time.Now()
		if _, err := b.client.Submit(ctx, req); err != nil {
			return fmt.Errorf("publish job %s: %w", req.ID, err)
		}
		next++
		return nil
	}
	pr.start = time.Now()
	for next < min(b.cfg.InFlight, n) {
		if err := submit(); err != nil {
			return err
		}
	}
	for answered < n {
		select {
		case r := <-b.results:
			i, ok := jobIndex(r.ID, pr.spec.name)
			if !ok || i >= n || done[i] {
				continue // a warm-up's, another phase's, or a repeat
			}
			if r.Error != nil {
				return fmt.Errorf("job %s (model %s): %s: %s", r.ID, r.Model, r.Error.Code, r.Error.Message)
			}
			done[i] = true
			answered++
			pr.tokens[i] = append([]int32{}, r.Tokens...) // non-nil: answered
			a := answer{at: time.Since(pr.start), model: b.jobs[i].model, precision: r.Precision,
				toEngine: msDuration(r.QueuedMs), inEngine: msDuration(r.ComputeMs)}
			a.back = time.Since(sent[i]) - a.toEngine - a.inEngine
			if r.Usage != nil {
				a.prompt, a.output = r.Usage.PromptTokens, r.Usage.CompletionTokens
			}
			pr.answers = append(pr.answers, a)
			if next < n {
				if err := submit(); err != nil {
					return err
				}
			}
		case r := <-b.reports:
			pr.report(r)
		case p := <-b.policies:
			pr.policies = append(pr.policies, event[*gearbox.PrecisionPolicy]{at: time.Since(pr.start), v: p})
		case err := <-b.followErr:
			return err
		case err := <-runErr:
			return err
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d jobs answered", ctx.Err(), answered, n)
		}
	}
	return nil
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// report records a quality report if it checked one of the phase's jobs.
func (pr *phaseRun) report(r *gearbox.QualityReport) {
	if _, ok := jobIndex(r.Batch, pr.spec.name); ok {
		pr.reports = append(pr.reports, event[*gearbox.QualityReport]{at: time.Since(pr.start), v: r})
	}
}

// jobIndex parses the id <tag>-<i> of a phase's job.
func jobIndex(id, tag string) (int, bool) {
	s, ok := strings.CutPrefix(id, tag+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0
}

// finals is the controllers' view of every model at the auto phase's end.
func (b *bench) finals(ctx context.Context) ([]Final, error) {
	var out []Final
	for _, m := range b.models {
		st, _, err := quality.Inspect(ctx, b.client.JetStream(), b.subj, b.kv, m.Name, b.cfg.Quality.Rules)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", m.Name, err)
		}
		out = append(out, Final{Model: m.Name, Precision: st.Policy.Precision, Hold: string(st.Hold), Reason: st.Reason})
	}
	return out, nil
}
