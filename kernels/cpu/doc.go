// Package cpu is the pure-Go kernels.Backend: it runs every model op on the
// host CPU and is always present, so a worker without a GPU still serves.
//
// The package registers itself with kernels.Register under the kind "cpu" in
// init; package main blank-imports it:
//
//	import _ "github.com/gearbox-inference/gearbox/kernels/cpu"
//
//	b, _, err := kernels.Open("cpu")
//
// Programs that want to set the thread count call New directly.
//
// # Precision
//
// Forward runs at fp32 only for now: activations and weights are float32 and
// matrix products accumulate in float32. Any other precision fails with an
// error wrapping kernels.ErrUnsupported; the backend never substitutes one
// precision for another. Transcendental activations (gelu, silu, tanh,
// softmax's exp) are evaluated in float64 and rounded once, and the row
// statistics of layernorm and rmsnorm accumulate in float64, so the only
// float32 error that matters is that of the matrix products.
//
// # Reference
//
// Reference is a plain float64 forward pass written for clarity, not speed.
// It is the executable specification of the ops: tests, other backends and
// the quality loop measure their error against it.
//
// # Parallelism
//
// Linear layers split the output into 64×64 tiles that a pool of
// Config.Threads goroutines (the caller included) takes in turn; each tile
// is one small gonum blas32.Gemm call, which gonum then runs serially. This
// is about twice as fast as letting gonum parallelise a whole product itself
// (see gemm.go for the numbers). Elementwise and per-row ops split their rows
// across the same number of goroutines once a layer is large enough for that
// to pay. A forward pass allocates its output and, when scratch space is not
// already pooled, two scratch buffers; the results do not depend on the
// thread count or on how the tiles were scheduled.
package cpu
