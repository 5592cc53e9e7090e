package demo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/precision"
)

// The language-model run publishes every prompt as a greedy generate job
// at one precision of the model's ladder, waits for all their results,
// then does the same at the next precision: one precision at a time, so
// each one's tokens/s is its own. The first precision (fp32 by default) is
// the reference the others' tokens are compared with, and the quality
// loop's reference too.
//
// Then the walk (lmwalk.go): precision-auto jobs while the quality loop on
// token distributions moves the model's policy down the ladder from its
// top, until the controller holds.

// lmRun is what the phases of the language-model run share.
type lmRun struct {
	ctx       context.Context
	c         *cluster
	m         *lm.Model
	followErr chan error
}

// runLM runs the language-model run of cfg.LM for m on c.
func runLM(ctx context.Context, cfg Config, c *cluster, m *lm.Model) (*LMSummary, error) {
	lc := *cfg.LM
	ps, source, err := lc.prompts(m)
	if err != nil {
		return nil, err
	}
	sum := newLMSummary(m, ps, lc.Precisions, lc.MaxTokens)
	sum.source, sum.backend, sum.workers = source, cfg.Backend.Name(), cfg.Workers
	c.track(m.Name, sum.policy)

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	run := &lmRun{ctx: ctx, c: c, m: m, followErr: make(chan error, 1)}
	answered := make(chan struct{}, len(ps)*len(lc.Precisions))
	warm := make(chan struct{}, len(lc.Precisions))
	walked := make(chan struct{}, max(lc.Walk, 0))
	go func() {
		for r, err := range c.client.Results(ctx, m.Name, true) {
			if err != nil {
				run.followErr <- err
				return
			}
			switch {
			case strings.HasPrefix(r.ID, warmupPrefix):
				warm <- struct{}{}
			case strings.HasPrefix(r.ID, walkPrefix):
				if sum.walk.add(r) {
					walked <- struct{}{}
				}
			case sum.add(r, time.Now()):
				answered <- struct{}{}
			}
		}
	}()
	greedy, one := 0.0, 1

	// One token at every precision first, untimed: each engine starts,
	// and the backend converts the weights, before its precision's clock.
	for _, p := range lc.Precisions {
		if err := run.publish(warmupPrefix+string(p), p, ps[0].text, &one, &greedy, nil); err != nil {
			return nil, err
		}
	}
	if err := run.wait(warm, len(lc.Precisions), "the warm-up jobs"); err != nil {
		return nil, err
	}
	for pi, p := range lc.Precisions {
		start := time.Now()
		sum.begin(pi, start)
		for i, pr := range ps {
			if err := run.publish(lmJobID(p, i), p, pr.text, &lc.MaxTokens, &greedy, nil); err != nil {
				return nil, err
			}
		}
		if err := run.wait(answered, len(ps), string(p)+" results"); err != nil {
			return nil, err
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s %-4s: %d prompts answered in %.2fs\n", m.Name, p, len(ps), time.Since(start).Seconds())
		}
	}
	if err := run.walk(cfg, lc, ps, sum.walk, walked); err != nil {
		return nil, err
	}
	return sum, nil
}

// publish submits a generate job of text.
func (r *lmRun) publish(id string, p precision.Format, text string, maxTokens *int, temp *float64, seed *uint64) error {
	j := &gearbox.Job{ID: id, Model: r.m.Name, Precision: p,
		LMRequest: gearbox.LMRequest{Prompt: text, MaxTokens: maxTokens, Temperature: temp, Seed: seed}}
	if _, err := r.c.client.SubmitAsync(j); err != nil {
		return fmt.Errorf("publish job %s: %w", j.ID, err)
	}
	return nil
}

// wait takes n signals from ch: n results of what.
func (r *lmRun) wait(ch <-chan struct{}, n int, what string) error {
	for i := range n {
		select {
		case <-ch:
		case err := <-r.followErr:
			return err
		case err := <-r.c.runErr:
			return fmt.Errorf("worker: %w", err)
		case <-r.ctx.Done():
			return fmt.Errorf("waiting for %s: %w (%d of %d received)", what, r.ctx.Err(), i, n)
		}
	}
	return nil
}

// warmupPrefix begins the ids of the warm-up jobs.
const warmupPrefix = "warmup-"

// lmJobID names prompt i's job at precision p.
func lmJobID(p precision.Format, i int) string {
	return "lm-" + string(p) + "-" + strconv.Itoa(i)
}

// lmJobIndex parses a language-model job's id.
func lmJobIndex(id string) (precision.Format, int, bool) {
	s, ok := strings.CutPrefix(id, "lm-")
	if !ok {
		return "", 0, false
	}
	p, n, ok := strings.Cut(s, "-")
	if !ok {
		return "", 0, false
	}
	i, err := strconv.Atoi(n)
	return precision.Format(p), i, err == nil && i >= 0
}
