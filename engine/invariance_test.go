package engine_test

import (
	"testing"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/kerneltest"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestBatchInvariance: on the CPU backend, which computes every row in a
// fixed order, a greedy sequence generates bitwise the same tokens and
// log-probabilities alone and among 1, 7 and 40 others, at every
// precision: a redelivered job reproduces its result exactly.
func TestBatchInvariance(t *testing.T) {
	m, b := setup(t)
	for _, p := range []precision.Format{precision.FP32, precision.BF16, precision.FP8, precision.FP4} {
		t.Run(string(p), func(t *testing.T) {
			if !kernels.Supports(b, p) {
				t.Skipf("the CPU backend does not run %s", p)
			}
			// A token budget of 64 chunks the longer prompts beside
			// the others' decodes.
			kerneltest.BatchInvariance(t, b, m, p, 256, engine.Config{TokenBudget: 64}, 24, 12)
		})
	}
}
