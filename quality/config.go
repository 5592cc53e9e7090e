package quality

import (
	"fmt"
	"time"

	"github.com/gearbox-inference/gearbox/model"
)

// Config configures a worker's part of the quality loop.
type Config struct {
	// Sample is the fraction of batches checked, 0 to 1 (0: none but the
	// interval's; DefaultConfig: 0.02).
	Sample float64
	// Interval: a model with traffic is checked at least this often
	// (0: no such floor; DefaultConfig: 30 s).
	Interval time.Duration
	// Rows is the most rows of a batch one check re-runs (default 16).
	Rows int
	// Queue is how many checks may wait; a batch sampled while it is full
	// is not checked (counted as dropped), so checks never hold up
	// results (default 4).
	Queue int
	// Budget is the largest fraction of wall time the language-model
	// checker may spend running checks, in (0, 1]; 0: unbounded
	// (DefaultConfig: 0.1). After a check that took d (its re-runs,
	// comparison and publish) the checker rests d·(1/Budget − 1) before
	// taking the next; sequences sampled meanwhile queue up to Queue and
	// are dropped beyond it. Checks share the GPU and host that serve: on
	// the H200's 8B/1B bench, checking back to back cost 41 % of the
	// throughput, so a tenth of the time should cost about 4 %. The
	// checker's share is Sample × generations a second × seconds a check:
	// at the default 2 % it stays under a tenth, and the budget does not
	// bind, unless a check takes longer than the worker takes to finish
	// five generations. A busy worker on long generations can get there
	// (that bench, 16 generations a second and up to 0.67 s a check: about
	// 20 %). The tensor models' checks are not bounded by it.
	Budget float64
	// Control runs the precision controller (Runner) in the worker
	// (DefaultConfig: on).
	Control bool
	// Rules tune the controller (default DefaultRules).
	Rules Rules
	// Metrics, when set, receives the quality metrics.
	Metrics *Metrics
	// Hold, when set, is called for a batch's model as the batch is queued
	// for a check, and the function it returns once the check has run or
	// been given up: the worker holds the model's version until then, so
	// that a version replaced meanwhile is not evicted from the backend
	// under the check's shadow runs (which would convert its weights
	// again, for good).
	Hold func(m *model.Model) (release func())
}

// DefaultConfig returns the quality loop as the gearbox binary runs it: 2 %
// of batches checked, a model with traffic checked at least every 30 s, 16
// rows a check, a queue of 4, language-model checks within a tenth of the
// time, the controller on with DefaultRules. The zero Config checks
// nothing and runs no controller; its zero Rows, Queue and Rules take
// these values.
func DefaultConfig() Config {
	return Config{Sample: 0.02, Interval: 30 * time.Second, Rows: 16, Queue: 4, Budget: 0.1, Control: true, Rules: DefaultRules()}
}

// WithDefaults returns c with zero Rows, Queue and Rules fields set to
// DefaultConfig's; Sample, Interval, Budget and Control mean what they say
// at zero.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Rows == 0 {
		c.Rows = d.Rows
	}
	if c.Queue == 0 {
		c.Queue = d.Queue
	}
	c.Rules = c.Rules.WithDefaults()
	return c
}

// Enabled reports whether the worker checks any batches.
func (c Config) Enabled() bool { return c.Sample > 0 || c.Interval > 0 }

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case !(c.Sample >= 0 && c.Sample <= 1):
		return fmt.Errorf("quality sample %g must be in [0, 1]", c.Sample)
	case c.Interval < 0:
		return fmt.Errorf("quality interval %v must be ≥ 0", c.Interval)
	case c.Rows < 0:
		return fmt.Errorf("quality rows %d must be ≥ 0", c.Rows)
	case c.Queue < 0:
		return fmt.Errorf("quality queue %d must be ≥ 0", c.Queue)
	case !(c.Budget >= 0 && c.Budget <= 1):
		return fmt.Errorf("quality budget %g must be in [0, 1] (0: unbounded)", c.Budget)
	}
	return c.Rules.Validate()
}
