package worker

import (
	"context"
	"sync"
	"time"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/quality"
)

// startQuality starts, as configured, the checker and the controller on
// goroutines that end with ctx. (The worker follows the policy bucket from
// its start: auto jobs run at the policy's precision.)
func (w *Worker) startQuality(ctx context.Context, wg *sync.WaitGroup) {
	q := w.cfg.Quality
	if q.Enabled() {
		wg.Go(func() { w.checker.Run(ctx) })
	}
	if w.lmChecker != nil {
		wg.Go(func() { w.lmChecker.Run(ctx) })
	}
	if q.Control {
		r := &quality.Runner{
			JS: w.js, Subjects: w.cfg.Subjects, KV: w.policyKV, Rules: q.Rules,
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
