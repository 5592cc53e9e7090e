package chaos

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearbox-inference/gearbox"
)

// ProducerConfig paces and bounds Publish.
type ProducerConfig struct {
	// Rate is jobs per second (0: as fast as acknowledgements come).
	Rate float64
	// InFlight bounds jobs published and not yet acknowledged (default
	// 1,000).
	InFlight int
	// AckTimeout is how long a publish waits for the stream's
	// acknowledgement before it is sent again (default 5 s).
	AckTimeout time.Duration
}

// PublishStats counts what a Publish took.
type PublishStats struct {
	// Jobs is how many jobs the job stream acknowledged.
	Jobs int
	// Retries counts publishes sent again: failed, or unacknowledged
	// within AckTimeout.
	Retries int
	// Duplicates counts acknowledgements that said the job was already
	// stored (a retry of a publish that had landed).
	Duplicates int
}

// Publish publishes every job with c asynchronously (Client.SubmitAsync:
// Nats-Msg-Id is the job's id) at cfg.Rate, and sends each again, with the
// same id, until the job stream acknowledges it: through a server restart
// or a leader election a producer loses nothing, and the stream's duplicate
// window drops a retry of a publish that did land. It returns when every
// job is acknowledged, or with ctx's error.
func Publish(ctx context.Context, c *gearbox.Client, jobs []*gearbox.Job, cfg ProducerConfig) (PublishStats, error) {
	if cfg.InFlight == 0 {
		cfg.InFlight = 1000
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	var retries, dups, acked atomic.Int64
	slots := make(chan struct{}, cfg.InFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i, j := range jobs {
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			for attempt := 0; ctx.Err() == nil; attempt++ {
				if attempt > 0 {
					retries.Add(1)
					select {
					case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, time.Second)):
					case <-ctx.Done():
						return
					}
				}
				f, err := c.SubmitAsync(j)
				if err != nil {
					continue
				}
				select {
				case ack := <-f.Ok():
					if ack.Duplicate {
						dups.Add(1)
					}
					acked.Add(1)
					return
				case <-f.Err():
				case <-time.After(cfg.AckTimeout):
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	return PublishStats{Jobs: int(acked.Load()), Retries: int(retries.Load()), Duplicates: int(dups.Load())}, ctx.Err()
}
