package worker

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/batcher"
	"github.com/gearbox-inference/gearbox/quality"
)

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("worker: invalid config")

// Config configures a Worker. Zero fields take the defaults in their
// comments.
type Config struct {
	// Name identifies the worker in results and logs (default
	// hostname-<random>).
	Name string
	// Subjects names the deployment's subjects (default prefix "gearbox").
	Subjects gearbox.Subjects
	// Streams sizes the streams and the consumer when Provision is set.
	Streams gearbox.StreamsConfig
	// Provision creates or updates the streams and the consumer at start.
	Provision bool

	// MaxBatchRows is the most rows in one batch (default 256).
	MaxBatchRows int
	// MaxDelay is the longest a job waits, from its arrival at the worker,
	// before its batch is flushed (default 5 ms).
	MaxDelay time.Duration
	// MaxQueuedRows bounds rows waiting in the batcher; the worker stops
	// pulling while it is reached (default 4 × MaxBatchRows).
	MaxQueuedRows int
	// MaxQueuedBytes bounds the same in bytes (a job holds its payload and
	// its decoded input): default 256 MiB.
	MaxQueuedBytes int
	// MaxJobBytes is the largest job payload accepted (default 8 MiB).
	MaxJobBytes int
	// MaxJobRows is the most rows one job may carry (default 65,536).
	MaxJobRows int
	// Prefetch is the most jobs a pull request asks for (default 2 ×
	// MaxBatchRows). Prefetched jobs are on the ack clock: keep it near
	// the rows the worker can finish within AckWait.
	Prefetch int
	// PrefetchBytes bounds the bytes of one pull request (default 4 ×
	// MaxJobBytes, at least 32 MiB): with Prefetch it bounds what waits in
	// the client's buffer. It must be at least MaxJobBytes, or a job that
	// large could never be delivered.
	PrefetchBytes int
	// PullExpiry is the life of one pull request (default 5 s).
	PullExpiry time.Duration

	// ReplyPrefixes are the subject prefixes (whole tokens) a job's
	// reply_to may start with; a job asking for another reply subject is a
	// bad_request. Nil means DefaultReplyPrefixes (inboxes); an empty,
	// non-nil list allows no replies. Prefixes reaching system subjects
	// ($JS., $KV., $O., $SYS., any '$') or the deployment's own are refused.
	ReplyPrefixes []string

	// KVBytes is the memory of each language-model engine's KV cache (one
	// engine per model version and precision), in bytes (default 128 MiB).
	KVBytes int64
	// LMTokenBudget is the most tokens one engine step feeds (default
	// 2048); LMMaxSeqs the most sequences in a step (default 256).
	LMTokenBudget int
	LMMaxSeqs     int
	// LMMaxTokens is max_tokens for a generate job that gives none
	// (default 256, and never beyond the model's context).
	LMMaxTokens int

	// Quality configures sampled quality checks and the precision
	// controller (default: no checks, no controller; the worker still
	// follows the policy bucket).
	Quality quality.Config

	// Logger receives the worker's logs (default: disabled).
	Logger *zerolog.Logger
	// Metrics receives the worker's metrics (default: none recorded).
	Metrics *Metrics
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		h, _ := os.Hostname()
		if h == "" {
			h = "worker"
		}
		c.Name = h + "-" + nuid.Next()[16:]
	}
	if c.Subjects.Prefix == "" {
		c.Subjects = gearbox.DefaultSubjects
	}
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = 256
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 5 * time.Millisecond
	}
	if c.MaxQueuedRows == 0 {
		c.MaxQueuedRows = 4 * c.MaxBatchRows
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = batcher.DefaultMaxQueuedBytes
	}
	if c.MaxJobBytes == 0 {
		c.MaxJobBytes = 8 << 20
	}
	if c.PrefetchBytes == 0 {
		c.PrefetchBytes = max(4*c.MaxJobBytes, 32<<20)
	}
	if c.KVBytes == 0 {
		c.KVBytes = 128 << 20
	}
	if c.LMMaxTokens == 0 {
		c.LMMaxTokens = 256
	}
	if c.ReplyPrefixes == nil {
		c.ReplyPrefixes = DefaultReplyPrefixes
	}
	if c.MaxJobRows == 0 {
		c.MaxJobRows = 65536
	}
	if c.Prefetch == 0 {
		c.Prefetch = 2 * c.MaxBatchRows
	}
	if c.PullExpiry == 0 {
		c.PullExpiry = 5 * time.Second
	}
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
	return c
}

// Validate reports the first unusable field (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.MaxBatchRows < 1:
		return bad("max batch rows %d must be ≥ 1", c.MaxBatchRows)
	case c.MaxDelay < 0:
		return bad("max delay %v must be ≥ 0", c.MaxDelay)
	case c.MaxQueuedRows < c.MaxBatchRows:
		return bad("max queued rows %d must be ≥ max batch rows %d", c.MaxQueuedRows, c.MaxBatchRows)
	case c.MaxJobBytes < 64:
		return bad("max job bytes %d is too small", c.MaxJobBytes)
	case c.MaxJobRows < 1:
		return bad("max job rows %d must be ≥ 1", c.MaxJobRows)
	case c.Prefetch < 1:
		return bad("prefetch %d must be ≥ 1", c.Prefetch)
	case c.PrefetchBytes < c.MaxJobBytes:
		return bad("prefetch bytes %d must be ≥ max job bytes %d, or a job that large is never delivered", c.PrefetchBytes, c.MaxJobBytes)
	case c.MaxQueuedBytes < 1:
		return bad("max queued bytes %d must be ≥ 1", c.MaxQueuedBytes)
	case c.PullExpiry < time.Second:
		return bad("pull expiry %v must be ≥ 1s", c.PullExpiry)
	}
	if _, err := newReplyPolicy(c.ReplyPrefixes, c.Subjects); err != nil {
		return err
	}
	if err := c.Quality.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Provision {
		if err := c.Streams.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}
