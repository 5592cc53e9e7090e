package cpu_test

import (
	"testing"

	kt "github.com/gearbox-inference/gearbox/kernels/kerneltest"
)

// TestConformance runs the kernels contract's suite: every op at every
// precision against the float64 reference, the errors, Evict, Reference
// and the language-model ability.
func TestConformance(t *testing.T) {
	kt.Run(t, newBackend(t, 0))
}

// TestRegistry: "cpu" opens through kernels.Open, and "auto" falls back to
// it in a binary without the CUDA backend.
func TestRegistry(t *testing.T) {
	kt.RunRegistry(t, "cpu")
}

// TestBatchInvariance runs the suite's batch part with the CPU backend's
// stronger promise: a row alone and in any batch gives the same bits.
func TestBatchInvariance(t *testing.T) {
	kt.RunBatch(t, newBackend(t, 0), true)
}
