package lmbench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/worker"
)

// bareEnd is a sequence of the bare phase as it ended: its job's index
// (-1: a warm-up) and outcome.
type bareEnd struct {
	i int
	o *engine.Outcome
}

// bare runs the bare phase: the pinned phase's jobs, turned into engine
// sequences as the worker turns them (worker.Models.LMSeq: the same
// prompts, max_tokens, sampling and end-of-sequence tokens), straight
// through the engines a worker with Config.Worker starts
// (worker.NewLMEngine: the same KV cache, token budget and sequence
// limit) at the pinned precision, with at most InFlight sequences added
// and not ended. After an untimed warm-up of one short sequence per model,
// the clock runs from the first Add to the last sequence's end; the
// sequences are made before it: no queue, no codec, no acks.
//
// With warm set it is the warm pass instead: the same loop, untimed, run
// before the pinned phase, so that what a backend builds on first meeting
// a shape (the CUDA backend's GEMM plans, one per row count a step feeds)
// is built before either phase's clock, not by whichever runs first; it
// returns no phase.
func (b *bench) bare(ctx context.Context, warm bool) (*Phase, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	p, lmb, n := b.cfg.Pinned, b.cfg.Backend.(kernels.LM), len(b.jobs)
	engines := make([]*engine.Engine, len(b.models))
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		for _, e := range engines {
			if e != nil {
				_ = e.Close()
			}
		}
		wg.Wait()
	}()
	ends := make(chan bareEnd, n+len(b.models)) // never full: Done does not block the engine
	seq := func(j *job, tag string, i int) (*engine.Seq, error) {
		req := j.request(tag, i, b.models[j.model].Name, p, b.cfg.Temperature)
		q, m, err := b.set.LMSeq(ctx, req, b.cfg.Worker)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", req.ID, err)
		}
		if engines[j.model] == nil {
			e, err := worker.NewLMEngine(ctx, lmb, m, p, b.cfg.Worker)
			if err != nil {
				return nil, fmt.Errorf("engine for %s at %s: %w", m.Name, p, err)
			}
			engines[j.model] = e
			wg.Go(func() { _ = e.Run(runCtx) })
		}
		q.Done = func(o *engine.Outcome) { ends <- bareEnd{i, o} }
		return q, nil
	}
	wait := func(what string) (bareEnd, error) {
		select {
		case e := <-ends:
			if e.o.Err != nil {
				return e, fmt.Errorf("%s: %w", what, e.o.Err)
			}
			return e, nil
		case <-ctx.Done():
			return bareEnd{}, fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}

	start := time.Now()
	for mi := range b.models {
		w := b.warmJob(mi)
		q, err := seq(&w, "warm-bare", -1)
		if err != nil {
			return nil, err
		}
		if err := engines[mi].Add(ctx, q); err != nil {
			return nil, fmt.Errorf("warm-up of %s: %w", b.models[mi].Name, err)
		}
	}
	for range b.models {
		if _, err := wait("warm-up"); err != nil {
			return nil, err
		}
	}
	name := "bare phase"
	if warm {
		name = "warm pass"
	}
	b.progress("%s: warmed up in %.1fs", name, time.Since(start).Seconds())

	seqs := make([]*engine.Seq, n)
	for i := range b.jobs {
		q, err := seq(&b.jobs[i], PhaseBare, i)
		if err != nil {
			return nil, err
		}
		seqs[i] = q
	}
	pr := &phaseRun{spec: phaseSpec{name: PhaseBare, precision: p}, tokens: make([][]int32, n)}
	next := 0
	add := func() error {
		i := next
		next++
		if err := engines[b.jobs[i].model].Add(ctx, seqs[i]); err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
		return nil
	}
	stats := func() Engines {
		var sts []engine.StepStats
		for _, e := range engines {
			if e != nil {
				sts = append(sts, e.Stats())
			}
		}
		return engineTotals(sts)
	}
	before := stats()
	energy := b.energyMeter()
	stopProfile := func() error { return nil }
	if !warm {
		var err error
		if stopProfile, err = b.profile(PhaseBare); err != nil {
			return nil, err
		}
	}
	profiling := true
	defer func() {
		if profiling {
			_ = stopProfile()
		}
	}()
	pr.start = time.Now()
	for next < min(b.cfg.InFlight, n) {
		if err := add(); err != nil {
			return nil, err
		}
	}
	for range n {
		e, err := wait(fmt.Sprintf("%d of %d jobs ended", len(pr.answers), n))
		if err != nil {
			return nil, err
		}
		j := &b.jobs[e.i]
		toks := make([]int32, len(e.o.Tokens)) // non-nil: answered
		for k, tk := range e.o.Tokens {
			toks[k] = tk.ID
		}
		pr.tokens[e.i] = toks
		pr.answers = append(pr.answers, answer{at: time.Since(pr.start), model: j.model, precision: p,
			prompt: len(seqs[e.i].Prompt), output: e.o.Sampled, inEngine: e.o.Ended.Sub(e.o.Added)})
		if next < n {
			if err := add(); err != nil {
				return nil, err
			}
		}
	}
	elapsed := time.Since(pr.start)
	profiling = false
	if err := stopProfile(); err != nil {
		return nil, err
	}
	if warm {
		b.progress("warm pass: %d jobs in %.2fs, untimed", n, elapsed.Seconds())
		return nil, nil
	}
	ph := pr.summary(b, elapsed, energy())
	ph.Tokens = pr.tokens
	ph.Engines = stats().since(before)
	b.progress("bare phase: %d jobs in %.2fs: %.2f jobs/s, %.0f output tokens/s%s", ph.Answered, ph.Seconds,
		ph.JobsPerSec, ph.OutputTokensPerSec, energyNote(ph))
	return ph, nil
}
