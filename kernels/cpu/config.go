package cpu

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrInvalidConfig is returned (wrapped) by New when a Config field is out of
// range.
var ErrInvalidConfig = errors.New("cpu: invalid config")

// Config configures a Backend. The zero value is ready to use.
type Config struct {
	// Threads is how many goroutines a forward pass spreads its parallel
	// parts over (the calling goroutine included). Zero means
	// runtime.GOMAXPROCS(0) at New; negative values are invalid. Results are
	// identical for every value.
	Threads int
}

// validate checks c and fills in defaults.
func (c *Config) validate() error {
	if c.Threads < 0 {
		return fmt.Errorf("%w: Threads = %d, want >= 0", ErrInvalidConfig, c.Threads)
	}
	if c.Threads == 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	return nil
}
