package quality

import (
	"errors"
	"fmt"
	"time"
)

// Rules tune the controller. Zero fields take the defaults in their
// comments.
type Rules struct {
	// Window is how many observations per (model, precision) the
	// statistics keep, newest first (default 50).
	Window int
	// MinSamples is how many candidate observations a step down needs
	// (default 20); at most Window.
	MinSamples int
	// Margin: a step down needs the candidate's upper bound ≤ Margin ×
	// max_error (default 0.5).
	Margin float64
	// Cooldown is the least stream time between a change and a step down
	// (default 30 s). Steps up are never delayed.
	Cooldown time.Duration
}

// ErrInvalidRules is wrapped by Rules.Validate's errors.
var ErrInvalidRules = errors.New("quality: invalid rules")

// DefaultRules returns every rule's default.
func DefaultRules() Rules {
	return Rules{Window: 50, MinSamples: 20, Margin: 0.5, Cooldown: 30 * time.Second}
}

// WithDefaults returns r with zero fields set to their defaults.
func (r Rules) WithDefaults() Rules {
	d := DefaultRules()
	if r.Window == 0 {
		r.Window = d.Window
	}
	if r.MinSamples == 0 {
		r.MinSamples = d.MinSamples
	}
	if r.Margin == 0 {
		r.Margin = d.Margin
	}
	if r.Cooldown == 0 {
		r.Cooldown = d.Cooldown
	}
	return r
}

// Validate reports the first unusable field (after defaults).
func (r Rules) Validate() error {
	r = r.WithDefaults()
	switch {
	case r.Window < 1:
		return fmt.Errorf("%w: window %d must be ≥ 1", ErrInvalidRules, r.Window)
	case r.MinSamples < 1 || r.MinSamples > r.Window:
		return fmt.Errorf("%w: min samples %d must be 1 to the window %d", ErrInvalidRules, r.MinSamples, r.Window)
	case !(r.Margin > 0 && r.Margin <= 1):
		return fmt.Errorf("%w: margin %g must be in (0, 1]", ErrInvalidRules, r.Margin)
	case r.Cooldown < 0:
		return fmt.Errorf("%w: cooldown %v must be ≥ 0", ErrInvalidRules, r.Cooldown)
	}
	return nil
}
