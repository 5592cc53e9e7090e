// Package kerneltest is the conformance suite of the kernels contract,
// which every backend runs from its own tests, as database drivers run one
// shared suite:
//
//	func TestConformance(t *testing.T) {
//		b := open(t) // the backend under test, or t.Skip where its device is absent
//		kerneltest.Run(t, b)
//	}
//
//	func TestRegistry(t *testing.T) { kerneltest.RunRegistry(t, "cuda") }
//
// Run checks the Backend contract — every op and every precision the
// backend runs against the float64 reference (kernels/cpu's Reference)
// with per-precision tolerances, the precisions it refuses, the errors,
// concurrency, Evict — and the optional abilities the backend has
// (kernels.Referencer, and kernels.LM against LMReference). RunRegistry
// checks kernels.Open for a backend kind, and GEARBOX_DEVICE=auto's
// fallback to the CPU.
//
// The package also holds what the backends' own tests share: random test
// models (Build, Cases, LMModel), inputs (RandInput) and error measures
// (RelL2, MaxRel).
package kerneltest
