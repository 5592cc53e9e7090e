package gearbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrInvalidOption is wrapped by StreamsConfig.Validate's errors.
var ErrInvalidOption = errors.New("gearbox: invalid option")

// StreamsConfig sizes the streams and the shared consumer. Zero fields take
// the defaults in their comments.
type StreamsConfig struct {
	// Replicas of every stream (default 1; use 3 on a NATS cluster).
	Replicas int
	// JobsMaxMsgs and JobsMaxBytes bound the job stream (defaults 1,000,000
	// messages, 1 GiB). Past them a publish fails (DiscardNew): producers
	// feel backpressure instead of jobs being dropped.
	JobsMaxMsgs  int64
	JobsMaxBytes int64
	// JobsDuplicates is the window in which a repeated Nats-Msg-Id is
	// dropped (default 2 minutes).
	JobsDuplicates time.Duration
	// ResultsMaxAge is how long results are kept (default 24 hours).
	ResultsMaxAge time.Duration
	// ResultsDuplicates is the window in which a second result for the same
	// job id is dropped (default 10 minutes); it must outlast AckWait times
	// MaxDeliver, so a redelivered job never yields two results.
	ResultsDuplicates time.Duration
	// QualityMaxAge and DeadMaxAge: retention of quality reports and dead
	// letters (defaults 7 and 14 days).
	QualityMaxAge time.Duration
	DeadMaxAge    time.Duration
	// QualityMaxPerModel keeps at most this many quality reports per model
	// (default 10,000): it bounds what a starting controller replays.
	QualityMaxPerModel int64
	// AckWait is the consumer's ack timeout (default 30 s); workers send
	// InProgress for jobs held longer than a third of it.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries a failing job gets (default 5): on
	// the last, a job that still fails is answered with its error and
	// dead-lettered. Workers count it; the consumer itself redelivers
	// without limit, so no job is stranded by a worker dying on its last
	// delivery.
	MaxDeliver int
	// MaxAckPending bounds un-acked jobs across the whole fleet
	// (default 20,000).
	MaxAckPending int
}

// DefaultStreamsConfig returns every field's default.
func DefaultStreamsConfig() StreamsConfig {
	return StreamsConfig{
		Replicas:           1,
		JobsMaxMsgs:        1_000_000,
		JobsMaxBytes:       1 << 30,
		JobsDuplicates:     2 * time.Minute,
		ResultsMaxAge:      24 * time.Hour,
		ResultsDuplicates:  10 * time.Minute,
		QualityMaxAge:      7 * 24 * time.Hour,
		DeadMaxAge:         14 * 24 * time.Hour,
		QualityMaxPerModel: 10_000,
		AckWait:            30 * time.Second,
		MaxDeliver:         5,
		MaxAckPending:      20_000,
	}
}

// WithDefaults returns c with zero fields set to their defaults.
func (c StreamsConfig) WithDefaults() StreamsConfig {
	d := DefaultStreamsConfig()
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	if c.JobsMaxMsgs == 0 {
		c.JobsMaxMsgs = d.JobsMaxMsgs
	}
	if c.JobsMaxBytes == 0 {
		c.JobsMaxBytes = d.JobsMaxBytes
	}
	def(&c.JobsDuplicates, d.JobsDuplicates)
	def(&c.ResultsMaxAge, d.ResultsMaxAge)
	def(&c.ResultsDuplicates, d.ResultsDuplicates)
	def(&c.QualityMaxAge, d.QualityMaxAge)
	def(&c.DeadMaxAge, d.DeadMaxAge)
	if c.QualityMaxPerModel == 0 {
		c.QualityMaxPerModel = d.QualityMaxPerModel
	}
	def(&c.AckWait, d.AckWait)
	if c.MaxDeliver == 0 {
		c.MaxDeliver = d.MaxDeliver
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = d.MaxAckPending
	}
	return c
}

