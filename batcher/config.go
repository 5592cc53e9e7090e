package batcher

import (
	"fmt"
	"time"
)

// Config sets how a Queue or a Batcher forms batches. The zero value of a
// field means its default: DefaultConfig's, or for MaxQueuedRows and
// DeadlineSlack one derived from the other fields.
type Config struct {
	// MaxBatchRows is the most rows in one batch (default 256).
	MaxBatchRows int
	// MaxDelay is the longest an item waits, from its arrival, before its
	// key is flushed (default 5 ms).
	MaxDelay time.Duration
	// MaxQueuedRows bounds the rows a Batcher holds: Batcher.Add blocks
	// while that many are queued or formed but not yet delivered (default
	// 4 × MaxBatchRows; at least MaxBatchRows). A Queue ignores it.
	MaxQueuedRows int
	// MaxQueuedBytes bounds the same in bytes, by the items' Bytes
	// (default 256 MiB). A Queue ignores it.
	MaxQueuedBytes int
	// DeadlineSlack makes a key flush once the earliest deadline among its
	// items is within DeadlineSlack of now (default MaxDelay).
	DeadlineSlack time.Duration
}

// DefaultConfig returns the fixed defaults: 256 rows a batch, 5 ms, 256
// MiB. MaxQueuedRows and DeadlineSlack are zero: their defaults derive
// from MaxBatchRows and MaxDelay, as WithDefaults does.
func DefaultConfig() Config {
	return Config{MaxBatchRows: 256, MaxDelay: 5 * time.Millisecond, MaxQueuedBytes: 256 << 20}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = d.MaxBatchRows
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = d.MaxDelay
	}
	if c.MaxQueuedRows == 0 {
		c.MaxQueuedRows = 4 * c.MaxBatchRows
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = d.MaxQueuedBytes
	}
	if c.DeadlineSlack == 0 {
		c.DeadlineSlack = c.MaxDelay
	}
	return c
}

// Validate reports the first unusable field, after defaults, as an error
// wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.MaxBatchRows < 1:
		return fmt.Errorf("%w: MaxBatchRows %d must be ≥ 1", ErrInvalidConfig, c.MaxBatchRows)
	case c.MaxDelay < 0:
		return fmt.Errorf("%w: MaxDelay %v must not be negative", ErrInvalidConfig, c.MaxDelay)
	case c.MaxQueuedRows < c.MaxBatchRows:
		return fmt.Errorf("%w: MaxQueuedRows %d must be ≥ MaxBatchRows %d", ErrInvalidConfig, c.MaxQueuedRows, c.MaxBatchRows)
	case c.MaxQueuedBytes < 1:
		return fmt.Errorf("%w: MaxQueuedBytes %d must be ≥ 1", ErrInvalidConfig, c.MaxQueuedBytes)
	case c.DeadlineSlack < 0:
		return fmt.Errorf("%w: DeadlineSlack %v must not be negative", ErrInvalidConfig, c.DeadlineSlack)
	}
	return nil
}
