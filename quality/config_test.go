package quality

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestConfigValidateBudget: a budget is a fraction of the time, 0
// (unbounded) to 1; anything else is refused, naming the field and value.
func TestConfigValidateBudget(t *testing.T) {
	for _, b := range []float64{0, 0.1, 1} {
		if err := (Config{Budget: b}).Validate(); err != nil {
			t.Errorf("budget %g: %v", b, err)
		}
	}
	for _, b := range []float64{-0.1, 1.5, math.NaN()} {
		err := (Config{Budget: b}).Validate()
		if err == nil {
			t.Errorf("budget %g: no error", b)
			continue
		}
		if want := fmt.Sprintf("quality budget %g", b); !strings.Contains(err.Error(), want) {
			t.Errorf("budget %g: %q; want it to name %q", b, err, want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	if got := (Config{Sample: 1}).WithDefaults().Budget; got != 0 {
		t.Errorf("a zero budget WithDefaults: %g; want 0 (unbounded)", got)
	}
}
