package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaderLoss records one killed stream leader.
type LeaderLoss struct {
	Stream string
	// Killed is the server that led the stream and was killed; Elected the
	// one that led it next.
	Killed, Elected string
	// Election is the time from the kill until a new leader answered;
	// Recovered the time from the kill until the killed server was back
	// and every replica current again.
	Election, Recovered time.Duration
}

func (l LeaderLoss) String() string {
	return fmt.Sprintf("%s: leader %s killed, %s elected after %v, all replicas current after %v",
		l.Stream, l.Killed, l.Elected, l.Election.Round(time.Millisecond), l.Recovered.Round(time.Millisecond))
}

// KillLeader finds the leader of stream among servers (the cluster info
// of $JS.API.STREAM.INFO), kills it with SIGKILL, waits until another
// server leads the stream, restarts the killed one after down, and waits
// until every replica is current again.
func KillLeader(ctx context.Context, js jetstream.JetStream, servers []*Server, stream string, down time.Duration) (LeaderLoss, error) {
	l := LeaderLoss{Stream: stream}
	info, err := streamInfo(ctx, js, stream)
	if err != nil {
		return l, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return l, fmt.Errorf("chaos: stream %s has no leader", stream)
	}
	l.Killed = info.Cluster.Leader
	var victim *Server
	for _, s := range servers {
		if s.Name == l.Killed {
			victim = s
		}
	}
	if victim == nil {
		return l, fmt.Errorf("chaos: stream %s is led by %s, not one of the servers", stream, l.Killed)
	}
	t0 := time.Now()
	if err := victim.Kill(); err != nil {
		return l, err
	}
	err = poll(ctx, func() error {
		info, err := streamInfo(ctx, js, stream)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == l.Killed {
			return fmt.Errorf("no new leader yet")
		}
		l.Elected = info.Cluster.Leader
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("chaos: %s: electing a leader after %s was killed: %w", stream, l.Killed, err)
	}
	l.Election = time.Since(t0)
	select {
	case <-time.After(down - min(down, time.Since(t0))):
	case <-ctx.Done():
		return l, ctx.Err()
	}
	if err := victim.Restart(); err != nil {
		return l, err
	}
	err = poll(ctx, func() error {
		info, err := streamInfo(ctx, js, stream)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("no leader")
		}
		back := info.Cluster.Leader == l.Killed
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s not current", r.Name)
			}
			back = back || r.Name == l.Killed
		}
		if !back {
			return fmt.Errorf("%s is not among the replicas", l.Killed)
		}
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("chaos: %s: waiting for %s to catch up: %w", stream, l.Killed, err)
	}
	l.Recovered = time.Since(t0)
	return l, nil
}

// poll calls fn every 100 ms until it returns nil or ctx ends.
func poll(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
	}
}
