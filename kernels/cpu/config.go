package cpu

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/gearbox-inference/gearbox/precision"
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
	// FP8Margin is the Transformer-Engine-style margin of the per-row
	// fp8 activation scales: a row's amax maps to 448 / 2^FP8Margin (see
	// precision.FP8Scale). 0 (the default) uses the whole E4M3 range;
	// valid values are 0 to precision.MaxMargin. fp8 weights always use
	// margin 0.
	FP8Margin int
}

// validate checks c and fills in defaults.
func (c *Config) validate() error {
	if c.Threads < 0 {
		return fmt.Errorf("%w: Threads = %d, want >= 0", ErrInvalidConfig, c.Threads)
	}
	if c.FP8Margin < 0 || c.FP8Margin > precision.MaxMargin {
		return fmt.Errorf("%w: FP8Margin = %d, want 0 to %d", ErrInvalidConfig, c.FP8Margin, precision.MaxMargin)
	}
	if c.Threads == 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	return nil
}
