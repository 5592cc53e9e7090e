package e2e

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/precision"
)

// A lane is one deployment's streams and shared consumer on the bench's
// server: the workers' own (main), or one of the RawStreams lanes the raw
// side spreads its jobs over when Config.RawStreams > 1. Each lane is a
// deployment of its own subject prefix, <prefix>-raw<i> (i from 1), so it
// has its own job stream, result stream and consumer, provisioned exactly
// as the workers' are: what spreading a deployment's traffic over several
// streams would buy, both ways, on one server. The workers never see them.
type lane struct {
	client *gearbox.Client
	subj   gearbox.Subjects
}

// main is the workers' lane.
func (b *bench) main() lane { return lane{client: b.client, subj: b.subj} }

// newLanes provisions n lanes on nc's server with the workers' stream
// settings.
func newLanes(ctx context.Context, nc *nats.Conn, main gearbox.Subjects, streams gearbox.StreamsConfig, n int) ([]lane, error) {
	var lanes []lane
	for i := range n {
		subj, err := gearbox.NewSubjects(main.Prefix + "-raw" + strconv.Itoa(i+1))
		if err != nil {
			return nil, err
		}
		c, err := gearbox.NewClient(nc, gearbox.WithPrefix(subj.Prefix))
		if err != nil {
			return nil, err
		}
		if err := c.Provision(ctx, streams); err != nil {
			return nil, fmt.Errorf("raw stream lane %d: %w", i+1, err)
		}
		lanes = append(lanes, lane{client: c, subj: subj})
	}
	return lanes, nil
}

// rawConsumers is how many consumers the raw side runs over the
// RawStreams lanes: Workers, and at least one a lane.
func (c *Config) rawConsumers() int { return max(c.Workers, c.RawStreams) }

// followLanes is follow over every lane, lane i holding the jobs
// i, i+len(lanes), …: one tally of them all, the first error if any.
func (b *bench) followLanes(ctx context.Context, lanes []lane, p precision.Format, jobs int) <-chan tally {
	if len(lanes) == 1 {
		return b.follow(ctx, lanes[0], p, jobs)
	}
	ctx, cancel := context.WithCancel(ctx)
	var dones []<-chan tally
	for i, l := range lanes {
		if n := (jobs - i + len(lanes) - 1) / len(lanes); n > 0 {
			dones = append(dones, b.follow(ctx, l, p, n))
		}
	}
	done := make(chan tally, 1)
	go func() {
		defer cancel()
		all := tally{batches: map[string]int{}}
		for _, d := range dones {
			t := <-d
			all.n += t.n
			for k, v := range t.batches {
				all.batches[k] = v
			}
			if t.err != nil && all.err == nil {
				all.err = t.err
				cancel() // the others need not wait for results
			}
		}
		done <- all
	}()
	return done
}
