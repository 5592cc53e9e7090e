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
// the reference the others' tokens are compared with.
//
// Seam for the quality loop on token distributions (worker and quality,
// not this package): once workers publish KL reports for language models
// and the controller moves their policy, a phase of precision-auto jobs
// after the explicit ones shows the policy walking down the ladder; the
// policy changes it makes are recorded already (LMSummary.policy, from the
// cluster's watch of the policy bucket) and printed by printPolicy.

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
	answered := make(chan struct{}, len(ps)*len(lc.Precisions))
	warm := make(chan struct{}, len(lc.Precisions))
	followErr := make(chan error, 1)
	go func() {
		for r, err := range c.client.Results(ctx, m.Name, true) {
			if err != nil {
				followErr <- err
				return
			}
			if strings.HasPrefix(r.ID, warmupPrefix) {
				warm <- struct{}{}
			} else if sum.add(r, time.Now()) {
				answered <- struct{}{}
			}
		}
	}()
	wait := func(ch <-chan struct{}, n int, what string) error {
		for i := range n {
			select {
			case <-ch:
			case err := <-followErr:
				return err
			case err := <-c.runErr:
				return fmt.Errorf("worker: %w", err)
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w (%d of %d received)", what, ctx.Err(), i, n)
			}
		}
		return nil
	}
	temp, one := 0.0, 1
	publish := func(id string, p precision.Format, text string, maxTokens *int) error {
		j := &gearbox.Job{ID: id, Model: m.Name, Precision: p,
			LMRequest: gearbox.LMRequest{Prompt: text, MaxTokens: maxTokens, Temperature: &temp}}
		if _, err := c.client.SubmitAsync(j); err != nil {
			return fmt.Errorf("publish job %s: %w", j.ID, err)
		}
		return nil
	}

	// One token at every precision first, untimed: each engine starts,
	// and the backend converts the weights, before its precision's clock.
	for _, p := range lc.Precisions {
		if err := publish(warmupPrefix+string(p), p, ps[0].text, &one); err != nil {
			return nil, err
		}
	}
	if err := wait(warm, len(lc.Precisions), "the warm-up jobs"); err != nil {
		return nil, err
	}
	for pi, p := range lc.Precisions {
		start := time.Now()
		sum.begin(pi, start)
		for i, pr := range ps {
			if err := publish(lmJobID(p, i), p, pr.text, &lc.MaxTokens); err != nil {
				return nil, err
			}
		}
		if err := wait(answered, len(ps), string(p)+" results"); err != nil {
			return nil, err
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s %-4s: %d prompts answered in %.2fs\n", m.Name, p, len(ps), time.Since(start).Seconds())
		}
	}
	return sum, nil
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
