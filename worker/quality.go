package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/quality"
)

// startQuality follows the policy bucket (always: auto jobs run at the
// policy's precision) and, as configured, starts the checker and the
// controller on goroutines that end with ctx.
func (w *Worker) startQuality(ctx context.Context, wg *sync.WaitGroup) error {
	kv, err := gearbox.PolicyStore(ctx, w.js, w.cfg.Subjects, w.cfg.Streams.Replicas, false)
	if err != nil {
		return fmt.Errorf("%w (provisioning creates it: run one worker with provisioning on, or gearbox.Provision)", err)
	}
	if w.policies, err = quality.WatchPolicies(ctx, kv, w.log); err != nil {
		return err
	}
	q := w.cfg.Quality
	if q.Enabled() {
		w.checker, err = quality.NewChecker(q, w.backend, w.cfg.Name, w.publishReport, w.log)
		if err != nil {
			return err
		}
		wg.Go(func() { w.checker.Run(ctx) })
	}
	if q.Control {
		r := &quality.Runner{
			JS: w.js, Subjects: w.cfg.Subjects, KV: kv, Rules: q.Rules,
			Name: w.cfg.Name, Log: w.log, Metrics: q.Metrics,
		}
		wg.Go(func() {
			// A controller that fails (the stream or the bucket briefly
			// unavailable, say) starts again, replaying from its policies:
			// it never stays down for the worker's life.
			backoff := time.Second
			for {
				err := r.Run(ctx)
				if ctx.Err() != nil {
					return
				}
				w.log.Error().Err(err).Dur("retry_in", backoff).Msg("quality controller stopped; restarting")
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
			}
		})
	}
	return nil
}

// publishReport stores a quality report in GEARBOX_QUALITY.
func (w *Worker) publishReport(ctx context.Context, r *gearbox.QualityReport) error {
	msg, err := gearbox.NewMsg(w.cfg.Subjects.Quality(r.Model), r, gearbox.Msgpack)
	if err != nil {
		return err
	}
	_, err = w.js.PublishMsg(ctx, msg)
	return err
}
