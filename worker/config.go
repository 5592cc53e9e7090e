package worker

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
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
// comments: DefaultConfig's, or ones derived from other fields.
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

	// Config is how jobs are batched (batcher.Config, with its defaults):
	// MaxBatchRows, MaxDelay (from a job's arrival at the worker), and
	// MaxQueuedRows and MaxQueuedBytes, past which the worker stops
	// pulling (a job's bytes are its payload and its decoded input).
	batcher.Config
	// MaxJobBytes is the largest job payload accepted (default 8 MiB).
	MaxJobBytes int
	// MaxJobRows is the most rows one job may carry (default 65,536).
	MaxJobRows int
	// Prefetch is the most jobs requested or waiting in the client's
	// buffer at once (default 2 × MaxBatchRows); the next pull request is
	// sent when the last has ended and half of it is free. Prefetched jobs
	// are on the ack clock: keep it near the rows the worker can finish
	// within AckWait, and at most the consumer's MaxRequestBatch.
	Prefetch int
	// PrefetchBytes bounds the bytes of one pull request (default 4 ×
	// MaxJobBytes, at least 32 MiB): with Prefetch it bounds what waits in
	// the client's buffer. It must be at least MaxJobBytes, or a job that
	// large could never be delivered.
	PrefetchBytes int
	// PullExpiry is the life of one pull request at the server (default
	// 2 s). A graceful stop waits up to this long for the open request,
	// taking the jobs it still delivers.
	PullExpiry time.Duration
	// Codecs is how many goroutines decode and check jobs, and how many
	// encode and publish results, in parallel (default GOMAXPROCS, at
	// most 16). Admission holds at most 2 × Codecs decoded jobs beyond the
	// batcher's bound.
	Codecs int

	// ReplyPrefixes are the subject prefixes (whole tokens) a job's
	// reply_to may start with; a job asking for another reply subject is a
	// bad_request. Nil means DefaultReplyPrefixes (inboxes); an empty,
	// non-nil list allows no replies. Prefixes reaching system subjects
	// ($JS., $KV., $O., $SYS., any '$') or the deployment's own are refused.
	ReplyPrefixes []string

	// KVFraction, on a backend with memory of its own (a GPU:
	// kernels.DeviceMemory), is the fraction of the device memory free
	// once a language-model engine's weights are loaded that its KV cache
	// takes (default 0.5; one engine per model version and precision, each
	// taking its fraction of what is free when it starts). 0 or a backend
	// without device memory (the CPU): KVBytes.
	KVFraction float64
	// KVBytes is the memory of each language-model engine's KV cache (one
	// engine per model version and precision), in bytes (default 128 MiB),
	// where KVFraction does not apply.
	KVBytes int64
	// LMTokenBudget is the most tokens one engine step feeds (default
	// 2048); LMMaxSeqs the most sequences in a step (default 256).
	LMTokenBudget int
	LMMaxSeqs     int
	// LMMaxTokens is max_tokens for a generate job that gives none
	// (default 256, and never beyond the model's context).
	LMMaxTokens int
	// LMNoPrefixCache turns the engines' prefix sharing off (default on:
	// sequences whose prompts start alike share those K/V blocks; see
	// engine.Config.NoPrefixCache).
	LMNoPrefixCache bool

	// Quality configures sampled quality checks and the precision
	// controller (default: no checks, no controller; the worker still
	// follows the policy bucket).
	Quality quality.Config

	// Logger receives the worker's logs (default: disabled).
	Logger *zerolog.Logger
	// Metrics receives the worker's metrics (default: none recorded).
	Metrics *Metrics
}

// DefaultConfig returns the worker's fixed defaults, batcher.DefaultConfig
// and gearbox.DefaultStreamsConfig among them. Name, MaxQueuedRows,
// Prefetch and PrefetchBytes are zero: their defaults are the host's name
// or derive from other fields, and New fills them. Quality is zero (no
// checks); the gearbox binary starts from quality.DefaultConfig.
func DefaultConfig() Config {
	return Config{
		Subjects:      gearbox.DefaultSubjects,
		Streams:       gearbox.DefaultStreamsConfig(),
		Config:        batcher.DefaultConfig(),
		MaxJobBytes:   8 << 20,
		MaxJobRows:    65536,
		PullExpiry:    2 * time.Second,
		ReplyPrefixes: slices.Clone(DefaultReplyPrefixes),
		KVFraction:    0.5,
		KVBytes:       128 << 20,
		LMTokenBudget: 2048,
		LMMaxSeqs:     256,
		LMMaxTokens:   256,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Name == "" {
		h, _ := os.Hostname()
		if h == "" {
			h = "worker"
		}
		c.Name = h + "-" + nuid.Next()[16:]
	}
	if c.Subjects.Prefix == "" {
		c.Subjects = d.Subjects
	}
	c.Config = c.Config.WithDefaults()
	if c.MaxJobBytes == 0 {
		c.MaxJobBytes = d.MaxJobBytes
	}
	if c.PrefetchBytes == 0 {
		c.PrefetchBytes = max(4*c.MaxJobBytes, 32<<20)
	}
	if c.KVBytes == 0 {
		c.KVBytes = d.KVBytes
	}
	if c.LMMaxTokens == 0 {
		c.LMMaxTokens = d.LMMaxTokens
	}
	if c.ReplyPrefixes == nil {
		c.ReplyPrefixes = d.ReplyPrefixes
	}
	if c.MaxJobRows == 0 {
		c.MaxJobRows = d.MaxJobRows
	}
	if c.Prefetch == 0 {
		c.Prefetch = 2 * c.MaxBatchRows
	}
	if c.PullExpiry == 0 {
		c.PullExpiry = d.PullExpiry
	}
	if c.Codecs == 0 {
		c.Codecs = min(runtime.GOMAXPROCS(0), 16)
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
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.MaxJobBytes < 64:
		return bad("max job bytes %d is too small", c.MaxJobBytes)
	case c.MaxJobRows < 1:
		return bad("max job rows %d must be ≥ 1", c.MaxJobRows)
	case c.Prefetch < 1:
		return bad("prefetch %d must be ≥ 1", c.Prefetch)
	case c.PrefetchBytes < c.MaxJobBytes:
		return bad("prefetch bytes %d must be ≥ max job bytes %d, or a job that large is never delivered", c.PrefetchBytes, c.MaxJobBytes)
	case c.Codecs < 1:
		return bad("codecs %d must be ≥ 1", c.Codecs)
	case c.PullExpiry < time.Second:
		return bad("pull expiry %v must be ≥ 1s", c.PullExpiry)
	case !(c.KVFraction >= 0 && c.KVFraction < 1):
		return bad("KV fraction %g must be in [0, 1)", c.KVFraction)
	case c.KVBytes < 0:
		return bad("KV bytes %d must be ≥ 0", c.KVBytes)
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