// Validate reports the first unusable field of c (after defaults).
func (c StreamsConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: replicas %d must be 1 to 5", ErrInvalidOption, c.Replicas)
	case c.JobsMaxMsgs < 0, c.JobsMaxBytes < 0, c.QualityMaxPerModel < 0:
		return fmt.Errorf("%w: job stream limits must be positive", ErrInvalidOption)
	case c.ResultsDuplicates > c.ResultsMaxAge:
		return fmt.Errorf("%w: results duplicate window %v exceeds results max age %v", ErrInvalidOption, c.ResultsDuplicates, c.ResultsMaxAge)
	case c.AckWait*time.Duration(c.MaxDeliver) >= c.ResultsDuplicates:
		return fmt.Errorf("%w: ack wait %v × max deliver %d reaches the results duplicate window %v: a late redelivery could store a second result",
			ErrInvalidOption, c.AckWait, c.MaxDeliver, c.ResultsDuplicates)
	case c.AckWait < time.Second:
		return fmt.Errorf("%w: ack wait %v is under 1s", ErrInvalidOption, c.AckWait)
	case c.MaxDeliver < 1:
		return fmt.Errorf("%w: max deliver %d must be ≥ 1", ErrInvalidOption, c.MaxDeliver)
	case c.MaxAckPending < 1:
		return fmt.Errorf("%w: max ack pending %d must be ≥ 1", ErrInvalidOption, c.MaxAckPending)
	}
	return nil
}

// StreamConfigs returns the four stream configurations of a deployment:
// jobs, results, quality, dead.
func (s Subjects) StreamConfigs(c StreamsConfig) []jetstream.StreamConfig {
	c = c.WithDefaults()
	return []jetstream.StreamConfig{{
		Name:        s.JobsStream(),
		Description: "Gearbox inference jobs (work queue)",
		// One token: a model name (the worker checks its characters).
		Subjects:   []string{s.Prefix + ".jobs.*"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Discard:    jetstream.DiscardNew,
		MaxMsgs:    c.JobsMaxMsgs,
		MaxBytes:   c.JobsMaxBytes,
		Duplicates: c.JobsDuplicates,
		Replicas:   c.Replicas,
	}, {
		Name:        s.ResultsStream(),
		Description: "Gearbox inference results",
		Subjects:    []string{s.Prefix + ".results.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.ResultsMaxAge,
		Duplicates:  c.ResultsDuplicates,
		Replicas:    c.Replicas,
	}, {
		Name:              s.QualityStream(),
		Description:       "Gearbox quality reports",
		Subjects:          []string{s.Prefix + ".quality.>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxAge:            c.QualityMaxAge,
		MaxMsgsPerSubject: c.QualityMaxPerModel,
		Replicas:          c.Replicas,
	}, {
		Name:        s.DeadStream(),
		Description: "Gearbox dead letters: invalid or failed jobs with their reason",
		Subjects:    []string{s.Prefix + ".dead.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.DeadMaxAge,
		Replicas:    c.Replicas,
	}}
}

// ConsumerConfig is the shared durable pull consumer's configuration.
func (s Subjects) ConsumerConfig(c StreamsConfig) jetstream.ConsumerConfig {
	c = c.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable:       s.Consumer(),
		Description:   "Gearbox workers (shared by every worker)",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       c.AckWait,
		// Workers count deliveries themselves (MaxDeliver is theirs): a
		// server-side limit would strand a job whose last delivery went to
		// a worker that died, with nothing but an advisory to say so.
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		Replicas:      c.Replicas,
	}
}

// Provision creates or updates the deployment's streams, its shared
// consumer and the policy bucket, idempotently: every worker may call it at
// start.
func Provision(ctx context.Context, js jetstream.JetStream, s Subjects, c StreamsConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, sc := range s.StreamConfigs(c) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("provision stream %s: %w", sc.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, s.JobsStream(), s.ConsumerConfig(c)); err != nil {
		return fmt.Errorf("provision consumer %s on %s: %w", s.Consumer(), s.JobsStream(), err)
	}
	if _, err := PolicyStore(ctx, js, s, c.Replicas, true); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, s.AttemptsBucketConfig(c)); err != nil {
		return fmt.Errorf("provision bucket %s: %w", s.AttemptsBucket(), err)
	}
	return nil
}

// AttemptsBucketConfig is the bucket of isolated compute attempts: one
// small key per job under suspicion, forgotten after ResultsMaxAge.
func (s Subjects) AttemptsBucketConfig(c StreamsConfig) jetstream.KeyValueConfig {
	c = c.WithDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      s.AttemptsBucket(),
		Description: "Gearbox: compute attempts of jobs that were in flight when a worker died",
		History:     1,
		TTL:         c.ResultsMaxAge,
		Replicas:    c.Replicas,
	}
}
